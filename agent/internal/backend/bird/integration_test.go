package bird_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/backend/bird"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/plan"
	"github.com/meshrr/meshrr/agent/internal/testutil/birdlab"
)

// sinceJitter: BIRD keeps state-change times on a monotonic clock and
// converts them to wall time when printing, so two reads of an untouched
// session can differ by a millisecond; a reset moves Since forward by the
// time between the reads (seconds here).
const sinceJitter = 10 * time.Millisecond

// This package's loopback block is 127.0.10.0/24.

type rr struct {
	lab     *birdlab.Instance
	backend *bird.Backend
	cfg     string
	pod     string
	ns      string
	threads int // BIRD 3's threads (backend.bird.threads), 0: not written
}

func (r *rr) apply(t *testing.T, snap model.Snapshot, cfgYAML string) plan.Result {
	t.Helper()
	cfg, err := config.Parse([]byte(cfgYAML))
	require.NoError(t, err)
	cfg.Backend.Bird = r.lab.BackendConfig()
	cfg.Backend.Bird.Threads = r.threads
	res, err := plan.Build(plan.Input{Config: cfg, Self: plan.Self{Name: r.pod, Namespace: r.ns, Addrs: []netip.Addr{r.lab.Addr}}, Snapshot: snap, Now: time.Now()})
	require.NoError(t, err)
	r.backend = bird.New(cfg.Backend.Bird)
	out, err := r.backend.Render(res.Model)
	require.NoError(t, err)
	require.NoError(t, r.backend.Apply(context.Background(), out))
	return res
}

func (r *rr) sessions(t assert.TestingT) map[string]model.Session {
	ss, err := r.backend.Sessions(context.Background())
	assert.NoError(t, err)
	out := map[string]model.Session{}
	for _, s := range ss {
		out[s.Name] = s
	}
	return out
}

const (
	coreCfg = `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: core.core}
clients: [{name: regions, ranges: [127.0.10.0/27]}]
`
	regionCfg = `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: lothl.lothlorien}
upstream: {group: core.core, namespace: core, maxPeers: 2}
clients: [{name: routers, ranges: [127.0.10.64/26]}]
policy:
  - {name: keep-101-in-region, towards: [upstream], matchCommunities: ["65000:101"], action: reject}
  - {name: depref-102-outside, towards: [upstream], matchCommunities: ["65000:102"], setLocalPref: 20}
`
	// the region's router: an RR client of rr-1 announcing one route per case
	routerConf = `
protocol static announce {
  ipv4;
  route 10.100.0.0/24 blackhole;
  route 10.101.0.0/24 blackhole { bgp_community.add((65000,101)); };
  route 10.102.0.0/24 blackhole { bgp_community.add((65000,102)); };
}
protocol bgp to_rr {
  local 127.0.10.65 as 65000;
  neighbor 127.0.10.13 as 65000;
  strict bind yes;
  connect delay time 1;
  connect retry time 1;
  ipv4 { import all; export all; };
}
`
)

func snapshot() model.Snapshot {
	s := model.Snapshot{Synced: true}
	add := func(ns, group, pod, side, addr string, upstream bool) {
		m := model.Member{Namespace: ns, Group: group, Pod: pod, Side: side, Addrs: []netip.Addr{netip.MustParseAddr(addr)}}
		if upstream {
			m.UpstreamGroup, m.UpstreamNamespace = "core.core", "core"
		}
		s.Members = append(s.Members, m)
	}
	add("core", "core.core", "core-0", "a", "127.0.10.11", false)
	add("core", "core.core", "core-1", "b", "127.0.10.12", false)
	add("lothl", "lothl.lothlorien", "rr-1", "", "127.0.10.13", true)
	add("lothl", "lothl.lothlorien", "rr-2", "", "127.0.10.14", true)
	return s
}

func route(t assert.TestingT, in *birdlab.Instance, prefix string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	lines, err := in.Client.Cmd(ctx, "show route "+prefix+" all")
	if ce, ok := err.(*bird.CmdError); ok && ce.Code == 8001 { // Network not found
		return ""
	}
	assert.NoError(t, err)
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Text + "\n")
	}
	return b.String()
}

// TestHierarchyWithRealBIRD runs a 2-member core and a 2-member region
// (peering up to the core) plus a router that is an RR client of the
// region, all real BIRD daemons driven by the plan and this backend.
func TestHierarchyWithRealBIRD(t *testing.T) {
	snap := snapshot()
	rrs := []*rr{
		{lab: birdlab.Start(t, "core-0", "127.0.10.11"), pod: "core-0", ns: "core", cfg: coreCfg},
		{lab: birdlab.Start(t, "core-1", "127.0.10.12"), pod: "core-1", ns: "core", cfg: coreCfg},
		{lab: birdlab.Start(t, "rr-1", "127.0.10.13"), pod: "rr-1", ns: "lothl", cfg: regionCfg},
		{lab: birdlab.Start(t, "rr-2", "127.0.10.14"), pod: "rr-2", ns: "lothl", cfg: regionCfg},
	}
	router := birdlab.Start(t, "router", "127.0.10.65")
	router.AddInclude(t, "router", routerConf)
	start := time.Now()
	for _, r := range rrs {
		res := r.apply(t, snap, r.cfg)
		if r.ns == "lothl" {
			assert.ElementsMatch(t, []string{"core/core-0", "core/core-1"}, res.Upstream)
		}
	}

	// every mesh and upstream session Established, the router's session accepted from the range
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, r := range rrs {
			ss := r.sessions(c)
			var want []string
			for _, m := range snap.Members {
				if m.Pod == r.pod {
					continue
				}
				sym := "mesh_"
				if m.Namespace != r.ns {
					if r.ns == "core" {
						continue // region RRs reach the core through its client range
					}
					sym = "upstream_"
				}
				want = append(want, sym+strings.ReplaceAll(m.Addrs[0].String(), ".", "_"))
			}
			for _, name := range want {
				assert.True(c, ss[name].Established(), "%s: %s is %q", r.pod, name, ss[name].State)
			}
		}
	}, 30*time.Second, 200*time.Millisecond)
	t.Logf("all mesh and upstream sessions Established %v after the first apply", time.Since(start).Round(time.Millisecond))

	var clientSession model.Session
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		clientSession = model.Session{}
		for _, s := range rrs[2].sessions(c) {
			if s.Group == "routers" && s.Peer == netip.MustParseAddr("127.0.10.65") {
				clientSession = s
			}
		}
		assert.True(c, clientSession.Established(), "router session from the client range")
	}, 20*time.Second, 200*time.Millisecond)

	// core members inside the core's own client range are meshed, never clients
	for _, s := range rrs[0].sessions(t) {
		if s.Group == "regions" {
			assert.NotEqual(t, netip.MustParseAddr("127.0.10.12"), s.Peer, "mesh peer landed in the client group: %+v", s)
		}
	}
	assert.True(t, rrs[0].sessions(t)["mesh_127_0_10_12"].Established())

	// policy at the boundary, read from the core RRs
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, core := range rrs[:2] {
			assert.Contains(c, route(c, core.lab, "10.100.0.0/24"), birdlab.Attr("local_pref")+": 100", "untagged route reaches the core")
			assert.Contains(c, route(c, core.lab, "10.102.0.0/24"), birdlab.Attr("local_pref")+": 20", "65000:102 gets local-pref 20 outside the region")
		}
		assert.Contains(c, route(c, rrs[3].lab, "10.101.0.0/24"), "10.101.0.0/24", "65000:101 stays usable inside the region")
	}, 20*time.Second, 200*time.Millisecond)
	for _, core := range rrs[:2] {
		assert.NotContains(t, route(t, core.lab, "10.101.0.0/24"), "10.101.0.0/24", "65000:101 must never leave the region")
	}

	// changing only an export policy resets no session. Compare against
	// settled sessions: right after a session first reports Established
	// (here ~1 s after the first apply) its state may still change for a
	// moment (connection collision, dynamic spawn).
	var before map[string]model.Session
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		before = rrs[2].sessions(c)
		for name, s := range before {
			if s.Established() {
				assert.Greater(c, time.Since(s.Since), 2*time.Second, "%s not settled", name)
			}
		}
	}, 15*time.Second, 200*time.Millisecond)
	changed := strings.Replace(regionCfg, "setLocalPref: 20", "setLocalPref: 30", 1)
	applyStart := time.Now()
	rrs[2].apply(t, snap, changed)
	t.Logf("render + apply of a policy change: %v", time.Since(applyStart).Round(time.Microsecond))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Contains(c, route(c, rrs[0].lab, "10.102.0.0/24"), birdlab.Attr("local_pref")+": 30")
	}, 10*time.Second, 100*time.Millisecond)
	after := rrs[2].sessions(t)
	require.NotEmpty(t, before)
	for name, s := range before {
		if !s.Established() {
			continue
		}
		a, ok := after[name]
		if assert.True(t, ok, "session %s disappeared", name) {
			assert.True(t, a.Established(), "%s reset: %s", name, a.State)
			assert.WithinDuration(t, s.Since, a.Since, sinceJitter, "%s restarted (Since changed)", name)
		}
	}

	// a configuration BIRD rejects is never activated and never replaces the live file
	live, err := rrs[2].backend.Current(context.Background())
	require.NoError(t, err)
	err = rrs[2].backend.Apply(context.Background(), append(append([]byte(nil), live...), []byte("protocol bgp broken { nonsense; }\n")...))
	var ce *bird.CmdError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, 8002, ce.Code)
	assert.Contains(t, err.Error(), "bird rejected the configuration")
	still, err := os.ReadFile(rrs[2].lab.ConfigFile)
	require.NoError(t, err)
	assert.Equal(t, string(live), string(still))
	for name, s := range rrs[2].sessions(t) {
		if before[name].Established() {
			assert.WithinDuration(t, before[name].Since, s.Since, sinceJitter, "%s restarted after a rejected apply", name)
		}
	}
}

func TestPingAndSessionsOnAFreshDaemon(t *testing.T) {
	lab := birdlab.Start(t, "fresh", "127.0.10.200")
	b := bird.New(lab.BackendConfig())
	require.NoError(t, b.Ping(context.Background()))
	ss, err := b.Sessions(context.Background())
	require.NoError(t, err)
	assert.Empty(t, ss)
	cur, err := b.Current(context.Background())
	require.NoError(t, err)
	assert.Contains(t, string(cur), "router id 127.0.10.200")

	lab.Stop()
	require.Error(t, b.Ping(context.Background()))
}

// BenchmarkRenderApplyOnePeerChange measures render + configure check +
// configure for a one-neighbour change on a 200-neighbour configuration
// against a real BIRD, reporting p50 and p99.
func BenchmarkRenderApplyOnePeerChange(b *testing.B) {
	lab := birdlab.Start(b, "bench", "127.0.10.250")
	be := bird.New(lab.BackendConfig())
	m := model.Model{ASN: 65000, RouterID: lab.Addr, LocalAddrs: []netip.Addr{lab.Addr},
		Timers: model.Timers{ConnectDelay: 1, ConnectRetry: 5, Hold: 90, Keepalive: 30, ErrorWaitMin: 1, ErrorWaitMax: 30}}
	mesh := model.PeerGroup{Name: "mesh", Role: model.RoleMesh}
	for i := range 200 {
		// TEST-NET-2 addresses: nothing answers, nothing is sent beyond connect attempts
		mesh.Neighbors = append(mesh.Neighbors, model.Neighbor{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), ASN: 65000, Name: fmt.Sprint(i)})
	}
	m.Groups = []model.PeerGroup{mesh}
	var durs []time.Duration
	for i := 0; b.Loop(); i++ {
		g := mesh
		g.Neighbors = append(append([]model.Neighbor(nil), mesh.Neighbors...), model.Neighbor{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(200 + i%2)}), ASN: 65000})
		m.Groups = []model.PeerGroup{g}
		start := time.Now()
		cfg, err := be.Render(m)
		if err == nil {
			err = be.Apply(context.Background(), cfg)
		}
		if err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(start))
	}
	slices.Sort(durs)
	b.ReportMetric(float64(durs[len(durs)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(durs[len(durs)*99/100].Microseconds())/1000, "p99-ms")
}
