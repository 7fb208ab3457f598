package events

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestEventsAreRecordedOnTheAgentsPod(t *testing.T) {
	client := fake.NewClientset()
	rec, stop := New(client, Pod{Name: "core-0", Namespace: "core", UID: "uid-1"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer stop()
	rec.Normal(ReasonUpstreamReplaced, "upstream peer %s replaced: %s", "core/core-a-0", "not Established for 1m31s")
	rec.Warning(ReasonApplyFailed, "bird rejected the configuration")

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		list, err := client.CoreV1().Events("core").List(context.Background(), metav1.ListOptions{})
		require.NoError(c, err)
		got := map[string]string{}
		for _, e := range list.Items {
			assert.Equal(c, "Pod", e.InvolvedObject.Kind)
			assert.Equal(c, "core-0", e.InvolvedObject.Name)
			assert.Equal(c, "meshrr-agent", e.Source.Component)
			got[e.Reason] = e.Type + " " + e.Message
		}
		assert.Equal(c, "Normal upstream peer core/core-a-0 replaced: not Established for 1m31s", got[ReasonUpstreamReplaced])
		assert.Equal(c, "Warning bird rejected the configuration", got[ReasonApplyFailed])
	}, 5*time.Second, 50*time.Millisecond)
}
