package reconcile

import (
	"context"
	"errors"
	"fmt"

	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/state"
)

// ErrNotReady is what every NotReady error is (errors.Is).
var ErrNotReady = errors.New("not ready")

// NotReady says why the pod is not ready, in words for /readyz, /status and
// the status table ("waiting for discovery to sync").
type NotReady struct{ Reason string }

func (e *NotReady) Error() string { return ErrNotReady.Error() + ": " + e.Reason }

// Is makes errors.Is(err, ErrNotReady) hold.
func (e *NotReady) Is(target error) bool { return target == ErrNotReady }

func notReady(format string, args ...any) error {
	return &NotReady{Reason: fmt.Sprintf(format, args...)}
}

// Ready reports whether the pod is useful: discovery synced, the planned
// configuration applied, the daemon answering and, if required, at least
// one mesh or upstream session Established when any are configured, until
// the pod is first ready: a new pod takes no client before it has the
// group's routes, and a pod in service stays in when it later loses every
// mesh and upstream session (see readiness).
func (l *Loop) Ready(ctx context.Context, requireEstablished bool) error {
	if err := l.Backend.Ping(ctx); err != nil {
		return l.readiness(requireEstablished, nil, fmt.Errorf("daemon does not answer: %v", err))
	}
	var ss []model.Session
	var err error
	if requireEstablished && wantedPeers(l.Status().Model) > 0 {
		ss, err = l.sessions(ctx)
	}
	return l.ReadyWith(requireEstablished, ss, err)
}

// ReadyWith is Ready for sessions the caller has read already (err: why
// they could not be read, which also means the daemon does not answer).
func (l *Loop) ReadyWith(requireEstablished bool, ss []model.Session, err error) error {
	if err != nil {
		err = fmt.Errorf("cannot read sessions: %v", err)
	}
	return l.readiness(requireEstablished, ss, err)
}

func (l *Loop) readiness(requireEstablished bool, ss []model.Session, daemonErr error) error {
	st := l.Status()
	switch {
	case !st.Synced:
		return notReady("waiting for discovery to sync")
	case !st.Applied:
		return notReady("configuration not applied yet: %s", st.LastError)
	case daemonErr != nil:
		return notReady("%v", daemonErr)
	}
	for _, role := range []model.Role{model.RoleMesh, model.RoleUpstream} {
		if why, ok := st.Refused[role.Group()]; ok {
			return notReady("%s sessions refused: %s", role, why)
		}
	}
	if !requireEstablished {
		return nil
	}
	if wantedPeers(st.Model) == 0 {
		return l.inService(st) // alone in the group and no upstream: nothing to wait for
	}
	for _, s := range ss {
		if s.Established() && s.Group.Meshed() {
			return l.inService(st)
		}
	}
	if !st.InService.IsZero() {
		// The pod has served: cut off from every mesh and upstream peer (the
		// other side's only RR on a lost node, a partition between the
		// sides), it still serves its clients what it has, and taking it out
		// would withdraw its side's address while every other RR cut off the
		// same way goes too: the whole group at once. kubectl meshrr status
		// reports it degraded meanwhile.
		return nil
	}
	return notReady("none of %d mesh/upstream sessions is Established", wantedPeers(st.Model))
}

// inService records, once, that the pod is ready (kept in the state file:
// a restarted agent keeps it), and returns nil.
func (l *Loop) inService(st Status) error {
	if !st.InService.IsZero() {
		return nil
	}
	now := l.now()
	l.setStatus(func(s *Status) {
		if s.InService.IsZero() {
			s.InService = now
		}
	})
	if err := l.State.Update(func(s *state.State) {
		if s.InService.IsZero() {
			s.InService = now
		}
	}); err != nil {
		l.Log.Warn("cannot keep being in service across a restart", "op", "state", "error", err)
	}
	return nil
}

// wantedPeers counts the explicit mesh and upstream peers of a model.
func wantedPeers(m model.Model) int {
	n := 0
	for _, g := range m.Groups {
		if g.Role == model.RoleMesh || g.Role == model.RoleUpstream {
			n += len(g.Neighbors)
		}
	}
	return n
}
