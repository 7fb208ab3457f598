// Package reconcile is the agent's loop: it waits for a change (discovery,
// configuration, the periodic session-state poll, or a retry), coalesces bursts,
// plans, renders, skips identical configurations and applies the rest,
// retrying failures with backoff. It owns the only mutable state of the
// pipeline: the last applied configuration and the upstream hold-downs.
package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/events"
	"github.com/meshrr/meshrr/agent/internal/metrics"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/plan"
	"github.com/meshrr/meshrr/agent/internal/state"
)

// PeerSource is discovery.
type PeerSource interface {
	// Snapshot returns the membership and the time of the oldest change
	// not reported before (zero if none).
	Snapshot() (model.Snapshot, time.Time)
	Changes() <-chan struct{}
}

// ConfigSource is the configuration watcher.
type ConfigSource interface {
	Current() *config.Config
	Changes() <-chan struct{}
}

// Loop reconciles one daemon.
type Loop struct {
	Backend backend.Backend
	// Reader reads the daemon's sessions (the agent's shared
	// backend.SessionCache); nil: Backend.
	Reader backend.SessionReader
	Peers  PeerSource
	Config ConfigSource
	Self   plan.Self
	// ClusterAddrs are the cluster's own addresses no client range may
	// admit unguarded (plan.Input.ClusterAddrs).
	ClusterAddrs []plan.ClusterAddr
	Metrics      *metrics.Metrics
	Events       events.Recorder
	Log          *slog.Logger
	Now          func() time.Time
	// State keeps the peers last applied and a held shrink across agent
	// restarts (nil: in memory only).
	State *state.Store

	applied      []byte
	meshed       map[model.Role][]model.Neighbor // mesh and upstream peers last applied
	disabled     map[netip.Addr]state.Disabled   // clients kept out for their prefix limit
	holdDown     map[string]time.Time
	neighbors    map[netip.Addr]model.Neighbor // applied explicit peers
	neighborRole map[netip.Addr]string
	pendingSince time.Time

	startedSeen time.Time         // when the agent last asked a running daemon its start time
	overLimit   map[string]bool   // licence limits exceeded, as last reported
	memoryLow   bool              // the memory limit below the routes' need, as last reported
	rejected    []string          // what discovery refused, as last reported
	refused     map[string]string // session groups refused for their TCP-MD5 key, as last reported
	exposed     map[string]string // client groups refused for admitting the cluster's networks, as last reported
	held        string            // why a change is held ("" when none)
	heldSince   time.Time         // when the held shrink was first planned
	reqOnce     sync.Once
	requests    chan request
	draining    bool // owned by Run

	mu     sync.Mutex
	status Status
}

func (l *Loop) sessions(ctx context.Context) ([]model.Session, error) {
	if l.Reader != nil {
		return l.Reader.Sessions(ctx)
	}
	return l.Backend.Sessions(ctx)
}

// request is work Run does between reconciles, for another goroutine.
type request struct {
	run   func(ctx context.Context) error
	reply chan error
}

func (l *Loop) requestCh() chan request {
	l.reqOnce.Do(func() { l.requests = make(chan request) })
	return l.requests
}

// ask has Run do f and returns what f returned. Run must be running.
func (l *Loop) ask(ctx context.Context, f func(ctx context.Context) error) error {
	reply := make(chan error, 1)
	select {
	case l.requestCh() <- request{run: f, reply: reply}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Drain switches the loop to draining (every export carries the
// graceful-shutdown rule from now on) and returns once that configuration
// is applied. Run must be running.
func (l *Loop) Drain(ctx context.Context) error {
	return l.ask(ctx, func(ctx context.Context) error {
		l.draining = true
		return l.ReconcileOnce(ctx)
	})
}

// ErrNotDisabled: Enable named a peer that is not kept out.
var ErrNotDisabled = errors.New("not disabled")

// Enable admits again a client kept out for exceeding its prefix limit
// (an operator's decision: meshrr-agent enable) and returns once the
// daemon's configuration no longer refuses it. Run must be running.
func (l *Loop) Enable(ctx context.Context, peer netip.Addr) error {
	return l.ask(ctx, func(ctx context.Context) error { return l.enable(ctx, peer) })
}

// enable handles an Enable request (in Run).
func (l *Loop) enable(ctx context.Context, peer netip.Addr) error {
	d, ok := l.disabled[peer]
	if !ok {
		return fmt.Errorf("%s: %w (disabled: %s)", peer, ErrNotDisabled, l.disabledList())
	}
	l.readmit(peer, d, "re-enabled by an operator")
	return l.ReconcileOnce(ctx)
}

func (l *Loop) disabledList() string {
	if len(l.disabled) == 0 {
		return "none"
	}
	var out []string
	for _, a := range slices.SortedFunc(maps.Keys(l.disabled), netip.Addr.Compare) {
		out = append(out, a.String()+" ("+l.disabled[a].Group+")")
	}
	return strings.Join(out, ", ")
}

// daemonRestarted reads the daemon's start time; when it is later than
// the last time the agent saw the daemon running, the daemon restarted:
// count it, say so, and make the next reconcile apply the configuration
// again (whatever the daemon started with).
//
// The start time alone is not compared with its last reading: BIRD prints
// it from its monotonic clock converted to wall time with a wall clock
// read fresh but a monotonic one cached at the start of its event loop
// iteration, so a busy BIRD (hundreds of clients receiving a table) prints
// the same start up to a whole iteration late, 100 ms and more. A run that
// answered the previous read started before that read; a new run started
// after it.
func (l *Loop) daemonRestarted(ctx context.Context) bool {
	asked := l.now()
	t, err := l.Backend.Started(ctx)
	if err != nil {
		return false // down: readiness reports it
	}
	seen := l.startedSeen
	l.startedSeen = asked
	if seen.IsZero() || !t.After(seen) {
		return false // the first read, or the run seen before
	}
	l.applied = nil
	l.Metrics.DaemonRestarts.Inc()
	l.Log.Warn("daemon restarted; applying the configuration again", "op", "daemon", "started", t)
	l.Events.Warning(events.ReasonDaemonRestarted, "%s restarted (started %s): applying the configuration again", l.Backend.Name(), t.Format(time.RFC3339Nano))
	return true
}

// DrainBlockers says what the pod still waits for before it may drain
// (see plan.DrainBlockers); nil: nothing.
func (l *Loop) DrainBlockers(ctx context.Context) ([]string, error) {
	ss, err := l.sessions(ctx)
	if err != nil {
		return nil, err
	}
	snap, _ := l.Peers.Snapshot()
	return plan.DrainBlockers(l.Config.Current(), l.Self, snap, ss), nil
}

// Status is what readiness and status commands read.
type Status struct {
	// Applied is true once the daemon runs the planned configuration.
	Applied bool
	// Synced is true once discovery delivered a complete snapshot.
	Synced bool
	// Model is the last applied model.
	Model model.Model
	// Upstream are the chosen upstream members.
	Upstream []string
	// LastError of the last reconcile, "" if it succeeded.
	LastError string
	// Refused session groups (no session: their TCP-MD5 key is missing or
	// malformed), by name, with why.
	Refused map[string]string
	// InService is when the pod was first ready (zero: not yet): from then
	// on losing every mesh and upstream session does not make it unready.
	InService time.Time
}

// Status returns a copy of the loop's status.
func (l *Loop) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}

func (l *Loop) setStatus(f func(*Status)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.status)
}

func (l *Loop) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Run loops until ctx ends. It reads the daemon's current configuration
// first, so that an agent restart does not re-apply an identical one.
func (l *Loop) Run(ctx context.Context) error {
	l.holdDown = map[string]time.Time{}
	l.restore()
	if cur, err := l.Backend.Current(ctx); err != nil {
		l.Log.Warn("cannot read the daemon's current configuration; the first plan will be applied", "error", err)
	} else {
		l.applied = cur
	}
	l.daemonRestarted(ctx) // the first read: the run the agent starts with
	cfg := l.Config.Current()
	// the poll also re-plans periodically: upstream grace periods expire
	// and hold-downs end without any discovery change
	pollEvery := cfg.Reconcile.StatePoll.Duration
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	daemon := time.NewTicker(cfg.Reconcile.DaemonPoll.Duration)
	defer daemon.Stop()
	var retry <-chan time.Time
	backoff := time.Duration(0)

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.Peers.Changes():
		case <-l.Config.Changes():
		case <-poll.C:
		case <-retry:
		case <-daemon.C:
			if !l.daemonRestarted(ctx) {
				continue
			}
		case req := <-l.requestCh():
			err := req.run(ctx)
			req.reply <- err
			if err == nil {
				backoff, retry = 0, nil
			}
			continue
		}
		cfg = l.Config.Current()
		if d := cfg.Reconcile.StatePoll.Duration; d != pollEvery {
			pollEvery = d
			poll.Reset(d)
		}
		// coalesce a burst (several EndpointSlice updates for one pod event)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(cfg.Reconcile.Debounce.Duration):
		}
		err := l.ReconcileOnce(ctx)
		switch {
		case err == nil:
			backoff, retry = 0, nil
		case ctx.Err() != nil:
			return nil
		default:
			backoff = min(max(2*backoff, 200*time.Millisecond), cfg.Reconcile.RetryMax.Duration)
			retry = time.After(backoff)
			l.Log.Warn("reconcile failed; retrying", "error", err, "retry_in", backoff)
		}
	}
}

// ReconcileOnce plans, renders and, when the configuration differs from
// the applied one, applies it.
func (l *Loop) ReconcileOnce(ctx context.Context) (err error) {
	start := l.now()
	cfg := l.Config.Current()
	snap, since := l.Peers.Snapshot()
	if !since.IsZero() && (l.pendingSince.IsZero() || since.Before(l.pendingSince)) {
		l.pendingSince = since
	}
	if !snap.Synced {
		if l.draining {
			return l.drainUnsynced(ctx)
		}
		l.Log.Debug("waiting for discovery to sync; configuration left as it is")
		return nil
	}
	l.reportRejected(snap.Rejected)
	if !l.selfListed(cfg, snap) {
		if !l.Status().Applied && !l.draining {
			// a new pod the EndpointSlice controller has not listed yet
			l.Log.Debug("waiting for discovery to list this pod")
			return nil
		}
		// the group's Service is gone or relabelled, or the chart is being
		// uninstalled: such a view would empty the mesh at once
		l.hold("discovery does not list this pod in its group (Service deleted or relabelled, or an uninstall in progress): the configuration is kept")
		if l.draining {
			return l.drainUnsynced(ctx)
		}
		return nil
	}
	defer func() {
		l.Metrics.ReconcileDuration.Observe(l.now().Sub(start).Seconds())
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		l.setStatus(func(s *Status) { s.Synced, s.LastError = true, msg })
	}()

	sessions := map[netip.Addr]model.Session{}
	if ss, err := l.sessions(ctx); err != nil {
		l.Log.Warn("cannot read sessions; no upstream replacement this round", "error", err)
	} else {
		for _, s := range ss {
			sessions[s.Peer] = s
		}
		l.checkMemory(cfg, ss)
		l.Metrics.ObserveSessions(ss)
	}
	now := l.now()
	for id, until := range l.holdDown {
		if !now.Before(until) {
			delete(l.holdDown, id)
		}
	}
	passwords, refused := readPasswords(cfg)
	l.reportRefused(refused)
	res, err := plan.Build(plan.Input{Config: cfg, Self: l.Self, Snapshot: snap, Sessions: sessions, Now: now, HoldDown: l.holdDown, Draining: l.draining, Passwords: passwords, Refused: refused, ClusterAddrs: l.ClusterAddrs})
	if err != nil {
		return err
	}
	l.reportExposed(res.Exposed)
	for _, r := range res.Replaced {
		l.holdDown[r.Member] = now.Add(cfg.Upstream.HoldDown.Duration)
		l.Metrics.UpstreamReplacements.Inc()
		l.Events.Normal(events.ReasonUpstreamReplaced, "upstream peer %s replaced: %s; held down for %s", r.Member, r.Reason, cfg.Upstream.HoldDown.Duration)
	}
	for _, g := range []string{string(model.RoleMesh), string(model.RoleUpstream), config.TargetDownstream} {
		l.Metrics.DiscoveredPeers.WithLabelValues(g).Set(float64(res.Discovered[g]))
	}
	l.checkLimits(res.Model, sessions)

	res.Model = l.keepOut(cfg, res.Model, sessions)
	res.Model = l.holdShrink(cfg, res.Model, refused)
	out, err := l.Backend.Render(res.Model)
	if err != nil {
		return redact(fmt.Errorf("render: %w", err), passwords)
	}
	if !bytes.Equal(out, l.applied) {
		applyStart := l.now()
		err := redact(l.Backend.Apply(ctx, out), passwords)
		l.Metrics.ApplyDuration.Observe(l.now().Sub(applyStart).Seconds())
		if err != nil {
			l.Metrics.Applies.WithLabelValues(metrics.ResultError).Inc()
			l.Events.Warning(events.ReasonApplyFailed, "%s rejected or failed to apply the configuration; it keeps the previous one: %v", l.Backend.Name(), err)
			return fmt.Errorf("apply: %w", err)
		}
		l.applied = out
		l.Metrics.Applies.WithLabelValues(metrics.ResultApplied).Inc()
		l.Log.Info("configuration applied", "op", "apply", "duration", l.now().Sub(applyStart), "bytes", len(out))
	} else {
		l.Metrics.Applies.WithLabelValues(metrics.ResultUnchanged).Inc()
	}
	l.reportPeers(res.Model)
	l.reapGone(ctx, res.Model, sessions)
	if !l.pendingSince.IsZero() {
		l.Metrics.ChangeToApplied.Observe(l.now().Sub(l.pendingSince).Seconds())
		l.pendingSince = time.Time{}
	}
	l.setStatus(func(s *Status) { s.Applied, s.Model, s.Upstream, s.Refused = true, res.Model, res.Upstream, refused })
	l.remember(res.Model)
	return nil
}

// restore takes over what the agent before kept in the state file.
func (l *Loop) restore() {
	st := l.State.Get()
	l.meshed, l.heldSince, l.disabled = st.Applied, st.HeldSince, maps.Clone(st.Disabled)
	l.Metrics.ClientsDisabled.Set(float64(len(l.disabled)))
	l.setStatus(func(s *Status) { s.InService = st.InService })
}

// remember keeps the mesh and upstream peers just applied, and the start
// of a held shrink, for the next reconcile and the next agent of this pod.
func (l *Loop) remember(m model.Model) {
	meshed := map[model.Role][]model.Neighbor{}
	for _, role := range []model.Role{model.RoleMesh, model.RoleUpstream} {
		for _, g := range m.Groups {
			if g.Role == role {
				meshed[role] = append(meshed[role], g.Neighbors...)
			}
		}
	}
	l.meshed = meshed
	disabled := maps.Clone(l.disabled)
	if err := l.State.Update(func(s *state.State) { s.Applied, s.HeldSince, s.Disabled = meshed, l.heldSince, disabled }); err != nil {
		l.Log.Warn("cannot keep the applied peers across a restart", "op", "state", "error", err)
	}
}

// reportPeers updates the configured-peer gauges and records one Event per
// group whose explicit peers changed.
func (l *Loop) reportPeers(m model.Model) {
	cur := map[netip.Addr]model.Neighbor{}
	role := map[netip.Addr]string{}
	for _, g := range m.Groups {
		n := len(g.Neighbors)
		if g.Role == model.RoleClients {
			n = len(g.Ranges)
		}
		l.Metrics.ConfiguredPeers.WithLabelValues(g.Name).Set(float64(n))
		for _, nb := range g.Neighbors {
			cur[nb.Addr] = nb
			role[nb.Addr] = g.Name
		}
	}
	added := map[string][]string{}
	removed := map[string][]string{}
	for a, nb := range cur {
		if _, ok := l.neighbors[a]; !ok || l.neighborRole[a] != role[a] {
			added[role[a]] = append(added[role[a]], describe(a, nb))
		}
	}
	for a, nb := range l.neighbors {
		if _, ok := cur[a]; !ok || l.neighborRole[a] != role[a] {
			removed[l.neighborRole[a]] = append(removed[l.neighborRole[a]], describe(a, nb))
		}
	}
	for _, g := range groupsOf(added, removed) {
		var parts []string
		if a := added[g]; len(a) > 0 {
			slices.Sort(a)
			parts = append(parts, "added "+strings.Join(a, ", "))
		}
		if r := removed[g]; len(r) > 0 {
			slices.Sort(r)
			parts = append(parts, "removed "+strings.Join(r, ", "))
		}
		l.Events.Normal(events.ReasonPeersChanged, "%s peers: %s", g, strings.Join(parts, "; "))
	}
	l.neighbors, l.neighborRole = cur, role
}

func describe(a netip.Addr, nb model.Neighbor) string {
	if nb.Name == "" {
		return a.String()
	}
	return a.String() + " (" + nb.Name + ")"
}

func groupsOf(ms ...map[string][]string) []string {
	var out []string
	for _, m := range ms {
		for g := range m {
			if !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	slices.Sort(out)
	return out
}

// ErrNotReady is what every NotReady error is (errors.Is).
var ErrNotReady = errors.New("not ready")

// NotReady says why the pod is not ready, in words for /readyz, /status and
// the status table ("waiting for discovery to sync").
type NotReady struct{ Reason string }

func (e *NotReady) Error() string { return ErrNotReady.Error() + ": " + e.Reason }

// Is makes errors.Is(err, ErrNotReady) hold.
func (e *NotReady) Is(target error) bool { return target == ErrNotReady }

func notReady(format string, args ...any) error {
	return &NotReady{Reason: fmt.Sprintf(format, args...)}
}

// Ready reports whether the pod is useful: discovery synced, the planned
// configuration applied, the daemon answering and, if required, at least
// one mesh or upstream session Established when any are configured, until
// the pod is first ready: a new pod takes no client before it has the
// group's routes, and a pod in service stays in when it later loses every
// mesh and upstream session (see readiness).
func (l *Loop) Ready(ctx context.Context, requireEstablished bool) error {
	if err := l.Backend.Ping(ctx); err != nil {
		return l.readiness(requireEstablished, nil, fmt.Errorf("daemon does not answer: %v", err))
	}
	var ss []model.Session
	var err error
	if requireEstablished && wantedPeers(l.Status().Model) > 0 {
		ss, err = l.sessions(ctx)
	}
	return l.ReadyWith(requireEstablished, ss, err)
}

// ReadyWith is Ready for sessions the caller has read already (err: why
// they could not be read, which also means the daemon does not answer).
func (l *Loop) ReadyWith(requireEstablished bool, ss []model.Session, err error) error {
	if err != nil {
		err = fmt.Errorf("cannot read sessions: %v", err)
	}
	return l.readiness(requireEstablished, ss, err)
}

func (l *Loop) readiness(requireEstablished bool, ss []model.Session, daemonErr error) error {
	st := l.Status()
	switch {
	case !st.Synced:
		return notReady("waiting for discovery to sync")
	case !st.Applied:
		return notReady("configuration not applied yet: %s", st.LastError)
	case daemonErr != nil:
		return notReady("%v", daemonErr)
	}
	for _, role := range []model.Role{model.RoleMesh, model.RoleUpstream} {
		if why, ok := st.Refused[string(role)]; ok {
			return notReady("%s sessions refused: %s", role, why)
		}
	}
	if !requireEstablished {
		return nil
	}
	if wantedPeers(st.Model) == 0 {
		return l.inService(st) // alone in the group and no upstream: nothing to wait for
	}
	for _, s := range ss {
		if s.Established && model.Meshed(s.Group) {
			return l.inService(st)
		}
	}
	if !st.InService.IsZero() {
		// The pod has served: cut off from every mesh and upstream peer (the
		// other side's only RR on a lost node, a partition between the
		// sides), it still serves its clients what it has, and taking it out
		// would withdraw its side's address while every other RR cut off the
		// same way goes too: the whole group at once. kubectl meshrr status
		// reports it degraded meanwhile.
		return nil
	}
	return notReady("none of %d mesh/upstream sessions is Established", wantedPeers(st.Model))
}

// inService records, once, that the pod is ready (kept in the state file:
// a restarted agent keeps it), and returns nil.
func (l *Loop) inService(st Status) error {
	if !st.InService.IsZero() {
		return nil
	}
	now := l.now()
	l.setStatus(func(s *Status) {
		if s.InService.IsZero() {
			s.InService = now
		}
	})
	if err := l.State.Update(func(s *state.State) {
		if s.InService.IsZero() {
			s.InService = now
		}
	}); err != nil {
		l.Log.Warn("cannot keep being in service across a restart", "op", "state", "error", err)
	}
	return nil
}

// wantedPeers counts the explicit mesh and upstream peers of a model.
func wantedPeers(m model.Model) int {
	n := 0
	for _, g := range m.Groups {
		if g.Role == model.RoleMesh || g.Role == model.RoleUpstream {
			n += len(g.Neighbors)
		}
	}
	return n
}

// checkLimits reports the planned use of the daemon's licence limits
// (metrics every time; a Warning Event and a log line when a limit is
// first exceeded, and a log line when it no longer is). The configuration
// is applied all the same: the daemon enforces its licence itself.
func (l *Loop) checkLimits(m model.Model, sessions map[netip.Addr]model.Session) {
	lim, ok := l.Backend.(backend.Limited)
	if !ok {
		return
	}
	ss := make([]model.Session, 0, len(sessions))
	for _, s := range sessions {
		ss = append(ss, s)
	}
	if l.overLimit == nil {
		l.overLimit = map[string]bool{}
	}
	for _, u := range lim.Usage(m, ss) {
		l.Metrics.LicenseUsage.WithLabelValues(u.Resource).Set(float64(u.Used))
		l.Metrics.LicenseLimit.WithLabelValues(u.Resource).Set(float64(u.Limit))
		switch over := u.Over(); {
		case over && !l.overLimit[u.Resource]:
			l.Log.Warn("licence limit exceeded", "op", "license", "resource", u.Resource, "used", u.Used, "limit", u.Limit)
			l.Events.Warning(events.ReasonLicenseLimit, "%s: %d planned or received, the licence allows %d (backend.crpd.licenseLimits); %s may refuse the excess",
				u.Resource, u.Used, u.Limit, l.Backend.Name())
		case !over && l.overLimit[u.Resource]:
			l.Log.Info("licence limit no longer exceeded", "op", "license", "resource", u.Resource, "used", u.Used, "limit", u.Limit)
		}
		l.overLimit[u.Resource] = u.Over()
	}
}

// checkMemory compares the memory the routes the daemon holds need
// (backend.bird sizing) with its container's limit: metrics every time, a
// Warning Event and a log line when the need first exceeds the limit, a
// log line when it no longer does. Nothing else changes: the operator
// raises the limit (or splits the group) before the daemon is OOM-killed.
func (l *Loop) checkMemory(cfg *config.Config, ss []model.Session) {
	routes := 0
	for _, s := range ss {
		routes += s.Imported
	}
	need, limit := cfg.MemoryNeed(routes)
	if limit == 0 {
		return
	}
	l.Metrics.RoutesHeld.Set(float64(routes))
	l.Metrics.MemoryNeeded.Set(float64(need))
	l.Metrics.MemoryLimit.Set(float64(limit))
	low := need > limit
	switch {
	case low && !l.memoryLow:
		l.Log.Warn("memory limit below what the routes held need", "op", "sizing", "routes", routes, "needBytes", need, "limitBytes", limit)
		l.Events.Warning(events.ReasonMemoryLimitLow, "%d routes held need about %d MiB (%d bytes per route and %d MiB base, backend.bird), above %s's memory limit of %d MiB: raise resources.bird.limits.memory (sizing in docs/scale.md) or split the group before %s is OOM-killed",
			routes, need>>20, cfg.Backend.Bird.BytesPerRoute, (need-int64(routes)*cfg.Backend.Bird.BytesPerRoute)>>20, l.Backend.Name(), limit>>20, l.Backend.Name())
	case !low && l.memoryLow:
		l.Log.Info("memory limit covers the routes held again", "op", "sizing", "routes", routes, "needBytes", need, "limitBytes", limit)
	}
	l.memoryLow = low
}

// reportRejected logs and records what discovery refused to trust, once
// per refusal (a Warning Event lists the new ones).
// reportRefused records a Warning Event and a log line when the set of
// session groups refused for their TCP-MD5 key changes (never the key).
func (l *Loop) reportRefused(refused map[string]string) {
	reportChanges(&l.refused, refused, func(g, why string) {
		l.Log.Warn("session group refused: its TCP-MD5 key is missing or malformed; it gets no session until the Secret is fixed", "op", "md5", "group", g, "reason", why)
		l.Events.Warning(events.ReasonKeyRefused, "%s sessions refused, none runs without its TCP-MD5 key: %s", g, why)
	}, func(g string) {
		l.Log.Info("session group's TCP-MD5 key is valid again", "op", "md5", "group", g)
		l.Events.Normal(events.ReasonKeyAccepted, "%s: its TCP-MD5 key is valid again; its sessions are configured", g)
	})
}

// reportExposed records a Warning Event and a log line when the set of
// client groups refused for admitting the cluster's own networks changes.
func (l *Loop) reportExposed(exposed map[string]string) {
	reportChanges(&l.exposed, exposed, func(g, why string) {
		l.Log.Warn("client group refused: a range admits the cluster's own networks", "op", "clients", "group", g, "reason", why)
		l.Events.Warning(events.ReasonRangeRefused, "%s sessions refused: %s", g, why)
	}, func(g string) {
		l.Log.Info("client group admitted again", "op", "clients", "group", g)
		l.Events.Normal(events.ReasonRangeAccepted, "%s: its ranges no longer admit the cluster's networks unguarded; its sessions are configured", g)
	})
}

// reportChanges calls refused for each group newly refused (or refused
// for another reason) and accepted for each no longer refused, and keeps
// now as the last reported.
func reportChanges(last *map[string]string, now map[string]string, refused func(g, why string), accepted func(g string)) {
	if maps.Equal(now, *last) {
		return
	}
	for _, g := range slices.Sorted(maps.Keys(now)) {
		if (*last)[g] != now[g] {
			refused(g, now[g])
		}
	}
	for _, g := range slices.Sorted(maps.Keys(*last)) {
		if _, still := now[g]; !still {
			accepted(g)
		}
	}
	*last = maps.Clone(now)
}

func (l *Loop) reportRejected(rejected []string) {
	var fresh []string
	for _, r := range rejected {
		if !slices.Contains(l.rejected, r) {
			fresh = append(fresh, r)
			l.Log.Warn("discovery refused an endpoint", "op", "discovery", "reason", r)
		}
	}
	l.rejected = slices.Clone(rejected)
	if len(fresh) == 0 {
		return
	}
	const shown = 5
	msg := strings.Join(fresh[:min(len(fresh), shown)], "; ")
	if len(fresh) > shown {
		msg += fmt.Sprintf("; and %d more (see the agent's log)", len(fresh)-shown)
	}
	l.Events.Warning(events.ReasonUntrusted, "ignored, not trusted: %s", msg)
}

// reapGone removes sessions spawned from client ranges whose peer has
// gone: down for longer than the graceful-restart time (the hold time
// without graceful restart) and no longer restarting, that is once the
// daemon has flushed the peer's routes itself: a peer that announced a
// longer restart time or long-lived graceful restart keeps its stale
// routes for as long as it asked. Without it BIRD keeps the sessions for
// the life of the pod and every pod churn below leaves one more.
func (l *Loop) reapGone(ctx context.Context, m model.Model, sessions map[netip.Addr]model.Session) {
	r, ok := l.Backend.(backend.Reaper)
	if !ok {
		return
	}
	after := time.Duration(m.Timers.Hold) * time.Second
	if m.GracefulRestart.Enabled {
		after = time.Duration(m.GracefulRestart.RestartTime) * time.Second
	}
	clients := map[string]bool{}
	for _, g := range m.Groups {
		if g.Role == model.RoleClients {
			clients[g.Name] = true
		}
	}
	now := l.now()
	var gone []string
	for _, s := range sessions {
		_, keptOut := l.disabled[s.Peer]
		if clients[s.Group] && !s.Established && !s.Restarting && !keptOut && s.Name != "" && !s.Since.IsZero() && now.Sub(s.Since) >= after {
			gone = append(gone, s.Name)
		}
	}
	if len(gone) == 0 {
		return
	}
	slices.Sort(gone)
	if err := r.Reap(ctx, gone); err != nil {
		l.Log.Warn("cannot remove client sessions whose peers have gone", "op", "reap", "sessions", gone, "error", err)
		return
	}
	l.Metrics.ClientSessionsReaped.Add(float64(len(gone)))
	l.Log.Info("removed client sessions whose peers have gone", "op", "reap", "sessions", gone, "down_for_more_than", after)
}

// keepOut keeps out the clients the daemon shut down for exceeding their
// prefix limit with action disable: the daemon itself would admit them
// again at its next configure (any mesh change, a reaper pass), and they
// would flood again. They stay out until an operator re-enables them
// (Enable), the group's reenableAfter has passed, or the group no longer
// disables; each change is an Event and meshrr_clients_disabled.
func (l *Loop) keepOut(cfg *config.Config, m model.Model, sessions map[netip.Addr]model.Session) model.Model {
	now := l.now()
	disabling := map[string]bool{}
	for _, g := range m.Groups {
		if g.Role == model.RoleClients && g.MaxPrefixAction == model.LimitDisable {
			disabling[g.Name] = true
		}
	}
	if l.disabled == nil {
		l.disabled = map[netip.Addr]state.Disabled{}
	}
	for _, a := range slices.SortedFunc(maps.Keys(sessions), netip.Addr.Compare) {
		s := sessions[a]
		if _, ok := l.disabled[a]; ok || !s.LimitDown || !disabling[s.Group] {
			continue
		}
		lim := cfg.LimitOf(s.Group)
		d := state.Disabled{Group: s.Group, Since: now}
		until := "an operator re-enables it (meshrr-agent enable " + a.String() + ")"
		if after := lim.ReenableAfter.Duration; after > 0 {
			d.Until = now.Add(after)
			until = d.Until.UTC().Format(time.RFC3339) + " (reenableAfter " + after.String() + ") or an operator re-enables it"
		}
		l.disabled[a] = d
		l.Log.Warn("client disabled for exceeding its prefix limit: kept out", "op", "clients", "group", s.Group, "peer", a, "maxPrefixes", lim.MaxPrefixes, "until", until)
		l.Events.Warning(events.ReasonClientDisabled, "%s client %s sent more than maxPrefixes %d: kept out until %s", s.Group, a, lim.MaxPrefixes, until)
	}
	for _, a := range slices.SortedFunc(maps.Keys(l.disabled), netip.Addr.Compare) {
		d := l.disabled[a]
		switch {
		case !disabling[d.Group]:
			l.readmit(a, d, "its group no longer disables clients over the limit")
		case !d.Until.IsZero() && !now.Before(d.Until):
			l.readmit(a, d, "reenableAfter has passed")
		}
	}
	l.Metrics.ClientsDisabled.Set(float64(len(l.disabled)))
	if len(l.disabled) == 0 {
		return m
	}
	groups := make([]model.PeerGroup, len(m.Groups))
	for i, g := range m.Groups {
		if g.Role == model.RoleClients {
			g.Disabled = nil
			for _, a := range slices.SortedFunc(maps.Keys(l.disabled), netip.Addr.Compare) {
				if l.disabled[a].Group == g.Name {
					g.Disabled = append(g.Disabled, a)
				}
			}
		}
		groups[i] = g
	}
	m.Groups = groups
	return m
}

// readmit stops keeping a client out.
func (l *Loop) readmit(a netip.Addr, d state.Disabled, why string) {
	delete(l.disabled, a)
	l.Metrics.ClientsDisabled.Set(float64(len(l.disabled)))
	l.Log.Info("client admitted again", "op", "clients", "group", d.Group, "peer", a, "reason", why, "disabled_for", l.now().Sub(d.Since))
	l.Events.Normal(events.ReasonClientEnabled, "%s client %s admitted again: %s", d.Group, a, why)
}

// drainUnsynced drains without a usable discovery view (the API is
// unreachable, the agent restarted during an outage, or the view no longer
// lists the pod): the last applied model with the
// graceful-shutdown rule, or an error when there is none, so that a drain
// never reports success without marking the routes.
func (l *Loop) drainUnsynced(ctx context.Context) error {
	st := l.Status()
	if !st.Applied || len(st.Model.Groups) == 0 {
		return errors.New("cannot drain: discovery has not synced since the agent started, so there is no planned configuration to mark for graceful shutdown")
	}
	m := plan.Drained(st.Model)
	keys := map[string]string{}
	for _, g := range m.Groups {
		if g.Password != "" {
			keys[g.Name] = g.Password
		}
	}
	out, err := l.Backend.Render(m)
	if err != nil {
		return redact(fmt.Errorf("drain: render: %w", err), keys)
	}
	if !bytes.Equal(out, l.applied) {
		if err := l.Backend.Apply(ctx, out); err != nil {
			l.Metrics.Applies.WithLabelValues(metrics.ResultError).Inc()
			return redact(fmt.Errorf("drain: apply: %w", err), keys)
		}
		l.applied = out
		l.Metrics.Applies.WithLabelValues(metrics.ResultApplied).Inc()
	}
	l.Log.Warn("drained the last applied configuration: discovery is not synced", "op", "drain")
	l.setStatus(func(s *Status) { s.Model = m })
	return nil
}

// selfListed: discovery lists this pod in its own group. A view without it
// is not trusted to plan with.
func (l *Loop) selfListed(cfg *config.Config, snap model.Snapshot) bool {
	ns := cfg.Mesh.Namespace
	if ns == "" {
		ns = l.Self.Namespace
	}
	for _, m := range snap.Members {
		if m.Namespace == ns && m.Group == cfg.Mesh.Group && m.Pod == l.Self.Name {
			return true
		}
	}
	return false
}

// hold reports a held change (once per reason) and marks it in the metric.
func (l *Loop) hold(why string) {
	l.Metrics.ChangeHeld.Set(1)
	if l.held == why {
		return
	}
	l.held = why
	l.Log.Warn("change held", "op", "hold", "reason", why)
	l.Events.Warning(events.ReasonChangeHeld, "%s", why)
}

func (l *Loop) release() {
	if l.held != "" {
		l.Log.Info("change no longer held", "op", "hold", "was", l.held)
	}
	l.held, l.heldSince = "", time.Time{}
	l.Metrics.ChangeHeld.Set(0)
}

// holdShrink keeps, for reconcile.shrinkHold, the peers a plan would
// remove when it removes more than reconcile.maxRemovedShare of the mesh
// or every upstream peer at once; additions apply at once. When a later
// look after the hold still plans the removal, it goes through.
func (l *Loop) holdShrink(cfg *config.Config, m model.Model, refused map[string]string) model.Model {
	removed := map[string][]model.Neighbor{}
	shrink := ""
	for _, role := range []model.Role{model.RoleMesh, model.RoleUpstream} {
		if _, ok := refused[string(role)]; ok {
			continue // refused on purpose (its key): never kept without it
		}
		before, after := byAddr(l.meshed[role]), neighborsOf(m, role)
		if len(before) == 0 {
			continue
		}
		var gone []model.Neighbor
		for a, n := range before {
			if _, ok := after[a]; !ok {
				gone = append(gone, n)
			}
		}
		was, going := podsOf(slices.Collect(maps.Values(before))), podsOf(gone)
		switch {
		// one pod going is ordinary churn (a view that lost this pod's own
		// group is caught before planning)
		case role == model.RoleMesh && going > 1 && float64(going) > cfg.Reconcile.MaxRemovedShare*float64(was):
			shrink = fmt.Sprintf("the plan removes %d of %d mesh peers at once (more than reconcile.maxRemovedShare %g)", going, was, cfg.Reconcile.MaxRemovedShare)
		case role == model.RoleUpstream && len(after) == 0:
			shrink = fmt.Sprintf("the plan removes all %d upstream peers at once", len(before))
		default:
			continue
		}
		removed[string(role)] = gone
	}
	now := l.now()
	if shrink == "" {
		if l.held != "" {
			l.release()
		}
		return m
	}
	if l.heldSince.IsZero() {
		l.heldSince = now
	}
	if now.Sub(l.heldSince) >= cfg.Reconcile.ShrinkHold.Duration {
		l.Log.Warn("held change confirmed after the hold time; applying it", "op", "hold", "reason", shrink, "held_for", now.Sub(l.heldSince))
		l.release()
		return m
	}
	l.hold(shrink + fmt.Sprintf(": the peers stay configured for up to %s unless the view comes back", cfg.Reconcile.ShrinkHold.Duration))
	groups := make([]model.PeerGroup, len(m.Groups))
	for i, g := range m.Groups {
		if keep := removed[g.Name]; len(keep) > 0 {
			g.Neighbors = append(slices.Clone(g.Neighbors), keep...)
			slices.SortFunc(g.Neighbors, func(a, b model.Neighbor) int { return a.Addr.Compare(b.Addr) })
		}
		groups[i] = g
	}
	m.Groups = groups
	return m
}

// podsOf counts the pods behind neighbours (a dual-stack pod is two).
func podsOf(ns []model.Neighbor) int {
	pods := map[string]bool{}
	for _, n := range ns {
		id := n.Name
		if id == "" {
			id = n.Addr.String()
		}
		pods[id] = true
	}
	return len(pods)
}

func neighborsOf(m model.Model, role model.Role) map[netip.Addr]model.Neighbor {
	out := map[netip.Addr]model.Neighbor{}
	for _, g := range m.Groups {
		if g.Role == role {
			maps.Copy(out, byAddr(g.Neighbors))
		}
	}
	return out
}

func byAddr(ns []model.Neighbor) map[netip.Addr]model.Neighbor {
	out := map[netip.Addr]model.Neighbor{}
	for _, n := range ns {
		out[n.Addr] = n
	}
	return out
}
