package app

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/plan"
)

// The cluster's own addresses a client range must not admit unguarded:
// the pod's address on the pod network (not when the pod uses its node's
// network) and the API server's Service address.
func TestReadPodKnowsTheClusterAddresses(t *testing.T) {
	env := map[string]string{"POD_NAME": "rr-0", "POD_NAMESPACE": "core", "POD_IPS": "10.244.1.7,fd00:244::7", "HOST_IP": "172.18.0.3", "KUBERNETES_SERVICE_HOST": "10.96.0.1"}
	p, err := readPod(func(k string) string { return env[k] })
	require.NoError(t, err)
	var got []netip.Addr
	for _, c := range p.cluster {
		got = append(got, c.Addr)
	}
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("10.244.1.7"), netip.MustParseAddr("fd00:244::7"), netip.MustParseAddr("10.96.0.1")}, got)
	assert.Contains(t, p.cluster[2].What, "the API server's Service address")

	env["POD_IPS"], env["HOST_IP"] = "172.18.0.3", "172.18.0.3" // hostNetwork: the node's address is the routers' network
	p, err = readPod(func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, []plan.ClusterAddr{{Addr: netip.MustParseAddr("10.96.0.1"), What: p.cluster[0].What}}, p.cluster)
}
