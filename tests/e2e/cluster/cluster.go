// Package cluster is what the e2e suites do on the kind cluster through
// the Kubernetes API and kubectl (terratest): namespaces that clean up
// after themselves, pods and their readiness, an RR pod's sessions,
// metrics and BIRD, and named waits that print how long they took.
package cluster

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/logger"
	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshrr/meshrr/tests/e2e/promtext"
)

// What the suites read from an RR pod, as the chart sets it up: the
// default metricsPort (charts/meshrr/values.yaml) and the BIRD control
// socket (meshrr.path.birdSocket in the chart's _helpers.tpl; the chart
// render tests check that the agent, the probe and BIRD agree on it).
const (
	MetricsPort = 9479
	BirdSocket  = "/run/bird/bird.ctl"
)

// Namespace creates a unique namespace that enforces the Pod Security
// Standard podSecurity, deleted at the end of the test (its state dumped
// first when the test fails).
func Namespace(t *testing.T, kubeconfig, prefix, podSecurity string) *k8s.KubectlOptions {
	t.Helper()
	name := strings.ToLower(prefix + "-" + random.UniqueId())
	opts := k8s.NewKubectlOptions("", kubeconfig, name)
	opts.Logger = logger.Discard
	k8s.CreateNamespaceWithMetadata(t, opts, metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": podSecurity,
		"pod-security.kubernetes.io/warn":    podSecurity,
	}})
	t.Cleanup(func() {
		if t.Failed() {
			Dump(t, opts)
		}
		_ = k8s.DeleteNamespaceE(t, opts, name)
	})
	return opts
}

// Pods returns the pods of a selector, sorted by name.
func Pods(t *testing.T, opts *k8s.KubectlOptions, selector string) []corev1.Pod {
	t.Helper()
	ps := k8s.ListPods(t, opts, metav1.ListOptions{LabelSelector: selector})
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	return ps
}

// WaitReady waits until exactly n pods match and all are Ready.
func WaitReady(t *testing.T, opts *k8s.KubectlOptions, selector string, n int, timeout time.Duration) []corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ps := Pods(t, opts, selector)
		ready := 0
		for _, p := range ps {
			if p.DeletionTimestamp == nil && IsReady(p) {
				ready++
			}
		}
		if ready == n && len(ps) == n {
			return ps
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d pods ready (%d listed) after %s", selector, ready, n, len(ps), timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// WaitReplaced waits until the selector has n pods, all Ready and none of
// the deleted ones.
func WaitReplaced(t *testing.T, opts *k8s.KubectlOptions, selector string, deleted []string, n int, timeout time.Duration) {
	t.Helper()
	Wait(t, fmt.Sprintf("%s: %d pods Ready, none of %v", selector, n, deleted), timeout, 500*time.Millisecond, func(c *assert.CollectT) {
		ps := Pods(t, opts, selector)
		if !assert.Len(c, ps, n) {
			return
		}
		for _, p := range ps {
			assert.NotContains(c, deleted, p.Name, "a deleted pod is still there")
			assert.True(c, IsReady(p), "%s not ready", p.Name)
		}
	})
}

// IsReady reports the pod's Ready condition.
func IsReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Wait is a named wait: it retries cond every tick until it holds or
// timeout passes (the test fails then, with cond's last complaints) and
// logs how long it waited for what.
func Wait(t *testing.T, what string, timeout, tick time.Duration, cond func(c *assert.CollectT)) time.Duration {
	t.Helper()
	start := time.Now()
	require.EventuallyWithT(t, cond, timeout, tick, "waited %s for: %s", timeout, what)
	took := time.Since(start)
	t.Logf("waited %.1fs for: %s", took.Seconds(), what)
	return took
}

// Session is one BGP session as `meshrr-agent sessions` prints it.
type Session struct {
	Name        string    `json:"name"`
	Group       string    `json:"group"`
	Peer        string    `json:"peer"`
	State       string    `json:"state"`
	Established bool      `json:"established"`
	Since       time.Time `json:"since"`
	Imported    int       `json:"imported"`
	BFD         string    `json:"bfd"`
	// Updates: the route updates the session received since it came up
	// (BIRD's count).
	Updates *struct {
		Received int64 `json:"received"`
	} `json:"importUpdates"`
}

// Received is how many route updates the session received (0 unknown).
func (s Session) Received() int64 {
	if s.Updates == nil {
		return 0
	}
	return s.Updates.Received
}

// Sessions reads an RR pod's sessions through its agent.
func Sessions(t *testing.T, opts *k8s.KubectlOptions, pod string) ([]Session, error) {
	out, err := k8s.RunKubectlAndGetOutputE(t, opts, "exec", pod, "-c", "agent", "--", "/meshrr-agent", "sessions", "--config", "/etc/meshrr/config.yaml")
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", pod, err, out)
	}
	var ss []Session
	if err := json.Unmarshal([]byte(out), &ss); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", pod, err, out)
	}
	return ss, nil
}

// Established is the Established sessions of a group, by peer.
func Established(ss []Session, group string) map[string]Session {
	out := map[string]Session{}
	for _, s := range ss {
		if s.Group == group && s.Established {
			out[s.Peer] = s
		}
	}
	return out
}

// Metrics reads an agent's /metrics through the API server's pod proxy
// (the agent image has no shell).
func Metrics(t *testing.T, opts *k8s.KubectlOptions, pod string) string {
	t.Helper()
	out, err := MetricsE(t, opts, pod)
	require.NoError(t, err)
	return out
}

// MetricsE is Metrics returning the error.
func MetricsE(t *testing.T, opts *k8s.KubectlOptions, pod string) (string, error) {
	return k8s.RunKubectlAndGetOutputE(t, opts, "get", "--raw", fmt.Sprintf("/api/v1/namespaces/%s/pods/%s:%d/proxy/metrics", opts.Namespace, pod, MetricsPort))
}

// Metric is promtext.Value of a pod's /metrics; the test fails without it.
func Metric(t *testing.T, opts *k8s.KubectlOptions, pod, name string, labels ...string) float64 {
	t.Helper()
	v, err := promtext.Value(Metrics(t, opts, pod), name, labels...)
	require.NoError(t, err, "%s", pod)
	return v
}

// Buckets is promtext.Buckets of a /metrics text; the test fails without
// the histogram.
func Buckets(t *testing.T, text, name string) map[float64]float64 {
	t.Helper()
	b, err := promtext.Buckets(text, name)
	require.NoError(t, err)
	return b
}

// Birdc runs a birdc command in an RR pod's BIRD container.
func Birdc(t *testing.T, opts *k8s.KubectlOptions, pod string, args ...string) (string, error) {
	return k8s.RunKubectlAndGetOutputE(t, opts, append([]string{"exec", pod, "-c", "bird", "--", "birdc", "-s", BirdSocket}, args...)...)
}

// Dump logs what an operator would look at first.
func Dump(t *testing.T, opts *k8s.KubectlOptions) {
	out, _ := k8s.RunKubectlAndGetOutputE(t, opts, "get", "pods,svc,endpointslices", "-o", "wide")
	t.Logf("=== %s resources\n%s", opts.Namespace, out)
	out, _ = k8s.RunKubectlAndGetOutputE(t, opts, "describe", "pods")
	t.Logf("=== %s describe pods\n%s", opts.Namespace, out)
	out, _ = k8s.RunKubectlAndGetOutputE(t, opts, "get", "events", "--sort-by=.lastTimestamp")
	t.Logf("=== %s events\n%s", opts.Namespace, out)
	for _, p := range Pods(t, opts, "app.kubernetes.io/name=meshrr") {
		out, _ := Birdc(t, opts, p.Name, "show", "protocols", "all")
		t.Logf("=== %s/%s show protocols all\n%s", opts.Namespace, p.Name, out)
		out, _ = k8s.RunKubectlAndGetOutputE(t, opts, "logs", p.Name, "-c", "agent", "--tail", "50")
		t.Logf("=== %s/%s agent log\n%s", opts.Namespace, p.Name, out)
	}
}
