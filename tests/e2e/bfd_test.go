//go:build e2e

package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/tests/e2e/cluster"
)

const edgeSelector = "app.kubernetes.io/name=meshrr"

// bfdRouterConf is routerConf without neighbours, with a BFD profile of
// 200 ms x 3 (the chart's default) when bfd is set.
func bfdRouterConf(id string, announce map[string]string, bfd bool) string {
	conf := routerConf(id, nil, announce)
	if bfd {
		conf = "bfd\n profile pods\n  receive-interval 200\n  transmit-interval 200\n  detect-multiplier 3\n !\n!\n" + conf
	}
	return conf
}

// bfdNeighbors are the configuration commands adding the RRs as
// neighbours (2 s connect retry), with the BFD profile when bfd is set.
func bfdNeighbors(rrs []string, bfd bool) string {
	var b strings.Builder
	b.WriteString("router bgp 65000\n")
	for _, rr := range rrs {
		fmt.Fprintf(&b, "neighbor %s remote-as 65000\nneighbor %s timers connect 2\n", rr, rr)
		if bfd {
			fmt.Fprintf(&b, "neighbor %s bfd profile pods\n", rr)
		}
	}
	return b.String()
}

// bfdPeerStatus is the router's view of its BFD session with addr ("" if none).
func (r *Router) bfdPeerStatus(addr string) string {
	var peers []struct {
		Peer   string `json:"peer"`
		Status string `json:"status"`
	}
	if r.vtyshJSON("show bfd peers json", &peers) != nil {
		return ""
	}
	for _, p := range peers {
		if p.Peer == addr {
			return p.Status
		}
	}
	return ""
}

// TestBFDFrozenRouterAndDrain: two routers homed on both RRs of a group
// with hold time 9 s; the client group "fast" has BFD (the default 200 ms
// x 3), "plain" has not, and the mesh runs BFD too. Both routers are
// frozen at once (docker pause): the time until the RR withdraws each
// one's route is measured inside the RR pod, side by side. Then, with the
// routers back, an RR pod is deleted (drained, with BFD on every session
// it has) while the BFD router samples the other router's route: nothing
// may be lost. The agent's per-peer metrics and status show what the
// routers see.
func TestBFDFrozenRouterAndDrain(t *testing.T) {
	opts := namespaceAt(t, "e2e-bfd", "privileged") // BIRD with BFD needs NET_ADMIN (docs/security.md)
	const fastPrefix, plainPrefix = "10.220.0.0/24", "10.221.0.0/24"
	fast := startRouter(t, "bfd-fast", bfdRouterConf(routerID(60), map[string]string{fastPrefix: ""}, true))
	plain := startRouter(t, "bfd-plain", bfdRouterConf(routerID(61), map[string]string{plainPrefix: ""}, false))
	helm.Install(t, helmOptions(opts, nil, map[string]string{
		"groups.edge.identity.asn":              "65000",
		"groups.edge.replicas":                  "2",
		"groups.edge.timers.hold":               "9",
		"groups.edge.timers.keepalive":          "3",
		"groups.edge.mesh.bfd.enabled":          "true",
		"groups.edge.clients.fast.ranges[0]":    fast.Addr.String() + "/32",
		"groups.edge.clients.fast.bfd.enabled":  "true",
		"groups.edge.clients.fast.peerMetrics":  "true",
		"groups.edge.clients.plain.ranges[0]":   plain.Addr.String() + "/32",
		"groups.edge.clients.plain.peerMetrics": "true",
		"groups.edge.drain.timeSeconds":         "5",
		"groups.edge.drain.waitTimeoutSeconds":  "30",
	}), chart(), "edge")
	ps := cluster.WaitReady(t, opts, edgeSelector, 2, 3*time.Minute)
	var rrs []string
	for _, p := range ps {
		rrs = append(rrs, p.Status.PodIP)
	}
	fast.configure(t, bfdNeighbors(rrs, true))
	// without graceful restart: a frozen router that announced it would
	// keep its routes at the RR for the hold time plus its restart time
	// (120 s, "Neighbor graceful restart active"); the baseline here is the
	// hold timer alone. The BFD router keeps FRR's default (helper): BFD
	// towards clients withdraws at once all the same.
	plain.configure(t, "router bgp 65000\nbgp graceful-restart-disable\n"+bfdNeighbors(rrs, false))
	rr := ps[0].Name

	// everything up: BFD Up on the fast router's sessions and the mesh,
	// none on the plain router's; the agent's status and metrics agree
	cluster.Wait(t, "BFD up on the fast router's sessions and the mesh, none on the plain router's", 2*time.Minute, time.Second, func(c *assert.CollectT) {
		for _, a := range rrs {
			assert.Equal(c, "Established", fast.neighborState(a))
			assert.Equal(c, "up", fast.bfdPeerStatus(a), "the fast router's BFD session with %s", a)
			assert.Equal(c, "Established", plain.neighborState(a))
		}
		ss, err := cluster.Sessions(t, opts, rr)
		if !assert.NoError(c, err) {
			return
		}
		bfd := map[string]string{}
		for _, s := range ss {
			bfd[s.Group+" "+s.Peer] = s.BFD
		}
		assert.Equal(c, "Up", bfd["fast "+fast.Addr.String()], "%v", bfd)
		assert.Equal(c, "", bfd["plain "+plain.Addr.String()], "%v", bfd)
		assert.Equal(c, "Up", bfd["mesh "+rrs[1]], "%v", bfd)
		out, err := cluster.Birdc(t, opts, rr, "show", "route")
		if assert.NoError(c, err) {
			assert.Contains(c, out, fastPrefix)
			assert.Contains(c, out, plainPrefix)
		}
	})
	// the metrics are the agent's last read of the sessions (at most 2 s
	// old, read every statePoll): they follow within a few seconds
	cluster.Wait(t, "the agent's per-peer metrics agree with the routers", 30*time.Second, time.Second, func(c *assert.CollectT) {
		m, err := cluster.MetricsE(t, opts, rr)
		if !assert.NoError(c, err) {
			return
		}
		for _, want := range []string{
			fmt.Sprintf(`meshrr_bgp_peer_up{group="fast",peer="%s"} 1`, fast.Addr),
			fmt.Sprintf(`meshrr_bfd_peer_up{group="fast",peer="%s"} 1`, fast.Addr),
			fmt.Sprintf(`meshrr_bgp_peer_up{group="plain",peer="%s"} 1`, plain.Addr),
			fmt.Sprintf(`meshrr_bgp_peer_up{group="mesh",peer="%s"} 1`, rrs[1]),
			fmt.Sprintf(`meshrr_bfd_peer_up{group="mesh",peer="%s"} 1`, rrs[1]),
			`meshrr_bfd_sessions{group="fast",state="Up"} 1`,
			fmt.Sprintf(`meshrr_bgp_peer_prefixes_received{group="fast",peer="%s"} 1`, fast.Addr),
		} {
			assert.Contains(c, m, want, "per-peer metrics of %s", rr)
		}
		assert.NotContains(c, m, `meshrr_bfd_peer_up{group="plain"`, "no BFD series for a group without BFD")
	})

	// freeze both routers at once; the RR pod records, on the host's clock
	// (kind nodes share the kernel), when each route leaves its table
	poll := fmt.Sprintf(`end=$(($(date +%%s)+40)); f=; p=; echo "start $(date +%%s%%3N)"
while [ $(date +%%s) -lt $end ]; do
  out=$(birdc -s %s show route); now=$(date +%%s%%3N)
  if [ -z "$f" ] && ! echo "$out" | grep -q '%s'; then f=$now; echo "fast $now"; fi
  if [ -z "$p" ] && ! echo "$out" | grep -q '%s'; then p=$now; echo "plain $now"; fi
  if [ -n "$f" ] && [ -n "$p" ]; then exit 0; fi
  sleep 0.05
done; exit 1`, cluster.BirdSocket, fastPrefix, plainPrefix)
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := k8s.RunKubectlAndGetOutputE(t, opts, "exec", rr, "-c", "bird", "--", "sh", "-c", poll)
		done <- result{out, err}
	}()
	time.Sleep(2 * time.Second) // the poller runs
	frozen := time.Now()
	require.NoError(t, exec.Command("docker", "pause", fast.Name, plain.Name).Run())
	t.Cleanup(func() { _ = exec.Command("docker", "unpause", fast.Name, plain.Name).Run() })
	res := <-done
	if res.err != nil {
		out, _ := cluster.Birdc(t, opts, rr, "show", "protocols", "all")
		t.Logf("=== %s after the freeze\n%s", rr, out)
	}
	require.NoError(t, res.err, "the RR never withdrew both routes: %s", res.out)
	gone := map[string]time.Duration{}
	for _, l := range strings.Split(strings.TrimSpace(res.out), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] != "start" {
			ms, err := strconv.ParseInt(f[1], 10, 64)
			require.NoError(t, err, l)
			gone[f[0]] = time.UnixMilli(ms).Sub(frozen)
		}
	}
	require.Len(t, gone, 2, "poller output: %s", res.out)
	require.Positive(t, gone["fast"], "the BFD router's route was gone before the freeze: %s", res.out)
	logf(t, "bfd: frozen router's route withdrawn by the RR %s after the freeze with BFD (200 ms x 3), %s by the hold timer (9 s): %.1fx faster (goal: below 1 s with BFD)",
		gone["fast"].Round(10*time.Millisecond), gone["plain"].Round(10*time.Millisecond), float64(gone["plain"])/float64(gone["fast"]))
	assert.Less(t, gone["fast"], gone["plain"], "BFD must notice the frozen router before the hold timer")
	// BIRD's own log reaches the container's log (log stderr)
	birdLog, err := k8s.RunKubectlAndGetOutputE(t, opts, "logs", rr, "-c", "bird")
	require.NoError(t, err)
	assert.Contains(t, birdLog, "Error: Hold timer expired", "kubectl logs -c bird shows the plain router's session error")

	// routers back; the BFD router samples the other's route while an RR
	// pod drains and stops
	require.NoError(t, exec.Command("docker", "unpause", fast.Name, plain.Name).Run())
	cluster.Wait(t, "both routers Established again with BFD as before, after the unpause", 2*time.Minute, time.Second, func(c *assert.CollectT) {
		for _, a := range rrs {
			assert.Equal(c, "Established", fast.neighborState(a))
			assert.Equal(c, "up", fast.bfdPeerStatus(a))
			assert.Equal(c, "Established", plain.neighborState(a))
		}
		r, err := fast.routes()
		if assert.NoError(c, err) {
			assert.Len(c, distinct(r[plainPrefix].NextHops), 1)
		}
	})
	watch := watchRoutes(fast, []string{plainPrefix})
	start := time.Now()
	k8s.RunKubectl(t, opts, "delete", "pod", rr, "--wait=false")
	cluster.WaitReplaced(t, opts, edgeSelector, []string{rr}, 2, 3*time.Minute)
	time.Sleep(3 * time.Second)
	samples, lost, longest, missing := watch.finish()
	assert.Empty(t, missing)
	logf(t, "bfd: RR pod drained and replaced in %s with BFD on its sessions: %d samples of the dual-homed BFD router, %d missing, longest gap %s (goal 0)",
		time.Since(start).Round(100*time.Millisecond), samples, lost, longest)
	assert.Zero(t, lost, "a draining RR pod with BFD took routes from a dual-homed client")
}
