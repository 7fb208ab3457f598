package walk

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func catalog(t *testing.T) []Change {
	policy, err := ExamplePolicy("../../../examples/2regions-hrr/values.yaml")
	require.NoError(t, err)
	require.Len(t, policy, 3, "the example's boundary policy")
	return Catalog(policy)
}

func TestTheSameSeedWalksTheSameWay(t *testing.T) {
	c := catalog(t)
	a, b := Walk(c, 7, 200), Walk(c, 7, 200)
	assert.Equal(t, a, b)
	assert.NotEqual(t, a, Walk(c, 8, 200))
	kinds := map[string]bool{}
	for _, s := range a {
		kinds[s.Change.Kind] = true
	}
	assert.Len(t, kinds, 7, "200 steps reach every kind of change: %v", kinds)
}

// Every step of a walk is values helm takes: the chart's schema and
// templates render each release as the step leaves it.
func TestEveryStepRenders(t *testing.T) {
	root, err := filepath.Abs("../../..")
	require.NoError(t, err)
	files := map[string][]string{"core": {"values-core.yaml"}, "lothlorien": {"values.yaml", "values-lothlorien.yaml"}, "mirkwood": {"values.yaml", "values-mirkwood.yaml"}}
	for _, s := range Walk(catalog(t), 1, 20) {
		args := []string{"template", s.Release, filepath.Join(root, "charts/meshrr"), "-n", s.Release}
		for _, f := range files[s.Release] {
			args = append(args, "-f", filepath.Join(root, "examples/2regions-hrr", f))
		}
		for k, v := range s.Set {
			args = append(args, "--set", k+"="+v)
		}
		for k, v := range s.JSON {
			args = append(args, "--set-json", k+"="+v)
		}
		out, err := exec.Command("helm", args...).CombinedOutput()
		require.NoError(t, err, "%s: helm %s: %s", s, strings.Join(args, " "), out)
	}
}

func TestTheConfusionTable(t *testing.T) {
	c := Confusion{}
	c.Add("untouched", "untouched")
	c.Add("untouched", "untouched")
	c.Add("refresh", "refresh")
	c.Add("refresh", "untouched")
	c.Add("untouched", "absent") // an outcome outside the list gets a row and a column
	assert.Equal(t, 2, c.Wrong())
	assert.Equal(t, `predicted \ observed   untouched   refresh     reset     added   removed  replaced    absent
untouched                      2         0         0         0         0         0         1
refresh                        1         1         0         0         0         0         0
reset                          0         0         0         0         0         0         0
added                          0         0         0         0         0         0         0
removed                        0         0         0         0         0         0         0
replaced                       0         0         0         0         0         0         0
absent                         0         0         0         0         0         0         0
`, c.String())
}
