package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/backend/bird"
	"github.com/meshrr/meshrr/agent/internal/discovery"
	"github.com/meshrr/meshrr/agent/internal/events"
	"github.com/meshrr/meshrr/agent/internal/metrics"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/plan"
	"github.com/meshrr/meshrr/agent/internal/reconcile"
	"github.com/meshrr/meshrr/agent/internal/state"
)

func runAgent(ctx context.Context, cfgPath, kubeconfig string, getenv func(string) string, log *slog.Logger) error {
	watcher, err := config.NewWatcher(cfgPath)
	if err != nil {
		return err
	}
	cfg := watcher.Current()
	pod, err := readPod(getenv)
	if err != nil {
		return err
	}
	rid, err := plan.RouterID(cfg, pod.self)
	if err != nil {
		return err
	}
	be, err := newBackend(cfg, watcher.Current)
	if err != nil {
		return err
	}
	client, err := kubeClient(kubeconfig)
	if err != nil {
		return err
	}
	log = log.With("pod", pod.self.Namespace+"/"+pod.self.Name)
	// every reader of the daemon's sessions shares one read at most
	// statusMaxAge old: no request rate becomes a daemon query rate
	sessions := backend.NewSessionCache(be, statusMaxAge)
	m := metrics.New(sessions)
	sessions.OnQuery = m.DaemonQueries.Inc
	m.PerPeer = func(group model.GroupName) bool { return watcher.Current().PeerMetrics(group) }
	m.Info.WithLabelValues(Version, be.Name(), rid.String()).Set(1)
	rec, stopEvents := events.New(client, events.Pod{Name: pod.self.Name, Namespace: pod.self.Namespace, UID: pod.uid}, log)
	defer stopEvents()
	if b, ok := be.(*bird.Backend); ok {
		b.OnExtraConfig(func(refused error) {
			if refused != nil {
				log.Error("extraConfig refused by BIRD; the last version it accepted stays in use", "op", "apply", "error", refused)
				rec.Warning(events.ReasonExtraConfigRefused, "backend.bird.extraConfig refused by BIRD, the last version it accepted stays in use (fix the group's ConfigMap or helm upgrade): %v", refused)
				return
			}
			log.Info("extraConfig: the new version is in use", "op", "apply")
			rec.Normal(events.ReasonExtraConfigApplied, "backend.bird.extraConfig: the new version is in use")
		})
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	namespaces := cfg.WatchedNamespaces(pod.self.Namespace)
	onReload(watcher, cfg, reloadDeps{m: m, rec: rec, log: log, podNamespace: pod.self.Namespace, namespaces: namespaces, restart: cancel})
	kept, err := state.Open(cfg.Reconcile.StateFile)
	if err != nil {
		log.Warn("the state of the agent before is not used", "op", "state", "error", err)
	}
	disc := discovery.New(client, namespaces, 0, log)
	disc.Names = func() map[string]string { return watcher.Current().Services(pod.self.Namespace) }
	disc.State = kept
	loop := &reconcile.Loop{Backend: be, Reader: sessions, Peers: disc, Config: watcher, Self: pod.self, ClusterAddrs: pod.cluster, Metrics: m, Events: rec, Log: log, State: kept}

	rep := &reporter{loop: loop, be: be, sessions: sessions, m: m, cfg: watcher, pod: pod}
	stopHTTP, err := serveHTTP(ctx, cfg.Status.Listen, handler(m, loop, watcher, rep))
	if err != nil {
		return err
	}
	defer stopHTTP()

	stopControl, err := serveControl(ctx, cfg, client, loop, pod, rec, rep, log)
	if err != nil {
		return err
	}
	defer stopControl()

	log.Info("starting", "version", Version, "backend", be.Name(), "router_id", rid.String(), "namespaces", namespaces, "listen", cfg.Status.Listen)
	go watcher.Run(ctx)
	go func() {
		if err := disc.Start(ctx); err != nil && ctx.Err() == nil {
			cancel(err)
		}
	}()
	if err := loop.Run(ctx); err != nil {
		return err
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	log.Info("stopped")
	return nil
}

// reloadDeps is what a configuration reload reports to and may restart.
type reloadDeps struct {
	m            *metrics.Metrics
	rec          events.Recorder
	log          *slog.Logger
	podNamespace string
	namespaces   []string // watched since start
	restart      context.CancelCauseFunc
}

// onReload: settings every session is opened with apply when the pod is
// replaced (the chart rolls the pods one at a time for them), never to
// every running RR of the group at once; a rejected configuration keeps
// the last good one; settings read only at start restart the agent
// container (the daemon and its sessions are not touched).
func onReload(watcher *config.Watcher, started *config.Config, d reloadDeps) {
	watcher.Adjust = func(c *config.Config) {
		if kept := c.KeepSessionSettings(started); len(kept) > 0 {
			d.log.Warn("settings that reset every session changed: kept until this pod is replaced", "op", "reload", "kept", kept)
			d.rec.Normal(events.ReasonSettingsKept, "%s changed: these reset every BGP session, so this pod keeps its running values until it is replaced (the chart rolls the pods one at a time, each draining)", strings.Join(kept, ", "))
		}
	}
	watcher.OnReload = func(c *config.Config, err error) {
		if err != nil {
			d.m.ConfigReloads.WithLabelValues("rejected").Inc()
			d.m.ConfigLastReloadOK.Set(0)
			d.log.Error("configuration rejected; keeping the last good one", "op", "reload", "error", err)
			d.rec.Warning(events.ReasonConfigRejected, "configuration rejected, the last good one stays in use: %v", err)
			return
		}
		d.m.ConfigReloads.WithLabelValues("success").Inc()
		d.m.ConfigLastReloadOK.Set(1)
		d.log.Info("configuration reloaded", "op", "reload")
		d.rec.Normal(events.ReasonConfigReloaded, "configuration reloaded")
		if now := c.WatchedNamespaces(d.podNamespace); !slices.Equal(now, d.namespaces) {
			// informers watch a fixed set of namespaces
			d.restart(fmt.Errorf("watched namespaces changed from %v to %v: restarting the agent to watch them", d.namespaces, now))
		}
		if changed := restartFields(started, c); len(changed) > 0 {
			d.rec.Normal(events.ReasonConfigReloaded, "restarting the agent to apply %s (read only at start)", strings.Join(changed, ", "))
			d.restart(fmt.Errorf("%s changed: restarting the agent to use them", strings.Join(changed, ", ")))
		}
	}
}

// restartFields names the settings that changed between two
// configurations and that the running agent reads only at start: the
// backend it was built with (the licence limits aside: the loop reads them
// at every reconcile), the status listener and the drain's control socket,
// done file, lock and wait. Without a restart they would be silently
// ignored, and a moved control socket would break every later drain,
// enable and in-pod status request.
func restartFields(was, now *config.Config) []string {
	var changed []string
	for _, f := range readAtStart {
		if !reflect.DeepEqual(f.get(was), f.get(now)) {
			changed = append(changed, f.name)
		}
	}
	return changed
}

// readAtStart are the settings restartFields compares (reflect.DeepEqual:
// a pointer compares by what it points to).
var readAtStart = []struct {
	name string
	get  func(*config.Config) any
}{
	{"backend.type", func(c *config.Config) any { return c.Backend.Type }},
	{"backend.bird.socket", func(c *config.Config) any { return c.Backend.Bird.Socket }},
	{"backend.bird.configFile", func(c *config.Config) any { return c.Backend.Bird.ConfigFile }},
	{"backend.bird.include", func(c *config.Config) any { return c.Backend.Bird.Include }},
	{"backend.bird.strictBind", func(c *config.Config) any { return c.Backend.Bird.StrictBind != nil && *c.Backend.Bird.StrictBind }},
	{"backend.crpd", func(c *config.Config) any {
		k := c.Backend.CRPD
		k.LicenseLimits = config.LicenseLimits{} // read at every reconcile
		return k
	}},
	{"status.listen", func(c *config.Config) any { return c.Status.Listen }},
	{"drain.controlSocket", func(c *config.Config) any { return c.Drain.ControlSocket }},
	{"drain.doneFile", func(c *config.Config) any { return c.Drain.DoneFile }},
	{"drain.lock", func(c *config.Config) any { return c.Drain.Lock }},
	{"drain.waitTimeout", func(c *config.Config) any { return c.Drain.WaitTimeout }},
}

// serveHTTP serves /metrics, /healthz, /readyz and /status on listen until
// the returned stop.
func serveHTTP(ctx context.Context, listen string, h http.Handler) (stop func(), err error) {
	srv := &http.Server{Addr: listen, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("status.listen: %w", err)
	}
	go func() { _ = srv.Serve(ln) }()
	return func() {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// handler serves /metrics, /healthz (the process answers) and /readyz
// (the pod is useful: see reconcile.Loop.Ready).
func handler(m *metrics.Metrics, loop *reconcile.Loop, w *config.Watcher, rep *reporter) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", rep.serveHTTP)
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(rw, "ok")
	})
	ready := &memo[error]{maxAge: statusMaxAge}
	mux.HandleFunc("/readyz", func(rw http.ResponseWriter, r *http.Request) {
		err := ready.get(func() error {
			ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
			defer cancel()
			return loop.Ready(ctx, *w.Current().Status.ReadyRequiresEstablished)
		})
		if err != nil {
			http.Error(rw, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ready")
	})
	return mux
}
