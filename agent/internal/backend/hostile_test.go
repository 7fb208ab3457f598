package backend

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/testutil/fixture"
)

func TestQuoteAcceptsOnlyWhatBothDaemonsReadBack(t *testing.T) {
	for _, s := range fixture.HostileStrings(500) {
		q, err := Quote(s)
		if err != nil {
			assert.NotContains(t, err.Error(), s, "the error never carries the value (it may be a key)")
			continue
		}
		require.Equal(t, `"`+s+`"`, q)
		assert.Equal(t, 2, strings.Count(q, `"`), "%q", s)
		assert.False(t, strings.ContainsAny(s, "\\\n\r\x00"), "%q", s)
	}
	_, err := Quote("x\";\nprotocol static pwn {}")
	assert.ErrorContains(t, err, "byte 0x22 at offset 1")
}
