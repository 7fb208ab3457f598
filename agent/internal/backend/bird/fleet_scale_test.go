//go:build scale

package bird_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/testutil/birdlab"
)

// The fleet's loopback blocks: the RR on 127.0.40.1, the sessions from
// 127.0.44.0/22 (up to 1,000).
const (
	fleetRR     = "127.0.40.1"
	fleetBlock  = "127.0.44.0/22"
	fleetRoutes = 100
	// what the chart renders for examples/full-table's group (helm
	// template), the routers' range and the backend's files aside
	fleetRRCfg = `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000, routerID: auto, clusterID: routerID}
families: [unicast]
mesh: {group: edge.rr, service: edge-meshrr-rr}
clients: [{name: routers, ranges: ["` + fleetBlock + `"]}]
`
	// the least an RR needs: one dynamic iBGP protocol, no filter, no
	// graceful restart, default timers
	fleetBareRR = `
protocol bgp fleet {
  local ` + fleetRR + ` as 65000;
  neighbor range ` + fleetBlock + ` internal;
  dynamic name "c";
  rr client;
  ipv4 { import all; export all; };
}
`
)

// fleetSummary is what this test reads of the fleet's report (package
// fleet's Summary in the tests module, written as JSON by meshrr-fleet).
type fleetSummary struct {
	Sessions, Established, Complete int
	LastEstablished, LastComplete   time.Duration
	Resets, NotifySent, NotifyRecv  int
	HoldExpiries, OpenTimeouts      int
	Updates                         int
	UpdateBytes                     int64
	Routes                          int
}

// TestScaleFleetOnOneRR (make fleet-limit, and in make scale beside the kind
// fan-out suite): the daemon's limit for fan-out on loopback, no kind and no
// agent process. One BIRD RR serves MESHRR_FLEET_CLIENTS iBGP sessions
// (default 50) of the meshrr-fleet command (MESHRR_FLEET_BIN, built from the
// tests module), 100 routes each, so the RR makes n*(n-1)*100 exports. Two
// RR configurations, each with every session dialling at once (as routers
// after an RR restart) and with at most 8 handshakes at a time (BIRD's
// listen backlog): a bare one, and the one meshrr renders for the chart's
// client group. Printed, not asserted: wall time until every session holds
// every route, the RR's CPU per export, the fleet's CPU, bytes per route
// received, handshakes left without an OPEN; asserted: no resets.
func TestScaleFleetOnOneRR(t *testing.T) {
	bin := os.Getenv("MESHRR_FLEET_BIN")
	require.NotEmpty(t, bin, "MESHRR_FLEET_BIN: the meshrr-fleet binary (make fleet-limit builds it from tests/fleet/cmd/meshrr-fleet)")
	n := 50
	if v := os.Getenv("MESHRR_FLEET_CLIENTS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, "MESHRR_FLEET_CLIENTS: a number of sessions, not %q", v)
		require.True(t, n >= 2 && n <= 1000, "MESHRR_FLEET_CLIENTS: 2-1000, not %d", n)
	}
	for _, shape := range []string{"bare", "rendered"} {
		for _, pace := range []int{0, 8} {
			t.Run(fmt.Sprintf("%s/connecting=%d", shape, pace), func(t *testing.T) {
				in := birdlab.Start(t, "fleet-rr", fleetRR)
				// birdlab logs every protocol event: not at this size
				require.NoError(t, os.WriteFile(filepath.Join(in.IncludeDir, "00-log.conf"), nil, 0o644))
				if shape == "bare" {
					in.AddInclude(t, "fleet", fleetBareRR)
				} else {
					r := &rr{lab: in, pod: "rr-0", ns: "edge"}
					if birdlab.Version.Major == 3 {
						// as the chart runs BIRD 3 without a CPU limit: a
						// thread per CPU of the node
						r.threads = runtime.NumCPU()
					}
					r.apply(t, model.Snapshot{Synced: true}, fleetRRCfg)
				}
				measureFleet(t, bin, in, n, shape, pace)
			})
		}
	}
}

func measureFleet(t *testing.T, bin string, in *birdlab.Instance, n int, shape string, pace int) {
	report := filepath.Join(t.TempDir(), "fleet.json")
	rrBefore := procCPU(t, in.Pid())
	cmd := exec.Command(bin, "-rr", fleetRR, "-as", "65000", "-sources", fleetBlock, "-n", strconv.Itoa(n),
		"-routes", strconv.Itoa(fleetRoutes), "-max-connecting", strconv.Itoa(pace), "-report", report, "-interval", "100ms")
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	require.NoError(t, cmd.Start())
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("meshrr-fleet's log:\n%s", log.String())
		}
	})
	var sum fleetSummary
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		raw, err := os.ReadFile(report)
		if !assert.NoError(c, err) {
			return
		}
		var r struct{ Summary fleetSummary }
		if assert.NoError(c, json.Unmarshal(raw, &r)) {
			sum = r.Summary
			assert.Equal(c, n, sum.Complete, "sessions holding every route: %+v", sum)
		}
	}, 10*time.Minute, 100*time.Millisecond)
	rrCPU := procCPU(t, in.Pid()) - rrBefore
	fleetCPU := procCPU(t, cmd.Process.Pid)
	stop()
	exports := n * (n - 1) * fleetRoutes
	mode := "every session dialling at once"
	if pace > 0 {
		mode = fmt.Sprintf("at most %d handshakes at a time", pace)
	}
	logScale(t, "fleet: BIRD %s, %s RR configuration, %d iBGP clients x %d routes (%d exports), %s: all Established after %s, all routes received after %s; RR CPU %.1f s (%.2f us per export), fleet CPU %.1f s; %d UPDATEs, %.1f bytes per route received; %d handshakes that got no OPEN in 10 s, %d resets, %d NOTIFICATIONs, %d hold expiries",
		birdlab.Version, shape, n, fleetRoutes, exports, mode, sum.LastEstablished.Round(time.Millisecond), sum.LastComplete.Round(time.Millisecond),
		rrCPU.Seconds(), float64(rrCPU.Microseconds())/float64(exports), fleetCPU.Seconds(),
		sum.Updates, float64(sum.UpdateBytes)/float64(max(sum.Routes, 1)), sum.OpenTimeouts, sum.Resets, sum.NotifySent+sum.NotifyRecv, sum.HoldExpiries)
	assert.Zero(t, sum.Resets, "sessions reset under load")
	assert.Equal(t, n*(n-1)*fleetRoutes, sum.Routes, "routes held over all sessions")
}

// procCPU is a process's user and system CPU time (/proc/PID/stat, in
// clock ticks of 10 ms).
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	// the fields after the command name, which is in parentheses
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, err := strconv.ParseInt(fields[11], 10, 64)
	require.NoError(t, err)
	stime, err := strconv.ParseInt(fields[12], 10, 64)
	require.NoError(t, err)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
