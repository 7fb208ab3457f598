//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/tests/e2e/cluster"
	"github.com/meshrr/meshrr/tests/e2e/promtext"
	"github.com/meshrr/meshrr/tests/fleet"
)

// The fan-out suite's client fleet: one Go process (tests/fleet) holding one
// session per address of clientNet, prefixesPerClient routes each.
const (
	clientNet         = "10.250.0.0/22"
	prefixesPerClient = 100
)

// cgroupCPU prints the CPU time a container has used, in nanoseconds
// (cgroup v1 cpuacct, else v2 cpu.stat).
const cgroupCPU = `cat /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null || awk '/^usage_usec/ {print $2 * 1000}' /sys/fs/cgroup/cpu.stat`

// scaleClients is the fleet size: MESHRR_SCALE_CLIENTS (make scale: 500),
// 100 in make test.
func scaleClients(t *testing.T) int {
	v := envOr("MESHRR_SCALE_CLIENTS", "100")
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "MESHRR_SCALE_CLIENTS: a number of clients, not %q", v)
	require.True(t, n > 0 && n <= 1000, "MESHRR_SCALE_CLIENTS: 1-1000 (one /22 of addresses), not %d", n)
	return n
}

// fleetOnKind is the client fleet in a container on the kind network: the
// meshrr-fleet command with the fleet's addresses on the container's
// loopback, the cluster's nodes routing clientNet to the container.
type fleetOnKind struct {
	*BirdRouter
	n int
}

// startFleet builds meshrr-fleet and starts a container for it (the BIRD
// router image: its BIRD runs idle) with n addresses of clientNet; run
// starts the fleet.
func startFleet(t *testing.T, n int) *fleetOnKind {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "meshrr-fleet"), "./fleet/cmd/meshrr-fleet")
	build.Dir = filepath.Join(repoRoot, "tests")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build meshrr-fleet: %s", out)
	addrs, err := fleet.Addresses(netip.MustParsePrefix(clientNet), n)
	require.NoError(t, err)
	var batch strings.Builder
	for _, a := range addrs {
		fmt.Fprintf(&batch, "addr add %s/32 dev lo\n", a)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "addrs"), []byte(batch.String()), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "setup.sh"), []byte("ip -batch /etc/bird/addrs\n"), 0o644))
	f := &fleetOnKind{BirdRouter: startBird(t, "fleet", routerID(51), dir), n: n}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := exec.Command("docker", "exec", f.Name, "cat", "/run/fleet.log").CombinedOutput()
			t.Logf("=== fleet log\n%s", logs)
		}
	})
	// the RR pod answers the clients' addresses through the fleet container
	require.NoError(t, routerEnv().Steer(netip.MustParsePrefix(clientNet), f.Addr))
	return f
}

// run starts the fleet's sessions to rr, every one dialling at once (as
// routers do after an RR restart).
func (f *fleetOnKind) run(t *testing.T, rr string) {
	t.Helper()
	cmd := fmt.Sprintf("exec /etc/bird/meshrr-fleet -rr %s -as 65000 -sources %s -n %d -routes %d -report /run/fleet.json > /run/fleet.log 2>&1",
		rr, clientNet, f.n, prefixesPerClient)
	out, err := exec.Command("docker", "exec", "-d", f.Name, "bash", "-c", cmd).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// report is the fleet's latest report (written every second).
func (f *fleetOnKind) report() (fleet.Report, error) {
	var r fleet.Report
	out, err := exec.Command("docker", "exec", f.Name, "cat", "/run/fleet.json").Output()
	if err != nil {
		return r, fmt.Errorf("%s: no report yet: %w", f.Name, err)
	}
	return r, json.Unmarshal(out, &r)
}

// cpu is the container's CPU time (the fleet's; its BIRD is idle).
func (f *fleetOnKind) cpu(t *testing.T) float64 {
	out, err := exec.Command("docker", "exec", f.Name, "bash", "-c", cgroupCPU).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return cpuSeconds(t, string(out))
}

// waitFull waits until every session is up since after (the fleet's clock:
// since its start) and holds every other session's routes, and returns
// that report.
func (f *fleetOnKind) waitFull(t *testing.T, after time.Duration, timeout time.Duration) fleet.Report {
	t.Helper()
	var r fleet.Report
	cluster.Wait(t, fmt.Sprintf("%d fleet sessions up and holding every other session's routes", f.n), timeout, time.Second, func(c *assert.CollectT) {
		var err error
		r, err = f.report()
		if !assert.NoError(c, err) {
			return
		}
		up := 0
		for _, s := range r.Sessions {
			if s.Up > after && s.Full > 0 {
				up++
			}
		}
		assert.Equal(c, f.n, up, "sessions up since %s and full; summary %+v", after, r.Summary)
	})
	return r
}

// TestFanOutClientsOnOneRR: one RR of the full-table example serves a
// fleet of light clients (tests/fleet: one process, one session from each
// of N addresses, 100 prefixes each, counting per session what it
// receives). Measured: the time until all are Established and hold every
// route, against a running RR and again after the RR's BIRD restarts, the
// RR's CPU per export, its memory, the agent's reconcile and apply latency
// at that size. Asserted: every client's routes reach every other client,
// the RR's restart resets each session once and nothing else resets one,
// and scaling the group out (a mesh change on the serving RR) resets none.
//
// MESHRR_SCALE_BIRD=3 runs the RR on BIRD 3 (images.bird3; the chart's
// default threads: the node's CPUs), 2 or unset on BIRD 2.
func TestFanOutClientsOnOneRR(t *testing.T) {
	n := scaleClients(t)
	opts := namespace(t, "e2e-fanout")
	line := envOr("MESHRR_SCALE_BIRD", "2")
	require.Contains(t, []string{"2", "3"}, line, "MESHRR_SCALE_BIRD: the BIRD release line, 2 or 3")
	set := map[string]string{"groups.rr.replicas": "1", "groups.rr.clients.routers.ranges[0]": clientNet, "groups.rr.backend.bird.version": line}
	helm.Install(t, helmOptions(opts, []string{example("full-table", "values.yaml")}, set), chart(), "edge")
	sel := "app.kubernetes.io/name=meshrr"
	rr := cluster.WaitReady(t, opts, sel, 1, 3*time.Minute)[0]
	fl := startFleet(t, n)
	rrCPU := func() float64 {
		out, err := k8s.RunKubectlAndGetOutputE(t, opts, "exec", rr.Name, "-c", "bird", "--", "bash", "-c", cgroupCPU)
		require.NoError(t, err)
		return cpuSeconds(t, out)
	}
	exports := n * (n - 1) * prefixesPerClient
	// what the RR spent per export, and the fleet's view of the wire since
	// the report prev (the counters add up over the fleet's life)
	figures := func(r, prev fleet.Report, since time.Duration, rrSeconds, fleetSeconds float64) string {
		s, p := r.Summary, prev.Summary
		return fmt.Sprintf("all Established %s and all %d exports received %s after it; RR's BIRD CPU %.1f s (%.2f us per export), the fleet's %.1f s; %d UPDATEs, %.1f bytes per route received; %d connection attempts failed, %d handshakes got no OPEN in 10 s, %d hold expiries, %d NOTIFICATIONs",
			(s.LastEstablished - since).Round(100*time.Millisecond), exports, (s.LastComplete - since).Round(100*time.Millisecond),
			rrSeconds, rrSeconds*1e6/float64(exports), fleetSeconds, s.Updates-p.Updates, float64(s.UpdateBytes-p.UpdateBytes)/float64(max(s.Routes, 1)),
			s.DialErrors-p.DialErrors, s.OpenTimeouts-p.OpenTimeouts, s.HoldExpiries-p.HoldExpiries, s.NotifySent+s.NotifyRecv-p.NotifySent-p.NotifyRecv)
	}
	// the whole machine meanwhile: what the RR and the fleet do not account
	// for is the cluster itself and the packets' way between the two
	// containers (bridge, node, veths), in softirq and system time
	hostFigures := func(before hostCPU, rrSeconds, fleetSeconds float64) string {
		d := readHostCPU(t).minus(before)
		return fmt.Sprintf("the machine's CPU meanwhile: %.1f s busy of %.1f s (%d cores), of it %.1f s softirq and %.1f s system; %.1f s neither the RR's BIRD nor the fleet",
			d.busy(), d.total(), runtime.NumCPU(), d.softirq, d.system, d.busy()-rrSeconds-fleetSeconds)
	}
	idle := readHostCPU(t)
	time.Sleep(10 * time.Second)
	d := readHostCPU(t).minus(idle)
	logf(t, "the idle cluster and fleet container: %.1f s of CPU in %.1f s (%.0f %% of the %d cores)", d.busy(), d.total()/float64(runtime.NumCPU()), 100*d.busy()/d.total(), runtime.NumCPU())
	cpuBefore, fleetBefore, hostBefore := rrCPU(), fl.cpu(t), readHostCPU(t)
	fl.run(t, rr.Status.PodIP)
	first := fl.waitFull(t, 0, 10*time.Minute)
	rrSeconds, fleetSeconds := rrCPU()-cpuBefore, fl.cpu(t)-fleetBefore
	logf(t, "BIRD %s: %d clients x %d routes, fleet started: %s; %s", line, n, prefixesPerClient, figures(first, fleet.Report{}, 0, rrSeconds, fleetSeconds), hostFigures(hostBefore, rrSeconds, fleetSeconds))
	assert.Zero(t, first.Summary.Resets, "sessions reset before the RR restart: none is caused by the test")
	up, err := rrClientsEstablished(t, opts, rr.Name)
	require.NoError(t, err)
	assert.Equal(t, n, up, "client sessions Established in the RR's own view")
	assert.Equal(t, n*prefixesPerClient, podNetworks(t, opts, rr.Name), "the RR holds every client's routes")
	mem := readPodMemory(t, rrPod{opts, rr, "edge RR"})
	// BIRD's own count: the paths it holds (one per client route) and the
	// sessions (protocols), apart
	paths := n * prefixesPerClient
	logf(t, "RR with %d clients: BIRD cgroup memory %d MiB (peak %d MiB); BIRD's own count %d KiB: routing tables and attributes %d bytes per path held (%d paths), protocols %d KiB per session; agent RSS %d MiB",
		n, mem.bird>>20, mem.birdPeak>>20, mem.birdOwn>>10, (mem.birdParts["Routing tables"]+mem.birdParts["Route attributes"])/int64(paths), paths,
		mem.birdParts["Protocols"]/int64(n)>>10, mem.agent>>20)

	// the RR's BIRD stops (SIGTERM: it sends each client a Cease) and its
	// container restarts: every client back
	fleetBefore, hostBefore = fl.cpu(t), readHostCPU(t)
	_, err = k8s.RunKubectlAndGetOutputE(t, opts, "exec", rr.Name, "-c", "bird", "--", "bash", "-c", "kill 1")
	require.NoError(t, err)
	killed := time.Since(first.Started)
	again := fl.waitFull(t, killed, 10*time.Minute)
	// the restarted container's counter starts at 0
	rrSeconds, fleetSeconds = rrCPU(), fl.cpu(t)-fleetBefore
	logf(t, "%d clients, the RR's BIRD killed: %s; %s", n, figures(again, first, killed, rrSeconds, fleetSeconds), hostFigures(hostBefore, rrSeconds, fleetSeconds))
	for _, s := range again.Sessions {
		assert.Equal(t, 1, s.Resets, "%s: reset once by the RR's restart, by nothing else (last error %q)", s.Source, s.LastError)
	}

	// the agent at this size: reconcile and apply latency, over the whole
	// test (BIRD busy sending tables) and over 30 s of steady state
	// (reconciles every statePoll)
	text := cluster.Metrics(t, opts, rr.Name)
	for _, h := range []string{"meshrr_reconcile_duration_seconds", "meshrr_apply_duration_seconds"} {
		p50, p99, count := promtext.Quantiles(cluster.Buckets(t, text, h))
		logf(t, "%s with %d clients, since the pod started: p50 <= %gs, p99 <= %gs over %.0f", h, n, p50, p99, count)
	}
	// one kill, one restart noticed: a busy BIRD prints its start time late
	// (by 100 ms with 500 clients), which is no restart
	restarts, err := promtext.Value(text, "meshrr_daemon_restarts_total")
	require.NoError(t, err)
	assert.Equal(t, 1.0, restarts, "restarts the agent noticed")
	before := cluster.Buckets(t, text, "meshrr_reconcile_duration_seconds")
	time.Sleep(30 * time.Second)
	steady := cluster.Buckets(t, cluster.Metrics(t, opts, rr.Name), "meshrr_reconcile_duration_seconds")
	for le, c := range before {
		steady[le] -= c
	}
	p50, p99, count := promtext.Quantiles(steady)
	logf(t, "meshrr_reconcile_duration_seconds with %d clients, steady state: p50 <= %gs, p99 <= %gs over %.0f (goal p99 < 0.1 s)", n, p50, p99, count)

	// a mesh change: the group scales out; the serving RR's clients stay up
	set["groups.rr.replicas"] = "2"
	scale := time.Now()
	helm.Upgrade(t, helmOptions(opts, []string{example("full-table", "values.yaml")}, set), chart(), "edge")
	ps := cluster.WaitReady(t, opts, sel, 2, 3*time.Minute)
	cluster.Wait(t, "both RRs meshed after the scale-out", 2*time.Minute, time.Second, func(c *assert.CollectT) {
		for _, p := range ps {
			ss, err := cluster.Sessions(t, opts, p.Name)
			if assert.NoError(c, err) {
				assert.Len(c, cluster.Established(ss, "mesh"), 1, "%s: meshed with the new RR", p.Name)
			}
		}
	})
	logf(t, "scaled out to 2 RRs and meshed %s after the upgrade", time.Since(scale).Round(100*time.Millisecond))
	after, err := fl.report()
	require.NoError(t, err)
	reset := 0
	for i, s := range after.Sessions {
		if s.Resets != again.Sessions[i].Resets || s.Up != again.Sessions[i].Up {
			reset++
			t.Logf("%s reset by the mesh change: %q", s.Source, s.LastError)
		}
	}
	logf(t, "client sessions reset by the mesh change: %d of %d", reset, n)
	assert.Zero(t, reset, "client sessions reset by a mesh change")
}

// hostCPU is the machine's CPU time by kind, in seconds (/proc/stat's
// first line).
type hostCPU struct{ user, nice, system, idle, iowait, irq, softirq, steal float64 }

func readHostCPU(t *testing.T) hostCPU {
	raw, err := os.ReadFile("/proc/stat")
	require.NoError(t, err)
	var h hostCPU
	var label string
	_, err = fmt.Sscan(string(raw), &label, &h.user, &h.nice, &h.system, &h.idle, &h.iowait, &h.irq, &h.softirq, &h.steal)
	require.NoError(t, err, "/proc/stat")
	const tick = 100 // USER_HZ
	return hostCPU{h.user / tick, h.nice / tick, h.system / tick, h.idle / tick, h.iowait / tick, h.irq / tick, h.softirq / tick, h.steal / tick}
}

func (h hostCPU) minus(o hostCPU) hostCPU {
	return hostCPU{h.user - o.user, h.nice - o.nice, h.system - o.system, h.idle - o.idle, h.iowait - o.iowait, h.irq - o.irq, h.softirq - o.softirq, h.steal - o.steal}
}

func (h hostCPU) busy() float64 { return h.user + h.nice + h.system + h.irq + h.softirq + h.steal }

func (h hostCPU) total() float64 { return h.busy() + h.idle + h.iowait }

// cpuSeconds reads cgroupCPU's output.
func cpuSeconds(t *testing.T, out string) float64 {
	v, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
	require.NoError(t, err, "CPU time: %q", out)
	return v / 1e9
}

// rrClientsEstablished counts the Established sessions an RR's BIRD has
// spawned from the routers' client range.
func rrClientsEstablished(t *testing.T, opts *k8s.KubectlOptions, pod string) (int, error) {
	out, err := cluster.Birdc(t, opts, pod, "show", "protocols")
	if err != nil {
		return 0, err
	}
	up := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "cl_routers_") && strings.Contains(l, "Established") {
			up++
		}
	}
	return up, nil
}
