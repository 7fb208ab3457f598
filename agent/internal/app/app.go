// Package app wires the agent together. main only calls Main.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/backend/bird"
	"github.com/meshrr/meshrr/agent/internal/backend/crpd"
	"github.com/meshrr/meshrr/agent/internal/discovery"
	"github.com/meshrr/meshrr/agent/internal/events"
	"github.com/meshrr/meshrr/agent/internal/metrics"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/plan"
	"github.com/meshrr/meshrr/agent/internal/reconcile"
	"github.com/meshrr/meshrr/agent/internal/state"
	"github.com/meshrr/meshrr/agent/internal/status"
	"github.com/meshrr/meshrr/agent/internal/uninstall"
)

// Version is set at build time (-ldflags -X).
var Version = "dev"

const usage = `meshrr-agent keeps a routing daemon's BGP configuration in step with the
route reflectors it discovers through the Kubernetes API.

Usage:
  meshrr-agent run   --config FILE [--kubeconfig FILE] [--log-level info]
  meshrr-agent check --config FILE | FILE...
                                       validate configuration files with the agent's rules
                                       (every error, naming the file and the field) and exit
  meshrr-agent init  --config FILE     write the daemon's startup configuration if none exists
  meshrr-agent sessions --config FILE  print the daemon's BGP sessions as JSON
  meshrr-agent status --config FILE [--json]  this pod's peers and sessions (from the running
                                       agent); exits 2 when the pod is degraded (as
                                       kubectl meshrr status), 1 when it cannot tell
  meshrr-agent enable --config FILE ADDRESS
                                       admit again a client kept out for exceeding maxPrefixes
                                       (maxPrefixAction: disable); run it in each RR pod of the group
  meshrr-agent drain --config FILE     graceful shutdown (the pod's preStop): ask the running
                                       agent to drain, then stay up for drain.time
  meshrr-agent uninstall --namespace NS --selector LABELS [--timeout 300s] [--kubeconfig FILE]
                                       the chart's pre-delete hook: scale the release's
                                       workloads to zero and wait until their pods (draining
                                       one at a time per group) are gone
  meshrr-agent version

The pod is described by the environment (downward API): POD_NAME,
POD_NAMESPACE, POD_UID, POD_IPS (status.podIPs, comma-separated; POD_IP is
accepted too), NODE_NAME and MESHRR_SIDE (the pod's meshrr.io/side label).
`

// Main runs the agent and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := Run(ctx, args, os.Getenv, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "meshrr-agent:", err)
	}
	return exitCode(err)
}

// exitCode: 2 for a degraded verdict (as kubectl meshrr status), 1 for any
// other failure.
func exitCode(err error) int {
	switch {
	case err == nil:
		return status.ExitOK
	case errors.Is(err, status.ErrDegraded):
		return status.ExitDegraded
	}
	return status.ExitError
}

// Run executes one subcommand.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("a subcommand is required")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/meshrr/config.yaml", "agent configuration file")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: in-cluster)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	asJSON := fs.Bool("json", false, "status: print the report as JSON")
	namespace := fs.String("namespace", "", "uninstall: the release namespace")
	selector := fs.String("selector", "", "uninstall: label selector of the release's workloads and pods")
	timeout := fs.Duration("timeout", 300*time.Second, "uninstall: how long to wait for the pods to stop")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))

	switch args[0] {
	case "version":
		fmt.Fprintln(stdout, Version)
		return nil
	case "check":
		files := fs.Args()
		if len(files) == 0 {
			files = []string{*cfgPath}
		}
		return runCheck(files, stdout)
	case "init":
		return runInit(*cfgPath, getenv, stdout)
	case "sessions":
		return runSessions(ctx, *cfgPath, stdout)
	case "drain":
		return runDrain(ctx, *cfgPath, stdout)
	case "enable":
		return runEnable(ctx, *cfgPath, fs.Args(), stdout)
	case "status":
		return runStatus(ctx, *cfgPath, *asJSON, stdout)
	case "run":
		return runAgent(ctx, *cfgPath, *kubeconfig, getenv, log)
	case "uninstall":
		return runUninstall(ctx, uninstall.Options{Namespace: *namespace, Selector: *selector, Timeout: *timeout, Log: log}, *kubeconfig, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown subcommand %q", args[0])
}

// podEnv is the pod described by the downward API.
type podEnv struct {
	self plan.Self
	uid  string
	node string
	// cluster: the pod's own addresses on the pod network (not when the
	// pod uses the node's network) and the API server's Service address
	cluster []plan.ClusterAddr
}

func readPod(getenv func(string) string) (podEnv, error) {
	p := podEnv{self: plan.Self{Name: getenv("POD_NAME"), Namespace: getenv("POD_NAMESPACE"), Side: getenv("MESHRR_SIDE")}, uid: getenv("POD_UID"), node: getenv("NODE_NAME")}
	var problems []string
	if p.self.Name == "" {
		problems = append(problems, "POD_NAME is not set (downward API metadata.name)")
	}
	if p.self.Namespace == "" {
		problems = append(problems, "POD_NAMESPACE is not set (downward API metadata.namespace)")
	}
	ips := getenv("POD_IPS")
	if ips == "" {
		ips = getenv("POD_IP")
	}
	for _, s := range strings.Split(ips, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			problems = append(problems, fmt.Sprintf("POD_IPS: %q is not an IP address", s))
			continue
		}
		p.self.Addrs = append(p.self.Addrs, a.Unmap())
	}
	if len(p.self.Addrs) == 0 && ips == "" {
		problems = append(problems, "POD_IPS is not set (downward API status.podIPs)")
	}
	if host, err := netip.ParseAddr(getenv("HOST_IP")); err == nil {
		for _, a := range p.self.Addrs {
			if a != host.Unmap() {
				p.cluster = append(p.cluster, plan.ClusterAddr{Addr: a, What: "this pod's address " + a.String() + " (the pod network)"})
			}
		}
	}
	if api, err := netip.ParseAddr(getenv("KUBERNETES_SERVICE_HOST")); err == nil {
		p.cluster = append(p.cluster, plan.ClusterAddr{Addr: api.Unmap(), What: "the API server's Service address " + api.String() + " (the service network)"})
	}
	if problems != nil {
		return p, errors.New(strings.Join(problems, "; "))
	}
	return p, nil
}

// newBackend builds the configured backend; current is the configuration
// in force (it follows reloads) for what the backend reads at every
// reconcile.
func newBackend(c *config.Config, current func() *config.Config) (backend.Backend, error) {
	switch c.Backend.Type {
	case config.BackendBird:
		return bird.New(c.Backend.Bird), nil
	case config.BackendCRPD:
		k := c.Backend.CRPD
		sshCfg, err := crpd.SSHConfig(k.User, k.KeyFile, k.KnownHostFile, 10*time.Second)
		if err != nil {
			return nil, err
		}
		limits := func() crpd.Limits {
			l := current().Backend.CRPD.LicenseLimits
			return crpd.Limits{BGPPeers: *l.BGPPeers, RIBEntries: *l.RIBEntries}
		}
		return crpd.New(crpd.NewConn(k.Address, sshCfg).WithRPCTimeout(k.RPCTimeout.Duration), k.StateFile).WithLimits(limits), nil
	}
	return nil, fmt.Errorf("backend.type %q is not available (supported: bird, crpd)", c.Backend.Type)
}

// runSessions prints the daemon's sessions as JSON (one array).
func runSessions(ctx context.Context, cfgPath string, stdout io.Writer) error {
	c, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	be, err := newBackend(c, func() *config.Config { return c })
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ss, err := be.Sessions(ctx)
	if err != nil {
		return err
	}
	if ss == nil {
		ss = []model.Session{}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(ss)
}

func runInit(cfgPath string, getenv func(string) string, stdout io.Writer) error {
	c, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	pod, err := readPod(getenv)
	if err != nil {
		return err
	}
	rid, err := plan.RouterID(c, pod.self)
	if err != nil {
		return err
	}
	var written bool
	var file string
	switch c.Backend.Type {
	case config.BackendBird:
		file = c.Backend.Bird.ConfigFile
		written, err = bird.New(c.Backend.Bird).WriteBootstrap(rid)
	case config.BackendCRPD:
		k := c.Backend.CRPD
		file = k.StartupConfig
		st := crpd.Startup{RouterID: rid, ASN: c.ASN(), User: k.User}
		if k.ExtraConfigFile != "" {
			extra, rerr := os.ReadFile(k.ExtraConfigFile)
			if rerr != nil {
				return fmt.Errorf("backend.crpd.extraConfigFile: %w", rerr)
			}
			st.Extra = strings.TrimSpace(string(extra))
		}
		written, err = crpd.Init(crpd.Files{Startup: k.StartupConfig, Key: k.KeyFile, HostKey: k.HostKeyFile, KnownHost: k.KnownHostFile, License: k.LicenseFile}, st)
	default:
		return fmt.Errorf("init: backend %q is not available", c.Backend.Type)
	}
	if err != nil {
		return err
	}
	if written {
		fmt.Fprintf(stdout, "wrote %s (router id %s)\n", file, rid)
	} else {
		fmt.Fprintf(stdout, "kept the existing %s\n", file)
	}
	return nil
}

// watchedNamespaces: the mesh, the upstream and its siblings', and the
// downstream groups' namespaces.
func watchedNamespaces(c *config.Config, own string) []string {
	ns := []string{own}
	add := func(n string) {
		if n != "" && !slices.Contains(ns, n) {
			ns = append(ns, n)
		}
	}
	add(c.Mesh.Namespace)
	if u := c.Upstream; u != nil {
		add(u.Namespace)
		for _, s := range u.SiblingNamespaces {
			add(s)
		}
	}
	if d := c.Downstream; d != nil {
		for _, s := range d.Namespaces {
			add(s)
		}
	}
	return ns
}

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
	m.PerPeer = func(group string) bool { return watcher.Current().PeerMetrics(group) }
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
	namespaces := watchedNamespaces(cfg, pod.self.Namespace)
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

// kubeClient: in-cluster, or from a kubeconfig file.
func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	restCfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return client, nil
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
		if now := watchedNamespaces(c, d.podNamespace); !slices.Equal(now, d.namespaces) {
			// informers watch a fixed set of namespaces
			d.restart(fmt.Errorf("watched namespaces changed from %v to %v: restarting the agent to watch them", d.namespaces, now))
		}
		if changed := restartFields(started, c); len(changed) > 0 {
			d.rec.Normal(events.ReasonConfigReloaded, "restarting the agent to apply %s (read only at start)", strings.Join(changed, ", "))
			d.restart(fmt.Errorf("%s changed: restarting the agent to use them", strings.Join(changed, ", ")))
		}
	}
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

// restartFields names the settings that changed between two
// configurations and that the running agent reads only at start: the
// backend it was built with (the licence limits aside: the loop reads them
// at every reconcile), the status listener and the drain's control socket,
// done file, lock and wait. Without a restart they would be silently
// ignored, and a moved control socket would break every later drain,
// enable and in-pod status request.
func restartFields(was, now *config.Config) []string {
	a, b := was.Backend.CRPD, now.Backend.CRPD
	a.LicenseLimits, b.LicenseLimits = config.LicenseLimits{}, config.LicenseLimits{}
	strict := func(c *config.Config) string {
		return fmt.Sprint(c.Backend.Bird.StrictBind != nil && *c.Backend.Bird.StrictBind)
	}
	var changed []string
	for _, f := range []struct {
		name     string
		was, now string
	}{
		{"backend.type", string(was.Backend.Type), string(now.Backend.Type)},
		{"backend.bird.socket", was.Backend.Bird.Socket, now.Backend.Bird.Socket},
		{"backend.bird.configFile", was.Backend.Bird.ConfigFile, now.Backend.Bird.ConfigFile},
		{"backend.bird.include", fmt.Sprint(was.Backend.Bird.Include), fmt.Sprint(now.Backend.Bird.Include)},
		{"backend.bird.strictBind", strict(was), strict(now)},
		{"backend.crpd", fmt.Sprintf("%+v", a), fmt.Sprintf("%+v", b)},
		{"status.listen", was.Status.Listen, now.Status.Listen},
		{"drain.controlSocket", was.Drain.ControlSocket, now.Drain.ControlSocket},
		{"drain.doneFile", was.Drain.DoneFile, now.Drain.DoneFile},
		{"drain.lock", was.Drain.Lock, now.Drain.Lock},
		{"drain.waitTimeout", was.Drain.WaitTimeout.String(), now.Drain.WaitTimeout.String()},
	} {
		if f.was != f.now {
			changed = append(changed, f.name)
		}
	}
	return changed
}

// runUninstall stops the release's pods before Helm deletes anything.
func runUninstall(ctx context.Context, o uninstall.Options, kubeconfig string, stdout io.Writer) error {
	if err := o.Validate(); err != nil {
		return err
	}
	rc, err := restConfig(kubeconfig)
	if err != nil {
		return err
	}
	if o.Client, err = kubernetes.NewForConfig(rc); err != nil {
		return err
	}
	rep, err := uninstall.Run(ctx, o)
	if err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	fmt.Fprintln(stdout, rep)
	return nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig: %w", err)
		}
		return c, nil
	}
	c, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("not running in a pod (%w): pass --kubeconfig", err)
	}
	return c, nil
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
