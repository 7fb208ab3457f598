package metrics

import (
	"context"
	"errors"
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

func TestSessionStateIsReadAtScrapeTime(t *testing.T) {
	m := New(sessions{list: []model.Session{
		{Group: "mesh", State: "Established", Imported: 3},
		{Group: "mesh", State: "Established", Imported: 4},
		{Group: "upstream", State: "Active"},
		{Group: "", State: "Established", Imported: 1},
	}})
	expected := `
# HELP meshrr_bgp_sessions BGP sessions read from the daemon at scrape time, per group and state.
# TYPE meshrr_bgp_sessions gauge
meshrr_bgp_sessions{group="mesh",state="Established"} 2
meshrr_bgp_sessions{group="other",state="Established"} 1
meshrr_bgp_sessions{group="upstream",state="Active"} 1
# HELP meshrr_bgp_prefixes_received Prefixes imported over the group's sessions, read at scrape time.
# TYPE meshrr_bgp_prefixes_received gauge
meshrr_bgp_prefixes_received{group="mesh"} 7
meshrr_bgp_prefixes_received{group="other"} 1
meshrr_bgp_prefixes_received{group="upstream"} 0
# HELP meshrr_daemon_up 1 if the routing daemon answered the scrape's session query.
# TYPE meshrr_daemon_up gauge
meshrr_daemon_up 1
`
	require.NoError(t, testutil.GatherAndCompare(m.Registry, strings.NewReader(expected), "meshrr_bgp_sessions", "meshrr_bgp_prefixes_received", "meshrr_daemon_up"))

	down := New(sessions{err: errors.New("connection refused")})
	n, err := testutil.GatherAndCount(down.Registry, "meshrr_bgp_sessions")
	require.NoError(t, err)
	assert.Zero(t, n)
	require.NoError(t, testutil.GatherAndCompare(down.Registry, strings.NewReader("# HELP meshrr_daemon_up 1 if the routing daemon answered the scrape's session query.\n# TYPE meshrr_daemon_up gauge\nmeshrr_daemon_up 0\n"), "meshrr_daemon_up"))
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
