package reconcile

import (
	"context"
	"errors"
	"fmt"

	"github.com/meshrr/meshrr/agent/internal/plan"
)

// Drain switches the loop to draining (every export carries the
// graceful-shutdown rule from now on) and returns once that configuration
// is applied. Run must be running.
func (l *Loop) Drain(ctx context.Context) error {
	return l.ask(ctx, func(ctx context.Context) error {
		l.draining = true
		return l.ReconcileOnce(ctx)
	})
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
	if err := l.apply(ctx, m); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	l.Log.Warn("drained the last applied configuration: discovery is not synced", "op", "drain")
	l.setStatus(func(s *Status) { s.Model = m })
	return nil
}
