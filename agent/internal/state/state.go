// Package state keeps what the agent must remember across its own
// restarts, in one file in the pod's memory volume (an emptyDir outlives
// the agent's container, not the pod): the peers last applied and a held
// shrink, the members of Services whose EndpointSlices vanished, the
// clients disabled for their prefix limit, and when the pod was first
// ready. An agent restarted during an
// incident takes over the holds of the one before instead of applying a
// shrunken view at once.
//
// The file is the agent's own, but it is read as untrusted input all the
// same: one that cannot be read is reported and ignored (the agent starts
// as a new pod would), never a reason not to start.
package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/meshrr/meshrr/agent/internal/fileutil"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// version of the file's layout; a file of another version is ignored.
const version = 1

// State is the content of the file. It holds no secret (no TCP-MD5 key).
type State struct {
	Version int `json:"version"`
	// Applied are the mesh and upstream peers of the last applied
	// configuration, by role.
	Applied map[model.Role][]model.Neighbor `json:"applied,omitempty"`
	// HeldSince is when the shrink being held was first planned (zero:
	// none).
	HeldSince time.Time `json:"heldSince,omitzero"`
	// Services are the members last seen behind each Service
	// (namespace/name), and Vanished those of Services whose
	// EndpointSlices all vanished, with when.
	Services map[string][]model.Member `json:"services,omitempty"`
	Vanished map[string]Vanished       `json:"vanished,omitempty"`
	// Disabled are the clients shut down for exceeding their prefix
	// limit, kept out until re-enabled.
	Disabled map[netip.Addr]Disabled `json:"disabled,omitempty"`
	// InService is when the pod was first ready (zero: not yet): a
	// restarted agent does not take a pod that has served out of service
	// for having no mesh or upstream session.
	InService time.Time `json:"inService,omitzero"`
}

// Vanished is a Service whose EndpointSlices all vanished.
type Vanished struct {
	Members []model.Member `json:"members"`
	Since   time.Time      `json:"since"`
}

// Disabled is a client kept out for exceeding its prefix limit.
type Disabled struct {
	Group model.GroupName `json:"group"`
	Since time.Time       `json:"since"`
	// Until is when it is admitted again (zero: when an operator says so).
	Until time.Time `json:"until,omitzero"`
}

// Store reads and writes the file. Its methods are safe for concurrent
// use; a nil *Store keeps nothing (tests, and a configuration without a
// state file).
type Store struct {
	path    string
	mu      sync.Mutex
	cur     State
	written []byte
}

// Open reads the file at path (missing: an empty state). A file that
// cannot be read or parsed, or of another version, gives an empty state
// and the error to report; the Store is usable either way.
func Open(path string) (*Store, error) {
	s := &Store{path: path, cur: State{Version: version}}
	b, err := fileutil.ReadIfExists(path)
	if err != nil {
		return s, fmt.Errorf("state file %s: %w; starting without it", path, err)
	}
	if b == nil {
		return s, nil
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return s, fmt.Errorf("state file %s is not valid: %v; starting without it", path, err)
	}
	if st.Version != version {
		return s, fmt.Errorf("state file %s has version %d, this agent writes %d; starting without it", path, st.Version, version)
	}
	s.cur, s.written = st, b
	return s, nil
}

// Get returns a copy of the state (the maps are shared: read only).
func (s *Store) Get() State {
	if s == nil {
		return State{Version: version}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Update changes the state with f and writes the file when its content
// changed. f must replace the maps it changes, not write into them.
func (s *Store) Update(f func(*State)) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.cur)
	s.cur.Version = version
	b, err := json.Marshal(s.cur)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if bytes.Equal(b, s.written) {
		return nil
	}
	if err := fileutil.WriteAtomic(s.path, b); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	s.written = b
	return nil
}
