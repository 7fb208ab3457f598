// Package plan turns configuration, discovered peers and session state into
// the desired BGP model. Everything here is pure: no I/O, no clock (the time
// is an input), no randomness.
package plan

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// Self is the pod the agent runs in (downward API).
type Self struct {
	Name      string
	Namespace string
	Addrs     []netip.Addr
	// Side is the pod's redundancy side ("" without sides).
	Side string
}

// ID is the pod's member ID, as other agents compute it.
func (s Self) ID() string {
	return model.Member{Namespace: s.Namespace, Pod: s.Name, Addrs: s.Addrs}.ID()
}

// Input is everything the plan depends on.
type Input struct {
	Config   *config.Config
	Self     Self
	Snapshot model.Snapshot
	// Sessions are the daemon's current sessions keyed by peer address.
	Sessions map[netip.Addr]model.Session
	Now      time.Time
	// HoldDown keeps replaced upstream members (by member ID) out of the
	// choice until the given time.
	HoldDown map[string]time.Time
	// Draining: the pod is about to stop; every exported route gets the
	// GRACEFUL_SHUTDOWN community and local-preference 0.
	Draining bool
	// Passwords are the TCP-MD5 keys by model group name (secrets).
	Passwords map[string]string
	// Refused session groups (by model group name, with why) get no
	// session: their TCP-MD5 key is missing or malformed.
	Refused map[string]string
	// ClusterAddrs are addresses known to be the cluster's own (the pod's
	// address on the pod network, the API server's Service address): a
	// client range that holds one admits any pod of the cluster.
	ClusterAddrs []ClusterAddr
}

// ClusterAddr is an address of the cluster's own networks and what it is.
type ClusterAddr struct {
	Addr netip.Addr
	What string
}

// Replacement records an upstream member dropped because its session did
// not reach Established within the grace period.
type Replacement struct {
	Member string
	Reason string
}

// Result is the plan's output.
type Result struct {
	Model model.Model
	// Upstream are the chosen upstream member IDs, best first.
	Upstream []string
	// Replaced upstream members: the caller holds them down.
	Replaced []Replacement
	// Exposed are the client groups refused (no session) because a range
	// admits the cluster's own networks without TCP-MD5 and an import
	// policy, with why (config.ClusterExposure).
	Exposed map[string]string
	// Discovered counts the members seen per session group ("mesh",
	// "upstream", "downstream").
	Discovered map[string]int
}

// Build computes the desired model.
func Build(in Input) (Result, error) {
	c := in.Config
	if c == nil {
		return Result{}, errors.New("plan: no configuration")
	}
	local := localAddrs(in.Self.Addrs)
	if len(local) == 0 {
		return Result{}, errors.New("plan: the pod has no IP address (set POD_IPS from status.podIPs)")
	}
	rid, err := RouterID(c, in.Self)
	if err != nil {
		return Result{}, err
	}
	cluster := rid
	if id, ok := c.ExplicitClusterID(); ok {
		cluster = id
	}
	res := Result{Discovered: map[string]int{}}
	m := baseModel(c, rid, local)
	m.Groups = append(m.Groups, meshGroup(in, local, &res))
	if c.Upstream != nil {
		up, err := upstreamGroup(in, local, &res)
		if err != nil {
			return Result{}, err
		}
		m.Groups = append(m.Groups, up)
	}
	explicit := explicitPeers(m.Groups)
	if c.Downstream != nil {
		if g, addrs := downstreamGroup(in, local, cluster, explicit, &res); len(g.Ranges) > 0 {
			m.Groups = append(m.Groups, g)
			explicit = append(explicit, addrs...)
		}
	}
	res.Exposed = exposed(in)
	for _, g := range clientGroups(c, local, explicit, cluster) {
		if _, refused := res.Exposed[g.Name]; !refused {
			m.Groups = append(m.Groups, g)
		}
	}
	applyBoundaryRules(c, m.Groups)
	finishGroups(c, in.Passwords, m.Groups)
	m.Groups = slices.DeleteFunc(m.Groups, func(g model.PeerGroup) bool { _, refused := in.Refused[g.Name]; return refused })
	if in.Draining {
		m = Drained(m)
	}
	res.Model = m
	return res, nil
}

// baseModel: what every session shares (AS, router id, timers, graceful
// restart).
func baseModel(c *config.Config, rid netip.Addr, local []netip.Addr) model.Model {
	m := model.Model{
		ASN:        c.ASN(),
		RouterID:   rid,
		LocalAddrs: local,
		Timers: model.Timers{
			ConnectDelay: c.Timers.ConnectDelay,
			ConnectRetry: c.Timers.ConnectRetry,
			Hold:         c.Timers.Hold,
			Keepalive:    c.Timers.Keepalive,
			ErrorWaitMin: c.Timers.ErrorWaitMin,
			ErrorWaitMax: c.Timers.ErrorWaitMax,
		},
	}
	if gr := c.GracefulRestart; gr.On() {
		m.GracefulRestart = model.GracefulRestart{Enabled: true, RestartTime: gr.RestartTime, LongLived: gr.LongLived, StaleTime: gr.StaleTime}
	}
	return m
}

// meshGroup: every other member of the pod's own group.
func meshGroup(in Input, local []netip.Addr, res *Result) model.PeerGroup {
	c := in.Config
	mesh := model.PeerGroup{Name: string(model.RoleMesh), Role: model.RoleMesh, BFD: bfd(c.Mesh.BFD, c.GracefulRestart.On())}
	for _, mb := range members(in.Snapshot, cmp.Or(c.Mesh.Namespace, in.Self.Namespace), c.Mesh.Group) {
		if isSelf(mb, in.Self) {
			continue
		}
		res.Discovered[string(model.RoleMesh)]++
		mesh.Neighbors = append(mesh.Neighbors, neighbors(mb, local, c.ASN())...)
	}
	return mesh
}

// upstreamGroup: the members of the upstream group this pod peers with
// (chooseUpstream), recorded in res with what they replaced.
func upstreamGroup(in Input, local []netip.Addr, res *Result) (model.PeerGroup, error) {
	c, u := in.Config, in.Config.Upstream
	meshNS := cmp.Or(c.Mesh.Namespace, in.Self.Namespace)
	if u.Group == c.Mesh.Group && cmp.Or(u.Namespace, in.Self.Namespace) == meshNS {
		return model.PeerGroup{}, fmt.Errorf("plan: upstream.group %q in namespace %s is this pod's own group: an upstream must be another group", u.Group, meshNS)
	}
	up := model.PeerGroup{Name: string(model.RoleUpstream), Role: model.RoleUpstream, BFD: bfd(u.BFD, c.GracefulRestart.On())}
	chosen, replaced, seen := chooseUpstream(in, local)
	res.Discovered[string(model.RoleUpstream)] = seen
	for _, mb := range chosen {
		res.Upstream = append(res.Upstream, mb.ID())
		up.Neighbors = append(up.Neighbors, neighbors(mb, local, c.ASN())...)
	}
	res.Replaced = replaced
	return up, nil
}

// downstreamGroup: the RRs of the groups whose Services, in the
// downstream namespaces, name this group as their upstream, admitted as
// RR clients each at its own addresses (one /32 or /128 range per address,
// so the sessions are the ones they open, as with a client range, and no
// other address of the pod network can open one). The addresses are
// returned for the client groups to leave out. Not an upstream or mesh
// member of this group itself.
func downstreamGroup(in Input, local []netip.Addr, cluster netip.Addr, explicit []netip.Addr, res *Result) (model.PeerGroup, []netip.Addr) {
	c := in.Config
	meshNS := cmp.Or(c.Mesh.Namespace, in.Self.Namespace)
	var addrs []netip.Addr
	for _, mb := range in.Snapshot.Members {
		if !slices.Contains(c.Downstream.Namespaces, mb.Namespace) || mb.UpstreamGroup != c.Mesh.Group || cmp.Or(mb.UpstreamNamespace, mb.Namespace) != meshNS {
			continue
		}
		if mb.Group == c.Mesh.Group && mb.Namespace == meshNS {
			continue // a group cannot be its own upstream
		}
		res.Discovered[config.TargetDownstream]++
		for _, a := range mb.Addrs {
			if !slices.Contains(explicit, a) && !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
		}
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	var ranges []netip.Prefix
	for _, a := range addrs {
		ranges = append(ranges, netip.PrefixFrom(a, a.BitLen()))
	}
	ranges = localFamilies(ranges, local)
	return model.PeerGroup{
		Name:            config.TargetDownstream,
		Role:            model.RoleClients,
		Ranges:          ranges,
		Allow:           ranges,
		MaxPrefixes:     c.Downstream.MaxPrefixes,
		MaxPrefixAction: c.Downstream.MaxPrefixAction,
		RRClient:        true,
		ClusterID:       cluster,
	}, addrs
}

// explicitPeers: the addresses of the mesh and upstream neighbors, which
// client ranges must not admit (AllowList).
func explicitPeers(groups []model.PeerGroup) []netip.Addr {
	var explicit []netip.Addr
	for _, g := range groups {
		for _, n := range g.Neighbors {
			explicit = append(explicit, n.Addr)
		}
	}
	return explicit
}

// exposed: the client groups with a range that holds an address of the
// cluster's own networks (Input.ClusterAddrs) and are not Guarded; the
// configured clusterNetworks are checked when the configuration loads.
func exposed(in Input) map[string]string {
	out := map[string]string{}
	for i := range in.Config.Clients {
		cl := &in.Config.Clients[i]
	ranges:
		for _, r := range cl.CompiledRanges() {
			for _, k := range in.ClusterAddrs {
				if r.Contains(k.Addr) {
					if why := in.Config.ClusterExposure(cl.Name, r, k.What); why != "" {
						out[cl.Name] = why
						break ranges
					}
				}
			}
		}
	}
	return out
}

// clientGroups: one group per configured client group, its ranges in the
// pod's address families.
func clientGroups(c *config.Config, local, explicit []netip.Addr, cluster netip.Addr) []model.PeerGroup {
	var out []model.PeerGroup
	for i := range c.Clients {
		cl := &c.Clients[i]
		ranges := localFamilies(cl.CompiledRanges(), local)
		g := model.PeerGroup{
			Name:             cl.Name,
			Role:             model.RoleClients,
			External:         cl.Type == config.ClientExternal,
			Ranges:           ranges,
			Allow:            AllowList(ranges, explicit),
			PeerASNs:         cl.CompiledPeerASNs(),
			Multihop:         cl.Multihop,
			NextHopUnchanged: *cl.NextHopUnchanged,
			MaxPrefixes:      cl.MaxPrefixes,
			MaxPrefixAction:  cl.MaxPrefixAction,
			TTLSecurity:      cl.TTLSecurity,
			AddPaths:         cl.AddPaths,
			BFD:              bfd(cl.BFD, false),
		}
		if g.External {
			g.RouteServer = true
		} else {
			g.RRClient = true
			g.ClusterID = cluster
		}
		g.Export = tierPolicy(cl.Export)
		out = append(out, g)
	}
	return out
}

// finishGroups: the families and TCP-MD5 keys of every group, neighbors
// and groups in a stable order.
func finishGroups(c *config.Config, passwords map[string]string, groups []model.PeerGroup) {
	nlri := slices.Clone(c.Families)
	for i := range groups {
		groups[i].NLRI = nlri
		groups[i].Password = passwords[groups[i].Name]
		slices.SortFunc(groups[i].Neighbors, func(a, b model.Neighbor) int { return a.Addr.Compare(b.Addr) })
	}
	slices.SortFunc(groups, func(a, b model.PeerGroup) int { return cmp.Compare(a.Name, b.Name) })
}

// localAddrs keeps the first address of each family, IPv4 first.
func localAddrs(addrs []netip.Addr) []netip.Addr {
	var v4, v6 netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		switch {
		case a.Is4() && !v4.IsValid():
			v4 = a
		case a.Is6() && !v6.IsValid():
			v6 = a
		}
	}
	var out []netip.Addr
	for _, a := range []netip.Addr{v4, v6} {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// localFamilies keeps the ranges of families the pod has an address in: a
// dual-stack configuration works unchanged on single-stack pods.
func localFamilies(ranges []netip.Prefix, local []netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range ranges {
		if slices.ContainsFunc(local, func(l netip.Addr) bool { return model.FamilyOf(l) == model.FamilyOf(r.Addr()) }) {
			out = append(out, r)
		}
	}
	return out
}

// RouterID applies the configured policy. The default (auto) is the pod's
// IPv4 address, which is unique in the cluster; IPv6-only pods get 32 bits
// of SHA-256(namespace/pod), stable for the pod's name.
func RouterID(c *config.Config, self Self) (netip.Addr, error) {
	if id, ok := c.ExplicitRouterID(); ok {
		return id, nil
	}
	v4 := netip.Addr{}
	if local := localAddrs(self.Addrs); len(local) > 0 && local[0].Is4() {
		v4 = local[0]
	}
	switch c.Identity.RouterID {
	case config.RouterIDPodIPv4:
		if !v4.IsValid() {
			return netip.Addr{}, errors.New("identity.routerID is podIPv4 but the pod has no IPv4 address: use auto, hash or an explicit id")
		}
		return v4, nil
	case config.RouterIDAuto:
		if v4.IsValid() {
			return v4, nil
		}
	}
	sum := sha256.Sum256([]byte(self.Namespace + "/" + self.Name))
	id := netip.AddrFrom4([4]byte(sum[:4]))
	if id.IsUnspecified() {
		id = netip.AddrFrom4([4]byte{0, 0, 0, 1})
	}
	return id, nil
}

// members returns the snapshot's members of one group.
func members(s model.Snapshot, ns, group string) []model.Member {
	var out []model.Member
	for _, m := range s.Members {
		if m.Namespace == ns && m.Group == group {
			out = append(out, m)
		}
	}
	return out
}

func isSelf(m model.Member, self Self) bool {
	if m.Pod != "" && m.Pod == self.Name && m.Namespace == self.Namespace {
		return true
	}
	for _, a := range m.Addrs {
		if slices.Contains(self.Addrs, a) {
			return true
		}
	}
	return false
}

// neighbors makes one session per member address whose family the pod has.
func neighbors(m model.Member, local []netip.Addr, asn model.ASN) []model.Neighbor {
	var out []model.Neighbor
	for _, a := range m.Addrs {
		if slices.ContainsFunc(local, func(l netip.Addr) bool { return model.FamilyOf(l) == model.FamilyOf(a) }) {
			out = append(out, model.Neighbor{Addr: a, ASN: asn, Name: m.ID(), Side: m.Side})
		}
	}
	return out
}

// chooseUpstream computes the balanced assignment over every sibling that
// uses the same upstream group, takes this pod's share, and replaces members
// that are held down or whose sessions stayed down past the grace period.
func chooseUpstream(in Input, local []netip.Addr) (chosen []model.Member, replaced []Replacement, seen int) {
	u := in.Config.Upstream
	upNS := cmp.Or(u.Namespace, in.Self.Namespace)
	all := members(in.Snapshot, upNS, u.Group)
	// a stopping upstream member is replaced at once, but stays configured
	// (draining) while its session is up and the replacement's is not yet:
	// make before break, even with maxPeers 1
	ups := slices.DeleteFunc(slices.Clone(all), func(m model.Member) bool { return m.Terminating })
	seen = len(ups)
	if len(ups) == 0 {
		return bridges(in, all, nil, 0, u.MaxPeers), nil, 0
	}
	byID, cands := candidates(ups)
	self := in.Self.ID()
	a := AssignBounded(siblings(in, upNS), cands, u.MaxPeers, u.Epsilon)
	want := min(u.MaxPeers, len(cands))
	down := upstreamDown(in, byID)
	keep, replaced, excluded := keepUp(a.Choices[self], down)
	if len(keep) < want {
		keep = refill(self, keep, cands, a, want, func(id string) bool {
			if excluded[id] {
				return false
			}
			bad, _ := down(id)
			return !bad
		})
	}
	// Never end with fewer peers than members allow: when every candidate is
	// down or held down, keep trying the best-scoring ones.
	if len(keep) < want {
		keep = refill(self, keep, cands, a, want, func(string) bool { return true })
	}
	for _, id := range keep {
		chosen = append(chosen, byID[id])
	}
	return append(chosen, bridges(in, all, chosen, upCount(in, all, chosen), want)...), replaced, seen
}

// candidates: the upstream members by ID (the first of a duplicated ID)
// and as AssignBounded's candidates.
func candidates(ups []model.Member) (map[string]model.Member, []Candidate) {
	byID := map[string]model.Member{}
	cands := make([]Candidate, 0, len(ups))
	for _, m := range ups {
		if _, dup := byID[m.ID()]; dup {
			continue
		}
		byID[m.ID()] = m
		cands = append(cands, Candidate{ID: m.ID(), Side: m.Side, Node: m.Node})
	}
	return byID, cands
}

// siblings: this pod and every other running member that uses the same
// upstream group, sorted: the balanced assignment is computed over them.
func siblings(in Input, upNS string) []string {
	u := in.Config.Upstream
	sibs := []string{in.Self.ID()}
	for _, m := range in.Snapshot.Members {
		if m.UpstreamGroup == u.Group && cmp.Or(m.UpstreamNamespace, m.Namespace) == upNS && !m.Terminating && !slices.Contains(sibs, m.ID()) && !isSelf(m, in.Self) {
			sibs = append(sibs, m.ID())
		}
	}
	slices.Sort(sibs)
	return sibs
}

// upstreamDown: is an upstream member held down, or configured with no
// session Established for the grace period (and why, for the Event)?
func upstreamDown(in Input, byID map[string]model.Member) func(id string) (bool, string) {
	u := in.Config.Upstream
	return func(id string) (bool, string) {
		if until, ok := in.HoldDown[id]; ok && in.Now.Before(until) {
			return true, ""
		}
		var configured, established bool
		var since time.Time
		for _, addr := range byID[id].Addrs {
			s, ok := in.Sessions[addr]
			if !ok || !s.In(model.RoleUpstream) {
				continue
			}
			configured = true
			established = established || s.Established
			if s.Since.After(since) {
				since = s.Since
			}
		}
		if configured && !established && !since.IsZero() && in.Now.Sub(since) >= u.GracePeriod.Duration {
			return true, fmt.Sprintf("not Established for %s (grace period %s)", in.Now.Sub(since).Round(time.Second), u.GracePeriod.Duration)
		}
		return false, ""
	}
}

// keepUp: the assigned members that are not down; those that are, and
// the replacements (with their reasons) of those that are.
func keepUp(assigned []string, down func(string) (bool, string)) (keep []string, replaced []Replacement, excluded map[string]bool) {
	excluded = map[string]bool{}
	for _, id := range assigned {
		if bad, why := down(id); bad {
			excluded[id] = true
			if why != "" {
				replaced = append(replaced, Replacement{Member: id, Reason: why})
			}
			continue
		}
		keep = append(keep, id)
	}
	return keep, replaced, excluded
}

// upCount: how many chosen members count as up. One counts once its
// session carries as many routes as the sessions it replaces (Established
// alone may be a session whose table has not arrived yet: a full table
// takes seconds), or has been Established for the grace period.
func upCount(in Input, all, chosen []model.Member) int {
	floor := 0
	for _, m := range leaving(in, all, chosen) {
		s, _ := upstreamSession(in, m)
		floor = max(floor, s.Imported)
	}
	up := 0
	for _, m := range chosen {
		if s, ok := upstreamSession(in, m); ok && (s.Imported >= floor || in.Now.Sub(s.Since) >= in.Config.Upstream.GracePeriod.Duration) {
			up++
		}
	}
	return up
}

// leaving are the members the pod has an Established upstream session
// with that the plan no longer chooses: a stopping member, or one the
// balanced choice moved away from (a new member scored higher).
func leaving(in Input, all, chosen []model.Member) []model.Member {
	var out []model.Member
	for _, m := range all {
		if upstreamEstablished(in, m) && !slices.ContainsFunc(chosen, func(c model.Member) bool { return c.ID() == m.ID() }) &&
			!slices.ContainsFunc(out, func(o model.Member) bool { return o.ID() == m.ID() }) {
			out = append(out, m)
		}
	}
	return out
}

// bridges are the leaving upstream members to keep while fewer than want
// chosen sessions are up: make before break, whether the member stops or
// the choice moved; members that stay before stopping ones, at most the
// missing number.
func bridges(in Input, all, chosen []model.Member, up, want int) []model.Member {
	l := leaving(in, all, chosen)
	slices.SortStableFunc(l, func(a, b model.Member) int {
		if a.Terminating == b.Terminating {
			return 0
		}
		if b.Terminating {
			return -1
		}
		return 1
	})
	return l[:max(0, min(len(l), want-up))]
}

// upstreamEstablished: the pod has an Established upstream session with m.
func upstreamEstablished(in Input, m model.Member) bool {
	_, ok := upstreamSession(in, m)
	return ok
}

// upstreamSession is the pod's Established upstream session with m.
func upstreamSession(in Input, m model.Member) (model.Session, bool) {
	for _, a := range m.Addrs {
		if s, ok := in.Sessions[a]; ok && s.In(model.RoleUpstream) && s.Established {
			return s, true
		}
	}
	return model.Session{}, false
}

// refill adds members to keep, best rendezvous score first, preferring
// members below the assignment's cap and on sides/nodes keep does not use.
func refill(self string, keep []string, cands []Candidate, a Assignment, want int, ok func(string) bool) []string {
	order := slices.Clone(cands)
	slices.SortFunc(order, func(x, y Candidate) int { return cmp.Compare(score(self, y.ID), score(self, x.ID)) })
	byID := map[string]Candidate{}
	for _, c := range cands {
		byID[c.ID] = c
	}
	uses := func(f func(Candidate) string, v string) bool {
		return v != "" && slices.ContainsFunc(keep, func(id string) bool { return f(byID[id]) == v })
	}
	side := func(c Candidate) string { return c.Side }
	node := func(c Candidate) string { return c.Node }
	below := func(c Candidate) bool { return a.Load[c.ID] < a.Caps[c.ID] }
	passes := []func(Candidate) bool{
		func(c Candidate) bool { return below(c) && !uses(side, c.Side) && !uses(node, c.Node) },
		func(c Candidate) bool { return below(c) && !uses(node, c.Node) },
		below,
		func(Candidate) bool { return true },
	}
	for _, p := range passes {
		for _, c := range order {
			if len(keep) >= want {
				return keep
			}
			if !slices.Contains(keep, c.ID) && ok(c.ID) && p(c) {
				keep = append(keep, c.ID)
			}
		}
	}
	return keep
}

// bfd is a group's BFD, nil when off. graceful: between meshrr pods (mesh,
// upstream) with graceful restart on, a BFD failure is a session failure
// under graceful restart, as a broken TCP session is: a restarting daemon's
// routes are kept. Towards clients BFD is there to withdraw a dead
// router's routes at once, which graceful handling would defeat for every
// router that announces graceful restart (FRR does by default).
func bfd(b *config.BFD, graceful bool) *model.BFD {
	if !b.On() {
		return nil
	}
	return &model.BFD{Interval: b.Interval.Duration, Multiplier: b.Multiplier, Graceful: graceful}
}

// Drained is m while the pod drains: the graceful-shutdown rule first on
// every export (idempotent). The loop also drains its last applied model
// with it when discovery cannot give it a new one.
func Drained(m model.Model) model.Model {
	if m.Draining {
		return m
	}
	m.Draining = true
	groups := make([]model.PeerGroup, len(m.Groups))
	for i, g := range m.Groups {
		g.Export.Rules = append([]model.Rule{drainRule}, g.Export.Rules...)
		groups[i] = g
	}
	m.Groups = groups
	return m
}

// drainRule runs first on every export while the pod drains (RFC 8326):
// peers that honour GRACEFUL_SHUTDOWN, and iBGP peers through the
// local-preference, prefer every other path before the sessions close.
var drainRule = model.Rule{Name: "graceful-shutdown", Action: model.Action{
	SetLocalPref: new(uint32), AddCommunities: []model.Community{model.GracefulShutdown},
}}

// tierPolicy turns a client export tier into rules.
func tierPolicy(x config.Export) model.Policy {
	prefixes, comms := x.Compiled()
	switch x.Tier {
	case config.TierDefault:
		return model.Policy{DefaultReject: true, Rules: []model.Rule{
			{Name: "tier-default", Match: model.Match{DefaultRoute: true}, Action: model.Action{Accept: true}},
		}}
	case config.TierPartial:
		p := model.Policy{DefaultReject: true}
		if len(prefixes) > 0 {
			p.Rules = append(p.Rules, model.Rule{Name: "tier-partial-prefixes", Match: model.Match{Prefixes: prefixes}, Action: model.Action{Accept: true}})
		}
		if len(comms) > 0 {
			p.Rules = append(p.Rules, model.Rule{Name: "tier-partial-communities", Match: model.Match{Communities: comms}, Action: model.Action{Accept: true}})
		}
		return p
	}
	return model.Policy{}
}

// applyBoundaryRules puts each policy rule, in configuration order, before
// the groups' own tier rules.
func applyBoundaryRules(c *config.Config, groups []model.PeerGroup) {
	for gi := range groups {
		g := &groups[gi]
		var exp, imp []model.Rule
		for _, r := range c.Policy {
			prefixes, comms := r.Compiled()
			remove, add := r.CompiledCommunityActions()
			rule := model.Rule{
				Name:  r.Name,
				Match: model.Match{Communities: comms, Prefixes: prefixes},
				Action: model.Action{
					Reject:            r.Action == config.ActionReject,
					Accept:            r.Action == config.ActionAccept,
					SetLocalPref:      r.SetLocalPref,
					SetMED:            r.SetMED,
					RemoveCommunities: remove,
					AddCommunities:    add,
					Prepend:           r.Prepend,
				},
			}
			if targets(r.Towards, g) {
				exp = append(exp, rule)
			}
			if targets(r.From, g) {
				imp = append(imp, rule)
			}
		}
		g.Export.Rules = append(exp, g.Export.Rules...)
		g.Import.Rules = append(imp, g.Import.Rules...)
	}
}

func targets(list []string, g *model.PeerGroup) bool {
	for _, t := range list {
		switch {
		case t == string(g.Role) && g.Role != model.RoleClients:
			return true
		case g.Role == model.RoleClients && (t == config.TargetClients || t == g.Name):
			return true
		}
	}
	return false
}
