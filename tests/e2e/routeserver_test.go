//go:build e2e

package e2e

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshrr/meshrr/tests/e2e/cluster"
)

// The route-servers example's addresses: the routers' anycast loopback the
// MetalLB speakers peer with, and the two sides' anycast addresses.
const (
	torLoopback = "172.30.255.1"
	vipA        = "172.30.0.1"
	vipB        = "172.30.0.2"
)

var (
	metallbOnce sync.Once
	metallbErr  error
)

// installMetalLB installs MetalLB (BGP mode) once per run.
func installMetalLB(t *testing.T) {
	t.Helper()
	metallbOnce.Do(func() {
		start := time.Now()
		metallbErr = script("tests/kind/metallb.sh", "install")
		logf(t, "metallb: installed and answering in %s", time.Since(start).Round(100*time.Millisecond))
	})
	require.NoError(t, metallbErr, "MetalLB install (tests/kind/metallb.sh)")
}

// torConf is the router connecting the cluster: the anycast loopback, and
// passive eBGP with every MetalLB speaker of the kind network.
func torConf() string {
	return fmt.Sprintf(`interface lo
 ip address %s/32
router bgp 64513
 bgp router-id %s
 no bgp ebgp-requires-policy
 neighbor METALLB peer-group
 neighbor METALLB remote-as 64512
 bgp listen range %s peer-group METALLB
`, torLoopback, routerID(40), kindNet)
}

// dcConf is a data-centre router: eBGP multihop with both sides' anycast
// addresses (reached through the ToR), announcing one prefix, and honouring
// GRACEFUL_SHUTDOWN (RFC 8326) as the README tells routers to.
func dcConf(id string, asn int, tor netip.Addr, announce string) string {
	return fmt.Sprintf(`ip route 172.30.0.0/24 %s
bgp community-list standard GSHUT permit 65535:0
route-map RS-IN permit 10
 match community GSHUT
 set local-preference 0
route-map RS-IN permit 20
router bgp %d
 bgp router-id %s
 no bgp ebgp-requires-policy
 no bgp enforce-first-as
 no bgp network import-check
 neighbor RS peer-group
 neighbor RS remote-as 65000
 neighbor RS ebgp-multihop 4
 neighbor RS timers connect 2
 neighbor %s peer-group RS
 neighbor %s peer-group RS
 address-family ipv4 unicast
  neighbor RS route-map RS-IN in
  network %s
 exit-address-family
`, tor, asn, id, vipA, vipB, announce)
}

const rsSelector = "app.kubernetes.io/name=meshrr"

// rsFixture is the route-servers example with MetalLB, a ToR and two
// data-centre routers peering with both sides.
type rsFixture struct {
	opts          *k8s.KubectlOptions
	tor, dc1, dc2 *Router
	start         time.Time // helm install
}

func startRouteServers(t *testing.T) *rsFixture {
	t.Helper()
	installMetalLB(t)
	f := &rsFixture{opts: namespace(t, "e2e-rs")}
	f.tor = startRouter(t, "tor", torConf())
	require.NoError(t, routerEnv().Steer(netip.PrefixFrom(netip.MustParseAddr(torLoopback), 32), f.tor.Addr), "route the nodes to the ToR's loopback")
	f.dc1 = startRouter(t, "dc1", dcConf(routerID(41), 65101, f.tor.Addr, "10.201.0.0/24"))
	f.dc2 = startRouter(t, "dc2", dcConf(routerID(42), 65102, f.tor.Addr, "10.202.0.0/24"))
	f.start = time.Now()
	helm.Install(t, f.helm(nil), chart(), "rs")
	t.Cleanup(func() {
		o := helmOptions(f.opts, nil, nil)
		o.ExtraArgs["delete"] = []string{"--no-hooks"} // the namespace goes next: no drain needed
		_ = helm.DeleteE(t, o, "rs", true)
	})
	return f
}

func (f *rsFixture) helm(set map[string]string) *helm.Options {
	values := map[string]string{"groups.rs.clients.dcs.ranges[0]": routerRange()}
	for k, v := range set {
		values[k] = v
	}
	return helmOptions(f.opts, []string{example("route-servers", "values.yaml")}, values)
}

// waitExchanging waits until both DC routers are Established with both
// sides and learn each other's prefix with the other's next hop.
func (f *rsFixture) waitExchanging(t *testing.T) {
	t.Helper()
	cluster.Wait(t, "both data centres Established with both sides, exchanging prefixes", 3*time.Minute, 500*time.Millisecond, func(c *assert.CollectT) {
		for _, dc := range []*Router{f.dc1, f.dc2} {
			for _, vip := range []string{vipA, vipB} {
				assert.Equal(c, "Established", dc.neighborState(vip), "%s to %s", dc.Name, vip)
			}
		}
		m1, err1 := f.dc1.routes()
		m2, err2 := f.dc2.routes()
		if assert.NoError(c, err1) && assert.NoError(c, err2) {
			assert.Equal(c, f.dc2.Addr.String(), m1["10.202.0.0/24"].NextHop, "dc1 learns dc2's prefix with dc2's next hop")
			assert.Equal(c, f.dc1.Addr.String(), m2["10.201.0.0/24"].NextHop, "dc2 learns dc1's prefix with dc1's next hop")
		}
	})
}

// TestRouteServersBehindAnycastSides installs the route-servers example
// with MetalLB: speakers announce each side's address only from the node
// running that side's route server; two data-centre routers exchange routes
// through the route servers (next hop unchanged); deleting the side-a pod
// costs the routers only their side-a sessions, which come back to the
// replacement through the same address, and no route.
func TestRouteServersBehindAnycastSides(t *testing.T) {
	f := startRouteServers(t)
	opts, tor, dc1, dc2, start := f.opts, f.tor, f.dc1, f.dc2, f.start
	ps := cluster.WaitReady(t, opts, rsSelector, 2, 3*time.Minute)
	nodeOf := map[string]string{}
	var podA corev1.Pod
	for _, p := range ps {
		nodeOf[p.Labels["meshrr.io/side"]] = p.Status.HostIP
		if p.Labels["meshrr.io/side"] == "a" {
			podA = p
		}
	}
	require.NotEmpty(t, podA.Name, "no side-a route server")

	cluster.Wait(t, "each side's address announced only from the node running it", 2*time.Minute, 500*time.Millisecond, func(c *assert.CollectT) {
		m, err := tor.routes()
		if !assert.NoError(c, err) {
			return
		}
		assert.Equal(c, []string{nodeOf["a"]}, m[vipA+"/32"].NextHops, "side a announced only from the node running it")
		assert.Equal(c, []string{nodeOf["b"]}, m[vipB+"/32"].NextHops, "side b announced only from the node running it")
	})
	logf(t, "route servers: both anycast addresses announced %s after helm install", time.Since(start).Round(100*time.Millisecond))

	f.waitExchanging(t)
	logf(t, "route servers: dc1 and dc2 Established with both sides and exchanging routes %s after helm install", time.Since(start).Round(100*time.Millisecond))

	w1 := watchRoutes(dc1, []string{"10.202.0.0/24"})
	w2 := watchRoutes(dc2, []string{"10.201.0.0/24"})
	const drainTime = "15s" // the chart's default drain.timeSeconds
	del := time.Now()
	k8s.RunKubectl(t, opts, "delete", "pod", "--wait=false", podA.Name)
	var withdrawn, announced, back1, back2 time.Duration
	announcedFrom := ""
	deadline := time.Now().Add(3 * time.Minute)
	for (announced == 0 || back1 == 0 || back2 == 0) && time.Now().Before(deadline) {
		now := time.Since(del)
		if m, err := tor.routes(); err == nil {
			r, ok := m[vipA+"/32"]
			switch {
			case !ok && withdrawn == 0:
				withdrawn = now
			case ok && withdrawn != 0 && announced == 0:
				announced, announcedFrom = now, fmt.Sprint(r.NextHops)
			}
		}
		if announced != 0 {
			if back1 == 0 && dc1.neighborState(vipA) == "Established" {
				back1 = now
			}
			if back2 == 0 && dc2.neighborState(vipA) == "Established" {
				back2 = now
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NotZero(t, withdrawn, "the side-a address was never withdrawn after its pod was deleted")
	require.NotZero(t, announced, "the side-a address was not announced again within 3 minutes")
	require.NotZero(t, back1, "dc1's side-a session did not come back")
	require.NotZero(t, back2, "dc2's side-a session did not come back")
	time.Sleep(3 * time.Second) // keep sampling after the sessions came back
	s1, lost1, gap1, miss1 := w1.finish()
	s2, lost2, gap2, miss2 := w2.finish()
	logf(t, "route servers: side-a pod deleted (it drains %s first): %s withdrawn after %s, announced again after %s from %s; side-a sessions re-established after %s (dc1) and %s (dc2)",
		drainTime, vipA, withdrawn.Round(10*time.Millisecond), announced.Round(10*time.Millisecond), announcedFrom, back1.Round(10*time.Millisecond), back2.Round(10*time.Millisecond))
	logf(t, "route servers: through side b dc1 kept dc2's prefix in %d of %d samples (longest gap %s), dc2 kept dc1's in %d of %d (longest gap %s)",
		s1-lost1, s1, gap1, s2-lost2, s2, gap2)
	assert.Empty(t, miss1)
	assert.Empty(t, miss2)
	assert.Zero(t, lost1, "dc1 lost a route while side a was replaced")
	assert.Zero(t, lost2, "dc2 lost a route while side a was replaced")
}
