package reconcile

import (
	"time"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/events"
	"github.com/meshrr/meshrr/agent/internal/plan"
)

// expireHoldDowns forgets the upstream members whose hold-down has ended.
func (l *Loop) expireHoldDowns(now time.Time) {
	for id, until := range l.holdDown {
		if !now.Before(until) {
			delete(l.holdDown, id)
		}
	}
}

// holdDownReplaced holds down, for upstream.holdDown, each upstream member
// the plan replaced, so that the next plans do not choose it again at once.
func (l *Loop) holdDownReplaced(cfg *config.Config, replaced []plan.Replacement, now time.Time) {
	for _, r := range replaced {
		l.holdDown[r.Member] = now.Add(cfg.Upstream.HoldDown.Duration)
		l.Metrics.UpstreamReplacements.Inc()
		l.Events.Normal(events.ReasonUpstreamReplaced, "upstream peer %s replaced: %s; held down for %s", r.Member, r.Reason, cfg.Upstream.HoldDown.Duration)
	}
}
