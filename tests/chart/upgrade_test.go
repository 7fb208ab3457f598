package chart

import (
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// documents splits a render into documents keyed by their "# Source" path
// plus kind/name, for before/after comparisons. Hooks are left out: Helm
// runs them around an install, upgrade or uninstall and they are not part
// of the running release an upgrade changes.
func documents(t *testing.T, out string) map[string]string {
	t.Helper()
	docs := map[string]string{}
	for _, d := range strings.Split(out, "\n---") {
		var kind, name string
		for _, l := range strings.Split(d, "\n") {
			if strings.HasPrefix(l, "kind: ") && kind == "" {
				kind = strings.TrimPrefix(l, "kind: ")
			}
			if strings.HasPrefix(l, "  name: ") && name == "" {
				name = strings.TrimPrefix(l, "  name: ")
			}
		}
		if kind != "" && !strings.Contains(d, "\n    helm.sh/hook: ") {
			docs[kind+"/"+name] = d
		}
	}
	return docs
}

func changed(before, after map[string]string) []string {
	var out []string
	for k, v := range after {
		if before[k] != v {
			out = append(out, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out = append(out, k+" (removed)")
		}
	}
	return out
}

func TestScaleOutChangesOnlyReplicas(t *testing.T) {
	files := []string{example("2regions-hrr", "values-core.yaml")}
	before, err := renderE(t, "core", "core", files, map[string]string{"groups.core.replicas": "3"})
	require.NoError(t, err)
	after, err := renderE(t, "core", "core", files, map[string]string{"groups.core.replicas": "5"})
	require.NoError(t, err)
	diff := changed(documents(t, before), documents(t, after))
	sort.Strings(diff)
	assert.Equal(t, []string{"Deployment/core-meshrr-core-a", "Deployment/core-meshrr-core-b"}, diff, "replicas are per side")
	for _, d := range diff {
		b, a := documents(t, before)[d], documents(t, after)[d]
		assert.Equal(t, strings.Replace(b, "replicas: 3", "replicas: 5", 1), a, "%s: only spec.replicas changes", d)
	}
}

func TestAddingAClientRangeRollsNoPod(t *testing.T) {
	files := []string{example("2regions-hrr", "values-core.yaml")}
	before, err := renderE(t, "core", "core", files, nil)
	require.NoError(t, err)
	after, err := renderE(t, "core", "core", files, map[string]string{"groups.core.clients.routers.ranges[0]": "fd00:172:20::/56"})
	require.NoError(t, err)
	diff := changed(documents(t, before), documents(t, after))
	sort.Strings(diff)
	assert.Equal(t, []string{"ConfigMap/core-meshrr-core", "NetworkPolicy/core-meshrr-core-a", "NetworkPolicy/core-meshrr-core-b"}, diff,
		"the agent hot-reloads its ConfigMap and the NetworkPolicy admits the range: workloads (pod templates) must not change")
	assert.Contains(t, documents(t, after)["NetworkPolicy/core-meshrr-core-a"], "fd00:172:20::/56")
}

func TestResourceNamesAreStableAcrossUpgrades(t *testing.T) {
	files := []string{example("route-servers", "values.yaml")}
	a, err := renderE(t, "rs", "rs", files, nil)
	require.NoError(t, err)
	b, err := renderE(t, "rs", "rs", files, map[string]string{"groups.rs.replicas": "2", "images.agent.tag": "v2", "groups.rs.clients.dcs.multihop": "8"})
	require.NoError(t, err)
	var namesA, namesB []string
	for k := range documents(t, a) {
		namesA = append(namesA, k)
	}
	for k := range documents(t, b) {
		namesB = append(namesB, k)
	}
	assert.ElementsMatch(t, namesA, namesB)
}

// Settings that reset every session (config.KeepSessionSettings) roll the pods
// (one at a time, each draining) through the pod template's checksum;
// the running agents keep their values, so the ConfigMap reload cannot
// reset every RR at once. Policy and peers still change in place.
func TestSessionSettingsRollThePodsAndNothingElseDoes(t *testing.T) {
	files := []string{example("2regions-hrr", "values.yaml"), example("2regions-hrr", "values-lothlorien.yaml")}
	base, err := renderE(t, "lothlorien", "lothlorien", files, nil)
	require.NoError(t, err)
	workloads := []string{"DaemonSet/lothlorien-meshrr-lothlorien-a", "DaemonSet/lothlorien-meshrr-lothlorien-b"} // one per side
	for _, set := range []map[string]string{
		{"defaults.timers.hold": "9", "defaults.timers.keepalive": "3"},
		{"defaults.identity.asn": "65001"},
		{"defaults.identity.clusterID": "10.0.0.1"},
		{"defaults.gracefulRestart.restartTime": "30"},
		{"groups.lothlorien.clients.routers.addPaths": "2"},
		{"groups.lothlorien.clients.routers.multihop": "2"},
		{"groups.lothlorien.clients.routers.ttlSecurity": "true"},
		{"groups.lothlorien.clients.routers.type": "external", "groups.lothlorien.clients.routers.peerASNs[0]": "65100-65199"},
	} {
		after, err := renderE(t, "lothlorien", "lothlorien", files, set)
		require.NoError(t, err)
		assert.ElementsMatch(t, append([]string{"ConfigMap/lothlorien-meshrr-lothlorien"}, workloads...), changed(documents(t, base), documents(t, after)), "%v", set)
		for _, w := range workloads {
			b, a := documents(t, base)[w], documents(t, after)[w]
			assert.NotEqual(t, b, a)
			assert.Equal(t, 1, lineDiff(b, a), "%v: only the session-settings checksum of %s changes", set, w)
		}
	}
	// BIRD 3's threads: the daemon takes them at its start (the line
	// changes the image as well)
	bird3 := map[string]string{"groups.lothlorien.backend.bird.version": "3"}
	base3, err := renderE(t, "lothlorien", "lothlorien", files, bird3)
	require.NoError(t, err)
	after, err := renderE(t, "lothlorien", "lothlorien", files, map[string]string{"groups.lothlorien.backend.bird.version": "3", "groups.lothlorien.backend.bird.threads": "2"})
	require.NoError(t, err)
	assert.ElementsMatch(t, append([]string{"ConfigMap/lothlorien-meshrr-lothlorien"}, workloads...), changed(documents(t, base3), documents(t, after)), "threads")
	for _, w := range workloads {
		assert.Equal(t, 1, lineDiff(documents(t, base3)[w], documents(t, after)[w]), "threads: only the session-settings checksum of %s changes", w)
	}
	for _, set := range []map[string]string{
		{"defaults.policy[0].name": "other", "defaults.policy[0].towards[0]": "upstream", "defaults.policy[0].matchCommunities[0]": "65000:9", "defaults.policy[0].action": "reject"},
		{"defaults.upstream.maxPeers": "1"},
		{"groups.lothlorien.clients.routers.peerMetrics": "true", "groups.lothlorien.mesh.bfd.interval": "300ms"},
		{"groups.lothlorien.clients.routers.maxPrefixes": "100", "groups.lothlorien.clients.routers.nextHopUnchanged": "true"},
		{"groups.lothlorien.clients.routers.export.tier": "default"},
		{"groups.lothlorien.clients.routers.maxPrefixAction": "warn", "groups.lothlorien.clients.routers.maxPrefixes": "100"},
	} {
		after, err := renderE(t, "lothlorien", "lothlorien", files, set)
		require.NoError(t, err)
		assert.Equal(t, []string{"ConfigMap/lothlorien-meshrr-lothlorien"}, changed(documents(t, base), documents(t, after)), "%v applies in place", set)
	}
}

// lineDiff counts the lines that differ between two equally long texts.
func lineDiff(a, b string) int {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(al) != len(bl) {
		return -1
	}
	n := 0
	for i := range al {
		if al[i] != bl[i] {
			n++
		}
	}
	return n
}
