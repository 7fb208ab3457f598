package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name string, cidrs []string, addrs ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: cidrs}}
	for _, a := range addrs {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
	}
	n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})
	return n
}

func TestDesiredDualStack(t *testing.T) {
	nodes := []*corev1.Node{
		node("cp", []string{"10.244.0.0/24", "fd00:10:244::/64"}, "172.18.0.2", "fc00::2"),
		node("w1", []string{"10.244.1.0/24", "fd00:10:244:1::/64"}, "172.18.0.3", "fc00::3"),
		node("w2", nil, "172.18.0.4"), // no podCIDR yet
	}
	st := Desired("cp", nodes)
	assert.Equal(t, map[string]string{"10.244.1.0/24": "172.18.0.3", "fd00:10:244:1::/64": "fc00::3"}, st.Routes, "each family through the address of that family")
	var conf struct {
		Plugins []struct {
			Type string
			IPAM struct {
				Ranges [][]struct{ Subnet string }
				Routes []struct{ Dst string }
			}
		}
	}
	require.NoError(t, json.Unmarshal([]byte(st.Conflist), &conf), st.Conflist)
	require.Len(t, conf.Plugins, 2)
	assert.Equal(t, "ptp", conf.Plugins[0].Type)
	assert.Equal(t, "portmap", conf.Plugins[1].Type)
	assert.Equal(t, "10.244.0.0/24", conf.Plugins[0].IPAM.Ranges[0][0].Subnet)
	assert.Equal(t, "fd00:10:244::/64", conf.Plugins[0].IPAM.Ranges[1][0].Subnet)
	assert.Equal(t, "::/0", conf.Plugins[0].IPAM.Routes[1].Dst)

	assert.Empty(t, Desired("w2", nodes).Conflist, "no conflist before the node has a podCIDR")
}
