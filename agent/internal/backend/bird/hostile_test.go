package bird

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/testutil/fixture"
)

// No string leaves its quotes: every hostile name or key is refused by the
// renderer or lands only inside its strings, and real BIRD reads the
// result (bird -p) whenever the value holds a character that could have
// ended a statement.
func TestHostileNamesAndKeysStayInsideTheirStrings(t *testing.T) {
	parsed := 0
	render := func(m model.Model) (string, error) {
		out, err := Render(m, goldenOptions)
		return string(out), err
	}
	fixture.HostileRenders(t, render, func(t *testing.T, out, s string) {
		if strings.ContainsAny(s, ";{}#/*'") {
			birdParse(t, []byte(out))
			parsed++
		}
	})
	t.Logf("%d of them parsed by bird -p", parsed)
	assert.Positive(t, parsed)
}
