package reconcile

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// A rollover that cannot be read is refused by name (the Secret's key and
// what to write), never with a key's value, and the group keeps its
// current key: a careless edit of the Secret never takes a session down.
func TestKeyRolloverThatCannotBeReadKeepsTheCurrentKey(t *testing.T) {
	from := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	window := "2026-12-07T08:00:00Z/2026-12-07T08:10:00Z"
	for _, tc := range []struct {
		name   string
		files  map[string]string
		refuse string // "": a valid rollover
	}{
		{"valid", map[string]string{"mesh.next": "next-secret\n", "mesh.next-window": window + "\n"}, ""},
		{"next without window", map[string]string{"mesh.next": "next-secret"}, `key "mesh.next" has no key "mesh.next-window" beside it: add FROM/UNTIL`},
		{"window without next", map[string]string{"mesh.next-window": window}, `key "mesh.next-window" has no key "mesh.next" beside it`},
		{"one time only", map[string]string{"mesh.next": "next-secret", "mesh.next-window": "2026-12-07T08:00:00Z"}, `key "mesh.next-window" must be FROM/UNTIL, two RFC 3339 times`},
		{"not a time", map[string]string{"mesh.next": "next-secret", "mesh.next-window": "8:00/8:10"}, `key "mesh.next-window" must be FROM/UNTIL`},
		{"until before from", map[string]string{"mesh.next": "next-secret", "mesh.next-window": "2026-12-07T08:10:00Z/2026-12-07T08:00:00Z"}, `UNTIL not before FROM`},
		{"malformed next key", map[string]string{"mesh.next": "next\"secret", "mesh.next-window": window}, `key "mesh.next" must be 1-80 printable ASCII characters`},
		{"empty next key", map[string]string{"mesh.next": "\n", "mesh.next-window": window}, `key "mesh.next" must be 1-80`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{"mesh": "current-secret\n"}
			for k, v := range tc.files {
				files[k] = v
			}
			for k, v := range files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600))
			}
			c, err := config.Parse([]byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core}\npasswordSecret: core-keys\npasswordDir: " + dir + "\n"))
			require.NoError(t, err)
			keys, refused, rollover := readPasswords(c)
			assert.Empty(t, refused, "the current key is valid: the group is never refused for its rollover")
			if tc.refuse == "" {
				assert.Equal(t, model.Key{Current: "current-secret", Next: "next-secret", From: from, Until: from.Add(10 * time.Minute)}, keys[model.GroupMesh])
				assert.Empty(t, rollover)
				return
			}
			assert.Equal(t, model.Key{Current: "current-secret"}, keys[model.GroupMesh], "the sessions keep the current key")
			require.Contains(t, rollover, model.GroupMesh)
			assert.Contains(t, rollover[model.GroupMesh], "Secret core-keys: ")
			assert.Contains(t, rollover[model.GroupMesh], tc.refuse)
			assert.Contains(t, rollover[model.GroupMesh], `the sessions keep key "mesh"`)
			assert.NotContains(t, rollover[model.GroupMesh], "secret", "a key's value in the message")
		})
	}
}
