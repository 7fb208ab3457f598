package config

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/meshrr/meshrr/agent/internal/model"
)

func TestValidFixturesLoad(t *testing.T) {
	files, err := filepath.Glob("testdata/valid-*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f)
			require.NoError(t, err)
		})
	}
}

func TestDefaultsAreDocumentedValues(t *testing.T) {
	c, err := Load("testdata/valid-minimal.yaml")
	require.NoError(t, err)
	assert.Equal(t, RouterIDAuto, c.Identity.RouterID)
	assert.Equal(t, ClusterIDRouter, c.Identity.ClusterID)
	assert.Equal(t, BackendBird, c.Backend.Type)
	assert.Equal(t, DefaultBirdSocket, c.Backend.Bird.Socket)
	assert.Equal(t, []string{DefaultBirdInclude}, c.Backend.Bird.Include)
	assert.True(t, *c.Backend.Bird.StrictBind)
	assert.Equal(t, int64(DefaultBirdBytesPerRoute), c.BytesPerRoute())
	assert.Equal(t, DefaultBirdBaseMemory, c.Backend.Bird.BaseMemory)
	need, limit := c.MemoryNeed(1_000_000)
	assert.Zero(t, need+limit, "no memory limit: no comparison")
	assert.Equal(t, 1, c.Timers.ConnectDelay)
	assert.Equal(t, 100*time.Millisecond, c.Reconcile.Debounce.Duration)
	assert.Equal(t, ":9479", c.Status.Listen)
	assert.Equal(t, model.ASN(65000), c.ASN())
	_, explicit := c.ExplicitRouterID()
	assert.False(t, explicit)
}

func TestRegionFixtureCompilesTypedValues(t *testing.T) {
	c, err := Load("testdata/valid-region.yaml")
	require.NoError(t, err)
	require.NotNil(t, c.Upstream)
	assert.Equal(t, 60*time.Second, c.Upstream.GracePeriod.Duration)
	assert.Equal(t, DefaultHoldDown, c.Upstream.HoldDown.Duration)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("172.19.0.0/16"), netip.MustParsePrefix("fd00:19::/64")}, c.Clients[0].CompiledRanges())
	assert.Equal(t, ClientInternal, c.Clients[0].Type)
	assert.False(t, *c.Clients[0].NextHopUnchanged)
	_, comms := c.Policy[1].Compiled()
	assert.Equal(t, []model.Community{{A: 65000, B: 102}}, comms)
}

func TestExternalClientsDefaultToNextHopUnchanged(t *testing.T) {
	c, err := Parse([]byte(`
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: rs.rs}
clients:
  - {name: dcs, type: external, ranges: [10.0.0.0/8], peerASNs: ["65100-65199", "65300"], multihop: 4}
`))
	require.NoError(t, err)
	assert.True(t, *c.Clients[0].NextHopUnchanged)
	assert.Equal(t, []model.ASNRange{{Min: 65100, Max: 65199}, {Min: 65300, Max: 65300}}, c.Clients[0].CompiledPeerASNs())
}

// Each bad input must fail with an error naming the field.
func TestInvalidInputsNameTheField(t *testing.T) {
	base := "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core}\n"
	cases := []struct {
		name, yaml, field, says string
	}{
		{"unknown key", base + "upstraem: {group: x}\n", "", `unknown field "upstraem"`},
		{"no header", "identity: {asn: 1}\nmesh: {group: a}\n", "apiVersion", `required: the file starts with "apiVersion: meshrr.io/v1alpha1" and "kind: AgentConfig"`},
		{"chart values given as the file", "groups: {core: {identity: {asn: 1}}}\n", "kind", "required"},
		{"another version", "apiVersion: meshrr.io/v1\nkind: AgentConfig\nidentity: {asn: 1}\nmesh: {group: a}\n", "apiVersion", `"meshrr.io/v1": this agent reads meshrr.io/v1alpha1`},
		{"version not a string", "apiVersion: [meshrr.io/v1alpha1]\nkind: AgentConfig\n", "apiVersion", "a string"},
		{"another kind", "apiVersion: meshrr.io/v1alpha1\nkind: ConfigMap\nidentity: {asn: 1}\nmesh: {group: a}\n", "kind", `"ConfigMap": this agent reads AgentConfig; the file starts with`},
		{"missing asn", "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nmesh: {group: a}\n", "identity.asn", "required"},
		{"asn zero is missing", "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 0}\nmesh: {group: a}\n", "identity.asn", "required"},
		{"as_trans", "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 23456}\nmesh: {group: a}\n", "identity.asn", "AS_TRANS"},
		{"asn too big", "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 4294967296}\nmesh: {group: a}\n", "identity.asn", "outside"},
		{"bad router id", "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 1, routerID: 10.0.0}\nmesh: {group: a}\n", "identity.routerID", "auto, podIPv4, hash"},
		{"ipv6 cluster id", "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 1, clusterID: 'fd00::1'}\nmesh: {group: a}\n", "identity.clusterID", "IPv4"},
		{"unknown backend", base + "backend: {type: gobgp}\n", "backend.type", "bird or crpd"},
		{"relative bird socket", base + "backend: {bird: {socket: bird.ctl}}\n", "backend.bird.socket", "absolute path"},
		{"relative bird extra config", base + "backend: {bird: {extraConfigFile: extra.conf}}\n", "backend.bird.extraConfigFile", "absolute path"},
		{"relative crpd licence", base + "backend: {type: crpd, crpd: {licenseFile: license}}\n", "backend.crpd.licenseFile", "absolute path"},
		{"relative crpd key", base + "backend: {type: crpd, crpd: {keyFile: id_ed25519}}\n", "backend.crpd.keyFile", "absolute path"},
		{"netconf off the pod", base + "backend: {type: crpd, crpd: {address: '10.0.0.5:830'}}\n", "backend.crpd.address", "loopback"},
		{"evpn with bird", base + "families: [unicast, evpn]\n", "families[1]", "needs backend.type crpd"},
		{"unknown family", base + "families: [vpnv4]\n", "families[0]", "unicast or evpn"},
		{"family twice", base + "backend: {type: crpd}\nfamilies: [evpn, evpn]\n", "families[1]", "twice"},
		{"no family", base + "families: []\n", "families", "must not be empty"},
		{"restart time too long", base + "gracefulRestart: {restartTime: 5000}\n", "gracefulRestart.restartTime", "1-4095"},
		{"llgr with crpd", base + "backend: {type: crpd}\ngracefulRestart: {longLived: true}\n", "gracefulRestart.longLived", "not rendered for cRPD"},
		{"stale time without llgr", base + "gracefulRestart: {staleTime: 60}\n", "gracefulRestart.staleTime", "only with longLived"},
		{"llgr without gr", base + "gracefulRestart: {enabled: false, longLived: true}\n", "gracefulRestart.longLived", "needs gracefulRestart.enabled"},
		{"negative drain time", base + "drain: {time: -1s}\n", "drain.time", "between 1s and 1h"},
		{"md5 key of no session group", base + "passwordDir: /k\npasswordKeys: [mesh, client-routers]\n", "passwordKeys[1]", `"client-routers" names no session group of this configuration (keys: mesh)`},
		{"md5 keys without a directory", base + "passwordKeys: [mesh]\n", "passwordKeys", "needs passwordDir"},
		{"service name", base + "upstream: {group: c.c, service: Core_RR}\n", "upstream.service", "not a Service name"},
		{"client range over the pod network", base + "clusterNetworks: [10.244.0.0/16]\nclients: [{name: pods, ranges: [10.0.0.0/8]}]\n", "clients[0].ranges[0]", "10.0.0.0/8 overlaps the cluster network 10.244.0.0/16 (clusterNetworks[0]): any pod of the cluster could open a session"},
		{"cluster network with host bits", base + "clusterNetworks: [10.244.0.1/16]\n", "clusterNetworks[0]", "host bits"},
		{"downstream without namespaces", base + "downstream: {namespaces: []}\n", "downstream.namespaces", "required"},
		{"downstream bad namespace", base + "downstream: {namespaces: [Lothlorien]}\n", "downstream.namespaces[0]", "not a namespace name"},
		{"downstream action without limit", base + "downstream: {namespaces: [l], maxPrefixAction: disable}\n", "downstream.maxPrefixAction", "needs maxPrefixes"},
		{"reenableAfter without disable", base + "clients: [{name: r, ranges: [10.0.0.0/8], maxPrefixes: 10, reenableAfter: 5m}]\n", "clients[0].reenableAfter", "only with maxPrefixAction: disable"},
		{"negative reenableAfter", base + "downstream: {namespaces: [l], maxPrefixes: 10, maxPrefixAction: disable, reenableAfter: -5m}\n", "downstream.reenableAfter", "must not be negative"},
		{"client named downstream", base + "clients: [{name: downstream, ranges: [10.0.0.0/8]}]\n", "clients[0].name", "reserved"},
		{"policy towards downstream without it", base + "policy: [{name: r, towards: [downstream], action: reject}]\n", "policy[0].towards[0]", ""},
		{"prepend towards downstream", base + "downstream: {namespaces: [l]}\npolicy: [{name: r, towards: [downstream], prepend: 2}]\n", "policy[0].towards[0]", "iBGP"},
		{"bad drain lock", base + "drain: {lock: Bad_Lock}\n", "drain.lock", "Lease name"},
		{"bad drain side", base + "drain: {sides: [A]}\n", "drain.sides[0]", "side name"},
		{"relative socket", base + "backend: {bird: {socket: bird.ctl}}\n", "backend.bird.socket", "absolute"},
		{"memory limit not a quantity", base + "backend: {bird: {memoryLimit: 512MB}}\n", "backend.bird.memoryLimit", "resources.bird.limits.memory"},
		{"negative memory limit", base + "backend: {bird: {memoryLimit: -1Gi}}\n", "backend.bird.memoryLimit", "positive memory quantity"},
		{"base memory not a quantity", base + "backend: {bird: {baseMemory: lots}}\n", "backend.bird.baseMemory", "such as 512Mi"},
		{"bytes per route negative", base + "backend: {bird: {bytesPerRoute: -5}}\n", "backend.bird.bytesPerRoute", "must be positive, or 0 for the release line's default"},
		{"no such BIRD line", base + "backend: {bird: {version: 4}}\n", "backend.bird.version", "must be 2 (BIRD 2, images.bird) or 3 (BIRD 3, images.bird3)"},
		{"threads with BIRD 2", base + "backend: {bird: {version: 2, threads: 4}}\n", "backend.bird.threads", "BIRD 3 only: set backend.bird.version to 3"},
		{"threads without a line", base + "backend: {bird: {threads: 4}}\n", "backend.bird.threads", "BIRD 3 only"},
		{"too many threads", base + "backend: {bird: {version: 3, threads: 65}}\n", "backend.bird.threads", "must be 1 to 64"},
		{"negative threads", base + "backend: {bird: {version: 3, threads: -1}}\n", "backend.bird.threads", "or 0 for the BIRD container's CPUs"},
		{"missing mesh group", "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 1}\n", "mesh.group", "required"},
		{"upstream is self", base + "upstream: {group: core.core}\n", "upstream.group", "own group"},
		{"maxPeers negative", base + "upstream: {group: b, maxPeers: -1}\n", "upstream.maxPeers", "at least 1"},
		{"epsilon too big", base + "upstream: {group: b, epsilon: 3}\n", "upstream.epsilon", "(0, 1]"},
		{"bad duration", base + "upstream: {group: b, gracePeriod: soon}\n", "", "not a duration"},
		{"bad namespace", base + "upstream: {group: b, namespace: Core_NS}\n", "upstream.namespace", "DNS-1123"},
		{"bad cidr", base + "clients: [{name: r, ranges: [10.0.0.0/33]}]\n", "clients[0].ranges[0]", "not a CIDR"},
		{"host bits", base + "clients: [{name: r, ranges: [10.1.2.3/8]}]\n", "clients[0].ranges[0]", "did you mean 10.0.0.0/8"},
		{"no ranges", base + "clients: [{name: r}]\n", "clients[0].ranges", "required"},
		{"overlapping groups", base + "clients: [{name: a, ranges: [10.0.0.0/8]}, {name: b, ranges: [10.1.0.0/16]}]\n", "clients[1].ranges[0]", "overlaps 10.0.0.0/8 of clients[0].ranges[0]"},
		{"duplicate client", base + "clients: [{name: a, ranges: [10.0.0.0/8]}, {name: a, ranges: [11.0.0.0/8]}]\n", "clients[1].name", "used by another"},
		{"reserved client name", base + "clients: [{name: upstream, ranges: [10.0.0.0/8]}]\n", "clients[0].name", "reserved"},
		{"peer asn on internal", base + "clients: [{name: a, ranges: [10.0.0.0/8], peerASNs: ['1']}]\n", "clients[0].peerASNs", "only external"},
		{"external without asn", base + "clients: [{name: a, type: external, ranges: [10.0.0.0/8]}]\n", "clients[0].peerASNs", "required"},
		{"external with local asn", base + "clients: [{name: a, type: external, ranges: [10.0.0.0/8], peerASNs: ['64000-65535']}]\n", "clients[0].peerASNs[0]", "local AS"},
		{"bad tier", base + "clients: [{name: a, ranges: [10.0.0.0/8], export: {tier: some}}]\n", "clients[0].export.tier", "full, partial or default"},
		{"partial without selection", base + "clients: [{name: a, ranges: [10.0.0.0/8], export: {tier: partial}}]\n", "clients[0].export", "needs prefixes"},
		{"maxLength below length", base + "clients: [{name: a, ranges: [10.0.0.0/8], export: {tier: partial, prefixes: [{prefix: 10.0.0.0/16, maxLength: 8}]}}]\n", "clients[0].export.prefixes[0].maxLength", "between the prefix length 16 and 32"},
		{"bad community", base + "policy: [{name: x, towards: [mesh], matchCommunities: ['65000:70000'], action: reject}]\n", "policy[0].matchCommunities[0]", "not a community"},
		{"policy target unknown", base + "policy: [{name: x, towards: [upstream], action: reject}]\n", "policy[0].towards[0]", "not a group here"},
		{"policy both directions", base + "policy: [{name: x, towards: [mesh], from: [mesh], action: reject}]\n", "policy[0]", "not both"},
		{"policy no action", base + "policy: [{name: x, towards: [mesh]}]\n", "policy[0].action", "needs an action"},
		{"reject with localpref", base + "policy: [{name: x, towards: [mesh], action: reject, setLocalPref: 5}]\n", "policy[0].setLocalPref", "no effect"},
		{"reject with med", base + "policy: [{name: x, towards: [mesh], action: reject, setMED: 5}]\n", "policy[0].setMED", "no effect"},
		{"reject and retag", base + "policy: [{name: x, towards: [mesh], action: reject, addCommunities: ['1:2:3']}]\n", "policy[0].addCommunities", "no effect"},
		{"bad large community to add", base + "policy: [{name: x, towards: [mesh], addCommunities: ['65000:1:4294967296']}]\n", "policy[0].addCommunities[0]", "not a community"},
		{"bad community to remove", base + "policy: [{name: x, towards: [mesh], removeCommunities: ['65000']}]\n", "policy[0].removeCommunities[0]", "not a community"},
		{"add and remove the same", base + "policy: [{name: x, towards: [mesh], removeCommunities: ['65000:1'], addCommunities: ['65000:1']}]\n", "policy[0].addCommunities[0]", "also in removeCommunities"},
		{"prepend towards ibgp", base + "policy: [{name: x, towards: [mesh], prepend: 2}]\n", "policy[0].towards[0]", "is iBGP"},
		{"prepend towards internal clients", base + "clients: [{name: a, ranges: [10.0.0.0/8]}]\npolicy: [{name: x, towards: [clients], prepend: 2}]\n", "policy[0].towards[0]", "internal client group a"},
		{"prepend on import", base + "clients: [{name: a, type: external, peerASNs: ['1'], ranges: [10.0.0.0/8]}]\npolicy: [{name: x, from: [a], prepend: 2}]\n", "policy[0].prepend", "not from"},
		{"prepend too long", base + "clients: [{name: a, type: external, peerASNs: ['1'], ranges: [10.0.0.0/8]}]\npolicy: [{name: x, towards: [a], prepend: 11}]\n", "policy[0].prepend", "1-10 times"},
		{"optimal route reflection", base + "clients: [{name: a, ranges: [10.0.0.0/8], optimalRouteReflection: true}]\n", "clients[0].optimalRouteReflection", "IGP distances"},
		{"addPaths of one", base + "clients: [{name: a, ranges: [10.0.0.0/8], addPaths: 1}]\n", "clients[0].addPaths", "2-64"},
		{"addPaths too many", base + "clients: [{name: a, ranges: [10.0.0.0/8], addPaths: 65}]\n", "clients[0].addPaths", "2-64"},
		{"bfd interval too short", "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core, bfd: {enabled: true, interval: 10ms}}\n", "mesh.bfd.interval", "50ms to 10s"},
		{"bfd interval not whole ms", base + "clients: [{name: a, ranges: [10.0.0.0/8], bfd: {enabled: true, interval: 1500us}}]\n", "clients[0].bfd.interval", "whole milliseconds"},
		{"bfd multiplier too big", base + "upstream: {group: b, bfd: {enabled: true, multiplier: 300}}\n", "upstream.bfd.multiplier", "1-255"},
		{"keepalive above hold", base + "timers: {hold: 9, keepalive: 10}\n", "timers.keepalive", "below the hold time"},
		{"bad listen", base + "status: {listen: '9479'}\n", "status.listen", "host:port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.says)
			if tc.field != "" {
				var fields []string
				for _, fe := range Fields(err) {
					fields = append(fields, fe.Field)
				}
				assert.Contains(t, fields, tc.field, "error: %v", err)
			}
		})
	}
}

func TestValidationGathersEveryProblem(t *testing.T) {
	_, err := Parse([]byte(`
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 0, routerID: nope}
mesh: {group: ""}
clients: [{name: "Bad Name", ranges: [300.0.0.0/8]}]
`))
	require.Error(t, err)
	got := map[string]bool{}
	for _, fe := range Fields(err) {
		got[fe.Field] = true
	}
	for _, want := range []string{"identity.asn", "identity.routerID", "mesh.group", "clients[0].name", "clients[0].ranges[0]"} {
		assert.True(t, got[want], "missing %s in %v", want, err)
	}
	assert.Equal(t, 5, strings.Count(err.Error(), "\n")+1, "one line per problem: %v", err)
}

func TestLoadReportsThePath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 0}\nmesh: {group: a}\n"), 0o600))
	_, err := Load(p)
	require.ErrorContains(t, err, p)
	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorContains(t, err, "read config")
}

// FuzzParse: any input is either a configuration that validates, whose
// canonical form parses again to the same canonical form, or an error;
// never a panic.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/valid-*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: a.b}\nclients: [{name: x, ranges: ['10.0.0.0/8']}]\n"))
	f.Add([]byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: a.b}\ndrain: {time: 1s, sides: [a]}\nfamilies: [evpn]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		again, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("a valid configuration does not marshal: %v", err)
		}
		c2, err := Parse(again)
		if err != nil {
			t.Fatalf("the canonical form of a valid configuration is rejected: %v\n%s", err, again)
		}
		// a fixed point: nil and empty lists, for one, marshal alike
		third, err := yaml.Marshal(c2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, third) {
			t.Fatalf("the canonical form parses to another configuration:\n%s\n---\n%s", again, third)
		}
	})
}

func TestBFDDefaultsAndPeerMetrics(t *testing.T) {
	c, err := Parse([]byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: a, bfd: {enabled: true}}\nclients: [{name: r, ranges: [10.0.0.0/8], peerMetrics: true, bfd: {enabled: true, interval: 300ms}}, {name: s, ranges: [11.0.0.0/8]}]\n"))
	require.NoError(t, err)
	assert.Equal(t, DefaultBFDInterval, c.Mesh.BFD.Interval.Duration)
	assert.Equal(t, DefaultBFDMultiplier, c.Mesh.BFD.Multiplier)
	assert.Equal(t, 300*time.Millisecond, c.Clients[0].BFD.Interval.Duration)
	assert.Nil(t, c.Clients[1].BFD, "BFD stays off unless asked for")
	for g, want := range map[model.GroupName]bool{"mesh": true, "upstream": true, "r": true, "s": false, "nosuch": false} {
		assert.Equal(t, want, c.PeerMetrics(g), string(g))
	}
}

// A number or duration written as 0 is read as 0, never replaced by the
// default (hold: 0 would otherwise silently become 90 s): validation
// refuses it where 0 is out of range and keeps it where 0 means something
// (upstream.holdDown: none; maxPrefixes: no limit).
func TestExplicitZeroIsJudgedAsWrittenNotReplacedByTheDefault(t *testing.T) {
	_, err := Parse([]byte(`apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: core.core, bfd: {enabled: true, multiplier: 0}}
timers: {hold: 0}
drain: {time: 0s}
gracefulRestart: {longLived: true, staleTime: 0}
clients: [{name: r, ranges: [10.0.0.0/8], maxPrefixes: 0, bfd: {enabled: true, multiplier: 0}}]
status: {listen: ":0"}
`))
	require.Error(t, err)
	got := map[string]string{}
	for _, f := range Fields(err) {
		got[f.Field] = f.Msg
	}
	assert.Equal(t, map[string]string{
		"mesh.bfd.multiplier":       "0: must be 1-255 (default 3)",
		"clients[0].bfd.multiplier": "0: must be 1-255 (default 3)",
		"timers.hold":               "0: must be 3-65535 seconds",
		"drain.time":                "0s: must be between 1s and 1h (default 15s)",
		"gracefulRestart.staleTime": "0: must be 1-16777215 seconds",
		"status.listen":             `":0": the port must be 1-65535`,
	}, got)

	c, err := Parse([]byte(`apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: core.core}
upstream: {group: x.core, namespace: x, service: core, holdDown: 0s}
clients: [{name: r, ranges: [10.0.0.0/8], maxPrefixes: 0}]
`))
	require.NoError(t, err)
	assert.Zero(t, c.Upstream.HoldDown.Duration, "upstream.holdDown: 0s is kept")
	assert.Equal(t, DefaultMaxPeers, c.Upstream.MaxPeers, "what upstream leaves out is defaulted")
	assert.Equal(t, DefaultGracePeriod, c.Upstream.GracePeriod.Duration)
	assert.Equal(t, DefaultDrainWait, c.Drain.WaitTimeout.Duration)
}

// The stale time has a default only with long-lived graceful restart.
func TestStaleTimeDefaultsOnlyWithLongLived(t *testing.T) {
	base := "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core}\n"
	c, err := Parse([]byte(base + "gracefulRestart: {longLived: true}\n"))
	require.NoError(t, err)
	assert.Equal(t, DefaultStaleTime, c.GracefulRestart.StaleTime)
	assert.Equal(t, DefaultRestartTime, c.GracefulRestart.RestartTime)
	c, err = Parse([]byte(base + "gracefulRestart: {restartTime: 30}\n"))
	require.NoError(t, err)
	assert.Zero(t, c.GracefulRestart.StaleTime)
	c, err = Parse([]byte(base))
	require.NoError(t, err)
	assert.Zero(t, c.GracefulRestart.StaleTime)
	assert.Equal(t, DefaultRestartTime, c.GracefulRestart.RestartTime)
}

// Sections decoded over their defaults are as strict as the file: a
// misspelt key in them is an error naming it.
func TestUnknownKeysInDefaultedSectionsAreRefused(t *testing.T) {
	base := "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core"
	for _, tc := range []struct{ yaml, key string }{
		{base + "}\nupstream: {group: x.core, namespace: x, service: core, maxPeer: 3}\n", "maxPeer"},
		{base + ", bfd: {enabled: true, intervall: 1s}}\n", "intervall"},
		{base + "}\nclients: [{name: r, ranges: [10.0.0.0/8], bfd: {multiplyer: 3}}]\n", "multiplyer"},
		{base + "}\ngracefulRestart: {longlived: true}\n", "longlived"},
	} {
		_, err := Parse([]byte(tc.yaml))
		assert.ErrorContains(t, err, `unknown field "`+tc.key+`"`, tc.yaml)
	}
}

// Every capability a backend lacks is refused by validation, naming the
// field: the one table (capabilities.go) is consulted, renderers do not
// check again.
func TestBackendCapabilitiesAreRefusedOnce(t *testing.T) {
	base := "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core}\n"
	cases := []struct {
		yaml, field string
		lacks       func(Capabilities) bool
	}{
		{"families: [unicast, evpn]\n", "families[1]", func(c Capabilities) bool { return !c.EVPN }},
		{"clients: [{name: r, ranges: [10.0.0.0/8], maxPrefixes: 10, maxPrefixAction: block}]\n", "clients[0].maxPrefixAction", func(c Capabilities) bool { return !c.MaxPrefixBlock }},
		{"clients: [{name: r, ranges: [10.0.0.0/8], ttlSecurity: true}]\n", "clients[0].ttlSecurity", func(c Capabilities) bool { return !c.TTLSecurity }},
		{"gracefulRestart: {longLived: true}\n", "gracefulRestart.longLived", func(c Capabilities) bool { return !c.LongLivedGR }},
	}
	for _, tc := range cases {
		for _, b := range []BackendType{BackendBird, BackendCRPD} {
			_, err := Parse([]byte(base + "backend: {type: " + string(b) + "}\n" + tc.yaml))
			var fields []string
			for _, f := range Fields(err) {
				fields = append(fields, f.Field)
			}
			if tc.lacks(capabilities[b]) {
				assert.Contains(t, fields, tc.field, "%s cannot: %s", b, tc.yaml)
			} else {
				assert.NotContains(t, fields, tc.field, "%s can: %s", b, tc.yaml)
			}
		}
	}
}

// BIRD 3's threads: the configured number, else the BIRD container's CPUs
// as the downward API gives them, capped; never for BIRD 2, and nothing
// from a value that is not a positive whole number.
func TestBirdThreads(t *testing.T) {
	for _, tc := range []struct {
		b    BirdBackend
		cpus string
		want int
	}{
		{BirdBackend{Version: 3, Threads: 4}, "2", 4},
		{BirdBackend{Version: 3}, "2", 2},
		{BirdBackend{Version: 3}, " 8\n", 8},
		{BirdBackend{Version: 3}, "500", MaxBirdThreads},
		{BirdBackend{Version: 3}, "", 0},
		{BirdBackend{Version: 3}, "1500m", 0},
		{BirdBackend{Version: 3}, "-2", 0},
		{BirdBackend{Version: 2}, "2", 0},
		{BirdBackend{}, "2", 0},
	} {
		assert.Equal(t, tc.want, tc.b.BirdThreads(tc.cpus), "%+v with %q", tc.b, tc.cpus)
	}
}

// bytesPerRoute 0 (or absent) is the release line's measured default;
// a value set is used as it is.
func TestBytesPerRouteByReleaseLine(t *testing.T) {
	base := "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: g}\n"
	for _, tc := range []struct {
		bird string
		want int64
	}{
		{"{}", DefaultBirdBytesPerRoute},
		{"{version: 2}", DefaultBirdBytesPerRoute},
		{"{version: 3}", DefaultBird3BytesPerRoute},
		{"{version: 3, bytesPerRoute: 0}", DefaultBird3BytesPerRoute},
		{"{version: 3, bytesPerRoute: 400}", 400},
		{"{bytesPerRoute: 120}", 120},
	} {
		c, err := Parse([]byte(base + "backend: {bird: " + tc.bird + "}\n"))
		require.NoError(t, err, tc.bird)
		assert.Equal(t, tc.want, c.BytesPerRoute(), tc.bird)
	}
}
