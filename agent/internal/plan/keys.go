package plan

import (
	"net/netip"
	"slices"
	"time"

	"github.com/meshrr/meshrr/agent/internal/model"
)

// SetKeys sets the TCP-MD5 keys of m's groups at in.Now and returns the
// next time one of them changes (zero: none to come). Build calls it; the
// loop calls it again on a model it changed after planning (peers kept by
// a held shrink). During a rollover
// (model.Key) a session with one peer (an explicit neighbor, or a
// single-address range such as a downstream RR) switches at the point of
// the window both its ends compute (Key.SwitchAt); the group's key, which
// a range of many peers (a client group) uses, switches at this pod's
// side's share of the window (Key.SideAt over the group's sides), so that
// a router homed on every side keeps a session.
func SetKeys(in Input, m *model.Model) time.Time {
	sides := in.Config.Drain.Sides
	var next time.Time
	at := func(k model.Key, when time.Time) string {
		if k.Rolling() && when.After(in.Now) && (next.IsZero() || when.Before(next)) {
			next = when
		}
		return k.At(when, in.Now)
	}
	for i := range m.Groups {
		g := &m.Groups[i]
		k := in.Passwords[g.Name]
		g.Password = at(k, k.SideAt(slices.Index(sides, in.Self.Side), len(sides)))
		g.SessionKeys = nil
		if !k.Rolling() {
			continue
		}
		peers := make([]netip.Addr, 0, len(g.Neighbors)+len(g.Ranges))
		for _, n := range g.Neighbors {
			peers = append(peers, n.Addr)
		}
		for _, r := range g.Ranges {
			if r.IsSingleIP() {
				peers = append(peers, r.Addr())
			}
		}
		for _, p := range peers {
			local, ok := m.LocalAddr(model.FamilyOf(p))
			if !ok {
				continue // rendering refuses the group
			}
			if key := at(k, k.SwitchAt(local, p)); key != g.Password {
				if g.SessionKeys == nil {
					g.SessionKeys = map[netip.Addr]string{}
				}
				g.SessionKeys[p] = key
			}
		}
	}
	return next
}
