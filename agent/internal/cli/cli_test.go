package cli

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/meshrr/meshrr/agent/internal/status"
)

// A pod whose report cannot be read counts as not ready, with the reason,
// under its group id (release.group), so the group shows as degraded.
func TestUnreachablePodsAreReportedNotReady(t *testing.T) {
	pod := func(name string, phase corev1.PodPhase) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "core", Labels: map[string]string{
				"app.kubernetes.io/name": "meshrr", "app.kubernetes.io/instance": "core", "meshrr.io/group-name": "core", "meshrr.io/side": "a"}},
			Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9479}}}}},
			Status: corev1.PodStatus{Phase: phase},
		}
	}
	client := fake.NewClientset(pod("core-b", corev1.PodPending), pod("core-a", corev1.PodRunning),
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "core"}})
	reports, err := Collect(context.Background(), client, "core", Proxy(client))
	require.NoError(t, err)
	require.Len(t, reports, 2, "only meshrr pods")
	assert.Equal(t, "core-a", reports[0].Pod)
	assert.Equal(t, "core.core", reports[0].Group)
	assert.Contains(t, reports[0].NotReady, "status unreachable")
	assert.Equal(t, "pod is Pending", reports[1].NotReady)
	g := status.Groups(reports)
	require.Len(t, g, 1)
	assert.Len(t, g[0].Problems, 2)
}

func TestUsage(t *testing.T) {
	var out, errOut = new(strings.Builder), new(strings.Builder)
	assert.Equal(t, ExitError, Main(nil, out, errOut))
	assert.Contains(t, errOut.String(), "kubectl meshrr status")
}

// A pod on a node that stopped answering is reported with the node's
// state and how its workload gets it back: a StatefulSet pod waits for
// the operator (out-of-service taint), a Deployment pod for its eviction.
// A node the user may not read leaves the report as it was.
func TestPodsOnALostNodeSayHowTheyComeBack(t *testing.T) {
	pod := func(name, node, owner string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "rs", Labels: map[string]string{
				"app.kubernetes.io/name": "meshrr", "app.kubernetes.io/instance": "rs", "meshrr.io/group-name": "rs", "meshrr.io/side": "a"},
				OwnerReferences: []metav1.OwnerReference{{Kind: owner, Name: "rs-meshrr-rs-a"}}},
			Spec:   corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "agent", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9479}}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}
	}
	lost := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionUnknown, Reason: "NodeStatusUnknown", Message: "Kubelet stopped posting node status.",
		LastTransitionTime: metav1.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)}}}}
	client := fake.NewClientset(lost, pod("rs-a-0", "w1", "StatefulSet"), pod("rs-b-0", "w1", "ReplicaSet"), pod("rs-c-0", "w9", "ReplicaSet"))
	asked := map[string]bool{}
	reports, err := Collect(context.Background(), client, "rs", func(_ context.Context, p corev1.Pod, _ int) ([]byte, error) {
		asked[p.Name] = true
		return nil, errors.New("no route to host")
	})
	require.NoError(t, err)
	require.Len(t, reports, 3)
	assert.Equal(t, "node w1 is not ready since 2026-12-06T07:00:00Z (Kubelet stopped posting node status.): a StatefulSet pod is not replaced until Kubernetes knows the node is down: once it is, kubectl taint node w1 node.kubernetes.io/out-of-service=nodeshutdown:NoExecute (or kubectl delete node w1), and the StatefulSet starts it elsewhere", reports[0].NotReady)
	assert.Contains(t, reports[1].NotReady, "node w1 is not ready since 2026-12-06T07:00:00Z (Kubelet stopped posting node status.): Kubernetes evicts it after the group's nodeLossTolerationSeconds")
	assert.Equal(t, "status unreachable: no route to host", reports[2].NotReady, "a node that cannot be read adds nothing")
	assert.Equal(t, map[string]bool{"rs-c-0": true}, asked, "pods on the lost node are not asked (they cannot answer)")
}
