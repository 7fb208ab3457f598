package reconcile

import (
	"context"
	"time"

	"github.com/meshrr/meshrr/agent/internal/events"
)

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
	l.supported = false // asked again: the container may run another image
	l.Metrics.DaemonRestarts.Inc()
	l.Log.Warn("daemon restarted; applying the configuration again", "op", "daemon", "started", t)
	l.Events.Warning(events.ReasonDaemonRestarted, "%s restarted (started %s): applying the configuration again", l.Backend.Name(), t.Format(time.RFC3339Nano))
	return true
}
