package reconcile

import (
	"net/netip"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/events"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// watched is what checkLimits and checkMemory last reported.
type watched struct {
	overLimit map[string]bool // licence limits exceeded
	memoryLow bool            // the memory limit below the routes' need
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
	if l.watched.overLimit == nil {
		l.watched.overLimit = map[string]bool{}
	}
	for _, u := range lim.Usage(m, ss) {
		l.Metrics.LicenseUsage.WithLabelValues(u.Resource).Set(float64(u.Used))
		l.Metrics.LicenseLimit.WithLabelValues(u.Resource).Set(float64(u.Limit))
		switch over := u.Over(); {
		case over && !l.watched.overLimit[u.Resource]:
			l.Log.Warn("licence limit exceeded", "op", "license", "resource", u.Resource, "used", u.Used, "limit", u.Limit)
			l.Events.Warning(events.ReasonLicenseLimit, "%s: %d planned or received, the licence allows %d (backend.crpd.licenseLimits); %s may refuse the excess",
				u.Resource, u.Used, u.Limit, l.Backend.Name())
		case !over && l.watched.overLimit[u.Resource]:
			l.Log.Info("licence limit no longer exceeded", "op", "license", "resource", u.Resource, "used", u.Used, "limit", u.Limit)
		}
		l.watched.overLimit[u.Resource] = u.Over()
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
	case low && !l.watched.memoryLow:
		l.Log.Warn("memory limit below what the routes held need", "op", "sizing", "routes", routes, "needBytes", need, "limitBytes", limit)
		l.Events.Warning(events.ReasonMemoryLimitLow, "%d routes held need about %d MiB (%d bytes per route and %d MiB base, backend.bird), above %s's memory limit of %d MiB: raise resources.bird.limits.memory (sizing in docs/scale.md) or split the group before %s is OOM-killed",
			routes, need>>20, cfg.BytesPerRoute(), (need-int64(routes)*cfg.BytesPerRoute())>>20, l.Backend.Name(), limit>>20, l.Backend.Name())
	case !low && l.watched.memoryLow:
		l.Log.Info("memory limit covers the routes held again", "op", "sizing", "routes", routes, "needBytes", need, "limitBytes", limit)
	}
	l.watched.memoryLow = low
}
