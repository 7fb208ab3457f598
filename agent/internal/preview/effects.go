// Package preview says, before a configuration change is made, what it will
// do to each BGP session of an RR pod: reset it, refresh its routes, add or
// remove it, or leave it alone. It compares the models the agent's own plan
// builds for the running and the proposed configuration, and looks up what
// the daemon does for each setting that differs in one table (Settings),
// whose every entry is asked of real BIRD (TestEverySettingsEffectIsBIRDs).
// Everything here is pure.
package preview

import (
	"net/netip"
	"reflect"

	"github.com/meshrr/meshrr/agent/internal/model"
)

// Effect is what the daemon does to a running session when a setting that
// applies to it changes.
type Effect int

// Effects, mildest first.
const (
	// None: the session and its routes stay as they are.
	EffectNone Effect = iota
	// Refresh: the session stays up; its routes are sent again (export
	// policy) or asked for again with a route refresh (import policy).
	EffectRefresh
	// Reset: the daemon closes the session and opens it again.
	EffectReset
)

func (e Effect) String() string { return [...]string{"none", "refresh", "reset"}[e] }

// Setting is one setting of the desired model and what the daemon does to
// the sessions it applies to when it changes. Exactly one of Model, Group
// and Peer is set: a setting of the whole pod (every session), of a peer
// group (its sessions) or of one peer's session.
type Setting struct {
	Name   string
	Effect Effect
	Model  func(a, b *model.Model) bool
	Group  func(a, b *model.PeerGroup) bool
	Peer   func(a, b *model.PeerGroup, peer netip.Addr) bool
}

func differ[T any](a, b T) bool { return !reflect.DeepEqual(a, b) }

// Settings is the one authority on what a change does to a session: the
// plan preview reads it, and config.KeepSessionSettings keeps exactly the
// settings whose change resets (TestTheAgentKeepsWhatResets). Each entry is
// BIRD's answer, asked by changing it on a live RR with routers
// Established (TestEverySettingsEffectIsBIRDs).
var Settings = []Setting{
	// the pod's own: BIRD opens every session with them
	{Name: "asn", Effect: EffectReset, Model: func(a, b *model.Model) bool { return a.ASN != b.ASN }},
	{Name: "routerID", Effect: EffectReset, Model: func(a, b *model.Model) bool { return a.RouterID != b.RouterID }},
	{Name: "localAddrs", Effect: EffectReset, Model: func(a, b *model.Model) bool { return differ(a.LocalAddrs, b.LocalAddrs) }},
	{Name: "timers", Effect: EffectReset, Model: func(a, b *model.Model) bool { return a.Timers != b.Timers }},
	{Name: "gracefulRestart", Effect: EffectReset, Model: func(a, b *model.Model) bool { return a.GracefulRestart != b.GracefulRestart }},
	// a group's: the template every session of the group is opened from
	{Name: "type", Effect: EffectReset, Group: func(a, b *model.PeerGroup) bool { return a.External != b.External }},
	{Name: "rrClient", Effect: EffectReset, Group: func(a, b *model.PeerGroup) bool { return a.RRClient != b.RRClient }},
	{Name: "clusterID", Effect: EffectReset, Group: func(a, b *model.PeerGroup) bool { return a.ClusterID != b.ClusterID }},
	{Name: "peerASNs", Effect: EffectRefresh, Group: func(a, b *model.PeerGroup) bool { return differ(a.PeerASNs, b.PeerASNs) }},
	{Name: "multihop", Effect: EffectReset, Group: func(a, b *model.PeerGroup) bool { return a.Multihop != b.Multihop }},
	{Name: "nextHopUnchanged", Effect: EffectRefresh, Group: func(a, b *model.PeerGroup) bool { return a.NextHopUnchanged != b.NextHopUnchanged }},
	{Name: "routeServer", Effect: EffectReset, Group: func(a, b *model.PeerGroup) bool { return a.RouteServer != b.RouteServer }},
	{Name: "families", Effect: EffectReset, Group: func(a, b *model.PeerGroup) bool { return differ(a.NLRI, b.NLRI) }},
	{Name: "password", Effect: EffectReset, Group: func(a, b *model.PeerGroup) bool { return a.Password != b.Password }},
	{Name: "maxPrefixes", Effect: EffectNone, Group: func(a, b *model.PeerGroup) bool { return a.MaxPrefixes != b.MaxPrefixes }},
	{Name: "maxPrefixAction", Effect: EffectNone, Group: func(a, b *model.PeerGroup) bool { return a.MaxPrefixAction != b.MaxPrefixAction }},
	{Name: "ttlSecurity", Effect: EffectReset, Group: func(a, b *model.PeerGroup) bool { return a.TTLSecurity != b.TTLSecurity }},
	{Name: "addPaths", Effect: EffectReset, Group: func(a, b *model.PeerGroup) bool { return a.AddPaths != b.AddPaths }},
	{Name: "bfd", Effect: EffectNone, Group: func(a, b *model.PeerGroup) bool { return differ(a.BFD, b.BFD) }},
	{Name: "import", Effect: EffectRefresh, Group: func(a, b *model.PeerGroup) bool { return differ(a.Import, b.Import) }},
	{Name: "export", Effect: EffectRefresh, Group: func(a, b *model.PeerGroup) bool { return differ(a.Export, b.Export) }},
	// one peer's
	{Name: "peerASN", Effect: EffectReset, Peer: func(a, b *model.PeerGroup, p netip.Addr) bool { return neighborASN(a, p) != neighborASN(b, p) }},
	{Name: "sessionKey", Effect: EffectReset, Peer: func(a, b *model.PeerGroup, p netip.Addr) bool {
		_, rollingA := a.SessionKeys[p]
		_, rollingB := b.SessionKeys[p]
		return (rollingA || rollingB) && sessionKey(a, p) != sessionKey(b, p)
	}},
}

// Membership are the model's fields that say which sessions exist rather
// than how they run: a change adds or removes sessions (Compare), and
// leaves the others alone. A neighbour's Name and Side are labels (BIRD
// is given them as a description: TestEverySettingsEffectIsBIRDs);
// Draining is how the exports were built, and its effect is theirs.
var Membership = []string{"Groups", "Name", "Side", "Role", "Neighbors", "Ranges", "Allow", "Disabled", "Draining"}

func neighborASN(g *model.PeerGroup, p netip.Addr) model.ASN {
	for _, n := range g.Neighbors {
		if n.Addr == p {
			return n.ASN
		}
	}
	return 0
}

// sessionKey is the TCP-MD5 key a session runs with: its own during a
// rollover, else its group's.
func sessionKey(g *model.PeerGroup, p netip.Addr) string {
	if k, ok := g.SessionKeys[p]; ok {
		return k
	}
	return g.Password
}

// Resetting names the settings whose change resets a session.
func Resetting() []string {
	var out []string
	for _, s := range Settings {
		if s.Effect == EffectReset {
			out = append(out, s.Name)
		}
	}
	return out
}
