//go:build e2e

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
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
)

// The fan-out suite's client fleet: one BIRD container, one session per
// address of clientNet, prefixesPerClient routes each.
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

// clientAddr is the i-th client's address in clientNet (i from 0).
func clientAddr(i int) string { return fmt.Sprintf("10.250.%d.%d", i/250, i%250+1) }

// TestFanOutClientsOnOneRR: one RR of the full-table example serves a
// fleet of light clients (one BIRD container opening a session from each
// of N addresses, 100 prefixes each). Measured: the time until all are
// Established against a running RR and again after the RR's BIRD restarts,
// its memory, the agent's reconcile and apply latency at that size.
// Asserted: every client's routes reach the others, and scaling the group
// out (a mesh change on the serving RR) resets none of the client sessions.
func TestFanOutClientsOnOneRR(t *testing.T) {
	n := scaleClients(t)
	opts := namespace(t, "e2e-fanout")
	set := map[string]string{"groups.rr.replicas": "1", "groups.rr.clients.routers.ranges[0]": clientNet}
	helm.Install(t, helmOptions(opts, []string{example("full-table", "values.yaml")}, set), chart(), "edge")
	sel := "app.kubernetes.io/name=meshrr"
	rr := cluster.WaitReady(t, opts, sel, 1, 3*time.Minute)[0]

	// BIRD runs one session per neighbour address whatever the local
	// address, so the fleet is one BIRD per client (each listening on its
	// own address only: strict bind): client 0 is the
	// container's own BIRD and keeps what the RR reflects (every client
	// receives it all the same), the others start from setup.sh, each
	// with its control socket /run/c<i>.ctl, and export only their routes
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "clients"), 0o755))
	var addrs strings.Builder
	for i := range n {
		fmt.Fprintf(&addrs, "addr add %s/32 dev lo\n", clientAddr(i))
		var conf strings.Builder
		if i > 0 {
			fmt.Fprintf(&conf, "router id %s;\nlog stderr { warning, error, fatal, bug };\nprotocol device {}\n", clientAddr(i))
		}
		fmt.Fprintf(&conf, "protocol static s%d {\n  ipv4;\n", i)
		for j := range prefixesPerClient {
			// 10.(16+i/256).(i%256).0/24 split into /31s: disjoint per client
			fmt.Fprintf(&conf, "  route 10.%d.%d.%d/31 blackhole;\n", 16+i/256, i%256, 2*j)
		}
		imp := "none"
		if i == 0 {
			imp = "all"
		}
		fmt.Fprintf(&conf, "}\nprotocol bgp c%d {\n  local %s as 65000; neighbor %s as 65000; strict bind yes;\n  connect retry time 5; error wait time 1, 10;\n  ipv4 { import %s; export where proto = \"s%d\"; };\n}\n", i, clientAddr(i), rr.Status.PodIP, imp, i)
		file := filepath.Join(dir, "clients", fmt.Sprintf("c%d.conf", i))
		if i == 0 {
			file = filepath.Join(dir, "conf.d", "c0.conf")
		}
		require.NoError(t, os.WriteFile(file, []byte(conf.String()), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "addrs"), []byte(addrs.String()), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "setup.sh"), []byte(`ip -batch /etc/bird/addrs
for f in /etc/bird/clients/*.conf; do
  c=$(basename "$f" .conf)
  bird -c "$f" -s "/run/$c.ctl" -P "/run/$c.pid"
done
`), 0o644))
	// one line per client session: its BIRD's "show protocols" line
	require.NoError(t, os.WriteFile(filepath.Join(dir, "fleet.sh"), []byte(`ls /run/*.ctl | xargs -P 4 -I{} sh -c 'birdc -s {} show protocols | awk "\$1 ~ /^c[0-9]+\$/"'
`), 0o644))
	rrCPU := func() float64 {
		out, err := k8s.RunKubectlAndGetOutputE(t, opts, "exec", rr.Name, "-c", "bird", "--", "bash", "-c", cgroupCPU)
		require.NoError(t, err)
		return cpuSeconds(t, out)
	}
	cpuBefore := rrCPU()
	start := time.Now()
	fleet := startBird(t, "clients", routerID(51), dir)
	fleetCPU := func() float64 {
		out, err := exec.Command("docker", "exec", fleet.Name, "bash", "-c", cgroupCPU).CombinedOutput()
		require.NoError(t, err, "%s", out)
		return cpuSeconds(t, string(out))
	}
	// the RR pod answers the clients' addresses through the fleet container
	require.NoError(t, routerEnv().Steer(netip.MustParsePrefix(clientNet), fleet.Addr))
	// counted on the RR (one birdc there): asking 500 BIRDs would cost the
	// machine more than the RR does
	allEstablished := func(what string, since time.Time) {
		cluster.Wait(t, fmt.Sprintf("%d client sessions Established at the RR", n), 10*time.Minute, time.Second, func(c *assert.CollectT) {
			up, err := rrClientsEstablished(t, opts, rr.Name)
			assert.NoError(c, err)
			assert.Equal(c, n, up, "client sessions Established at the RR")
		})
		logf(t, "%d clients Established %s", n, fmt.Sprintf(what, time.Since(since).Round(100*time.Millisecond)))
	}
	allEstablished("%s after the fleet container started", start)
	total := n * prefixesPerClient
	cluster.Wait(t, "every client's routes at the RR and at client 0", 5*time.Minute, time.Second, func(c *assert.CollectT) {
		assert.Equal(c, total, podNetworks(t, opts, rr.Name), "the RR holds every client's routes")
		got, err := fleet.routeCount("c0")
		assert.NoError(c, err)
		assert.Equal(c, total-prefixesPerClient, got, "client 0 learns every other client's routes")
	})
	logf(t, "%d routes at the RR, the other %d clients' routes at client 0, %s after the fleet started", total, n-1, time.Since(start).Round(100*time.Millisecond))
	logf(t, "CPU used meanwhile: the RR's BIRD %.1f s, the fleet's %d BIRDs %.1f s (one machine of 2 cores runs both)", rrCPU()-cpuBefore, n, fleetCPU())
	mem := readPodMemory(t, rrPod{opts, rr, "edge RR"})
	logf(t, "RR with %d clients: BIRD cgroup memory %d MiB (peak %d MiB), agent RSS %d MiB", n, mem.bird>>20, mem.birdPeak>>20, mem.agent>>20)

	// the RR's BIRD restarts (as after an OOM kill): every client back
	restart, fleetBefore := time.Now(), fleetCPU()
	_, err := k8s.RunKubectlAndGetOutputE(t, opts, "exec", rr.Name, "-c", "bird", "--", "bash", "-c", "kill 1")
	require.NoError(t, err)
	cluster.Wait(t, "BIRD's restart dropped the client sessions", time.Minute, 200*time.Millisecond, func(c *assert.CollectT) {
		up, err := rrClientsEstablished(t, opts, rr.Name)
		if assert.NoError(c, err) {
			assert.Less(c, up, n)
		}
	})
	allEstablished("%s after the RR's BIRD was killed", restart)
	// the restarted container's counter starts at 0
	logf(t, "CPU used meanwhile: the RR's new BIRD %.1f s, the fleet %.1f s", rrCPU(), fleetCPU()-fleetBefore)

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
	sessionsBefore, err := fleetSessions(fleet)
	require.NoError(t, err)
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
	after, err := fleetSessions(fleet)
	require.NoError(t, err)
	reset := 0
	var changes []string
	for i := range n {
		if c := fmt.Sprintf("c%d", i); !sameSession(sessionsBefore[c], after[c]) {
			reset++
			changes = append(changes, sessionsBefore[c]+" -> "+after[c])
		}
	}
	if reset > 0 {
		t.Logf("sessions changed:\n%s", strings.Join(changes, "\n"))
	}
	logf(t, "client sessions reset by the mesh change: %d of %d", reset, n)
	assert.Zero(t, reset, "client sessions reset by a mesh change")
}

// cpuSeconds reads cgroupCPU's output.
func cpuSeconds(t *testing.T, out string) float64 {
	v, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
	require.NoError(t, err, "CPU time: %q", out)
	return v / 1e9
}

// fleetSessions maps each client session of the fleet to its line of
// `show protocols` (state and since: a reset changes it).
func fleetSessions(fleet *BirdRouter) (map[string]string, error) {
	out, err := exec.Command("docker", "exec", fleet.Name, "bash", "/etc/bird/fleet.sh").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s: fleet.sh: %v: %s", fleet.Name, err, out)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = strings.Join(f, " ")
		}
	}
	return lines, nil
}

// sameSession: a fleet session Established in both lines of `show
// protocols`, since the same time. BIRD prints "since" from a monotonic
// clock converted to wall time, so the same state change can print a
// millisecond apart; a reset moves it by the time the session was down
// and up again, at least connect delay (1 s) and the handshake.
func sameSession(before, after string) bool {
	b, a := strings.Fields(before), strings.Fields(after)
	if len(b) < 6 || len(a) < 6 || b[5] != "Established" || a[5] != "Established" {
		return false
	}
	tb, errB := time.Parse("15:04:05.000", b[4])
	ta, errA := time.Parse("15:04:05.000", a[4])
	return errB == nil && errA == nil && ta.Sub(tb).Abs() < 500*time.Millisecond
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
