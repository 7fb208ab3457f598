//go:build scale

package bird_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/backend/bird"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/testutil/birdlab"
	"github.com/meshrr/meshrr/tests/scale/table"
)

// The scale suite's loopback addresses: 127.0.10.144/28 are the RRs (the
// core's client range), 127.0.10.160/28 the routers (the regions' range).
const (
	scaleCoreCfg = `
identity: {asn: 65000}
mesh: {group: core.core}
clients: [{name: regions, ranges: [127.0.10.144/28]}]
`
	scaleRegionCfg = `
identity: {asn: 65000}
mesh: {group: %s}
upstream: {group: core.core, namespace: core, maxPeers: 1}
clients: [{name: routers, ranges: [127.0.10.160/28]}]
`
	feederAddr, receiverAddr = "127.0.10.161", "127.0.10.162"
)

// TestScaleTableThroughThreeRRs (make scale; MESHRR_SCALE_ROUTES sets the
// table size, default a full IPv4 table of 1,000,000 routes): real BIRD
// daemons on loopback, the RRs configured by meshrr's plan and this backend
// as in a cluster. A feeder announces the table (tests/scale/table) to a
// receiver twice, measured in the same run: directly (one session, the
// physical baseline of this machine) and through region RR -> core RR ->
// region RR. Then the table is withdrawn at the feeder and the time until
// it is gone at the receiver and the core is measured; each RR's BIRD
// resident memory is read before and after the load.
func TestScaleTableThroughThreeRRs(t *testing.T) {
	n := 1_000_000
	if v := os.Getenv("MESHRR_SCALE_ROUTES"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, "MESHRR_SCALE_ROUTES: a number of routes")
	}
	routes := table.Generate(table.Spec{Seed: 1, IPv4: n, CommunityShare: 0.3})

	snap := model.Snapshot{Synced: true}
	for _, m := range []model.Member{
		{Namespace: "core", Group: "core.core", Pod: "core-0", Side: "a"},
		{Namespace: "a", Group: "a.a", Pod: "rr-a", UpstreamGroup: "core.core", UpstreamNamespace: "core"},
		{Namespace: "b", Group: "b.b", Pod: "rr-b", UpstreamGroup: "core.core", UpstreamNamespace: "core"},
	} {
		snap.Members = append(snap.Members, m)
	}
	addrs := map[string]string{"core-0": "127.0.10.145", "rr-a": "127.0.10.146", "rr-b": "127.0.10.147"}
	for i := range snap.Members {
		snap.Members[i].Addrs = append(snap.Members[i].Addrs, netip.MustParseAddr(addrs[snap.Members[i].Pod]))
	}
	core := &rr{lab: birdlab.Start(t, "core-0", addrs["core-0"]), pod: "core-0", ns: "core", cfg: scaleCoreCfg}
	rrA := &rr{lab: birdlab.Start(t, "rr-a", addrs["rr-a"]), pod: "rr-a", ns: "a", cfg: fmt.Sprintf(scaleRegionCfg, "a.a")}
	rrB := &rr{lab: birdlab.Start(t, "rr-b", addrs["rr-b"]), pod: "rr-b", ns: "b", cfg: fmt.Sprintf(scaleRegionCfg, "b.b")}
	rrs := []*rr{rrA, core, rrB}
	for _, r := range rrs {
		r.apply(t, snap, r.cfg)
	}
	receiver := birdlab.Start(t, "receiver", receiverAddr)
	receiver.AddInclude(t, "receiver", fmt.Sprintf(`
protocol bgp from_rr {
  local %[1]s as 65000; neighbor %[2]s as 65000; strict bind yes;
  connect delay time 1; connect retry time 1;
  ipv4 { import all; export none; };
}
protocol bgp from_feeder {
  local %[1]s as 65000; neighbor %[3]s as 65000; strict bind yes; passive yes;
  ipv4 { import all; export none; };
}
`, receiverAddr, addrs["rr-b"], feederAddr))

	feeder := birdlab.Start(t, "feeder", feederAddr)
	// a full table takes the daemons longer than birdlab's 5 s per command
	for _, in := range []*birdlab.Instance{feeder, receiver, core.lab} {
		in.Client = bird.NewClient(in.Socket, 10*time.Minute)
	}
	var conf bytes.Buffer
	require.NoError(t, table.WriteBIRD(&conf, routes))
	fmt.Fprintf(&conf, `
protocol bgp to_rr {
  local %[1]s as 65000; neighbor %[2]s as 65000; strict bind yes; disabled yes; connect delay time 1;
  ipv4 { import none; export all; };
}
protocol bgp to_receiver {
  local %[1]s as 65000; neighbor %[3]s as 65000; strict bind yes; disabled yes; connect delay time 1;
  ipv4 { import none; export all; };
}
`, feederAddr, addrs["rr-a"], receiverAddr)
	loadStart := time.Now()
	require.NoError(t, os.WriteFile(filepath.Join(feeder.IncludeDir, "feed.conf"), conf.Bytes(), 0o644))
	birdCmd(t, feeder, "configure", 10*time.Minute)
	logScale(t, "feeder: %d IPv4 routes (%d MB of configuration) loaded in %s, feeder RSS %d MB",
		n, conf.Len()>>20, time.Since(loadStart).Round(100*time.Millisecond), rss(t, feeder)>>20)

	// every RR session up before anything is announced
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, r := range []*rr{rrA, rrB} {
			assert.True(c, r.sessions(c)["upstream_127_0_10_145"].Established, "%s: upstream", r.pod)
		}
		assert.Contains(c, birdCmd(c, receiver, "show protocols from_rr", 5*time.Second), "Established")
	}, time.Minute, 200*time.Millisecond)
	before := map[string]int64{}
	for _, r := range rrs {
		before[r.pod] = rss(t, r.lab)
	}

	direct := transfer(t, feeder, "to_receiver", receiver, "from_feeder", n)
	logScale(t, "direct feeder -> receiver: first route after %s, all %d after %s", direct.first, n, direct.all)
	birdCmd(t, feeder, "disable to_receiver", 5*time.Second)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Zero(c, routeCount(c, receiver, "from_feeder"))
	}, 5*time.Minute, time.Second)

	hops := transfer(t, feeder, "to_rr", receiver, "from_rr", n)
	logScale(t, "feeder -> region RR -> core RR -> region RR -> receiver: first route after %s, all %d after %s; %.2fx the direct transfer (goal <= 1.5x)",
		hops.first, n, hops.all, hops.all.Seconds()/direct.all.Seconds())
	for _, r := range rrs {
		after := rss(t, r.lab)
		logScale(t, "%s: BIRD RSS %d MB -> %d MB with the table: %d bytes per route (goal <= 1.4x BIRD's own ~325 B single-table figure, about 450)",
			r.pod, before[r.pod]>>20, after>>20, (after-before[r.pod])/int64(n))
	}
	// the generated attributes arrive unchanged through three reflectors
	probe := routes[0]
	got := birdCmd(t, receiver, "show route "+probe.Prefix.String()+" all", 5*time.Second)
	var path []string
	for _, as := range probe.Path {
		path = append(path, strconv.FormatUint(uint64(as), 10))
	}
	assert.Contains(t, got, "BGP.as_path: "+strings.Join(path, " "), "the feeder's AS path, in order")

	withdraw := time.Now()
	birdCmd(t, feeder, "disable to_rr", 5*time.Second)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Zero(c, routeCount(c, receiver, "from_rr"), "receiver")
		assert.Zero(c, routeCount(c, core.lab, ""), "core")
	}, 10*time.Minute, 200*time.Millisecond)
	logScale(t, "withdrawn at the feeder: gone at the core and the receiver after %s", time.Since(withdraw).Round(100*time.Millisecond))
}

type transferTimes struct{ first, all time.Duration }

// transfer enables a feeder session and times the receiver's table
// filling from it.
func transfer(t *testing.T, feeder *birdlab.Instance, session string, receiver *birdlab.Instance, from string, n int) transferTimes {
	t.Helper()
	start := time.Now()
	birdCmd(t, feeder, "enable "+session, 5*time.Second)
	var tt transferTimes
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got := routeCount(c, receiver, from)
		if got > 0 && tt.first == 0 {
			tt.first = time.Since(start).Round(10 * time.Millisecond)
		}
		assert.Equal(c, n, got)
	}, 15*time.Minute, 100*time.Millisecond)
	tt.all = time.Since(start).Round(10 * time.Millisecond)
	return tt
}

var countRE = regexp.MustCompile(`(\d+) of \d+ routes`)

// routeCount is the number of routes in master4 from a protocol (every
// route when protocol is empty).
func routeCount(t assert.TestingT, in *birdlab.Instance, protocol string) int {
	cmd := "show route count"
	if protocol != "" {
		cmd = "show route protocol " + protocol + " count"
	}
	m := countRE.FindStringSubmatch(birdCmd(t, in, cmd, 30*time.Second))
	if !assert.NotNil(t, m, "%s: %s", in.Name, cmd) {
		return -1
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

func birdCmd(t assert.TestingT, in *birdlab.Instance, cmd string, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	lines, err := in.Client.Cmd(ctx, cmd)
	assert.NoError(t, err, "%s: %s", in.Name, cmd)
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Text + "\n")
	}
	return b.String()
}

// rss is the daemon's resident memory in bytes (VmRSS).
func rss(t *testing.T, in *birdlab.Instance) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", in.Pid()))
	require.NoError(t, err)
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(raw)
	require.NotNil(t, m)
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

func logScale(t *testing.T, format string, args ...any) {
	t.Helper()
	raw, _ := os.ReadFile("/proc/loadavg")
	t.Logf(format+" [load %s]", append(args, strings.Join(strings.Fields(string(raw))[:3], " "))...)
}
