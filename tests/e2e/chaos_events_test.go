//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
)

// undo: what an event in progress must put back when the test stops
// half-way (a stopped node, a partition, a parked API server, a deleted
// Service), keyed by what it undoes.
var (
	undoMu sync.Mutex
	undos  = map[string]func(){}
)

func setUndo(key string, f func()) { undoMu.Lock(); undos[key] = f; undoMu.Unlock() }
func clearUndo(key string)         { undoMu.Lock(); delete(undos, key); undoMu.Unlock() }

func (r *chaosRig) undoAll() {
	undoMu.Lock()
	fs := undos
	undos = map[string]func(){}
	undoMu.Unlock()
	for key, f := range fs {
		r.t.Logf("chaos: undoing %s", key)
		f()
	}
}

// undoing runs f now and forgets it.
func undoing(key string, f func()) { f(); clearUndo(key) }

// run performs one event of a kind and returns once it is over (the node
// back, the partition healed, the Service restored, the upgrade done).
func (r *chaosRig) run(kind string, rng *rand.Rand, first bool) chaosEvent {
	t := r.t
	ps := r.rrPods()
	names := slices.Sorted(func(yield func(string) bool) {
		for n, p := range ps {
			if p.pod.Spec.NodeName != r.cfg.spare && !yield(n) {
				return
			}
		}
	})
	pick := func() rrPod { return ps[names[rng.IntN(len(names))]] }
	worker := func() string { return r.workers[rng.IntN(len(r.workers))] }
	hold := func(lo, hi int) time.Duration {
		if r.cfg.duration == 0 {
			lo, hi = lo/2, lo/2+(hi-lo)/4 // the short run of make test: shorter holds
		}
		return time.Duration(lo+rng.IntN(hi-lo+1)) * time.Second
	}
	ev := chaosEvent{pods: map[string]bool{}, sides: map[string]bool{}}
	switch kind {
	case "pod-delete":
		p := pick()
		k8s.RunKubectl(t, p.opts, "delete", "pod", p.pod.Name, "--wait=false")
		ev.pods[p.pod.Name] = true
		ev.what = fmt.Sprintf("deleted RR %s (%s) on %s", p.pod.Name, p.role, p.pod.Spec.NodeName)
	case "daemon-kill":
		p := pick()
		ev.pods[p.pod.Name] = true
		ev.what = fmt.Sprintf("SIGKILL to the bird container of %s (%s)", p.pod.Name, p.role) + r.daemonKilled(p)
	case "agent-kill":
		p := pick() // an agent restart resets no session: nothing touched
		require.NoError(t, killContainer(p.pod, "agent"))
		ev.what = fmt.Sprintf("SIGKILL to the agent container of %s (%s)", p.pod.Name, p.role)
	case "node-stop":
		node := worker()
		if first {
			if n := r.replaceableCoreNode(ps); n != "" {
				node = n
			}
		}
		ev.what = r.nodeDown(node, "stop", 0, ps, ev.pods)
	case "node-pause":
		ev.what = r.nodeDown(worker(), "pause", hold(10, 50), ps, ev.pods)
	case "partition":
		i := rng.IntN(len(r.workers))
		j := (i + 1 + rng.IntN(len(r.workers)-1)) % len(r.workers)
		ev.what = r.partition(r.workers[i], r.workers[j], hold(15, 45), ps, ev.pods)
	case "apiserver-stop":
		outage := apiServerOutage(t, r.core, 60*time.Second)
		ev.what = fmt.Sprintf("kube-apiserver stopped, unreachable for %s", outage.Round(time.Second))
	case "service-delete":
		ev.what = r.serviceGone(rng, hold(5, 20), ev.sides)
	case "session-upgrade":
		ns := []*k8s.KubectlOptions{r.loth, r.mirk, r.rs}[rng.IntN(3)]
		name := r.release(ns)
		was := r.hold[name]
		r.hold[name] = 150 - was // 90 <-> 60
		start := time.Now()
		helm.Upgrade(t, r.releaseHelm(ns), chart(), name)
		for n, p := range ps {
			if p.opts == ns {
				ev.pods[n] = true
				ev.sides[p.role] = true
			}
		}
		ev.what = fmt.Sprintf("helm upgrade %s: timers.hold %d -> %d (rolls every RR of the release), done in %s", name, was, r.hold[name], time.Since(start).Round(time.Second))
	case "scale":
		was := r.coreReplicas
		r.coreReplicas = 3 - r.coreReplicas // 1 <-> 2 per side
		start := time.Now()
		helm.Upgrade(t, r.coreHelm(), chart(), "core")
		ev.what = fmt.Sprintf("helm upgrade core: replicas per side %d -> %d, done in %s", was, r.coreReplicas, time.Since(start).Round(time.Second))
	default:
		t.Fatalf("chaos: no event kind %q", kind)
	}
	return ev
}

// daemonKilled kills BIRD in an RR pod (a crash: SIGKILL from the node).
// The container restarts on the last applied configuration; the agent
// must notice the restart (meshrr_daemon_restarts_total one higher), apply
// its configuration again and say so in an Event DaemonRestarted.
func (r *chaosRig) daemonKilled(p rrPod) string {
	t := r.t
	restarts := func() (int, error) {
		out, err := cluster.MetricsE(t, p.opts, p.pod.Name)
		if err != nil {
			return 0, err
		}
		n, err := promtext.Value(out, "meshrr_daemon_restarts_total")
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p.pod.Name, err)
		}
		return int(n), nil
	}
	before, err := restarts()
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, killContainer(p.pod, "bird"))
	cluster.Wait(t, p.pod.Name+": the agent counts the BIRD restart", 2*time.Minute, 200*time.Millisecond, func(c *assert.CollectT) {
		n, err := restarts()
		if assert.NoError(c, err) {
			assert.Equal(c, before+1, n, "%s: the agent has not noticed the restart", p.pod.Name)
		}
	})
	noticed := time.Since(start)
	cluster.Wait(t, p.pod.Name+": Event DaemonRestarted", 30*time.Second, time.Second, func(c *assert.CollectT) {
		evs, err := k8s.RunKubectlAndGetOutputE(t, p.opts, "get", "events", "--field-selector", "reason=DaemonRestarted,involvedObject.name="+p.pod.Name, "-o", "jsonpath={.items[*].message}")
		assert.NoError(c, err)
		assert.Contains(c, evs, "bird restarted", "%s: Event DaemonRestarted", p.pod.Name)
	})
	return fmt.Sprintf(", the agent noticed the restart %s after the kill and applied its configuration again (meshrr_daemon_restarts_total %d -> %d, Event DaemonRestarted)", noticed.Round(100*time.Millisecond), before, before+1)
}

// killContainer sends SIGKILL to a container's process from its node (a
// crash, as the kernel's OOM killer would).
func killContainer(p corev1.Pod, container string) error {
	node := p.Spec.NodeName
	id, err := exec.Command("docker", "exec", node, "crictl", "ps", "-q", "--name", "^"+container+"$",
		"--label", "io.kubernetes.pod.name="+p.Name, "--label", "io.kubernetes.pod.namespace="+p.Namespace).Output()
	if err != nil || strings.TrimSpace(string(id)) == "" {
		return fmt.Errorf("%s: no running %s container on %s (%v)", p.Name, container, node, err)
	}
	pid, err := exec.Command("docker", "exec", node, "crictl", "inspect", "-o", "go-template", "--template", "{{.info.pid}}", strings.Fields(string(id))[0]).Output()
	if err != nil {
		return fmt.Errorf("%s: crictl inspect %s: %v", p.Name, id, err)
	}
	if out, err := exec.Command("docker", "exec", node, "kill", "-KILL", strings.TrimSpace(string(pid))).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: kill %s: %v: %s", p.Name, pid, err, out)
	}
	return nil
}

// apiServerOutage parks the control plane's kube-apiserver manifest until
// the API server has been unreachable for hold, then puts it back and
// waits for it; it returns how long the API server was unreachable.
func apiServerOutage(t *testing.T, opts *k8s.KubectlOptions, hold time.Duration) time.Duration {
	node := clusterName + "-control-plane"
	manifest := "/etc/kubernetes/manifests/kube-apiserver.yaml"
	parked := "/etc/kubernetes/kube-apiserver.yaml.parked"
	restore := func() {
		_ = exec.Command("docker", "exec", node, "sh", "-c", fmt.Sprintf("[ -f %s ] && mv %s %s || true", parked, parked, manifest)).Run()
	}
	setUndo("kube-apiserver", restore)
	out, err := exec.Command("docker", "exec", node, "mv", manifest, parked).CombinedOutput()
	require.NoError(t, err, "park the apiserver manifest: %s", out)
	start := time.Now()
	apiUp := func() bool {
		_, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "--raw", "/readyz", "--request-timeout=2s")
		return err == nil
	}
	for apiUp() && time.Since(start) < 2*time.Minute {
		time.Sleep(time.Second)
	}
	require.False(t, apiUp(), "the apiserver did not stop")
	down := time.Now()
	time.Sleep(hold)
	undoing("kube-apiserver", restore)
	for !apiUp() && time.Since(down) < 4*time.Minute {
		time.Sleep(time.Second)
	}
	require.True(t, apiUp(), "the apiserver did not come back")
	return time.Since(down)
}

// replaceableCoreNode is the node of a core RR whose side has another
// node to move to (the Deployment's replacement must land somewhere),
// never the spared one. Without a spared node there is always one.
func (r *chaosRig) replaceableCoreNode(ps map[string]rrPod) string {
	for _, p := range ps {
		if p.opts != r.core || p.pod.Spec.NodeName == r.cfg.spare {
			continue
		}
		if others := r.sideNodes(p.pod.Labels["meshrr.io/side"], "core"); len(others) > 1 {
			return p.pod.Spec.NodeName
		}
	}
	if r.cfg.spare == "" {
		r.t.Fatalf("chaos: no core RR whose side has a second node (the kind cluster's labels changed?)")
	}
	return ""
}

// sideNodes are the nodes of a side (of a region's nodes, or any).
func (r *chaosRig) sideNodes(side, region string) []string {
	selector := "redundancy_group=" + side
	if region != "" {
		selector += ",meshrr_region_" + region + "=true"
	}
	out, err := k8s.RunKubectlAndGetOutputE(r.t, r.core, "get", "nodes", "-l", selector, "-o", "jsonpath={.items[*].metadata.name}")
	require.NoError(r.t, err)
	return strings.Fields(out)
}

func nodeAddress(node string) string {
	out, _ := exec.Command("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", node).Output()
	return strings.TrimSpace(string(out))
}

// nodeDown stops (docker stop: no kubelet, no packets, the node's
// processes gone) or pauses a worker. A stopped node is kept down until it
// is NotReady and every core RR it ran that can move has a replacement
// Ready and meshed on another node (kubectl meshrr status must name the
// lost node meanwhile); a paused one for hold. Then it comes back and the
// event ends when it is Ready.
func (r *chaosRig) nodeDown(node, how string, hold time.Duration, ps map[string]rrPod, touched map[string]bool) string {
	t := r.t
	addr := nodeAddress(node)
	var lost []rrPod
	for n, p := range ps {
		if p.pod.Spec.NodeName == node {
			touched[n] = true
			lost = append(lost, p)
		}
	}
	back := map[string]string{"stop": "start", "pause": "unpause"}[how]
	up := func() {
		if out, err := exec.Command("docker", back, node).CombinedOutput(); err != nil {
			t.Errorf("docker %s %s: %v: %s", back, node, err, out)
		}
	}
	setUndo("node "+node, up)
	start := time.Now()
	out, err := exec.Command("docker", how, node).CombinedOutput()
	require.NoError(t, err, "docker %s %s: %s", how, node, out)
	what := fmt.Sprintf("%s of %s (%d RRs on it)", how, node, len(lost))
	tainted := false
	if how == "pause" {
		time.Sleep(hold)
		what += fmt.Sprintf(" for %s", hold)
	} else {
		cluster.Wait(t, node+" NotReady", 3*time.Minute, time.Second, func(c *assert.CollectT) {
			st, err := k8s.RunKubectlAndGetOutputE(t, r.core, "get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			assert.NoError(c, err)
			assert.NotEqual(c, "True", st)
		})
		notReady := time.Since(start)
		what += fmt.Sprintf(", NotReady after %s", notReady.Round(time.Second))
		// the core RRs (a Deployment) move by themselves after the
		// toleration; the route servers (a StatefulSet) wait for the
		// operator, as kubectl meshrr status says
		for _, p := range lost {
			side := p.pod.Labels["meshrr.io/side"]
			if p.opts != r.core || len(r.sideNodes(side, "core")) < 2 {
				continue // a DaemonSet RR, or a side with no other node: back with the node
			}
			replacement := r.replacement(p, node)
			what += fmt.Sprintf(", core RR %s replaced by %s on %s, meshed %s after NotReady (goal: nodeLossTolerationSeconds 30 + 30 s)",
				p.pod.Name, replacement.Name, replacement.Spec.NodeName, (time.Since(start) - notReady).Round(time.Second))
			r.statusNamesLostNode(r.core, node, "Kubernetes evicts it")
		}
		for _, p := range lost {
			if p.opts != r.rs {
				continue
			}
			r.statusNamesLostNode(r.rs, node, "kubectl taint node "+node+" node.kubernetes.io/out-of-service=nodeshutdown:NoExecute")
			if len(r.sideNodes(p.pod.Labels["meshrr.io/side"], "")) < 2 {
				continue // no other node for it: back with the node
			}
			what += r.outOfService(p, node)
			tainted = true
		}
	}
	undoing("node "+node, up)
	now := nodeAddress(node)
	require.Equal(t, addr, now, "%s came back with another address: the cluster cannot recover from that (docker gave its address away)", node)
	cluster.Wait(t, node+" Ready again", 4*time.Minute, time.Second, func(c *assert.CollectT) {
		st, err := k8s.RunKubectlAndGetOutputE(t, r.core, "get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		assert.NoError(c, err)
		assert.Equal(c, "True", st)
	})
	what += fmt.Sprintf(", Ready again %s after it went", time.Since(start).Round(time.Second))
	if tainted {
		undoing("taint "+node, func() { r.untaint(node) })
		what += ", out-of-service taint removed"
	}
	return what
}

// statusNamesLostNode: kubectl meshrr status of a namespace exits 2 while
// an RR of it is on a lost node, names the node and says how the RR comes
// back.
func (r *chaosRig) statusNamesLostNode(ns *k8s.KubectlOptions, node, recovery string) {
	status, code := runPlugin(r.t, r.plugin, "status", "-n", ns.Namespace)
	assert.Equal(r.t, 2, code, "kubectl meshrr status -n %s while an RR of it is on a lost node:\n%s", ns.Namespace, status)
	assert.Contains(r.t, status, "node "+node+" is not ready", "kubectl meshrr status names the lost node:\n%s", status)
	assert.Contains(r.t, status, recovery, "kubectl meshrr status says how the RR comes back:\n%s", status)
}

// outOfService does what kubectl meshrr status tells the operator for a
// StatefulSet RR on a lost node: it taints the node out-of-service (the
// node is known to be down: docker stop), and waits until the StatefulSet
// has started the RR on another node of its side, meshed with the other
// side. The taint goes once the node is back.
func (r *chaosRig) outOfService(lost rrPod, node string) string {
	start := time.Now()
	setUndo("taint "+node, func() { r.untaint(node) })
	k8s.RunKubectl(r.t, r.core, "taint", "node", node, "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute", "--overwrite")
	repl := r.replacement(lost, node)
	return fmt.Sprintf(", route server %s started again on %s %s after the out-of-service taint, meshed with the other side", repl.Name, repl.Spec.NodeName, time.Since(start).Round(time.Second))
}

func (r *chaosRig) untaint(node string) {
	_, _ = k8s.RunKubectlAndGetOutputE(r.t, r.core, "taint", "node", node, "node.kubernetes.io/out-of-service-")
}

// replacement waits until an RR of the lost pod's side (another pod, or
// the StatefulSet's same name again) runs Ready on another node and
// meshes with an RR of another side.
func (r *chaosRig) replacement(lost rrPod, node string) corev1.Pod {
	t := r.t
	side := lost.pod.Labels["meshrr.io/side"]
	selector := "app.kubernetes.io/name=meshrr,meshrr.io/group-name=" + lost.pod.Labels["meshrr.io/group-name"]
	var repl, peer corev1.Pod
	cluster.Wait(t, "a replacement for "+lost.pod.Name+" Ready on another node and meshed", 5*time.Minute, time.Second, func(c *assert.CollectT) {
		repl, peer = corev1.Pod{}, corev1.Pod{}
		for _, p := range cluster.Pods(t, lost.opts, selector) {
			switch {
			case p.DeletionTimestamp != nil || !cluster.IsReady(p) || p.Spec.NodeName == node:
			case p.Labels["meshrr.io/side"] == side && p.UID != lost.pod.UID:
				repl = p
			case p.Labels["meshrr.io/side"] != side:
				peer = p
			}
		}
		assert.NotEmpty(c, repl.Name, "no replacement for %s Ready on another node yet", lost.pod.Name)
		assert.NotEmpty(c, peer.Name, "no RR of another side")
	})
	replacementMeshed(t, lost.opts, peer, repl)
	return repl
}

// partition drops every packet between two workers and their pods (raw
// table, in both nodes) for hold, then heals it.
func (r *chaosRig) partition(a, b string, hold time.Duration, ps map[string]rrPod, touched map[string]bool) string {
	t := r.t
	srcs := map[string][]string{}
	for _, n := range []string{a, b} {
		cidr, err := k8s.RunKubectlAndGetOutputE(t, r.core, "get", "node", n, "-o", "jsonpath={.spec.podCIDR}")
		require.NoError(t, err)
		srcs[n] = []string{nodeAddress(n), cidr}
	}
	rules := func(op string) error {
		for x, y := range map[string]string{a: b, b: a} {
			for _, src := range srcs[y] {
				if out, err := exec.Command("docker", "exec", x, "iptables", "-t", "raw", op, "PREROUTING", "-s", src, "-j", "DROP").CombinedOutput(); err != nil && op == "-I" {
					return fmt.Errorf("iptables on %s: %v: %s", x, err, out)
				}
			}
		}
		return nil
	}
	heal := func() { _ = rules("-D") }
	setUndo("partition "+a+" "+b, heal)
	require.NoError(t, rules("-I"))
	for n, p := range ps {
		if p.pod.Spec.NodeName == a || p.pod.Spec.NodeName == b {
			touched[n] = true
		}
	}
	time.Sleep(hold)
	undoing("partition "+a+" "+b, heal)
	return fmt.Sprintf("%s and %s cut from each other (nodes and pods) for %s", a, b, hold)
}

// serviceGone deletes one of the releases' Services (discovery or side
// address) and creates it again from what it was after hold.
func (r *chaosRig) serviceGone(rng *rand.Rand, hold time.Duration, sides map[string]bool) string {
	t := r.t
	type svc struct {
		opts *k8s.KubectlOptions
		name string
	}
	var all []svc
	for _, ns := range r.namespaces() {
		out, err := k8s.RunKubectlAndGetOutputE(t, ns, "get", "services", "-l", "meshrr.io/group-name", "-o", "jsonpath={.items[*].metadata.name}")
		require.NoError(t, err)
		for _, n := range strings.Fields(out) {
			all = append(all, svc{ns, n})
		}
	}
	slices.SortFunc(all, func(x, y svc) int { return strings.Compare(x.opts.Namespace+x.name, y.opts.Namespace+y.name) })
	s := all[rng.IntN(len(all))]
	raw, err := k8s.RunKubectlAndGetOutputE(t, s.opts, "get", "service", s.name, "-o", "json")
	require.NoError(t, err)
	var obj map[string]any
	require.NoError(t, json.Unmarshal([]byte(raw), &obj))
	meta, spec := obj["metadata"].(map[string]any), obj["spec"].(map[string]any)
	for _, k := range []string{"resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"} {
		delete(meta, k)
	}
	if spec["clusterIP"] != "None" {
		delete(spec, "clusterIP")
		delete(spec, "clusterIPs")
	}
	delete(spec, "healthCheckNodePort")
	if ports, ok := spec["ports"].([]any); ok {
		for _, p := range ports {
			delete(p.(map[string]any), "nodePort")
		}
	}
	delete(obj, "status")
	if spec["type"] == "LoadBalancer" {
		if side, ok := meta["labels"].(map[string]any)["meshrr.io/side"].(string); ok {
			sides[s.opts.Namespace+"/"+side] = true
		}
	}
	body, err := json.Marshal(obj)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), s.name+".json")
	require.NoError(t, os.WriteFile(file, body, 0o644))
	restore := func() { _, _ = k8s.RunKubectlAndGetOutputE(t, s.opts, "create", "-f", file) }
	setUndo("service "+s.name, restore)
	k8s.RunKubectl(t, s.opts, "delete", "service", s.name)
	time.Sleep(hold)
	undoing("service "+s.name, restore)
	_, err = k8s.RunKubectlAndGetOutputE(t, s.opts, "get", "service", s.name)
	require.NoError(t, err, "service %s restored", s.name)
	kind := "discovery, headless"
	if spec["type"] == "LoadBalancer" {
		kind = "side address"
	}
	return fmt.Sprintf("Service %s/%s (%s) deleted, created again after %s", s.opts.Namespace, s.name, kind, hold)
}

// replacementMeshed waits until two RR pods have Established mesh
// sessions with each other (the lost pod, still listed as terminating,
// cannot be asked).
func replacementMeshed(t *testing.T, opts *k8s.KubectlOptions, a, b corev1.Pod) {
	t.Helper()
	cluster.Wait(t, a.Name+" and "+b.Name+" meshed", 2*time.Minute, time.Second, func(c *assert.CollectT) {
		for _, pair := range [][2]corev1.Pod{{a, b}, {b, a}} {
			ss, err := cluster.Sessions(t, opts, pair[0].Name)
			if !assert.NoError(c, err) {
				return
			}
			mesh := cluster.Established(ss, "mesh")
			assert.Contains(c, mesh, pair[1].Status.PodIP, "%s has no Established mesh session to %s (has %s)", pair[0].Name, pair[1].Name, strings.Join(keys(mesh), ", "))
		}
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
