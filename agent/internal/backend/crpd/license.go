package crpd

import (
	"net/netip"

	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// Limits are the licence's limits; 0 means none.
type Limits struct {
	BGPPeers   int
	RIBEntries int
}

// WithLimits makes the backend report its use of the licence's limits,
// read through limits at every reconcile (they follow configuration
// reloads).
func (b *Backend) WithLimits(limits func() Limits) *Backend {
	b.limits = limits
	return b
}

// Usage implements backend.Limited. BGP peers: the planned explicit
// neighbours plus the sessions cRPD spawned from client ranges (known only
// once they exist). RIB entries: the prefixes received over all sessions.
func (b *Backend) Usage(m model.Model, sessions []model.Session) []backend.Usage {
	var lim Limits
	if b.limits != nil {
		lim = b.limits()
	}
	peers := map[netip.Addr]bool{}
	for _, g := range m.Groups {
		for _, n := range g.Neighbors {
			peers[n.Addr] = true
		}
	}
	routes := 0
	for _, s := range sessions {
		peers[s.Peer] = true // dynamic sessions; explicit ones are counted already
		routes += s.Imported
	}
	return []backend.Usage{
		{Resource: "bgp-peers", Used: len(peers), Limit: lim.BGPPeers},
		{Resource: "rib-entries", Used: routes, Limit: lim.RIBEntries},
	}
}
