package model

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCommunityAcceptsStandardAndLargeAndRejectsOverflow(t *testing.T) {
	c, err := ParseCommunity("65000:101")
	require.NoError(t, err)
	assert.Equal(t, Community{A: 65000, B: 101}, c)
	assert.Equal(t, "65000:101", c.String())

	c, err = ParseCommunity("4200000000:1:2")
	require.NoError(t, err)
	assert.Equal(t, Community{Large: true, A: 4200000000, B: 1, C: 2}, c)
	assert.Equal(t, "4200000000:1:2", c.String())

	for _, bad := range []string{"", "65000", "70000:1", "1:70000", "a:b", "1:2:3:4", "-1:2"} {
		_, err := ParseCommunity(bad)
		assert.Error(t, err, bad)
	}
}

func TestParseASNRangeRejectsReservedAndReversed(t *testing.T) {
	r, err := ParseASNRange("65100-65199")
	require.NoError(t, err)
	assert.Equal(t, ASNRange{65100, 65199}, r)
	assert.Equal(t, "65100-65199", r.String())
	r, err = ParseASNRange("65200")
	require.NoError(t, err)
	assert.Equal(t, "65200", r.String())
	for _, bad := range []string{"0", "23456", "4294967296", "65199-65100", "x", "1-"} {
		_, err := ParseASNRange(bad)
		assert.Error(t, err, bad)
	}
}

func TestFamiliesFollowNeighborsAndRanges(t *testing.T) {
	g := PeerGroup{
		Neighbors: []Neighbor{{Addr: netip.MustParseAddr("fd00::1")}},
		Ranges:    []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	}
	assert.Equal(t, []Family{IPv4, IPv6}, g.Families())
	assert.Equal(t, IPv4, FamilyOf(netip.MustParseAddr("::ffff:10.0.0.1")))
}

// The mesh and upstream groups are named by their roles; a client group
// named like a role is impossible (validation reserves the names).
func TestSessionRoles(t *testing.T) {
	assert.True(t, Session{Group: "mesh"}.In(RoleMesh))
	assert.False(t, Session{Group: "mesh"}.In(RoleUpstream))
	assert.False(t, Session{Group: "routers"}.In(RoleClients), "a client group is named by its own name")
	assert.False(t, Session{}.In(RoleClients))
	assert.True(t, GroupUpstream.Meshed())
	assert.True(t, GroupMesh.Meshed())
	assert.False(t, GroupName("routers").Meshed())
	assert.False(t, GroupName("").Meshed())
	assert.False(t, GroupDownstream.Meshed(), "region RRs admitted below a core are not its mesh or upstream")
	assert.True(t, RoleMesh.Meshed())
	assert.True(t, RoleUpstream.Meshed())
	assert.False(t, RoleClients.Meshed())
	assert.Equal(t, GroupMesh, RoleMesh.Group())
	assert.Equal(t, GroupUpstream, RoleUpstream.Group())
	assert.Equal(t, GroupName(""), RoleClients.Group())
}

// The sessions command's JSON (read by the e2e and by operators' scripts)
// keeps "established" beside the daemon's state word.
func TestSessionJSONCarriesEstablishedBesideTheState(t *testing.T) {
	for state, up := range map[SessionState]bool{StateEstablished: true, StateActive: false, "OpenConfirm": false, "": false} {
		b, err := json.Marshal(Session{Name: "mesh_10_0_0_2", Group: GroupMesh, Peer: netip.MustParseAddr("10.0.0.2"), State: state})
		require.NoError(t, err)
		var got map[string]any
		require.NoError(t, json.Unmarshal(b, &got))
		assert.Equal(t, up, got["established"], "%s: %s", state, b)
		assert.Equal(t, string(state), got["state"])
		assert.Equal(t, "mesh", got["group"])
		assert.Equal(t, "10.0.0.2", got["peer"])
	}
}
