package routers

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The node list kubectl printed for a 4-node test cluster (trimmed to
// names, pod CIDRs and addresses with jq): each pod CIDR goes through its
// own node's InternalIP, never its Hostname address.
func TestRoutesViaEachNodeOfAKindCluster(t *testing.T) {
	list, err := os.ReadFile("testdata/kind-nodes.json")
	require.NoError(t, err)
	got, err := routesVia(list)
	require.NoError(t, err)
	assert.Equal(t, []string{
		// as jq reads the file: .items[] | podCIDRs[0] via the InternalIP
		"ip route replace 10.244.0.0/24 via 172.18.0.2",
		"ip route replace 10.244.3.0/24 via 172.18.0.4",
		"ip route replace 10.244.2.0/24 via 172.18.0.3",
		"ip route replace 10.244.1.0/24 via 172.18.0.5",
	}, strings.Split(strings.TrimSuffix(got, " && "), " && "))
}

// Dual stack: each family through the node's address of that family.
func TestRoutesViaPairsFamilies(t *testing.T) {
	got, err := routesVia([]byte(`{"items": [{"spec": {"podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]},
	  "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.3"}, {"type": "InternalIP", "address": "fc00:f853:ccd:e793::3"}, {"type": "Hostname", "address": "w1"}]}}]}`))
	require.NoError(t, err)
	assert.Equal(t, "ip route replace 10.244.1.0/24 via 172.18.0.3 && ip -6 route replace fd00:10:244:1::/64 via fc00:f853:ccd:e793::3 && ", got)

	_, err = routesVia([]byte(`{"items": [{"spec": {"podCIDRs": ["10.244.1.0/33"]}}]}`))
	assert.ErrorContains(t, err, "10.244.1.0/33")
}

func TestStartFilesFromTheTemplates(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, tmpl.ExecuteTemplate(&b, "frr.conf.tmpl", struct{ Name, Body string }{"tor", "router bgp 64513\n"}))
	assert.Equal(t, "frr defaults traditional\nhostname tor\nlog stdout\nrouter bgp 64513\n\n", b.String())
	b.Reset()
	require.NoError(t, tmpl.ExecuteTemplate(&b, "bird.conf.tmpl", struct{ RouterID string }{"10.255.0.51"}))
	assert.Equal(t, "router id 10.255.0.51;\nlog stderr { warning, error, fatal, bug };\nprotocol device {}\ninclude \"/etc/bird/conf.d/*.conf\";\n", b.String())
}
