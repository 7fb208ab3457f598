// Package crpd is the Juniper cRPD backend. This file renders the model
// into the Junos configuration of the agent-owned `groups MESHRR` subtree
// (applied with apply-groups, so operator configuration is never touched),
// as text for <load-configuration action="replace" format="text">.
// Statement names follow Juniper's documentation; no real Junos is
// available here, so the golden files are checked against Juniper's
// published YANG models of one release by `make junos-yang`
// (tests/junosyang; the models are not shipped with meshrr).
package crpd

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/model"
)

//go:embed templates/*.tmpl
var templatesFS embed.FS

var tmpl = template.Must(template.New("junos").Funcs(template.FuncMap{
	"join":  func(s []string) string { return strings.Join(s, " ") },
	"quote": backend.Quote,
}).ParseFS(templatesFS, "templates/*.tmpl"))

// GroupName is the configuration group the agent owns.
const GroupName = "MESHRR"

type view struct {
	Group       string
	Macro       string
	Digest      string
	GR          int // graceful restart time; 0: off
	RouterID    string
	ASN         model.ASN
	BGPGroups   []bgpGroup
	ASLists     []namedList
	Communities []namedList
	Policies    []policy
}

type bgpGroup struct {
	Name            string
	Type            string // internal | external
	LocalAddress    string
	HoldTime        int
	Cluster         string
	Allow           []string
	PeerASList      string
	Multihop        int
	NoNexthopChange bool
	Families        []family
	AuthKey         string // secret
	// BFD: bfd-liveness-detection minimum-interval (ms) and multiplier
	// (Junos picks single-hop or multihop from the session); 0: off
	BFDIntervalMs  int64
	BFDMultiplier  int
	Import, Export string
	Neighbors      []neighbor
}

// family is a Junos `family AFI { SAFI; }` statement, with an optional
// prefix-limit.
type family struct {
	AFI, SAFI string
	Limit     int
	Teardown  string // "": warn only
	AddPaths  int    // add-path send path-count (and receive); 0: off
}

type neighbor struct {
	Addr        string
	Description string
	AuthKey     string // secret: the session's own key during a key rollover (model.PeerGroup.SessionKeys)
}

type namedList struct {
	Name    string
	Members []string
}

type policy struct {
	Name  string
	Terms []term
}

type term struct {
	Name string
	From []string
	Then []string
}

// Render turns the model into the MESHRR group. It is pure.
func Render(m model.Model) ([]byte, error) {
	if err := checkRenderable(m); err != nil {
		return nil, err
	}
	v := view{Group: GroupName, Macro: MacroName, GR: m.GracefulRestart.RestartTime, RouterID: m.RouterID.String(), ASN: m.ASN}
	comms := map[string]bool{}
	for _, g := range m.Groups {
		imp, err := v.addPolicy(g.Name, "import", g.Import, comms)
		if err != nil {
			return nil, err
		}
		exp, err := v.addPolicy(g.Name, "export", g.Export, comms)
		if err != nil {
			return nil, err
		}
		asList := v.addPeerASList(g)
		for _, f := range g.Families() {
			fams := families(g, f)
			if len(fams) == 0 {
				continue // EVPN only, carried by the group's other family
			}
			local, ok := m.LocalAddr(f)
			if !ok {
				return nil, fmt.Errorf("crpd: group %s has %s peers but the pod has no %s address", g.Name, f, f)
			}
			bg := bgpGroup{
				Name:         groupName(g.Name, f),
				Type:         "internal",
				LocalAddress: local.String(),
				HoldTime:     m.Timers.Hold,
				PeerASList:   asList,
				Families:     fams,
				AuthKey:      g.Password,
				Import:       imp,
				Export:       exp,
			}
			bg.setPeers(g, f)
			v.BGPGroups = append(v.BGPGroups, bg)
		}
	}
	return renderWithDigest(v)
}

// checkRenderable: what Junos cannot take from a model that passed
// validation (TCP-MD5 keys come from Secrets at run time). GTSM,
// maxPrefixAction block and long-lived graceful restart never reach this
// renderer: validation refuses them for cRPD (config.Capabilities).
func checkRenderable(m model.Model) error {
	if !m.RouterID.Is4() {
		return fmt.Errorf("crpd: router id %v is not an IPv4 address", m.RouterID)
	}
	for _, g := range m.Groups {
		switch {
		case g.Password != "" && len(g.Ranges) > 0:
			return fmt.Errorf("crpd: group %s: Junos cannot combine allow (client ranges) with authentication: remove its client-%s key", g.Name, g.Name)
		case quoteErr(g.Password) != nil:
			return fmt.Errorf("crpd: the TCP-MD5 key of group %s: %w", g.Name, quoteErr(g.Password))
		}
		for _, k := range g.SessionKeys {
			if err := quoteErr(k); err != nil {
				return fmt.Errorf("crpd: the TCP-MD5 key of group %s: %w", g.Name, err)
			}
		}
	}
	return nil
}

// addPeerASList adds the as-list of an external group's peer AS ranges
// and returns its name ("" without one).
func (v *view) addPeerASList(g model.PeerGroup) string {
	if !g.External || len(g.PeerASNs) == 0 {
		return ""
	}
	name := fmt.Sprintf("%s-%s-peer-as", GroupName, g.Name)
	var members []string
	for _, r := range g.PeerASNs {
		members = append(members, r.String())
	}
	v.ASLists = append(v.ASLists, namedList{name, members})
	return name
}

// families: the Junos families of a group's sessions in one address
// family (EVPN rides on the group's EVPN family only).
func families(g model.PeerGroup, f model.Family) []family {
	var fams []family
	teardown := map[model.LimitAction]string{model.LimitRestart: "teardown idle-timeout 1;", model.LimitDisable: "teardown idle-timeout forever;"}[g.MaxPrefixAction]
	if g.Carries(model.NLRIUnicast) {
		fams = append(fams, family{AFI: map[model.Family]string{model.IPv4: "inet", model.IPv6: "inet6"}[f], SAFI: "unicast", Limit: g.MaxPrefixes, Teardown: teardown, AddPaths: g.AddPaths})
	}
	if g.Carries(model.NLRIEVPN) && f == g.EVPNFamily() {
		fams = append(fams, family{AFI: "evpn", SAFI: "signaling", Limit: g.MaxPrefixes, Teardown: teardown})
	}
	return fams
}

// setPeers: BFD, the eBGP and RR-client settings, the allowed ranges and
// the neighbors of a group's sessions in one address family.
func (bg *bgpGroup) setPeers(g model.PeerGroup, f model.Family) {
	if b := g.BFD; b != nil {
		bg.BFDIntervalMs, bg.BFDMultiplier = b.Interval.Milliseconds(), b.Multiplier
	}
	if g.External {
		bg.Type = "external"
		bg.Multihop = g.Multihop
		bg.NoNexthopChange = g.NextHopUnchanged
	}
	if g.RRClient {
		bg.Cluster = g.ClusterID.String()
	}
	// Junos takes the subtracted allow list: a peer configured in another
	// group is never matched by this group's ranges.
	for _, p := range g.Allow {
		if model.FamilyOf(p.Addr()) == f {
			bg.Allow = append(bg.Allow, p.String())
		}
	}
	for _, n := range g.Neighbors {
		if model.FamilyOf(n.Addr) == f {
			bg.Neighbors = append(bg.Neighbors, neighbor{n.Addr.String(), n.Name, g.SessionKeys[n.Addr]})
		}
	}
}

// renderWithDigest: the committed group carries the digest of its own text
// (rendered with a placeholder first), so that the agent can tell after a
// restart whether cRPD still runs its last commit.
func renderWithDigest(v view) ([]byte, error) {
	var buf bytes.Buffer
	for _, d := range []string{"-", ""} {
		if d == "" {
			sum := sha256.Sum256(buf.Bytes())
			d = hex.EncodeToString(sum[:])
		}
		v.Digest = d
		buf.Reset()
		if err := tmpl.ExecuteTemplate(&buf, "meshrr.tmpl", v); err != nil {
			return nil, fmt.Errorf("crpd: render: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// MacroName is the apply-macro of the MESHRR group that holds the digest.
const MacroName = "meshrr-agent"

var digestRE = regexp.MustCompile(`(?m)^\s*digest ([0-9a-f]{64});$`)

// DigestOf returns the digest a rendered configuration carries ("" if none).
func DigestOf(cfg []byte) string {
	if m := digestRE.FindSubmatch(cfg); m != nil {
		return string(m[1])
	}
	return ""
}

// groupName: the model group for IPv4, "<name>-v6" for its IPv6 sessions
// (one local-address per BGP group).
func groupName(name model.GroupName, f model.Family) string {
	if f == model.IPv6 {
		return string(name) + "-v6"
	}
	return string(name)
}

// addPolicy renders a policy-statement and returns its name ("" when the
// policy accepts everything unchanged).
func (v *view) addPolicy(group model.GroupName, dir string, p model.Policy, seen map[string]bool) (string, error) {
	asn := v.ASN
	if p.Empty() {
		return "", nil
	}
	ps := policy{Name: fmt.Sprintf("%s-%s-%s", GroupName, group, dir)}
	for _, r := range p.Rules {
		t := term{Name: r.Name}
		if len(r.Match.Prefixes) > 0 && r.Match.DefaultRoute {
			return "", fmt.Errorf("crpd: rule %s matches prefixes and the default route at once: Junos ORs route-filters", r.Name)
		}
		define := func(c model.Community) string {
			name, member := communityName(c)
			if !seen[name] {
				seen[name] = true
				v.Communities = append(v.Communities, namedList{name, []string{member}})
			}
			return name
		}
		if len(r.Match.Communities) > 0 {
			var names []string
			for _, c := range r.Match.Communities {
				names = append(names, define(c))
			}
			if len(names) == 1 {
				t.From = append(t.From, "community "+names[0]+";")
			} else {
				t.From = append(t.From, "community [ "+strings.Join(names, " ")+" ];")
			}
		}
		for _, pm := range r.Match.Prefixes {
			t.From = append(t.From, routeFilter(pm))
		}
		if r.Match.DefaultRoute {
			t.From = append(t.From, "route-filter 0.0.0.0/0 exact;", "route-filter ::/0 exact;")
		}
		a := r.Action
		if a.SetLocalPref != nil {
			t.Then = append(t.Then, fmt.Sprintf("local-preference %d;", *a.SetLocalPref))
		}
		if a.SetMED != nil {
			t.Then = append(t.Then, fmt.Sprintf("metric %d;", *a.SetMED))
		}
		for _, c := range a.RemoveCommunities {
			t.Then = append(t.Then, "community delete "+define(c)+";")
		}
		for _, c := range a.AddCommunities {
			t.Then = append(t.Then, "community add "+define(c)+";")
		}
		if a.Prepend > 0 {
			t.Then = append(t.Then, fmt.Sprintf("as-path-prepend \"%s\";", strings.TrimSpace(strings.Repeat(fmt.Sprintf("%d ", asn), a.Prepend))))
		}
		switch {
		case r.Action.Reject:
			t.Then = append(t.Then, "reject;")
		case r.Action.Accept:
			t.Then = append(t.Then, "accept;")
		}
		ps.Terms = append(ps.Terms, t)
	}
	final := "accept;"
	if p.DefaultReject {
		final = "reject;"
	}
	ps.Terms = append(ps.Terms, term{Name: "meshrr-default", Then: []string{final}})
	v.Policies = append(v.Policies, ps)
	return ps.Name, nil
}

func communityName(c model.Community) (name, member string) {
	if c.Large {
		return fmt.Sprintf("%s-L-%d-%d-%d", GroupName, c.A, c.B, c.C), fmt.Sprintf("large:%d:%d:%d", c.A, c.B, c.C)
	}
	return fmt.Sprintf("%s-C-%d-%d", GroupName, c.A, c.B), fmt.Sprintf("%d:%d", c.A, c.B)
}

func routeFilter(pm model.PrefixMatch) string {
	if pm.MaxLen == pm.Prefix.Bits() {
		return fmt.Sprintf("route-filter %s exact;", pm.Prefix)
	}
	return fmt.Sprintf("route-filter %s upto /%d;", pm.Prefix, pm.MaxLen)
}

func quoteErr(s string) error {
	_, err := backend.Quote(s)
	return err
}
