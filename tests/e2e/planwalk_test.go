//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshrr/meshrr/tests/e2e/cluster"
	"github.com/meshrr/meshrr/tests/e2e/promtext"
	"github.com/meshrr/meshrr/tests/e2e/walk"
)

// planJSON is what kubectl meshrr plan -o json prints (the fields the walk
// reads).
type planJSON struct {
	Groups []struct {
		Group  string `json:"group"`
		Status string `json:"status"`
		Rolls  []struct {
			Workload string `json:"workload"`
		} `json:"rolls"`
		PodsRefused []struct {
			Workload string `json:"workload"`
			Why      string `json:"why"`
		} `json:"podsRefused"`
		Pods []struct {
			Pod      string `json:"pod"`
			Rolls    bool   `json:"rolls"`
			Error    string `json:"error"`
			Sessions []struct {
				Group   string   `json:"group"`
				Peer    string   `json:"peer"`
				Outcome string   `json:"outcome"`
				Why     []string `json:"why"`
			} `json:"sessions"`
		} `json:"pods"`
	} `json:"groups"`
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// release is one release of the walk: where it runs and the values it was
// installed with.
type release struct {
	opts  *k8s.KubectlOptions
	files []string
	set   map[string]string
}

// TestPlanWalk walks the 2regions-hrr releases through a seeded sequence
// of helm upgrades (tests/e2e/walk; PLAN_WALK_STEPS, default 20, and
// PLAN_WALK_SEED): before each, kubectl meshrr plan predicts what every
// session of the release's RR pods gets; then the upgrade runs and the
// RRs' own session reads (state-change times, update counters at both
// ends of the sessions between RRs, and at a router homed on the
// lothlorien RRs) say what happened. Every session's prediction is counted
// against its observation in a confusion table, printed; none may differ.
// The router samples the RRs' routes during each step: in a step predicted
// hitless it loses none. make plan-walk runs it (200 steps); make
// e2e leaves it out until make test has room for its 20 steps.
func TestPlanWalk(t *testing.T) {
	steps, seed := envInt("PLAN_WALK_STEPS", 20), envInt("PLAN_WALK_SEED", 1)
	// each RR originates a route of its own (a static route in
	// extraConfig): a refresh sends it again, which the peer counts
	// (and drains for 5 s, not 15: a roll's steps are shorter)
	origin := func(g string, n int) map[string]string {
		return map[string]string{"groups." + g + ".backend.bird.extraConfig": fmt.Sprintf("protocol static walk_origin { ipv4; route 10.%d.0.0/24 blackhole; }", 200+n),
			"defaults.drain.timeSeconds": "5"}
	}
	h := installHierarchyWith(t, chartSource{ref: chart()}, map[string]map[string]string{"core": origin("core", 0), "lothlorien": origin("lothlorien", 1), "mirkwood": origin("mirkwood", 2)})
	releases := map[string]release{
		"core":       {h.coreNS, []string{example("2regions-hrr", "values-core.yaml")}, h.sets["core"]},
		"lothlorien": {h.lothNS, regionValues(t, "lothlorien"), h.sets["lothlorien"]},
		"mirkwood":   {h.mirkNS, regionValues(t, "mirkwood"), h.sets["mirkwood"]},
	}
	// BFD needs NET_ADMIN in the BIRD container, which Pod Security
	// "restricted" refuses (docs/security.md): the walk's lothlorien, which
	// turns BFD on, runs in a privileged namespace
	k8s.RunKubectl(t, h.lothNS, "label", "namespace", h.lothNS.Namespace, "--overwrite", "pod-security.kubernetes.io/enforce=privileged")
	policy, err := walk.ExamplePolicy(example("2regions-hrr", "values.yaml"))
	require.NoError(t, err)
	bin := plugin(t)
	// a router homed on both lothlorien RRs (their pod addresses) samples
	// the RRs' own routes during every step
	homed := runningIPs(t, h.lothNS)
	router := startRouter(t, "walk-loth", routerConf(routerID(31), homed, nil))
	waitHomed(t, router, homed, "10.201.0.0/24") // lothlorien's own route at least
	table := walk.Confusion{}
	hitlessSamples, lostAll := 0, 0
	start := time.Now()
	for _, s := range walk.Walk(walk.Catalog(policy), uint64(seed), steps) {
		r := releases[s.Release]
		set := maps.Clone(r.set)
		maps.Copy(set, s.Set)
		ho := helmOptions(r.opts, r.files, set)
		ho.SetJsonValues = s.JSON
		stepStart := time.Now()
		plan, code := predict(t, bin, r.opts.Namespace, s.Release, ho)
		before := walkSessions(t, h, router)
		pods := podUIDs(t, r.opts)
		applied := map[string]int{}
		for p := range pods {
			applied[p] = appliedE(t, r.opts, p)
		}
		had := routerHas(t, router)
		watch := watchRoutesWhile(router, had, func() bool {
			return slices.ContainsFunc(homed, func(a string) bool { return router.neighborState(a) == "Established" })
		})
		upgradeStart := time.Now()
		helm.Upgrade(t, ho, chart(), s.Release)
		changed, rolls := false, false
		for _, g := range plan.Groups {
			changed = changed || g.Status == "changed"
			rolls = rolls || len(g.Rolls) > 0
		}
		switch {
		case rolls: // helm --wait saw the rollout
		case changed:
			// kubelet writes a changed ConfigMap into a pod's volume when it
			// syncs the pod: at its syncFrequency (15 s here, plus jitter),
			// or at once when the pod changes. An annotation is such a change
			// (the agent reads none): the steps wait less, and what the
			// agents then do is what they do at any sync.
			k8s.RunKubectl(t, r.opts, "annotate", "pods", "-l", "app.kubernetes.io/name=meshrr", "--overwrite", fmt.Sprintf("meshrr.io/walk-step=%d", s.N))
			cluster.Wait(t, s.String()+": every RR of the release applied the new configuration", 3*time.Minute, time.Second, func(c *assert.CollectT) {
				for p, n := range applied {
					assert.Greater(c, appliedE(t, r.opts, p), n, "%s", p)
				}
			})
		}
		settleRRs(t, h, s.String())
		time.Sleep(5 * time.Second) // refreshes and resets run their course
		after := walkSessions(t, h, router)
		samples, _, longest, _ := watch.finish()
		// the routes the router had before and after the step: a gap in
		// one is a loss; a route the change itself withdraws (an export
		// tier, say) or that arrives is not
		has := routerHas(t, router)
		kept := slices.DeleteFunc(slices.Clone(had), func(p string) bool { return !slices.Contains(has, p) })
		lost := watch.lostOf(kept)
		upgraded := time.Since(upgradeStart)
		podsAfter := podUIDs(t, r.opts)
		var wrong []string
		counts := map[string]int{}
		// sessions that come and go move routes over the others: there,
		// routes sent again are churn, not a refresh the change made
		churn := false
		for _, g := range plan.Groups {
			for _, p := range g.Pods {
				for _, ss := range p.Sessions {
					churn = churn || p.Rolls || ss.Outcome != "untouched" && ss.Outcome != "refresh"
				}
			}
		}
		for _, g := range plan.Groups {
			for _, p := range g.Pods {
				require.Empty(t, p.Error, "%s: the plan cannot tell %s", s, p.Pod)
				replaced := podsAfter[p.Pod] != pods[p.Pod]
				for _, ss := range p.Sessions {
					// a session not up before the step (a core's passive side
					// of a region RR that chose the other core, on its way out)
					// has nothing a change could reset or refresh
					if b, was := before.sessions[p.Pod][ss.Peer]; was && !b.Established && !p.Rolls {
						counts["down before"]++
						continue
					}
					predicted, observed := ss.Outcome, observe(before, after, p.Pod, ss.Peer)
					if p.Rolls {
						predicted = "replaced"
					}
					if replaced {
						observed = "replaced"
					}
					if churn && predicted == "untouched" && observed == "refresh" {
						observed = "untouched" // routes moved by the sessions that came and went
					}
					// a refresh towards the router: it received updates from
					// the pod (asked only of a refresh predicted, as routes
					// changed elsewhere reach the router too)
					if predicted == "refresh" && observed == "untouched" && after.routerRecv[before.ip[p.Pod]] > before.routerRecv[before.ip[p.Pod]] && ss.Peer == router.Addr.String() {
						observed = "refresh"
					}
					table.Add(predicted, observed)
					counts[predicted]++
					if predicted != observed {
						wrong = append(wrong, fmt.Sprintf("%s %s %s: predicted %s (%s), observed %s", p.Pod, ss.Group, ss.Peer, predicted, strings.Join(ss.Why, ","), observed))
					}
				}
			}
		}
		logf(t, "plan walk: %s: plan exit %d, %v; router: kept %v, %d of %d prefix-samples missing (longest gap %s), had %v, has %v; %s (upgrade to settled %s)",
			s, code, counts, kept, lost, samples*len(kept), longest, had, has, time.Since(stepStart).Round(time.Second), upgraded.Round(time.Second))
		assert.Empty(t, wrong, "%s: predictions that did not happen", s)
		if code == 0 { // predicted hitless: the router loses nothing
			assert.Zero(t, lost, "%s: predicted hitless, the router lost routes it had before and after", s)
			hitlessSamples += samples * len(kept)
		}
		lostAll += lost
		// a roll replaces the pods the router is homed on: home it again
		if now := runningIPs(t, h.lothNS); !slices.Equal(now, homed) {
			rehome(t, router, homed, now)
			homed = now
			waitHomed(t, router, homed)
		}
	}
	logf(t, "plan walk: %d steps (seed %d) in %s; the router: %d prefix-samples in steps predicted hitless, %d missing in all steps; every session's prediction against what happened:\n%s",
		steps, seed, time.Since(start).Round(time.Second), hitlessSamples, lostAll, table)
	assert.Zero(t, table.Wrong(), "sessions predicted wrong")
	assert.Positive(t, hitlessSamples, "the router sampled routes in the steps predicted hitless")
}

// settleRRs waits until every RR of the hierarchy is ready (the replaced
// ones gone) and every mesh and upstream session it has is Established.
func settleRRs(t *testing.T, h *hierarchy, what string) {
	t.Helper()
	cluster.Wait(t, what+": every RR ready with its sessions to other RRs Established", 4*time.Minute, time.Second, func(c *assert.CollectT) {
		for _, rr := range readRRs(t, h, true) {
			// a replaced pod drains and stops before the next step
			if !assert.Nil(c, rr.pod.DeletionTimestamp, "%s still stopping", rr.pod.Name) || !assert.True(c, cluster.IsReady(rr.pod), "%s not ready", rr.pod.Name) || !assert.NoError(c, rr.err) {
				continue
			}
			for _, s := range rr.sessions {
				if s.Group == "mesh" || s.Group == "upstream" { // a core's downstream side is passive
					assert.True(c, s.Established, "%s: %s session with %s is %s", rr.pod.Name, s.Group, s.Peer, s.State)
				}
			}
		}
	})
}

// rrReading is one RR pod and its sessions as its agent reports them.
type rrReading struct {
	pod      corev1.Pod
	sessions []cluster.Session
	err      error
}

// readRRs reads the sessions of every RR pod of the hierarchy, a kubectl
// exec each, side by side; all: also the pods not ready or stopping (not
// read).
func readRRs(t *testing.T, h *hierarchy, all bool) []rrReading {
	var out []rrReading
	for _, opts := range []*k8s.KubectlOptions{h.coreNS, h.lothNS, h.mirkNS} {
		for _, p := range cluster.Pods(t, opts, "app.kubernetes.io/name=meshrr") {
			if all || cluster.IsReady(p) && p.DeletionTimestamp == nil {
				out = append(out, rrReading{pod: p})
			}
		}
	}
	var wg sync.WaitGroup
	for i := range out {
		if !cluster.IsReady(out[i].pod) || out[i].pod.DeletionTimestamp != nil {
			continue
		}
		opts := map[string]*k8s.KubectlOptions{h.coreNS.Namespace: h.coreNS, h.lothNS.Namespace: h.lothNS, h.mirkNS.Namespace: h.mirkNS}[out[i].pod.Namespace]
		wg.Go(func() { out[i].sessions, out[i].err = cluster.Sessions(t, opts, out[i].pod.Name) })
	}
	wg.Wait()
	return out
}

// predict runs kubectl meshrr plan for the upgrade ho describes, which it
// must be able to tell (exit 0 or 3).
func predict(t *testing.T, bin, namespace, release string, ho *helm.Options) (planJSON, int) {
	t.Helper()
	p, code, stderr := planOf(t, bin, namespace, release, ho)
	require.Contains(t, []int{0, 3}, code, "kubectl meshrr plan of %s: %s", release, stderr)
	return p, code
}

// planOf runs kubectl meshrr plan -o json for the upgrade ho describes:
// the plan, the exit status and the standard error.
func planOf(t *testing.T, bin, namespace, release string, ho *helm.Options) (planJSON, int, string) {
	t.Helper()
	args := []string{"plan", "-n", namespace, "--kubeconfig", kubeconfig, "-o", "json", release, chart()}
	for _, f := range ho.ValuesFiles {
		args = append(args, "-f", f)
	}
	for _, k := range slices.Sorted(maps.Keys(ho.SetValues)) {
		args = append(args, "--set", k+"="+ho.SetValues[k])
	}
	for _, k := range slices.Sorted(maps.Keys(ho.SetJsonValues)) {
		args = append(args, "--set-json", k+"="+ho.SetJsonValues[k])
	}
	cmd := exec.Command(bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	var p planJSON
	require.NoError(t, json.Unmarshal(out, &p), "kubectl meshrr plan %s: %s%s", strings.Join(args, " "), out, stderr.String())
	return p, code, stderr.String()
}

// readings are every RR's sessions, by pod and peer address, where each
// pod is, and the router's update counts, by RR address.
type readings struct {
	sessions   map[string]map[string]cluster.Session
	ip         map[string]string // pod -> address
	pod        map[string]string // address -> pod
	routerRecv map[string]int    // RR address -> updates the router received from it
}

// walkSessions reads every ready RR's sessions and the router's
// neighbours.
func walkSessions(t *testing.T, h *hierarchy, router *Router) readings {
	t.Helper()
	r := readings{sessions: map[string]map[string]cluster.Session{}, ip: map[string]string{}, pod: map[string]string{}, routerRecv: map[string]int{}}
	var ns map[string]struct {
		MessageStats struct {
			UpdatesRecv int `json:"updatesRecv"`
		} `json:"messageStats"`
	}
	require.NoError(t, router.vtyshJSON("show bgp neighbors json", &ns))
	for a, n := range ns {
		r.routerRecv[a] = n.MessageStats.UpdatesRecv
	}
	for _, rr := range readRRs(t, h, false) {
		if rr.err != nil { // it stopped in between: replaced
			continue
		}
		m := map[string]cluster.Session{}
		for _, s := range rr.sessions {
			m[s.Peer] = s
		}
		r.sessions[rr.pod.Name], r.ip[rr.pod.Name], r.pod[rr.pod.Status.PodIP] = m, rr.pod.Status.PodIP, rr.pod.Name
	}
	return r
}

// observe says what happened to pod's session with peer.
func observe(before, after readings, pod, peer string) string {
	b, was := before.sessions[pod][peer]
	a, is := after.sessions[pod][peer]
	switch {
	case !was && is:
		return "added"
	case !is && !was:
		return "absent"
	case !is:
		return "removed"
	case !a.Established || a.Name != b.Name || a.Since.Sub(b.Since).Abs() > sinceJitter:
		return "reset"
	case a.Received() > b.Received():
		return "refresh" // this RR asked for the peer's routes again
	}
	// or sent its own again: the peer, when it is an RR, received them
	if q, ok := before.pod[peer]; ok {
		self := before.ip[pod]
		if pb, pa := before.sessions[q][self], after.sessions[q][self]; pa.Received() > pb.Received() {
			return "refresh"
		}
	}
	return "untouched"
}

func podUIDs(t *testing.T, opts *k8s.KubectlOptions) map[string]string {
	out := map[string]string{}
	for _, p := range cluster.Pods(t, opts, "app.kubernetes.io/name=meshrr") {
		if p.DeletionTimestamp == nil { // a stopping pod is being replaced
			out[p.Name] = string(p.UID)
		}
	}
	return out
}

// appliedE is how many configurations an agent applied (0 when its
// metrics cannot be read).
func appliedE(t *testing.T, opts *k8s.KubectlOptions, pod string) int {
	text, err := cluster.MetricsE(t, opts, pod)
	if err != nil {
		return 0
	}
	n, err := promtext.Value(text, "meshrr_apply_total", "result", "applied")
	if err != nil {
		return 0
	}
	return int(n)
}

// runningIPs are the addresses of a release's RR pods that run and are not
// stopping, sorted.
func runningIPs(t *testing.T, opts *k8s.KubectlOptions) []string {
	var out []string
	for _, p := range cluster.Pods(t, opts, "app.kubernetes.io/name=meshrr") {
		if p.DeletionTimestamp == nil && p.Status.PodIP != "" {
			out = append(out, p.Status.PodIP)
		}
	}
	slices.Sort(out)
	return out
}

// routerHas is which of the routes the RRs originate (10.200-202.0.0/24,
// one per release) the router has.
func routerHas(t *testing.T, router *Router) []string {
	t.Helper()
	m, err := router.routes()
	require.NoError(t, err)
	var out []string
	for _, p := range []string{"10.200.0.0/24", "10.201.0.0/24", "10.202.0.0/24"} {
		if _, ok := m[p]; ok {
			out = append(out, p)
		}
	}
	return out
}

// waitHomed waits until the router has a session with every RR it is
// homed on, the routes want and a table that holds still (two readings
// 3 s apart agree).
func waitHomed(t *testing.T, router *Router, homed []string, want ...string) {
	t.Helper()
	last := []string{"not read yet"}
	cluster.Wait(t, "the walk's router: sessions with "+strings.Join(homed, ", ")+" and a table that holds still", 2*time.Minute, 3*time.Second, func(c *assert.CollectT) {
		for _, a := range homed {
			assert.Equal(c, "Established", router.neighborState(a), a)
		}
		has := routerHas(t, router)
		for _, p := range want {
			assert.Contains(c, has, p)
		}
		assert.Equal(c, last, has, "the router's table moved")
		last = has
	})
}

// rehome points the router's sessions at the RR pods that replaced the
// ones it was homed on.
func rehome(t *testing.T, router *Router, was, now []string) {
	t.Helper()
	conf := "router bgp 65000"
	for _, a := range was {
		if !slices.Contains(now, a) {
			conf += "\nno neighbor " + a
		}
	}
	for _, a := range now {
		if !slices.Contains(was, a) {
			conf += "\nneighbor " + a + " remote-as 65000"
		}
	}
	router.configure(t, conf)
}
