package bird_test

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/testutil/birdlab"
)

// Addresses of this file: 127.0.10.96/27.
const featuresCfg = `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: edge.edge}
clients:
  - {name: routers, ranges: [127.0.10.96/29]}
  - {name: paths, ranges: [127.0.10.104/29], addPaths: 2}
  - {name: transit, type: external, ranges: [127.0.10.112/29], peerASNs: ["64512"], multihop: 2}
policy:
  - name: retag-large
    towards: [transit]
    matchCommunities: ["65000:1:103"]
    removeCommunities: ["65000:1:103", "65000:199"]
    addCommunities: ["65000:2:103"]
  - name: prepend-to-transit
    towards: [transit]
    matchPrefixes: [{prefix: 10.103.0.0/24}]
    prepend: 2
    setMED: 10
    action: accept
  - name: med-from-routers
    from: [routers]
    matchPrefixes: [{prefix: 10.200.0.0/24}]
    setMED: 50
`

// featureRouter is a BIRD router of the test: local address, AS, routes it
// announces (static, with their attribute statements) and channel options.
func featureRouter(t *testing.T, name, addr string, asn int, routes map[string]string, channel string) *birdlab.Instance {
	in := birdlab.Start(t, name, addr)
	var b strings.Builder
	if len(routes) > 0 {
		b.WriteString("protocol static announce {\n  ipv4;\n")
		for p, attrs := range routes {
			fmt.Fprintf(&b, "  route %s blackhole { %s };\n", p, attrs)
		}
		b.WriteString("}\n")
	}
	fmt.Fprintf(&b, `protocol bgp to_rr {
  local %s as %d;
  neighbor 127.0.10.100 as 65000;
  multihop 2;
  strict bind yes;
  connect delay time 1;
  connect retry time 1;
  ipv4 { import all; export %s; %s };
}
`, addr, asn, map[bool]string{true: "all", false: "none"}[len(routes) > 0], channel)
	in.AddInclude(t, name, b.String())
	return in
}

// paths returns the BGP next hop of every route in `show route PREFIX all`
// output, one per path.
func paths(out string) []string {
	var nextHops []string
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), birdlab.Attr("next_hop")+": "); ok {
			nextHops = append(nextHops, v)
		}
	}
	return nextHops
}

// TestPolicyActionsAndAddPathsWithRealBIRD: one RR rendered by the plan and
// this backend, between real BIRD routers. Two routers announce the same
// prefix; a client of the addPaths group holds both paths, a plain client
// one. Towards an external client group a large community is re-tagged, a
// standard one removed, the local AS prepended twice and the MED set; a
// MED set on import reaches the iBGP clients.
func TestPolicyActionsAndAddPathsWithRealBIRD(t *testing.T) {
	r := &rr{lab: birdlab.Start(t, "edge-0", "127.0.10.100"), pod: "edge-0", ns: "edge"}
	r.apply(t, model.Snapshot{Synced: true, Members: []model.Member{{Namespace: "edge", Group: "edge.edge", Pod: "edge-0", Addrs: []netip.Addr{netip.MustParseAddr("127.0.10.100")}}}}, featuresCfg)
	featureRouter(t, "origin1", "127.0.10.97", 65000, map[string]string{
		"10.200.0.0/24": "",
		"10.103.0.0/24": "bgp_large_community.add((65000,1,103)); bgp_community.add((65000,199)); bgp_community.add((65000,7));",
	}, "")
	featureRouter(t, "origin2", "127.0.10.98", 65000, map[string]string{"10.200.0.0/24": ""}, "")
	plain := featureRouter(t, "plain", "127.0.10.99", 65000, nil, "")
	multi := featureRouter(t, "multi", "127.0.10.105", 65000, nil, "add paths rx;")
	transit := featureRouter(t, "transit", "127.0.10.113", 64512, nil, "")

	t.Cleanup(func() {
		if t.Failed() {
			for _, in := range []*birdlab.Instance{r.lab, plain, multi} {
				t.Logf("%s: show route all\n%s", in.Name, in.Must(t, "show route all"))
			}
		}
	})
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.ElementsMatch(c, []string{"127.0.10.97", "127.0.10.98"}, paths(route(c, multi, "10.200.0.0/24")), "the addPaths client holds both paths")
		out := route(c, plain, "10.200.0.0/24")
		assert.Len(c, paths(out), 1, "a client without addPaths holds the best path only")
		assert.Contains(c, out, birdlab.Attr("med")+": 50", "MED set on import from the routers")

		out = route(c, transit, "10.103.0.0/24")
		assert.Contains(c, out, birdlab.Attr("as_path")+": 65000 65000", "local AS prepended twice towards transit")
		assert.Contains(c, out, birdlab.Attr("med")+": 10")
		assert.Contains(c, out, "(65000, 2, 103)", "large community re-tagged")
		assert.NotContains(c, out, "(65000, 1, 103)", "the original large community removed")
		assert.Contains(c, out, "(65000,7)", "other communities kept")
		assert.NotContains(c, out, "(65000,199)", "standard community removed")

		out = route(c, transit, "10.200.0.0/24")
		assert.Len(c, paths(out), 1, "transit receives the other prefix too, unchanged by the prefix-bound rule")
		assert.NotContains(c, out, birdlab.Attr("as_path")+": 65000", "no prepend outside the matched prefix")
	}, 30*time.Second, 200*time.Millisecond)
	t.Logf("transit's view of 10.103.0.0/24:\n%s", route(t, transit, "10.103.0.0/24"))
}

// Addresses of the BFD test: 127.0.10.128/27.
const bfdCfg = `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: edge.edge}
timers: {hold: 6, keepalive: 2}
clients:
  - {name: fast, ranges: [127.0.10.128/29], bfd: {enabled: true}}
  - {name: plain, ranges: [127.0.10.136/29]}
`

// bfdRouter is a BIRD router announcing prefix to the RR at 127.0.10.140,
// with BFD (200 ms x 3, as the RR's default) or without.
func bfdRouter(t *testing.T, name, addr, prefix string, bfd bool) *birdlab.Instance {
	in := birdlab.Start(t, name, addr)
	var b strings.Builder
	fmt.Fprintf(&b, "protocol static announce {\n  ipv4;\n  route %s blackhole;\n}\n", prefix)
	if bfd {
		b.WriteString("protocol bfd {\n  strict bind yes;\n}\n")
	}
	fmt.Fprintf(&b, `protocol bgp to_rr {
  local %s as 65000;
  neighbor 127.0.10.140 as 65000;
  strict bind yes;
  connect delay time 1;
  connect retry time 1;
  hold time 6;
  keepalive time 2;
  %s
  ipv4 { import none; export all; };
}
`, addr, map[bool]string{true: "bfd { min rx interval 200 ms; min tx interval 200 ms; multiplier 3; };", false: ""}[bfd])
	in.AddInclude(t, name, b.String())
	return in
}

// TestBFDWithdrawsAFrozenRoutersRoutesBeforeTheHoldTimer: two routers,
// one with BFD (the RR's client group has it on, 200 ms x 3) and one
// without, are frozen at the same moment (SIGSTOP: the process stops
// answering, the kernel keeps the TCP session open). The RR withdraws the
// BFD router's route after the BFD detection time and the other's after
// the hold time (6 s here): both times and their ratio are printed.
func TestBFDWithdrawsAFrozenRoutersRoutesBeforeTheHoldTimer(t *testing.T) {
	r := &rr{lab: birdlab.Start(t, "bfd-rr", "127.0.10.140"), pod: "bfd-rr", ns: "edge"}
	r.apply(t, model.Snapshot{Synced: true, Members: []model.Member{{Namespace: "edge", Group: "edge.edge", Pod: "bfd-rr", Addrs: []netip.Addr{netip.MustParseAddr("127.0.10.140")}}}}, bfdCfg)
	fast := bfdRouter(t, "fast", "127.0.10.129", "10.210.0.0/24", true)
	slow := bfdRouter(t, "slow", "127.0.10.137", "10.211.0.0/24", false)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.NotEmpty(c, paths(route(c, r.lab, "10.210.0.0/24")))
		assert.NotEmpty(c, paths(route(c, r.lab, "10.211.0.0/24")))
		assert.Contains(c, r.lab.Must(t, "show bfd sessions"), "Up", "the RR's BFD session to the fast router")
	}, 20*time.Second, 100*time.Millisecond)
	bfdLine := r.lab.Must(t, "show bfd sessions")
	require.Contains(t, bfdLine, "127.0.10.129")
	require.NotContains(t, bfdLine, "127.0.10.137", "no BFD session with the group that has it off")
	t.Logf("the RR's show bfd sessions:\n%s", bfdLine)
	bfdOf := map[model.GroupName]string{}
	for _, s := range r.sessions(t) {
		bfdOf[s.Group] = s.BFD
	}
	assert.Equal(t, map[model.GroupName]string{"fast": "Up", "plain": ""}, bfdOf, "BFD state of the sessions as the backend reads them")

	freeze := func(in *birdlab.Instance, sig syscall.Signal) {
		require.NoError(t, syscall.Kill(in.Pid(), sig))
	}
	start := time.Now()
	freeze(fast, syscall.SIGSTOP)
	freeze(slow, syscall.SIGSTOP)
	t.Cleanup(func() { freeze(fast, syscall.SIGCONT); freeze(slow, syscall.SIGCONT) })
	gone := map[string]time.Duration{}
	for time.Since(start) < 20*time.Second && len(gone) < 2 {
		for _, p := range []string{"10.210.0.0/24", "10.211.0.0/24"} {
			if _, ok := gone[p]; !ok && len(paths(route(t, r.lab, p))) == 0 {
				gone[p] = time.Since(start)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Contains(t, gone, "10.210.0.0/24", "the BFD router's route was never withdrawn")
	require.Contains(t, gone, "10.211.0.0/24", "the other router's route was never withdrawn")
	withBFD, withHold := gone["10.210.0.0/24"], gone["10.211.0.0/24"]
	t.Logf("frozen router's route withdrawn by the RR: %v with BFD (200 ms x 3), %v by the hold timer (6 s): %.1fx faster",
		withBFD.Round(time.Millisecond), withHold.Round(time.Millisecond), float64(withHold)/float64(withBFD))
	assert.Less(t, withBFD, withHold, "BFD must notice before the hold timer")
}

// The import update counts of a real BIRD session, as the agent reads
// them (model.Session.Updates, which the metrics export): a router
// announces four prefixes to a client group whose import policy rejects
// one and whose prefix limit (action block) keeps one more out (BIRD
// counts that one as ignored).
func TestImportUpdateCountsFromRealBIRD(t *testing.T) {
	r := &rr{lab: birdlab.Start(t, "counts-rr", "127.0.10.122"), pod: "counts-rr", ns: "edge"}
	r.apply(t, model.Snapshot{Synced: true, Members: []model.Member{{Namespace: "edge", Group: "edge.edge", Pod: "counts-rr", Addrs: []netip.Addr{netip.MustParseAddr("127.0.10.122")}}}}, `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: edge.edge}
clients:
  - {name: counted, ranges: [127.0.10.124/30], maxPrefixes: 2, maxPrefixAction: block}
policy:
  - {name: no-bogus, from: [counted], matchPrefixes: [{prefix: 10.66.9.0/24}], action: reject}
`)
	router := birdlab.Start(t, "counts-router", "127.0.10.125")
	router.AddInclude(t, "announce", `protocol static announce {
  ipv4;
  route 10.66.0.0/24 blackhole;
  route 10.66.1.0/24 blackhole;
  route 10.66.2.0/24 blackhole;
  route 10.66.9.0/24 blackhole;
}
protocol bgp to_rr {
  local 127.0.10.125 as 65000;
  neighbor 127.0.10.122 as 65000;
  strict bind yes;
  connect delay time 1;
  connect retry time 1;
  ipv4 { import none; export all; };
}
`)
	var got model.ImportUpdates
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, s := range r.sessions(c) {
			if s.Group == "counted" && s.Peer == netip.MustParseAddr("127.0.10.125") {
				if assert.NotNil(c, s.Updates, "no counts read") {
					got = *s.Updates
					assert.EqualValues(c, 4, got.Received)
				}
				return
			}
		}
		assert.Fail(c, "no session with the router")
	}, 20*time.Second, 200*time.Millisecond)
	t.Logf("import updates of the router's session: %+v", got)
	assert.EqualValues(t, 1, got.Filtered, "the prefix the import policy rejects")
	assert.EqualValues(t, 2, got.Accepted, "the prefix limit (2, block) keeps one out")
	assert.EqualValues(t, 1, got.Ignored, "BIRD counts the route the limit blocks as ignored")
	assert.Zero(t, got.Rejected, "no invalid route")
}
