// Package bird is the BIRD 2 backend: it renders the model into an
// agent-owned bird.conf, applies it through BIRD's control socket
// (configure check, then configure) and reads sessions from
// `show protocols all`.
package bird

import (
	"bytes"
	"embed"
	"fmt"
	"hash/fnv"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"text/template"

	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/model"
)

//go:embed templates/*.tmpl
var templatesFS embed.FS

var tmpl = template.Must(template.New("bird").Funcs(template.FuncMap{"quote": backend.Quote}).ParseFS(templatesFS, "templates/*.tmpl"))

// Options are the BIRD-specific settings of the rendered file.
type Options struct {
	// Include lists operator files or globs included by the agent's file.
	Include []string
	// StrictBind binds every session to the pod's address.
	StrictBind bool
	// Threads is BIRD 3's worker threads (`threads N;`); 0: not written.
	Threads int
}

// descPrefix starts the description of every protocol the agent renders;
// Sessions maps sessions back to model groups through it.
const descPrefix = "meshrr:"

type view struct {
	RouterID  string
	Threads   int
	Log       string // logStatement
	Include   []string
	BFD       bool // a protocol bfd serves the sessions that ask for BFD
	BindBFD   bool // strict bind of the BFD sockets
	Filters   []filterView
	Templates []templateView
	Protocols []protocolView
}

type filterView struct {
	Name  string
	Lines []string
}

type templateView struct {
	Name       string
	Local      string
	ASN        model.ASN
	Family     model.Family
	GR         model.GracefulRestart
	Password   string // secret
	Limit      int
	LimitDo    model.LimitAction
	TTLSec     bool
	StrictBind bool
	Timers     model.Timers
	RRClient   bool
	ClusterID  string
	RSClient   bool
	Multihop   int
	NextHop    bool
	AddPaths   int
	BFD        *bfdView
	Import     string // "all" or "filter NAME"
	Export     string
}

// bfdView is a session template's BFD options; Graceful (model.BFD)
// handles a BFD failure as a graceful restart of the session.
type bfdView struct {
	IntervalMs int64
	Multiplier int
	Graceful   bool
}

type protocolView struct {
	Name        string
	Template    string
	Neighbor    string // "ADDR as ASN" or "range PREFIX internal|external"
	DynamicName string
	Description string
	Passive     bool
	Password    string // secret: the session's own key during a key rollover (model.PeerGroup.SessionKeys); keepOutKey for a client kept out
}

// logStatement sends BIRD's own log to the container's stderr (kubectl
// logs -c bird): session errors (a hold timer expired, a notification sent
// or received), reconfigurations, and what peers send that BIRD refuses
// (rate-limited by BIRD itself); no trace or debug lines, so sessions
// coming up are not logged. Without a log statement BIRD logs to syslog,
// which a pod does not have.
const logStatement = `# BIRD's log: session errors, reconfigurations and refused input, to stderr (kubectl logs -c bird)
log stderr { info, remote, warning, error, auth, fatal, bug };`

// Render turns the model into the agent-owned bird.conf. It is pure.
func Render(m model.Model, o Options) ([]byte, error) {
	if !m.RouterID.Is4() {
		return nil, fmt.Errorf("bird: router id %v is not an IPv4 address", m.RouterID)
	}
	v := view{RouterID: m.RouterID.String(), Threads: o.Threads, Log: logStatement, Include: o.Include}
	for _, g := range m.Groups {
		for _, k := range append([]string{g.Password}, slices.Collect(maps.Values(g.SessionKeys))...) {
			if _, err := backend.Quote(k); err != nil {
				return nil, fmt.Errorf("bird: the TCP-MD5 key of group %s: %w", g.Name, err)
			}
		}
		imp, exp := v.addFilters(g, m.ASN)
		for _, f := range g.Families() {
			local, ok := m.LocalAddr(f)
			if !ok {
				return nil, fmt.Errorf("bird: group %s has %s peers but the pod has no %s address", g.Name, f, f)
			}
			t := sessionTemplate(m, g, f, local, o, imp, exp)
			if t.BFD != nil {
				v.BFD, v.BindBFD = true, o.StrictBind
			}
			v.Templates = append(v.Templates, t)
			v.addProtocols(g, f, t.Name)
		}
	}
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, "bird.conf.tmpl", v); err != nil {
		return nil, fmt.Errorf("bird: render: %w", err)
	}
	return buf.Bytes(), nil
}

// addFilters adds a group's import and export filters (when its policy
// has any rules) and returns what its sessions import and export.
func (v *view) addFilters(g model.PeerGroup, asn model.ASN) (imp, exp string) {
	sym := groupSymbol(g)
	imp, exp = "all", "all"
	if lines := filterLines(g.Import, importGuards(g), asn); lines != nil {
		name := "meshrr_" + sym + "_import"
		v.Filters = append(v.Filters, filterView{Name: name, Lines: lines})
		imp = "filter " + name
	}
	if lines := filterLines(g.Export, nil, asn); lines != nil {
		name := "meshrr_" + sym + "_export"
		v.Filters = append(v.Filters, filterView{Name: name, Lines: lines})
		exp = "filter " + name
	}
	return imp, exp
}

// sessionTemplate is the BIRD template every session of a group in one
// address family uses.
func sessionTemplate(m model.Model, g model.PeerGroup, f model.Family, local netip.Addr, o Options, imp, exp string) templateView {
	t := templateView{
		Name:       "meshrr_" + groupSymbol(g) + "_" + string(f),
		Local:      local.String(),
		ASN:        m.ASN,
		Family:     f,
		StrictBind: o.StrictBind,
		Timers:     m.Timers,
		RRClient:   g.RRClient,
		RSClient:   g.RouteServer,
		GR:         m.GracefulRestart,
		Password:   g.Password,
		Limit:      g.MaxPrefixes,
		LimitDo:    g.MaxPrefixAction,
		TTLSec:     g.TTLSecurity,
		Multihop:   g.Multihop,
		NextHop:    g.NextHopUnchanged,
		AddPaths:   g.AddPaths,
		Import:     imp,
		Export:     exp,
	}
	if g.RRClient {
		t.ClusterID = g.ClusterID.String()
	}
	if b := g.BFD; b != nil {
		t.BFD = &bfdView{IntervalMs: b.Interval.Milliseconds(), Multiplier: b.Multiplier, Graceful: b.Graceful && m.GracefulRestart.Enabled}
	}
	return t
}

// addProtocols adds a protocol per explicit neighbor and per client range
// of a group in one address family.
func (v *view) addProtocols(g model.PeerGroup, f model.Family, template string) {
	sym := groupSymbol(g)
	for _, n := range g.Neighbors {
		if model.FamilyOf(n.Addr) != f {
			continue
		}
		v.Protocols = append(v.Protocols, protocolView{
			Name:        neighborSymbol(g, n.Addr),
			Template:    template,
			Neighbor:    fmt.Sprintf("%s as %d", n.Addr, n.ASN),
			Description: strings.TrimSpace(descPrefix + string(g.Name) + " " + n.Name),
			Password:    g.SessionKeys[n.Addr],
		})
	}
	// BIRD matches an incoming connection to an explicit neighbour before
	// any range, so the configured ranges are rendered rather than the
	// subtracted allow list: a mesh change then never restarts a range
	// protocol and the client sessions under it.
	kind := "internal"
	if g.External {
		kind = "external"
	}
	// A client kept out is an explicit protocol for its address, which
	// BIRD matches before any range: passive, with a TCP-MD5 key the
	// client does not have (keepOutKey), so that the kernel drops its
	// connection attempts and nothing reaches BGP. (The session BIRD
	// spawned and disabled itself would be removed by the next configure,
	// and the client admitted again by its range. A disabled explicit
	// protocol is not enough: BIRD 2 refuses the client's connections to
	// it, BIRD 3 passes them on to the range.)
	for _, a := range g.Disabled {
		if model.FamilyOf(a) != f {
			continue
		}
		v.Protocols = append(v.Protocols, protocolView{
			Name:        disabledSymbol(sym, a),
			Template:    template,
			Neighbor:    fmt.Sprintf("%s %s", a, kind),
			Description: descPrefix + string(g.Name) + " " + a.String() + " disabled: prefix limit exceeded",
			Password:    keepOutKey(a),
			Passive:     true,
		})
	}
	for _, r := range g.Ranges {
		if model.FamilyOf(r.Addr()) != f {
			continue
		}
		p := protocolView{
			Name:        rangeSymbol(sym, r),
			Template:    template,
			Neighbor:    fmt.Sprintf("range %s %s", r, kind),
			DynamicName: "cl_" + sym + "_",
			Description: descPrefix + string(g.Name) + " " + r.String(),
		}
		if r.IsSingleIP() {
			p.Password = g.SessionKeys[r.Addr()]
		}
		v.Protocols = append(v.Protocols, p)
	}
}

// groupSymbol is the group's part of BIRD symbols: "mesh", "upstream" or
// the client group name with dashes turned into underscores (client groups
// cannot be named mesh or upstream).
func groupSymbol(g model.PeerGroup) string {
	switch g.Role {
	case model.RoleMesh:
		return "mesh"
	case model.RoleUpstream:
		return "upstream"
	}
	return strings.ReplaceAll(string(g.Name), "-", "_")
}

// neighborSymbol names a neighbour's protocol after its address, readable in
// birdc: mesh_10_244_1_7, upstream_fd00__7.
func neighborSymbol(g model.PeerGroup, a netip.Addr) string {
	r := strings.NewReplacer(".", "_", ":", "_")
	return groupSymbol(g) + "_" + r.Replace(a.String())
}

// rangeSymbol names a range protocol with a hash of the prefix: stable when
// other ranges are added or removed, and short enough for BIRD's 63
// characters.
func rangeSymbol(sym string, p netip.Prefix) string {
	h := fnv.New32a()
	h.Write([]byte(p.String()))
	return fmt.Sprintf("cl_%s_r%08x", sym, h.Sum32())
}

// keepOutKey is the TCP-MD5 key of the protocol that keeps client a out.
// It guards nothing and is no secret: it is a key no router is
// configured with, named for what it does where an operator reads it.
func keepOutKey(a netip.Addr) string {
	return "meshrr keeps " + a.String() + " out: prefix limit exceeded"
}

// disabledSymbol names the protocol that keeps a client out, with a hash
// of its address (no clash with the spawned cl_<group>_<n>).
func disabledSymbol(sym string, a netip.Addr) string {
	h := fnv.New32a()
	h.Write([]byte(a.String()))
	return fmt.Sprintf("cl_%s_x%08x", sym, h.Sum32())
}

// importGuards are statements that must run before the policy on import:
// external (route-server) clients may only originate from their peer ASNs.
// BIRD 2 has no per-session AS list, so the check is on the first AS of
// the path and routes from other ASNs are rejected.
func importGuards(g model.PeerGroup) []string {
	if !g.External || len(g.PeerASNs) == 0 {
		return nil
	}
	var set []string
	for _, r := range g.PeerASNs {
		if r.Min == r.Max {
			set = append(set, fmt.Sprint(r.Min))
		} else {
			set = append(set, fmt.Sprintf("%d..%d", r.Min, r.Max))
		}
	}
	return []string{
		"# peer AS must be one of the group's peerASNs",
		fmt.Sprintf("if !(bgp_path.first ~ [%s]) then reject;", strings.Join(set, ", ")),
	}
}

// filterLines renders a policy as filter statements; nil means "all".
// asn is the local AS (prepended by rules that prepend).
func filterLines(p model.Policy, guards []string, asn model.ASN) []string {
	if p.Empty() && guards == nil {
		return nil
	}
	lines := append([]string(nil), guards...)
	for _, r := range p.Rules {
		lines = append(lines, "# "+r.Name)
		do := modifications(r.Action, asn)
		switch {
		case r.Action.Reject:
			do = append(do, "reject;")
		case r.Action.Accept:
			do = append(do, "accept;")
		}
		cond := condition(r.Match)
		switch {
		case cond == "":
			lines = append(lines, do...)
		case len(do) == 1:
			lines = append(lines, fmt.Sprintf("if %s then %s", cond, do[0]))
		default:
			lines = append(lines, fmt.Sprintf("if %s then { %s }", cond, strings.Join(do, " ")))
		}
	}
	if p.DefaultReject {
		lines = append(lines, "reject;")
	} else {
		lines = append(lines, "accept;")
	}
	return lines
}

// modifications renders an action's route changes, in the model's order.
func modifications(a model.Action, asn model.ASN) []string {
	var do []string
	if a.SetLocalPref != nil {
		do = append(do, fmt.Sprintf("bgp_local_pref = %d;", *a.SetLocalPref))
	}
	if a.SetMED != nil {
		do = append(do, fmt.Sprintf("bgp_med = %d;", *a.SetMED))
	}
	for _, c := range a.RemoveCommunities {
		do = append(do, communityOp(c, "delete"))
	}
	for _, c := range a.AddCommunities {
		do = append(do, communityOp(c, "add"))
	}
	for range a.Prepend {
		do = append(do, fmt.Sprintf("bgp_path.prepend(%d);", asn))
	}
	return do
}

// communityOp adds or deletes one community of either kind.
func communityOp(c model.Community, op string) string {
	if c.Large {
		return fmt.Sprintf("bgp_large_community.%s((%d, %d, %d));", op, c.A, c.B, c.C)
	}
	return fmt.Sprintf("bgp_community.%s((%d, %d));", op, c.A, c.B)
}

// condition renders a Match as a BIRD boolean expression ("" = always).
func condition(m model.Match) string {
	var and []string
	if c := communityCondition(m.Communities); c != "" {
		and = append(and, c)
	}
	if c := prefixCondition(m.Prefixes); c != "" {
		and = append(and, c)
	}
	if m.DefaultRoute {
		and = append(and, "net.len = 0")
	}
	if len(and) == 1 {
		return and[0]
	}
	for i := range and {
		and[i] = "(" + and[i] + ")"
	}
	return strings.Join(and, " && ")
}

func communityCondition(cs []model.Community) string {
	var std, large []string
	for _, c := range cs {
		if c.Large {
			large = append(large, fmt.Sprintf("(%d, %d, %d)", c.A, c.B, c.C))
		} else {
			std = append(std, fmt.Sprintf("(%d, %d)", c.A, c.B))
		}
	}
	var or []string
	if std != nil {
		or = append(or, "bgp_community ~ ["+strings.Join(std, ", ")+"]")
	}
	if large != nil {
		or = append(or, "bgp_large_community ~ ["+strings.Join(large, ", ")+"]")
	}
	return joinOr(or)
}

func prefixCondition(ps []model.PrefixMatch) string {
	var v4, v6 []string
	for _, p := range ps {
		s := p.Prefix.String()
		if p.MaxLen != p.Prefix.Bits() {
			s = fmt.Sprintf("%s{%d,%d}", s, p.Prefix.Bits(), p.MaxLen)
		}
		if p.Prefix.Addr().Is4() {
			v4 = append(v4, s)
		} else {
			v6 = append(v6, s)
		}
	}
	var or []string
	if v4 != nil {
		or = append(or, "(net.type = NET_IP4 && net ~ ["+strings.Join(v4, ", ")+"])")
	}
	if v6 != nil {
		or = append(or, "(net.type = NET_IP6 && net ~ ["+strings.Join(v6, ", ")+"])")
	}
	return joinOr(or)
}

func joinOr(or []string) string {
	if len(or) > 1 {
		return "(" + strings.Join(or, " || ") + ")"
	}
	return strings.Join(or, "")
}
