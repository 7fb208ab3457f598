//go:build scale

package bird_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
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
	"github.com/meshrr/meshrr/agent/synthtable"
)

// scaleFamily is one address family of the scale suite: its loopback
// addresses (RRs in the core's client range, routers in the regions'),
// BIRD's channel and table, and the table generated for it.
type scaleFamily struct {
	name                   string
	core, rrA, rrB         string
	feeder, receiver       string
	coreRange, routerRange string
	channel, table         string
	spec                   func(n int) synthtable.Spec
}

var (
	scaleIPv4 = scaleFamily{
		name: "IPv4", core: "127.0.10.145", rrA: "127.0.10.146", rrB: "127.0.10.147",
		feeder: "127.0.10.161", receiver: "127.0.10.162",
		coreRange: "127.0.10.144/28", routerRange: "127.0.10.160/28",
		channel: "ipv4", table: "master4",
		spec: func(n int) synthtable.Spec { return synthtable.Spec{Seed: 1, IPv4: n, CommunityShare: 0.3} },
	}
	// the IPv6 addresses exist in the network namespace make scale-loopback
	// runs the suite in (unshare --net; nothing on the host changes)
	scaleIPv6 = scaleFamily{
		name: "IPv6", core: "fd00:10::145", rrA: "fd00:10::146", rrB: "fd00:10::147",
		feeder: "fd00:10::161", receiver: "fd00:10::162",
		coreRange: "fd00:10::140/124", routerRange: "fd00:10::160/124",
		channel: "ipv6", table: "master6",
		spec: func(n int) synthtable.Spec { return synthtable.Spec{Seed: 1, IPv6: n, CommunityShare: 0.3} },
	}
)

const (
	scaleCoreCfg = `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000, routerID: 10.0.10.145}
mesh: {group: core.core}
clients: [{name: regions, ranges: ["%s"]}]
`
	scaleRegionCfg = `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000, routerID: %s}
mesh: {group: %s}
upstream: {group: core.core, namespace: core, maxPeers: 1}
clients: [{name: routers, ranges: ["%s"]}]
`
)

// scaleRoutes is MESHRR_SCALE_ROUTES (or MESHRR_SCALE_ROUTES6 for IPv6),
// else the given default.
func scaleRoutes(t *testing.T, env string, def int) int {
	v := os.Getenv(env)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%s: a number of routes", env)
	return n
}

// TestScaleTableThroughThreeRRs (make scale-loopback; MESHRR_SCALE_ROUTES
// sets the table size, default a full IPv4 table of 1,000,000 routes):
// real BIRD daemons on loopback, the RRs configured by meshrr's plan and
// this backend as in a cluster. See runScale.
func TestScaleTableThroughThreeRRs(t *testing.T) {
	runScale(t, scaleIPv4, scaleRoutes(t, "MESHRR_SCALE_ROUTES", 1_000_000))
}

// TestScaleIPv6TableThroughThreeRRs: the same with an IPv6 table
// (MESHRR_SCALE_ROUTES6, default 200,000: /48 dominant) over IPv6
// sessions, on fd00:10::/64 addresses that make scale-loopback adds to the
// loopback of a network namespace of its own.
func TestScaleIPv6TableThroughThreeRRs(t *testing.T) {
	for _, a := range []string{scaleIPv6.core, scaleIPv6.rrA, scaleIPv6.rrB, scaleIPv6.feeder, scaleIPv6.receiver} {
		l, err := net.Listen("tcp", "["+a+"]:0")
		require.NoError(t, err, "the IPv6 scale suite needs %s on loopback: run it with make scale-loopback (a network namespace with the addresses)", a)
		l.Close()
	}
	runScale(t, scaleIPv6, scaleRoutes(t, "MESHRR_SCALE_ROUTES6", 200_000))
}

// runScale: a feeder announces the generated table to a receiver twice,
// measured in the same run: directly (one session, the physical baseline
// of this machine) and through region RR -> core RR -> region RR. Then the
// table is withdrawn at the feeder and the time until it is gone at the
// receiver and the core is measured; each RR's BIRD resident memory is
// read before and after the load.
func runScale(t *testing.T, f scaleFamily, n int) {
	routes := synthtable.Generate(f.spec(n))
	require.Len(t, routes, n)

	addrs := map[string]string{"core-0": f.core, "rr-a": f.rrA, "rr-b": f.rrB}
	snap := model.Snapshot{Synced: true, Members: []model.Member{
		{Namespace: "core", Group: "core.core", Pod: "core-0", Side: "a", Addrs: []netip.Addr{netip.MustParseAddr(f.core)}},
		{Namespace: "a", Group: "a.a", Pod: "rr-a", UpstreamGroup: "core.core", UpstreamNamespace: "core", Addrs: []netip.Addr{netip.MustParseAddr(f.rrA)}},
		{Namespace: "b", Group: "b.b", Pod: "rr-b", UpstreamGroup: "core.core", UpstreamNamespace: "core", Addrs: []netip.Addr{netip.MustParseAddr(f.rrB)}},
	}}
	core := &rr{lab: birdlab.Start(t, "core-0", f.core), pod: "core-0", ns: "core", cfg: fmt.Sprintf(scaleCoreCfg, f.coreRange)}
	rrA := &rr{lab: birdlab.Start(t, "rr-a", f.rrA), pod: "rr-a", ns: "a", cfg: fmt.Sprintf(scaleRegionCfg, "10.0.10.146", "a.a", f.routerRange)}
	rrB := &rr{lab: birdlab.Start(t, "rr-b", f.rrB), pod: "rr-b", ns: "b", cfg: fmt.Sprintf(scaleRegionCfg, "10.0.10.147", "b.b", f.routerRange)}
	rrs := []*rr{rrA, core, rrB}
	for _, r := range rrs {
		r.apply(t, snap, r.cfg)
	}
	receiver := birdlab.Start(t, "receiver", f.receiver)
	receiver.AddInclude(t, "receiver", fmt.Sprintf(`
protocol bgp from_rr {
  local %[1]s as 65000; neighbor %[2]s as 65000; strict bind yes;
  connect delay time 1; connect retry time 1;
  %[4]s { import all; export none; };
}
protocol bgp from_feeder {
  local %[1]s as 65000; neighbor %[3]s as 65000; strict bind yes; passive yes;
  %[4]s { import all; export none; };
}
`, f.receiver, addrs["rr-b"], f.feeder, f.channel))

	feeder := birdlab.Start(t, "feeder", f.feeder)
	// a full table takes the daemons longer than birdlab's 5 s per command
	for _, in := range []*birdlab.Instance{feeder, receiver, core.lab} {
		in.Client = bird.NewClient(in.Socket, 10*time.Minute)
	}
	var conf bytes.Buffer
	require.NoError(t, synthtable.WriteBIRD(&conf, routes))
	fmt.Fprintf(&conf, `
protocol bgp to_rr {
  local %[1]s as 65000; neighbor %[2]s as 65000; strict bind yes; disabled yes; connect delay time 1;
  %[4]s { import none; export all; };
}
protocol bgp to_receiver {
  local %[1]s as 65000; neighbor %[3]s as 65000; strict bind yes; disabled yes; connect delay time 1;
  %[4]s { import none; export all; };
}
`, f.feeder, addrs["rr-a"], f.receiver, f.channel)
	loadStart := time.Now()
	require.NoError(t, os.WriteFile(filepath.Join(feeder.IncludeDir, "feed.conf"), conf.Bytes(), 0o644))
	birdCmd(t, feeder, "configure", 10*time.Minute)
	logScale(t, "feeder: %d %s routes (%d MB of configuration) loaded in %s, feeder RSS %d MB",
		n, f.name, conf.Len()>>20, time.Since(loadStart).Round(100*time.Millisecond), rss(t, feeder)>>20)

	// every RR session up before anything is announced
	upstream := "upstream_" + strings.NewReplacer(".", "_", ":", "_").Replace(f.core)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, r := range []*rr{rrA, rrB} {
			assert.True(c, r.sessions(c)[upstream].Established(), "%s: upstream %s", r.pod, upstream)
		}
		assert.Contains(c, birdCmd(c, receiver, "show protocols from_rr", 5*time.Second), "Established")
	}, time.Minute, 200*time.Millisecond)
	before := map[string]int64{}
	for _, r := range rrs {
		before[r.pod] = rss(t, r.lab)
	}

	direct := transfer(t, feeder, "to_receiver", receiver, f.table, "from_feeder", n)
	logScale(t, "direct feeder -> receiver: first route after %s, all %d after %s", direct.first, n, direct.all)
	birdCmd(t, feeder, "disable to_receiver", 5*time.Second)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Zero(c, routeCount(c, receiver, f.table, "from_feeder"))
	}, 5*time.Minute, time.Second)

	hops := transfer(t, feeder, "to_rr", receiver, f.table, "from_rr", n)
	logScale(t, "feeder -> region RR -> core RR -> region RR -> receiver: first route after %s, all %d after %s; %.2fx the direct transfer (goal <= 1.5x)",
		hops.first, n, hops.all, hops.all.Seconds()/direct.all.Seconds())
	for _, r := range rrs {
		after := rss(t, r.lab)
		logScale(t, "%s: BIRD RSS %d MB -> %d MB with the table: %d bytes per route (goal <= 1.4x BIRD's own ~325 B single-table figure, about 450)",
			r.pod, before[r.pod]>>20, after>>20, (after-before[r.pod])/int64(n))
	}
	// the generated attributes arrive unchanged through three reflectors
	probe := routes[0]
	got := birdCmd(t, receiver, "show route "+probe.Prefix.String()+" table "+f.table+" all", 5*time.Second)
	var path []string
	for _, as := range probe.Path {
		path = append(path, strconv.FormatUint(uint64(as), 10))
	}
	assert.Contains(t, got, birdlab.Attr("as_path")+": "+strings.Join(path, " "), "the feeder's AS path, in order")

	withdraw := time.Now()
	birdCmd(t, feeder, "disable to_rr", 5*time.Second)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Zero(c, routeCount(c, receiver, f.table, "from_rr"), "receiver")
		assert.Zero(c, routeCount(c, core.lab, f.table, ""), "core")
	}, 10*time.Minute, 200*time.Millisecond)
	logScale(t, "withdrawn at the feeder: gone at the core and the receiver after %s", time.Since(withdraw).Round(100*time.Millisecond))
}

type transferTimes struct{ first, all time.Duration }

// transfer enables a feeder session and times the receiver's table
// filling from it.
func transfer(t *testing.T, feeder *birdlab.Instance, session string, receiver *birdlab.Instance, tab, from string, n int) transferTimes {
	t.Helper()
	start := time.Now()
	birdCmd(t, feeder, "enable "+session, 5*time.Second)
	var tt transferTimes
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got := routeCount(c, receiver, tab, from)
		if got > 0 && tt.first == 0 {
			tt.first = time.Since(start).Round(10 * time.Millisecond)
		}
		assert.Equal(c, n, got)
	}, 15*time.Minute, 100*time.Millisecond)
	tt.all = time.Since(start).Round(10 * time.Millisecond)
	return tt
}

var countRE = regexp.MustCompile(`(\d+) of \d+ routes`)

// routeCount is the number of routes in a table from a protocol (every
// route when protocol is empty).
func routeCount(t assert.TestingT, in *birdlab.Instance, tab, protocol string) int {
	cmd := "show route table " + tab + " count"
	if protocol != "" {
		cmd = "show route table " + tab + " protocol " + protocol + " count"
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
