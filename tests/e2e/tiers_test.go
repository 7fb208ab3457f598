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

	"github.com/meshrr/meshrr/tests/e2e/cluster"
)

// TestClientTiersReceiveExactlyTheirTier installs the client-tiers example:
// a feeder announces a mixed table; the full, partial and default-only
// clients receive exactly everything, the partial set (10.0.0.0/8 up to /24,
// or community 65000:500) and only 0.0.0.0/0. A second feeder announces one
// of the prefixes too: the client of the addPaths group holds both paths,
// the full client (no ADD-PATH) the best one only.
func TestClientTiersReceiveExactlyTheirTier(t *testing.T) {
	opts := namespace(t, "e2e-tiers")
	announce := map[string]string{
		"10.1.1.0/24":     "",          // partial by prefix
		"10.2.0.0/25":     "",          // longer than /24: not partial
		"192.0.2.0/24":    "65000:500", // partial by community
		"198.51.100.0/24": "",          // full only
		"0.0.0.0/0":       "",          // every tier
	}
	const twoPaths = "198.51.100.0/24" // also announced by feeder2
	want := map[string][]string{
		"full":    slices.Sorted(maps.Keys(announce)),
		"paths":   slices.Sorted(maps.Keys(announce)),
		"partial": {"10.1.1.0/24", "192.0.2.0/24"},
		"default": {"0.0.0.0/0"},
	}
	// the routers start without neighbours: the tiers are told apart by the
	// routers' own addresses (/32 client ranges), known only once they run
	feeder := startRouter(t, "feeder", routerConf(routerID(50), nil, announce))
	feeder2 := startRouter(t, "feeder2", routerConf(routerID(55), nil, map[string]string{twoPaths: ""}))
	clients := map[string]*Router{}
	for i, tier := range []string{"full", "partial", "default", "paths"} {
		clients[tier] = startRouter(t, "tier-"+tier, routerConf(routerID(51+i), nil, nil))
	}
	start := time.Now()
	helm.Install(t, helmOptions(opts, []string{example("client-tiers", "values.yaml")}, map[string]string{
		"groups.edge.clients.full.ranges":         fmt.Sprintf("{%s/32,%s/32,%s/32}", feeder.Addr, feeder2.Addr, clients["full"].Addr),
		"groups.edge.clients.partial.ranges":      fmt.Sprintf("{%s/32}", clients["partial"].Addr),
		"groups.edge.clients.default-only.ranges": fmt.Sprintf("{%s/32}", clients["default"].Addr),
		"groups.edge.clients.full-paths.ranges":   fmt.Sprintf("{%s/32}", clients["paths"].Addr),
	}), chart(), "edge")
	ps := cluster.WaitReady(t, opts, "app.kubernetes.io/name=meshrr", 2, 3*time.Minute)
	var neighbors strings.Builder
	neighbors.WriteString("router bgp 65000\n")
	for _, p := range ps {
		fmt.Fprintf(&neighbors, "neighbor %s remote-as 65000\nneighbor %s timers connect 2\n", p.Status.PodIP, p.Status.PodIP)
	}
	for _, r := range append([]*Router{feeder, feeder2}, slices.Collect(maps.Values(clients))...) {
		r.configure(t, neighbors.String())
	}
	cluster.Wait(t, "each tier's routes at its clients", 2*time.Minute, time.Second, func(c *assert.CollectT) {
		for tier, r := range clients {
			m, err := r.routes()
			if assert.NoError(c, err) {
				assert.Equal(c, want[tier], slices.Sorted(maps.Keys(m)), "%s tier", tier)
			}
		}
		// ADD-PATH: each RR sends the paths client both paths (next hops
		// of both feeders); the full client gets each RR's best, one next hop
		if m, err := clients["paths"].routes(); assert.NoError(c, err) {
			assert.ElementsMatch(c, []string{feeder.Addr.String(), feeder2.Addr.String()}, distinct(m[twoPaths].NextHops), "the addPaths client holds both paths of %s", twoPaths)
		}
		if m, err := clients["full"].routes(); assert.NoError(c, err) {
			assert.Len(c, distinct(m[twoPaths].NextHops), 1, "the full client (no ADD-PATH) holds the best path of %s only: %v", twoPaths, m[twoPaths].NextHops)
		}
	})
	pm, _ := clients["paths"].routes()
	fm, _ := clients["full"].routes()
	logf(t, "tiers: full, partial, default-only and full-paths clients hold exactly their tier %s after helm install; %s: %d paths at the addPaths client, %d at the full client (from 2 RRs)",
		time.Since(start).Round(100*time.Millisecond), twoPaths, len(pm[twoPaths].NextHops), len(fm[twoPaths].NextHops))
	for range 3 { // and nothing more arrives later
		time.Sleep(time.Second)
		for tier, r := range clients {
			m, err := r.routes()
			require.NoError(t, err)
			require.Equal(t, want[tier], slices.Sorted(maps.Keys(m)), "%s tier", tier)
		}
	}
}

// distinct returns the sorted distinct values.
func distinct(s []string) []string { return slices.Compact(slices.Sorted(slices.Values(s))) }
