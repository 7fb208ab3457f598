package crpd

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/model"
)

func TestUsageCountsPlannedAndSpawnedPeersAndReceivedRoutes(t *testing.T) {
	a := netip.MustParseAddr
	m := model.Model{Groups: []model.PeerGroup{
		{Name: "mesh", Role: model.RoleMesh, Neighbors: []model.Neighbor{{Addr: a("10.0.0.2")}, {Addr: a("fd00::2")}}},
		{Name: "upstream", Role: model.RoleUpstream, Neighbors: []model.Neighbor{{Addr: a("10.1.0.1")}}},
		{Name: "dcs", Role: model.RoleClients, Ranges: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
	}}
	ss := []model.Session{
		{Peer: a("10.0.0.2"), Imported: 1000},     // planned: counted once
		{Peer: a("192.0.2.7"), Imported: 3500000}, // spawned from the range
		{Peer: a("192.0.2.8"), Imported: 600000},
	}
	b := New(nil, t.TempDir()+"/state").WithLimits(func() Limits { return Limits{BGPPeers: 4, RIBEntries: 4000000} })
	got := b.Usage(m, ss)
	assert.Equal(t, []backend.Usage{
		{Resource: "bgp-peers", Used: 5, Limit: 4},
		{Resource: "rib-entries", Used: 4101000, Limit: 4000000},
	}, got)
	assert.True(t, got[0].Over())
	assert.True(t, got[1].Over())
	assert.False(t, backend.Usage{Used: 99}.Over(), "0 is no limit")
}
