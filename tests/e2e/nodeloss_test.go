//go:build e2e

package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// TestNodeLossReplacesTheRRAndLosesNoRoute: the worker running one RR of a
// Deployment group stops answering (its container paused: no kubelet
// status, no packets, no TCP reset, as a node that lost power or its
// network). Kubernetes marks it NotReady, the RR's short node-loss
// toleration (nodeLossTolerationSeconds, 30 s) evicts it, the Deployment
// starts a replacement on another node, which meshes with the surviving
// RR; a dual-homed router sampling its table every 0.2 s misses no route
// throughout. kubectl meshrr status names the lost node meanwhile. The
// node comes back at the end for the suites after this one.
func TestNodeLossReplacesTheRRAndLosesNoRoute(t *testing.T) {
	opts := namespace(t, "e2e-nodeloss")
	helm.Install(t, helmOptions(opts, []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.sides":                     "null",
		"groups.core.replicas":                  "2",
		"groups.core.nodeSelector":              "null",
		"groups.core.clients.routers.ranges[0]": routerRange(),
	}), chart(), "core")
	ps := waitReady(t, opts, coreSelector, 2, 3*time.Minute)
	require.NotEqual(t, ps[0].Spec.NodeName, ps[1].Spec.NodeName, "the group's RRs are spread over nodes")
	victim, survivor := ps[0], ps[1]
	announce := map[string]string{}
	for i := range 20 {
		announce[fmt.Sprintf("10.220.%d.0/24", i)] = ""
	}
	rrs := []string{victim.Status.PodIP, survivor.Status.PodIP}
	startRouter(t, "origin", routerConf(routerID(41), rrs, announce))
	client := startRouter(t, "client", routerConf(routerID(42), rrs, nil))
	var prefixes []string
	for p := range announce {
		prefixes = append(prefixes, p)
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		m, err := client.routes()
		if assert.NoError(c, err) {
			for _, p := range prefixes {
				assert.Contains(c, m, p)
			}
		}
	}, 2*time.Minute, time.Second)

	node := victim.Spec.NodeName
	watch := watchRoutes(client, prefixes)
	start := time.Now()
	out, err := exec.Command("docker", "pause", node).CombinedOutput()
	require.NoError(t, err, "docker pause %s: %s", node, out)
	unpaused := false
	unpause := func() {
		if !unpaused {
			unpaused = true
			if out, err := exec.Command("docker", "unpause", node).CombinedOutput(); err != nil {
				t.Errorf("docker unpause %s: %v: %s", node, err, out)
			}
		}
	}
	t.Cleanup(unpause)

	var notReady, evicted, replaced time.Duration
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		st, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		assert.NoError(c, err)
		assert.NotEqual(c, "True", st)
	}, 3*time.Minute, time.Second)
	notReady = time.Since(start)
	logf(t, "node loss: %s paused -> NotReady in %s", node, notReady.Round(time.Second))

	var replacement corev1.Pod
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var live []corev1.Pod
		for _, p := range pods(t, opts, coreSelector) {
			if p.Name == victim.Name {
				if assert.NotNil(c, p.DeletionTimestamp, "%s not evicted yet", p.Name) && evicted == 0 {
					evicted = time.Since(start)
				}
				continue
			}
			live = append(live, p)
		}
		if !assert.Len(c, live, 2) {
			return
		}
		for _, p := range live {
			assert.True(c, isReady(p), "%s not ready", p.Name)
			assert.NotEqual(c, node, p.Spec.NodeName, "%s on the lost node", p.Name)
			if p.Name != survivor.Name {
				replacement = p
			}
		}
	}, 4*time.Minute, time.Second)
	replacementMeshed(t, opts, survivor, replacement)
	replaced = time.Since(start)
	logf(t, "node loss: %s evicted %s after the pause (NotReady + nodeLossTolerationSeconds 30), replacement %s on %s ready and meshed with %s at %s (goal: within the toleration plus 30 s of NotReady: %s)",
		victim.Name, evicted.Round(time.Second), replacement.Name, replacement.Spec.NodeName, survivor.Name, replaced.Round(time.Second), (replaced - notReady - 30*time.Second).Round(time.Second))

	// the status command says where the lost RR is and how it comes back
	status, code := runPlugin(t, plugin(t), "status", "-n", opts.Namespace)
	assert.Equal(t, 2, code, "degraded while an RR is lost:\n%s", status)
	assert.Contains(t, status, "node "+node+" is not ready", "kubectl meshrr status:\n%s", status)
	assert.Contains(t, status, "Kubernetes evicts it after the group's nodeLossTolerationSeconds", "kubectl meshrr status:\n%s", status)

	// the node comes back (the suites after this one use it); its kubelet
	// then stops the evicted pod, which drains as any stopping RR does
	unpause()
	back := time.Now()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		st, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		assert.NoError(c, err)
		assert.Equal(c, "True", st)
	}, 3*time.Minute, time.Second)
	logf(t, "node loss: %s Ready again %s after it came back", node, time.Since(back).Round(time.Second))
	time.Sleep(3 * time.Second)
	samples, lost, longest, missing := watch.finish()
	assert.Empty(t, missing, "prefixes still missing")
	logf(t, "node loss: %d samples of the dual-homed client's table, %d prefix-samples missing, longest gap %s (goal 0)", samples, lost, longest)
	assert.Zero(t, lost, "a dual-homed client lost routes while a node was lost")
}

// replacementMeshed waits until two RR pods have Established mesh
// sessions with each other (the lost pod, still listed as terminating,
// cannot be asked).
func replacementMeshed(t *testing.T, opts *k8s.KubectlOptions, a, b corev1.Pod) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, pair := range [][2]corev1.Pod{{a, b}, {b, a}} {
			ss, err := sessions(t, opts, pair[0].Name)
			if !assert.NoError(c, err) {
				return
			}
			mesh := established(ss, "mesh")
			assert.Contains(c, mesh, pair[1].Status.PodIP, "%s has no Established mesh session to %s (has %s)", pair[0].Name, pair[1].Name, strings.Join(keys(mesh), ", "))
		}
	}, 2*time.Minute, time.Second)
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
