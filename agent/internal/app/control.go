package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/drain"
	"github.com/meshrr/meshrr/agent/internal/events"
	"github.com/meshrr/meshrr/agent/internal/reconcile"
)

// serveControl serves the drain and enable requests and /status on the
// control socket, a Unix socket in the pod's own volume: only the pod's
// containers reach it.
func serveControl(ctx context.Context, cfg *config.Config, client kubernetes.Interface, loop *reconcile.Loop, self podEnv, rec events.Recorder, rep *reporter, log *slog.Logger) (stop func(), err error) {
	_ = os.Remove(cfg.Drain.DoneFile) // from an earlier agent of this pod
	_ = os.Remove(cfg.Drain.ControlSocket)
	ln, err := net.Listen("unix", cfg.Drain.ControlSocket)
	if err != nil {
		return nil, fmt.Errorf("drain.controlSocket: %w", err)
	}
	d := &drain.Drainer{
		Blockers:    loop.DrainBlockers,
		Apply:       loop.Drain,
		WaitTimeout: cfg.Drain.WaitTimeout.Duration,
	}
	var lock *drain.LeaseLock
	if cfg.Drain.Lock != "" {
		lock = &drain.LeaseLock{Client: client, Namespace: self.self.Namespace, Name: cfg.Drain.Lock, Identity: self.self.Name}
		d.Lock = lock
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", rep.serveHTTP)
	mux.HandleFunc("POST /drain", func(rw http.ResponseWriter, r *http.Request) {
		log.Info("drain requested", "op", "drain", "lock", cfg.Drain.Lock, "wait_timeout", cfg.Drain.WaitTimeout.Duration)
		rep, err := d.Drain(r.Context())
		if err != nil {
			log.Error("drain failed", "op", "drain", "error", err)
			rec.Warning(events.ReasonDrainFailed, "graceful shutdown failed: %v", err)
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		log.Info("draining", "op", "drain", "report", rep.String())
		rec.Normal(events.ReasonDraining, "routes marked for graceful shutdown (community 65535:0, local-preference 0): %s", rep)
		fmt.Fprintln(rw, rep)
	})
	mux.HandleFunc("POST /enable", func(rw http.ResponseWriter, r *http.Request) {
		peer, err := netip.ParseAddr(r.URL.Query().Get("peer"))
		if err != nil {
			http.Error(rw, fmt.Sprintf("peer: %v: give the client's address", err), http.StatusBadRequest)
			return
		}
		peer = peer.Unmap()
		if err := loop.Enable(r.Context(), peer); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, reconcile.ErrNotDisabled) {
				code = http.StatusNotFound
			}
			http.Error(rw, err.Error(), code)
			return
		}
		fmt.Fprintf(rw, "%s admitted again\n", peer)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		if lock != nil {
			lock.Release()
		}
	}, nil
}

// controlClient talks to the running agent over its control socket.
func controlClient(cfg *config.Config, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", cfg.Drain.ControlSocket)
	}}}
}

// controlPost posts to the running agent's control socket and returns its
// answer, or an error saying why there is none (or the agent's own).
func controlPost(ctx context.Context, cfg *config.Config, timeout time.Duration, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent"+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := controlClient(cfg, timeout).Do(req)
	if err != nil {
		return "", fmt.Errorf("no running agent answers on %s: %w", cfg.Drain.ControlSocket, err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(msg)
	}
	return msg, nil
}
