package state

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/model"
)

func TestTheStateOutlivesTheStoreAndABadFileIsIgnored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	s, err := Open(path)
	require.NoError(t, err, "a missing file is a new pod")
	assert.Empty(t, s.Get().Applied)

	since := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	peer := netip.MustParseAddr("10.9.0.5")
	require.NoError(t, s.Update(func(st *State) {
		st.Applied = map[model.Role][]model.Neighbor{model.RoleMesh: {{Addr: netip.MustParseAddr("10.0.0.2"), ASN: 65000, Name: "ns/p1"}}}
		st.HeldSince = since
		st.Disabled = map[netip.Addr]Disabled{peer: {Group: "edge", Since: since}}
	}))
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, s.Update(func(*State) {}))
	again, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, info.ModTime(), again.ModTime(), "an unchanged state is not written again")

	s2, err := Open(path)
	require.NoError(t, err)
	got := s2.Get()
	assert.Equal(t, "ns/p1", got.Applied[model.RoleMesh][0].Name)
	assert.True(t, got.HeldSince.Equal(since))
	assert.Equal(t, model.GroupName("edge"), got.Disabled[peer].Group)

	for content, want := range map[string]string{
		`{"version": 99}`: "has version 99",
		`{"version": 1, "disabled": {"not-an-address": {}}}`: "is not valid",
		"\x00\x01": "is not valid",
	} {
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		s3, err := Open(path)
		assert.ErrorContains(t, err, want)
		require.NotNil(t, s3, "usable all the same")
		assert.Empty(t, s3.Get().Disabled)
	}

	var none *Store
	assert.NoError(t, none.Update(func(st *State) { st.HeldSince = since }), "nil keeps nothing")
	assert.True(t, none.Get().HeldSince.IsZero())
}
