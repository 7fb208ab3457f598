package bird

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/backend"
)

// captured is a reply captured from a real daemon's control socket
// (testdata/FILE: the socket's bytes, the greeting first).
func captured(t *testing.T, file string) []Line {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", file))
	require.NoError(t, err)
	r := bufio.NewReader(bytes.NewReader(raw))
	_, err = readReply(r) // the greeting
	require.NoError(t, err)
	lines, err := readReply(r)
	require.NoError(t, err)
	return lines
}

// statusReply is a captured `show status` reply of a release.
func statusReply(t *testing.T, version string) []Line {
	t.Helper()
	return captured(t, "show-status-"+version+".txt")
}

// The version each real daemon names, and whether meshrr supports it:
// Debian 12's BIRD 2.0.12 is refused (it rejects `authentication md5`,
// which the renderer writes), Debian 13's 2.17.6 and 3.1.8 are supported.
func TestVersionFromRealDaemons(t *testing.T) {
	for version, supported := range map[string]bool{"2.0.12": false, "2.17.6": true, "3.1.8": true} {
		lines := statusReply(t, version)
		v, err := ParseVersion(lines)
		require.NoError(t, err, version)
		assert.Equal(t, version, v.String())
		_, err = parseStarted(lines)
		assert.NoError(t, err, "%s: the start time reads from the same reply", version)
		err = v.Supported()
		if supported {
			assert.NoError(t, err, version)
			continue
		}
		var u *backend.UnsupportedError
		if assert.ErrorAs(t, err, &u, version) {
			assert.Equal(t, "BIRD "+version+" is not supported (meshrr supports BIRD 2.17 or a later 2.x, or BIRD 3.1 or a later 3.x): run the daemon image the chart ships (images.bird; images.bird3 for backend.bird.version 3)", err.Error())
		}
	}
}

// Versions outside the supported ranges are refused; replies without a
// readable version are errors, not a guess.
func TestVersionRangesAndBadReplies(t *testing.T) {
	for _, tc := range []struct {
		v  Version
		ok bool
	}{{Version{2, 16, 1}, false}, {Version{2, 17, 0}, true}, {Version{2, 18, 0}, true}, {Version{3, 0, 2}, false}, {Version{3, 1, 0}, true}, {Version{3, 2, 1}, true}, {Version{1, 6, 8}, false}, {Version{4, 0, 0}, false}} {
		assert.Equal(t, tc.ok, tc.v.Supported() == nil, "%s", tc.v)
	}
	for name, lines := range map[string][]Line{
		"no version line": {{Code: 13, Text: "Daemon is up and running"}},
		"not BIRD":        {{Code: 1000, Text: "FRRouting 10.3"}},
		"no number":       {{Code: 1000, Text: "BIRD x.y"}},
	} {
		_, err := ParseVersion(lines)
		assert.Error(t, err, name)
	}
	v, err := ParseVersion([]Line{{Code: 1000, Text: "BIRD v3.2"}})
	require.NoError(t, err)
	assert.Equal(t, Version{3, 2, 0}, v)
	// bird --version's words (on stderr, with a newline)
	v, err = ReadVersion("BIRD version 2.17.6\n")
	require.NoError(t, err)
	assert.Equal(t, Version{2, 17, 6}, v)
	_, err = ReadVersion("bird: unknown option")
	assert.Error(t, err)
}

// A supported daemon of the other release line than the configuration
// names (backend.bird.version) is refused with what to do; 0 takes any.
func TestVersionOfTheConfiguredLine(t *testing.T) {
	v217, v318 := Version{2, 17, 6}, Version{3, 1, 8}
	assert.NoError(t, v217.Of(0))
	assert.NoError(t, v217.Of(2))
	assert.NoError(t, v318.Of(3))
	err := v217.Of(3)
	var u *backend.UnsupportedError
	require.ErrorAs(t, err, &u)
	assert.Equal(t, "BIRD 2.17.6 is not supported (meshrr supports BIRD 3 here: backend.bird.version is 3): run a BIRD 3 image (images.bird for 2, images.bird3 for 3), or set backend.bird.version to 2", err.Error())
	require.ErrorAs(t, v318.Of(2), &u)
	assert.ErrorAs(t, Version{2, 0, 12}.Of(2), &u, "an unsupported release stays refused whatever the line")
}
