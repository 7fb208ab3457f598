package plan

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/model"
)

// sessionKey is the key the plan gives the session with peer in group g:
// the session's own, else the group's.
func sessionKey(g model.PeerGroup, peer netip.Addr) string {
	if k, ok := g.SessionKeys[peer]; ok {
		return k
	}
	return g.Password
}

// Through a rollover, both ends of every session are on the same key at
// every instant: the core's mesh (explicit neighbors at both ends) and
// the core-region sessions, explicit upstream neighbors at the region and
// single-address downstream ranges at the core. Each session switches
// once, the sessions of the mesh one after the other, and each plan says
// when to plan again (the next switch).
func TestEveryRolloverSessionIsOnTheSameKeyAtBothEnds(t *testing.T) {
	from := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	until := from.Add(10 * time.Minute)
	roll := func(cur, next string) model.Key { return model.Key{Current: cur, Next: next, From: from, Until: until} }
	core := mustConfig(t, `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: core.core}
downstream: {namespaces: [lothl]}
drain: {sides: [a, b]}
passwordDir: /keys
`)
	region := mustConfig(t, `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: lothl.lothl}
upstream: {group: core.core, namespace: core, maxPeers: 2}
passwordDir: /keys
`)
	r := func(pod, addr string) model.Member {
		m := member("lothl", "lothl.lothl", pod, "", "n", addr)
		m.UpstreamGroup, m.UpstreamNamespace = "core.core", "core"
		return m
	}
	members := []model.Member{
		member("core", "core.core", "core-a-0", "a", "n1", "10.244.1.10"),
		member("core", "core.core", "core-a-1", "a", "n2", "10.244.2.10"),
		member("core", "core.core", "core-b-0", "b", "n3", "10.244.3.10"),
		member("core", "core.core", "core-b-1", "b", "n4", "10.244.4.10"),
		r("rr-0", "10.244.5.1"), r("rr-1", "10.244.6.1"),
	}
	plan := func(m model.Member, now time.Time) Result {
		in := Input{Self: Self{Name: m.Pod, Namespace: m.Namespace, Addrs: m.Addrs, Side: m.Side}, Now: now,
			Snapshot: model.Snapshot{Synced: true, Members: members}}
		if m.Namespace == "core" {
			in.Config, in.Passwords = core, map[model.GroupName]model.Key{model.GroupMesh: roll("m1", "m2"), model.GroupDownstream: roll("d1", "d2")}
		} else {
			in.Config, in.Passwords = region, map[model.GroupName]model.Key{model.GroupMesh: roll("l1", "l2"), model.GroupUpstream: roll("d1", "d2")}
		}
		res, err := Build(in)
		require.NoError(t, err)
		return res
	}
	// the session between a and b in each one's plan: mesh, or upstream
	// (region) against downstream (core)
	groupOf := func(self, peer model.Member) model.GroupName {
		switch {
		case self.Namespace == peer.Namespace:
			return model.GroupMesh
		case self.Namespace == "core":
			return model.GroupDownstream
		}
		return model.GroupUpstream
	}

	type pair struct{ a, b int }
	switches := map[pair]int{}
	last := map[pair]string{}
	wakes := 0
	for now := from.Add(-time.Second); now.Before(until.Add(time.Second)); now = now.Add(7 * time.Second) {
		res := make([]Result, len(members))
		for i, m := range members {
			res[i] = plan(m, now)
			if next := res[i].NextKeySwitch; !next.IsZero() {
				require.True(t, next.After(now) && !next.After(until), "next switch %s outside (now, until]", next)
				wakes++
			}
		}
		for i, a := range members {
			for j, b := range members {
				if j <= i {
					continue
				}
				ga, oka := findGroup(res[i].Model, groupOf(a, b))
				gb, okb := findGroup(res[j].Model, groupOf(b, a))
				if !oka || !okb || !peers(ga, b.Addrs[0]) || !peers(gb, a.Addrs[0]) {
					continue // no session between them (upstream choice, maxPeers 2)
				}
				ka, kb := sessionKey(ga, b.Addrs[0]), sessionKey(gb, a.Addrs[0])
				require.Equal(t, ka, kb, "%s: %s-%s on different keys", now.Format(time.TimeOnly), a.Pod, b.Pod)
				p := pair{i, j}
				if last[p] != "" && last[p] != ka {
					switches[p]++
				}
				last[p] = ka
			}
		}
	}
	require.Len(t, switches, len(last), "every session switched: %v of %d", switches, len(last))
	for p, n := range switches {
		assert.Equal(t, 1, n, "%s-%s switched %d times", members[p.a].Pod, members[p.b].Pod, n)
	}
	assert.GreaterOrEqual(t, len(last), 6+1+4, "the core mesh (6), the region mesh and the upstream sessions")
	assert.Positive(t, wakes)
	for _, m := range members {
		for _, g := range plan(m, until).Model.Groups {
			assert.Empty(t, g.SessionKeys, "%s %s: every session on the group's key after the window", m.Pod, g.Name)
			assert.Contains(t, []string{"m2", "d2", "l2"}, g.Password)
		}
		assert.True(t, plan(m, until).NextKeySwitch.IsZero(), "nothing to plan for after the window")
	}
}

func findGroup(m model.Model, name model.GroupName) (model.PeerGroup, bool) {
	for _, g := range m.Groups {
		if g.Name == name {
			return g, true
		}
	}
	return model.PeerGroup{}, false
}

// peers: g has a session with addr (an explicit neighbor or a
// single-address range).
func peers(g model.PeerGroup, addr netip.Addr) bool {
	for _, n := range g.Neighbors {
		if n.Addr == addr {
			return true
		}
	}
	for _, r := range g.Ranges {
		if r.IsSingleIP() && r.Addr() == addr {
			return true
		}
	}
	return false
}
