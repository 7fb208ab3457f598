//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshrr/meshrr/tests/e2e/cluster"
)

// TestInterruptedUninstallIsUndoneByRollback: `helm uninstall` that runs
// out of its --timeout while the pre-delete hook stops the RRs leaves the
// release "uninstalling" and its RRs stopped (the hook carries on). `helm
// rollback` to the release's revision brings every RR back: the
// Deployment's replicas and the DaemonSet's node affinity are fields of
// the manifest, which Helm's three-way merge sets back (the hook used to
// add a nodeSelector key of its own, which stayed and kept the DaemonSet
// on no node). Helm itself refuses `helm upgrade` of an "uninstalling"
// release; after the rollback upgrades work again.
func TestInterruptedUninstallIsUndoneByRollback(t *testing.T) {
	opts := namespace(t, "e2e-uninst")
	ho := helmOptions(opts, []string{writeTemp(t, `defaults:
  identity: {asn: 65000}
  drain: {timeSeconds: 3}
groups:
  ds: {kind: DaemonSet, nodeSelector: {meshrr_region_lothlorien: "true"}}
  dep: {replicas: 2}
`)}, map[string]string{})
	helm.Install(t, ho, chart(), "edge")
	const all = "app.kubernetes.io/name=meshrr,app.kubernetes.io/instance=edge"
	cluster.WaitReady(t, opts, all, 4, 3*time.Minute)

	start := time.Now()
	out, err := helm.RunHelmCommandAndGetOutputE(t, ho, "uninstall", "edge", "--timeout", "5s")
	require.Error(t, err, "the hook outlasts a 5 s --timeout: %s", out)
	logf(t, "uninstall interrupted after %s: %s", time.Since(start).Round(100*time.Millisecond), strings.TrimSpace(out))
	cluster.Wait(t, "the hook stops every RR", 3*time.Minute, time.Second, func(c *assert.CollectT) {
		assert.Empty(c, podNames(cluster.Pods(t, opts, all)), "the hook carries on and stops every RR")
	})
	status, err := helm.RunHelmCommandAndGetOutputE(t, ho, "status", "edge")
	require.NoError(t, err)
	assert.Contains(t, status, "STATUS: uninstalling")
	out, err = helm.RunHelmCommandAndGetOutputE(t, ho, "upgrade", "edge", chart(), "--reuse-values")
	require.Error(t, err, "Helm upgrades no uninstalling release: %s", out)
	assert.Contains(t, out, "has no deployed releases")

	start = time.Now()
	out, err = helm.RunHelmCommandAndGetOutputE(t, ho, "rollback", "edge", "1", "--wait", "--timeout", "180s")
	require.NoError(t, err, "%s", out)
	ps := cluster.WaitReady(t, opts, all, 4, 3*time.Minute)
	logf(t, "rollback: every RR of the interrupted uninstall back and Ready in %s", time.Since(start).Round(100*time.Millisecond))
	nodes := map[string]bool{}
	for _, p := range ps {
		if p.Labels["meshrr.io/group-name"] == "ds" {
			nodes[p.Spec.NodeName] = true
		}
	}
	lothNodes, err := k8s.GetNodesByFilterE(t, opts, metav1.ListOptions{LabelSelector: "meshrr_region_lothlorien=true"})
	require.NoError(t, err)
	assert.Len(t, nodes, len(lothNodes), "the DaemonSet runs on every selected node again")

	ho.SetValues["groups.dep.replicas"] = "3"
	helm.Upgrade(t, ho, chart(), "edge")
	cluster.WaitReady(t, opts, all, 5, 3*time.Minute)
	status, err = helm.RunHelmCommandAndGetOutputE(t, ho, "status", "edge")
	require.NoError(t, err)
	assert.Contains(t, status, "STATUS: deployed", "upgrades work again after the rollback")
}
