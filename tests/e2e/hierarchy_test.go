//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshrr/meshrr/tests/e2e/cluster"
)

// routerConf is an FRR RR client of the given RR pods announcing prefixes,
// each optionally tagged with communities (space-separated; A:B:C ones are
// large communities).
// boundary is examples/2regions-hrr/boundary.json: the example's boundary
// policy as data, which make demo checks too.
type boundary struct {
	Announced []struct {
		Prefix      string `json:"prefix"`
		Communities string `json:"communities"`
		Large       string `json:"large"`
	} `json:"announced"`
	Inside  []boundaryExpectation `json:"inside"`
	Outside []boundaryExpectation `json:"outside"`
}

// boundaryExpectation is what a router reads for a prefix: present or not,
// and when set, the best path's local-preference and communities.
type boundaryExpectation struct {
	Prefix      string  `json:"prefix"`
	Present     bool    `json:"present"`
	LocalPref   int     `json:"localPref"`
	Communities *string `json:"communities"`
	Large       *string `json:"large"`
	Says        string  `json:"says"`
}

func readBoundary(t *testing.T) boundary {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "examples", "2regions-hrr", "boundary.json"))
	require.NoError(t, err)
	var b boundary
	require.NoError(t, json.Unmarshal(raw, &b))
	require.NotEmpty(t, b.Announced, "boundary.json announces nothing")
	require.NotEmpty(t, b.Outside, "boundary.json expects nothing outside the region")
	return b
}

// announce is routerConf's announcement: prefix -> communities and large
// communities.
func (b boundary) announce() map[string]string {
	out := map[string]string{}
	for _, a := range b.Announced {
		out[a.Prefix] = strings.TrimSpace(a.Communities + " " + a.Large)
	}
	return out
}

// check asserts each expectation at a router.
func (b boundary) check(c assert.TestingT, r *Router, want []boundaryExpectation) {
	m, err := r.routes()
	if !assert.NoError(c, err) {
		return
	}
	for _, e := range want {
		if !e.Present {
			assert.NotContains(c, m, e.Prefix, "%s: %s", r.Name, e.Says)
			continue
		}
		if !assert.Contains(c, m, e.Prefix, "%s: %s", r.Name, e.Says) {
			continue
		}
		if e.LocalPref != 0 {
			assert.Equal(c, e.LocalPref, m[e.Prefix].LocalPref, "%s: %s", r.Name, e.Says)
		}
		if e.Communities != nil || e.Large != nil {
			std, large, err := r.communities(e.Prefix)
			if !assert.NoError(c, err) {
				continue
			}
			if e.Communities != nil {
				assert.Equal(c, *e.Communities, std, "%s: %s", r.Name, e.Says)
			}
			if e.Large != nil {
				assert.Equal(c, *e.Large, large, "%s: %s", r.Name, e.Says)
			}
		}
	}
}

func routerConf(id string, rrs []string, announce map[string]string) string {
	var b strings.Builder
	i := 10
	maps := map[string]string{}
	for _, comm := range announce {
		if _, ok := maps[comm]; ok || comm == "" {
			continue
		}
		name := fmt.Sprintf("TAG%d", i)
		fmt.Fprintf(&b, "route-map %s permit %d\n", name, i)
		var std, large []string
		for _, c := range strings.Fields(comm) {
			if strings.Count(c, ":") == 2 {
				large = append(large, c)
			} else {
				std = append(std, c)
			}
		}
		if std != nil {
			fmt.Fprintf(&b, " set community %s\n", strings.Join(std, " "))
		}
		if large != nil {
			fmt.Fprintf(&b, " set large-community %s\n", strings.Join(large, " "))
		}
		i += 10
		maps[comm] = name
	}
	fmt.Fprintf(&b, "router bgp 65000\n bgp router-id %s\n no bgp network import-check\n", id)
	for _, rr := range rrs {
		fmt.Fprintf(&b, " neighbor %s remote-as 65000\n", rr)
	}
	b.WriteString(" address-family ipv4 unicast\n")
	for prefix, comm := range announce {
		if comm != "" {
			fmt.Fprintf(&b, "  network %s route-map %s\n", prefix, maps[comm])
		} else {
			fmt.Fprintf(&b, "  network %s\n", prefix)
		}
	}
	b.WriteString(" exit-address-family\n")
	return b.String()
}

// TestHierarchyAndBoundaryPolicy installs the 2regions-hrr example as a
// core release and two region releases (per-region overlays) and proves
// the seed demonstration with FRR routers as region clients: 65000:101
// never leaves its region, 65000:102 arrives elsewhere with local-pref 20,
// the large community 65000:1:103 is re-tagged 65000:2:103 and 65000:199
// removed on the way out, untagged routes reach every client; each region RR peers with at most
// maxPeers core RRs, on different sides.
// chartSource is where helm takes the chart from: the tree's chart
// directory, or a published one (oci://...) with the flags to reach it.
type chartSource struct {
	ref  string
	args []string // after install and upgrade, e.g. --version and --plain-http
}

// options are the helm options of an install or upgrade from src.
func (src chartSource) options(opts *k8s.KubectlOptions, files []string, set map[string]string) *helm.Options {
	o := helmOptions(opts, files, set)
	for _, cmd := range []string{"install", "upgrade"} {
		o.ExtraArgs[cmd] = append(o.ExtraArgs[cmd], src.args...)
	}
	return o
}

// hierarchy is examples/2regions-hrr installed in three namespaces: the core
// (one RR per side) and the two regions (as regionValues runs them).
type hierarchy struct {
	coreNS, lothNS, mirkNS *k8s.KubectlOptions
	cores, loth, mirk      []corev1.Pod
	src                    chartSource
	sets                   map[string]map[string]string // each release's --set values as installed
}

// installHierarchy installs the core and the regions from src (each region
// with regionSet too, the regions named in bird3 on BIRD 3) and waits until
// every region RR has its two upstream sessions, to core RRs of different
// sides.
func installHierarchy(t *testing.T, src chartSource, regionSet map[string]string, bird3 ...string) *hierarchy {
	t.Helper()
	return installHierarchyWith(t, src, map[string]map[string]string{"lothlorien": regionSet, "mirkwood": regionSet}, bird3...)
}

// installHierarchyWith is installHierarchy with values of each release's
// own (by release name).
func installHierarchyWith(t *testing.T, src chartSource, sets map[string]map[string]string, bird3 ...string) *hierarchy {
	t.Helper()
	h := &hierarchy{coreNS: namespace(t, "e2e-core"), lothNS: namespace(t, "e2e-loth"), mirkNS: namespace(t, "e2e-mirk"), src: src, sets: map[string]map[string]string{}}
	// every group behind the chart's NetworkPolicy (on by default, enforced
	// in the test clusters): the whole hierarchy works through it
	coreSet := h.coreSet()
	maps.Copy(coreSet, sets["core"])
	h.sets["core"] = coreSet
	helm.Install(t, src.options(h.coreNS, []string{example("2regions-hrr", "values-core.yaml")}, coreSet), src.ref, "core")
	region := func(opts *k8s.KubectlOptions, name string) {
		set := h.regionSet(name, sets[name])
		if slices.Contains(bird3, name) {
			set["groups."+name+".backend.bird.version"] = "3"
		}
		h.sets[name] = set
		helm.Install(t, src.options(opts, regionValues(t, name), set), src.ref, name)
	}
	start := time.Now()
	region(h.lothNS, "lothlorien")
	region(h.mirkNS, "mirkwood")
	sel := "app.kubernetes.io/name=meshrr"
	h.cores = cluster.WaitReady(t, h.coreNS, sel, 2, 3*time.Minute)
	h.loth = cluster.WaitReady(t, h.lothNS, sel, 2, 3*time.Minute)
	h.mirk = cluster.WaitReady(t, h.mirkNS, sel, 2, 3*time.Minute)
	logf(t, "hierarchy: core (2 sides) and two regions ready %s after the region installs", time.Since(start).Round(time.Second))
	h.waitUpstreams(t)
	return h
}

// regionSet: a region's values on top of its files, with extra: its
// upstream in the core's namespace and its routers' range on the kind
// network.
func (h *hierarchy) regionSet(name string, extra map[string]string) map[string]string {
	set := maps.Clone(extra)
	if set == nil {
		set = map[string]string{}
	}
	set["defaults.upstream.namespace"] = h.coreNS.Namespace
	set["defaults.upstream.siblingNamespaces"] = fmt.Sprintf("{%s,%s}", h.lothNS.Namespace, h.mirkNS.Namespace)
	set["groups."+name+".clients.routers.ranges[0]"] = routerRange()
	return set
}

// coreSet: the core admits the two regions' namespaces.
func (h *hierarchy) coreSet() map[string]string {
	return map[string]string{"groups.core.downstream.namespaces": fmt.Sprintf("{%s,%s}", h.lothNS.Namespace, h.mirkNS.Namespace)}
}

// waitUpstreams: each region RR on two core RRs of different sides (at
// most maxPeers, 2).
func (h *hierarchy) waitUpstreams(t *testing.T) {
	t.Helper()
	side := map[string]string{}
	for _, p := range cluster.Pods(t, h.coreNS, coreSelector) {
		side[p.Status.PodIP] = p.Labels["meshrr.io/side"]
	}
	cluster.Wait(t, "each region RR on two core RRs of different sides", 2*time.Minute, time.Second, func(c *assert.CollectT) {
		for _, set := range []struct {
			opts *k8s.KubectlOptions
			rrs  []string
		}{{h.lothNS, podNames(h.loth)}, {h.mirkNS, podNames(h.mirk)}} {
			for _, p := range set.rrs {
				ss, err := cluster.Sessions(t, set.opts, p)
				if !assert.NoError(c, err) {
					return
				}
				up := cluster.Established(ss, "upstream")
				assert.LessOrEqual(c, len(up), 2, "%s peers with more than maxPeers core RRs", p)
				assert.Len(c, up, 2, "%s: upstream sessions", p)
				sides := map[string]bool{}
				for peer := range up {
					sides[side[peer]] = true
				}
				assert.Len(c, sides, len(up), "%s: upstream peers on one side: %v", p, up)
			}
		}
	})
}

// TestHierarchyAndBoundaryPolicy runs lothlorien on BIRD 3 (images.bird3)
// and the core and mirkwood on BIRD 2, as an operator moving one region at
// a time would: the sessions across the boundary, its policy, the
// impostor and NetworkPolicy checks and mirkwood's uninstall all run
// between the two releases.
func TestHierarchyAndBoundaryPolicy(t *testing.T) {
	h := installHierarchy(t, chartSource{ref: chart()}, netpolValues(), "lothlorien")
	coreNS, lothNS, mirkNS, cores, loth, mirk := h.coreNS, h.lothNS, h.mirkNS, h.cores, h.loth, h.mirk
	for _, g := range []struct {
		opts *k8s.KubectlOptions
		pods []corev1.Pod
		want string
	}{{lothNS, loth, "BIRD 3."}, {mirkNS, mirk, "BIRD 2."}, {coreNS, cores, "BIRD 2."}} {
		for _, p := range g.pods {
			out, err := cluster.Birdc(t, g.opts, p.Name, "show", "status")
			require.NoError(t, err)
			require.Contains(t, out, g.want, "%s/%s runs its group's BIRD release line", g.opts.Namespace, p.Name)
			conf, err := k8s.RunKubectlAndGetOutputE(t, g.opts, "exec", p.Name, "-c", "bird", "--", "cat", "/run/meshrr/bird.conf")
			require.NoError(t, err)
			if g.want == "BIRD 3." {
				// no CPU limit: the node's CPUs, from the downward API
				assert.Contains(t, conf, fmt.Sprintf("\nthreads %d;\n", runtime.NumCPU()), "%s: BIRD 3's threads", p.Name)
			} else {
				assert.NotContains(t, conf, "threads", "%s: no threads for BIRD 2", p.Name)
			}
		}
	}

	bp := readBoundary(t)
	rL := startRouter(t, "loth1", routerConf(routerID(21), []string{loth[0].Status.PodIP}, bp.announce()))
	rL2 := startRouter(t, "loth2", routerConf(routerID(22), []string{loth[1].Status.PodIP}, nil))
	rM := startRouter(t, "mirk1", routerConf(routerID(23), []string{mirk[0].Status.PodIP}, nil))
	cluster.Wait(t, "the boundary policy at the lothlorien and mirkwood routers", 2*time.Minute, time.Second, func(c *assert.CollectT) {
		bp.check(c, rL2, bp.Inside)
		bp.check(c, rM, bp.Outside)
	})
	for range 5 { // and it stays so: what must not leave the region never shows up outside it
		time.Sleep(time.Second)
		bp.check(t, rM, bp.Outside)
	}
	require.False(t, t.Failed(), "the boundary policy of examples/2regions-hrr/boundary.json")

	t.Run("Impostors", func(t *testing.T) {
		impostorSpeakersGetNoSession(t, coreNS, map[*k8s.KubectlOptions][]corev1.Pod{coreNS: cores, lothNS: loth, mirkNS: mirk}, []*Router{rL, rL2, rM})
	})
	t.Run("NetworkPolicy", func(t *testing.T) { networkPolicyHolds(t, coreNS, lothNS, "lothlorien", cores, loth) })
	t.Run("PlanRefusesWhatPodSecurityRefuses", func(t *testing.T) { planRefusesWhatPodSecurityRefuses(t, h) })
	uninstallRegionDrainsFirst(t, mirkNS, mirk)
}

// planRefusesWhatPodSecurityRefuses: turning BFD on in lothlorien, whose
// namespace enforces Pod Security "restricted", is refused by kubectl
// meshrr plan (exit 1, the region's workload named), and the API
// server's own admission refuses a pod of the proposed template for the
// reason the plan gives, word for word. Nothing is upgraded.
func planRefusesWhatPodSecurityRefuses(t *testing.T, h *hierarchy) {
	set := maps.Clone(h.sets["lothlorien"])
	set["groups.lothlorien.clients.routers.bfd.enabled"] = "true"
	ho := helmOptions(h.lothNS, regionValues(t, "lothlorien"), set)
	start := time.Now()
	p, code, stderr := planOf(t, plugin(t), h.lothNS.Namespace, "lothlorien", ho)
	logf(t, "plan of BFD on in a restricted namespace: exit %d in %s", code, time.Since(start).Round(100*time.Millisecond))
	require.Equal(t, 1, code, "the plan refuses the upgrade: %s", stderr)
	require.Len(t, p.Groups, 1)
	refused := p.Groups[0].PodsRefused
	require.Len(t, refused, 1, "the region's Deployment: %+v", refused)

	rendered, err := helm.RenderTemplateE(t, ho, chart(), "lothlorien", nil)
	require.NoError(t, err)
	for _, r := range refused {
		kind, name, _ := strings.Cut(r.Workload, "/")
		var tmpl map[string]any
		for _, doc := range strings.Split(rendered, "\n---") {
			var o struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
				Spec struct {
					Template map[string]any `json:"template"`
				} `json:"spec"`
			}
			if yaml.Unmarshal([]byte(doc), &o) == nil && o.Kind == kind && o.Metadata.Name == name {
				tmpl = o.Spec.Template
			}
		}
		require.NotNil(t, tmpl, "%s in the rendering", r.Workload)
		meta, _ := tmpl["metadata"].(map[string]any)
		pod, err := yaml.Marshal(map[string]any{"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": "pod-security-probe", "labels": meta["labels"]}, "spec": tmpl["spec"]})
		require.NoError(t, err)
		f := filepath.Join(t.TempDir(), "pod.yaml")
		require.NoError(t, os.WriteFile(f, pod, 0o600))
		out, err := k8s.RunKubectlAndGetOutputE(t, h.lothNS, "create", "--dry-run=server", "-f", f)
		require.Error(t, err, "the API server admits a pod of %s: %s", r.Workload, out)
		assert.Contains(t, out, "violates "+r.Why, "%s: the API server's refusal is the plan's", r.Workload)
	}
}

// uninstallRegionDrainsFirst: helm uninstall of a region while a router
// homed on both of its RRs samples the other region's routes (through the
// core). The chart's pre-delete hook stops the RRs one at a time with
// their drains, while the Services and the drain Lease permission still
// exist: the router loses nothing while it still has a session to an RR
// of the region, and no pod waits out its drain wait timeout.
func uninstallRegionDrainsFirst(t *testing.T, opts *k8s.KubectlOptions, rrPods []corev1.Pod) {
	var rrs []string
	for _, p := range rrPods {
		rrs = append(rrs, p.Status.PodIP)
	}
	router := startRouter(t, "mirk-dual", routerConf(routerID(24), rrs, nil))
	prefixes := []string{"10.100.0.0/24", "10.102.0.0/24"} // from lothlorien, through the core
	cluster.Wait(t, "a path through every region RR at the dual-homed router", 2*time.Minute, time.Second, func(c *assert.CollectT) {
		m, err := router.routes()
		if assert.NoError(c, err) {
			for _, p := range prefixes {
				assert.Contains(c, m, p)
				assert.Len(c, m[p].NextHops, len(rrs), "%s: a path through every region RR", p)
			}
		}
	})
	sessionUp := func() bool {
		for _, a := range rrs {
			if router.neighborState(a) == "Established" {
				return true
			}
		}
		return false
	}
	watch := watchRoutesWhile(router, prefixes, sessionUp)
	start := time.Now()
	require.NoError(t, helm.DeleteE(t, helmOptions(opts, nil, nil), "mirkwood", true))
	took := time.Since(start)
	samples, lost, longest, _ := watch.finish()
	left := cluster.Pods(t, opts, "app.kubernetes.io/name=meshrr")
	assert.Empty(t, podNames(left), "the uninstall hook returned before the RRs stopped")
	logf(t, "uninstall: helm uninstall of a 2-RR region took %s; %d samples of a dual-homed router while it had a session to the region, %d prefix-samples missing, longest gap %s (goal 0 until the last RR stops)",
		took.Round(100*time.Millisecond), samples, lost, longest)
	assert.Positive(t, samples, "no sample taken while the region's RRs were up")
	assert.Zero(t, lost, "routes lost while an RR of the region was still up")

	// every pod drained (one at a time on the Lease), none waited out its timeout
	out, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "events", "--field-selector", "reason=Draining", "-o", "jsonpath={range .items[*]}{.involvedObject.name}: {.message}{\"\\n\"}{end}")
	require.NoError(t, err)
	drains := strings.Split(strings.TrimSpace(out), "\n")
	logf(t, "uninstall: drain reports:\n%s", out)
	assert.Len(t, drains, len(rrPods), "one Draining event per RR")
	for _, d := range drains {
		assert.NotContains(t, d, "timed out", "a pod waited out its drain wait timeout")
	}
	failed, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "events", "--field-selector", "reason=DrainFailed", "-o", "name")
	require.NoError(t, err)
	assert.Empty(t, strings.TrimSpace(failed), "drain failures")
}

func podNames(ps []corev1.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// TestDualHomedClientsLoseNoRouteWhenASideGoes kills every side-a pod at once
// while a client peering with both sides is sampled every 200 ms.
func TestDualHomedClientsLoseNoRouteWhenASideGoes(t *testing.T) {
	opts := namespace(t, "e2e-sides")
	helm.Install(t, helmOptions(opts, []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.clients.routers.ranges[0]": routerRange(),
	}), chart(), "core")
	ps := cluster.WaitReady(t, opts, coreSelector, 2, 3*time.Minute)
	var rrs []string
	var sideA []string
	for _, p := range ps {
		rrs = append(rrs, p.Status.PodIP)
		if p.Labels["meshrr.io/side"] == "a" {
			sideA = append(sideA, p.Name)
		}
	}
	require.NotEmpty(t, sideA)
	announce := map[string]string{}
	for i := range 20 {
		announce[fmt.Sprintf("10.210.%d.0/24", i)] = ""
	}
	startRouter(t, "origin", routerConf(routerID(31), rrs, announce))
	client := startRouter(t, "client", routerConf(routerID(32), rrs, nil))
	cluster.Wait(t, "the client holds the origin's prefixes", 2*time.Minute, time.Second, func(c *assert.CollectT) {
		m, err := client.routes()
		if assert.NoError(c, err) {
			for p := range announce {
				assert.Contains(c, m, p)
			}
		}
	})

	var prefixes []string
	for p := range announce {
		prefixes = append(prefixes, p)
	}
	watch := watchRoutes(client, prefixes)
	start := time.Now()
	// killed at once, no graceful shutdown: the clients' sessions to side b
	// carry everything (graceful shutdown is the rolling-upgrade suite's)
	k8s.RunKubectl(t, opts, append([]string{"delete", "pod", "--wait=false", "--grace-period=0", "--force"}, sideA...)...)
	// The routers peer with pod addresses here, so they cannot follow a
	// replacement pod to its new address: that needs the side's stable
	// LoadBalancer address (the route-servers example with MetalLB). What
	// this proves is that nothing is lost while side a is gone and while its
	// replacement joins the mesh.
	cluster.WaitReplaced(t, opts, coreSelector, sideA, 2, 3*time.Minute)
	meshSettled(t, opts, 2, 2*time.Minute)
	logf(t, "sides: every side-a pod killed -> replacement ready and meshed in %s", time.Since(start).Round(100*time.Millisecond))
	time.Sleep(5 * time.Second) // keep sampling after the replacement joined
	samples, lost, longest, missing := watch.finish()
	assert.Empty(t, missing, "prefixes still missing")
	logf(t, "sides: %d samples of the dual-homed client's table, %d prefix-samples missing, longest gap %s (goal 0)", samples, lost, longest)
	assert.Zero(t, lost, "a dual-homed client lost routes while side a was deleted")

	// one disruption budget for the group across its sides: of two
	// evictions at once (a drain of two nodes), one per side, the second is
	// refused while the first side's RR is down
	bySide := map[string]string{}
	for _, p := range cluster.Pods(t, opts, coreSelector) {
		bySide[p.Labels["meshrr.io/side"]] = p.Name
	}
	require.Len(t, bySide, 2)
	// the budget's status follows the replaced pod
	cluster.Wait(t, "side a's RR evicted", time.Minute, time.Second, func(c *assert.CollectT) {
		assert.NoError(c, evict(t, opts, bySide["a"]))
	})
	err := evict(t, opts, bySide["b"])
	require.Error(t, err, "side b evicted while side a's RR is down")
	assert.Contains(t, err.Error(), "disruption budget")
	logf(t, "sides: side a's RR evicted; side b's eviction at the same time refused by the group's one disruption budget")
}

// evict asks the Eviction API to evict a pod, as kubectl drain does.
func evict(t *testing.T, opts *k8s.KubectlOptions, pod string) error {
	f := filepath.Join(t.TempDir(), "eviction.json")
	body := fmt.Sprintf(`{"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": %q, "namespace": %q}}`, pod, opts.Namespace)
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		return err
	}
	out, err := k8s.RunKubectlAndGetOutputE(t, opts, "create", "--raw", fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/eviction", opts.Namespace, pod), "-f", f)
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// TestSingleUpstreamReplacedAndRegionChurn: a region RR with maxPeers 1
// keeps its one upstream session until the replacement upstream is
// Established (make before break), measured at a router of the region
// sampling a route that enters through the core; then every region RR pod
// is replaced twice and, once the graceful-restart time has passed, the
// core RRs hold no session for a peer that has gone.
func TestSingleUpstreamReplacedAndRegionChurn(t *testing.T) {
	coreNS := namespace(t, "e2e-up1-core")
	regNS := namespace(t, "e2e-up1-reg")
	const grTime = 10 * time.Second
	helm.Install(t, helmOptions(coreNS, []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.clients.routers.ranges[0]":   routerRange(),
		"groups.core.gracefulRestart.restartTime": fmt.Sprint(int(grTime.Seconds())),
		"groups.core.downstream.namespaces[0]":    regNS.Namespace,
	}), chart(), "core")
	helm.Install(t, helmOptions(regNS, regionValues(t, "lothlorien"), map[string]string{
		"defaults.upstream.namespace":                 coreNS.Namespace,
		"defaults.upstream.maxPeers":                  "1",
		"defaults.upstream.siblingNamespaces":         fmt.Sprintf("{%s}", regNS.Namespace),
		"defaults.replicas":                           "1",
		"groups.lothlorien.clients.routers.ranges[0]": routerRange(),
	}), chart(), "lothlorien")
	cores := cluster.WaitReady(t, coreNS, coreSelector, 2, 3*time.Minute)
	regSel := "app.kubernetes.io/name=meshrr,meshrr.io/group-name=lothlorien"
	reg := cluster.WaitReady(t, regNS, regSel, 1, 3*time.Minute)

	var coreIPs []string
	for _, p := range cores {
		coreIPs = append(coreIPs, p.Status.PodIP)
	}
	announce := map[string]string{"10.230.0.0/24": "", "10.230.1.0/24": ""}
	origin := startRouter(t, "up1-origin", routerConf(routerID(41), coreIPs, announce))
	client := startRouter(t, "up1-client", routerConf(routerID(42), []string{reg[0].Status.PodIP}, nil))
	prefixes := []string{"10.230.0.0/24", "10.230.1.0/24"}
	var upstream string
	cluster.Wait(t, "the client holds the prefixes through the single upstream", 3*time.Minute, time.Second, func(c *assert.CollectT) {
		m, err := client.routes()
		if assert.NoError(c, err) {
			for _, p := range prefixes {
				assert.Contains(c, m, p)
			}
		}
		ss, err := cluster.Sessions(t, regNS, reg[0].Name)
		if assert.NoError(c, err) {
			up := cluster.Established(ss, "upstream")
			assert.Len(c, up, 1, "maxPeers 1: one upstream session")
			for peer := range up {
				upstream = peer
			}
		}
	})
	var victim string
	for _, p := range cores {
		if p.Status.PodIP == upstream {
			victim = p.Name
		}
	}
	require.NotEmpty(t, victim, "the upstream %s is no core pod", upstream)

	// the single upstream is replaced (graceful delete: it drains first)
	watch := watchRoutes(client, prefixes)
	start := time.Now()
	k8s.RunKubectl(t, coreNS, "delete", "pod", victim, "--wait=false")
	var replacement string
	cluster.Wait(t, "the region off the stopped upstream, on one other", 3*time.Minute, time.Second, func(c *assert.CollectT) {
		ss, err := cluster.Sessions(t, regNS, reg[0].Name)
		if !assert.NoError(c, err) {
			return
		}
		up := cluster.Established(ss, "upstream")
		assert.NotContains(c, up, upstream, "still peering with the stopped upstream")
		assert.Len(c, up, 1)
		for peer := range up {
			replacement = peer
		}
	})
	took := time.Since(start)
	time.Sleep(3 * time.Second)
	samples, lost, longest, missing := watch.finish()
	logf(t, "maxPeers 1: upstream %s (%s) replaced by %s in %s; %d samples at a region router, %d prefix-samples missing, longest gap %s (goal 0)",
		upstream, victim, replacement, took.Round(100*time.Millisecond), samples, lost, longest)
	if !assert.Empty(t, missing) || !assert.Zero(t, lost, "the region lost its upstream routes while its single upstream was replaced") {
		// what the region RR holds now: the namespace dump comes after the churn below has replaced it
		out, _ := cluster.Birdc(t, regNS, reg[0].Name, "show", "protocols", "all")
		routes, _ := cluster.Birdc(t, regNS, reg[0].Name, "show", "route", "all")
		logs, _ := k8s.RunKubectlAndGetOutputE(t, regNS, "logs", reg[0].Name, "-c", "agent", "--tail", "40")
		t.Logf("=== region RR %s right after the replacement\n%s\n%s\n%s", reg[0].Name, out, routes, logs)
	}

	// churn: the region RR pod replaced twice; afterwards the core keeps no
	// session to an address that no pod has any more
	for round := range 2 {
		old := cluster.Pods(t, regNS, regSel)
		require.Len(t, old, 1)
		k8s.RunKubectl(t, regNS, "delete", "pod", old[0].Name)
		cluster.Wait(t, fmt.Sprintf("round %d: the region RR replaced and Ready", round), 3*time.Minute, time.Second, func(c *assert.CollectT) {
			ps := cluster.Pods(t, regNS, regSel)
			if assert.Len(c, ps, 1) {
				assert.NotEqual(c, old[0].UID, ps[0].UID, "round %d: not replaced yet", round)
				assert.True(c, cluster.IsReady(ps[0]))
			}
		})
	}
	churned := time.Now()
	live := map[string]bool{origin.Addr.String(): true, client.Addr.String(): true}
	for _, ns := range []*k8s.KubectlOptions{coreNS, regNS} {
		for _, p := range cluster.Pods(t, ns, "app.kubernetes.io/name=meshrr") {
			live[p.Status.PodIP] = true
		}
	}
	goneSessions := func() (n int, which []string) {
		for _, p := range cluster.Pods(t, coreNS, coreSelector) {
			ss, err := cluster.Sessions(t, coreNS, p.Name)
			require.NoError(t, err)
			for _, s := range ss {
				if !live[s.Peer] {
					n++
					which = append(which, fmt.Sprintf("%s->%s (%s, %s)", p.Name, s.Peer, s.Name, s.State))
				}
			}
		}
		return n, which
	}
	atOnce, _ := goneSessions()
	var n int
	var which []string
	cluster.Wait(t, "no session left for gone peers", grTime+2*time.Minute, 2*time.Second, func(c *assert.CollectT) {
		n, which = goneSessions()
		assert.Zero(c, n, "sessions for gone peers: %v", which)
	})
	logf(t, "churn: region RR replaced twice; core sessions for gone peers: %d right after, %d after %s (graceful-restart time %s; goal 0)",
		atOnce, n, time.Since(churned).Round(time.Second), grTime)
}
