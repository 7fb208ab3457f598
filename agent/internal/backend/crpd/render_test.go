package crpd

import (
	"flag"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/testutil/fixture"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestRenderGolden renders every shared topology. No Junos parser exists
// here: the goldens were reviewed against Juniper's documented statements
// (groups/replace:, protocols bgp group type/local-address/cluster/allow/
// multihop ttl no-nexthop-change/family inet(6) unicast/family evpn
// signaling/peer-as-list/import/export/neighbor, apply-macro, routing-options
// forwarding-table export, policy-options as-list/community/policy-statement
// term from (community, route-filter exact/upto, protocol)/then).
func TestRenderGolden(t *testing.T) {
	for _, name := range fixture.Names(t, "crpd") {
		t.Run(name, func(t *testing.T) {
			got, err := Render(fixture.Model(t, name))
			require.NoError(t, err)
			fixture.Golden(t, filepath.Join("testdata", name+".golden"), got, *update)
			assert.Equal(t, strings.Count(string(got), "{"), strings.Count(string(got), "}"), "braces balance")
		})
	}
}

func TestRenderUsesTheSubtractedAllowList(t *testing.T) {
	out, err := Render(fixture.Model(t, "tiers"))
	require.NoError(t, err)
	s := string(out)
	assert.Contains(t, s, "allow [ 10.1.0.0/16 ];")
	assert.Contains(t, s, "peer-as-list MESHRR-dcs-peer-as;")
	assert.Contains(t, s, "as-list MESHRR-dcs-peer-as members [ 65100-65199 65300 ];")
	assert.Contains(t, s, "no-nexthop-change;")

	m := model.Model{ASN: 65000, RouterID: netip.MustParseAddr("10.0.0.1"), LocalAddrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")},
		Groups: []model.PeerGroup{
			{Name: "mesh", Role: model.RoleMesh, Neighbors: []model.Neighbor{{Addr: netip.MustParseAddr("10.0.0.2"), ASN: 65000}}},
			{Name: "c", Role: model.RoleClients, RRClient: true, ClusterID: netip.MustParseAddr("10.0.0.1"),
				Ranges: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/30")},
				Allow:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/31"), netip.MustParsePrefix("10.0.0.3/32")}},
		}}
	out, err = Render(m)
	require.NoError(t, err)
	assert.Contains(t, string(out), "allow [ 10.0.0.0/31 10.0.0.3/32 ];", "the mesh peer 10.0.0.2 is not in the client group's allow list")
	assert.Contains(t, string(out), "neighbor 10.0.0.2;")
}

func TestRenderRejectsWhatJunosCannotExpress(t *testing.T) {
	m := fixture.Model(t, "alone")
	m.RouterID = netip.MustParseAddr("fd00::1")
	_, err := Render(m)
	require.ErrorContains(t, err, "router id")

	m = fixture.Model(t, "alone")
	m.Groups[0].Export = model.Policy{Rules: []model.Rule{{Name: "x", Match: model.Match{DefaultRoute: true, Prefixes: []model.PrefixMatch{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), MaxLen: 8}}}, Action: model.Action{Accept: true}}}}
	_, err = Render(m)
	require.ErrorContains(t, err, "ORs route-filters")
}
