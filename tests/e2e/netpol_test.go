//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// scraperLabel admits a pod to the metrics port of the groups whose
// networkPolicy.metricsFrom the hierarchy suite sets (see netpolValues).
const scraperLabel = "meshrr-e2e-role"

// netpolValues turns the chart's NetworkPolicy on for a region release:
// BGP from the group, its upstream and its client ranges, the metrics port
// only from pods of the release namespace labelled as scrapers.
func netpolValues() map[string]string {
	return map[string]string{
		"networkPolicy.enabled": "true",
		"networkPolicy.metricsFrom[0].podSelector.matchLabels." + scraperLabel: "scraper",
	}
}

// probe is a pod that opens TCP connections on request (the BIRD image:
// bash and coreutils' timeout).
type probe struct {
	opts *k8s.KubectlOptions
	name string
}

func startProbe(t *testing.T, opts *k8s.KubectlOptions, name string, labels map[string]string) probe {
	t.Helper()
	var l strings.Builder
	for k, v := range labels {
		fmt.Fprintf(&l, "\n    %s: %q", k, v)
	}
	k8s.KubectlApplyFromString(t, opts, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels:
    meshrr-e2e-probe: "true"%s
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 0
%s  containers:
  - name: probe
    image: %s
    imagePullPolicy: Never
    command: [sleep, infinity]
%s`, name, l.String(), restrictedPod, birdImage, restrictedContainer))
	return probe{opts: opts, name: name}
}

// dial opens a TCP connection from the probe pod: "open", "timeout" (the
// SYN went unanswered: what a NetworkPolicy drop looks like) or "error"
// with what the shell said (refused, no route).
func (p probe) dial(t *testing.T, addr string, port int) string {
	t.Helper()
	out, err := k8s.RunKubectlAndGetOutputE(t, p.opts, "exec", p.name, "--", "bash", "-c",
		`timeout 3 bash -c 'exec 3<>/dev/tcp/$0/$1' "$0" "$1" 2>&1; echo "rc=$?"`, addr, fmt.Sprint(port))
	out = strings.TrimSpace(out)
	switch {
	case err != nil:
		return "error: " + err.Error()
	case strings.HasSuffix(out, "rc=0"):
		return "open"
	case strings.HasSuffix(out, "rc=124"):
		return "timeout"
	}
	return "error: " + out
}

// networkPolicyHolds proves the chart's NetworkPolicy on a region of the
// hierarchy with enforcement on (kube-network-policies in the test
// clusters): the region's mesh, its upstream (core) and its client range
// (an FRR router) are Established and the core accepts the region as a
// downstream client; a pod in another namespace carrying the region's own
// labels or the core's, and a pod of the region's namespace outside the
// group, cannot open TCP 179 to a region RR; the metrics port admits the
// scraper pod only. Then the policy is deleted and the same probes open
// the same port: the refusals were the policy's, and this test fails
// without it.
func networkPolicyHolds(t *testing.T, coreNS, regionNS *k8s.KubectlOptions, release string, cores, region []corev1.Pod) {
	start := time.Now()
	regionIPs := map[string]bool{}
	for _, p := range region {
		regionIPs[p.Status.PodIP] = true
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, p := range region {
			ss, err := sessions(t, regionNS, p.Name)
			if !assert.NoError(c, err) {
				return
			}
			assert.Len(c, established(ss, "mesh"), len(region)-1, "%s: mesh sessions through the policy", p.Name)
			assert.NotEmpty(c, established(ss, "upstream"), "%s: upstream sessions through the policy", p.Name)
			assert.NotEmpty(c, established(ss, "routers"), "%s: client-range sessions through the policy", p.Name)
		}
		for _, p := range cores {
			ss, err := sessions(t, coreNS, p.Name)
			if !assert.NoError(c, err) {
				return
			}
			n := 0
			for peer := range established(ss, "regions") {
				if regionIPs[peer] {
					n++
				}
			}
			assert.Equal(c, len(region), n, "%s: the region's RRs as downstream clients", p.Name)
		}
	}, 2*time.Minute, time.Second)

	otherNS := namespace(t, "e2e-impostor")
	selfLabels := map[string]string{
		"app.kubernetes.io/name": "meshrr", "app.kubernetes.io/instance": release, "meshrr.io/group-name": release,
	}
	coreLabels := map[string]string{
		"app.kubernetes.io/name": "meshrr", "app.kubernetes.io/instance": "core", "meshrr.io/group-name": "core",
	}
	probes := map[string]probe{
		"impostor of the group, other namespace":    startProbe(t, otherNS, "impostor-self", selfLabels),
		"impostor of the upstream, other namespace": startProbe(t, otherNS, "impostor-core", coreLabels),
		"pod outside the group, same namespace":     startProbe(t, regionNS, "outsider", map[string]string{"app": "outsider"}),
	}
	scraper := startProbe(t, regionNS, "scraper", map[string]string{scraperLabel: "scraper"})
	for _, opts := range []*k8s.KubectlOptions{otherNS, regionNS} {
		_, err := k8s.RunKubectlAndGetOutputE(t, opts, "wait", "--for=condition=Ready", "pod", "-l", "meshrr-e2e-probe=true", "--timeout=90s")
		require.NoError(t, err, "probe pods in %s", opts.Namespace)
	}
	target := region[0].Status.PodIP

	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, "open", scraper.dial(t, target, metricsPort), "the scraper to the metrics port")
	}, 30*time.Second, time.Second)
	assert.Equal(t, "timeout", scraper.dial(t, target, 179), "the scraper (not a group member) to BGP")
	refused := 0
	for what, p := range probes {
		got := p.dial(t, target, 179)
		assert.Equal(t, "timeout", got, "%s to BGP", what)
		if got == "timeout" {
			refused++
		}
		assert.Equal(t, "timeout", p.dial(t, target, metricsPort), "%s to the metrics port", what)
	}
	logf(t, "networkpolicy: %d of %d hostile pods refused on TCP 179 of %s (sessions of mesh, upstream, downstream and clients Established), %s after the check began",
		refused, len(probes), region[0].Name, time.Since(start).Round(100*time.Millisecond))

	// control: without the chart's policy the same probes reach BGP
	_, err := k8s.RunKubectlAndGetOutputE(t, regionNS, "delete", "networkpolicy", "-l", "meshrr.io/group-name="+release)
	require.NoError(t, err)
	removed := time.Now()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for what, p := range probes {
			assert.Equal(c, "open", p.dial(t, target, 179), "%s to BGP once the policy is gone", what)
		}
	}, time.Minute, time.Second)
	logf(t, "networkpolicy: policy deleted, all %d probes reach TCP 179 %s later (the refusals were the policy's)",
		len(probes), time.Since(removed).Round(100*time.Millisecond))
}
