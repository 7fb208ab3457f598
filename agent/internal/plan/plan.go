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
	// Passwords are the TCP-MD5 keys by model group name (secrets), with
	// their rollovers.
	Passwords map[model.GroupName]model.Key
	// Refused session groups (by model group name, with why) get no
	// session: their TCP-MD5 key is missing or malformed.
	Refused map[model.GroupName]string
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
	Exposed map[model.GroupName]string
	// Discovered counts the members seen per session group ("mesh",
	// "upstream", "downstream").
	Discovered map[model.GroupName]int
	// NextKeySwitch is the next time a session switches to its group's
	// next TCP-MD5 key (zero: none to come): plan again then.
	NextKeySwitch time.Time
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
	res := Result{Discovered: map[model.GroupName]int{}}
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
	finishGroups(c, m.Groups)
	res.NextKeySwitch = SetKeys(in, &m)
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
	mesh := model.PeerGroup{Name: model.GroupMesh, Role: model.RoleMesh, BFD: bfd(c.Mesh.BFD, c.GracefulRestart.On())}
	for _, mb := range members(in.Snapshot, cmp.Or(c.Mesh.Namespace, in.Self.Namespace), c.Mesh.Group) {
		if isSelf(mb, in.Self) {
			continue
		}
		res.Discovered[model.GroupMesh]++
		mesh.Neighbors = append(mesh.Neighbors, neighbors(mb, local, c.ASN())...)
	}
	return mesh
}

// upstreamGroup: the members of the upstream group this pod peers with
// (upstreamChoice), recorded in res with what they replaced.
func upstreamGroup(in Input, local []netip.Addr, res *Result) (model.PeerGroup, error) {
	c, u := in.Config, in.Config.Upstream
	meshNS := cmp.Or(c.Mesh.Namespace, in.Self.Namespace)
	if u.Group == c.Mesh.Group && cmp.Or(u.Namespace, in.Self.Namespace) == meshNS {
		return model.PeerGroup{}, fmt.Errorf("plan: upstream.group %q in namespace %s is this pod's own group: an upstream must be another group", u.Group, meshNS)
	}
	up := model.PeerGroup{Name: model.GroupUpstream, Role: model.RoleUpstream, BFD: bfd(u.BFD, c.GracefulRestart.On())}
	chosen, replaced, seen := newUpstreamChoice(in).choose()
	res.Discovered[model.GroupUpstream] = seen
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
		res.Discovered[model.GroupDownstream]++
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
		Name:            model.GroupDownstream,
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
func exposed(in Input) map[model.GroupName]string {
	out := map[model.GroupName]string{}
	for i := range in.Config.Clients {
		cl := &in.Config.Clients[i]
	ranges:
		for _, r := range cl.CompiledRanges() {
			for _, k := range in.ClusterAddrs {
				if r.Contains(k.Addr) {
					if why := in.Config.ClusterExposure(cl.Name, r, k.What); why != "" {
						out[model.GroupName(cl.Name)] = why
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
			Name:             model.GroupName(cl.Name),
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

// finishGroups: the families of every group, neighbors and groups in a
// stable order.
func finishGroups(c *config.Config, groups []model.PeerGroup) {
	nlri := slices.Clone(c.Families)
	for i := range groups {
		groups[i].NLRI = nlri
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

// drainRule runs first on every export while the pod drains (RFC 8326):
// peers that honour GRACEFUL_SHUTDOWN, and iBGP peers through the
// local-preference, prefer every other path before the sessions close.
var drainRule = model.Rule{Name: "graceful-shutdown", Action: model.Action{
	SetLocalPref: new(uint32), AddCommunities: []model.Community{model.GracefulShutdown},
}}
