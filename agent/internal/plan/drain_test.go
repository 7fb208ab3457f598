package plan

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
)

func TestDrainBlockers(t *testing.T) {
	cfg := func(extra string) *config.Config {
		c, err := config.Parse([]byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core}\n" + extra))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	self := Self{Name: "core-a-0", Namespace: "core", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, Side: "a"}
	member := func(pod, side, addr string) model.Member {
		return model.Member{Namespace: "core", Group: "core.core", Side: side, Pod: pod, Addrs: []netip.Addr{netip.MustParseAddr(addr)}}
	}
	snap := model.Snapshot{Synced: true, Members: []model.Member{
		member("core-a-1", "a", "10.0.0.2"), member("core-b-0", "b", "10.0.0.3"),
		{Namespace: "other", Group: "core.core", Side: "b", Pod: "x", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.9")}},
	}}
	up := func(addr string, group model.GroupName) model.Session {
		return model.Session{Peer: netip.MustParseAddr(addr), Group: group, State: "Established"}
	}
	sides := cfg("drain: {sides: [a, b]}\n")

	assert.Equal(t, []string{"side b has no member with an Established mesh session to this pod"},
		DrainBlockers(sides, self, snap, []model.Session{up("10.0.0.2", "mesh")}), "its own side does not count for the other side")
	assert.NotEmpty(t, DrainBlockers(sides, self, snap, []model.Session{up("10.0.0.9", "mesh")}), "a member of another namespace's group is not this group")
	assert.NotEmpty(t, DrainBlockers(sides, self, snap, []model.Session{up("10.0.0.3", "upstream")}), "only mesh sessions count")
	assert.Nil(t, DrainBlockers(sides, self, snap, []model.Session{up("10.0.0.3", "mesh")}))

	// a side whose pod is being replaced has no member until the new one joins
	gone := model.Snapshot{Synced: true, Members: snap.Members[:1]}
	assert.NotEmpty(t, DrainBlockers(sides, self, gone, []model.Session{up("10.0.0.2", "mesh")}))

	noSides := cfg("")
	assert.NotEmpty(t, DrainBlockers(noSides, self, snap, nil))
	assert.Nil(t, DrainBlockers(noSides, self, snap, []model.Session{up("10.0.0.2", "mesh")}))
	assert.Nil(t, DrainBlockers(cfg("drain: {waitForPeers: false}\n"), self, snap, nil), "a group of one waits for nobody")

	// the whole group stopping (scale to zero, uninstall): the last pod
	// has nobody to wait for; while a member that is not stopping is listed
	// (a rolling update's new pod) it waits for it as before
	stopping := func(m model.Member) model.Member { m.Terminating = true; return m }
	selfMember := stopping(member("core-a-0", "a", "10.0.0.1"))
	last := model.Snapshot{Synced: true, Members: []model.Member{selfMember}}
	assert.Nil(t, DrainBlockers(sides, self, last, nil), "the last pod of a stopping group")
	assert.Nil(t, DrainBlockers(noSides, self, last, nil))
	all := model.Snapshot{Synced: true, Members: []model.Member{selfMember, stopping(member("core-a-1", "a", "10.0.0.2")), stopping(member("core-b-0", "b", "10.0.0.3"))}}
	assert.Nil(t, DrainBlockers(sides, self, all, nil), "every member stopping")
	rolling := model.Snapshot{Synced: true, Members: []model.Member{selfMember, member("core-b-1", "b", "10.0.0.4")}}
	assert.NotEmpty(t, DrainBlockers(sides, self, rolling, nil), "a new member is listed: wait until it has meshed")
	notListed := model.Snapshot{Synced: true, Members: []model.Member{stopping(member("core-b-0", "b", "10.0.0.3"))}}
	assert.NotEmpty(t, DrainBlockers(sides, self, notListed, nil), "this pod not listed as stopping: no conclusion")
	assert.NotEmpty(t, DrainBlockers(noSides, self, model.Snapshot{Synced: true}, nil), "an empty view (Services deleted) is no sign that the group stops")
}
