// Package backend defines what the reconcile loop needs from a routing
// daemon. Each daemon lives in its own sub-package; nothing daemon-specific
// exists outside them.
package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/meshrr/meshrr/agent/internal/model"
)

// Backend renders the model into the daemon's configuration, applies it
// safely and reads session state.
type Backend interface {
	// Name is the backend's name in logs and metrics ("bird", "crpd").
	Name() string
	// Render is a pure function of the model.
	Render(m model.Model) ([]byte, error)
	// Current returns the configuration the daemon runs now, as last applied
	// (nil if none): the agent compares against it after a restart so that an
	// identical configuration is not applied again.
	Current(ctx context.Context) ([]byte, error)
	// Apply validates cfg with the daemon and then activates it; on any error
	// the daemon keeps running its previous configuration.
	Apply(ctx context.Context, cfg []byte) error
	// Sessions reads the daemon's BGP sessions.
	Sessions(ctx context.Context) ([]model.Session, error)
	// Ping checks that the daemon answers.
	Ping(ctx context.Context) error
	// Started is when the daemon's routing process last started: a change
	// means it restarted (crashed, or was restarted) since it was read.
	Started(ctx context.Context) (time.Time, error)
}

// Reaper is a backend whose daemon keeps the sessions it spawned from
// client ranges after their peers have gone (BIRD 2 does: they retry or
// wait forever); the loop names the ones to remove.
type Reaper interface {
	Reap(ctx context.Context, sessions []string) error
}

// Limited is a backend whose daemon runs under licence limits (cRPD).
type Limited interface {
	// Usage is what a planned model and the daemon's sessions use of each
	// limited resource, with the limit in force (0: none).
	Usage(m model.Model, sessions []model.Session) []Usage
}

// Usage of one limited resource.
type Usage struct {
	Resource string // "bgp-peers", "rib-entries"
	Used     int
	Limit    int // 0: no limit
}

// Over reports whether the use exceeds its limit.
func (u Usage) Over() bool { return u.Limit > 0 && u.Used > u.Limit }

// Quote is the one way a string reaches a daemon's configuration: it
// returns s in double quotes when BIRD 2 and Junos both read that back as
// exactly s, and fails otherwise. Neither daemon has an escape both honour
// (BIRD 2.0 ends a string at any quote and keeps backslashes), so only
// printable ASCII without a quote or a backslash is accepted. The error
// names the offending byte's position, never the value (it may be a key).
func Quote(s string) (string, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return "", fmt.Errorf("a configuration string holds byte %#02x at offset %d: only printable ASCII without quotes or backslashes can be written", c, i)
		}
	}
	return `"` + s + `"`, nil
}

// Checked is a backend that says whether the daemon it drives is one the
// agent supports; the loop applies nothing to one it does not.
type Checked interface {
	// CheckDaemon returns an *UnsupportedError for a daemon the agent does
	// not support, another error when it cannot tell (the daemon does not
	// answer).
	CheckDaemon(ctx context.Context) error
}

// UnsupportedError is a daemon the agent does not support: which one,
// what it supports, and what to do.
type UnsupportedError struct {
	Daemon    string // as the daemon names itself ("BIRD 2.0.12")
	Supported string // the versions the agent supports here, in words
	Do        string // what to do; empty: run an image the chart ships
}

func (e *UnsupportedError) Error() string {
	do := e.Do
	if do == "" {
		do = "run the daemon image the chart ships (images.bird; images.bird3 for backend.bird.version 3)"
	}
	return fmt.Sprintf("%s is not supported (meshrr supports %s): %s", e.Daemon, e.Supported, do)
}
