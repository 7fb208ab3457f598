package reconcile

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/events"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// shrinkGuard is what holdShrink compares a plan with and holds.
type shrinkGuard struct {
	meshed    map[model.Role][]model.Neighbor // mesh and upstream peers last applied
	held      string                          // why a change is held ("" when none)
	heldSince time.Time                       // when the held shrink was first planned
}

// hold reports a held change (once per reason) and marks it in the metric.
func (l *Loop) hold(why string) {
	l.Metrics.ChangeHeld.Set(1)
	if l.shrink.held == why {
		return
	}
	l.shrink.held = why
	l.Log.Warn("change held", "op", "hold", "reason", why)
	l.Events.Warning(events.ReasonChangeHeld, "%s", why)
}

func (l *Loop) release() {
	if l.shrink.held != "" {
		l.Log.Info("change no longer held", "op", "hold", "was", l.shrink.held)
	}
	l.shrink.held, l.shrink.heldSince = "", time.Time{}
	l.Metrics.ChangeHeld.Set(0)
}

// holdShrink keeps, for reconcile.shrinkHold, the peers a plan would
// remove when it removes more than reconcile.maxRemovedShare of the mesh
// or every upstream peer at once; additions apply at once. When a later
// look after the hold still plans the removal, it goes through.
func (l *Loop) holdShrink(cfg *config.Config, m model.Model, refused map[model.GroupName]string) model.Model {
	removed := map[model.GroupName][]model.Neighbor{}
	shrink := ""
	for _, role := range []model.Role{model.RoleMesh, model.RoleUpstream} {
		if _, ok := refused[role.Group()]; ok {
			continue // refused on purpose (its key): never kept without it
		}
		before, after := byAddr(l.shrink.meshed[role]), neighborsOf(m, role)
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
		removed[role.Group()] = gone
	}
	now := l.now()
	if shrink == "" {
		if l.shrink.held != "" {
			l.release()
		}
		return m
	}
	if l.shrink.heldSince.IsZero() {
		l.shrink.heldSince = now
	}
	if now.Sub(l.shrink.heldSince) >= cfg.Reconcile.ShrinkHold.Duration {
		l.Log.Warn("held change confirmed after the hold time; applying it", "op", "hold", "reason", shrink, "held_for", now.Sub(l.shrink.heldSince))
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
