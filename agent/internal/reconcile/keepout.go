package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/events"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/state"
)

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
		out = append(out, a.String()+" ("+string(l.disabled[a].Group)+")")
	}
	return strings.Join(out, ", ")
}

// keepOut keeps out the clients the daemon shut down for exceeding their
// prefix limit with action disable: the daemon itself would admit them
// again at its next configure (any mesh change, a reaper pass), and they
// would flood again. They stay out until an operator re-enables them
// (Enable), the group's reenableAfter has passed, or the group no longer
// disables; each change is an Event and meshrr_clients_disabled.
func (l *Loop) keepOut(cfg *config.Config, m model.Model, sessions map[netip.Addr]model.Session) model.Model {
	now := l.now()
	disabling := map[model.GroupName]bool{}
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
