package bird

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/testutil/fixture"
)

// withName puts s where untrusted text reaches bird.conf: a discovered
// peer's pod name (its description) and the mesh group's TCP-MD5 key.
func withName(t *testing.T, s string) model.Model {
	m := fixture.Model(t, "region")
	for i := range m.Groups {
		if m.Groups[i].Role == model.RoleMesh {
			m.Groups[i].Neighbors = append([]model.Neighbor(nil), m.Groups[i].Neighbors...)
			m.Groups[i].Neighbors[0].Name = s
			m.Groups[i].Password = s
		}
	}
	return m
}

// No string leaves its quotes: every hostile name or key is either refused
// by the renderer, or lands only inside the strings the sentinel marks,
// and real BIRD reads the result (bird -p).
func TestHostileNamesAndKeysStayInsideTheirStrings(t *testing.T) {
	const sentinel = "Zq9sentinel"
	ref, err := Render(withName(t, sentinel), goldenOptions)
	require.NoError(t, err)
	require.GreaterOrEqual(t, strings.Count(string(ref), sentinel), 2, "the description and the key")
	rendered, refused, parsed := 0, 0, 0
	for _, s := range fixture.HostileStrings(300) {
		s = "p" + s + "p" // the renderer trims descriptions; keep s whole
		out, err := Render(withName(t, s), goldenOptions)
		if err != nil {
			refused++
			assert.NotContains(t, err.Error(), s+"\"", "the value is not echoed")
			continue
		}
		rendered++
		require.Equal(t, strings.ReplaceAll(string(ref), sentinel, s), string(out), "%q changed the configuration's structure", s)
		if strings.ContainsAny(s, ";{}#/*'") { // the ones that could have broken out
			birdParse(t, out)
			parsed++
		}
	}
	t.Logf("%d hostile strings: %d refused, %d rendered inside their quotes (%d of them parsed by bird -p)", rendered+refused, refused, rendered, parsed)
	assert.Positive(t, refused)
	assert.Positive(t, parsed)
}
