package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/reconcile"
	"github.com/meshrr/meshrr/agent/internal/status"
)

// reporter makes the pod's status report (served at /status on the status
// port and on the control socket).
type reporter struct {
	loop *reconcile.Loop
	be   backend.Backend
	cfg  *config.Watcher
	pod  podEnv
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
	ss, err := r.be.Sessions(ctx) // read once: for readiness and for the report
	if err := r.loop.ReadyWith(*cfg.Status.ReadyRequiresEstablished, ss, err); err != nil {
		base.Ready, base.NotReady = false, strings.TrimPrefix(err.Error(), reconcile.ErrNotReady.Error()+": ")
	}
	return status.Build(base, st.Model, ss)
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
// over the control socket; it fails (exit 1) when the pod is degraded.
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
		return errors.New("degraded")
	}
	return nil
}
