//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/synthtable"
	"github.com/meshrr/meshrr/tests/e2e/cluster"
)

// The chaos soak's events. The first three of every run are a node stop
// (the node of a core RR that another node can take over), a partition
// and a BIRD kill, so that the short run of make test covers them; the
// rest are drawn from the list with the run's seed.
var (
	chaosKinds = []string{
		"pod-delete", "daemon-kill", "agent-kill", "node-stop", "node-pause", "partition",
		"apiserver-stop", "service-delete", "session-upgrade", "scale",
	}
	chaosFirst = []string{"node-stop", "partition", "daemon-kill"}
)

// chaosConfig is the soak's settings, from the environment (make chaos
// passes them through):
//
//	CHAOS_SEED      the seed of the draw (default: the clock; printed, to replay a run)
//	CHAOS_EVENTS    events to run (default 6); with CHAOS_DURATION, events until it ends
//	CHAOS_DURATION  how long to keep drawing events, e.g. 60m
//	CHAOS_GAP       MIN-MAX between the starts of two events, e.g. 30s-60s (default 0s: the next one once recovered)
//	CHAOS_ROUTES    routes the origin announces (default 10000)
//	CHAOS_KINDS     the kinds to draw from, comma-separated (default: every kind; without
//	                CHAOS_DURATION, every kind but node-stop, apiserver-stop and session-upgrade)
//	CHAOS_SPARE     a worker no event touches (its RR pods live through the soak, so
//	                that their memory is compared over the whole run); session-upgrade,
//	                which rolls every RR of a release, is then left out
type chaosConfig struct {
	seed           uint64
	events         int
	duration       time.Duration
	gapMin, gapMax time.Duration
	routes         int
	kinds          []string
	spare          string
}

func chaosConfigFromEnv() (chaosConfig, error) {
	c := chaosConfig{seed: uint64(time.Now().UnixNano()), events: 8, routes: 10000, kinds: chaosKinds}
	var err error
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		if c.seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			return c, fmt.Errorf("CHAOS_SEED: a number (the seed a run printed), not %q", v)
		}
	}
	if v := os.Getenv("CHAOS_EVENTS"); v != "" {
		if c.events, err = strconv.Atoi(v); err != nil || c.events < len(chaosFirst) {
			return c, fmt.Errorf("CHAOS_EVENTS: a number of events, at least %d (%s come first), not %q", len(chaosFirst), strings.Join(chaosFirst, ", "), v)
		}
	}
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		if c.duration, err = time.ParseDuration(v); err != nil || c.duration <= 0 {
			return c, fmt.Errorf("CHAOS_DURATION: a Go duration such as 60m, not %q", v)
		}
	}
	if v := os.Getenv("CHAOS_GAP"); v != "" {
		lo, hi, found := strings.Cut(v, "-")
		if !found {
			hi = lo
		}
		c.gapMin, err = time.ParseDuration(lo)
		if err == nil {
			c.gapMax, err = time.ParseDuration(hi)
		}
		if err != nil || c.gapMin < 0 || c.gapMax < c.gapMin {
			return c, fmt.Errorf("CHAOS_GAP: MIN-MAX durations such as 30s-60s (or one duration), not %q", v)
		}
	}
	if v := os.Getenv("CHAOS_ROUTES"); v != "" {
		if c.routes, err = strconv.Atoi(v); err != nil || c.routes < 1 {
			return c, fmt.Errorf("CHAOS_ROUTES: a number of routes, not %q", v)
		}
	}
	if c.duration == 0 {
		// the short run of make test: one node stop (the first event; each
		// costs 2-3 minutes), and the API server outage and a rolling
		// pod-template change have suites of their own there
		// (TestAPIServerOutageChangesNothing, TestRollingUpgradeLosesNoRoute)
		c.kinds = slices.DeleteFunc(slices.Clone(chaosKinds), func(k string) bool {
			return k == "node-stop" || k == "apiserver-stop" || k == "session-upgrade"
		})
	}
	if v := os.Getenv("CHAOS_KINDS"); v != "" {
		c.kinds = nil
		for _, k := range strings.Split(v, ",") {
			if !slices.Contains(chaosKinds, strings.TrimSpace(k)) {
				return c, fmt.Errorf("CHAOS_KINDS: %q is not an event kind; use some of %s", k, strings.Join(chaosKinds, ","))
			}
			c.kinds = append(c.kinds, strings.TrimSpace(k))
		}
	}
	if c.spare = os.Getenv("CHAOS_SPARE"); c.spare != "" {
		c.kinds = slices.DeleteFunc(c.kinds, func(k string) bool { return k == "session-upgrade" })
		if len(c.kinds) == 0 {
			return c, fmt.Errorf("CHAOS_KINDS: with CHAOS_SPARE, session-upgrade is left out; name another kind too")
		}
	}
	return c, nil
}

// TestChaosSoak is a seeded soak on the 2regions-hrr hierarchy as the
// example ships it (a core Deployment per side, region DaemonSets per side
// behind MetalLB addresses) and the route-servers example beside it (a
// StatefulSet per side behind its anycast address): an origin homed on both
// lothlorien addresses announces a generated table, and a sampler at each
// region (lothlorien, and mirkwood across the core) homed on both of its
// region's addresses counts its routes every 0.2 s; an eBGP origin and an
// eBGP sampler do the same through both route-server sides. Events run one
// after the other: RR
// pod delete, BIRD kill, agent container kill, node stop and start, node
// pause, a partition between two nodes (iptables), the API server stopped
// for 60 s, a Service deleted and restored, a helm upgrade changing a
// session setting (the hold time), and the core scaled out and in. After
// each event the soak waits until everything is healthy again (pods Ready,
// kubectl meshrr status exit 0, the routers Established with both
// addresses and holding the whole table) and counts the sessions the event
// reset that it did not touch. Printed: events by kind with recovery
// times, samples taken and missing per sampler, resets the events did not
// require, zombie sessions, agent and BIRD memory growth, and the seed.
// Asserted: no route missing in any sample, no zombie session at the end,
// a core RR of a stopped node replaced elsewhere (kubectl meshrr status
// names the lost node meanwhile), and a route server of a stopped node
// started on another node of its side once the node is tainted
// out-of-service, as kubectl meshrr status tells the operator to.
func TestChaosSoak(t *testing.T) {
	cfg, err := chaosConfigFromEnv()
	require.NoError(t, err)
	r := newChaosRig(t, cfg)
	spared := ""
	if cfg.spare != "" {
		spared = ", no event on " + cfg.spare
	}
	logf(t, "chaos: seed %d (CHAOS_SEED=%d replays the draw), %d routes, gap %s-%s, kinds %s%s", cfg.seed, cfg.seed, cfg.routes, cfg.gapMin, cfg.gapMax, strings.Join(cfg.kinds, ","), spared)

	memBefore := r.memory()
	rng := rand.New(rand.NewPCG(cfg.seed, 0x6d657368727221))
	soak := time.Now()
	// a timed soak reads memory every 10 minutes too: a pod that lives
	// through it shows whether its growth levels off
	memSeries := []memorySnapshot{{0, memBefore}}
	var results []chaosResult
	var prev chaosEvent
	for i := 0; ; i++ {
		if cfg.duration > 0 && time.Since(soak) >= cfg.duration || cfg.duration == 0 && i >= cfg.events {
			break
		}
		kind := cfg.kinds[rng.IntN(len(cfg.kinds))]
		if i < len(chaosFirst) {
			kind = chaosFirst[i]
		}
		began := time.Now()
		before := r.snapshot()
		r.current.Store(fmt.Sprintf("%d %s", i+1, kind))
		ev := r.run(kind, rng, i == 0)
		ended := time.Now()
		if err := r.waitHealthy(10 * time.Minute); err != nil {
			r.current.Store("")
			t.Fatalf("chaos: event %d (%s: %s) not recovered after 10 min: %v (CHAOS_SEED=%d replays it)", i+1, kind, ev.what, err, cfg.seed)
		}
		res := chaosResult{n: i + 1, kind: kind, what: ev.what, held: ended.Sub(began), recovered: time.Since(ended)}
		r.current.Store("")
		res.resets, res.unrequired = r.resets(before, r.snapshot(), ev, prev)
		prev = ev
		results = append(results, res)
		logf(t, "chaos: event %d %s: %s; held %s, healthy again %s after (%d sessions reset, %d of them not touched by the event%s)",
			res.n, kind, ev.what, res.held.Round(time.Second), res.recovered.Round(time.Second), res.resets, len(res.unrequired), listSuffix(res.unrequired))
		if cfg.duration > 0 && time.Since(soak)-memSeries[len(memSeries)-1].at >= 10*time.Minute {
			memSeries = append(memSeries, memorySnapshot{time.Since(soak), r.memory()})
		}
		if gap := cfg.gapMin + time.Duration(rng.Int64N(int64(cfg.gapMax-cfg.gapMin)+1)); time.Since(began) < gap {
			time.Sleep(gap - time.Since(began))
		}
	}
	took := time.Since(soak)
	samples := r.stopSampling()
	// a client that moved to another RR of its side leaves a spawned
	// session behind, which the agent's reaper removes after the hold time
	// (90 s here, no graceful restart): what is left after that is a zombie
	zombies, waited := r.zombies(), time.Now()
	for len(zombies) > 0 && time.Since(waited) < 150*time.Second {
		time.Sleep(5 * time.Second)
		zombies = r.zombies()
	}
	memAfter := r.memory()

	// the report
	logf(t, "chaos: %d events in %s, seed %d", len(results), took.Round(time.Second), cfg.seed)
	byKind := map[string][]time.Duration{}
	unrequired := 0
	for _, res := range results {
		byKind[res.kind] = append(byKind[res.kind], res.recovered)
		unrequired += len(res.unrequired)
	}
	for _, k := range chaosKinds {
		if d := byKind[k]; len(d) > 0 {
			slices.Sort(d)
			logf(t, "chaos: %-15s %2d events, healthy again after %s (min) %s (median) %s (max)", k, len(d), d[0].Round(time.Second), d[len(d)/2].Round(time.Second), d[len(d)-1].Round(time.Second))
		}
	}
	missing := 0
	for _, s := range samples {
		logf(t, "chaos: sampler %s: %d samples of %d routes, %d prefix-samples missing in %d samples, longest gap %s%s (goal 0)",
			s.name, s.samples, cfg.routes, s.missing, s.short, s.longest.Round(100*time.Millisecond), listSuffix(s.during))
		missing += s.missing
	}
	logf(t, "chaos: %d sessions reset that their event did not require; %d zombie sessions at the end%s (goal 0; waited %s for the reaper)", unrequired, len(zombies), listSuffix(zombies), time.Since(waited).Round(time.Second))
	for _, line := range memoryGrowth(memBefore, memAfter) {
		logf(t, "chaos: memory %s", line)
	}
	for _, line := range memoryOverTime(append(memSeries, memorySnapshot{took, memAfter})) {
		logf(t, "chaos: memory over time %s", line)
	}
	for _, s := range samples {
		assert.Positive(t, s.samples, "sampler %s took no sample", s.name)
	}
	assert.Zero(t, missing, "routes missing at a dual-homed router during the soak (CHAOS_SEED=%d replays it)", cfg.seed)
	assert.Empty(t, zombies, "zombie sessions at the end of the soak")
}

func listSuffix(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return ": " + strings.Join(l, "; ")
}

type chaosResult struct {
	n               int
	kind, what      string
	held, recovered time.Duration
	resets          int
	unrequired      []string
}

// chaosEvent is what an event touched: a session of one of these pods, or
// between a router and one of these sides' addresses ("namespace/side"),
// may reset; any other reset is one the event did not require.
type chaosEvent struct {
	what  string
	pods  map[string]bool
	sides map[string]bool
}

// chaosRig is the soak's fixture.
type chaosRig struct {
	t                *testing.T
	cfg              chaosConfig
	core, loth, mirk *k8s.KubectlOptions
	rs               *k8s.KubectlOptions // the route servers
	tor              *Router
	routers          []chaosRouter
	plugin           string
	coreReplicas     int
	hold             map[string]int // timers.hold per release (the regions and the route servers)
	workers          []string
	current          atomicString
	samplers         []*chaosSampler
	stopOnce         sync.Once
}

// chaosRouter is a BIRD router homed on both sides of a release (its
// protocols rr_a and rr_b); a sampler receives the whole table from both.
type chaosRouter struct {
	*BirdRouter
	ns      string // the release's namespace
	sampler bool
}

type atomicString struct {
	mu sync.Mutex
	s  string
}

func (a *atomicString) Store(s string) { a.mu.Lock(); a.s = s; a.mu.Unlock() }
func (a *atomicString) Load() string   { a.mu.Lock(); defer a.mu.Unlock(); return a.s }

// The side addresses of examples/2regions-hrr (its overlays' sides) and
// examples/route-servers, by release.
var chaosVIPs = map[string][2]string{"lothlorien": {"172.30.1.1", "172.30.1.2"}, "mirkwood": {"172.30.2.1", "172.30.2.2"}, "rs": {vipA, vipB}}

func newChaosRig(t *testing.T, cfg chaosConfig) *chaosRig {
	t.Helper()
	installMetalLB(t)
	r := &chaosRig{t: t, cfg: cfg, coreReplicas: 1, hold: map[string]int{"lothlorien": 90, "mirkwood": 90, "rs": 90}, plugin: plugin(t)}
	r.core, r.loth, r.mirk, r.rs = namespace(t, "chaos-core"), namespace(t, "chaos-loth"), namespace(t, "chaos-mirk"), namespace(t, "chaos-rs")
	out, err := k8s.RunKubectlAndGetOutputE(t, r.core, "get", "nodes", "-l", "!node-role.kubernetes.io/control-plane", "-o", "jsonpath={.items[*].metadata.name}")
	require.NoError(t, err)
	r.workers = strings.Fields(out)
	require.GreaterOrEqual(t, len(r.workers), 3, "the kind cluster's workers")
	if cfg.spare != "" {
		require.Contains(t, r.workers, cfg.spare, "CHAOS_SPARE: a worker of the kind cluster")
		r.workers = slices.DeleteFunc(r.workers, func(w string) bool { return w == cfg.spare })
	}

	// the ToR the MetalLB speakers announce the side addresses to
	conf := t.TempDir()
	r.tor = startRouter(t, "chaos-tor", fmt.Sprintf(`router bgp 64513
 bgp router-id %s
 no bgp ebgp-requires-policy
 neighbor METALLB peer-group
 neighbor METALLB remote-as 64512
 bgp listen range %s peer-group METALLB
`, routerID(50), kindNet))
	peer := filepath.Join(conf, "bgppeer.yaml")
	require.NoError(t, os.WriteFile(peer, []byte(fmt.Sprintf(`apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: chaos-tor, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: %s, holdTime: 9s}
`, r.tor.Addr)), 0o644))
	metallb := k8s.NewKubectlOptions("", kubeconfig, "metallb-system")
	metallb.Logger = r.core.Logger
	k8s.KubectlApply(t, metallb, peer)
	t.Cleanup(func() { _, _ = k8s.RunKubectlAndGetOutputE(t, metallb, "delete", "-f", peer, "--ignore-not-found") })

	start := time.Now()
	helm.Install(t, r.coreHelm(), chart(), "core")
	r.installRouteServers()
	for _, ns := range []*k8s.KubectlOptions{r.loth, r.mirk} {
		helm.Install(t, r.releaseHelm(ns), chart(), r.release(ns))
	}
	t.Cleanup(func() {
		for _, ns := range r.namespaces() {
			o := r.releaseHelm(ns)
			o.ExtraArgs["delete"] = []string{"--no-hooks"} // the namespaces go next: no drain needed
			_ = helm.DeleteE(t, o, r.release(ns), true)
		}
	})
	logf(t, "chaos: core, route servers, lothlorien and mirkwood installed and Ready in %s", time.Since(start).Round(time.Second))

	// the origins (homed on both lothlorien addresses, and as an eBGP
	// client on both route-server sides) and the samplers (each on both
	// addresses of its region, or of the route servers) reach the side
	// addresses through the ToR
	routes := synthtable.Generate(synthtable.Spec{Seed: cfg.seed, IPv4: cfg.routes})
	bird := func(name, id string, ns *k8s.KubectlOptions, asn int, feed bool) chaosRouter {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "setup.sh"), []byte("ip route replace 172.30.0.0/16 via "+r.tor.Addr.String()+"\n"), 0o755))
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755))
		f, err := os.Create(filepath.Join(dir, "conf.d", "rr.conf"))
		require.NoError(t, err)
		imp, exp := "import all;", "export none;"
		if feed {
			require.NoError(t, synthtable.WriteBIRD(f, routes))
			imp, exp = "import none;", "export all;"
		}
		multihop := "" // iBGP: multihop already
		if asn != 65000 {
			multihop = " multihop 4;" // eBGP client of the route servers, through the ToR
		}
		for i, vip := range chaosVIPs[r.release(ns)] {
			fmt.Fprintf(f, `protocol bgp rr_%c {
  neighbor %s as 65000; local as %d;%s
  hold time 9; keepalive time 3; connect delay time 1; connect retry time 2; error wait time 1, 10;
  ipv4 { %s %s };
}
`, 'a'+i, vip, asn, multihop, imp, exp)
		}
		require.NoError(t, f.Close())
		return chaosRouter{BirdRouter: startBird(t, name, id, dir), ns: ns.Namespace, sampler: !feed}
	}
	r.routers = []chaosRouter{
		bird("chaos-origin", routerID(51), r.loth, 65000, true),
		bird("chaos-sampler-loth", routerID(52), r.loth, 65000, false),
		bird("chaos-sampler-mirk", routerID(53), r.mirk, 65000, false),
		bird("chaos-origin-rs", routerID(54), r.rs, 65101, true),
		bird("chaos-sampler-rs", routerID(55), r.rs, 65102, false),
	}
	require.NoError(t, r.waitHealthy(5*time.Minute), "the fixture before the first event")
	logf(t, "chaos: origins, ToR and samplers up; every sampler holds all %d routes from both addresses of its release, %s after the install", cfg.routes, time.Since(start).Round(time.Second))
	for _, b := range r.routers {
		if b.sampler {
			r.samplers = append(r.samplers, sampleTable(r, b))
		}
	}
	t.Cleanup(func() { r.stopSampling() })
	// whatever an event left (a node stopped or paused, a partition, the
	// API server parked, a Service gone) is undone first when the test
	// stops half-way: the releases' and namespaces' cleanups need it
	t.Cleanup(r.undoAll)
	return r
}

// installRouteServers installs examples/route-servers with its side b on
// the node of the core's side-b RR (the other side-b nodes cordoned
// meanwhile), so that the first event, which stops that node, loses a
// Deployment RR and a StatefulSet RR at once.
func (r *chaosRig) installRouteServers() {
	t := r.t
	var coreB string
	for _, p := range cluster.Pods(t, r.core, coreSelector) {
		if p.Labels["meshrr.io/side"] == "b" {
			coreB = p.Spec.NodeName
		}
	}
	require.NotEmpty(t, coreB, "the core's side-b RR")
	var cordoned []string
	for _, n := range r.sideNodes("b", "") {
		if n != coreB {
			k8s.RunKubectl(t, r.core, "cordon", n)
			cordoned = append(cordoned, n)
		}
	}
	uncordon := func() {
		for _, n := range cordoned {
			_, _ = k8s.RunKubectlAndGetOutputE(t, r.core, "uncordon", n)
		}
	}
	t.Cleanup(uncordon) // also when the install fails
	helm.Install(t, r.releaseHelm(r.rs), chart(), "rs")
	uncordon()
}

// release is the name of the release installed in a namespace.
func (r *chaosRig) release(ns *k8s.KubectlOptions) string {
	switch ns {
	case r.core:
		return "core"
	case r.rs:
		return "rs"
	case r.loth:
		return "lothlorien"
	}
	return "mirkwood"
}

func (r *chaosRig) namespaces() []*k8s.KubectlOptions {
	return []*k8s.KubectlOptions{r.core, r.loth, r.mirk, r.rs}
}

func (r *chaosRig) coreHelm() *helm.Options {
	o := helmOptions(r.core, []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.downstream.namespaces": fmt.Sprintf("{%s,%s}", r.loth.Namespace, r.mirk.Namespace),
		"groups.core.replicas":              strconv.Itoa(r.coreReplicas),
	})
	o.ExtraArgs["upgrade"] = []string{"--wait", "--timeout", "300s"}
	return o
}

// releaseHelm is the helm options of a release (each with its current
// timers.hold: the session-upgrade event changes it).
func (r *chaosRig) releaseHelm(ns *k8s.KubectlOptions) *helm.Options {
	name := r.release(ns)
	var o *helm.Options
	switch name {
	case "core":
		return r.coreHelm()
	case "rs":
		// the chaos ToR's BGPPeer serves its pools: not the example's
		o = helmOptions(ns, []string{example("route-servers", "values.yaml")}, map[string]string{
			"groups.rs.clients.dcs.ranges[0]": routerRange(),
			"groups.rs.timers.hold":           strconv.Itoa(r.hold[name]),
			"metallb.peers":                   "null",
		})
	default:
		o = helmOptions(ns, []string{example("2regions-hrr", "values.yaml"), example("2regions-hrr", "values-"+name+".yaml")}, map[string]string{
			"defaults.upstream.namespace":                   r.core.Namespace,
			"defaults.upstream.siblingNamespaces":           fmt.Sprintf("{%s,%s}", r.loth.Namespace, r.mirk.Namespace),
			"groups." + name + ".clients.routers.ranges[0]": routerRange(),
			"groups." + name + ".timers.hold":               strconv.Itoa(r.hold[name]),
		})
	}
	o.ExtraArgs["upgrade"] = []string{"--wait", "--timeout", "300s"}
	return o
}

// rrPods is every RR pod of the three releases, by name.
func (r *chaosRig) rrPods() map[string]rrPod {
	out := map[string]rrPod{}
	for _, ns := range r.namespaces() {
		for _, p := range cluster.Pods(r.t, ns, "app.kubernetes.io/name=meshrr") {
			out[p.Name] = rrPod{opts: ns, pod: p, role: ns.Namespace + "/" + p.Labels["meshrr.io/side"]}
		}
	}
	return out
}

// waitHealthy waits until the fixture is healthy again, or returns what is
// not after timeout.
func (r *chaosRig) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := r.healthy()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(2 * time.Second)
	}
}

// healthy: every workload has all its pods Ready and none terminating,
// kubectl meshrr status says every group is healthy, the origin and the
// samplers are Established with both addresses of their region, and each
// sampler holds the whole table from both.
func (r *chaosRig) healthy() error {
	for _, ns := range r.namespaces() {
		out, err := k8s.RunKubectlAndGetOutputE(r.t, ns, "get", "daemonsets,deployments,statefulsets", "-o", "json")
		if err != nil {
			return fmt.Errorf("%s: %v", ns.Namespace, err)
		}
		var list struct {
			Items []struct {
				Kind     string `json:"kind"`
				Metadata struct{ Name string }
				Spec     struct{ Replicas *int }
				Status   struct {
					Replicas, ReadyReplicas, UpdatedReplicas                    int
					DesiredNumberScheduled, NumberReady, UpdatedNumberScheduled int
				}
			}
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return err
		}
		for _, w := range list.Items {
			want, ready, updated, have := w.Status.DesiredNumberScheduled, w.Status.NumberReady, w.Status.UpdatedNumberScheduled, w.Status.DesiredNumberScheduled
			if w.Kind != "DaemonSet" {
				want, ready, updated, have = *w.Spec.Replicas, w.Status.ReadyReplicas, w.Status.UpdatedReplicas, w.Status.Replicas
			}
			if ready != want || updated != want || have != want || want == 0 {
				return fmt.Errorf("%s %s/%s: %d of %d ready, %d updated", w.Kind, ns.Namespace, w.Metadata.Name, ready, want, updated)
			}
		}
		for _, p := range cluster.Pods(r.t, ns, "app.kubernetes.io/name=meshrr") {
			if p.DeletionTimestamp != nil || !cluster.IsReady(p) {
				return fmt.Errorf("pod %s/%s on %s not ready or terminating", ns.Namespace, p.Name, p.Spec.NodeName)
			}
		}
		if status, code := runPlugin(r.t, r.plugin, "status", "-n", ns.Namespace); code != 0 {
			return fmt.Errorf("kubectl meshrr status -n %s exits %d:\n%s", ns.Namespace, code, status)
		}
	}
	for _, b := range r.routers {
		lines, err := b.protocolLines()
		if err != nil {
			return err
		}
		for _, p := range []string{"rr_a", "rr_b"} {
			if !strings.Contains(lines[p], "Established") {
				return fmt.Errorf("%s %s: %s", b.Name, p, lines[p])
			}
		}
	}
	for _, b := range r.routers {
		if !b.sampler {
			continue
		}
		out, err := b.birdc("show", "route", "count")
		if err != nil {
			return err
		}
		routes, networks, err := birdCount(out)
		if err != nil {
			return err
		}
		if networks != r.cfg.routes || routes != 2*r.cfg.routes {
			return fmt.Errorf("%s: %d routes for %d networks, not %d from each side", b.Name, routes, networks, r.cfg.routes)
		}
	}
	return nil
}

// chaosSampler counts a router's prefixes every 0.2 s.
type chaosSampler struct {
	name                    string
	mu                      sync.Mutex
	samples, missing, short int
	longest                 time.Duration
	shortSince              time.Time
	during                  []string
	stop, done              chan struct{}
}

func sampleTable(r *chaosRig, b chaosRouter) *chaosSampler {
	s := &chaosSampler{name: b.Name, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			out, err := b.birdc("show", "route", "count")
			if err != nil {
				continue
			}
			_, networks, err := birdCount(out)
			if err != nil {
				continue
			}
			now := time.Now()
			s.mu.Lock()
			s.samples++
			if networks < r.cfg.routes {
				s.missing += r.cfg.routes - networks
				s.short++
				if s.shortSince.IsZero() {
					s.shortSince = now
					// what the router saw: its sessions' states at the first
					// short sample, to read the RRs' logs around that time
					seen := "?"
					if p, err := b.birdc("show", "protocols"); err == nil {
						seen = protocolStates(p)
					}
					s.during = append(s.during, fmt.Sprintf("%d missing during event %s (at %s; sessions %s)", r.cfg.routes-networks, r.current.Load(), now.UTC().Format("15:04:05.0"), seen))
				}
			} else if !s.shortSince.IsZero() {
				s.longest = max(s.longest, now.Sub(s.shortSince))
				s.shortSince = time.Time{}
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// protocolStates condenses birdc show protocols to the BGP sessions'
// "name state since info".
func protocolStates(out string) string {
	var ss []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 && f[1] == "BGP" {
			ss = append(ss, strings.Join(append([]string{f[0], f[3], f[4]}, f[5:]...), " "))
		}
	}
	return strings.Join(ss, ", ")
}

func (r *chaosRig) stopSampling() []*chaosSampler {
	r.stopOnce.Do(func() {
		for _, s := range r.samplers {
			close(s.stop)
			<-s.done
			if !s.shortSince.IsZero() {
				s.longest = max(s.longest, time.Since(s.shortSince))
			}
		}
	})
	return r.samplers
}

// chaosSnapshot: when each Established session became Established, by
// "pod peer" for the RR pods and "router protocol" for the routers, with
// where each pod was.
type chaosSnapshot struct {
	since map[string]time.Time
	pods  map[string]rrPod
	ips   map[string]string // pod address -> pod
}

func (r *chaosRig) snapshot() chaosSnapshot {
	s := chaosSnapshot{since: map[string]time.Time{}, pods: r.rrPods(), ips: map[string]string{}}
	for name, p := range s.pods {
		s.ips[p.pod.Status.PodIP] = name
		ss, err := cluster.Sessions(r.t, p.opts, name)
		if err != nil {
			continue // a pod the event is about to take: its sessions are not compared
		}
		for _, x := range ss {
			if x.Established {
				s.since[name+" "+x.Peer] = x.Since
			}
		}
	}
	for _, b := range r.routers {
		lines, _ := b.protocolLines()
		for _, p := range []string{"rr_a", "rr_b"} {
			if f := strings.Fields(lines[p]); len(f) >= 6 && f[5] == "Established" {
				// name, protocol, table, state, since, info: since moves on a reset
				s.since[b.Name+" "+p] = parseBirdSince(f[4])
			}
		}
	}
	return s
}

// parseBirdSince reads the since column of birdc show protocols (a time
// of day, or a date for older changes) as an instant to compare.
func parseBirdSince(v string) time.Time {
	for _, layout := range []string{"15:04:05.000", "15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t
		}
	}
	return time.Time{}
}

// resets counts the sessions Established before and after an event whose
// Established time moved, and lists those neither this event nor the one
// before touched (a hold timer can expire after the recovery check: a
// session that lived through a partition without traffic): a session is
// touched when either end is a pod the event touched, or it is a router's
// session with a side whose address or pods the event touched.
func (r *chaosRig) resets(before, after chaosSnapshot, ev, prev chaosEvent) (int, []string) {
	sides := map[string]bool{}
	touchedPods := map[string]bool{}
	for _, e := range []chaosEvent{ev, prev} {
		maps.Copy(sides, e.sides)
		maps.Copy(touchedPods, e.pods)
	}
	for p := range touchedPods {
		if rr, ok := before.pods[p]; ok {
			sides[rr.role] = true
		}
	}
	n := 0
	var unrequired []string
	for k, was := range before.since {
		now, ok := after.since[k]
		if !ok || now.Sub(was).Abs() < time.Second {
			continue
		}
		n++
		holder, peer, _ := strings.Cut(k, " ")
		touched := touchedPods[holder] || touchedPods[before.ips[peer]]
		if rr, ok := before.pods[holder]; ok && sides[rr.role] {
			touched = true // its sessions with the routers behind the side's address
		}
		if side, ok := strings.CutPrefix(peer, "rr_"); ok && sides[r.routerNS(holder)+"/"+side] {
			touched = true
		}
		if !touched {
			unrequired = append(unrequired, k)
		}
	}
	sort.Strings(unrequired)
	return n, unrequired
}

// routerNS is the namespace of the release whose sides a router's
// container peers with.
func (r *chaosRig) routerNS(container string) string {
	for _, b := range r.routers {
		if b.Name == container {
			return b.ns
		}
	}
	return ""
}

// zombies: sessions of the RR pods towards a meshrr peer that no longer
// exists, and sessions that are not Established once everything is healthy
// (but the core's downstream sessions, which wait for the region RRs that
// chose another core RR).
func (r *chaosRig) zombies() []string {
	ps := r.rrPods()
	ips := map[string]bool{}
	for _, p := range ps {
		ips[p.pod.Status.PodIP] = true
	}
	var out []string
	for name, p := range ps {
		ss, err := cluster.Sessions(r.t, p.opts, name)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		for _, s := range ss {
			switch {
			case (s.Group == "mesh" || s.Group == "upstream" || s.Group == "downstream") && !ips[s.Peer]:
				out = append(out, fmt.Sprintf("%s %s %s %s: no such RR pod", name, s.Group, s.Peer, s.State))
			case s.Group == "downstream":
				// passive by design: each region RR connects to maxPeers of
				// the core RRs, every core RR admits all of them
			case !s.Established:
				out = append(out, fmt.Sprintf("%s %s %s %s", name, s.Group, s.Peer, s.State))
			}
		}
	}
	sort.Strings(out)
	return out
}

// memory reads every RR pod's BIRD and agent memory, by role, name and
// UID (a StatefulSet's replacement has the name of the pod before).
func (r *chaosRig) memory() map[string]podMemory {
	out := map[string]podMemory{}
	for name, p := range r.rrPods() {
		out[p.role+" "+name+" "+string(p.pod.UID)] = readPodMemory(r.t, p)
	}
	return out
}

// memoryGrowth compares the pods that lived through the whole soak, and
// the averages over all RR pods before and after (pods are replaced and
// the core scaled during the soak).
func memoryGrowth(before, after map[string]podMemory) []string {
	var lines []string
	avg := func(m map[string]podMemory) (avg podMemory) {
		for _, v := range m {
			avg.bird, avg.birdAnon, avg.birdFile, avg.birdOwn, avg.agent = avg.bird+v.bird, avg.birdAnon+v.birdAnon, avg.birdFile+v.birdFile, avg.birdOwn+v.birdOwn, avg.agent+v.agent
		}
		if n := int64(len(m)); n > 0 {
			avg.bird, avg.birdAnon, avg.birdFile, avg.birdOwn, avg.agent = avg.bird/n, avg.birdAnon/n, avg.birdFile/n, avg.birdOwn/n, avg.agent/n
		}
		return avg
	}
	for k, b := range before {
		if a, ok := after[k]; ok {
			k = k[:strings.LastIndexByte(k, ' ')] // without the UID
			lines = append(lines, k+" (lived through the soak): "+memoryChange(b, a))
		}
	}
	sort.Strings(lines)
	return append(lines, fmt.Sprintf("average RR pod (%d before, %d after): %s (goal: growth under 5 %% over the hour)", len(before), len(after), memoryChange(avg(before), avg(after))))
}

// memorySnapshot is every RR pod's memory some time into the soak.
type memorySnapshot struct {
	at  time.Duration
	mem map[string]podMemory
}

// memoryOverTime lists, for each pod read in every snapshot (one that
// lived through the soak), BIRD's own count and the agent's RSS at each
// read: growth that levels off is allocation that found its size, growth
// that keeps on is a leak. Nothing with fewer than three reads.
func memoryOverTime(snaps []memorySnapshot) []string {
	if len(snaps) < 3 {
		return nil
	}
	var lines []string
	for k := range snaps[0].mem {
		var bird, agent []string
		for _, s := range snaps {
			m, ok := s.mem[k]
			if !ok {
				bird = nil
				break
			}
			bird = append(bird, fmt.Sprintf("%s %.2f", s.at.Round(time.Minute), mib(m.birdOwn)))
			agent = append(agent, fmt.Sprintf("%.1f", mib(m.agent)))
		}
		if bird != nil {
			lines = append(lines, fmt.Sprintf("%s: BIRD's own (show memory, MiB) %s; agent RSS (MiB) %s", k[:strings.LastIndexByte(k, ' ')], strings.Join(bird, ", "), strings.Join(agent, ", ")))
		}
	}
	sort.Strings(lines)
	return lines
}

// memoryChange says how a pod's memory changed: the BIRD container's
// cgroup (anonymous and file-backed), BIRD's own count (show memory: its
// tables, attributes, protocols and configurations; growth there and not
// in the page cache is BIRD's) and the agent's RSS.
func memoryChange(b, a podMemory) string {
	var parts []string // BIRD's own, line by line, when both reads have them
	for _, k := range slices.Sorted(maps.Keys(a.birdParts)) {
		if bv, ok := b.birdParts[k]; ok && k != "Total" {
			parts = append(parts, fmt.Sprintf("%s %.0f -> %.0f KiB", strings.ToLower(k), float64(bv)/1024, float64(a.birdParts[k])/1024))
		}
	}
	return fmt.Sprintf("BIRD cgroup %.1f -> %.1f MiB (%+.1f %%; anon %.1f -> %.1f, file %.1f -> %.1f), BIRD's own (show memory) %.2f -> %.2f MiB (%+.1f %%), agent RSS %.1f -> %.1f MiB (%+.1f %%)",
		mib(b.bird), mib(a.bird), pct(b.bird, a.bird), mib(b.birdAnon), mib(a.birdAnon), mib(b.birdFile), mib(a.birdFile),
		mib(b.birdOwn), mib(a.birdOwn), pct(b.birdOwn, a.birdOwn), mib(b.agent), mib(a.agent), pct(b.agent, a.agent)) + listSuffix(parts)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func pct(before, after int64) float64 {
	if before == 0 {
		return 0
	}
	return 100 * float64(after-before) / float64(before)
}
