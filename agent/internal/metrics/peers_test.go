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

func TestPerPeerSeriesFlapsAndBFD(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	mesh := model.Session{Group: "mesh", Peer: netip.MustParseAddr("10.244.1.7"), State: "Established", Since: t0.Add(-time.Hour), Imported: 5, Exported: 7, BFD: "Up"}
	client := model.Session{Group: "routers", Peer: netip.MustParseAddr("172.19.0.9"), State: "Established", Since: t0.Add(-time.Minute), Imported: 2, BFD: "Down"}
	src := &sessions{list: []model.Session{mesh, client}}
	m := New(src)
	m.now = func() time.Time { return t0 }
	names := []string{"meshrr_bgp_peer_up", "meshrr_bgp_peer_uptime_seconds", "meshrr_bgp_peer_prefixes_received", "meshrr_bgp_peer_prefixes_sent", "meshrr_bgp_peer_flaps_total", "meshrr_bfd_peer_up", "meshrr_bfd_sessions"}
	series := func() string {
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
