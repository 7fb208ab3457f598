//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshrr/meshrr/tests/e2e/cluster"
)

// plugin is the kubectl-meshrr binary, built once for the run.
func plugin(t *testing.T) string {
	t.Helper()
	bin, err := buildPlugin()
	require.NoError(t, err)
	return bin
}

// buildPlugin builds kubectl-meshrr once for the suites that run it.
var buildPlugin = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(os.TempDir(), "meshrr-e2e-kubectl-meshrr")
	cmd := exec.Command("go", "build", "-o", bin, "./agent/cmd/kubectl-meshrr")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build kubectl-meshrr: %w: %s", err, out)
	}
	return bin, nil
})

// runPlugin returns the output and exit status.
func runPlugin(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(bin, append(args, "--kubeconfig", kubeconfig)...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	require.NoError(t, err)
	return string(out), 0
}

// TestStatusAndTopologyOfALiveGroup: kubectl meshrr status prints the group
// table and exits 0; 200 concurrent scrapes of /metrics make at most one
// daemon query per 2 s; with one mesh session disabled in BIRD it says
// DEGRADED and exits 2; meshrr-agent status in a pod agrees (exit 2 too); topology is
// DOT that Graphviz renders to SVG.
func TestStatusAndTopologyOfALiveGroup(t *testing.T) {
	opts, _ := installCore(t, "e2e-status")
	meshSettled(t, opts, 2, 2*time.Minute)
	bin := plugin(t)
	var out string
	var code int
	cluster.Wait(t, "kubectl meshrr status exits 0", time.Minute, time.Second, func(c *assert.CollectT) {
		out, code = runPlugin(t, bin, "status", "-n", opts.Namespace)
		assert.Equal(c, 0, code, out)
	})
	logf(t, "status: kubectl meshrr status -n %s (exit %d):\n%s", opts.Namespace, code, out)
	assert.Contains(t, out, "GROUP core.core (namespace "+opts.Namespace+"): 2 RRs, sides a,b, 2 of 2 sessions Established: OK")
	ps := cluster.Pods(t, opts, coreSelector)
	for _, p := range ps {
		assert.Contains(t, out, p.Name)
	}
	inPod, err := k8s.RunKubectlAndGetOutputE(t, opts, "exec", ps[0].Name, "-c", "agent", "--", "/meshrr-agent", "status", "--config", "/etc/meshrr/config.yaml")
	require.NoError(t, err, inPod)
	assert.Contains(t, inPod, ": OK")

	scrapeStormMakesFewQueries(t, opts, ps[0])

	ss, err := cluster.Sessions(t, opts, ps[0].Name)
	require.NoError(t, err)
	proto := ""
	for _, s := range ss {
		if s.Group == "mesh" {
			proto = s.Name
		}
	}
	require.NotEmpty(t, proto)
	_, err = cluster.Birdc(t, opts, ps[0].Name, "disable", proto)
	require.NoError(t, err)
	cluster.Wait(t, "kubectl meshrr status exits 2 and says DEGRADED", time.Minute, time.Second, func(c *assert.CollectT) {
		out, code = runPlugin(t, bin, "status", "-n", opts.Namespace)
		assert.Equal(c, 2, code, "a degraded group exits 2:\n%s", out)
		assert.Contains(c, out, "DEGRADED")
	})
	logf(t, "status: with %s disabled in %s (exit %d):\n%s", proto, ps[0].Name, code, out)
	// the pod's own answer may be up to statusMaxAge (2 s) older than the
	// one kubectl meshrr status just read from the other side
	cluster.Wait(t, "meshrr-agent status exits 2 in the degraded pod", 20*time.Second, time.Second, func(c *assert.CollectT) {
		out, err := k8s.RunKubectlAndGetOutputE(t, opts, "exec", ps[0].Name, "-c", "agent", "--", "/meshrr-agent", "status", "--config", "/etc/meshrr/config.yaml")
		if assert.Error(c, err, "meshrr-agent status fails in a degraded pod:\n%s", out) {
			assert.Contains(c, err.Error(), "exit code 2", "meshrr-agent status exits 2 when degraded, as kubectl meshrr status does")
		}
	})

	dot, code := runPlugin(t, bin, "topology", "-n", opts.Namespace)
	require.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(dot, "digraph meshrr {"), dot)
	svg := filepath.Join(logsDir, "status-topology.svg")
	require.NoError(t, os.MkdirAll(logsDir, 0o755))
	render := exec.Command("dot", "-Tsvg", "-o", svg)
	render.Stdin = strings.NewReader(dot)
	o, err := render.CombinedOutput()
	require.NoError(t, err, "graphviz rejected the DOT: %s\n%s", o, dot)
	b, err := os.ReadFile(svg)
	require.NoError(t, err)
	assert.Contains(t, string(b), "<svg")
	assert.Contains(t, string(b), "side b")
	assert.Contains(t, string(b), "DEGRADED")
	assert.Contains(t, string(b), `stroke="#c62828"`, "the disabled session is drawn red")
	logf(t, "status: topology rendered by graphviz to %s (%d bytes)", svg, len(b))
}

// scrapeStormMakesFewQueries sends 200 concurrent GET /metrics to an RR
// pod's metrics port from a Prometheus pod (what the chart's default
// networkPolicy.metricsFrom admits), and reads how many session queries the daemon answered
// meanwhile (meshrr_daemon_session_queries_total): the loop's own, one
// every reconcile.statePoll (5 s), and at most one per 2 s for all the
// requests together. One query per scrape would be 200.
func scrapeStormMakesFewQueries(t *testing.T, opts *k8s.KubectlOptions, rr corev1.Pod) {
	t.Helper()
	// labelled as Prometheus: the chart's default metricsFrom admits it
	p := startProbe(t, opts, "scrape-storm", map[string]string{"app.kubernetes.io/name": "prometheus"})
	_, err := k8s.RunKubectlAndGetOutputE(t, opts, "wait", "--for=condition=Ready", "pod/"+p.name, "--timeout=90s")
	require.NoError(t, err)
	queries := func() float64 {
		for _, l := range strings.Split(cluster.Metrics(t, opts, rr.Name), "\n") {
			if v, ok := strings.CutPrefix(l, "meshrr_daemon_session_queries_total "); ok {
				f, err := strconv.ParseFloat(v, 64)
				require.NoError(t, err)
				return f
			}
		}
		t.Fatalf("%s: no meshrr_daemon_session_queries_total", rr.Name)
		return 0
	}
	before, start := queries(), time.Now()
	out, err := k8s.RunKubectlAndGetOutputE(t, opts, "exec", p.name, "--", "bash", "-c", `
for i in $(seq 200); do
  ( exec 3<>/dev/tcp/$0/$1 && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && read -r status <&3 &&
    case $status in *" 200 "*) cat <&3 | grep -q '^meshrr_bgp_sessions' && echo answered ;; esac ) &
done
wait`, rr.Status.PodIP, strconv.Itoa(cluster.MetricsPort))
	require.NoError(t, err, out)
	elapsed := time.Since(start)
	made := queries() - before
	answered := strings.Count(out, "answered")
	bound := math.Ceil(elapsed.Seconds()/2) + math.Ceil(elapsed.Seconds()/5) + 2
	logf(t, "scrapes: %d of 200 concurrent scrapes of %s answered with session metrics in %s; the daemon answered %.0f session queries meanwhile (bound %.0f: the loop's every 5 s and one per 2 s for all requests)",
		answered, rr.Name, elapsed.Round(10*time.Millisecond), made, bound)
	assert.Equal(t, 200, answered)
	assert.LessOrEqual(t, made, bound)
}
