package chart

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshrr/meshrr/agent/config"
)

// Every bad input fails helm template (and so install, upgrade and lint)
// with a message that names the field.
func TestInvalidValuesFailNamingTheField(t *testing.T) {
	base := map[string]string{"groups.core.identity.asn": "65000"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name string
		set  map[string]string
		want []string
	}{
		{"unknown key", with("groups.core.upstraem.group", "x"), []string{"/groups/core", "'upstraem' not allowed"}},
		{"unknown top-level key", with("grups.core.replicas", "1"), []string{"'grups' not allowed"}},
		{"bad CIDR", with("groups.core.clients.r.ranges[0]", "10.0.0.0/33"), []string{"/groups/core/clients/r/ranges/0", "does not match pattern"}},
		{"ASN 0", with("groups.core.identity.asn", "0"), []string{"/groups/core/identity/asn", "minimum"}},
		{"AS_TRANS", with("groups.core.identity.asn", "23456"), []string{"/groups/core/identity/asn"}},
		{"missing ASN", map[string]string{"groups.core.replicas": "1"}, []string{"groups.core.identity.asn: required"}},
		{"no groups", map[string]string{}, []string{"groups: define at least one group"}},
		{"upstream group missing in the release", with("groups.core.upstream.group", "nosuch"), []string{`groups.core.upstream.group: no group "nosuch" in this release (groups: core)`}},
		{"upstream is itself", with("groups.core.upstream.group", "core"), []string{`groups.core.upstream.group: "core" is this group itself`}},
		{"maxPeers below 1", with("groups.core.upstream.group", "x", "groups.core.upstream.release", "other", "groups.core.upstream.maxPeers", "0"), []string{"/groups/core/upstream/maxPeers", "minimum"}},
		{"duplicate side address", with("groups.core.sides.a.loadBalancerIP", "172.30.0.1", "groups.core.sides.b.loadBalancerIP", "172.30.0.1"), []string{"groups.core.sides.b.loadBalancerIP: 172.30.0.1 is already the address of groups.core.sides.a.loadBalancerIP"}},
		{"unknown backend", with("groups.core.backend.type", "gobgp"), []string{"/groups/core/backend/type", "bird", "crpd"}},
		{"crpd without licence secret", with("groups.core.backend.type", "crpd", "groups.core.backend.crpd.image", "crpd:23.4"), []string{"groups.core.backend.crpd.licenseSecret.name: required"}},
		{"crpd without image", with("groups.core.backend.type", "crpd", "groups.core.backend.crpd.licenseSecret.name", "lic"), []string{"groups.core.backend.crpd.image: required"}},
		{"unknown family", with("groups.core.families[0]", "vpnv4"), []string{"/groups/core/families/0", "unicast", "evpn"}},
		{"unknown workload kind", with("groups.core.kind", "ReplicaSet"), []string{"/groups/core/kind", "Deployment"}},
		{"replicas on a DaemonSet", with("groups.core.kind", "DaemonSet", "groups.core.replicas", "3"), []string{"groups.core.replicas: a DaemonSet runs one pod per selected node"}},
		{"group name not a DNS label", with("groups.Core_1.identity.asn", "1"), []string{"'Core_1' not allowed"}},
		{"bad community", with("groups.core.policy[0].name", "x", "groups.core.policy[0].towards[0]", "mesh", "groups.core.policy[0].matchCommunities[0]", "65000-101", "groups.core.policy[0].action", "reject"), []string{"/groups/core/policy/0/matchCommunities/0"}},
		{"optimal route reflection", with("groups.core.clients.r.ranges[0]", "10.0.0.0/8", "groups.core.clients.r.optimalRouteReflection", "true"), []string{"/groups/core/clients/r/optimalRouteReflection", "false"}},
		{"addPaths of one", with("groups.core.clients.r.ranges[0]", "10.0.0.0/8", "groups.core.clients.r.addPaths", "1"), []string{"/groups/core/clients/r/addPaths"}},
		{"addPaths over 64", with("groups.core.clients.r.ranges[0]", "10.0.0.0/8", "groups.core.clients.r.addPaths", "65"), []string{"/groups/core/clients/r/addPaths", "maximum"}},
		{"bad large community to add", with("groups.core.policy[0].name", "x", "groups.core.policy[0].towards[0]", "mesh", "groups.core.policy[0].addCommunities[0]", "65000:1:2:3"), []string{"/groups/core/policy/0/addCommunities/0"}},
		{"prepend 11 times", with("groups.core.policy[0].name", "x", "groups.core.policy[0].towards[0]", "mesh", "groups.core.policy[0].prepend", "11"), []string{"/groups/core/policy/0/prepend", "maximum"}},
		{"hold time of 2", with("groups.core.timers.hold", "2"), []string{"/groups/core/timers/hold", "minimum"}},
		{"bad duration", with("groups.core.upstream.group", "x", "groups.core.upstream.release", "o", "groups.core.upstream.gracePeriod", "soon"), []string{"/groups/core/upstream/gracePeriod"}},
		{"bad client type", with("groups.core.clients.r.ranges[0]", "10.0.0.0/8", "groups.core.clients.r.type", "peer"), []string{"/groups/core/clients/r/type"}},
		{"bad router id", with("groups.core.identity.routerID", "10.0.0"), []string{"/groups/core/identity/routerID"}},
		{"image digest not sha256", with("images.agent.digest", "latest"), []string{"/images/agent/digest", "does not match pattern"}},
		{"release.group id too long", with("groups.abcdefghijabcdefghij.identity.asn", "1"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			release := "core"
			if tc.name == "release.group id too long" {
				release = "r234567890123456789012345678901234567890123456789012"
				tc.want = []string{"groups.abcdefghijabcdefghij: the group id", "longer than 63 characters"}
			}
			_, err := renderE(t, release, "core", nil, tc.set)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// What the schema cannot express (cross-field rules, canonical prefixes,
// community value ranges) the chart's values-check hook refuses with the
// agent's own rules before Helm changes anything: the hook's ConfigMap,
// checked here with the agent's validation, names the field. The e2e suite
// runs the hook on kind (TestValuesCheckRefusesBeforeAnyPodChanges).
func TestValuesCheckHookRefusesWhatTheSchemaCannot(t *testing.T) {
	base := map[string]string{"groups.core.identity.asn": "65000", "groups.core.clients.r.ranges[0]": "10.0.0.0/8"}
	cases := []struct {
		name  string
		set   map[string]string
		field string
		msg   string
	}{
		{"client range with host bits", map[string]string{"groups.core.clients.r.ranges[0]": "10.0.0.1/8"}, "clients[0].ranges[0]", "has host bits set: did you mean 10.0.0.0/8?"},
		{"community value over 65535", map[string]string{"groups.core.policy[0].name": "x", "groups.core.policy[0].towards[0]": "mesh", "groups.core.policy[0].matchCommunities[0]": "65000:70000", "groups.core.policy[0].action": "reject"}, "policy[0].matchCommunities[0]", "is not a community"},
		{"keepalive above the hold time", map[string]string{"groups.core.timers.hold": "9", "groups.core.timers.keepalive": "10"}, "timers.keepalive", "must be below the hold time 9"},
		{"client range over the pod network", map[string]string{"clusterNetworks[0]": "10.244.0.0/16", "groups.core.clients.r.ranges[0]": "10.0.0.0/8"}, "clients[0].ranges[0]", "10.0.0.0/8 overlaps the cluster network 10.244.0.0/16 (clusterNetworks[0]): any pod of the cluster could open a session"},
		{"overlapping client ranges", map[string]string{"groups.core.clients.s.ranges[0]": "10.1.0.0/16"}, "clients[1].ranges[0]", "overlaps 10.0.0.0/8"},
		{"evpn with bird", map[string]string{"groups.core.families[0]": "unicast", "groups.core.families[1]": "evpn"}, "families[1]", "evpn needs backend.type crpd"},
		{"stale time without long-lived graceful restart", map[string]string{"groups.core.gracefulRestart.longLived": "false", "groups.core.gracefulRestart.staleTime": "60"}, "gracefulRestart.staleTime", "only with longLived: true"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set := map[string]string{}
			for k, v := range base {
				set[k] = v
			}
			for k, v := range tc.set {
				set[k] = v
			}
			r := render(t, "core", "core", nil, set) // helm template (schema, templates) accepts it
			var hook *corev1.ConfigMap
			for _, cm := range all[*corev1.ConfigMap](r) {
				if cm.Annotations["helm.sh/hook"] == "pre-install,pre-upgrade" {
					hook = cm
				}
			}
			require.NotNil(t, hook)
			_, err := config.Parse([]byte(hook.Data["groups.core.yaml"]))
			require.Error(t, err, "the agent's check must refuse it")
			fields := config.Fields(err)
			require.Len(t, fields, 1, "%v", err)
			assert.Equal(t, tc.field, fields[0].Field)
			assert.Contains(t, fields[0].Msg, tc.msg)
		})
	}
}
