package bird

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/testutil/fixture"
)

var update = flag.Bool("update", false, "rewrite golden files")

var goldenOptions = Options{Include: []string{config.DefaultBirdInclude}, StrictBind: true}

// birdParse checks a configuration with the real `bird -p`, pointing the
// operator include at an empty directory.
func birdParse(t *testing.T, conf []byte) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "conf.d"), 0o755))
	conf = bytes.ReplaceAll(conf, []byte(config.DefaultBirdInclude), []byte(filepath.Join(dir, "conf.d", "*.conf")))
	p := filepath.Join(dir, "bird.conf")
	require.NoError(t, os.WriteFile(p, conf, 0o644))
	// every supported BIRD (make daemons: BIRD 2 as bird, BIRD 3 as
	// bird3) parses it, and warns of nothing
	for _, daemon := range []string{"bird", "bird3"} {
		out, err := exec.Command(daemon, "-p", "-c", p).CombinedOutput()
		require.NoError(t, err, "%s -p rejected the configuration (make daemons provides bird and bird3): %s\n%s", daemon, out, conf)
		require.Empty(t, string(out), "%s -p warned about the configuration:\n%s", daemon, conf)
	}
}

func TestRenderGolden(t *testing.T) {
	for _, name := range fixture.Names(t, "bird") {
		t.Run(name, func(t *testing.T) {
			got, err := Render(fixture.Model(t, name), goldenOptions)
			require.NoError(t, err)
			fixture.Golden(t, filepath.Join("testdata", name+".golden"), got, *update)
			birdParse(t, got)
		})
	}
}

// Route reflectors and route servers are not in the forwarding path: no
// rendering has a kernel protocol, so BIRD installs no route in the pod.
func TestRenderInstallsNoRoute(t *testing.T) {
	for _, name := range fixture.Names(t, "bird") {
		got, err := Render(fixture.Model(t, name), goldenOptions)
		require.NoError(t, err)
		assert.NotContains(t, string(got), "protocol kernel", name)
	}
	got, err := Render(fixture.Model(t, "routeservers"), goldenOptions)
	require.NoError(t, err)
	assert.Contains(t, string(got), "rs client;")
	assert.Contains(t, string(got), "next hop keep;")
}

func TestRenderIsDeterministic(t *testing.T) {
	m := fixture.Model(t, "region")
	a, err := Render(m, goldenOptions)
	require.NoError(t, err)
	for range 20 {
		b, err := Render(m, goldenOptions)
		require.NoError(t, err)
		require.Equal(t, a, b)
	}
}

func TestRenderRejectsModelsBIRDCannotRun(t *testing.T) {
	m := fixture.Model(t, "alone")
	m.RouterID = netip.MustParseAddr("fd00::1")
	_, err := Render(m, goldenOptions)
	require.ErrorContains(t, err, "router id")

	m = fixture.Model(t, "alone")
	m.Groups[0].Neighbors = []model.Neighbor{{Addr: netip.MustParseAddr("fd00::2"), ASN: 1}}
	_, err = Render(m, goldenOptions)
	require.ErrorContains(t, err, "no ipv6 address")
	// evpn never reaches this renderer: validation refuses it with bird
	// (config.Capabilities; TestBackendCapabilitiesAreRefusedOnce)
}

func TestProtocolNamesFitBIRDSymbols(t *testing.T) {
	long := model.PeerGroup{Name: model.GroupName(strings.Repeat("a", 32)), Role: model.RoleClients}
	name := rangeSymbol(groupSymbol(long), netip.MustParsePrefix("fd00:1234:5678:9abc:def0:1234:5678:9a00/120"))
	assert.LessOrEqual(t, len(name), 63)
	n := neighborSymbol(model.PeerGroup{Role: model.RoleUpstream}, netip.MustParseAddr("fd00:1234:5678:9abc:def0:1234:5678:9abc"))
	assert.Equal(t, "upstream_fd00_1234_5678_9abc_def0_1234_5678_9abc", n)
	assert.LessOrEqual(t, len(n), 63)
}

// BIRD 3's threads are written after the router id, in the bootstrap and
// in every rendering, and both BIRD releases parse them (BIRD 2.17
// accepts the option too); without threads nothing is written.
func TestThreadsAreRendered(t *testing.T) {
	o := goldenOptions
	o.Threads = 4
	got, err := Render(fixture.Model(t, "region"), o)
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^router id [0-9.]+;\nthreads 4;$`, string(got))
	birdParse(t, got)
	boot := Bootstrap(netip.MustParseAddr("10.244.1.5"), o)
	assert.Contains(t, string(boot), "router id 10.244.1.5;\nthreads 4;\n")
	birdParse(t, boot)
	for _, name := range fixture.Names(t, "bird") {
		got, err := Render(fixture.Model(t, name), goldenOptions)
		require.NoError(t, err)
		assert.NotContains(t, string(got), "threads", name)
	}
	assert.NotContains(t, string(Bootstrap(netip.MustParseAddr("10.244.1.5"), goldenOptions)), "threads")
}
