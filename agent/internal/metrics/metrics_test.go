package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/model"
)

type sessions struct {
	list []model.Session
	err  error
}

func (s sessions) Sessions(context.Context) ([]model.Session, error) { return s.list, s.err }

func TestSessionStateIsWhatTheReaderLastRead(t *testing.T) {
	m := New(sessions{list: []model.Session{
		{Group: "mesh", State: "Established", Imported: 3},
		{Group: "mesh", State: "Established", Imported: 4},
		{Group: "upstream", State: "Active"},
		{Group: "", State: "Established", Imported: 1},
	}})
	expected := `
# HELP meshrr_bgp_sessions BGP sessions per group and state, as last read from the daemon (at most 2 s before the scrape).
# TYPE meshrr_bgp_sessions gauge
meshrr_bgp_sessions{group="mesh",state="Established"} 2
meshrr_bgp_sessions{group="other",state="Established"} 1
meshrr_bgp_sessions{group="upstream",state="Active"} 1
# HELP meshrr_bgp_prefixes_received Prefixes imported over the group's sessions, as last read from the daemon.
# TYPE meshrr_bgp_prefixes_received gauge
meshrr_bgp_prefixes_received{group="mesh"} 7
meshrr_bgp_prefixes_received{group="other"} 1
meshrr_bgp_prefixes_received{group="upstream"} 0
# HELP meshrr_daemon_up 1 if the routing daemon answered the last session query.
# TYPE meshrr_daemon_up gauge
meshrr_daemon_up 1
`
	require.NoError(t, testutil.GatherAndCompare(m.Registry, strings.NewReader(expected), "meshrr_bgp_sessions", "meshrr_bgp_prefixes_received", "meshrr_daemon_up"))

	down := New(sessions{err: errors.New("connection refused")})
	n, err := testutil.GatherAndCount(down.Registry, "meshrr_bgp_sessions")
	require.NoError(t, err)
	assert.Zero(t, n)
	require.NoError(t, testutil.GatherAndCompare(down.Registry, strings.NewReader("# HELP meshrr_daemon_up 1 if the routing daemon answered the last session query.\n# TYPE meshrr_daemon_up gauge\nmeshrr_daemon_up 0\n"), "meshrr_daemon_up"))
}

func TestEveryMetricIsNamespacedAndPreinitialised(t *testing.T) {
	m := New(sessions{})
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	var names []string
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "go_") || strings.HasPrefix(mf.GetName(), "process_") {
			continue
		}
		assert.True(t, strings.HasPrefix(mf.GetName(), "meshrr_"), mf.GetName())
		names = append(names, mf.GetName())
	}
	assert.Contains(t, names, "meshrr_apply_total", "apply outcomes are exported at zero before the first reconcile")
	assert.Contains(t, names, "meshrr_config_last_reload_successful")
}

var metricName = regexp.MustCompile(`\bmeshrr_[a-z_]+\b`)

// exported lists every metric name the agent exports, with the series
// names histograms add.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := New(sessions{list: []model.Session{{Group: "mesh", State: "Established"}}})
	m.ApplyDuration.Observe(0.01)
	m.ReconcileDuration.Observe(0.01)
	m.ChangeToApplied.Observe(0.01)
	m.DaemonRestarts.Add(0)
	m.Info.WithLabelValues("v", "bird", "10.0.0.1").Set(1)
	m.ConfigReloads.WithLabelValues("rejected")
	m.LicenseUsage.WithLabelValues("bgp-peers") // set by the loop with a licensed backend (cRPD)
	m.LicenseLimit.WithLabelValues("bgp-peers")
	m.ChangeHeld.Set(0)
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	out := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		out[n] = true
		if mf.GetType().String() == "HISTOGRAM" {
			out[n+"_bucket"], out[n+"_sum"], out[n+"_count"] = true, true, true
		}
	}
	return out
}

// The shipped dashboard is valid JSON and every expression uses only
// metrics the agent exports; so do the chart's alerts.
func TestDashboardAndAlertsUseOnlyExportedMetrics(t *testing.T) {
	have := exported(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "charts", "meshrr", "dashboards", "meshrr.json"))
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &d), "the dashboard is not valid JSON")
	require.NotEmpty(t, d.Panels)
	used := 0
	for _, p := range d.Panels {
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			names := metricName.FindAllString(tg.Expr, -1)
			require.NotEmpty(t, names, "%s: %s", p.Title, tg.Expr)
			for _, n := range names {
				assert.True(t, have[n], "%s: %s is not exported by the agent", p.Title, n)
				used++
			}
		}
	}
	rules, err := os.ReadFile(filepath.Join("..", "..", "..", "charts", "meshrr", "templates", "prometheusrule.yaml"))
	require.NoError(t, err)
	for _, n := range metricName.FindAllString(string(rules), -1) {
		assert.True(t, have[n], "alert rule uses %s, which the agent does not export", n)
	}
	// and the dashboard covers sessions, convergence and errors
	all := string(raw)
	for _, n := range metricName.FindAllString(all, -1) { // variables too
		assert.True(t, have[n], "the dashboard uses %s, which the agent does not export", n)
	}
	for _, n := range []string{"meshrr_bgp_sessions", "meshrr_discovery_change_to_applied_seconds_bucket", "meshrr_apply_duration_seconds_bucket", "meshrr_apply_total"} {
		assert.Contains(t, all, n)
	}
	t.Logf("dashboard: %d panels, %d metric references, all exported", len(d.Panels), used)
}

func TestParseNetstatReadsTheMD5Counters(t *testing.T) {
	in := "TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure\nTcpExt: 0 3 0 17\nIpExt: InNoRoutes\nIpExt: 0\n"
	got, err := ParseNetstat(strings.NewReader(in))
	require.NoError(t, err)
	assert.Equal(t, uint64(17), got["TCPMD5Failure"])
	assert.Equal(t, uint64(3), got["TCPMD5NotFound"])
	_, err = ParseNetstat(strings.NewReader("TcpExt: A B\nTcpExt: 1\n"))
	require.ErrorContains(t, err, "2 TcpExt names but 1 values")

	// and this machine's own counters are exported (the test runs on Linux)
	m := New(sessions{})
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "meshrr_tcp_md5_segments_dropped_total"
	}
	assert.True(t, found, "meshrr_tcp_md5_segments_dropped_total is exported")
}
