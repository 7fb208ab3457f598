package reconcile

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/meshrr/meshrr/agent/internal/events"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// reported is what the loop last reported, so that each change is
// reported once.
type reported struct {
	neighbors    map[netip.Addr]model.Neighbor  // applied explicit peers
	neighborRole map[netip.Addr]model.GroupName // their group
	rejected     []string                       // what discovery refused
	refused      map[model.GroupName]string     // session groups refused for their TCP-MD5 key
	rollover     map[model.GroupName]string     // TCP-MD5 key rollovers: their windows, or why refused
	exposed      map[model.GroupName]string     // client groups refused for admitting the cluster's networks
}

// reportDiscovered sets the discovered-peer gauges.
func (l *Loop) reportDiscovered(discovered map[model.GroupName]int) {
	for _, g := range []model.GroupName{model.GroupMesh, model.GroupUpstream, model.GroupDownstream} {
		l.Metrics.DiscoveredPeers.WithLabelValues(string(g)).Set(float64(discovered[g]))
	}
}

// reportPeers updates the configured-peer gauges and records one Event per
// group whose explicit peers changed.
func (l *Loop) reportPeers(m model.Model) {
	cur := map[netip.Addr]model.Neighbor{}
	role := map[netip.Addr]model.GroupName{}
	for _, g := range m.Groups {
		n := len(g.Neighbors)
		if g.Role == model.RoleClients {
			n = len(g.Ranges)
		}
		l.Metrics.ConfiguredPeers.WithLabelValues(string(g.Name)).Set(float64(n))
		for _, nb := range g.Neighbors {
			cur[nb.Addr] = nb
			role[nb.Addr] = g.Name
		}
	}
	added := map[model.GroupName][]string{}
	removed := map[model.GroupName][]string{}
	for a, nb := range cur {
		if _, ok := l.reported.neighbors[a]; !ok || l.reported.neighborRole[a] != role[a] {
			added[role[a]] = append(added[role[a]], describe(a, nb))
		}
	}
	for a, nb := range l.reported.neighbors {
		if _, ok := cur[a]; !ok || l.reported.neighborRole[a] != role[a] {
			removed[l.reported.neighborRole[a]] = append(removed[l.reported.neighborRole[a]], describe(a, nb))
		}
	}
	for _, g := range groupsOf(added, removed) {
		var parts []string
		if a := added[g]; len(a) > 0 {
			slices.Sort(a)
			parts = append(parts, "added "+strings.Join(a, ", "))
		}
		if r := removed[g]; len(r) > 0 {
			slices.Sort(r)
			parts = append(parts, "removed "+strings.Join(r, ", "))
		}
		l.Events.Normal(events.ReasonPeersChanged, "%s peers: %s", g, strings.Join(parts, "; "))
	}
	l.reported.neighbors, l.reported.neighborRole = cur, role
}

func describe(a netip.Addr, nb model.Neighbor) string {
	if nb.Name == "" {
		return a.String()
	}
	return a.String() + " (" + nb.Name + ")"
}

func groupsOf(ms ...map[model.GroupName][]string) []model.GroupName {
	var out []model.GroupName
	for _, m := range ms {
		for g := range m {
			if !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	slices.Sort(out)
	return out
}

// reportRejected logs and records what discovery refused to trust, once
// per refusal (a Warning Event lists the new ones).
func (l *Loop) reportRejected(rejected []string) {
	var fresh []string
	for _, r := range rejected {
		if !slices.Contains(l.reported.rejected, r) {
			fresh = append(fresh, r)
			l.Log.Warn("discovery refused an endpoint", "op", "discovery", "reason", r)
		}
	}
	l.reported.rejected = slices.Clone(rejected)
	if len(fresh) == 0 {
		return
	}
	const shown = 5
	msg := strings.Join(fresh[:min(len(fresh), shown)], "; ")
	if len(fresh) > shown {
		msg += fmt.Sprintf("; and %d more (see the agent's log)", len(fresh)-shown)
	}
	l.Events.Warning(events.ReasonUntrusted, "ignored, not trusted: %s", msg)
}

// reportRefused records a Warning Event and a log line when the set of
// session groups refused for their TCP-MD5 key changes (never the key).
func (l *Loop) reportRefused(refused map[model.GroupName]string) {
	reportChanges(&l.reported.refused, refused, func(g model.GroupName, why string) {
		l.Log.Warn("session group refused: its TCP-MD5 key is missing or malformed; it gets no session until the Secret is fixed", "op", "md5", "group", g, "reason", why)
		l.Events.Warning(events.ReasonKeyRefused, "%s sessions refused, none runs without its TCP-MD5 key: %s", g, why)
	}, func(g model.GroupName) {
		l.Log.Info("session group's TCP-MD5 key is valid again", "op", "md5", "group", g)
		l.Events.Normal(events.ReasonKeyAccepted, "%s: its TCP-MD5 key is valid again; its sessions are configured", g)
	})
}

// reportRollover records an Event and a log line when a session group's
// TCP-MD5 key rollover starts, changes or ends (its window, never a key),
// and a Warning when one cannot be read (the group keeps its key).
func (l *Loop) reportRollover(keys map[model.GroupName]model.Key, refused map[model.GroupName]string) {
	now := map[model.GroupName]string{}
	for g, k := range keys {
		if k.Rolling() {
			now[g] = fmt.Sprintf("its sessions switch to the next TCP-MD5 key one after the other between %s and %s", k.From.UTC().Format(time.RFC3339), k.Until.UTC().Format(time.RFC3339))
		}
	}
	for g, why := range refused {
		now[g] = "refused: " + why
	}
	reportChanges(&l.reported.rollover, now, func(g model.GroupName, what string) {
		if why, ok := strings.CutPrefix(what, "refused: "); ok {
			l.Log.Warn("TCP-MD5 key rollover refused; the sessions keep their key", "op", "md5", "group", g, "reason", why)
			l.Events.Warning(events.ReasonRolloverRefused, "%s: key rollover refused: %s", g, why)
			return
		}
		l.Log.Info("TCP-MD5 key rollover", "op", "md5", "group", g, "window", what)
		l.Events.Normal(events.ReasonKeyRollover, "%s: %s", g, what)
	}, func(g model.GroupName) {
		l.Log.Info("TCP-MD5 key rollover over: the group has one key", "op", "md5", "group", g)
	})
}

// reportExposed records a Warning Event and a log line when the set of
// client groups refused for admitting the cluster's own networks changes.
func (l *Loop) reportExposed(exposed map[model.GroupName]string) {
	reportChanges(&l.reported.exposed, exposed, func(g model.GroupName, why string) {
		l.Log.Warn("client group refused: a range admits the cluster's own networks", "op", "clients", "group", g, "reason", why)
		l.Events.Warning(events.ReasonRangeRefused, "%s sessions refused: %s", g, why)
	}, func(g model.GroupName) {
		l.Log.Info("client group admitted again", "op", "clients", "group", g)
		l.Events.Normal(events.ReasonRangeAccepted, "%s: its ranges no longer admit the cluster's networks unguarded; its sessions are configured", g)
	})
}

// reportChanges calls refused for each group newly refused (or refused
// for another reason) and accepted for each no longer refused, and keeps
// now as the last reported.
func reportChanges(last *map[model.GroupName]string, now map[model.GroupName]string, refused func(g model.GroupName, why string), accepted func(g model.GroupName)) {
	if maps.Equal(now, *last) {
		return
	}
	for _, g := range slices.Sorted(maps.Keys(now)) {
		if (*last)[g] != now[g] {
			refused(g, now[g])
		}
	}
	for _, g := range slices.Sorted(maps.Keys(*last)) {
		if _, still := now[g]; !still {
			accepted(g)
		}
	}
	*last = maps.Clone(now)
}
