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
	"sigs.k8s.io/yaml"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/plan"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fixture is a golden test input: the agent config, the pod and what
// discovery found.
type fixture struct {
	Self struct {
		Name      string       `json:"name"`
		Namespace string       `json:"namespace"`
		Addrs     []netip.Addr `json:"addrs"`
	} `json:"self"`
	Members []struct {
		Namespace         string       `json:"namespace"`
		Group             string       `json:"group"`
		Side              string       `json:"side"`
		Pod               string       `json:"pod"`
		Node              string       `json:"node"`
		Addrs             []netip.Addr `json:"addrs"`
		UpstreamGroup     string       `json:"upstreamGroup"`
		UpstreamNamespace string       `json:"upstreamNamespace"`
	} `json:"members"`
	Config map[string]any `json:"config"`
}

func modelFromFixture(t *testing.T, path string) model.Model {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var f fixture
	require.NoError(t, yaml.UnmarshalStrict(raw, &f))
	cy, err := yaml.Marshal(f.Config)
	require.NoError(t, err)
	cfg, err := config.Parse(cy)
	require.NoError(t, err)
	in := plan.Input{Config: cfg, Self: plan.Self{Name: f.Self.Name, Namespace: f.Self.Namespace, Addrs: f.Self.Addrs}}
	in.Snapshot.Synced = true
	for _, m := range f.Members {
		in.Snapshot.Members = append(in.Snapshot.Members, model.Member{
			Namespace: m.Namespace, Group: m.Group, Side: m.Side, Pod: m.Pod, Node: m.Node, Addrs: m.Addrs,
			UpstreamGroup: m.UpstreamGroup, UpstreamNamespace: m.UpstreamNamespace,
		})
	}
	res, err := plan.Build(in)
	require.NoError(t, err)
	return res.Model
}

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
	out, err := exec.Command("bird", "-p", "-c", p).CombinedOutput()
	require.NoError(t, err, "bird -p rejected the configuration: %s\n%s", out, conf)
}

func TestRenderGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.input.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, inputs)
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".input.yaml")
		t.Run(name, func(t *testing.T) {
			got, err := Render(modelFromFixture(t, in), goldenOptions)
			require.NoError(t, err)
			golden := filepath.Join("testdata", name+".golden.conf")
			if *update {
				require.NoError(t, os.WriteFile(golden, got, 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test ./agent/internal/backend/bird -run TestRenderGolden -update")
			assert.Equal(t, string(want), string(got))
			birdParse(t, got)
		})
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	m := modelFromFixture(t, "testdata/region.input.yaml")
	a, err := Render(m, goldenOptions)
	require.NoError(t, err)
	for range 20 {
		b, err := Render(m, goldenOptions)
		require.NoError(t, err)
		require.Equal(t, a, b)
	}
}

func TestRenderRejectsModelsBIRDCannotRun(t *testing.T) {
	m := modelFromFixture(t, "testdata/alone.input.yaml")
	m.RouterID = netip.MustParseAddr("fd00::1")
	_, err := Render(m, goldenOptions)
	require.ErrorContains(t, err, "router id")

	m = modelFromFixture(t, "testdata/alone.input.yaml")
	m.Groups[0].Neighbors = []model.Neighbor{{Addr: netip.MustParseAddr("fd00::2"), ASN: 1}}
	_, err = Render(m, goldenOptions)
	require.ErrorContains(t, err, "no ipv6 address")
}

func TestProtocolNamesFitBIRDSymbols(t *testing.T) {
	long := model.PeerGroup{Name: strings.Repeat("a", 32), Role: model.RoleClients}
	name := rangeSymbol(groupSymbol(long), netip.MustParsePrefix("fd00:1234:5678:9abc:def0:1234:5678:9a00/120"))
	assert.LessOrEqual(t, len(name), 63)
	n := neighborSymbol(model.PeerGroup{Role: model.RoleUpstream}, netip.MustParseAddr("fd00:1234:5678:9abc:def0:1234:5678:9abc"))
	assert.Equal(t, "upstream_fd00_1234_5678_9abc_def0_1234_5678_9abc", n)
	assert.LessOrEqual(t, len(n), 63)
}
