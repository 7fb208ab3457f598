package metrics

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/model"
)

// seriesOf gathers the named series as "name{label=value,...} value" lines.
func seriesOf(t *testing.T, m *Metrics, names ...string) string {
	var b strings.Builder
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		for _, n := range names {
			if mf.GetName() != n {
				continue
			}
			for _, mt := range mf.GetMetric() {
				var ls []string
				for _, l := range mt.GetLabel() {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
				v := mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
				b.WriteString(n + "{" + strings.Join(ls, ",") + "} " + strconv.FormatFloat(v, 'f', -1, 64) + "\n")
			}
		}
	}
	return b.String()
}

func TestPerPeerSeriesFlapsAndBFD(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	mesh := model.Session{Group: "mesh", Peer: netip.MustParseAddr("10.244.1.7"), State: "Established", Since: t0.Add(-time.Hour), Imported: 5, Exported: 7, BFD: "Up"}
	client := model.Session{Group: "routers", Peer: netip.MustParseAddr("172.19.0.9"), State: "Established", Since: t0.Add(-time.Minute), Imported: 2, BFD: "Down"}
	src := &sessions{list: []model.Session{mesh, client}}
	m := New(src)
	m.now = func() time.Time { return t0 }
	series := func() string {
		return seriesOf(t, m, "meshrr_bgp_peer_up", "meshrr_bgp_peer_uptime_seconds", "meshrr_bgp_peer_prefixes_received", "meshrr_bgp_peer_prefixes_sent", "meshrr_bgp_peer_flaps_total", "meshrr_bfd_peer_up", "meshrr_bfd_sessions")
	}
	got := series()
	// mesh peers by default; the client group is aggregated only
	assert.Contains(t, got, "meshrr_bgp_peer_up{group=mesh,peer=10.244.1.7} 1\n")
	assert.Contains(t, got, "meshrr_bgp_peer_uptime_seconds{group=mesh,peer=10.244.1.7} 3600\n")
	assert.Contains(t, got, "meshrr_bgp_peer_prefixes_received{group=mesh,peer=10.244.1.7} 5\n")
	assert.Contains(t, got, "meshrr_bgp_peer_prefixes_sent{group=mesh,peer=10.244.1.7} 7\n")
	assert.Contains(t, got, "meshrr_bfd_peer_up{group=mesh,peer=10.244.1.7} 1\n")
	assert.NotContains(t, got, "172.19.0.9", "client sessions are not per peer unless the group opts in")
	assert.Contains(t, got, "meshrr_bfd_sessions{group=routers,state=Down} 1\n", "but their BFD states are counted per group")
	assert.Contains(t, got, "meshrr_bfd_sessions{group=mesh,state=Up} 1\n")

	// the group opts in
	m.PerPeer = func(g model.GroupName) bool { return g == "mesh" || g == "routers" }
	got = series()
	assert.Contains(t, got, "meshrr_bgp_peer_up{group=routers,peer=172.19.0.9} 1\n")
	assert.Contains(t, got, "meshrr_bfd_peer_up{group=routers,peer=172.19.0.9} 0\n")

	// a reset between two reads (the start time moved), then a session
	// going down: two flaps; a re-read of the same session counts none
	reset := mesh
	reset.Since = t0.Add(-10 * time.Second)
	m.ObserveSessions([]model.Session{reset, client})
	m.ObserveSessions([]model.Session{reset, client})
	down := client
	down.State = "Active"
	src.list = []model.Session{reset, down}
	got = series()
	assert.Contains(t, got, "meshrr_bgp_peer_flaps_total{group=mesh,peer=10.244.1.7} 1\n")
	assert.Contains(t, got, "meshrr_bgp_peer_flaps_total{group=routers,peer=172.19.0.9} 1\n")
	assert.Contains(t, got, "meshrr_bgp_peer_up{group=routers,peer=172.19.0.9} 0\n")
	assert.Contains(t, got, "meshrr_bgp_peer_uptime_seconds{group=routers,peer=172.19.0.9} 0\n")
	n, err := testutil.GatherAndCount(m.Registry, "meshrr_bgp_peer_up")
	require.NoError(t, err)
	assert.Equal(t, 2, n)
}

// Import update counts: per peer as the daemon has them (a session's
// counts start again when it restarts), and per group added up by the
// agent across reads, restarts and sessions that come and go, so that the
// group's series only grow; client groups get the group series only.
func TestImportUpdatesPerPeerAndAddedUpPerGroup(t *testing.T) {
	mesh := model.Session{Group: "mesh", Peer: netip.MustParseAddr("10.244.1.7"), State: "Established",
		Updates: &model.ImportUpdates{Received: 10, Accepted: 10}}
	c1 := model.Session{Group: "routers", Peer: netip.MustParseAddr("172.19.0.9"), State: "Established",
		Updates: &model.ImportUpdates{Received: 5, Filtered: 2, Accepted: 3}}
	c2 := model.Session{Group: "routers", Peer: netip.MustParseAddr("172.19.0.10"), State: "Established",
		Updates: &model.ImportUpdates{Received: 4, Rejected: 1, Ignored: 1, Accepted: 2}}
	src := &sessions{list: []model.Session{mesh, c1, c2}}
	m := New(src)
	series := func() string {
		return seriesOf(t, m, "meshrr_bgp_peer_import_updates_total", "meshrr_bgp_import_updates_total")
	}
	got := series()
	assert.Contains(t, got, "meshrr_bgp_peer_import_updates_total{group=mesh,peer=10.244.1.7,result=received} 10\n")
	assert.Contains(t, got, "meshrr_bgp_import_updates_total{group=routers,result=received} 9\n")
	assert.Contains(t, got, "meshrr_bgp_import_updates_total{group=routers,result=filtered} 2\n")
	assert.Contains(t, got, "meshrr_bgp_import_updates_total{group=routers,result=rejected} 1\n")
	assert.NotContains(t, got, "172.19.0.9", "client sessions are not per peer unless the group opts in")

	// c1 received 3 more (1 filtered); c2 restarted (a new start time)
	// and has received 6 since, more than before; a read between scrapes
	// counts the same once
	c1.Updates = &model.ImportUpdates{Received: 8, Filtered: 3, Accepted: 5}
	c2.Updates, c2.Since = &model.ImportUpdates{Received: 6, Accepted: 6}, c2.Since.Add(time.Minute)
	m.ObserveSessions([]model.Session{mesh, c1, c2})
	src.list = []model.Session{mesh, c1, c2}
	got = series()
	assert.Contains(t, got, "meshrr_bgp_import_updates_total{group=routers,result=received} 18\n", "9 + 3 + 6")
	assert.Contains(t, got, "meshrr_bgp_import_updates_total{group=routers,result=filtered} 3\n")
	assert.Contains(t, got, "meshrr_bgp_import_updates_total{group=routers,result=accepted} 13\n", "5 + 2 + 6")

	// c2 goes away and comes back with 1 (a spawned client session: its
	// start time is new): counted from 0 again
	src.list = []model.Session{mesh, c1}
	series()
	c2.Updates, c2.Since = &model.ImportUpdates{Received: 1, Accepted: 1}, c2.Since.Add(time.Minute)
	src.list = []model.Session{mesh, c1, c2}
	assert.Contains(t, series(), "meshrr_bgp_import_updates_total{group=routers,result=received} 19\n")
	assert.Contains(t, series(), "meshrr_bgp_peer_import_updates_total{group=mesh,peer=10.244.1.7,result=accepted} 10\n", "the mesh's counts unchanged")
}
