package plan

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// DrainBlockers lists what a pod that is about to stop still waits for
// before it drains: a mesh member of every other side of its group (or,
// without sides, any other member) with an Established session to this pod.
// A terminating member counts while it is meshed; a side whose only pod is
// being replaced by a new one counts once either is meshed with this pod.
// When the whole group is stopping (scaled to zero, its workload deleted,
// the release uninstalled) nobody will come to wait for: once this pod is
// listed as terminating and no member of the group is listed that is not,
// nothing blocks (the drain lock still takes the pods one at a time).
// nil: the pod may drain now.
func DrainBlockers(c *config.Config, self Self, snap model.Snapshot, sessions []model.Session) []string {
	if c.Drain.WaitForPeers != nil && !*c.Drain.WaitForPeers {
		return nil
	}
	meshNS := cmp.Or(c.Mesh.Namespace, self.Namespace)
	if GroupStopping(snap, meshNS, c.Mesh.Group, self.ID()) {
		return nil
	}
	established := map[string]bool{}
	for _, s := range sessions {
		if s.Established() && s.In(model.RoleMesh) {
			established[s.Peer.String()] = true
		}
	}
	meshed := map[string]bool{} // side -> some member meshed with this pod
	any := false
	for _, m := range snap.Members {
		if m.Namespace != meshNS || m.Group != c.Mesh.Group {
			continue
		}
		if m.ID() == self.ID() {
			continue
		}
		if slices.ContainsFunc(m.Addrs, func(a netip.Addr) bool { return established[a.String()] }) {
			meshed[m.Side] = true
			any = true
		}
	}
	if len(c.Drain.Sides) == 0 {
		if !any {
			return []string{"no other member of the group has an Established mesh session with this pod"}
		}
		return nil
	}
	var out []string
	for _, side := range c.Drain.Sides {
		if side != self.Side && !meshed[side] {
			out = append(out, fmt.Sprintf("side %s has no member with an Established mesh session to this pod", side))
		}
	}
	sort.Strings(out)
	return out
}

// GroupStopping: the pod selfID is listed as terminating in its group and
// every other listed member of the group is terminating too.
func GroupStopping(snap model.Snapshot, namespace, group, selfID string) bool {
	selfStopping := false
	for _, m := range snap.Members {
		if m.Namespace != namespace || m.Group != group {
			continue
		}
		if !m.Terminating {
			return false
		}
		if m.ID() == selfID {
			selfStopping = true
		}
	}
	return selfStopping
}

// Drained is m while the pod drains: the graceful-shutdown rule first on
// every export (idempotent). The loop also drains its last applied model
// with it when discovery cannot give it a new one.
func Drained(m model.Model) model.Model {
	if m.Draining {
		return m
	}
	m.Draining = true
	groups := make([]model.PeerGroup, len(m.Groups))
	for i, g := range m.Groups {
		g.Export.Rules = append([]model.Rule{drainRule}, g.Export.Rules...)
		groups[i] = g
	}
	m.Groups = groups
	return m
}
