package reconcile

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/model"
)

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
	clients := map[model.GroupName]bool{}
	for _, g := range m.Groups {
		if g.Role == model.RoleClients {
			clients[g.Name] = true
		}
	}
	now := l.now()
	var gone []string
	for _, s := range sessions {
		_, keptOut := l.disabled[s.Peer]
		if clients[s.Group] && !s.Established() && !s.Restarting && !keptOut && s.Name != "" && !s.Since.IsZero() && now.Sub(s.Since) >= after {
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
