package config

import (
	"bytes"
	"context"
	"os"
	"sync"
	"time"
)

// Watcher keeps the last good configuration of a file and reloads it when
// its content changes. It polls the content rather than relying on file
// events: Kubernetes updates ConfigMap volumes by swapping symlinks, which
// a content comparison sees reliably.
type Watcher struct {
	path     string
	interval time.Duration
	// OnReload is called after each reload attempt with the new
	// configuration or the error that kept the old one in use.
	OnReload func(c *Config, err error)
	// Adjust, when set, may change a valid new configuration before it
	// is used (the agent keeps the session settings it started with).
	Adjust func(c *Config)

	mu      sync.Mutex
	current *Config
	raw     []byte
	readErr string // last read error, reported once
	changes chan struct{}
}

// NewWatcher loads the file once; an invalid file is an error (the agent
// refuses to start on it). It polls every reconcile.configPoll of the
// loaded file.
func NewWatcher(path string) (*Watcher, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	return &Watcher{path: path, interval: c.Reconcile.ConfigPoll.Duration, current: c, raw: raw, changes: make(chan struct{}, 1)}, nil
}

// Current returns the configuration in use.
func (w *Watcher) Current() *Config {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current
}

// Changes signals that Current changed.
func (w *Watcher) Changes() <-chan struct{} { return w.changes }

// Run polls until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Check()
		}
	}
}

// Check reloads the file if its content changed since the last attempt.
func (w *Watcher) Check() {
	raw, err := os.ReadFile(w.path)
	w.mu.Lock()
	if (err == nil && bytes.Equal(raw, w.raw) && w.readErr == "") || (err != nil && err.Error() == w.readErr) {
		w.mu.Unlock()
		return
	}
	w.readErr = ""
	if err != nil {
		w.readErr = err.Error()
	}
	var c *Config
	if err == nil {
		w.raw = raw // a rejected content is reported once, not at every poll
		c, err = Parse(raw)
	}
	if err == nil && w.Adjust != nil {
		w.Adjust(c)
	}
	if err == nil {
		w.current = c
	}
	w.mu.Unlock()
	if w.OnReload != nil {
		w.OnReload(c, err)
	}
	if err == nil {
		select {
		case w.changes <- struct{}{}:
		default:
		}
	}
}
