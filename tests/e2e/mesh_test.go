//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// sinceJitter: BIRD keeps state-change times on a monotonic clock and
// converts them to wall time when printing, so two reads of an untouched
// session can differ by a millisecond; a reset moves Since forward by the
// time between the reads (seconds here).
const sinceJitter = 10 * time.Millisecond

const coreSelector = "app.kubernetes.io/name=meshrr,meshrr.io/group-name=core"

// meshSettled waits until every pod has an Established mesh session to
// every other pod, and returns each pod's mesh sessions by peer.
func meshSettled(t *testing.T, opts *k8s.KubectlOptions, n int, timeout time.Duration) map[string]map[string]cluster.Session {
	t.Helper()
	var last map[string]map[string]cluster.Session
	cluster.Wait(t, fmt.Sprintf("%d RRs in a full mesh", n), timeout, time.Second, func(c *assert.CollectT) {
		ps := cluster.Pods(t, opts, coreSelector)
		last = map[string]map[string]cluster.Session{}
		if !assert.Len(c, ps, n) {
			return
		}
		for _, p := range ps {
			ss, err := cluster.Sessions(t, opts, p.Name)
			if !assert.NoError(c, err) {
				return
			}
			mesh := cluster.Established(ss, "mesh")
			last[p.Name] = mesh
			for _, q := range ps {
				if q.Name != p.Name {
					assert.Contains(c, mesh, q.Status.PodIP, "%s has no Established mesh session to %s", p.Name, q.Name)
				}
			}
			assert.Len(c, mesh, n-1, "%s: stale mesh sessions", p.Name)
		}
	})
	return last
}

// TestMeshScaleOutAndSelfHealing installs a 3-replica core group, proves
// the full iBGP mesh and that routes cross it between two outside routers,
// scales it to 5 without resetting a session, and replaces a deleted pod.
func TestMeshScaleOutAndSelfHealing(t *testing.T) {
	opts := namespace(t, "e2e-mesh")
	routers := routerRange()
	ho := helmOptions(opts, []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.sides":                     "null",
		"groups.core.replicas":                  "3",
		"groups.core.nodeSelector":              "null",
		"groups.core.clients.routers.ranges[0]": routers,
	})
	start := time.Now()
	helm.Install(t, ho, chart(), "core")
	ps := cluster.WaitReady(t, opts, coreSelector, 3, 3*time.Minute)
	meshSettled(t, opts, 3, 2*time.Minute)
	logf(t, "mesh: 3 RRs installed and fully meshed in %s", time.Since(start).Round(time.Second))

	// an outside router announces through one RR; another learns it through another RR
	peer := func(pod string) string {
		return fmt.Sprintf("router bgp 65000\n bgp router-id %%s\n no bgp network import-check\n neighbor %s remote-as 65000\n address-family ipv4 unicast\n  %%s\n exit-address-family\n", pod)
	}
	r1 := startRouter(t, "r1", fmt.Sprintf(peer(ps[0].Status.PodIP), routerID(11), "network 10.201.0.0/24"))
	r2 := startRouter(t, "r2", fmt.Sprintf(peer(ps[1].Status.PodIP), routerID(12), ""))
	cluster.Wait(t, "r2 learns r1's route across the reflectors", 90*time.Second, time.Second, func(c *assert.CollectT) {
		rs, err := r2.routes()
		if assert.NoError(c, err) {
			assert.Contains(c, rs, "10.201.0.0/24", "r2 (client of %s) learns r1's route (client of %s)", ps[1].Name, ps[0].Name)
			assert.Equal(c, r1.Addr.String(), rs["10.201.0.0/24"].NextHop, "next hop unchanged across the reflectors")
		}
	})

	// scale out 3 -> 5 with helm upgrade: new RRs meshed, no existing session reset
	before := meshSettled(t, opts, 3, time.Minute)
	time.Sleep(3 * time.Second) // let any collision-era restart settle before comparing
	before = meshSettled(t, opts, 3, time.Minute)
	ho.SetValues["groups.core.replicas"] = "5"
	start = time.Now()
	helm.Upgrade(t, ho, chart(), "core")
	cluster.WaitReady(t, opts, coreSelector, 5, 3*time.Minute)
	after := meshSettled(t, opts, 5, 2*time.Minute)
	scaleOut := time.Since(start)
	logf(t, "scale-out: 3 -> 5 RRs fully meshed %s after helm upgrade", scaleOut.Round(time.Second))
	for pod, mesh := range before {
		for peer, s := range mesh {
			assert.WithinDuration(t, s.Since, after[pod][peer].Since, sinceJitter, "%s: session to %s was reset by the scale-out", pod, peer)
		}
	}

	// self-healing: one RR is lost (killed: no graceful shutdown); its
	// replacement is meshed again
	victim := cluster.Pods(t, opts, coreSelector)[2].Name
	start = time.Now()
	k8s.RunKubectl(t, opts, "delete", "pod", victim, "--wait=false", "--grace-period=0", "--force")
	cluster.Wait(t, "the deleted RR gone from the pod list", time.Minute, 200*time.Millisecond, func(c *assert.CollectT) {
		for _, p := range cluster.Pods(t, opts, coreSelector) {
			assert.NotEqual(c, victim, p.Name)
		}
	})
	meshSettled(t, opts, 5, 2*time.Minute)
	healed := time.Since(start)
	logf(t, "self-healing: pod killed -> replacement meshed with all 4 peers (every session Established) in %s (goal < 15s)", healed.Round(100*time.Millisecond))
	// the same timings against what the cluster itself needs right now to
	// replace a pod that does nothing: the ratios compare across machines
	// and loads, the absolute figures do not
	base := podReplacedBaseline(t, opts)
	logf(t, "ratios: a do-nothing pod deleted -> replacement Ready in %s; self-healing took %.1fx that, scale-out %.1fx",
		base.Round(100*time.Millisecond), healed.Seconds()/base.Seconds(), scaleOut.Seconds()/base.Seconds())

	// EndpointSlice change -> config applied, from the agents' histograms
	all := map[float64]float64{}
	for _, p := range cluster.Pods(t, opts, coreSelector) {
		for le, n := range cluster.Buckets(t, cluster.Metrics(t, opts, p.Name), "meshrr_discovery_change_to_applied_seconds") {
			all[le] += n
		}
	}
	p50, p99, n := promtext.Quantiles(all)
	logf(t, "EndpointSlice change -> config applied over %v changes on all agents: p50 <= %gs, p99 <= %gs (goal p99 < 0.5s)", n, p50, p99)

	forgedEndpointSlicesChangeNothing(t, opts)
	impostorServicesChangeNothing(t, opts)
}

// impostorServicesChangeNothing: a user bound to the namespace's "edit"
// role (what an application team usually gets) creates a headless Service
// with the group's and the release's labels over a pod of their own, and
// one labelled as another group of the release over the real RR pods (the
// address claims that once evicted members); their EndpointSlice of their
// own is refused by RBAC. No RR changes its configuration or resets a
// session, none peers with the impostor pod, and every agent warns.
func impostorServicesChangeNothing(t *testing.T, opts *k8s.KubectlOptions) {
	ps := cluster.Pods(t, opts, coreSelector)
	base := meshBaseline(t, opts, ps)
	k8s.RunKubectl(t, opts, "create", "serviceaccount", "editor")
	k8s.RunKubectl(t, opts, "create", "rolebinding", "editor", "--clusterrole=edit", "--serviceaccount="+opts.Namespace+":editor")
	editor := "system:serviceaccount:" + opts.Namespace + ":editor"
	impostor := startProbe(t, opts, "impostor", nil)
	_, err := k8s.RunKubectlAndGetOutputE(t, opts, "wait", "--for=condition=Ready", "pod/"+impostor.name, "--timeout=90s")
	require.NoError(t, err)
	var impostorIP string
	cluster.Wait(t, "the impostor pod's address", 30*time.Second, time.Second, func(c *assert.CollectT) {
		impostorIP, err = k8s.RunKubectlAndGetOutputE(t, opts, "get", "pod", impostor.name, "-o", "jsonpath={.status.podIP}")
		assert.NoError(c, err)
		assert.NotEmpty(c, impostorIP)
	})
	service := func(name, group string, selector string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
  labels: {meshrr.io/group: core.%s, app.kubernetes.io/instance: core, meshrr.io/group-name: %s, app.kubernetes.io/name: meshrr}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {%s}
  ports: [{name: bgp, port: 179, protocol: TCP}]
`, name, group, group, selector)
	}
	start := time.Now()
	out, err := kubectlAs(opts, editor, "apply", "-f", writeTemp(t, service("impostor-member", "core", `meshrr-e2e-probe: "true"`)+"---\n"+service("impostor-evict", "other", "app.kubernetes.io/name: meshrr, meshrr.io/group-name: core")))
	require.NoError(t, err, "the edit role creates Services: %s", out)
	defer k8s.RunKubectl(t, opts, "delete", "service", "impostor-member", "impostor-evict", "--ignore-not-found")
	out, sliceErr := kubectlAs(opts, editor, "create", "-f", writeTemp(t, `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: impostor-slice, labels: {meshrr.io/group: core.core, kubernetes.io/service-name: core-meshrr-core, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}}
addressType: IPv4
endpoints: [{addresses: [`+impostorIP+`], targetRef: {kind: Pod, name: impostor}}]
`))
	require.Error(t, sliceErr, "the edit role may not create EndpointSlices: %s", out)
	assert.Contains(t, out, "forbidden")
	cluster.Wait(t, "every RR warns of the impostor Service", time.Minute, time.Second, func(c *assert.CollectT) {
		out, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "events", "--field-selector", "reason=UntrustedEndpoints", "-o", "jsonpath={range .items[*]}{.involvedObject.name} {.message}{\"\\n\"}{end}")
		if !assert.NoError(c, err) {
			return
		}
		for _, p := range ps {
			warned := false
			for _, l := range strings.Split(out, "\n") {
				warned = warned || strings.HasPrefix(l, p.Name+" ") && strings.Contains(l, "impostor-member")
			}
			assert.True(c, warned, "%s recorded no warning naming the impostor Service", p.Name)
		}
	})
	warned := time.Since(start)
	changed, reset := base.unchanged(t, "the impostor Services", impostorIP)
	logf(t, "impostor: 2 Services created with the edit role (the group's labels over another pod, another group's over the RRs), their EndpointSlice forbidden: %d of %d RRs changed their configuration, %d sessions reset, 0 members added or removed (goal 0, 0); every RR warned within %s",
		changed, len(ps), reset, warned.Round(100*time.Millisecond))
}

// meshState is what a group's RRs run before an attempt to change it.
type meshState struct {
	opts    *k8s.KubectlOptions
	ps      []corev1.Pod
	before  map[string]map[string]cluster.Session
	applied map[string]int
}

func meshBaseline(t *testing.T, opts *k8s.KubectlOptions, ps []corev1.Pod) meshState {
	b := meshState{opts: opts, ps: ps, before: meshSettled(t, opts, len(ps), time.Minute), applied: map[string]int{}}
	for _, p := range ps {
		b.applied[p.Name] = applied(t, opts, p.Name)
	}
	return b
}

// unchanged waits for a reconcile that should not happen, then checks that
// no RR applied a configuration, none has a session to a forbidden
// address and no mesh session reset; it returns how many RRs changed and
// how many sessions reset.
func (b meshState) unchanged(t *testing.T, after string, forbidden ...string) (changed, reset int) {
	t.Helper()
	time.Sleep(5 * time.Second)
	now := meshSettled(t, b.opts, len(b.ps), time.Minute)
	for _, p := range b.ps {
		if n := applied(t, b.opts, p.Name); n != b.applied[p.Name] {
			changed++
			t.Errorf("%s applied %d configurations after %s", p.Name, n-b.applied[p.Name], after)
		}
		ss, err := cluster.Sessions(t, b.opts, p.Name)
		require.NoError(t, err)
		for _, s := range ss {
			assert.NotContains(t, forbidden, s.Peer, "%s has a session to %s after %s", p.Name, s.Peer, after)
		}
		for peer, s := range b.before[p.Name] {
			if !assert.WithinDuration(t, s.Since, now[p.Name][peer].Since, sinceJitter, "%s: session to %s reset after %s", p.Name, peer, after) {
				reset++
			}
		}
	}
	return changed, reset
}

// kubectlAs runs kubectl in the namespace impersonating user (the test's
// kubeconfig is the cluster admin's, which may impersonate).
func kubectlAs(opts *k8s.KubectlOptions, user string, args ...string) (string, error) {
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", kubeconfig, "-n", opts.Namespace, "--as", user}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "obj.yaml")
	require.NoError(t, os.WriteFile(f, []byte(content), 0o600))
	return f
}

// forgedEndpointSlicesChangeNothing: EndpointSlices made by hand in the
// group's namespace, labelled as the group's (one even claiming the
// EndpointSlice controller as its manager), listing a pod name that would
// break out of a BIRD string, a foreign address and the address of a real
// RR, change no RR's configuration; every agent records a warning.
func forgedEndpointSlicesChangeNothing(t *testing.T, opts *k8s.KubectlOptions) {
	ps := cluster.Pods(t, opts, coreSelector)
	base := meshBaseline(t, opts, ps)
	slice := func(name, managedBy string) string {
		return fmt.Sprintf(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %s
  labels:
    meshrr.io/group: core.core
    kubernetes.io/service-name: core-meshrr-core
    endpointslice.kubernetes.io/managed-by: %s
addressType: IPv4
ports: [{name: bgp, port: 179, protocol: TCP}]
endpoints:
  - addresses: [192.0.2.66]
    conditions: {ready: true}
    targetRef: {kind: Pod, name: "x\";\nprotocol static pwn { ipv4; route 0.0.0.0/0 blackhole; }\n#"}
  - addresses: [192.0.2.67]
    conditions: {ready: true}
    targetRef: {kind: Pod, name: core-meshrr-core-forged}
  - addresses: [%s]
    conditions: {ready: true}
    targetRef: {kind: Pod, name: core-meshrr-core-twin}
`, name, managedBy, ps[0].Status.PodIP)
	}
	k8s.KubectlApplyFromString(t, opts, slice("forged-controller", "endpointslice-controller.k8s.io")+"---\n"+slice("forged-other", "someone-else"))
	start := time.Now()
	cluster.Wait(t, "every RR warns of the forged EndpointSlices", time.Minute, time.Second, func(c *assert.CollectT) {
		out, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "events", "--field-selector", "reason=UntrustedEndpoints", "-o", "jsonpath={range .items[*]}{.involvedObject.name}{\"\\n\"}{end}")
		if !assert.NoError(c, err) {
			return
		}
		for _, p := range ps {
			assert.Contains(c, out, p.Name, "%s recorded no UntrustedEndpoints warning", p.Name)
		}
	})
	warned := time.Since(start)
	changed, _ := base.unchanged(t, "the forged EndpointSlices", "192.0.2.66", "192.0.2.67")
	logf(t, "injection: 2 forged EndpointSlices (hostile pod name, foreign and duplicate addresses): %d of %d RRs changed their configuration (goal 0); every RR warned within %s",
		changed, len(ps), warned.Round(100*time.Millisecond))
	k8s.RunKubectl(t, opts, "delete", "endpointslice", "--ignore-not-found", "forged-controller", "forged-other")
}

// podReplacedBaseline is how long the cluster takes, at this moment, to
// replace a force-deleted pod that does nothing (a one-replica Deployment
// of the BIRD image running sleep, no probes): the harness's own share of
// every self-healing and scale-out figure.
func podReplacedBaseline(t *testing.T, opts *k8s.KubectlOptions) time.Duration {
	t.Helper()
	k8s.KubectlApplyFromString(t, opts, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: baseline}
spec:
  replicas: 1
  selector: {matchLabels: {meshrr-e2e: baseline}}
  template:
    metadata: {labels: {meshrr-e2e: baseline}}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 0
      securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: sleep
        image: %s
        imagePullPolicy: Never
        command: [sleep, infinity]
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
`, birdImage))
	defer func() {
		_, _ = k8s.RunKubectlAndGetOutputE(t, opts, "delete", "deployment", "baseline", "--wait=false")
	}()
	old := cluster.WaitReady(t, opts, "meshrr-e2e=baseline", 1, time.Minute)[0].Name
	start := time.Now()
	k8s.RunKubectl(t, opts, "delete", "pod", old, "--wait=false", "--grace-period=0", "--force")
	cluster.Wait(t, "one Ready RR after the delete", time.Minute, 100*time.Millisecond, func(c *assert.CollectT) {
		ps := cluster.Pods(t, opts, "meshrr-e2e=baseline")
		ready := 0
		for _, p := range ps {
			if p.Name != old && cluster.IsReady(p) {
				ready++
			}
		}
		assert.Equal(c, 1, ready)
	})
	return time.Since(start)
}
