//go:build e2e

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/tests/e2e/cluster"
)

// TestDualStackMeshAndIPv6Clients runs on its own dual-stack kind cluster
// (IPv4 and IPv6 pods): the core RRs mesh over both families, and an IPv6
// prefix announced by one FRR router over an IPv6 session reaches another
// router through the RRs with its next hop unchanged.
func TestDualStackMeshAndIPv6Clients(t *testing.T) {
	start := time.Now()
	name := clusterName + "-dual"
	env := []string{"CLUSTER_CONFIG=cluster-dual.yaml"}
	require.NoError(t, scriptIn(name, env, "tests/kind/cluster.sh", "up"), "the dual-stack cluster could not be created")
	if os.Getenv("KEEP_CLUSTER") != "1" {
		t.Cleanup(func() { _ = scriptIn(name, nil, "tests/kind/cluster.sh", "down") })
	}
	require.NoError(t, scriptIn(name, nil, "tests/kind/cluster.sh", "load", agentImage, birdImage))
	logf(t, "dual stack: cluster %s up and loaded in %s", name, time.Since(start).Round(time.Second))
	// the helpers work on the current cluster: this one, for this test
	prev := kubeconfig
	kubeconfig = filepath.Join(kindWork(), "kubeconfig-"+name)
	t.Cleanup(func() { kubeconfig = prev })

	v6net := ""
	out, err := exec.Command("docker", "network", "inspect", "kind", "-f", "{{range .IPAM.Config}}{{println .Subnet}}{{end}}").Output()
	require.NoError(t, err)
	for _, s := range strings.Fields(string(out)) {
		if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Is6() {
			v6net = p.String()
		}
	}
	require.NotEmpty(t, v6net, "the kind Docker network has no IPv6 subnet")

	opts := namespace(t, "e2e-dual")
	helm.Install(t, helmOptions(opts, []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.clients.routers.ranges": fmt.Sprintf("{%s,%s}", routerRange(), v6net),
	}), chart(), "core")
	ps := cluster.WaitReady(t, opts, coreSelector, 2, 3*time.Minute)
	v6 := map[string]string{}
	for _, p := range ps {
		for _, ip := range p.Status.PodIPs {
			if a := netip.MustParseAddr(ip.IP); a.Is6() {
				v6[p.Name] = a.String()
			}
		}
		require.Contains(t, v6, p.Name, "%s has no IPv6 address: %v", p.Name, p.Status.PodIPs)
	}
	cluster.Wait(t, "both RRs meshed over IPv4 and IPv6", 2*time.Minute, time.Second, func(c *assert.CollectT) {
		for _, p := range ps {
			ss, err := cluster.Sessions(t, opts, p.Name)
			if !assert.NoError(c, err) {
				return
			}
			mesh := cluster.Established(ss, "mesh")
			assert.Len(c, mesh, 2, "%s: one mesh session per family", p.Name)
			for q, a := range v6 {
				if q != p.Name {
					assert.Contains(c, mesh, a, "%s has no IPv6 mesh session to %s", p.Name, q)
				}
			}
		}
	})
	logf(t, "dual stack: both RRs meshed over IPv4 and IPv6 %s after the cluster creation began", time.Since(start).Round(time.Second))

	conf := func(id, rr, announce string) string {
		c := fmt.Sprintf("router bgp 65000\n bgp router-id %s\n no bgp default ipv4-unicast\n no bgp network import-check\n neighbor %s remote-as 65000\n neighbor %s timers connect 2\n address-family ipv6 unicast\n  neighbor %s activate\n", id, rr, rr, rr)
		if announce != "" {
			c += "  network " + announce + "\n"
		}
		return c + " exit-address-family\n"
	}
	r1 := startRouter(t, "v6-origin", conf(routerID(71), v6[ps[0].Name], "2001:db8:71::/48"))
	r2 := startRouter(t, "v6-client", conf(routerID(72), v6[ps[1].Name], ""))
	r1v6 := globalIPv6(t, r1.Name)
	cluster.Wait(t, "the IPv6 prefix across the RRs, next hop unchanged", 2*time.Minute, time.Second, func(c *assert.CollectT) {
		m, err := r2.routesOf("ipv6")
		if assert.NoError(c, err) && assert.Contains(c, m, "2001:db8:71::/48") {
			assert.Equal(c, r1v6, m["2001:db8:71::/48"].NextHop, "next hop unchanged")
		}
	})
	logf(t, "dual stack: 2001:db8:71::/48 from %s reached %s through both RRs over IPv6 sessions, next hop %s", r1.Name, r2.Name, r1v6)
}

func globalIPv6(t *testing.T, container string) string {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}", container).Output()
	require.NoError(t, err)
	a := strings.TrimSpace(string(out))
	require.NotEmpty(t, a, "%s has no IPv6 address on the kind network", container)
	return a
}
