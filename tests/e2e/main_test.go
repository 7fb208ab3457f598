//go:build e2e

// Package e2e installs the chart on a real kind cluster (built offline by
// tests/kind) and proves behaviour with real BGP sessions: BIRD in the RR
// pods, FRR routers on the kind Docker network outside the cluster.
// `make e2e` (part of `make test`) builds what is missing and runs it; a
// cluster that cannot be created fails the run, it is never skipped.
package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/meshrr/meshrr/tests/e2e/routers"
)

var (
	repoRoot    string
	kubeconfig  string
	clusterName = envOr("CLUSTER", "meshrr-e2e")
	agentImage  = envOr("AGENT_IMAGE", "meshrr/agent:dev")
	birdImage   = envOr("BIRD_IMAGE", "meshrr/bird:dev")
	bird3Image  = envOr("BIRD3_IMAGE", "meshrr/bird3:dev")
	frrImage    = envOr("FRR_IMAGE", "meshrr/frr:dev")
	// kindNet is the kind Docker network's IPv4 subnet: FRR routers live there.
	kindNet netip.Prefix
	logsDir string
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) { os.Exit(mainE(m)) }

func mainE(m *testing.M) int {
	start := time.Now()
	wd, _ := os.Getwd()
	repoRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
	logsDir = envOr("E2E_LOGS", filepath.Join(repoRoot, "e2e-logs"))
	if err := script("tests/kind/cluster.sh", "up"); err != nil {
		fmt.Fprintf(os.Stderr, "E2E SETUP FAILED: the kind cluster could not be created: %v\n", err)
		return 1
	}
	phase("cluster ready", start)
	if err := script(append([]string{"tests/kind/cluster.sh", "load"}, agentImage, birdImage, bird3Image)...); err != nil {
		fmt.Fprintf(os.Stderr, "E2E SETUP FAILED: loading images: %v\n", err)
		return 1
	}
	phase("images loaded", start)
	kubeconfig = filepath.Join(kindWork(), "kubeconfig-"+clusterName)
	if _, err := os.Stat(kubeconfig); err != nil {
		fmt.Fprintf(os.Stderr, "E2E SETUP FAILED: no kubeconfig: %v\n", err)
		return 1
	}
	subnet, err := exec.Command("docker", "network", "inspect", "kind", "-f", "{{range .IPAM.Config}}{{println .Subnet}}{{end}}").Output()
	if err == nil {
		for _, s := range strings.Fields(string(subnet)) {
			if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Is4() {
				kindNet = p
			}
		}
	}
	if !kindNet.IsValid() {
		fmt.Fprintf(os.Stderr, "E2E SETUP FAILED: no IPv4 subnet on the kind Docker network (%v)\n", err)
		return 1
	}
	code := m.Run()
	phase("suites done", start)
	if code != 0 {
		_ = os.MkdirAll(logsDir, 0o755)
		_ = exec.Command(kindBin(), "export", "logs", "--name", clusterName, filepath.Join(logsDir, "kind")).Run()
		fmt.Fprintf(os.Stderr, "e2e: cluster logs exported to %s\n", logsDir)
	}
	switch {
	case os.Getenv("KEEP_CLUSTER") == "1":
		fmt.Printf("e2e: KEEP_CLUSTER=1: cluster %s kept; KUBECONFIG=%s\n", clusterName, kubeconfig)
	case os.Getenv("HAND_OVER_CLUSTER") == "1" && code == 0:
		// make test: the demo phase runs on this cluster and deletes it
		fmt.Printf("e2e: HAND_OVER_CLUSTER=1: cluster %s kept for the next phase\n", clusterName)
	default:
		_ = script("tests/kind/cluster.sh", "down")
	}
	return code
}

func phase(name string, start time.Time) {
	fmt.Printf("e2e phase: %-16s %6.1fs since start [%s]\n", name, time.Since(start).Seconds(), hostLoad())
}

// logf is t.Logf with the host's load average: every figure an e2e suite
// reports says how busy the machine was when it was measured.
func logf(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf(format+" [%s]", append(args, hostLoad())...)
}

// hostLoad is the host's 1, 5 and 15 minute load averages.
func hostLoad() string {
	raw, err := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if err != nil || len(f) < 3 {
		return "host load unknown"
	}
	return fmt.Sprintf("host load %s %s %s, %d cores", f[0], f[1], f[2], runtime.NumCPU())
}

func script(args ...string) error { return scriptIn(clusterName, nil, args...) }

// scriptIn runs a harness script for the named cluster with extra
// environment.
func scriptIn(name string, env []string, args ...string) error {
	cmd := exec.CommandContext(context.Background(), "bash", args...)
	cmd.Dir = repoRoot
	cmd.Env = append(append(os.Environ(), "CLUSTER="+name), env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// kindWork is the harness's cache folder, as tests/kind/versions.sh sets it.
func kindWork() string { return routers.CacheDir() }

func kindBin() string { return filepath.Join(kindWork(), "bin", "kind") }
