package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/metrics"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/reconcile"
	"github.com/meshrr/meshrr/agent/internal/status"
)

// reporter makes the pod's status report (served at /status on the status
// port and on the control socket).
type reporter struct {
	loop *reconcile.Loop
	be   backend.Backend
	// sessions is the agent's shared session read (nil: be)
	sessions backend.SessionReader
	m        *metrics.Metrics // flap counts per peer
	cfg      *config.Watcher
	pod      podEnv
}

// statusMaxAge is the oldest session state /status, /metrics and /readyz
// answer with: the shared session read (backend.SessionCache) is at most
// this old, so no request rate becomes a daemon query rate. /status adds
// no cache of its own on top (two caches would make it twice as old).
const statusMaxAge = 2 * time.Second

// memo keeps the last value computed and computes at most once per
// maxAge, whatever the request rate; concurrent callers wait for the one
// computation and share its result.
type memo[T any] struct {
	mu     sync.Mutex
	at     time.Time
	v      T
	maxAge time.Duration
	now    func() time.Time // time.Now when nil
}

func (m *memo[T]) get(compute func() T) T {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now
	if m.now != nil {
		now = m.now
	}
	if !m.at.IsZero() && now().Sub(m.at) < m.maxAge {
		return m.v
	}
	m.v = compute()
	m.at = now()
	return m.v
}

func (r *reporter) report(ctx context.Context) status.Report {
	cfg := r.cfg.Current()
	st := r.loop.Status()
	base := status.Report{
		Pod: r.pod.self.Name, Namespace: r.pod.self.Namespace, Group: cfg.Mesh.Group, Side: r.pod.self.Side, Node: r.pod.node,
		Version: Version, Backend: r.be.Name(), LastError: st.LastError, Time: time.Now(), Ready: true,
	}
	if cfg.Upstream != nil {
		base.Upstream = cfg.Upstream.Group
	}
	var src backend.SessionReader = r.be
	if r.sessions != nil {
		src = r.sessions
	}
	ss, err := src.Sessions(ctx) // read once: for readiness and for the report
	if err := r.loop.ReadyWith(*cfg.Status.ReadyRequiresEstablished, ss, err); err != nil {
		base.Ready, base.NotReady = false, err.Error()
		if nr, ok := errors.AsType[*reconcile.NotReady](err); ok {
			base.NotReady = nr.Reason
		}
	}
	rep := status.Build(base, st.Model, ss)
	if r.m != nil {
		if err == nil {
			r.m.ObserveSessions(ss)
		}
		withFlaps(rep, r.m.Flaps)
	}
	return rep
}

// withFlaps fills in each peer's flap count.
func withFlaps(rep status.Report, flaps func(group model.GroupName, peer netip.Addr) int) {
	for i, p := range rep.Peers {
		if a, err := netip.ParseAddr(p.Addr); err == nil {
			rep.Peers[i].Flaps = flaps(p.Group, a)
		}
	}
}

func (r *reporter) serveHTTP(rw http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), 5*time.Second)
	defer cancel()
	rw.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(rw)
	enc.SetIndent("", "  ")
	_ = enc.Encode(r.report(ctx))
}

// runStatus prints this pod's status table, read from the running agent
// over the control socket; it returns status.ErrDegraded (exit 2, as
// kubectl meshrr status) when the pod is degraded.
func runStatus(ctx context.Context, cfgPath string, asJSON bool, stdout io.Writer) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	c := controlClient(cfg, 10*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/status", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("status: no running agent answers on %s: %w", cfg.Drain.ControlSocket, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var rep status.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if asJSON {
		_, err = stdout.Write(raw)
		return err
	}
	if status.Table(stdout, status.Groups([]status.Report{rep})) {
		return status.ErrDegraded
	}
	return nil
}
