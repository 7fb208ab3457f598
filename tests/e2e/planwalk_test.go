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
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
// ends of the sessions between RRs) say what happened. Every session's
// prediction is counted against its observation in a confusion table,
// printed; none may differ. make plan-walk runs it (200 steps); make
// e2e leaves it out until make test has room for its 20 steps.
func TestPlanWalk(t *testing.T) {
	steps, seed := envInt("PLAN_WALK_STEPS", 20), envInt("PLAN_WALK_SEED", 1)
	// each RR originates a route of its own (a static route in
	// extraConfig): a refresh sends it again, which the peer counts
	origin := func(g string, n int) map[string]string {
		return map[string]string{"groups." + g + ".backend.bird.extraConfig": fmt.Sprintf("protocol static walk_origin { ipv4; route 10.%d.0.0/24 blackhole; }", 200+n)}
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
	table := walk.Confusion{}
	start := time.Now()
	for _, s := range walk.Walk(walk.Catalog(policy), uint64(seed), steps) {
		r := releases[s.Release]
		set := maps.Clone(r.set)
		maps.Copy(set, s.Set)
		ho := helmOptions(r.opts, r.files, set)
		ho.SetJsonValues = s.JSON
		stepStart := time.Now()
		plan, code := predict(t, bin, r.opts.Namespace, s.Release, ho)
		before := walkSessions(t, h)
		pods := podUIDs(t, r.opts)
		applied := map[string]int{}
		for p := range pods {
			applied[p] = appliedE(t, r.opts, p)
		}
		helm.Upgrade(t, ho, chart(), s.Release)
		changed, rolls := false, false
		for _, g := range plan.Groups {
			changed = changed || g.Status == "changed"
			rolls = rolls || len(g.Rolls) > 0
		}
		switch {
		case rolls: // helm --wait saw the rollout
		case changed:
			cluster.Wait(t, s.String()+": every RR of the release applied the new configuration", 3*time.Minute, time.Second, func(c *assert.CollectT) {
				for p, n := range applied {
					assert.Greater(c, appliedE(t, r.opts, p), n, "%s", p)
				}
			})
		}
		settleRRs(t, h, s.String())
		time.Sleep(5 * time.Second) // refreshes and resets run their course
		after := walkSessions(t, h)
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
					table.Add(predicted, observed)
					counts[predicted]++
					if predicted != observed {
						wrong = append(wrong, fmt.Sprintf("%s %s %s: predicted %s (%s), observed %s", p.Pod, ss.Group, ss.Peer, predicted, strings.Join(ss.Why, ","), observed))
					}
				}
			}
		}
		logf(t, "plan walk: %s: plan exit %d, %v; %s", s, code, counts, time.Since(stepStart).Round(time.Second))
		assert.Empty(t, wrong, "%s: predictions that did not happen", s)
	}
	logf(t, "plan walk: %d steps (seed %d) in %s; every session's prediction against what happened:\n%s", steps, seed, time.Since(start).Round(time.Second), table)
	assert.Zero(t, table.Wrong(), "sessions predicted wrong")
}

// settleRRs waits until every RR of the hierarchy is ready (the replaced
// ones gone) and every mesh and upstream session it has is Established.
func settleRRs(t *testing.T, h *hierarchy, what string) {
	t.Helper()
	cluster.Wait(t, what+": every RR ready with its sessions to other RRs Established", 4*time.Minute, time.Second, func(c *assert.CollectT) {
		for _, opts := range []*k8s.KubectlOptions{h.coreNS, h.lothNS, h.mirkNS} {
			for _, p := range cluster.Pods(t, opts, "app.kubernetes.io/name=meshrr") {
				// a replaced pod drains and stops before the next step
				if !assert.Nil(c, p.DeletionTimestamp, "%s still stopping", p.Name) || !assert.True(c, cluster.IsReady(p), "%s not ready", p.Name) {
					continue
				}
				ss, err := cluster.Sessions(t, opts, p.Name)
				if !assert.NoError(c, err) {
					continue
				}
				for _, s := range ss {
					if s.Group == "mesh" || s.Group == "upstream" { // a core's downstream side is passive
						assert.True(c, s.Established, "%s: %s session with %s is %s", p.Name, s.Group, s.Peer, s.State)
					}
				}
			}
		}
	})
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

// readings are every RR's sessions, by pod and peer address, and where
// each pod is.
type readings struct {
	sessions map[string]map[string]cluster.Session
	ip       map[string]string // pod -> address
	pod      map[string]string // address -> pod
}

// walkSessions reads every ready RR's sessions.
func walkSessions(t *testing.T, h *hierarchy) readings {
	t.Helper()
	r := readings{sessions: map[string]map[string]cluster.Session{}, ip: map[string]string{}, pod: map[string]string{}}
	for _, opts := range []*k8s.KubectlOptions{h.coreNS, h.lothNS, h.mirkNS} {
		for _, p := range cluster.Pods(t, opts, "app.kubernetes.io/name=meshrr") {
			if !cluster.IsReady(p) || p.DeletionTimestamp != nil {
				continue
			}
			ss, err := cluster.Sessions(t, opts, p.Name)
			if err != nil { // it stopped in between: replaced
				continue
			}
			m := map[string]cluster.Session{}
			for _, s := range ss {
				m[s.Peer] = s
			}
			r.sessions[p.Name], r.ip[p.Name], r.pod[p.Status.PodIP] = m, p.Status.PodIP, p.Name
		}
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
