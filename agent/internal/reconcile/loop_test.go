package reconcile

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/backend/bird"
	"github.com/meshrr/meshrr/agent/internal/discovery"
	"github.com/meshrr/meshrr/agent/internal/events"
	"github.com/meshrr/meshrr/agent/internal/metrics"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/plan"
	"github.com/meshrr/meshrr/agent/internal/state"
	"github.com/meshrr/meshrr/agent/internal/testutil/birdlab"
)

// sinceJitter: BIRD keeps state-change times on a monotonic clock and
// converts them to wall time when printing, so two reads of an untouched
// session can differ by a millisecond; a reset moves Since forward by the
// time between the reads (seconds here).
const sinceJitter = 10 * time.Millisecond

// This package's loopback block is 127.0.20.0/24.

const agentConfig = `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: core.core}
reconcile: {debounce: 20ms, statePoll: 200ms, configPoll: 50ms}
%s
`

// recorder keeps Events for assertions.
type recorder struct {
	mu   sync.Mutex
	list []string
}

func (r *recorder) Normal(reason, f string, a ...any)  { r.add(reason, f, a...) }
func (r *recorder) Warning(reason, f string, a ...any) { r.add(reason, f, a...) }
func (r *recorder) add(reason, f string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, reason+": "+fmt.Sprintf(f, a...))
}
func (r *recorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.list, "\n")
}

type agent struct {
	pod     string
	lab     *birdlab.Instance
	cfgPath string
	// statePath is the agent's state file, which outlives its restarts as
	// the pod's volume does
	statePath string
	watcher   *config.Watcher
	loop      *Loop
	metrics   *metrics.Metrics
	events    *recorder
	wrap      func(*bird.Backend) backend.Backend // what the loop drives (nil: the backend)
	cancel    context.CancelFunc
	done      chan struct{}
}

func startAgent(t *testing.T, client *fake.Clientset, pod, addr, extra string) *agent {
	t.Helper()
	return startAgentWith(t, client, pod, addr, extra, nil)
}

// startAgentWith starts an agent whose loop drives wrap(the BIRD backend)
// (nil: the backend itself).
func startAgentWith(t *testing.T, client *fake.Clientset, pod, addr, extra string, wrap func(*bird.Backend) backend.Backend) *agent {
	t.Helper()
	a := &agent{pod: pod, lab: birdlab.Start(t, pod, addr), events: &recorder{}, wrap: wrap}
	a.cfgPath = filepath.Join(t.TempDir(), "config.yaml")
	a.statePath = filepath.Join(t.TempDir(), "state.json")
	a.writeConfig(t, extra)
	a.run(t, client)
	return a
}

func (a *agent) writeConfig(t *testing.T, extra string) {
	t.Helper()
	require.NoError(t, os.WriteFile(a.cfgPath, []byte(fmt.Sprintf(agentConfig, extra)), 0o600))
}

// run starts (or restarts) the agent's loop against its running BIRD.
func (a *agent) run(t *testing.T, client *fake.Clientset) {
	t.Helper()
	var err error
	a.watcher, err = config.NewWatcher(a.cfgPath)
	require.NoError(t, err)
	a.watcher.Current().Backend.Bird = a.lab.BackendConfig()
	be := bird.New(a.lab.BackendConfig())
	a.metrics = metrics.New(be)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a.watcher.OnReload = func(c *config.Config, err error) {
		if err != nil {
			a.events.Warning(events.ReasonConfigRejected, "%v", err)
			return
		}
		c.Backend.Bird = a.lab.BackendConfig()
	}
	disc := discovery.New(client, []string{"core"}, 0, log)
	kept, err := state.Open(a.statePath)
	require.NoError(t, err)
	disc.State = kept
	var driven backend.Backend = be
	if a.wrap != nil {
		driven = a.wrap(be)
	}
	a.loop = &Loop{Backend: driven, Peers: disc, Config: a.watcher, Self: plan.Self{Name: a.pod, Namespace: "core", Addrs: []netip.Addr{a.lab.Addr}},
		Metrics: a.metrics, Events: a.events, Log: log, State: kept}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan struct{})
	go func() {
		defer close(a.done)
		go a.watcher.Run(ctx)
		if err := disc.Start(ctx); err != nil {
			return
		}
		_ = a.loop.Run(ctx)
	}()
	t.Cleanup(a.stop)
}

func (a *agent) stop() {
	a.cancel()
	<-a.done
}

func (a *agent) sessions(t assert.TestingT) map[string]model.Session {
	ss, err := bird.New(a.lab.BackendConfig()).Sessions(context.Background())
	assert.NoError(t, err)
	out := map[string]model.Session{}
	for _, s := range ss {
		out[s.Name] = s
	}
	return out
}

// sessionWith returns the agent's session with a peer, if any.
func (a *agent) sessionWith(t assert.TestingT, peer string) (model.Session, bool) {
	for _, s := range a.sessions(t) {
		if s.Peer == netip.MustParseAddr(peer) {
			return s, true
		}
	}
	return model.Session{}, false
}

// endpointSlice is the slice the EndpointSlice controller keeps for the
// group's headless Service "core".
func endpointSlice(pods map[string]string) *discoveryv1.EndpointSlice {
	controller := true
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "core", Name: "core-abcde",
			Labels: map[string]string{discovery.LabelGroup: "core.core",
				"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io", "kubernetes.io/service-name": "core"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: "core", UID: "core-uid", Controller: &controller}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for pod, addr := range pods {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{addr},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod, Namespace: "core"},
		})
	}
	return s
}

// coreService is the group's headless Service "core" of release "core",
// the owner of endpointSlice's slice.
func coreService() *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "core", Name: "core", UID: "core-uid",
		Labels: map[string]string{discovery.LabelGroup: "core.core", discovery.LabelInstance: "core", discovery.LabelGroupName: "core"}}}
}

func meshName(addr string) string { return "mesh_" + strings.ReplaceAll(addr, ".", "_") }

func waitMeshed(t *testing.T, agents []*agent, pods map[string]string, within time.Duration) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, a := range agents {
			ss := a.sessions(c)
			for pod, addr := range pods {
				if pod == a.pod {
					continue
				}
				assert.True(c, ss[meshName(addr)].Established(), "%s -> %s: %q", a.pod, pod, ss[meshName(addr)].State)
			}
			for name := range ss {
				if strings.HasPrefix(name, "mesh_") && !strings.Contains(fmt.Sprint(pods), strings.ReplaceAll(strings.TrimPrefix(name, "mesh_"), "_", ".")) {
					assert.Fail(c, "stale mesh session", "%s still has %s", a.pod, name)
				}
			}
		}
	}, within, 100*time.Millisecond)
}

// settled returns the agent's sessions once every Established one has
// been up for 2 s: when both ends of a new mesh session connect at once,
// BGP's collision handling may close and reopen it right after it first
// reports Established. The no-reset checks compare against settled state.
func settled(t *testing.T, a *agent) map[string]model.Session {
	t.Helper()
	var ss map[string]model.Session
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		ss = a.sessions(c)
		for name, s := range ss {
			if s.Established() {
				assert.Greater(c, time.Since(s.Since), 2*time.Second, "%s not settled", name)
			}
		}
	}, 15*time.Second, 200*time.Millisecond)
	return ss
}

func TestAgentsMeshScaleOutAndSelfHealWithRealBIRD(t *testing.T) {
	pods := map[string]string{"core-0": "127.0.20.1", "core-1": "127.0.20.2", "core-2": "127.0.20.3"}
	client := fake.NewClientset(endpointSlice(pods), coreService())
	var agents []*agent
	for _, pod := range []string{"core-0", "core-1", "core-2"} {
		agents = append(agents, startAgent(t, client, pod, pods[pod], ""))
	}
	start := time.Now()
	waitMeshed(t, agents, pods, 30*time.Second)
	t.Logf("3 agents: full mesh Established %v after start", time.Since(start).Round(time.Millisecond))
	for _, a := range agents {
		require.NoError(t, a.loop.Ready(context.Background(), true), a.pod)
	}

	// scale out: a 4th RR appears; existing sessions are not reset
	before := settled(t, agents[0])
	// the pod is listed before its agent starts, as with the chart's
	// publishNotReadyAddresses (and the fake clientset drops events between
	// an informer's list and its watch)
	pods["core-3"] = "127.0.20.4"
	_, err := client.DiscoveryV1().EndpointSlices("core").Update(context.Background(), endpointSlice(pods), metav1.UpdateOptions{})
	require.NoError(t, err)
	start = time.Now()
	agents = append(agents, startAgent(t, client, "core-3", pods["core-3"], ""))
	waitMeshed(t, agents, pods, 30*time.Second)
	t.Logf("scale-out 3 -> 4: new RR meshed %v after the EndpointSlice update", time.Since(start).Round(time.Millisecond))
	after := agents[0].sessions(t)
	for name, s := range before {
		if s.Established() {
			assert.WithinDuration(t, s.Since, after[name].Since, sinceJitter, "%s was reset by the scale-out", name)
		}
	}
	assert.Contains(t, agents[0].events.all(), "PeersChanged: mesh peers: added 127.0.20.4 (core/core-3)")

	// self-healing: core-1 is deleted; the others drop its session
	agents[1].stop()
	agents[1].lab.Stop()
	delete(pods, "core-1")
	_, err = client.DiscoveryV1().EndpointSlices("core").Update(context.Background(), endpointSlice(pods), metav1.UpdateOptions{})
	require.NoError(t, err)
	alive := []*agent{agents[0], agents[2], agents[3]}
	waitMeshed(t, alive, pods, 30*time.Second)
	assert.Contains(t, agents[0].events.all(), "PeersChanged: mesh peers: removed 127.0.20.2 (core/core-1)")
	h := testutil.CollectAndCount(agents[0].metrics.ChangeToApplied)
	assert.Equal(t, 1, h)
	n, sum := histogram(t, agents[0].metrics)
	assert.GreaterOrEqual(t, n, uint64(3), "sync, scale-out and removal each observed")
	t.Logf("EndpointSlice change -> configuration applied: %d changes, mean %.1f ms", n, 1000*sum/float64(n))

	// hot reload: a new client group is applied without touching the mesh
	before = settled(t, agents[0])
	applied := testutil.ToFloat64(agents[0].metrics.Applies.WithLabelValues(metrics.ResultApplied))
	agents[0].writeConfig(t, "clients: [{name: routers, ranges: [127.0.21.0/24]}]")
	rangeProto := "cl_routers_r" + rangeHash(t, "127.0.21.0/24")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Contains(c, agents[0].lab.Must(t, "show protocols"), rangeProto)
		// counted once Apply returns, a moment after BIRD runs it
		assert.Greater(c, testutil.ToFloat64(agents[0].metrics.Applies.WithLabelValues(metrics.ResultApplied)), applied)
	}, 10*time.Second, 50*time.Millisecond)
	for name, s := range before {
		if s.Established() {
			assert.WithinDuration(t, s.Since, agents[0].sessions(t)[name].Since, sinceJitter, "%s was reset by a hot reload", name)
		}
	}

	// a bad hot reload is rejected and the last good configuration stays
	require.NoError(t, os.WriteFile(agents[0].cfgPath, []byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 0}\nmesh: {group: core.core}\n"), 0o600))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Contains(c, agents[0].events.all(), "ConfigRejected: identity.asn")
	}, 5*time.Second, 50*time.Millisecond)
	assert.EqualValues(t, 65000, agents[0].watcher.Current().ASN())

	// agent restart: the running configuration is identical, nothing is re-applied
	agents[0].stop()
	agents[0].writeConfig(t, "clients: [{name: routers, ranges: [127.0.21.0/24]}]")
	before = settled(t, agents[0])
	agents[0].run(t, client)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, 1.0, testutil.ToFloat64(agents[0].metrics.Applies.WithLabelValues(metrics.ResultUnchanged)))
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, 0.0, testutil.ToFloat64(agents[0].metrics.Applies.WithLabelValues(metrics.ResultApplied)), "a restarted agent must not re-apply an identical configuration")
	for name, s := range before {
		if s.Established() {
			assert.WithinDuration(t, s.Since, agents[0].sessions(t)[name].Since, sinceJitter, "%s was reset by an agent restart", name)
		}
	}
}

func histogram(t *testing.T, m *metrics.Metrics) (uint64, float64) {
	t.Helper()
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "meshrr_discovery_change_to_applied_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatal("histogram not found")
	return 0, 0
}

// rangeHash finds the range protocol's suffix by rendering the group.
func rangeHash(t *testing.T, prefix string) string {
	t.Helper()
	m := model.Model{ASN: 65000, RouterID: netip.MustParseAddr("127.0.20.1"), LocalAddrs: []netip.Addr{netip.MustParseAddr("127.0.20.1")},
		Groups: []model.PeerGroup{{Name: "routers", Role: model.RoleClients, Ranges: []netip.Prefix{netip.MustParsePrefix(prefix)}}}}
	out, err := bird.Render(m, bird.Options{})
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(out), "protocol bgp cl_routers_r")
	require.True(t, ok)
	return rest[:8]
}

// Draining re-exports every route with GRACEFUL_SHUTDOWN and
// local-preference 0 on the live sessions: a filter change, no reset.
func TestDrainMarksEveryRouteAndResetsNoSession(t *testing.T) {
	pods := map[string]string{"core-0": "127.0.20.11", "core-1": "127.0.20.12"}
	client := fake.NewClientset(endpointSlice(pods), coreService())
	a := startAgent(t, client, "core-0", pods["core-0"], "")
	b := startAgent(t, client, "core-1", pods["core-1"], "")
	waitMeshed(t, []*agent{a, b}, pods, 10*time.Second)
	a.lab.AddInclude(t, "origin", "protocol static meshrr_test_origin { ipv4; route 10.99.0.0/24 blackhole; }\n")
	route := func(c assert.TestingT) string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		lines, err := b.lab.Client.Cmd(ctx, "show route 10.99.0.0/24 all")
		assert.NoError(c, err)
		var s strings.Builder
		for _, l := range lines {
			s.WriteString(l.Text + "\n")
		}
		return s.String()
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Contains(c, route(c), birdlab.Attr("local_pref")+": 100")
	}, 10*time.Second, 100*time.Millisecond)
	before := settled(t, b)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, a.loop.Drain(ctx))
	applied := time.Since(start)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		r := route(c)
		assert.Contains(c, r, birdlab.Attr("local_pref")+": 0")
		assert.Contains(c, r, "(65535,0)")
	}, 5*time.Second, 50*time.Millisecond)
	t.Logf("drain: applied in %s, peer sees local-pref 0 and 65535:0 %s after the request", applied.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	time.Sleep(time.Second) // later reconciles keep draining
	assert.Contains(t, route(t), birdlab.Attr("local_pref")+": 0")
	after := b.sessions(t)
	name := meshName(pods["core-0"])
	require.True(t, after[name].Established())
	assert.WithinDuration(t, before[name].Since, after[name].Since, 10*time.Millisecond, "the drain reset the session")
}

// countedDaemon is the real BIRD backend, counting how often the agent
// asks the daemon its release.
type countedDaemon struct {
	*bird.Backend
	checks *atomic.Int32
}

func (d countedDaemon) CheckDaemon(ctx context.Context) error {
	d.checks.Add(1)
	return d.Backend.CheckDaemon(ctx)
}

// A crashed daemon is noticed within reconcile.daemonPoll: counted, said in
// an Event, and its configuration applied again; the mesh comes back. The
// daemon's release is asked once per daemon start, not at every apply.
func TestDaemonCrashIsNoticedAndReapplied(t *testing.T) {
	pods := map[string]string{"core-0": "127.0.20.21", "core-1": "127.0.20.22"}
	client := fake.NewClientset(endpointSlice(pods), coreService())
	var checks atomic.Int32
	a := startAgentWith(t, client, "core-0", pods["core-0"], "", func(b *bird.Backend) backend.Backend { return countedDaemon{b, &checks} })
	b := startAgent(t, client, "core-1", pods["core-1"], "")
	waitMeshed(t, []*agent{a, b}, pods, 10*time.Second)
	applies := func() float64 { return testutil.ToFloat64(a.metrics.Applies.WithLabelValues(metrics.ResultApplied)) }
	first := applies()
	a.writeConfig(t, "clients: [{name: routers, ranges: [127.0.21.0/24]}]")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Greater(c, applies(), first, "the new client group applied")
	}, 10*time.Second, 20*time.Millisecond)
	assert.EqualValues(t, 1, checks.Load(), "the release asked once for %v applies", applies())
	before := applies()

	start := time.Now()
	a.lab.Crash(t)
	var noticed time.Duration
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.EqualValues(c, 1, testutil.ToFloat64(a.metrics.DaemonRestarts))
		assert.Greater(c, applies(), before, "configuration applied again")
		if noticed == 0 && testutil.ToFloat64(a.metrics.DaemonRestarts) == 1 {
			noticed = time.Since(start)
		}
	}, 5*time.Second, 20*time.Millisecond)
	waitMeshed(t, []*agent{a, b}, pods, 15*time.Second)
	t.Logf("daemon crash: noticed and configuration applied again %s after the restart; mesh Established again %s after it",
		noticed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	assert.Contains(t, a.events.all(), "DaemonRestarted: bird restarted")
	assert.EqualValues(t, 2, checks.Load(), "the restarted daemon's release asked again")
}

// TCP-MD5 (RFC 2385) on real BIRD sessions: matching keys mesh; a rotated
// key on one side only keeps the session down; the same key on both brings
// it back. Keys are read from passwordDir at every reconcile.
func TestMD5KeysFromFilesGuardTheMesh(t *testing.T) {
	pods := map[string]string{"core-0": "127.0.20.31", "core-1": "127.0.20.32"}
	client := fake.NewClientset(endpointSlice(pods), coreService())
	dirs := map[string]string{"core-0": t.TempDir(), "core-1": t.TempDir()}
	setKey := func(pod, key string) {
		require.NoError(t, os.WriteFile(filepath.Join(dirs[pod], "mesh"), []byte(key+"\n"), 0o600))
	}
	setKey("core-0", "first-key")
	setKey("core-1", "first-key")
	// retry every second: a session that could come up would, within the checks below
	extra := "timers: {connectRetry: 1, errorWaitMin: 1, errorWaitMax: 1}\npasswordDir: "
	a := startAgent(t, client, "core-0", pods["core-0"], extra+dirs["core-0"])
	b := startAgent(t, client, "core-1", pods["core-1"], extra+dirs["core-1"])
	waitMeshed(t, []*agent{a, b}, pods, 10*time.Second)
	assert.Contains(t, a.lab.Must(t, "show protocols all "+meshName(pods["core-1"])), "BGP state:          Established")

	setKey("core-1", "rotated-key") // one side only
	name := meshName(pods["core-0"])
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.False(c, b.sessions(c)[name].Established(), "still Established with the old key")
	}, 10*time.Second, 100*time.Millisecond)
	for range 5 { // and it stays down: the keys differ
		time.Sleep(time.Second)
		require.False(t, b.sessions(t)[name].Established(), "Established although the keys differ")
	}
	setKey("core-0", "rotated-key")
	start := time.Now()
	waitMeshed(t, []*agent{a, b}, pods, 15*time.Second)
	t.Logf("md5: mismatched keys kept the session down; matching keys again -> Established in %s", time.Since(start).Round(10*time.Millisecond))
}

// TCP-MD5 fails closed and locally (real BIRD): a malformed client key
// refuses that client group only (a router without the key gets no
// session) while the mesh keeps its key; a required mesh key that goes
// missing takes the mesh sessions down, where they stay rather than run
// without MD5; the key restored brings them back.
func TestMD5KeyMissingOrMalformedRefusesOnlyItsSessions(t *testing.T) {
	pods := map[string]string{"core-0": "127.0.20.41", "core-1": "127.0.20.42"}
	client := fake.NewClientset(endpointSlice(pods), coreService())
	dirs := map[string]string{"core-0": t.TempDir(), "core-1": t.TempDir()}
	for _, d := range dirs {
		require.NoError(t, os.WriteFile(filepath.Join(d, "mesh"), []byte("mesh-key\n"), 0o600))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dirs["core-0"], "client-routers"), []byte("bad\"key\n"), 0o600))
	extra := "timers: {connectRetry: 1, errorWaitMin: 1, errorWaitMax: 1}\nclients:\n  - name: routers\n    ranges: [127.0.21.0/24]\npasswordKeys: [mesh]\npasswordDir: "
	a := startAgent(t, client, "core-0", pods["core-0"], extra+dirs["core-0"])
	b := startAgent(t, client, "core-1", pods["core-1"], extra+dirs["core-1"])
	waitMeshed(t, []*agent{a, b}, pods, 10*time.Second)
	router := birdlab.Start(t, "router", "127.0.21.6")
	router.AddInclude(t, "up", `protocol bgp to_rr { local 127.0.21.6 as 65000; strict bind yes; neighbor 127.0.20.41 as 65000;
  connect delay time 1; connect retry time 1; ipv4 { import all; export all; }; }`)
	for range 4 {
		time.Sleep(time.Second)
		require.NotContains(t, router.Must(t, "show protocols to_rr"), "Established", "a session from the refused client group")
	}
	assert.Contains(t, a.events.all(), `TCPMD5KeyRefused: routers sessions refused, none runs without its TCP-MD5 key: the Secret mounted at `+dirs["core-0"]+`: key "client-routers" must be 1-80`)
	assert.True(t, a.sessions(t)[meshName(pods["core-1"])].Established(), "the mesh keeps its key and its session")

	// the required mesh key goes missing on core-0
	require.NoError(t, os.Remove(filepath.Join(dirs["core-0"], "mesh")))
	name := meshName(pods["core-0"])
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.False(c, b.sessions(c)[name].Established())
	}, 10*time.Second, 100*time.Millisecond)
	for range 4 { // and it stays down: never without MD5
		time.Sleep(time.Second)
		require.False(t, b.sessions(t)[name].Established(), "the mesh session came back without its key")
	}
	assert.Contains(t, a.events.all(), `mesh sessions refused, none runs without its TCP-MD5 key: the Secret mounted at `+dirs["core-0"]+` has no key "mesh"`)
	assert.ErrorContains(t, a.loop.Ready(context.Background(), true), "mesh sessions refused")

	require.NoError(t, os.WriteFile(filepath.Join(dirs["core-0"], "mesh"), []byte("mesh-key\n"), 0o600))
	start := time.Now()
	waitMeshed(t, []*agent{a, b}, pods, 15*time.Second)
	assert.Contains(t, a.events.all(), "TCPMD5KeyAccepted: mesh: its TCP-MD5 key is valid again")
	t.Logf("md5: a malformed client key refused that client group only; a missing mesh key kept the mesh down; restored -> Established in %s", time.Since(start).Round(10*time.Millisecond))
}

// A TCP-MD5 key rollover on real BIRD: with the next key and its window
// written beside the mesh key on every RR, each session switches at its
// point of the window at both ends together; BIRD resets that session
// alone (its protocol's own password, the template's switch restarting
// nothing), once, and the others stay up meanwhile.
func TestMD5KeyRolloverSwitchesOneSessionAtATime(t *testing.T) {
	pods := map[string]string{"core-0": "127.0.20.121", "core-1": "127.0.20.122", "core-2": "127.0.20.123"}
	client := fake.NewClientset(endpointSlice(pods), coreService())
	extra := "timers: {connectDelay: 1, connectRetry: 1, errorWaitMin: 1, errorWaitMax: 1}\npasswordDir: "
	var agents []*agent
	dirs := map[string]string{}
	for _, pod := range []string{"core-0", "core-1", "core-2"} {
		dirs[pod] = t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dirs[pod], "mesh"), []byte("first-key\n"), 0o600))
		agents = append(agents, startAgent(t, client, pod, pods[pod], extra+dirs[pod]))
	}
	waitMeshed(t, agents, pods, 10*time.Second)

	type seen struct {
		since  time.Time
		resets int
		down   time.Time
		downs  []time.Duration
	}
	view := map[string]*seen{} // "pod>peer"
	sample := func() (minUp int) {
		minUp = len(pods)
		for _, a := range agents {
			up := 0
			for _, s := range a.sessions(t) {
				if !strings.HasPrefix(s.Name, "mesh_") {
					continue
				}
				k := a.pod + ">" + s.Peer.String()
				v := view[k]
				if v == nil {
					v = &seen{since: s.Since}
					view[k] = v
				}
				switch {
				case s.Established() && !v.down.IsZero():
					v.downs, v.down = append(v.downs, time.Since(v.down)), time.Time{}
				case !s.Established() && v.down.IsZero():
					v.down = time.Now()
				}
				if s.Established() {
					up++
					if s.Since.Sub(v.since) > sinceJitter {
						v.resets++
					}
					v.since = s.Since
				}
			}
			minUp = min(minUp, up)
		}
		return minUp
	}
	sample()
	from := time.Now().Add(3 * time.Second).Truncate(time.Second)
	until := from.Add(12 * time.Second)
	for _, d := range dirs {
		require.NoError(t, os.WriteFile(filepath.Join(d, "mesh.next"), []byte("second-key\n"), 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(d, "mesh.next-window"), []byte(from.UTC().Format(time.RFC3339)+"/"+until.UTC().Format(time.RFC3339)+"\n"), 0o600))
	}
	minUp := len(pods)
	for time.Now().Before(until.Add(4 * time.Second)) {
		minUp = min(minUp, sample())
		time.Sleep(50 * time.Millisecond)
	}
	waitMeshed(t, agents, pods, 10*time.Second)
	sample()
	for _, a := range agents {
		cfg, err := os.ReadFile(a.lab.BackendConfig().ConfigFile)
		require.NoError(t, err)
		assert.Contains(t, string(cfg), `password "second-key"`, "%s: the template carries the next key", a.pod)
		assert.NotContains(t, string(cfg), "first-key", "%s: no session left on the old key", a.pod)
	}
	assert.Contains(t, agents[0].events.all(), "TCPMD5KeyRollover: mesh: its sessions switch to the next TCP-MD5 key one after the other between "+from.UTC().Format(time.RFC3339))
	for k, v := range view {
		assert.Equal(t, 1, v.resets, "%s: the session reset %d times (once: its own switch)", k, v.resets)
		t.Logf("md5 rollover: %s reset %d time(s), down %v", k, v.resets, v.downs)
	}
	t.Logf("md5 rollover: the fewest mesh sessions Established at one RR during the window: %d of %d", minUp, len(pods)-1)
	// these three sessions switch 0.2 s, 3.6 s and 7.0 s into the 12 s
	// window; each is down for about a second
	assert.Positive(t, minUp, "an RR was left without any mesh session")
}

// Sessions spawned from a client range do not outlive their peers (real
// BIRD): they are passive (no connects to a dead address), and once a
// client has been gone for the graceful-restart time (its own, 2 s, as
// long as meshrr's) the agent removes its session; a client that comes
// back connects again.
func TestClientSessionsOfGonePeersAreRemoved(t *testing.T) {
	pods := map[string]string{"core-0": "127.0.20.51"}
	client := fake.NewClientset(endpointSlice(pods), coreService())
	rr := startAgent(t, client, "core-0", pods["core-0"],
		"gracefulRestart: {restartTime: 2}\nclients:\n  - name: regions\n    ranges: [127.0.21.0/24]\n")
	router := birdlab.Start(t, "router", "127.0.21.5")
	router.AddInclude(t, "up", `protocol bgp to_rr { local 127.0.21.5 as 65000; strict bind yes; neighbor 127.0.20.51 as 65000;
  connect delay time 1; connect retry time 1; graceful restart on; graceful restart time 2; ipv4 { import all; export all; }; }`)
	spawned := func(c assert.TestingT) (model.Session, bool) { return rr.sessionWith(c, "127.0.21.5") }
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		s, ok := spawned(c)
		assert.True(c, ok && s.Established(), "the router's session is up")
	}, 15*time.Second, 100*time.Millisecond)

	router.Stop() // killed: its pod is gone
	var gone time.Duration
	start := time.Now()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		if s, ok := spawned(c); ok {
			assert.NotEqual(c, "Active", s.State, "a spawned session is passive: it never connects out")
			assert.Fail(c, "still there", "%s %s", s.Name, s.State)
			return
		}
		gone = time.Since(start)
	}, 20*time.Second, 100*time.Millisecond)
	t.Logf("client session removed %v after its router died (graceful-restart time 2 s)", gone.Round(10*time.Millisecond))
	assert.EqualValues(t, 1, testutil.ToFloat64(rr.metrics.ClientSessionsReaped))
	assert.NotContains(t, rr.lab.Must(t, "show protocols"), "cl_regions_1", "only the range protocol is left")

	router = birdlab.Start(t, "router2", "127.0.21.5")
	router.AddInclude(t, "up", `protocol bgp to_rr { local 127.0.21.5 as 65000; strict bind yes; neighbor 127.0.20.51 as 65000;
  connect delay time 1; connect retry time 1; graceful restart on; graceful restart time 2; ipv4 { import all; export all; }; }`)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		s, ok := spawned(c)
		assert.True(c, ok && s.Established(), "the router is back")
	}, 15*time.Second, 100*time.Millisecond)
}

// The reaper leaves a gone client's session alone while the daemon keeps
// its routes under the graceful restart and long-lived graceful restart
// the client announced (real BIRD), even when meshrr's own restart time is
// shorter: reaping it would flush routes graceful restart still keeps.
func TestClientSessionsAreNotReapedWhileTheirRoutesAreKept(t *testing.T) {
	pods := map[string]string{"core-0": "127.0.20.61"}
	client := fake.NewClientset(endpointSlice(pods), coreService())
	rr := startAgent(t, client, "core-0", pods["core-0"],
		"gracefulRestart: {restartTime: 1}\nclients:\n  - name: regions\n    ranges: [127.0.21.0/24]\n")
	router := birdlab.Start(t, "router", "127.0.21.7")
	router.AddInclude(t, "up", `protocol static { ipv4; route 10.61.0.0/24 blackhole; }
protocol bgp to_rr { local 127.0.21.7 as 65000; strict bind yes; neighbor 127.0.20.61 as 65000;
  connect delay time 1; connect retry time 1;
  graceful restart on; graceful restart time 3; long lived graceful restart on; long lived stale time 3;
  ipv4 { import all; export all; }; }`)
	session := func(c assert.TestingT) (model.Session, bool) { return rr.sessionWith(c, "127.0.21.7") }
	routed := func() bool { return strings.Contains(rr.lab.Must(t, "show route"), "10.61.0.0/24") }
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		s, _ := session(c)
		assert.True(c, s.Established() && routed(), "the router's session is up and its route imported")
	}, 15*time.Second, 100*time.Millisecond)

	router.Stop() // killed: its sessions drop without a notification
	start := time.Now()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		s, _ := session(c)
		assert.True(c, s.Restarting, "the RR's BIRD keeps the router's routes under graceful restart: %+v", s)
	}, 5*time.Second, 50*time.Millisecond)
	// the router asked for 3 s of graceful restart and 3 s of long-lived
	// stale time; meshrr's own restart time is 1 s
	for time.Since(start) < 5*time.Second {
		s, _ := session(t)
		require.True(t, s.Restarting, "graceful restart (or long-lived) ended early: %+v", s)
		require.True(t, routed(), "the router's route was flushed %s after it died, while graceful restart still kept it (session %+v)", time.Since(start).Round(10*time.Millisecond), s)
		time.Sleep(200 * time.Millisecond)
	}
	var gone time.Duration
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		if s, ok := session(c); ok {
			assert.Fail(c, "still there", "%s %s restarting=%v", s.Name, s.State, s.Restarting)
			return
		}
		gone = time.Since(start)
	}, 20*time.Second, 100*time.Millisecond)
	t.Logf("reaper: the gone client's routes were kept and its session removed %v after it died (it announced 3 s restart + 3 s long-lived stale; meshrr restart time 1 s)", gone.Round(10*time.Millisecond))
	assert.EqualValues(t, 1, testutil.ToFloat64(rr.metrics.ClientSessionsReaped))
}

// maxPrefixAction disable sticks (real BIRD): a client that sent more than
// its limit stays out across BIRD configures (any mesh change, the
// reaper) and the agent's restart, until an operator re-enables it.
func TestAClientDisabledForItsPrefixLimitStaysOut(t *testing.T) {
	pods := map[string]string{"core-0": "127.0.20.71"}
	client := fake.NewClientset(endpointSlice(pods), coreService())
	rr := startAgent(t, client, "core-0", pods["core-0"],
		"gracefulRestart: {restartTime: 1}\nclients:\n  - name: regions\n    ranges: [127.0.21.0/24]\n    maxPrefixes: 2\n    maxPrefixAction: disable\n")
	router := birdlab.Start(t, "router", "127.0.21.8")
	bgp := `protocol bgp to_rr { local 127.0.21.8 as 65000; strict bind yes; neighbor 127.0.20.71 as 65000;
  connect delay time 1; connect retry time 1; error wait time 1, 1; ipv4 { import all; export all; }; }
`
	router.AddInclude(t, "up", `protocol static { ipv4; route 10.71.0.0/24 blackhole; route 10.71.1.0/24 blackhole; route 10.71.2.0/24 blackhole; }
`+bgp)
	peer := netip.MustParseAddr("127.0.21.8")
	up := func(c assert.TestingT) bool {
		for _, s := range rr.sessions(c) {
			if s.Peer == peer && s.Established() {
				return true
			}
		}
		return false
	}
	// out: the RR's only session with the router is the one that keeps it
	// out, never Established (passive, with a key the router does not
	// have); a session BIRD spawned for it means it was admitted again
	// (and, still over its limit, shut down again a moment later)
	disabledOnly := regexp.MustCompile(`^\[cl_regions_x[0-9a-f]{8} (Passive|Idle|Active|Connect)\]$`)
	out := func(c assert.TestingT) bool {
		var names []string
		for _, s := range rr.sessions(c) {
			if s.Peer == peer {
				names = append(names, s.Name+" "+string(s.State))
			}
		}
		return assert.Regexp(c, disabledOnly, fmt.Sprint(names))
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Contains(c, rr.events.all(), "ClientDisabled: regions client 127.0.21.8 sent more than maxPrefixes 2: kept out until an operator re-enables it (meshrr-agent enable 127.0.21.8)")
	}, 20*time.Second, 100*time.Millisecond)
	assert.Equal(t, 1.0, testutil.ToFloat64(rr.metrics.ClientsDisabled))
	require.EventuallyWithT(t, func(c *assert.CollectT) { out(c) }, 10*time.Second, 100*time.Millisecond)

	stayOut := func(why string) {
		t.Helper()
		for range 20 { // the router reconnects every second
			time.Sleep(200 * time.Millisecond)
			require.True(t, out(t), "the disabled client was admitted again after %s", why)
		}
	}
	rr.lab.Must(t, "configure") // what any mesh change or reaper pass does
	stayOut("a configure")
	rr.stop() // the agent's container restarts
	rr.run(t, client)
	stayOut("an agent restart")
	rr.lab.Must(t, "configure")
	stayOut("a configure after the restart")

	// the router is fixed; the operator re-enables it
	router.AddInclude(t, "up", "protocol static { ipv4; route 10.71.0.0/24 blackhole; }\n"+bgp)
	assert.ErrorIs(t, rr.loop.Enable(context.Background(), netip.MustParseAddr("127.0.21.99")), ErrNotDisabled)
	start := time.Now()
	require.NoError(t, rr.loop.Enable(context.Background(), peer))
	require.EventuallyWithT(t, func(c *assert.CollectT) { assert.True(c, up(c)) }, 15*time.Second, 100*time.Millisecond)
	t.Logf("disabled client kept out across configures and an agent restart; re-enabled -> Established in %s", time.Since(start).Round(10*time.Millisecond))
	assert.Contains(t, rr.events.all(), "ClientEnabled: regions client 127.0.21.8 admitted again: re-enabled by an operator")
	assert.Equal(t, 0.0, testutil.ToFloat64(rr.metrics.ClientsDisabled))
}

// oldDaemon is the real BIRD backend with the daemon's version answered as
// an unsupported release would (BIRD 2.0.12, Debian 12's).
type oldDaemon struct{ *bird.Backend }

func (oldDaemon) CheckDaemon(context.Context) error {
	return bird.Version{Major: 2, Minor: 0, Patch: 12}.Supported()
}

// An unsupported daemon gets nothing: the agent applies no configuration
// to it, the pod is not ready with the reason, and one Warning Event says
// which daemon and what is supported, however often the loop retries.
func TestAnUnsupportedDaemonGetsNothing(t *testing.T) {
	pods := map[string]string{"core-0": "127.0.20.91", "core-1": "127.0.20.92"}
	client := fake.NewClientset(endpointSlice(pods), coreService())
	a := startAgentWith(t, client, "core-0", pods["core-0"], "", func(b *bird.Backend) backend.Backend { return oldDaemon{b} })
	before, err := os.ReadFile(a.lab.ConfigFile)
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		err := a.loop.Ready(context.Background(), true)
		if assert.Error(c, err) {
			assert.Contains(c, err.Error(), "BIRD 2.0.12 is not supported (meshrr supports BIRD 2.17 or a later 2.x, or BIRD 3.1 or a later 3.x)")
		}
	}, 10*time.Second, 50*time.Millisecond)
	time.Sleep(time.Second) // retries meanwhile
	after, err := os.ReadFile(a.lab.ConfigFile)
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "nothing applied")
	assert.Zero(t, testutil.ToFloat64(a.metrics.Applies.WithLabelValues(metrics.ResultApplied)))
	assert.Equal(t, 1, strings.Count(a.events.all(), "DaemonUnsupported: BIRD 2.0.12 is not supported"), a.events.all())
}
