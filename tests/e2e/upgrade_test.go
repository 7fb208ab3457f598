//go:build e2e

package e2e

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/tests/e2e/cluster"
)

// TestRollingUpgradeLosesNoRoute upgrades the route servers' agent image
// with helm while both data-centre routers are sampled every 200 ms, then
// changes the hold timer (a setting that resets every session: the chart
// rolls the pods for it, the running agents keep their timers). Both
// sides' StatefulSets roll at once; the group's drain lock makes one route
// server drain (GRACEFUL_SHUTDOWN, local-preference 0) and stop at a time,
// and only once the other side has a meshed member.
func TestRollingUpgradeLosesNoRoute(t *testing.T) {
	f := startRouteServers(t)
	cluster.WaitReady(t, f.opts, rsSelector, 2, 3*time.Minute)
	f.waitExchanging(t)

	tag := "e2e-upgrade"
	out, err := exec.Command("docker", "tag", agentImage, "meshrr/agent:"+tag).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, script("tests/kind/cluster.sh", "load", "meshrr/agent:"+tag))
	rollWhileSampling(t, f, "agent image", map[string]string{"images.agent.tag": tag}, 2)
	rollWhileSampling(t, f, "hold timer", map[string]string{"images.agent.tag": tag, "groups.rs.timers.hold": "30", "groups.rs.timers.keepalive": "10"}, 4)
	// the replacement pods run the new hold time (negotiated: the lower of the two ends)
	holdRE := regexp.MustCompile(`Hold timer:\s+[0-9.]+/([0-9]+)`)
	for _, p := range cluster.Pods(t, f.opts, rsSelector) {
		out, err := cluster.Birdc(t, f.opts, p.Name, "show", "protocols", "all")
		require.NoError(t, err)
		holds := holdRE.FindAllStringSubmatch(out, -1)
		require.NotEmpty(t, holds, "%s: no Established BGP session shows a hold timer:\n%s", p.Name, out)
		for _, h := range holds {
			assert.Equal(t, "30", h[1], "%s: a session still negotiated hold time %s", p.Name, h[1])
		}
	}
}

// rollWhileSampling upgrades the release with set while both DC routers
// sample each other's prefix, waits until every pod was replaced and the
// routers exchange again, and asserts nothing was lost. drains: Draining
// Events expected in the namespace by then.
func rollWhileSampling(t *testing.T, f *rsFixture, what string, set map[string]string, drains int) {
	before := cluster.Pods(t, f.opts, rsSelector)
	w1 := watchRoutes(f.dc1, []string{"10.202.0.0/24"})
	w2 := watchRoutes(f.dc2, []string{"10.201.0.0/24"})
	start := time.Now()
	helm.Upgrade(t, f.helm(set), chart(), "rs")
	cluster.Wait(t, "both route servers replaced and Ready", 4*time.Minute, time.Second, func(c *assert.CollectT) {
		ps := cluster.Pods(t, f.opts, rsSelector)
		if !assert.Len(c, ps, 2) {
			return
		}
		for _, p := range ps {
			assert.True(c, cluster.IsReady(p) && p.DeletionTimestamp == nil, "%s not ready", p.Name)
			for _, q := range before {
				assert.NotEqual(c, q.UID, p.UID, "%s not replaced yet", p.Name)
			}
		}
	})
	rolled := time.Since(start)
	f.waitExchanging(t)
	settledAt := time.Since(start)
	time.Sleep(3 * time.Second)
	s1, lost1, gap1, miss1 := w1.finish()
	s2, lost2, gap2, miss2 := w2.finish()

	evs, err := k8s.RunKubectlAndGetOutputE(t, f.opts, "get", "events", "--field-selector", "reason=Draining", "-o", "jsonpath={range .items[*]}{.involvedObject.name}: {.message}{\"\\n\"}{end}")
	require.NoError(t, err)
	logf(t, "upgrade (%s): drain events:\n%s", what, evs)
	assert.Equal(t, drains, strings.Count(evs, "routes marked for graceful shutdown"), "each old route server drained once")

	logf(t, "upgrade (%s): rolled on both sides in %s; both DC routers Established with both sides again after %s",
		what, rolled.Round(100*time.Millisecond), settledAt.Round(100*time.Millisecond))
	logf(t, "upgrade (%s): dc1 kept dc2's prefix in %d of %d samples (longest gap %s), dc2 kept dc1's in %d of %d (longest gap %s); goal: no gap",
		what, s1-lost1, s1, gap1, s2-lost2, s2, gap2)
	assert.Empty(t, miss1)
	assert.Empty(t, miss2)
	assert.Zero(t, lost1, "dc1 lost a route during the rolling upgrade (%s)", what)
	assert.Zero(t, lost2, "dc2 lost a route during the rolling upgrade (%s)", what)
}
