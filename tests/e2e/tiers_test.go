//go:build e2e

package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClientTiersReceiveExactlyTheirTier installs the client-tiers example:
// a feeder announces a mixed table; the full, partial and default-only
// clients receive exactly everything, the partial set (10.0.0.0/8 up to /24,
// or community 65000:500) and only 0.0.0.0/0.
func TestClientTiersReceiveExactlyTheirTier(t *testing.T) {
	opts := namespace(t, "e2e-tiers")
	announce := map[string]string{
		"10.1.1.0/24":     "",          // partial by prefix
		"10.2.0.0/25":     "",          // longer than /24: not partial
		"192.0.2.0/24":    "65000:500", // partial by community
		"198.51.100.0/24": "",          // full only
		"0.0.0.0/0":       "",          // every tier
	}
	want := map[string][]string{
		"full":    slices.Sorted(maps.Keys(announce)),
		"partial": {"10.1.1.0/24", "192.0.2.0/24"},
		"default": {"0.0.0.0/0"},
	}
	// the routers start without neighbours: the tiers are told apart by the
	// routers' own addresses (/32 client ranges), known only once they run
	feeder := startRouter(t, "feeder", routerConf(routerID(50), nil, announce))
	clients := map[string]*Router{}
	for i, tier := range []string{"full", "partial", "default"} {
		clients[tier] = startRouter(t, "tier-"+tier, routerConf(routerID(51+i), nil, nil))
	}
	start := time.Now()
	helm.Install(t, helmOptions(opts, []string{example("client-tiers", "values.yaml")}, map[string]string{
		"groups.edge.clients.full.ranges":         fmt.Sprintf("{%s/32,%s/32}", feeder.Addr, clients["full"].Addr),
		"groups.edge.clients.partial.ranges":      fmt.Sprintf("{%s/32}", clients["partial"].Addr),
		"groups.edge.clients.default-only.ranges": fmt.Sprintf("{%s/32}", clients["default"].Addr),
	}), chart(), "edge")
	ps := waitReady(t, opts, "app.kubernetes.io/name=meshrr", 2, 3*time.Minute)
	var neighbors strings.Builder
	neighbors.WriteString("router bgp 65000\n")
	for _, p := range ps {
		fmt.Fprintf(&neighbors, "neighbor %s remote-as 65000\nneighbor %s timers connect 2\n", p.Status.PodIP, p.Status.PodIP)
	}
	for _, r := range append([]*Router{feeder}, slices.Collect(maps.Values(clients))...) {
		r.configure(t, neighbors.String())
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for tier, r := range clients {
			m, err := r.routes()
			if assert.NoError(c, err) {
				assert.Equal(c, want[tier], slices.Sorted(maps.Keys(m)), "%s tier", tier)
			}
		}
	}, 2*time.Minute, time.Second)
	logf(t, "tiers: full, partial and default-only clients hold exactly their tier %s after helm install", time.Since(start).Round(100*time.Millisecond))
	for range 3 { // and nothing more arrives later
		time.Sleep(time.Second)
		for tier, r := range clients {
			m, err := r.routes()
			require.NoError(t, err)
			require.Equal(t, want[tier], slices.Sorted(maps.Keys(m)), "%s tier", tier)
		}
	}
}
