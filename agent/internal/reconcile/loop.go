// Package reconcile is the agent's loop: it waits for a change (discovery,
// configuration, the periodic session-state poll, a daemon restart, or a
// retry), coalesces bursts, plans, renders, skips identical configurations
// and applies the rest, retrying failures with backoff.
//
// ReconcileOnce (loop.go) is the pipeline; each step it owns state for is
// a file: apply.go (the configuration the daemon runs, shared with drains),
// shrink.go (holding a removal of many peers at once), keepout.go (clients
// kept out for their prefix limit), upstream.go (upstream hold-downs),
// reports.go (Events and gauges for what changed), watches.go (licence
// and memory limits), reap.go (client sessions whose peer has gone),
// restart.go (daemon restarts), drain.go, readiness.go, status.go and
// persist.go (what survives an agent restart, in the state file).
package reconcile

import (
	"context"
	"log/slog"
	"net/netip"
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
	// State keeps the peers last applied, a held shrink, the clients kept
	// out and when the pod went in service across agent restarts (nil: in
	// memory only).
	State *state.Store

	// What the loop owns, each part in the file of its concern.
	applied      []byte                        // apply.go: the configuration the daemon runs
	shrink       shrinkGuard                   // shrink.go: the peers last applied and a held removal
	disabled     map[netip.Addr]state.Disabled // keepout.go: clients kept out for their prefix limit
	holdDown     map[string]time.Time          // upstream.go: upstream members held down, until when
	reported     reported                      // reports.go: what was last reported
	watched      watched                       // watches.go: the licence and memory limits as last reported
	startedSeen  time.Time                     // restart.go: when the agent last asked a running daemon its start time
	unsupported  string                        // apply.go: the unsupported daemon last reported ("": none)
	supported    bool                          // apply.go: the running daemon's release was checked and is supported
	draining     bool                          // drain.go: owned by Run
	pendingSince time.Time                     // the oldest change not applied yet
	keySwitch    time.Time                     // secrets.go: when a session switches to its next TCP-MD5 key (zero: none)
	reqOnce      sync.Once
	requests     chan request

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
		var keySwitch <-chan time.Time // a session's TCP-MD5 key switches: plan then
		if !l.keySwitch.IsZero() {
			keySwitch = time.After(l.keySwitch.Sub(l.now()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-keySwitch:
			l.keySwitch = time.Time{} // the reconcile sets the next one; a past time never fires again
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
	snap, ok, err := l.view(ctx, cfg)
	if !ok {
		return err
	}
	defer l.finished(start, &err)

	sessions := l.readSessions(ctx, cfg)
	now := l.now()
	l.expireHoldDowns(now)
	passwords, refused, rollover := readPasswords(cfg)
	l.reportRefused(refused)
	l.reportRollover(passwords, rollover)
	in := plan.Input{Config: cfg, Self: l.Self, Snapshot: snap, Sessions: sessions, Now: now, HoldDown: l.holdDown, Draining: l.draining, Passwords: passwords, Refused: refused, ClusterAddrs: l.ClusterAddrs}
	res, err := plan.Build(in)
	if err != nil {
		return err
	}
	l.reportExposed(res.Exposed)
	l.reportDiscovered(res.Discovered)
	l.holdDownReplaced(cfg, res.Replaced, now)
	l.checkLimits(res.Model, sessions)

	m := l.keepOut(cfg, res.Model, sessions)
	m = l.holdShrink(cfg, m, refused)
	l.keySwitch = plan.SetKeys(in, &m) // the peers a held shrink keeps are on their sessions' keys too
	if err := l.apply(ctx, m); err != nil {
		return err
	}

	l.reportPeers(m)
	l.reapGone(ctx, m, sessions)
	l.observeApplied()
	l.setStatus(func(s *Status) { s.Applied, s.Model, s.Upstream, s.Refused = true, m, res.Upstream, refused })
	l.remember(m)
	return nil
}

// view returns discovery's snapshot when it is one to plan with (ok);
// otherwise the configuration stays as it is, or, draining, the last
// applied one is drained (err says whether that worked).
func (l *Loop) view(ctx context.Context, cfg *config.Config) (snap model.Snapshot, ok bool, err error) {
	snap, since := l.Peers.Snapshot()
	if !since.IsZero() && (l.pendingSince.IsZero() || since.Before(l.pendingSince)) {
		l.pendingSince = since
	}
	if !snap.Synced {
		if l.draining {
			return snap, false, l.drainUnsynced(ctx)
		}
		l.Log.Debug("waiting for discovery to sync; configuration left as it is")
		return snap, false, nil
	}
	l.reportRejected(snap.Rejected)
	if l.selfListed(cfg, snap) {
		return snap, true, nil
	}
	if !l.Status().Applied && !l.draining {
		// a new pod the EndpointSlice controller has not listed yet
		l.Log.Debug("waiting for discovery to list this pod")
		return snap, false, nil
	}
	// the group's Service is gone or relabelled, or the chart is being
	// uninstalled: such a view would empty the mesh at once
	l.hold("discovery does not list this pod in its group (Service deleted or relabelled, or an uninstall in progress): the configuration is kept")
	if l.draining {
		return snap, false, l.drainUnsynced(ctx)
	}
	return snap, false, nil
}

// finished records a reconcile that planned: its duration and its error.
func (l *Loop) finished(start time.Time, err *error) {
	l.Metrics.ReconcileDuration.Observe(l.now().Sub(start).Seconds())
	msg := ""
	if *err != nil {
		msg = (*err).Error()
	}
	l.setStatus(func(s *Status) { s.Synced, s.LastError = true, msg })
}

// readSessions reads the daemon's sessions by peer (none when they cannot
// be read: no upstream replacement this round) and observes them.
func (l *Loop) readSessions(ctx context.Context, cfg *config.Config) map[netip.Addr]model.Session {
	sessions := map[netip.Addr]model.Session{}
	ss, err := l.sessions(ctx)
	if err != nil {
		l.Log.Warn("cannot read sessions; no upstream replacement this round", "error", err)
		return sessions
	}
	for _, s := range ss {
		sessions[s.Peer] = s
	}
	l.checkMemory(cfg, ss)
	l.Metrics.ObserveSessions(ss)
	return sessions
}

// observeApplied observes the time from the oldest change seen to its
// configuration running.
func (l *Loop) observeApplied() {
	if !l.pendingSince.IsZero() {
		l.Metrics.ChangeToApplied.Observe(l.now().Sub(l.pendingSince).Seconds())
		l.pendingSince = time.Time{}
	}
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
