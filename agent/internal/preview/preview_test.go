package preview_test

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/plan"
	"github.com/meshrr/meshrr/agent/internal/preview"
)

// Every field of the model that reaches the daemon is a setting of the
// table or says which sessions exist (preview.Membership): a field added
// to the model without an effect fails here.
func TestEveryModelFieldHasAnEffect(t *testing.T) {
	p := netip.MustParseAddr("192.0.2.1")
	base := model.Model{ASN: 65000, RouterID: p, Groups: []model.PeerGroup{{Name: "g", Neighbors: []model.Neighbor{{Addr: p, ASN: 65000}}}}}
	detected := func(a, b *model.Model) bool {
		for _, s := range preview.Settings {
			switch {
			case s.Model != nil && s.Model(a, b),
				s.Group != nil && s.Group(&a.Groups[0], &b.Groups[0]),
				s.Peer != nil && (s.Peer(&a.Groups[0], &b.Groups[0], p) || s.Peer(&a.Groups[0], &b.Groups[0], netip.Addr{})):
				return true
			}
		}
		return false
	}
	check := func(where string, typ reflect.Type, field func(m *model.Model) reflect.Value) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if slices.Contains(preview.Membership, f.Name) {
				continue
			}
			a := base
			a.Groups = slices.Clone(base.Groups)
			a.Groups[0].Neighbors = slices.Clone(base.Groups[0].Neighbors)
			b := a
			b.Groups = slices.Clone(a.Groups)
			b.Groups[0].Neighbors = slices.Clone(a.Groups[0].Neighbors)
			mutate(t, field(&b).Field(i))
			assert.True(t, detected(&a, &b), "%s.%s: a change is neither a preview.Settings entry nor preview.Membership: say what the daemon does for it", where, f.Name)
		}
	}
	check("Model", reflect.TypeFor[model.Model](), func(m *model.Model) reflect.Value { return reflect.ValueOf(m).Elem() })
	check("PeerGroup", reflect.TypeFor[model.PeerGroup](), func(m *model.Model) reflect.Value { return reflect.ValueOf(&m.Groups[0]).Elem() })
	check("Neighbor", reflect.TypeFor[model.Neighbor](), func(m *model.Model) reflect.Value { return reflect.ValueOf(&m.Groups[0].Neighbors[0]).Elem() })
}

// mutate changes v to another value of its type.
func mutate(t *testing.T, v reflect.Value) {
	switch v.Interface().(type) {
	case netip.Addr:
		v.Set(reflect.ValueOf(netip.MustParseAddr("198.51.100.7")))
		return
	case netip.Prefix:
		v.Set(reflect.ValueOf(netip.MustParsePrefix("198.51.100.0/24")))
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(v.Int() + 1)
	case reflect.Uint32, reflect.Uint64, reflect.Uint:
		v.SetUint(v.Uint() + 1)
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		elem := reflect.New(v.Type().Elem()).Elem()
		mutate(t, elem)
		m.SetMapIndex(reflect.Zero(v.Type().Key()), elem)
		v.Set(m)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	case reflect.Struct:
		mutate(t, v.Field(0))
	default:
		t.Fatalf("cannot change a %s", v.Type())
	}
}

func TestCompareSaysWhatEachSessionGets(t *testing.T) {
	a, b, c := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.1.0.5")
	base := model.Model{ASN: 65000, RouterID: netip.MustParseAddr("10.0.0.1"), Groups: []model.PeerGroup{
		{Name: model.GroupMesh, Role: model.RoleMesh, Neighbors: []model.Neighbor{{Addr: a, ASN: 65000, Name: "core/rr-1"}}},
		{Name: "routers", Role: model.RoleClients, RRClient: true, Ranges: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}, Allow: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}},
	}}
	live := []model.Session{
		{Name: "mesh_1", Group: model.GroupMesh, Peer: a, State: model.StateEstablished},
		{Name: "routers_1", Group: "routers", Peer: c, State: model.StateEstablished},
		{Name: "other", Peer: netip.MustParseAddr("10.9.0.1"), State: model.StateEstablished}, // not the agent's
	}
	for _, tc := range []struct {
		name   string
		change func(m *model.Model)
		want   []string
	}{
		{"nothing", func(m *model.Model) {}, []string{"mesh 10.0.0.2 untouched", "routers 10.1.0.5 untouched"}},
		{"the routers' export", func(m *model.Model) { m.Groups[1].Export.DefaultReject = true },
			[]string{"mesh 10.0.0.2 untouched", "routers 10.1.0.5 refresh export"}},
		{"timers", func(m *model.Model) { m.Timers.Hold = 30 }, []string{"mesh 10.0.0.2 reset timers", "routers 10.1.0.5 reset timers"}},
		{"a reset beats a refresh, both named", func(m *model.Model) {
			m.Groups[0].Password, m.Groups[0].Import.DefaultReject, m.Groups[0].BFD = "k", true, &model.BFD{}
		},
			[]string{"mesh 10.0.0.2 reset password", "routers 10.1.0.5 untouched"}},
		{"a member joins, another leaves", func(m *model.Model) { m.Groups[0].Neighbors = []model.Neighbor{{Addr: b, ASN: 65000}} },
			[]string{"mesh 10.0.0.2 removed", "mesh 10.0.0.3 added", "routers 10.1.0.5 untouched"}},
		{"the range no longer admits the router", func(m *model.Model) {
			m.Groups[1].Allow = []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24")}
		}, []string{"mesh 10.0.0.2 untouched", "routers 10.1.0.5 removed"}},
		{"the router kept out", func(m *model.Model) { m.Groups[1].Disabled = []netip.Addr{c} },
			[]string{"mesh 10.0.0.2 untouched", "routers 10.1.0.5 removed"}},
		{"the group gone", func(m *model.Model) { m.Groups = m.Groups[:1] }, []string{"mesh 10.0.0.2 untouched", "routers 10.1.0.5 removed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := base
			changed.Groups = slices.Clone(base.Groups)
			tc.change(&changed)
			var got []string
			for _, s := range preview.Compare(base, changed, live) {
				got = append(got, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", s.Group, s.Peer, s.Outcome, strings.Join(s.Why, ","))))
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

// The agent keeps exactly what resets: for each configuration change that
// reaches the daemon, the change applied in full resets a session
// (preview.Settings) exactly when the running agent keeps a setting until
// its pod is replaced (config.KeepSessionSettings); and what the running
// agent does at once never resets a session.
func TestTheAgentKeepsWhatResets(t *testing.T) {
	rr, peer, client := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.1.0.5")
	doc := func(over map[string]string) string {
		parts := map[string]string{
			"identity": "{asn: 65000}", "mesh": "{group: core.core}", "timers": "{}", "gracefulRestart": "{}",
			"clients": "[{name: routers, ranges: [10.1.0.0/24]}, {name: peers, type: external, peerASNs: ['65100'], ranges: [10.2.0.0/24]}]",
			"policy":  "[]", "drain": "{}", "reconcile": "{}", "backend": "{type: bird}",
		}
		for k, v := range over {
			parts[k] = v
		}
		var b strings.Builder
		b.WriteString("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\n")
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range parts {
				if !yield(k) {
					return
				}
			}
		}) {
			fmt.Fprintf(&b, "%s: %s\n", k, parts[k])
		}
		return b.String()
	}
	clients := func(routers, peers string) string {
		return "[{name: routers, ranges: [10.1.0.0/24]" + routers + "}, {name: peers, type: external, peerASNs: ['65100'], ranges: [10.2.0.0/24]" + peers + "}]"
	}
	snap := model.Snapshot{Synced: true, Members: []model.Member{
		{Namespace: "core", Group: "core.core", Pod: "rr-0", Addrs: []netip.Addr{rr}},
		{Namespace: "core", Group: "core.core", Pod: "rr-1", Addrs: []netip.Addr{peer}},
	}}
	pod := preview.Pod{Self: plan.Self{Name: "rr-0", Namespace: "core", Addrs: []netip.Addr{rr}}, Sessions: []model.Session{
		{Name: "mesh_1", Group: model.GroupMesh, Peer: peer},
		{Name: "routers_1", Group: "routers", Peer: client},
		{Name: "peers_1", Group: "peers", Peer: netip.MustParseAddr("10.2.0.9")},
	}}
	for _, tc := range []struct {
		name string
		over map[string]string
		// podLevel: kept, and rolled, though no session setting changes
		// (how the daemon runs, not what it says to peers)
		podLevel bool
	}{
		{name: "identity.asn", over: map[string]string{"identity": "{asn: 65001}"}},
		{name: "identity.routerID", over: map[string]string{"identity": "{asn: 65000, routerID: 192.0.2.9}"}},
		{name: "identity.clusterID", over: map[string]string{"identity": "{asn: 65000, clusterID: 192.0.2.10}"}},
		{name: "timers.hold", over: map[string]string{"timers": "{hold: 30, keepalive: 10}"}},
		{name: "timers.connectRetry", over: map[string]string{"timers": "{connectRetry: 30}"}},
		{name: "gracefulRestart.enabled", over: map[string]string{"gracefulRestart": "{enabled: false}"}},
		{name: "gracefulRestart.longLived", over: map[string]string{"gracefulRestart": "{longLived: true, staleTime: 3600}"}},
		{name: "mesh.bfd", over: map[string]string{"mesh": "{group: core.core, bfd: {enabled: true}}"}},
		{name: "clients.type", over: map[string]string{"clients": clients(", type: external, peerASNs: ['65100']", "")}},
		{name: "clients.multihop", over: map[string]string{"clients": clients(", multihop: 2", "")}},
		{name: "clients.ttlSecurity", over: map[string]string{"clients": clients(", ttlSecurity: true", "")}},
		{name: "clients.addPaths", over: map[string]string{"clients": clients(", addPaths: 2", "")}},
		{name: "clients.nextHopUnchanged", over: map[string]string{"clients": clients(", nextHopUnchanged: true", "")}},
		{name: "clients.export", over: map[string]string{"clients": clients(", export: {tier: default}", "")}},
		{name: "clients.maxPrefixes", over: map[string]string{"clients": clients(", maxPrefixes: 100", "")}},
		{name: "clients.bfd", over: map[string]string{"clients": clients(", bfd: {enabled: true}", "")}},
		{name: "clients.peerMetrics", over: map[string]string{"clients": clients(", peerMetrics: true", "")}},
		{name: "clients.ranges", over: map[string]string{"clients": "[{name: routers, ranges: [10.1.0.0/24, 10.3.0.0/24]}, {name: peers, type: external, peerASNs: ['65100'], ranges: [10.2.0.0/24]}]"}},
		{name: "clients.peerASNs", over: map[string]string{"clients": "[{name: routers, ranges: [10.1.0.0/24]}, {name: peers, type: external, peerASNs: ['65100', '65200'], ranges: [10.2.0.0/24]}]"}},
		{name: "clients.nextHopUnchanged (external)", over: map[string]string{"clients": clients("", ", nextHopUnchanged: false")}},
		{name: "policy", over: map[string]string{"policy": "[{name: no-default, towards: [clients], matchPrefixes: [{prefix: 0.0.0.0/0}], action: reject}]"}},
		{name: "drain", over: map[string]string{"drain": "{sides: [a, b]}"}},
		{name: "backend.bird.threads", podLevel: true, over: map[string]string{"backend": "{type: bird, bird: {version: 3, threads: 2}}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			running, proposed := doc(nil), doc(tc.over)
			if tc.name == "backend.bird.threads" {
				running = doc(map[string]string{"backend": "{type: bird, bird: {version: 3, threads: 1}}"})
			}
			ch := preview.Change{Running: []byte(running), Proposed: []byte(proposed), Snapshot: snap, Now: time.Now()}
			hot, err := preview.Predict(ch, pod)
			require.NoError(t, err, proposed)
			var resets, hotResets []string
			for _, s := range hot.Sessions {
				if s.Outcome == preview.Reset {
					hotResets = append(hotResets, fmt.Sprintf("%s %s (%s)", s.Group, s.Peer, strings.Join(s.Why, ",")))
				}
			}
			for _, s := range fullCompare(t, running, proposed, snap, pod) {
				if s.Outcome == preview.Reset {
					resets = append(resets, fmt.Sprintf("%s %s (%s)", s.Group, s.Peer, strings.Join(s.Why, ",")))
				}
			}
			assert.Empty(t, hotResets, "the running agent resets sessions at once: keep the setting (config.KeepSessionSettings) and roll the pods for it")
			if tc.podLevel {
				assert.NotEmpty(t, hot.Roll, "a pod-level setting the daemon takes only at its start is kept and rolled")
				return
			}
			assert.Equal(t, len(resets) > 0, len(hot.Roll) > 0, "the change resets %v in full; the running agent keeps %v: exactly what resets is kept", resets, hot.Roll)
			var at []string
			for _, s := range hot.Sessions {
				at = append(at, fmt.Sprintf("%s %s", s.Group, s.Outcome))
			}
			t.Logf("at once: %v; kept %v; in full: %v", at, hot.Roll, resets)
		})
	}
}

// fullCompare: the proposed configuration as a replaced pod runs it
// (nothing kept).
func fullCompare(t *testing.T, running, proposed string, snap model.Snapshot, pod preview.Pod) []preview.Session {
	build := func(doc string) model.Model {
		c, err := config.Parse([]byte(doc))
		require.NoError(t, err)
		res, err := plan.Build(plan.Input{Config: c, Self: pod.Self, Snapshot: snap, Now: time.Now()})
		require.NoError(t, err)
		return res.Model
	}
	return preview.Compare(build(running), build(proposed), pod.Sessions)
}
