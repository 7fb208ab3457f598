package plan

import (
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
// Members that are terminating are not in the snapshot (this pod, while it
// drains, neither), so a side whose only pod is being replaced counts only
// once the replacement has meshed.
// nil: the pod may drain now.
func DrainBlockers(c *config.Config, self Self, snap model.Snapshot, sessions []model.Session) []string {
	if c.Drain.WaitForPeers != nil && !*c.Drain.WaitForPeers {
		return nil
	}
	meshNS := or(c.Mesh.Namespace, self.Namespace)
	established := map[string]bool{}
	for _, s := range sessions {
		if s.Established && s.Group == string(model.RoleMesh) {
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
