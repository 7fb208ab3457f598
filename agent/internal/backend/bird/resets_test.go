package bird_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/testutil/birdlab"
)

// Which client group settings reset the group's sessions when they change
// is BIRD's to say, not ours: each setting is changed on a live RR with a
// router Established, and the session's state-change time tells whether
// BIRD reset it. The settings that do are exactly the ones the agent keeps
// until the pod is replaced (config.SessionResettingClientSettings) and the
// chart rolls the pods for, one at a time; the others hot-reload into
// every RR of a group at once.
func TestWhichClientSettingsResetASessionIsAskedOfBIRD(t *testing.T) {
	const rrAddr, routerAddr = "127.0.10.177", "127.0.10.180"
	r := &rr{lab: birdlab.Start(t, "rr", rrAddr), pod: "rr-0", ns: "core"}
	snap := model.Snapshot{Synced: true, Members: []model.Member{{Namespace: "core", Group: "core.core", Pod: "rr-0", Addrs: []netip.Addr{netip.MustParseAddr(rrAddr)}}}}
	router := birdlab.Start(t, "router", routerAddr)
	router.AddInclude(t, "up", fmt.Sprintf(`protocol static { ipv4; route 10.180.0.0/24 blackhole; }
protocol bgp to_rr { local %s as 65000; neighbor %s as 65000; strict bind yes;
  connect delay time 1; connect retry time 1; error wait time 1, 1;
  ipv4 { import all; export all; add paths on; }; }
`, routerAddr, rrAddr))
	cfg := func(client string) string {
		return "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core}\ntimers: {errorWaitMin: 1, errorWaitMax: 1}\nclients:\n  - {name: routers, ranges: [127.0.10.176/28]" + client + "}\n"
	}
	spawned := func(c assert.TestingT) model.Session {
		for _, s := range r.sessions(c) {
			if s.Peer == netip.MustParseAddr(routerAddr) {
				return s
			}
		}
		return model.Session{}
	}
	// settled: Established since after a given time, for 2 s
	settled := func(after time.Time) model.Session {
		t.Helper()
		var s model.Session
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			s = spawned(c)
			assert.True(c, s.Established() && s.Since.After(after) && time.Since(s.Since) > 2*time.Second, "settled: %+v", s)
		}, 20*time.Second, 100*time.Millisecond)
		return s
	}
	cases := []struct{ setting, change string }{
		{"multihop", ", multihop: 2"},
		{"ttlSecurity", ", ttlSecurity: true"},
		{"addPaths", ", addPaths: 2"},
		{"nextHopUnchanged", ", nextHopUnchanged: true"},
		{"maxPrefixes", ", maxPrefixes: 100"},
		{"maxPrefixAction", ", maxPrefixes: 100, maxPrefixAction: warn"},
		{"export", ", export: {tier: default}"},
		{"peerMetrics", ", peerMetrics: true"},
	}
	var resetting []string
	for _, tc := range cases {
		base := ""
		if tc.setting == "maxPrefixAction" {
			base = ", maxPrefixes: 100" // the action alone, not the limit
		}
		r.apply(t, snap, cfg(base))
		// a router whose OPEN went unanswered (ttlSecurity drops its
		// packets) waits out its hold time: start it afresh
		restarted := time.Now()
		router.Must(t, "restart to_rr")
		before := settled(restarted)
		r.apply(t, snap, cfg(tc.change))
		time.Sleep(2 * time.Second)
		after := spawned(t)
		reset := after.Name != before.Name || !after.Established() || after.Since.Sub(before.Since) > sinceJitter
		t.Logf("%-17s changed: session %s (%s %s, was %s since %s)", tc.setting, map[bool]string{true: "RESET", false: "kept"}[reset],
			after.Name, after.State, before.Name, before.Since.Format(time.StampMilli))
		if reset {
			resetting = append(resetting, tc.setting)
		}
	}
	want := slices.Clone(config.SessionResettingClientSettings)
	want = slices.DeleteFunc(want, func(s string) bool { return s == "type" }) // another kind of session: reset by its nature
	slices.Sort(want)
	slices.Sort(resetting)
	assert.Equal(t, want, resetting, "the settings BIRD resets a session for (left) must be exactly those the agent keeps and the chart rolls (config.SessionResettingClientSettings): %s", strings.Join(resetting, ", "))
}
