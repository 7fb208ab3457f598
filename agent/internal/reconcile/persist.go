package reconcile

import (
	"maps"

	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/state"
)

// restore takes over what the agent before kept in the state file.
func (l *Loop) restore() {
	st := l.State.Get()
	l.shrink.meshed, l.shrink.heldSince, l.disabled = st.Applied, st.HeldSince, maps.Clone(st.Disabled)
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
	l.shrink.meshed = meshed
	disabled := maps.Clone(l.disabled)
	if err := l.State.Update(func(s *state.State) { s.Applied, s.HeldSince, s.Disabled = meshed, l.shrink.heldSince, disabled }); err != nil {
		l.Log.Warn("cannot keep the applied peers across a restart", "op", "state", "error", err)
	}
}
