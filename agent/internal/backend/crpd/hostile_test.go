package crpd

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/testutil/fixture"
)

// withName puts s where untrusted text reaches the Junos text: a
// discovered peer's pod name (its description) and the mesh group's
// TCP-MD5 key.
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

// As for BIRD: a hostile name or key is refused or stays inside its
// quotes (the digest aside, the text is the sentinel's with the value put
// in), and the fake server's Junos syntax check reads the result.
func TestHostileNamesAndKeysStayInsideTheirStrings(t *testing.T) {
	const sentinel = "Zq9sentinel"
	ref, err := Render(withName(t, sentinel))
	require.NoError(t, err)
	require.GreaterOrEqual(t, strings.Count(string(ref), sentinel), 2, "the description and the key")
	strip := func(b []byte) string { d := DigestOf(b); return strings.Replace(string(b), d, "DIGEST", 1) }
	rendered, refused := 0, 0
	for _, s := range fixture.HostileStrings(300) {
		s = "p" + s + "p" // the renderer trims descriptions; keep s whole
		out, err := Render(withName(t, s))
		if err != nil {
			refused++
			continue
		}
		rendered++
		require.Equal(t, strings.ReplaceAll(strip(ref), sentinel, s), strip(out), "%q changed the configuration's structure", s)
		assert.Empty(t, junosSyntaxError(string(out)), "%q", s)
	}
	t.Logf("%d hostile strings: %d refused, %d rendered inside their quotes", rendered+refused, refused, rendered)
	assert.Positive(t, refused)
	assert.Positive(t, rendered)
}
