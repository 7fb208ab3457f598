package reconcile

import (
	"time"

	"github.com/meshrr/meshrr/agent/internal/model"
)

// Status is what readiness and status commands read.
type Status struct {
	// Applied is true once the daemon runs the planned configuration.
	Applied bool
	// Synced is true once discovery delivered a complete snapshot.
	Synced bool
	// Model is the last applied model.
	Model model.Model
	// Upstream are the chosen upstream members.
	Upstream []string
	// LastError of the last reconcile, "" if it succeeded.
	LastError string
	// Refused session groups (no session: their TCP-MD5 key is missing or
	// malformed), by name, with why.
	Refused map[model.GroupName]string
	// InService is when the pod was first ready (zero: not yet): from then
	// on losing every mesh and upstream session does not make it unready.
	InService time.Time
}

// Status returns a copy of the loop's status.
func (l *Loop) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}

func (l *Loop) setStatus(f func(*Status)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.status)
}
