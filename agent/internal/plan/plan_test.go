package plan

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func mustConfig(t testing.TB, y string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(y))
	require.NoError(t, err)
	return c
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func member(ns, group, pod, side, node string, addrs ...string) model.Member {
	m := model.Member{Namespace: ns, Group: group, Pod: pod, Side: side, Node: node}
	for _, a := range addrs {
		m.Addrs = append(m.Addrs, ip(a))
	}
	return m
}

func group(t *testing.T, m model.Model, name model.GroupName) model.PeerGroup {
	t.Helper()
	for _, g := range m.Groups {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("no group %q in %+v", name, m.Groups)
	return model.PeerGroup{}
}

func addrs(g model.PeerGroup) []string {
	var out []string
	for _, n := range g.Neighbors {
		out = append(out, n.Addr.String())
	}
	return out
}

const coreYAML = `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: core.core}
clients:
  - name: regions
    ranges: [10.244.0.0/16, "fd00:244::/64"]
`

func TestMeshPeersAreEveryOtherMemberOfTheOwnGroupOnly(t *testing.T) {
	in := Input{
		Config: mustConfig(t, coreYAML),
		Self:   Self{Name: "core-a", Namespace: "core", Addrs: []netip.Addr{ip("10.244.1.2"), ip("fd00:244::2")}},
		Snapshot: model.Snapshot{Synced: true, Members: []model.Member{
			member("core", "core.core", "core-a", "", "n1", "10.244.1.2", "fd00:244::2"), // self
			member("core", "core.core", "core-b", "", "n2", "10.244.2.2", "fd00:244::3"),
			member("core", "core.core", "core-c", "", "n3", "10.244.3.2"),
			member("core", "other.group", "x", "", "n3", "10.244.3.9"), // other group
			member("lothl", "core.core", "y", "", "n3", "10.244.3.10"), // same label, other namespace
		}},
		Now: t0,
	}
	res, err := Build(in)
	require.NoError(t, err)
	mesh := group(t, res.Model, "mesh")
	assert.Equal(t, []string{"10.244.2.2", "10.244.3.2", "fd00:244::3"}, addrs(mesh))
	assert.Equal(t, "core/core-b", mesh.Neighbors[0].Name)
	assert.Equal(t, 2, res.Discovered[model.GroupMesh])
	assert.Equal(t, ip("10.244.1.2"), res.Model.RouterID, "auto router id is the pod's IPv4 address")
	assert.Equal(t, []netip.Addr{ip("10.244.1.2"), ip("fd00:244::2")}, res.Model.LocalAddrs)
}

func TestSessionsOnlyForFamiliesThePodHas(t *testing.T) {
	in := Input{
		Config: mustConfig(t, coreYAML),
		Self:   Self{Name: "core-a", Namespace: "core", Addrs: []netip.Addr{ip("fd00:244::2")}},
		Snapshot: model.Snapshot{Synced: true, Members: []model.Member{
			member("core", "core.core", "core-b", "", "n2", "10.244.2.2", "fd00:244::3"),
		}},
	}
	res, err := Build(in)
	require.NoError(t, err)
	assert.Equal(t, []string{"fd00:244::3"}, addrs(group(t, res.Model, "mesh")))
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("fd00:244::/64")}, group(t, res.Model, "regions").Ranges, "no IPv4 range without an IPv4 address")
	// IPv6-only pod: auto falls back to the stable hash of namespace/pod
	again, _ := Build(in)
	assert.Equal(t, res.Model.RouterID, again.Model.RouterID)
	assert.True(t, res.Model.RouterID.Is4())
}

func TestRouterAndClusterIDPolicies(t *testing.T) {
	self := Self{Name: "p", Namespace: "n", Addrs: []netip.Addr{ip("fd00::1")}}
	_, err := Build(Input{Config: mustConfig(t, "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 1, routerID: podIPv4}\nmesh: {group: g}\n"), Self: self})
	require.ErrorContains(t, err, "no IPv4 address")

	res, err := Build(Input{Config: mustConfig(t, "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 1, routerID: 192.0.2.1, clusterID: 192.0.2.100}\nmesh: {group: g}\nclients: [{name: c, ranges: [10.0.0.0/8]}]\n"), Self: self})
	require.NoError(t, err)
	assert.Equal(t, ip("192.0.2.1"), res.Model.RouterID)
	assert.Equal(t, ip("192.0.2.100"), group(t, res.Model, "c").ClusterID)

	res, err = Build(Input{Config: mustConfig(t, "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 1}\nmesh: {group: g}\nclients: [{name: c, ranges: [10.0.0.0/8]}]\n"), Self: Self{Name: "p", Namespace: "n", Addrs: []netip.Addr{ip("10.1.1.1")}}})
	require.NoError(t, err)
	assert.Equal(t, ip("10.1.1.1"), group(t, res.Model, "c").ClusterID, "default cluster id follows the router id")

	_, err = Build(Input{Config: mustConfig(t, coreYAML), Self: Self{Name: "p", Namespace: "n"}})
	require.ErrorContains(t, err, "no IP address")
}

func TestAllowListIsRangesMinusEveryExplicitPeer(t *testing.T) {
	in := Input{
		Config: mustConfig(t, coreYAML),
		Self:   Self{Name: "core-a", Namespace: "core", Addrs: []netip.Addr{ip("10.244.1.2"), ip("fd00:244::2")}},
		Snapshot: model.Snapshot{Synced: true, Members: []model.Member{
			member("core", "core.core", "core-b", "", "n2", "10.244.0.1", "fd00:244::3"),
		}},
	}
	res, err := Build(in)
	require.NoError(t, err)
	cl := group(t, res.Model, "regions")
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:244::/64")}, cl.Ranges)
	var got []string
	for _, p := range cl.Allow {
		got = append(got, p.String())
	}
	assert.Contains(t, got, "10.244.0.0/32")
	assert.Contains(t, got, "10.244.128.0/17")
	assert.Contains(t, got, "fd00:244::2/128", "the pod's own address is not a peer and stays allowed")
	assert.Contains(t, got, "fd00:244::/127")
	for _, p := range cl.Allow {
		assert.False(t, p.Contains(ip("10.244.0.1")), "%s contains a mesh peer", p)
		assert.False(t, p.Contains(ip("fd00:244::3")), "%s contains a mesh peer", p)
	}
	assert.Len(t, cl.Allow, 16+64, "minimal set: one prefix per bit below each excluded /32 and /128")
	assert.True(t, cl.RRClient)
	assert.False(t, cl.External)
}

func TestAllowListTable(t *testing.T) {
	p := netip.MustParsePrefix
	cases := []struct {
		name    string
		ranges  []netip.Prefix
		exclude []netip.Addr
		want    []netip.Prefix
	}{
		{"no exclusion", []netip.Prefix{p("10.0.0.0/24")}, nil, []netip.Prefix{p("10.0.0.0/24")}},
		{"outside range", []netip.Prefix{p("10.0.0.0/24")}, []netip.Addr{ip("10.0.1.1")}, []netip.Prefix{p("10.0.0.0/24")}},
		{"last address", []netip.Prefix{p("10.0.0.0/30")}, []netip.Addr{ip("10.0.0.3")}, []netip.Prefix{p("10.0.0.0/31"), p("10.0.0.2/32")}},
		{"whole range", []netip.Prefix{p("10.0.0.1/32")}, []netip.Addr{ip("10.0.0.1")}, nil},
		{"adjacent ranges merge", []netip.Prefix{p("10.0.0.0/25"), p("10.0.0.128/25")}, nil, []netip.Prefix{p("10.0.0.0/24")}},
		{"v6", []netip.Prefix{p("fd00::/126")}, []netip.Addr{ip("fd00::")}, []netip.Prefix{p("fd00::1/128"), p("fd00::2/127")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, AllowList(tc.ranges, tc.exclude))
		})
	}
}

const regionYAML = `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: lothl.lothlorien}
upstream: {group: core.core, namespace: core, maxPeers: 2, gracePeriod: 60s, holdDown: 5m}
clients: [{name: routers, ranges: [172.19.0.0/16]}]
policy:
  - {name: keep-101-in-region, towards: [upstream], matchCommunities: ["65000:101"], action: reject}
  - {name: depref-102-outside, towards: [upstream], matchCommunities: ["65000:102"], setLocalPref: 20}
  - {name: tag-from-clients, from: [routers], matchPrefixes: [{prefix: 172.19.0.0/16, maxLength: 32}], action: accept}
`

func coreMembers() []model.Member {
	return []model.Member{
		member("core", "core.core", "core-a-0", "a", "w1", "10.244.1.10"),
		member("core", "core.core", "core-a-1", "a", "w2", "10.244.2.10"),
		member("core", "core.core", "core-b-0", "b", "w3", "10.244.3.10"),
		member("core", "core.core", "core-b-1", "b", "w4", "10.244.4.10"),
	}
}

func regionInput(t *testing.T) Input {
	snap := model.Snapshot{Synced: true, Members: coreMembers()}
	for i := range 6 {
		m := member("lothl", "lothl.lothlorien", fmt.Sprintf("rr-%d", i), "", "w1", fmt.Sprintf("10.244.5.%d", i+1))
		m.UpstreamGroup, m.UpstreamNamespace = "core.core", "core"
		snap.Members = append(snap.Members, m)
	}
	return Input{
		Config:   mustConfig(t, regionYAML),
		Self:     Self{Name: "rr-0", Namespace: "lothl", Addrs: []netip.Addr{ip("10.244.5.1")}},
		Snapshot: snap,
		Now:      t0,
	}
}

func TestUpstreamChoiceIsDeterministicAndSpreadsSides(t *testing.T) {
	in := regionInput(t)
	res, err := Build(in)
	require.NoError(t, err)
	require.Len(t, res.Upstream, 2)
	up := group(t, res.Model, "upstream")
	require.Len(t, up.Neighbors, 2)
	assert.NotEqual(t, up.Neighbors[0].Side, up.Neighbors[1].Side, "one member per side")
	assert.Equal(t, 4, res.Discovered[model.GroupUpstream])
	assert.Equal(t, 5, res.Discovered[model.GroupMesh])

	// the same sets in another order give the same choice
	rev := in
	rev.Snapshot.Members = append([]model.Member(nil), in.Snapshot.Members...)
	for i, j := 0, len(rev.Snapshot.Members)-1; i < j; i, j = i+1, j-1 {
		rev.Snapshot.Members[i], rev.Snapshot.Members[j] = rev.Snapshot.Members[j], rev.Snapshot.Members[i]
	}
	res2, err := Build(rev)
	require.NoError(t, err)
	assert.Equal(t, res.Upstream, res2.Upstream)
}

func TestEveryRegionRRComputesTheSameBalancedAssignment(t *testing.T) {
	in := regionInput(t)
	load := map[string]int{}
	for i := range 6 {
		self := in
		self.Self = Self{Name: fmt.Sprintf("rr-%d", i), Namespace: "lothl", Addrs: []netip.Addr{ip(fmt.Sprintf("10.244.5.%d", i+1))}}
		res, err := Build(self)
		require.NoError(t, err)
		for _, id := range res.Upstream {
			load[id]++
		}
	}
	// 6 RRs x 2 peers over 4 core RRs: mean 3, cap ceil(1.1*3) = 4
	total := 0
	for id, n := range load {
		assert.LessOrEqual(t, n, 4, "%s over the cap", id)
		total += n
	}
	assert.Equal(t, 12, total)
}

func TestHealthyUpstreamPeersAreKeptAndDownOnesReplacedAfterGrace(t *testing.T) {
	in := regionInput(t)
	first, err := Build(in)
	require.NoError(t, err)
	bad := first.Upstream[0]
	var badAddr netip.Addr
	for _, m := range in.Snapshot.Members {
		if m.ID() == bad {
			badAddr = m.Addrs[0]
		}
	}
	in.Sessions = map[netip.Addr]model.Session{}
	for _, n := range group(t, first.Model, "upstream").Neighbors {
		in.Sessions[n.Addr] = model.Session{Group: "upstream", Peer: n.Addr, State: "Established", Since: t0}
	}
	in.Sessions[badAddr] = model.Session{Group: "upstream", Peer: badAddr, State: "Active", Since: t0}

	// within the grace period: sticky
	in.Now = t0.Add(59 * time.Second)
	res, err := Build(in)
	require.NoError(t, err)
	assert.Equal(t, first.Upstream, res.Upstream)
	assert.Empty(t, res.Replaced)

	// past it: replaced by another member, on the side the kept one does not use
	in.Now = t0.Add(61 * time.Second)
	res, err = Build(in)
	require.NoError(t, err)
	require.Len(t, res.Replaced, 1)
	assert.Equal(t, bad, res.Replaced[0].Member)
	assert.Contains(t, res.Replaced[0].Reason, "not Established for 1m1s")
	assert.NotContains(t, res.Upstream, bad)
	assert.Contains(t, res.Upstream, first.Upstream[1], "the healthy peer stays")
	require.Len(t, res.Upstream, 2)
	up := group(t, res.Model, "upstream")
	assert.NotEqual(t, up.Neighbors[0].Side, up.Neighbors[1].Side)

	// held down: the replaced member stays out even after its session is gone
	delete(in.Sessions, badAddr)
	in.HoldDown = map[string]time.Time{bad: in.Now.Add(5 * time.Minute)}
	res2, err := Build(in)
	require.NoError(t, err)
	assert.Equal(t, res.Upstream, res2.Upstream)
	assert.Empty(t, res2.Replaced)

	// hold-down expired: back to the balanced choice
	in.Now = in.Now.Add(6 * time.Minute)
	res3, err := Build(in)
	require.NoError(t, err)
	assert.Equal(t, first.Upstream, res3.Upstream)
}

func TestUpstreamKeepsTryingWhenEveryMemberIsDown(t *testing.T) {
	in := regionInput(t)
	in.HoldDown = map[string]time.Time{}
	for _, m := range coreMembers() {
		in.HoldDown[m.ID()] = t0.Add(time.Hour)
	}
	res, err := Build(in)
	require.NoError(t, err)
	assert.Len(t, res.Upstream, 2, "never zero upstream peers while members exist")
}

func TestUpstreamLeavingDiscoveryIsReplaced(t *testing.T) {
	in := regionInput(t)
	first, err := Build(in)
	require.NoError(t, err)
	var kept []model.Member
	for _, m := range in.Snapshot.Members {
		if m.ID() != first.Upstream[0] {
			kept = append(kept, m)
		}
	}
	in.Snapshot.Members = kept
	res, err := Build(in)
	require.NoError(t, err)
	assert.Len(t, res.Upstream, 2)
	assert.NotContains(t, res.Upstream, first.Upstream[0])
}

// A stopping (terminating) upstream member is replaced at once, while it
// still drains: make before break. A stopping mesh member stays meshed
// until it is gone.
func TestStoppingMembersStayMeshedButAreNotChosenUpstream(t *testing.T) {
	in := regionInput(t)
	first, err := Build(in)
	require.NoError(t, err)
	for i, m := range in.Snapshot.Members {
		if m.ID() == first.Upstream[0] {
			in.Snapshot.Members[i].Terminating = true
		}
	}
	res, err := Build(in)
	require.NoError(t, err)
	assert.Len(t, res.Upstream, 2)
	assert.NotContains(t, res.Upstream, first.Upstream[0])

	mesh := Input{
		Config: mustConfig(t, coreYAML),
		Self:   Self{Name: "core-a", Namespace: "core", Addrs: []netip.Addr{ip("10.244.1.2")}},
		Snapshot: model.Snapshot{Synced: true, Members: []model.Member{
			member("core", "core.core", "core-a", "", "n1", "10.244.1.2"),
			member("core", "core.core", "core-b", "", "n2", "10.244.2.2"),
		}},
		Now: t0,
	}
	mesh.Snapshot.Members[1].Terminating = true
	res, err = Build(mesh)
	require.NoError(t, err)
	assert.Equal(t, []string{"10.244.2.2"}, addrs(group(t, res.Model, "mesh")))
}

func TestDrainingExportsStartWithTheGracefulShutdownRule(t *testing.T) {
	in := regionInput(t)
	in.Draining = true
	res, err := Build(in)
	require.NoError(t, err)
	require.True(t, res.Model.Draining)
	for _, g := range res.Model.Groups {
		require.NotEmpty(t, g.Export.Rules, g.Name)
		r := g.Export.Rules[0]
		assert.Equal(t, "graceful-shutdown", r.Name)
		assert.Equal(t, []model.Community{model.GracefulShutdown}, r.Action.AddCommunities)
		require.NotNil(t, r.Action.SetLocalPref)
		assert.Zero(t, *r.Action.SetLocalPref)
		assert.False(t, r.Action.Accept || r.Action.Reject, "the group's own policy still runs after it")
	}
	assert.True(t, res.Model.GracefulRestart.Enabled, "graceful restart is on by default")
	assert.Equal(t, 120, res.Model.GracefulRestart.RestartTime)
}

func TestBoundaryPoliciesAndTiers(t *testing.T) {
	in := regionInput(t)
	res, err := Build(in)
	require.NoError(t, err)
	up := group(t, res.Model, "upstream")
	lp := uint32(20)
	assert.Equal(t, model.Policy{Rules: []model.Rule{
		{Name: "keep-101-in-region", Match: model.Match{Communities: []model.Community{{A: 65000, B: 101}}}, Action: model.Action{Reject: true}},
		{Name: "depref-102-outside", Match: model.Match{Communities: []model.Community{{A: 65000, B: 102}}}, Action: model.Action{SetLocalPref: &lp}},
	}}, up.Export)
	assert.True(t, up.Import.Empty())
	assert.True(t, group(t, res.Model, "mesh").Export.Empty(), "rules towards upstream do not touch the mesh")
	routers := group(t, res.Model, "routers")
	require.Len(t, routers.Import.Rules, 1)
	assert.Equal(t, "tag-from-clients", routers.Import.Rules[0].Name)
	assert.Equal(t, 32, routers.Import.Rules[0].Match.Prefixes[0].MaxLen)

	tiers := mustConfig(t, `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: g}
clients:
  - {name: full, ranges: [10.1.0.0/16]}
  - {name: partial, ranges: [10.2.0.0/16], export: {tier: partial, prefixes: [{prefix: 10.0.0.0/8, maxLength: 24}], communities: ["65000:500"]}}
  - {name: dflt, ranges: [10.3.0.0/16], export: {tier: default}}
  - {name: rs, type: external, ranges: [10.4.0.0/16], peerASNs: ["65100-65199"], multihop: 3}
policy:
  - {name: no-bogons, towards: [clients], matchPrefixes: [{prefix: 192.168.0.0/16, maxLength: 32}], action: reject}
`)
	res, err = Build(Input{Config: tiers, Self: Self{Name: "p", Namespace: "n", Addrs: []netip.Addr{ip("10.9.0.1")}}})
	require.NoError(t, err)
	assert.Equal(t, []string{"no-bogons"}, ruleNames(group(t, res.Model, "full").Export))
	assert.False(t, group(t, res.Model, "full").Export.DefaultReject)
	p := group(t, res.Model, "partial").Export
	assert.Equal(t, []string{"no-bogons", "tier-partial-prefixes", "tier-partial-communities"}, ruleNames(p))
	assert.True(t, p.DefaultReject)
	d := group(t, res.Model, "dflt").Export
	assert.Equal(t, []string{"no-bogons", "tier-default"}, ruleNames(d))
	assert.True(t, d.Rules[1].Match.DefaultRoute)
	rs := group(t, res.Model, "rs")
	assert.True(t, rs.External && rs.RouteServer && rs.NextHopUnchanged)
	assert.False(t, rs.RRClient)
	assert.Equal(t, 3, rs.Multihop)
	assert.Equal(t, []model.ASNRange{{Min: 65100, Max: 65199}}, rs.PeerASNs)
}

func ruleNames(p model.Policy) []string {
	var out []string
	for _, r := range p.Rules {
		out = append(out, r.Name)
	}
	return out
}

func TestGroupsAreSortedAndStable(t *testing.T) {
	in := regionInput(t)
	a, err := Build(in)
	require.NoError(t, err)
	b, err := Build(in)
	require.NoError(t, err)
	assert.Equal(t, a.Model, b.Model)
	var names []model.GroupName
	for _, g := range a.Model.Groups {
		names = append(names, g.Name)
	}
	assert.Equal(t, []model.GroupName{"mesh", "routers", "upstream"}, names)
}

// The validation cannot see the pod's namespace: an upstream naming the
// pod's own group through an explicit namespace is refused at plan time.
func TestTheOwnGroupIsNeverItsUpstream(t *testing.T) {
	in := Input{
		Config: mustConfig(t, "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core}\nupstream: {group: core.core, namespace: core}\n"),
		Self:   Self{Name: "core-a", Namespace: "core", Addrs: []netip.Addr{ip("10.244.1.2")}},
		Snapshot: model.Snapshot{Synced: true, Members: []model.Member{
			member("core", "core.core", "core-a", "", "n1", "10.244.1.2"),
			member("core", "core.core", "core-b", "", "n2", "10.244.2.2"),
		}},
		Now: t0,
	}
	_, err := Build(in)
	require.ErrorContains(t, err, `upstream.group "core.core" in namespace core is this pod's own group`)
	in.Self.Namespace = "other" // the same group name in another namespace is another group
	in.Config = mustConfig(t, "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core}\nupstream: {group: core.core, namespace: core}\n")
	_, err = Build(in)
	require.NoError(t, err)
}

// Make before break upstream: with maxPeers 1 a stopping upstream member
// whose session is up stays configured beside its replacement until the
// replacement's session is Established and carries as many routes as the
// stopping member's; then it goes. When every member stops, the
// Established ones stay while they drain.
func TestAStoppingUpstreamStaysUntilItsReplacementIsUp(t *testing.T) {
	cfg := "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: lothl.lothlorien}\nupstream: {group: core.core, namespace: core, maxPeers: 1}\n"
	self := Self{Name: "rr-0", Namespace: "lothl", Addrs: []netip.Addr{ip("10.244.5.1")}}
	a := member("core", "core.core", "core-a-0", "a", "n1", "10.244.1.10")
	b := member("core", "core.core", "core-b-0", "b", "n2", "10.244.2.10")
	up := func(addrs ...string) map[netip.Addr]model.Session {
		m := map[netip.Addr]model.Session{}
		for _, s := range addrs {
			m[ip(s)] = model.Session{Group: "upstream", Peer: ip(s), State: "Established", Since: t0}
		}
		return m
	}
	plan := func(ms []model.Member, ss map[netip.Addr]model.Session) []string {
		res, err := Build(Input{Config: mustConfig(t, cfg), Self: self, Now: t0, Sessions: ss,
			Snapshot: model.Snapshot{Synced: true, Members: append([]model.Member{member("lothl", "lothl.lothlorien", "rr-0", "", "n3", "10.244.5.1")}, ms...)}})
		require.NoError(t, err)
		return addrs(group(t, res.Model, "upstream"))
	}
	first := plan([]model.Member{a, b}, nil)
	require.Len(t, first, 1)
	cur, other := a, b
	if first[0] == b.Addrs[0].String() {
		cur, other = b, a
	}
	cur.Terminating = true
	assert.ElementsMatch(t, []string{cur.Addrs[0].String(), other.Addrs[0].String()},
		plan([]model.Member{cur, other}, up(cur.Addrs[0].String())), "the stopping member bridges until the replacement is up")
	assert.Equal(t, []string{other.Addrs[0].String()},
		plan([]model.Member{cur, other}, up(cur.Addrs[0].String(), other.Addrs[0].String())), "then it goes")
	assert.Equal(t, []string{other.Addrs[0].String()},
		plan([]model.Member{cur, other}, nil), "a stopping member whose session is down is not kept")
	// Established is not enough: the replacement must carry the table the
	// stopping member still does (a full table arrives over seconds)
	loading := up(cur.Addrs[0].String(), other.Addrs[0].String())
	old, repl := loading[cur.Addrs[0]], loading[other.Addrs[0]]
	old.Imported, repl.Imported = 1_000_000, 400_000
	loading[cur.Addrs[0]], loading[other.Addrs[0]] = old, repl
	assert.ElementsMatch(t, []string{cur.Addrs[0].String(), other.Addrs[0].String()},
		plan([]model.Member{cur, other}, loading), "the stopping member bridges while the replacement's table arrives")
	repl.Imported = 1_000_000
	loading[other.Addrs[0]] = repl
	assert.Equal(t, []string{other.Addrs[0].String()}, plan([]model.Member{cur, other}, loading), "then it goes")

	other.Terminating = true
	assert.Equal(t, []string{cur.Addrs[0].String()},
		plan([]model.Member{cur, other}, up(cur.Addrs[0].String())), "every member stopping: the Established one stays while it drains")

	// the balanced choice moves to a new member that scores higher (seen in
	// e2e: a side's replacement pod became ready and won): the current
	// upstream stays until the new one is up, even though nothing stops
	cur.Terminating, other.Terminating = false, false
	require.Equal(t, []string{cur.Addrs[0].String()}, plan([]model.Member{cur}, up(cur.Addrs[0].String())))
	moved := false
	for i := range 32 {
		x := member("core", "core.core", fmt.Sprintf("core-x-%d", i), "", "n9", fmt.Sprintf("10.244.9.%d", i+1))
		if plan([]model.Member{cur, x}, nil)[0] != x.Addrs[0].String() {
			continue // cur still wins
		}
		moved = true
		assert.ElementsMatch(t, []string{cur.Addrs[0].String(), x.Addrs[0].String()},
			plan([]model.Member{cur, x}, up(cur.Addrs[0].String())), "the current upstream bridges until the new choice is up")
		assert.Equal(t, []string{x.Addrs[0].String()},
			plan([]model.Member{cur, x}, up(cur.Addrs[0].String(), x.Addrs[0].String())), "then it goes")
		break
	}
	require.True(t, moved, "no member out of 32 outscored the current upstream")
}

// A core with downstream namespaces admits exactly the RRs whose release's
// Service in those namespaces names the core as upstream, each at its own
// addresses: not a pod of another namespace carrying the same labels, not
// a group of a granted namespace with another upstream.
func TestDownstreamAdmitsOnlyTheDiscoveredRegionRRsAtTheirAddresses(t *testing.T) {
	c := mustConfig(t, `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: core.core}
downstream: {namespaces: [lothlorien, mirkwood], maxPrefixes: 1000}
clients:
  - name: routers
    ranges: [10.244.9.0/24]
`)
	region := func(ns, pod, upGroup, upNS string, addrs ...string) model.Member {
		m := member(ns, ns+"."+ns, pod, "", "n1", addrs...)
		m.UpstreamGroup, m.UpstreamNamespace = upGroup, upNS
		return m
	}
	in := Input{
		Config: c,
		Self:   Self{Name: "core-a", Namespace: "core", Addrs: []netip.Addr{ip("10.244.1.2")}},
		Snapshot: model.Snapshot{Synced: true, Members: []model.Member{
			member("core", "core.core", "core-b", "", "n2", "10.244.2.2"),
			region("lothlorien", "l-1", "core.core", "core", "10.244.3.5", "fd00:244::5"),
			region("mirkwood", "m-1", "core.core", "core", "10.244.9.7"),  // inside the routers' range
			region("mirkwood", "m-2", "other.core", "core", "10.244.3.8"), // another upstream
			region("evil", "e-1", "core.core", "core", "10.244.3.9"),      // a namespace not granted
			region("lothlorien", "l-2", "core.core", "elsewhere", "10.244.3.10"),
		}},
		Now: t0,
	}
	res, err := Build(in)
	require.NoError(t, err)
	d := group(t, res.Model, "downstream")
	assert.Equal(t, model.RoleClients, d.Role)
	assert.True(t, d.RRClient)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.244.3.5/32"), netip.MustParsePrefix("10.244.9.7/32")}, d.Ranges, "one /32 per discovered RR address; no IPv6 without a local IPv6 address")
	assert.Equal(t, d.Ranges, d.Allow)
	assert.Equal(t, 1000, d.MaxPrefixes)
	assert.Equal(t, config.LimitRestart, d.MaxPrefixAction)
	assert.Equal(t, 2, res.Discovered["downstream"])
	assert.NotContains(t, group(t, res.Model, "routers").Allow, netip.MustParsePrefix("10.244.9.0/24"), "the downstream RR's address is left out of the client range")

	in.Snapshot.Members = in.Snapshot.Members[:1]
	res, err = Build(in)
	require.NoError(t, err)
	for _, g := range res.Model.Groups {
		assert.NotEqual(t, "downstream", g.Name, "no downstream RR discovered: no session group and nothing admitted")
	}
}

// A client range that holds an address of the cluster's own networks (the
// pod network, the API server's Service) admits any pod: its group gets no
// session, unless its TCP-MD5 key is required and an import policy filters
// what it announces; the routers' range elsewhere is untouched.
func TestClientRangeOverTheClusterNetworksIsRefusedUnlessGuarded(t *testing.T) {
	cluster := []ClusterAddr{{Addr: ip("10.244.1.2"), What: "this pod's address 10.244.1.2 (the pod network)"}, {Addr: ip("10.96.0.1"), What: "the API server's Service address"}}
	in := func(y string) Input {
		return Input{
			Config:       mustConfig(t, "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core}\n"+y),
			Self:         Self{Name: "core-a", Namespace: "core", Addrs: []netip.Addr{ip("10.244.1.2")}},
			Snapshot:     model.Snapshot{Synced: true},
			ClusterAddrs: cluster,
		}
	}
	res, err := Build(in("clients: [{name: pods, ranges: [10.244.0.0/16]}, {name: svc, ranges: [10.96.0.0/12]}, {name: routers, ranges: [172.18.0.0/16]}]\n"))
	require.NoError(t, err)
	assert.Contains(t, res.Exposed["pods"], "10.244.0.0/16 overlaps this pod's address 10.244.1.2 (the pod network): any pod of the cluster could open a session")
	assert.Contains(t, res.Exposed["pods"], "tcpMD5Secret, key client-pods")
	assert.Contains(t, res.Exposed["svc"], "the API server's Service address")
	assert.NotContains(t, res.Exposed, model.GroupName("routers"))
	var names []model.GroupName
	for _, g := range res.Model.Groups {
		names = append(names, g.Name)
	}
	assert.Equal(t, []model.GroupName{"mesh", "routers"}, names, "the refused groups get no session")

	// guarded: the key required and an import policy from the group
	res, err = Build(in("passwordDir: /k\nclients: [{name: pods, ranges: [10.244.0.0/16]}]\npolicy: [{name: only-ours, from: [pods], matchPrefixes: [{prefix: 10.99.0.0/16, maxLength: 24}], action: accept}, {name: rest, from: [pods], action: reject}]\n"))
	require.NoError(t, err)
	assert.Empty(t, res.Exposed)
	group(t, res.Model, "pods")
	// the key alone is not enough, nor the policy alone
	res, err = Build(in("passwordDir: /k\nclients: [{name: pods, ranges: [10.244.0.0/16]}]\n"))
	require.NoError(t, err)
	assert.Contains(t, res.Exposed, model.GroupName("pods"))
	res, err = Build(in("clients: [{name: pods, ranges: [10.244.0.0/16]}]\npolicy: [{name: rest, from: [clients], action: reject}]\n"))
	require.NoError(t, err)
	assert.Contains(t, res.Exposed, model.GroupName("pods"))
}
