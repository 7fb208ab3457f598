// Package metrics defines every Prometheus metric the agent exports, in
// this one file. Session state comes from the agent's shared session read
// (backend.SessionCache: at most a few seconds old), never from a daemon
// query per scrape.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshrr/meshrr/agent/internal/model"
)

const ns = "meshrr"

// Apply results.
const (
	ResultApplied   = "applied"
	ResultUnchanged = "unchanged"
	ResultError     = "error"
)

// Metrics holds the agent's collectors on their own registry.
type Metrics struct {
	Registry *prometheus.Registry

	DiscoveredPeers      *prometheus.GaugeVec
	ConfiguredPeers      *prometheus.GaugeVec
	ReconcileDuration    prometheus.Histogram
	ApplyDuration        prometheus.Histogram
	Applies              *prometheus.CounterVec
	ChangeToApplied      prometheus.Histogram
	ConfigReloads        *prometheus.CounterVec
	ConfigLastReloadOK   prometheus.Gauge
	DaemonRestarts       prometheus.Counter
	ClientSessionsReaped prometheus.Counter
	ClientsDisabled      prometheus.Gauge
	ChangeHeld           prometheus.Gauge
	LicenseUsage         *prometheus.GaugeVec
	LicenseLimit         *prometheus.GaugeVec
	RoutesHeld           prometheus.Gauge
	MemoryNeeded         prometheus.Gauge
	MemoryLimit          prometheus.Gauge
	UpstreamReplacements prometheus.Counter
	DaemonQueries        prometheus.Counter
	Info                 *prometheus.GaugeVec

	// PerPeer says which groups' sessions get per-peer series (nil: mesh
	// and upstream). Set before serving.
	PerPeer func(group model.GroupName) bool
	peers   peerTracker
	now     func() time.Time
}

// SessionReader reads the daemon's sessions (the backend).
type SessionReader interface {
	Sessions(ctx context.Context) ([]model.Session, error)
}

// New creates and registers every metric; a scrape takes the sessions
// from r (the agent's SessionCache).
func New(r SessionReader) *Metrics {
	fast := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m := &Metrics{
		now:      time.Now,
		Registry: prometheus.NewRegistry(),
		DiscoveredPeers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "discovery", Name: "peers",
			Help: "Ready members discovered per role (mesh: other members of the own group; upstream: members of the upstream group; downstream: RRs of the groups that peer up to this one).",
		}, []string{"role"}),
		ConfiguredPeers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "plan", Name: "configured_peers",
			Help: "Explicit neighbours (mesh, upstream) or ranges (client groups) in the applied configuration, per group.",
		}, []string{"group"}),
		ReconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "reconcile", Name: "duration_seconds",
			Help: "Time of one reconcile: read sessions, plan, render, compare and apply.", Buckets: fast,
		}),
		ApplyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "apply", Name: "duration_seconds",
			Help: "Time the daemon took to check and activate a changed configuration.", Buckets: fast,
		}),
		Applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "apply", Name: "total",
			Help: "Reconcile outcomes: applied (configuration changed), unchanged (identical, not re-applied), error (rejected or failed).",
		}, []string{"result"}),
		ChangeToApplied: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "discovery", Name: "change_to_applied_seconds",
			Help: "From an EndpointSlice change seen by the informer to the resulting configuration applied (or found unchanged).", Buckets: fast,
		}),
		ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "config", Name: "reloads_total",
			Help: "Configuration file reloads: success, or rejected (the last good configuration stays in use).",
		}, []string{"result"}),
		ConfigLastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "config", Name: "last_reload_successful",
			Help: "1 if the configuration file in place is the one in use, 0 if the last reload was rejected.",
		}),
		UpstreamReplacements: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "upstream", Name: "replacements_total",
			Help: "Upstream peers replaced because their session stayed down past the grace period.",
		}),
		DaemonQueries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "daemon", Name: "session_queries_total",
			Help: "Queries of the daemon's sessions. Shared by the loop, scrapes, /status, /readyz and the drain, and at most one per 2 s however many requests arrive.",
		}),
		DaemonRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "daemon", Name: "restarts_total",
			Help: "Restarts of the routing daemon the agent noticed (its configuration is applied again each time).",
		}),
		ChangeHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "plan", Name: "change_held",
			Help: "1 while a change is held: discovery no longer lists this pod, or a plan would remove more than reconcile.maxRemovedShare of the mesh or every upstream peer at once.",
		}),
		ClientSessionsReaped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "clients", Name: "sessions_reaped_total",
			Help: "Sessions spawned from client ranges removed because their peer had gone (down longer than the graceful-restart time).",
		}),
		ClientsDisabled: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "clients", Name: "disabled",
			Help: "Clients kept out for exceeding maxPrefixes with maxPrefixAction disable, until re-enabled (meshrr-agent enable) or reenableAfter.",
		}),
		LicenseUsage: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "license", Name: "usage",
			Help: "Use of a resource the daemon's licence limits (cRPD): bgp-peers planned (explicit neighbours plus spawned client sessions), rib-entries received.",
		}, []string{"resource"}),
		LicenseLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "license", Name: "limit",
			Help: "The licence's limit of a resource as configured (backend.crpd.licenseLimits); 0 means none.",
		}, []string{"resource"}),
		RoutesHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "daemon", Name: "routes_held",
			Help: "Routes the daemon holds from its sessions (every path received counts once), as last read.",
		}),
		MemoryNeeded: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "memory", Name: "needed_bytes",
			Help: "Memory the daemon needs for the routes it holds: backend.bird.baseMemory plus bytesPerRoute per route (docs/scale.md); BIRD only.",
		}),
		MemoryLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "memory", Name: "limit_bytes",
			Help: "The daemon container's memory limit (resources.bird.limits.memory); BIRD only.",
		}),
		Info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "agent", Name: "info",
			Help: "Constant 1, labelled with the agent's version, backend and router id.",
		}, []string{"version", "backend", "router_id"}),
	}
	m.ConfigLastReloadOK.Set(1)
	for _, r := range []string{ResultApplied, ResultUnchanged, ResultError} {
		m.Applies.WithLabelValues(r)
	}
	m.Registry.MustRegister(
		m.DiscoveredPeers, m.ConfiguredPeers, m.ReconcileDuration, m.ApplyDuration, m.Applies,
		m.ChangeToApplied, m.ConfigReloads, m.ConfigLastReloadOK, m.UpstreamReplacements, m.DaemonRestarts, m.DaemonQueries, m.Info,
		m.LicenseUsage, m.LicenseLimit, m.ClientSessionsReaped, m.ClientsDisabled, m.ChangeHeld,
		m.RoutesHeld, m.MemoryNeeded, m.MemoryLimit,
		&sessionCollector{r: r, m: m},
		md5Collector{path: "/proc/net/netstat"},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

var (
	sessionsDesc = prometheus.NewDesc(ns+"_bgp_sessions", "BGP sessions per group and state, as last read from the daemon (at most 2 s before the scrape).", []string{"group", "state"}, nil)
	prefixesDesc = prometheus.NewDesc(ns+"_bgp_prefixes_received", "Prefixes imported over the group's sessions, as last read from the daemon.", []string{"group"}, nil)
	upDesc       = prometheus.NewDesc(ns+"_daemon_up", "1 if the routing daemon answered the last session query.", nil, nil)
)

type sessionCollector struct {
	r SessionReader
	m *Metrics
}

func (c *sessionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sessionsDesc
	ch <- prefixesDesc
	ch <- upDesc
	for _, d := range peerDescriptions {
		ch <- d
	}
}

func (c *sessionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ss, err := c.r.Sessions(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1)
	type key struct{ group, state string }
	counts := map[key]int{}
	prefixes := map[string]int{}
	for _, s := range ss {
		g := string(s.Group)
		if g == "" {
			g = "other" // sessions the operator configured
		}
		counts[key{g, string(s.State)}]++
		prefixes[g] += s.Imported
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(n), k.group, k.state)
	}
	for g, n := range prefixes {
		ch <- prometheus.MustNewConstMetric(prefixesDesc, prometheus.GaugeValue, float64(n), g)
	}
	c.m.collectPeers(ch, ss, c.m.now())
}
