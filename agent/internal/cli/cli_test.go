package cli

import (
	"context"
	"strings"
	"testing"

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
