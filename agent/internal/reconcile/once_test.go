package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/metrics"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/plan"
	"github.com/meshrr/meshrr/agent/internal/state"
)

// recordingBackend records what the loop asks of a daemon; it renders
// the neighbour list so that configurations differ when peers do.
type recordingBackend struct {
	applies  [][]byte
	failNext error
	sessions []model.Session
}

func (b *recordingBackend) Name() string { return "recording" }
func (b *recordingBackend) Render(m model.Model) ([]byte, error) {
	var out []byte
	if m.Draining {
		out = append(out, "draining\n"...)
	}
	for _, g := range m.Groups {
		for _, n := range g.Neighbors {
			out = append(out, []byte(string(g.Name)+" "+n.Addr.String()+"\n")...)
		}
	}
	return out, nil
}
func (b *recordingBackend) Current(context.Context) ([]byte, error) { return nil, nil }
func (b *recordingBackend) Apply(_ context.Context, cfg []byte) error {
	if err := b.failNext; err != nil {
		b.failNext = nil
		return err
	}
	b.applies = append(b.applies, cfg)
	return nil
}
func (b *recordingBackend) Sessions(context.Context) ([]model.Session, error) { return b.sessions, nil }
func (b *recordingBackend) Ping(context.Context) error                        { return nil }
func (b *recordingBackend) Started(context.Context) (time.Time, error) {
	return time.Unix(1, 0), nil
}

type staticPeers struct{ snap model.Snapshot }

func (s *staticPeers) Snapshot() (model.Snapshot, time.Time) { return s.snap, time.Time{} }
func (s *staticPeers) Changes() <-chan struct{}              { return nil }

type staticConfig struct{ c *config.Config }

func (s staticConfig) Current() *config.Config  { return s.c }
func (s staticConfig) Changes() <-chan struct{} { return nil }

func newTestLoop(t *testing.T, snap model.Snapshot) (*Loop, *recordingBackend, *recorder) {
	cfg, err := config.Parse([]byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: g}\n"))
	require.NoError(t, err)
	be := &recordingBackend{}
	ev := &recorder{}
	l := &Loop{Backend: be, Peers: &staticPeers{snap}, Config: staticConfig{cfg},
		Self:    plan.Self{Name: "p0", Namespace: "ns", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		Metrics: metrics.New(be), Events: ev, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		holdDown: map[string]time.Time{}}
	return l, be, ev
}

func members(addrs ...string) model.Snapshot {
	s := model.Snapshot{Synced: true}
	for i, a := range addrs {
		s.Members = append(s.Members, model.Member{Namespace: "ns", Group: "g", Pod: "p" + string(rune('0'+i)), Addrs: []netip.Addr{netip.MustParseAddr(a)}})
	}
	return s
}

func TestUnsyncedDiscoveryChangesNothing(t *testing.T) {
	l, be, _ := newTestLoop(t, model.Snapshot{})
	reconcileTwice(t, l)
	assert.Empty(t, be.applies)
	err := l.Ready(context.Background(), false)
	assert.ErrorIs(t, err, ErrNotReady)
	nr, ok := errors.AsType[*NotReady](err)
	require.True(t, ok, "a typed reason: %v", err)
	assert.Equal(t, "waiting for discovery to sync", nr.Reason)
}

func TestFailedApplyIsReportedAndRetriedThenIdenticalConfigsAreSkipped(t *testing.T) {
	l, be, ev := newTestLoop(t, members("10.0.0.1", "10.0.0.2"))
	be.failNext = errors.New("daemon said no")
	err := l.ReconcileOnce(context.Background())
	require.ErrorContains(t, err, "daemon said no")
	assert.Contains(t, ev.all(), "ApplyFailed: recording rejected or failed to apply the configuration; it keeps the previous one: daemon said no")
	assert.Equal(t, 1.0, testutil.ToFloat64(l.Metrics.Applies.WithLabelValues(metrics.ResultError)))
	assert.ErrorIs(t, l.Ready(context.Background(), false), ErrNotReady)

	require.NoError(t, l.ReconcileOnce(context.Background()))
	require.Len(t, be.applies, 1)
	assert.Equal(t, "mesh 10.0.0.2\n", string(be.applies[0]))
	require.NoError(t, l.ReconcileOnce(context.Background()))
	assert.Len(t, be.applies, 1, "an identical configuration is not applied again")
	assert.Equal(t, 1.0, testutil.ToFloat64(l.Metrics.Applies.WithLabelValues(metrics.ResultUnchanged)))
	assert.Equal(t, 1.0, testutil.ToFloat64(l.Metrics.ConfiguredPeers.WithLabelValues("mesh")))
}

func TestReadinessWaitsForAnEstablishedMeshSession(t *testing.T) {
	l, be, _ := newTestLoop(t, members("10.0.0.1", "10.0.0.2"))
	reconcileTwice(t, l)
	assert.NoError(t, l.Ready(context.Background(), false))
	err := l.Ready(context.Background(), true)
	assert.ErrorContains(t, err, "none of 1 mesh/upstream sessions is Established")
	be.sessions = []model.Session{{Group: "mesh", Peer: netip.MustParseAddr("10.0.0.2"), State: "Established"}}
	assert.NoError(t, l.Ready(context.Background(), true))

	alone, _, _ := newTestLoop(t, members("10.0.0.1"))
	reconcileTwice(t, alone)
	assert.NoError(t, alone.Ready(context.Background(), true), "a group's first pod is ready without peers")
}

// A pod that has served stays ready when it later loses every mesh and
// upstream session: the route servers' side a, one pod, whose only peer
// (side b's one pod) is on a lost node or across a partition. Taking it
// out would withdraw side a's address while side b is gone: every
// session of the group at once. An agent restarted meanwhile keeps it in
// service (the state file); a new pod (no state) still waits.
func TestAPodInServiceStaysReadyWhenItLosesEveryMeshSession(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	agent := func() (*Loop, *recordingBackend) {
		l, be, _ := newTestLoop(t, members("10.0.0.1", "10.0.0.2"))
		st, err := state.Open(file)
		require.NoError(t, err)
		l.State = st
		l.restore()
		reconcileTwice(t, l)
		return l, be
	}
	l, be := agent()
	require.ErrorContains(t, l.Ready(context.Background(), true), "none of 1 mesh/upstream sessions is Established", "a new pod waits for its mesh")
	be.sessions = []model.Session{{Group: "mesh", Peer: netip.MustParseAddr("10.0.0.2"), State: "Established"}}
	require.NoError(t, l.Ready(context.Background(), true))
	assert.False(t, l.Status().InService.IsZero())

	be.sessions = []model.Session{{Group: "mesh", Peer: netip.MustParseAddr("10.0.0.2"), State: "Active"}}
	assert.NoError(t, l.Ready(context.Background(), true), "in service: losing the mesh does not take it out")

	restarted, _ := agent() // the agent's container restarts, the pod stays
	assert.NoError(t, restarted.Ready(context.Background(), true), "the restarted agent keeps the pod in service")

	require.NoError(t, os.Remove(file)) // a new pod: an empty memory volume
	fresh, _ := agent()
	assert.ErrorContains(t, fresh.Ready(context.Background(), true), "none of 1 mesh/upstream sessions is Established")

	// the other conditions still take a pod in service out
	fresh.setStatus(func(s *Status) { s.InService, s.Applied = time.Now(), false })
	assert.ErrorContains(t, fresh.Ready(context.Background(), true), "configuration not applied yet")
}

// TCP-MD5 keys never reach logs, Events or metrics, even when the daemon
// echoes one in an error.
func TestKeysNeverReachLogsEventsOrMetrics(t *testing.T) {
	dir := t.TempDir()
	const key = "s3cr3t-md5-key"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mesh"), []byte(key+"\n"), 0o600))
	cfg, err := config.Parse([]byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: g}\npasswordDir: " + dir + "\n"))
	require.NoError(t, err)
	be := &recordingBackend{failNext: fmt.Errorf(`line 12: password "%s" rejected`, key)}
	ev := &recorder{}
	var logs bytes.Buffer
	l := &Loop{Backend: be, Peers: &staticPeers{members("10.0.0.1", "10.0.0.2")}, Config: staticConfig{cfg},
		Self:    plan.Self{Name: "p0", Namespace: "ns", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		Metrics: metrics.New(be), Events: ev, Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		holdDown: map[string]time.Time{}}
	applyErr := l.ReconcileOnce(context.Background())
	require.ErrorContains(t, applyErr, `password "<redacted>" rejected`)
	l.Log.Warn("reconcile failed; retrying", "error", applyErr) // as Run logs it
	reconcileTwice(t, l)
	require.Len(t, be.applies, 1)

	var metricsText bytes.Buffer
	mfs, err := l.Metrics.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		fmt.Fprintln(&metricsText, mf.String())
	}
	for where, text := range map[string]string{"logs": logs.String(), "events": ev.all(), "metrics": metricsText.String(), "error": applyErr.Error()} {
		assert.NotContains(t, text, key, where)
	}
	assert.Contains(t, ev.all(), "<redacted>")

	// a key the daemons cannot take refuses its session group (no session
	// rather than one without the key), named by its file only; the
	// reconcile itself goes on
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mesh"), []byte(`bad"`+key), 0o600))
	reconcileTwice(t, l)
	assert.NotContains(t, string(be.applies[len(be.applies)-1]), "mesh 10.0.0.2", "the mesh session without its key")
	assert.Contains(t, ev.all(), `TCPMD5KeyRefused: mesh sessions refused, none runs without its TCP-MD5 key: the Secret mounted at `+dir+`: key "mesh" must be 1-80 printable ASCII characters`)
	assert.NotContains(t, ev.all(), key)
	require.ErrorContains(t, l.Ready(context.Background(), true), "mesh sessions refused")
}

type jitteryStart struct {
	recordingBackend
	at          []time.Time
	failStarted int // the next reads that find the daemon down
}

func (b *jitteryStart) Started(context.Context) (time.Time, error) {
	if b.failStarted > 0 {
		b.failStarted--
		return time.Time{}, errors.New("connect: no such file or directory")
	}
	t := b.at[0]
	if len(b.at) > 1 {
		b.at = b.at[1:]
	}
	return t, nil
}

// BIRD's printed start time comes late by up to one event loop iteration:
// a millisecond when idle, hundreds when busy (measured: 103 ms with 500
// clients taking a table), and the next read may be early again. None of
// that is a restart; a start time after the agent last saw the daemon
// running is, and so is one seen after the daemon was down for a while.
func TestStartTimeJitterIsNotARestart(t *testing.T) {
	l, _, ev := newTestLoop(t, members("10.0.0.1"))
	base := time.Date(2026, 11, 22, 3, 8, 22, 123e6, time.UTC)
	clock := base.Add(time.Minute) // the daemon has run for a minute
	l.Now = func() time.Time { clock = clock.Add(time.Second); return clock }
	be := &jitteryStart{at: []time.Time{
		base, base.Add(-time.Millisecond), base.Add(103 * time.Millisecond), base.Add(2 * time.Millisecond), base.Add(900 * time.Millisecond),
		base.Add(65500 * time.Millisecond), // restarted after the read at base+65s
		base.Add(65600 * time.Millisecond), // the new run, printed late
		base.Add(65500 * time.Millisecond),
	}}
	l.Backend = be
	l.Metrics = metrics.New(be)
	var restarts []bool
	for range 8 {
		restarts = append(restarts, l.daemonRestarted(context.Background()))
	}
	assert.Equal(t, []bool{false, false, false, false, false, true, false, false}, restarts)
	assert.Equal(t, 1.0, testutil.ToFloat64(l.Metrics.DaemonRestarts))
	assert.Equal(t, 1, strings.Count(ev.all(), "DaemonRestarted"))

	// down for three polls (no answer), then a new run
	be.failStarted = 3
	be.at = []time.Time{clock.Add(2500 * time.Millisecond)}
	restarts = nil
	for range 4 {
		restarts = append(restarts, l.daemonRestarted(context.Background()))
	}
	assert.Equal(t, []bool{false, false, false, true}, restarts)
	assert.Equal(t, 2.0, testutil.ToFloat64(l.Metrics.DaemonRestarts))
}

// limitedBackend is a recordingBackend whose daemon has licence limits.
type limitedBackend struct {
	recordingBackend
	peerLimit int
}

func (b *limitedBackend) Usage(m model.Model, ss []model.Session) []backend.Usage {
	n := 0
	for _, g := range m.Groups {
		n += len(g.Neighbors)
	}
	return []backend.Usage{{Resource: "bgp-peers", Used: n + len(ss), Limit: b.peerLimit}}
}

// A plan beyond the licence is applied (the daemon enforces its licence)
// but reported: the usage and the limit as metrics every reconcile, one
// Warning Event when the limit is first exceeded.
func TestLicenceLimitsAreReportedOnce(t *testing.T) {
	l, _, ev := newTestLoop(t, members("10.0.0.1", "10.0.0.2", "10.0.0.3"))
	be := &limitedBackend{peerLimit: 1}
	be.sessions = []model.Session{{Group: "clients", Peer: netip.MustParseAddr("192.0.2.1")}}
	l.Backend = be
	reconcileTwice(t, l)
	reconcileTwice(t, l)
	assert.Len(t, be.applies, 1, "applied all the same")
	assert.Equal(t, 3.0, testutil.ToFloat64(l.Metrics.LicenseUsage.WithLabelValues("bgp-peers")))
	assert.Equal(t, 1.0, testutil.ToFloat64(l.Metrics.LicenseLimit.WithLabelValues("bgp-peers")))
	var warned []string
	for _, e := range strings.Split(ev.all(), "\n") {
		if strings.HasPrefix(e, "LicenseLimitExceeded") {
			warned = append(warned, e)
		}
	}
	assert.Equal(t, []string{"LicenseLimitExceeded: bgp-peers: 3 planned or received, the licence allows 1 (backend.crpd.licenseLimits); recording may refuse the excess"}, warned)

	be.peerLimit = 0 // no limit
	reconcileTwice(t, l)
	assert.Equal(t, 0.0, testutil.ToFloat64(l.Metrics.LicenseLimit.WithLabelValues("bgp-peers")))
}

// What discovery refuses is reported once: a log line each and one Event
// for the new ones, not one per reconcile.
func TestRejectedEndpointsAreReportedOnce(t *testing.T) {
	snap := members("10.0.0.1", "10.0.0.2")
	snap.Rejected = []string{"EndpointSlice core/forged is not managed by the EndpointSlice controller"}
	l, be, ev := newTestLoop(t, snap)
	reconcileTwice(t, l)
	reconcileTwice(t, l)
	assert.Equal(t, 1, strings.Count(ev.all(), "UntrustedEndpoints: ignored, not trusted: EndpointSlice core/forged"))
	assert.Equal(t, "mesh 10.0.0.2\n", string(be.applies[0]), "the trusted members are used")
}

// A drain while discovery is not synced (the API is down, or the agent
// restarted during an outage) marks the last applied configuration, or
// fails when there is none: it never reports success without marking.
func TestDrainWithoutDiscoveryMarksTheLastConfigurationOrFails(t *testing.T) {
	peers := &staticPeers{members("10.0.0.1", "10.0.0.2")}
	l, be, _ := newTestLoop(t, model.Snapshot{})
	l.Peers = peers
	reconcileTwice(t, l)
	require.Len(t, be.applies, 1)

	peers.snap = model.Snapshot{} // the API went away
	l.draining = true
	reconcileTwice(t, l)
	require.Len(t, be.applies, 2)
	assert.Equal(t, "draining\nmesh 10.0.0.2\n", string(be.applies[1]), "the mesh is kept and marked")
	assert.True(t, l.Status().Model.Draining)

	fresh, be2, _ := newTestLoop(t, model.Snapshot{}) // restarted during the outage
	fresh.draining = true
	err := fresh.ReconcileOnce(context.Background())
	require.ErrorContains(t, err, "cannot drain: discovery has not synced")
	assert.Empty(t, be2.applies)
}

// A view that drops most of the mesh at once (a deleted or relabelled
// Service, an uninstall) is not applied as is: the peers it would remove
// stay for reconcile.shrinkHold while additions apply at once, and the
// removal goes through only when a later look still plans it. A view
// without this pod changes nothing at all.
func TestShrunkenViewsAreHeldAndAViewWithoutThisPodIsIgnored(t *testing.T) {
	now := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	unlisted := members("10.0.0.1", "10.0.0.2", "10.0.0.3")
	unlisted.Members = unlisted.Members[1:] // a new pod (p0), not listed yet
	peers := &staticPeers{unlisted}
	l, be, ev := newTestLoop(t, model.Snapshot{})
	l.Peers, l.Now = peers, func() time.Time { return now }
	reconcileTwice(t, l)
	assert.Empty(t, be.applies, "nothing planned before discovery lists the pod")
	assert.NotContains(t, ev.all(), "ChangeHeld", "no alarm for a pod that just started")
	peers.snap = members("10.0.0.1", "10.0.0.2", "10.0.0.3")
	reconcileTwice(t, l)
	require.Equal(t, "mesh 10.0.0.2\nmesh 10.0.0.3\n", string(be.applies[0]))

	// the Service is deleted: the view no longer lists this pod
	peers.snap = model.Snapshot{Synced: true}
	reconcileTwice(t, l)
	assert.Len(t, be.applies, 1, "nothing applied")
	assert.Contains(t, ev.all(), "ChangeHeld: discovery does not list this pod")
	assert.Equal(t, 1.0, testutil.ToFloat64(l.Metrics.ChangeHeld))

	// the view comes back with one peer replaced: the addition applies at
	// once, the removal of 10.0.0.2 is held (1 of 2 is not more than half)
	peers.snap = members("10.0.0.1", "10.0.0.3", "10.0.0.4")
	reconcileTwice(t, l)
	assert.Equal(t, "mesh 10.0.0.3\nmesh 10.0.0.4\n", string(be.applies[len(be.applies)-1]), "below the share: applied as planned")
	assert.Equal(t, 0.0, testutil.ToFloat64(l.Metrics.ChangeHeld))

	// now only this pod is left in the view: both peers are kept
	peers.snap = members("10.0.0.1")
	reconcileTwice(t, l)
	assert.Equal(t, "mesh 10.0.0.3\nmesh 10.0.0.4\n", string(be.applies[len(be.applies)-1]), "held")
	assert.Contains(t, ev.all(), "ChangeHeld: the plan removes 2 of 2 mesh peers at once")
	now = now.Add(10 * time.Second)
	peers.snap = members("10.0.0.1", "10.0.0.5") // a new pod meanwhile: added at once
	reconcileTwice(t, l)
	assert.Equal(t, "mesh 10.0.0.3\nmesh 10.0.0.4\nmesh 10.0.0.5\n", string(be.applies[len(be.applies)-1]))
	now = now.Add(25 * time.Second) // past the 30 s hold: confirmed
	reconcileTwice(t, l)
	assert.Equal(t, "mesh 10.0.0.5\n", string(be.applies[len(be.applies)-1]))
	assert.Equal(t, 0.0, testutil.ToFloat64(l.Metrics.ChangeHeld))
}

// Routes beyond what BIRD's memory limit holds are reported, not acted
// on: routes held, need and limit as metrics every reconcile, one Warning
// Event when the need first exceeds the limit, none while it stays
// there, a new one only after it has been covered again.
func TestMemoryBelowTheRoutesNeedIsReportedOnce(t *testing.T) {
	l, be, ev := newTestLoop(t, members("10.0.0.1", "10.0.0.2"))
	cfg, err := config.Parse([]byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: g}\nbackend: {bird: {memoryLimit: 64Mi, bytesPerRoute: 100, baseMemory: 16Mi}}\n"))
	require.NoError(t, err)
	l.Config = staticConfig{cfg}
	held := func(n ...int) {
		be.sessions = nil
		for i, v := range n {
			be.sessions = append(be.sessions, model.Session{Group: "mesh", Peer: netip.AddrFrom4([4]byte{10, 0, 0, byte(2 + i)}), Imported: v})
		}
		reconcileTwice(t, l)
	}
	warnings := func() int { return strings.Count(ev.all(), "MemoryLimitLow") }

	held(100_000, 100_000) // 16 MiB + 20,000,000 B: about 35 MiB
	assert.Equal(t, 200_000.0, testutil.ToFloat64(l.Metrics.RoutesHeld))
	assert.Equal(t, float64(16<<20+20_000_000), testutil.ToFloat64(l.Metrics.MemoryNeeded))
	assert.Equal(t, float64(64<<20), testutil.ToFloat64(l.Metrics.MemoryLimit))
	assert.Zero(t, warnings())

	held(400_000, 300_000) // 16 MiB + 70,000,000 B: about 82 MiB
	held(400_000, 300_001)
	assert.Equal(t, 1, warnings(), "one Event while the need stays above the limit:\n%s", ev.all())
	assert.Contains(t, ev.all(), "MemoryLimitLow: 700000 routes held need about 82 MiB (100 bytes per route and 16 MiB base, backend.bird), above recording's memory limit of 64 MiB: raise resources.bird.limits.memory")

	held(1000)
	held(500_000, 500_000)
	assert.Equal(t, 2, warnings(), "reported again after the limit covered the routes")
}

// Without a memory limit (or with cRPD, which the chart gives none) the
// agent neither compares nor exports the memory metrics.
func TestNoMemoryLimitNoComparison(t *testing.T) {
	l, be, ev := newTestLoop(t, members("10.0.0.1", "10.0.0.2"))
	be.sessions = []model.Session{{Group: "mesh", Peer: netip.MustParseAddr("10.0.0.2"), Imported: 50_000_000}}
	reconcileTwice(t, l)
	assert.NotContains(t, ev.all(), "MemoryLimitLow")
	assert.Zero(t, testutil.ToFloat64(l.Metrics.MemoryLimit))
}

// An agent restarted while a shrunken view is held (or that starts on one)
// keeps the hold of the agent before: the peers stay configured until the
// shrink hold, counted from when it was first planned, is over.
func TestAHeldShrinkSurvivesAnAgentRestart(t *testing.T) {
	now := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	file := filepath.Join(t.TempDir(), "state.json")
	var running []byte // the daemon's configuration, which outlives the agent
	agent := func(snap model.Snapshot) (*Loop, *recordingBackend) {
		l, be, _ := newTestLoop(t, snap)
		st, err := state.Open(file)
		require.NoError(t, err)
		l.State, l.Now, l.applied = st, func() time.Time { return now }, running
		l.restore()
		return l, be
	}
	l, be := agent(members("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"))
	reconcileTwice(t, l)
	full := "mesh 10.0.0.2\nmesh 10.0.0.3\nmesh 10.0.0.4\n"
	require.Equal(t, full, string(be.applies[0]))
	running = be.applies[0]

	// the agent's container restarts while the view has lost three of
	// four members (an API hiccup, Services deleted)
	shrunk := members("10.0.0.1")
	l, be = agent(shrunk)
	reconcileTwice(t, l)
	assert.Empty(t, be.applies, "held: the peers stay configured, nothing to apply")
	assert.Equal(t, 1.0, testutil.ToFloat64(l.Metrics.ChangeHeld))

	// restarted again 20 s into the hold: 10 s are left, not 30
	now = now.Add(20 * time.Second)
	l, be = agent(shrunk)
	reconcileTwice(t, l)
	assert.Empty(t, be.applies)
	now = now.Add(10 * time.Second)
	reconcileTwice(t, l)
	require.Len(t, be.applies, 1)
	assert.Empty(t, string(be.applies[0]), "confirmed after the hold that began before the restarts")
}

// A client kept out for its prefix limit is admitted again once the
// group's reenableAfter has passed, or at once when the group no longer
// disables; never before, whatever the daemon says meanwhile.
func TestDisabledClientsAreReadmittedAfterReenableAfterOrWhenTheGroupChanges(t *testing.T) {
	now := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	l, be, ev := newTestLoop(t, members("10.0.0.1"))
	parse := func(action string) {
		cfg, err := config.Parse([]byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: g}\nclients:\n  - {name: edge, ranges: [10.9.0.0/16], maxPrefixes: 10, " + action + "}\n"))
		require.NoError(t, err)
		l.Config = staticConfig{cfg}
	}
	parse("maxPrefixAction: disable, reenableAfter: 10m")
	l.Now = func() time.Time { return now }
	peer := netip.MustParseAddr("10.9.0.5")
	be.sessions = []model.Session{{Name: "cl_edge_1", Group: "edge", Peer: peer, State: "Down", LimitDown: true}}
	disabledIn := func() []netip.Addr {
		for _, g := range l.Status().Model.Groups {
			if g.Name == "edge" {
				return g.Disabled
			}
		}
		return nil
	}
	reconcileTwice(t, l)
	assert.Equal(t, []netip.Addr{peer}, disabledIn())
	assert.Contains(t, ev.all(), "ClientDisabled: edge client 10.9.0.5 sent more than maxPrefixes 10: kept out until 2026-12-06T07:10:00Z (reenableAfter 10m0s) or an operator re-enables it")

	be.sessions = []model.Session{{Name: "cl_edge_x1", Group: "edge", Peer: peer, State: "Down"}} // the daemon refuses it
	now = now.Add(9 * time.Minute)
	reconcileTwice(t, l)
	assert.Equal(t, []netip.Addr{peer}, disabledIn(), "still out before reenableAfter")
	now = now.Add(time.Minute)
	reconcileTwice(t, l)
	assert.Empty(t, disabledIn())
	assert.Contains(t, ev.all(), "ClientEnabled: edge client 10.9.0.5 admitted again: reenableAfter has passed")

	// disabled again, then the operator changes the action to restart
	be.sessions = []model.Session{{Name: "cl_edge_2", Group: "edge", Peer: peer, State: "Down", LimitDown: true}}
	parse("maxPrefixAction: disable")
	reconcileTwice(t, l)
	assert.Equal(t, []netip.Addr{peer}, disabledIn())
	assert.Contains(t, ev.all(), "kept out until an operator re-enables it (meshrr-agent enable 10.9.0.5)")
	parse("maxPrefixAction: restart")
	reconcileTwice(t, l)
	assert.Empty(t, disabledIn())
	assert.Contains(t, ev.all(), "ClientEnabled: edge client 10.9.0.5 admitted again: its group no longer disables clients over the limit")
}

// reconcileTwice runs ReconcileOnce, which must succeed, and at once
// again: with nothing changed in between, the second pass changes nothing
// (no apply, no Event, the same status and applied configuration).
func reconcileTwice(t *testing.T, l *Loop) {
	t.Helper()
	require.NoError(t, l.ReconcileOnce(context.Background()))
	applied, st := l.applied, l.Status()
	applies := testutil.ToFloat64(l.Metrics.Applies.WithLabelValues(metrics.ResultApplied))
	var events string
	if r, ok := l.Events.(*recorder); ok {
		events = r.all()
	}
	require.NoError(t, l.ReconcileOnce(context.Background()), "the second reconcile")
	assert.Equal(t, applies, testutil.ToFloat64(l.Metrics.Applies.WithLabelValues(metrics.ResultApplied)), "the second reconcile applied again")
	assert.Equal(t, string(applied), string(l.applied), "the second reconcile changed the configuration")
	assert.Equal(t, st, l.Status(), "the second reconcile changed the status")
	if r, ok := l.Events.(*recorder); ok {
		assert.Equal(t, events, r.all(), "the second reconcile recorded Events")
	}
}
