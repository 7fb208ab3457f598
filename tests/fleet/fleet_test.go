package fleet

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// This package's loopback blocks: the RR on 127.0.40.1, the fleet's
// sessions from 127.0.44.0/22 (up to 1,000).
const (
	rrAddr     = "127.0.40.1"
	fleetRange = "127.0.44.0/22"
)

var sources, _ = Addresses(netip.MustParsePrefix(fleetRange), 1000)

// source is session i's address in fleetRange.
func source(i int) netip.Addr { return sources[i] }

// startRR runs a real BIRD 2 route reflector for the fleet's range on
// rrAddr, stopped when the test ends; birdc runs commands on it.
func startRR(t *testing.T, hold int) (birdc func(args ...string) string, pid int) {
	t.Helper()
	if _, err := exec.LookPath("bird"); err != nil {
		t.Fatalf("bird is not on PATH (make daemons provides the BIRD of the images; run the tests through make): %v", err)
	}
	dir := t.TempDir()
	conf := fmt.Sprintf(`router id %[1]s;
log stderr { warning, error, fatal, bug };
protocol device {}
protocol bgp fleet {
  local %[1]s as 65000;
  strict bind yes; # on its address only: BIRDs of other packages listen on theirs
  neighbor range %[3]s internal;
  dynamic name "c";
  rr client;
  hold time %[2]d;
  ipv4 { import all; export all; };
}
`, rrAddr, hold, fleetRange)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bird.conf"), []byte(conf), 0o644))
	sock := filepath.Join(dir, "bird.ctl")
	cmd := exec.Command("bird", "-f", "-c", filepath.Join(dir, "bird.conf"), "-s", sock)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("the RR's log:\n%s", log.String())
		}
	})
	birdc = func(args ...string) string {
		out, _ := exec.Command("birdc", append([]string{"-s", sock}, args...)...).CombinedOutput()
		return string(out)
	}
	require.Eventually(t, func() bool { return strings.Contains(birdc("show", "status"), "Daemon is up") }, 10*time.Second, 50*time.Millisecond, "BIRD did not start:\n%s", log.String())
	return birdc, cmd.Process.Pid
}

// waitComplete waits until every session holds every other session's
// routes, and returns the summary then.
func waitComplete(t *testing.T, f *Fleet, n int, timeout time.Duration) Summary {
	t.Helper()
	var sum Summary
	require.Eventually(t, func() bool {
		sum = Summarize(f.Stats())
		return sum.Complete == n
	}, timeout, 20*time.Millisecond, "sessions complete: %+v", sum)
	return sum
}

// Every session of the fleet reaches Established at a real BIRD RR from its
// own address, and holds exactly every other session's routes, counted
// from the UPDATEs the RR reflected; BIRD agrees on the sessions and on
// the routes it holds.
func TestFleetSessionsCountWhatTheRRReflects(t *testing.T) {
	birdc, _ := startRR(t, 30)
	const n, per = 20, 50
	f, err := Start(Config{RR: netip.AddrPortFrom(netip.MustParseAddr(rrAddr), 179), LocalAS: 65000, PeerAS: 65000,
		Sources: sources[:n], Announce: Prefixes(per), HoldTime: 30 * time.Second})
	require.NoError(t, err)
	defer f.Stop()
	sum := waitComplete(t, f, n, 30*time.Second)
	assert.Equal(t, n, sum.Established)
	assert.Equal(t, n*(n-1)*per, sum.Routes)
	assert.Zero(t, sum.Resets)
	assert.Zero(t, sum.NotifySent+sum.NotifyRecv+sum.HoldExpiries+sum.Lost)
	for i, st := range f.Stats() {
		assert.Equal(t, source(i), st.Source)
		assert.Equal(t, (n-1)*per, st.Received, "session %d", i)
		assert.Equal(t, 1, st.Connects, "session %d", i)
	}
	protocols := birdc("show", "protocols")
	assert.Equal(t, n, strings.Count(protocols, "Established"), "BIRD's own view:\n%s", protocols)
	assert.Contains(t, birdc("show", "route", "count"), fmt.Sprintf("%d of %d routes for %d networks", n*per, n*per, n*per))
	t.Logf("fleet of %d sessions, %d routes each: all Established after %s, complete after %s; %d UPDATEs, %d bytes (%.0f per route received)",
		n, per, sum.LastEstablished.Round(time.Millisecond), sum.LastComplete.Round(time.Millisecond), sum.Updates, sum.UpdateBytes, float64(sum.UpdateBytes)/float64(sum.Routes))
}

// A session the RR resets is counted, with the NOTIFICATION it received,
// comes back by itself, and holds every route again; the other sessions
// are not touched.
func TestFleetCountsAResetAndRecovers(t *testing.T) {
	birdc, _ := startRR(t, 30)
	const n, per = 3, 10
	f, err := Start(Config{RR: netip.AddrPortFrom(netip.MustParseAddr(rrAddr), 179), LocalAS: 65000, PeerAS: 65000,
		Sources: sources[100:103], Announce: Prefixes(per), HoldTime: 30 * time.Second, Retry: 200 * time.Millisecond})
	require.NoError(t, err)
	defer f.Stop()
	waitComplete(t, f, n, 30*time.Second)
	// the dynamic protocol of the first session: BIRD names them c1, c2, ...
	var name string
	for _, line := range strings.Split(birdc("show", "protocols", "all"), "\n") {
		if fields := strings.Fields(line); len(fields) > 0 && strings.HasPrefix(fields[0], "c") {
			name = fields[0]
		}
		if strings.Contains(line, "Neighbor address: "+source(100).String()) && name != "" {
			break
		}
	}
	require.NotEmpty(t, name)
	birdc("restart", name)
	require.Eventually(t, func() bool {
		st := f.Stats()[0]
		return st.Resets == 1 && st.Connects == 2 && st.Received == st.Expected
	}, 30*time.Second, 50*time.Millisecond, "%+v", f.Stats()[0])
	st := f.Stats()
	assert.Equal(t, 1, st[0].NotifyRecv, "the RR's Cease")
	assert.Contains(t, st[0].LastError, "NOTIFICATION received: code 6")
	assert.Greater(t, st[0].Up, st[0].Established, "up again after the first time")
	assert.GreaterOrEqual(t, st[0].Full, st[0].Up, "full again after it came up again")
	for _, other := range st[1:] {
		assert.Zero(t, other.Resets, "%s", other.Source)
		assert.Equal(t, 1, other.Connects, "%s", other.Source)
		// the reset session's routes went and came back
		assert.Equal(t, (n-1)*per, other.Received)
	}
}

// Source addresses: 250 per /24, .1 to .250, in order; blocks that are not
// IPv4 prefixes of /24 or shorter, or too small, are refused.
func TestAddresses(t *testing.T) {
	got, err := Addresses(netip.MustParsePrefix("10.250.0.0/22"), 1000)
	require.NoError(t, err)
	assert.Equal(t, "10.250.0.1", got[0].String())
	assert.Equal(t, "10.250.0.250", got[249].String())
	assert.Equal(t, "10.250.1.1", got[250].String())
	assert.Equal(t, "10.250.3.250", got[999].String())
	for block, n := range map[string]int{"10.250.0.0/22": 1001, "10.250.0.0/25": 1, "10.250.0.1/22": 1, "fd00::/64": 1, "10.0.0.0/24": 0} {
		_, err := Addresses(netip.MustParsePrefix(block), n)
		assert.Error(t, err, "%s x %d", block, n)
	}
}

// A fleet of one session expects no route: it is full once Established.
func TestAFleetOfOneIsFullWhenUp(t *testing.T) {
	startRR(t, 30)
	f, err := Start(Config{RR: netip.AddrPortFrom(netip.MustParseAddr(rrAddr), 179), LocalAS: 65000, PeerAS: 65000,
		Sources: sources[:1], Announce: Prefixes(3)})
	require.NoError(t, err)
	defer f.Stop()
	sum := waitComplete(t, f, 1, 30*time.Second)
	assert.Equal(t, 1, sum.Established)
	assert.Equal(t, sum.LastEstablished, sum.LastComplete)
}

// Connection attempts that fail are counted and retried: no RR listens on
// the address.
func TestFleetCountsDialErrors(t *testing.T) {
	f, err := Start(Config{RR: netip.AddrPortFrom(netip.MustParseAddr("127.0.40.99"), 179), LocalAS: 65000, PeerAS: 65000,
		Sources: sources[:1], Announce: Prefixes(1), Retry: 20 * time.Millisecond})
	require.NoError(t, err)
	defer f.Stop()
	require.Eventually(t, func() bool { return Summarize(f.Stats()).DialErrors >= 3 }, 10*time.Second, 10*time.Millisecond)
	st := f.Stats()[0]
	assert.Zero(t, st.Connects)
	assert.Contains(t, st.LastError, "connection refused")
}

// Bad fleets are refused, naming what is wrong.
func TestFleetRefusesBadConfig(t *testing.T) {
	rr := netip.AddrPortFrom(netip.MustParseAddr(rrAddr), 179)
	same := func(int) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")} }
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"no sources":        {Config{RR: rr, LocalAS: 1, PeerAS: 1, Announce: same}, "Sources"},
		"duplicate prefix":  {Config{RR: rr, LocalAS: 1, PeerAS: 1, Sources: []netip.Addr{source(0), source(1)}, Announce: same}, "announced twice"},
		"host bits":         {Config{RR: rr, LocalAS: 1, PeerAS: 1, Sources: []netip.Addr{source(0)}, Announce: func(int) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")} }}, "without host bits"},
		"IPv6 source":       {Config{RR: rr, LocalAS: 1, PeerAS: 1, Sources: []netip.Addr{netip.MustParseAddr("::1")}, Announce: same}, "IPv4 only"},
		"hold time too low": {Config{RR: rr, LocalAS: 1, PeerAS: 1, Sources: []netip.Addr{source(0)}, Announce: same, HoldTime: time.Second}, "hold time"},
	} {
		_, err := Start(tc.cfg)
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), tc.want, name)
		}
	}
}

// Malformed UPDATEs (as a broken or hostile peer would send) are refused
// with the UPDATE error to notify, never read past; well-formed ones count
// exactly the fleet's prefixes, whatever the attributes hold.
func TestUpdateSectionsAndPrefixesRefuseMalformedInput(t *testing.T) {
	for name, body := range map[string][]byte{
		"too short":               {0, 0, 0},
		"withdrawn past the end":  {0, 9, 0, 0},
		"attributes past the end": {0, 0, 0, 9, 1},
	} {
		_, _, err := updateSections(body)
		var me *bgp.MessageError
		if assert.ErrorAs(t, err, &me, name) {
			assert.Equal(t, uint8(bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR), me.TypeCode, name)
		}
	}
	// two withdrawn /31s of the fleet, 3 attribute bytes skipped, one NLRI
	body := []byte{0, 10, 31, 10, 16, 0, 0, 31, 10, 16, 0, 2, 0, 3, 0xff, 0xff, 0xff, 31, 10, 16, 1, 4}
	w, n, err := updateSections(body)
	require.NoError(t, err)
	f := &Fleet{index: map[netip.Prefix]int32{}}
	for i, p := range []string{"10.16.0.0/31", "10.16.0.2/31", "10.16.1.4/31"} {
		f.index[netip.MustParsePrefix(p)] = int32(i)
	}
	s := &session{f: f, have: make([]uint64, 1), stats: Stats{Expected: 3}}
	require.Nil(t, s.update(nil, n, len(body)))
	assert.Equal(t, 1, s.stats.Received, "the NLRI after the skipped attributes")
	require.Nil(t, s.update(nil, w, len(body))) // the withdrawn section's prefixes, announced
	assert.Equal(t, 3, s.stats.Received)
	assert.NotZero(t, s.stats.Complete, "every expected route held")
	assert.Equal(t, s.stats.Complete, s.stats.Full)
	require.Nil(t, s.update(nil, n, len(body)))
	assert.Equal(t, 3, s.stats.Received, "an announcement again replaces, it does not add")
	require.Nil(t, s.update(w, nil, len(body)))
	assert.Equal(t, 1, s.stats.Received)
	assert.Zero(t, s.stats.Full, "no longer holding every route")
	assert.NotZero(t, s.stats.Complete, "the first time stays")
	require.Nil(t, s.update(w, nil, len(body)))
	assert.Equal(t, 1, s.stats.Received, "withdrawing routes it does not hold changes nothing")
	assert.Equal(t, 5, s.stats.Updates)
	// a prefix length over 32
	me := s.update(nil, []byte{33, 10, 16, 0, 0, 0}, 6)
	require.NotNil(t, me)
	assert.Equal(t, uint8(3), me.TypeCode)
}
