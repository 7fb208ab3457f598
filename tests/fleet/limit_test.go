package fleet

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFleetAtTheDaemonsLimit measures a BIRD route reflector serving a
// fleet on loopback, no kind and no agent: MESHRR_FLEET_CLIENTS sessions
// (default 50 here; make fleet-limit: 500) announcing 100 routes each, so
// each receives (n-1)*100 and the RR makes n*(n-1)*100 exports. Printed,
// not asserted: wall time until every session holds every route, the RR's
// CPU per export, the fleet's own CPU, UPDATE bytes per route received,
// and resets (asserted: none).
func TestFleetAtTheDaemonsLimit(t *testing.T) {
	n := 50
	if v := os.Getenv("MESHRR_FLEET_CLIENTS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, "MESHRR_FLEET_CLIENTS: a number of sessions, not %q", v)
		require.True(t, n >= 2 && n <= 1000, "MESHRR_FLEET_CLIENTS: 2-1000, not %d", n)
	}
	const per = 100
	// every session at once, as routers reconnect after an RR restart; then
	// at most 8 handshakes at a time, the accept queue BIRD asks of the
	// kernel for its BGP port (listen backlog 8, as ss -ltn shows)
	for _, maxConnecting := range []int{0, 8} {
		t.Run(fmt.Sprintf("connecting=%d", maxConnecting), func(t *testing.T) { measureLimit(t, n, per, maxConnecting) })
	}
}

func measureLimit(t *testing.T, n, per, maxConnecting int) {
	_, pid := startRR(t, 90)
	sources := make([]netip.Addr, n)
	for i := range sources {
		sources[i] = source(i)
	}
	rrBefore := procCPU(t, pid)
	var self syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &self))
	selfBefore := time.Duration(self.Utime.Nano() + self.Stime.Nano())
	f, err := Start(Config{RR: netip.AddrPortFrom(netip.MustParseAddr(rrAddr), 179), LocalAS: 65000, PeerAS: 65000,
		Sources: sources, Announce: routes(per), MaxConnecting: maxConnecting})
	require.NoError(t, err)
	defer f.Stop()
	sum := waitComplete(t, f, n, 10*time.Minute)
	rr := procCPU(t, pid) - rrBefore
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &self))
	fleetCPU := time.Duration(self.Utime.Nano()+self.Stime.Nano()) - selfBefore
	exports := n * (n - 1) * per
	mode := "every session dialling at once"
	if maxConnecting > 0 {
		mode = fmt.Sprintf("at most %d handshakes at a time", maxConnecting)
	}
	t.Logf("limit: BIRD RR on loopback, %d iBGP clients x %d routes (%d exports), %s: all Established after %s, all routes received after %s; RR CPU %.1f s (%.2f us per export), fleet CPU %.1f s; %d UPDATEs, %.1f bytes per route received; %d handshakes that got no OPEN in 10 s, %d resets, %d NOTIFICATIONs, %d hold expiries",
		n, per, exports, mode, sum.LastEstablished.Round(time.Millisecond), sum.LastComplete.Round(time.Millisecond),
		rr.Seconds(), float64(rr.Microseconds())/float64(exports), fleetCPU.Seconds(),
		sum.Updates, float64(sum.UpdateBytes)/float64(sum.Routes), sum.OpenTimeouts, sum.Resets, sum.NotifySent+sum.NotifyRecv, sum.HoldExpiries)
	require.Zero(t, sum.Resets, "sessions reset under load")
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
