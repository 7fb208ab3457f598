package crpd

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/testutil/fixture"
)

// As for BIRD: a hostile name or key is refused or stays inside its quotes
// (the digest aside), and the fake server's Junos syntax check reads the
// result.
func TestHostileNamesAndKeysStayInsideTheirStrings(t *testing.T) {
	render := func(m model.Model) (string, error) {
		out, err := Render(m)
		return strings.Replace(string(out), DigestOf(out), "DIGEST", 1), err
	}
	fixture.HostileRenders(t, render, func(t *testing.T, out, s string) {
		assert.Empty(t, junosSyntaxError(out), "%q", s)
	})
}
