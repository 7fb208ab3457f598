//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshrr/meshrr/tests/e2e/cluster"
)

// applied is how many configurations an agent has applied to its daemon.
func applied(t *testing.T, opts *k8s.KubectlOptions, pod string) int {
	t.Helper()
	return int(cluster.Metric(t, opts, pod, "meshrr_apply_total", "result", "applied"))
}

// podState is what must not change across an operation: identity and
// container restarts.
func podState(ps []corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, p := range ps {
		var restarts int32
		for _, c := range p.Status.ContainerStatuses {
			restarts += c.RestartCount
		}
		out[p.Name] = fmt.Sprintf("%s restarts=%d", p.UID, restarts)
	}
	return out
}

// resets counts the sessions of before that are no longer Established with
// the same Since in after.
func resets(before, after map[string]map[string]cluster.Session) (reset, total int, which []string) {
	for pod, ss := range before {
		for peer, s := range ss {
			total++
			a, ok := after[pod][peer]
			if !ok || !a.Established || a.Since.Sub(s.Since).Abs() > sinceJitter {
				reset++
				which = append(which, pod+"->"+peer)
			}
		}
	}
	return reset, total, which
}

func installCore(t *testing.T, prefix string) (*k8s.KubectlOptions, *helm.Options) {
	t.Helper()
	opts := namespace(t, prefix)
	ho := helmOptions(opts, []string{example("2regions-hrr", "values-core.yaml")}, nil)
	helm.Install(t, ho, chart(), "core")
	cluster.WaitReady(t, opts, coreSelector, 2, 3*time.Minute)
	return opts, ho
}

// TestPolicyOnlyUpgradeResetsNoSession: a helm upgrade that changes only a
// boundary policy reaches every agent through the ConfigMap (hot reload),
// rolls no pod and resets no session.
func TestPolicyOnlyUpgradeResetsNoSession(t *testing.T) {
	opts, ho := installCore(t, "e2e-policy")
	meshSettled(t, opts, 2, 2*time.Minute)
	before, ps, state, count := baseline(t, opts)

	start := time.Now()
	ho.SetValues = map[string]string{
		"groups.core.policy[0].name":                "drop-65000-999",
		"groups.core.policy[0].towards[0]":          "mesh",
		"groups.core.policy[0].matchCommunities[0]": "65000:999",
		"groups.core.policy[0].action":              "reject",
	}
	helm.Upgrade(t, ho, chart(), "core")
	cluster.Wait(t, "every core RR applied the new policy", 3*time.Minute, 2*time.Second, func(c *assert.CollectT) {
		for _, p := range ps {
			assert.Greater(c, applied(t, opts, p.Name), count[p.Name], "%s has not applied the new policy yet", p.Name)
		}
	})
	took := time.Since(start)
	after := settledSessions(t, opts)
	n, total, which := resets(before, after)
	assert.Equal(t, state, podState(cluster.Pods(t, opts, coreSelector)), "no pod replaced or restarted")
	logf(t, "policy-only upgrade: applied by every RR %s after helm upgrade (kubelet's ConfigMap sync); %d of %d sessions reset %v (goal 0)", took.Round(time.Second), n, total, which)
	assert.Zero(t, n, "a policy change reset sessions")

	discoveryServiceGoneChangesNothing(t, opts)
	valuesCheckRefusesBeforeAnyPodChanges(t, opts, ho)
}

// valuesCheckRefusesBeforeAnyPodChanges: values the schema cannot refuse
// (a keepalive above the hold time, a client range with host bits set, a
// community value over 65535, an extraConfig BIRD cannot parse) fail helm
// upgrade and helm install in the chart's pre-install/pre-upgrade hook,
// which runs the agent's own check and BIRD's parser:
// the running pods, their configuration and their sessions stay as they
// were, a failed install creates no workload, and the hook Job's log names
// each field.
func valuesCheckRefusesBeforeAnyPodChanges(t *testing.T, opts *k8s.KubectlOptions, ho *helm.Options) {
	before, ps, state, count := baseline(t, opts)
	cfgBefore, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "configmap", "core-meshrr-core", "-o", "jsonpath={.data.config\\.yaml}")
	require.NoError(t, err)
	bad := map[string]string{
		"groups.core.timers.hold":                   "30",
		"groups.core.timers.keepalive":              "40",
		"groups.core.clients.regions.ranges[0]":     "10.244.0.1/16",
		"groups.core.policy[0].name":                "drop-65000-999",
		"groups.core.policy[0].towards[0]":          "regions",
		"groups.core.policy[0].matchCommunities[0]": "65000:99999",
		"groups.core.policy[0].action":              "reject",
		// BIRD's own parser (bird -p in the hook) refuses it
		"groups.core.backend.bird.extraConfig": "protocol static broken { ipv4; route 10.0.0.0/8 blackhol; }",
	}
	start := time.Now()
	hb := *ho
	hb.SetValues = bad
	err = helm.UpgradeE(t, &hb, chart(), "core")
	require.Error(t, err, "helm upgrade with values the agent refuses")
	logf(t, "values check: helm upgrade refused in %s: %s", time.Since(start).Round(time.Second), firstLine(err.Error()))
	assert.Contains(t, err.Error(), "core-meshrr-values-check")
	log, err := k8s.RunKubectlAndGetOutputE(t, opts, "logs", "job/core-meshrr-values-check", "--all-containers")
	require.NoError(t, err)
	logf(t, "values check: the hook Job's log:\n%s", log)
	for _, want := range []string{
		"groups.core.yaml: timers.keepalive: 40 must be below the hold time 30",
		`groups.core.yaml: clients[0].ranges[0] (clients "regions"): "10.244.0.1/16" has host bits set: did you mean 10.244.0.0/16?`,
		`groups.core.yaml: policy[0].matchCommunities[0] (policy "drop-65000-999"): "65000:99999" is not a community`,
		"groups.core.backend.bird.extraConfig: BIRD 2 refuses it (its line N is line N+2 of the file named): bird: /etc/meshrr-check/groups.core.bird2-check.conf:3:49 syntax error",
	} {
		assert.Contains(t, log, want)
	}
	cfgAfter, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "configmap", "core-meshrr-core", "-o", "jsonpath={.data.config\\.yaml}")
	require.NoError(t, err)
	assert.Equal(t, cfgBefore, cfgAfter, "the group's configuration changed")
	assert.Equal(t, state, podState(cluster.Pods(t, opts, coreSelector)), "no pod replaced or restarted")
	n, total, which := resets(before, settledSessions(t, opts))
	changed := 0
	for _, p := range ps {
		changed += applied(t, opts, p.Name) - count[p.Name]
	}
	logf(t, "values check: after the refused upgrade %d of %d sessions reset %v, %d configuration changes (goal 0, 0)", n, total, which, changed)
	assert.Zero(t, n)
	assert.Zero(t, changed)

	// a fresh install with such a value creates nothing
	other := namespace(t, "e2e-refused")
	hi := helmOptions(other, []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{"groups.core.clients.regions.ranges[0]": "10.244.0.1/16"})
	start = time.Now()
	err = helm.InstallE(t, hi, chart(), "core")
	require.Error(t, err, "helm install with a value the agent refuses")
	logf(t, "values check: helm install refused in %s", time.Since(start).Round(time.Second))
	out, err := k8s.RunKubectlAndGetOutputE(t, other, "get", "deployments,statefulsets,daemonsets,configmaps,services,jobs", "-l", "app.kubernetes.io/instance=core", "-o", "name")
	require.NoError(t, err)
	assert.Equal(t, []string{"job.batch/core-meshrr-values-check"}, strings.Fields(out), "a refused install leaves only the failed hook Job (for its log)")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// discoveryServiceGoneChangesNothing deletes the group's headless
// Services (and so its EndpointSlices) for 20 s, then restores them: an
// empty view that no longer lists the pod itself changes nothing, and the
// restored view is the old one.
func discoveryServiceGoneChangesNothing(t *testing.T, opts *k8s.KubectlOptions) {
	before, ps, state, count := baseline(t, opts)
	var saved []string
	for _, side := range []string{"a", "b"} {
		svc := k8s.GetService(t, opts, "core-meshrr-core-"+side)
		require.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP)
		svc.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}
		svc.ObjectMeta = metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Labels: svc.Labels, Annotations: svc.Annotations}
		svc.Status = corev1.ServiceStatus{}
		raw, err := json.Marshal(svc)
		require.NoError(t, err)
		saved = append(saved, string(raw))
		k8s.RunKubectl(t, opts, "delete", "service", svc.Name)
	}
	cluster.Wait(t, "the group's EndpointSlices gone", time.Minute, time.Second, func(c *assert.CollectT) {
		out, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "endpointslices", "-l", "meshrr.io/group=core.core", "-o", "name")
		assert.NoError(c, err)
		assert.Empty(c, strings.TrimSpace(out), "the group's EndpointSlices are still there")
	})
	time.Sleep(20 * time.Second)
	gone := settledSessions(t, opts)
	for _, raw := range saved {
		k8s.KubectlApplyFromString(t, opts, raw)
	}
	cluster.Wait(t, "the restored Services' EndpointSlices", time.Minute, time.Second, func(c *assert.CollectT) {
		out, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "endpointslices", "-l", "meshrr.io/group=core.core", "-o", "name")
		assert.NoError(c, err)
		assert.Len(c, strings.Fields(out), 2, "the restored Services' EndpointSlices")
	})
	time.Sleep(5 * time.Second)
	after := settledSessions(t, opts)
	nGone, total, whichGone := resets(before, gone)
	n, _, which := resets(before, after)
	changed := 0
	for _, p := range ps {
		changed += applied(t, opts, p.Name) - count[p.Name]
	}
	assert.Equal(t, state, podState(cluster.Pods(t, opts, coreSelector)), "no pod replaced or restarted")
	logf(t, "discovery Services deleted for 20 s, then restored: %d of %d sessions reset while they were gone %v, %d after the restore %v, %d configuration changes (goal 0, 0, 0)",
		nGone, total, whichGone, n, which, changed)
	assert.Zero(t, nGone, "sessions reset while the discovery Services were gone")
	assert.Zero(t, n, "sessions reset by the restore")
	assert.Zero(t, changed, "configuration changed")
}

// baseline is what an operation must not change: the sessions, the pods
// and how many configurations each agent applied.
func baseline(t *testing.T, opts *k8s.KubectlOptions) (map[string]map[string]cluster.Session, []corev1.Pod, map[string]string, map[string]int) {
	t.Helper()
	before := settledSessions(t, opts)
	ps := cluster.Pods(t, opts, coreSelector)
	count := map[string]int{}
	for _, p := range ps {
		count[p.Name] = applied(t, opts, p.Name)
	}
	return before, ps, podState(ps), count
}

// settledSessions reads every core pod's Established sessions, by peer.
func settledSessions(t *testing.T, opts *k8s.KubectlOptions) map[string]map[string]cluster.Session {
	t.Helper()
	out := map[string]map[string]cluster.Session{}
	for _, p := range cluster.Pods(t, opts, coreSelector) {
		ss, err := cluster.Sessions(t, opts, p.Name)
		require.NoError(t, err)
		out[p.Name] = map[string]cluster.Session{}
		for _, s := range ss {
			if s.Established {
				out[p.Name][s.Peer] = s
			}
		}
	}
	return out
}

// TestAPIServerOutageChangesNothing stops the control plane's
// kube-apiserver for 60 s: the agents keep their peers (informer caches)
// and change nothing, and no BGP session resets.
func TestAPIServerOutageChangesNothing(t *testing.T) {
	opts, _ := installCore(t, "e2e-outage")
	meshSettled(t, opts, 2, 2*time.Minute)
	before, ps, state, count := baseline(t, opts)

	outage := apiServerOutage(t, opts, 60*time.Second)

	after := settledSessions(t, opts)
	n, total, which := resets(before, after)
	changed := 0
	for _, p := range ps {
		changed += applied(t, opts, p.Name) - count[p.Name]
	}
	assert.Equal(t, state, podState(cluster.Pods(t, opts, coreSelector)), "no pod replaced or restarted")
	logf(t, "api outage: apiserver unreachable for %s; %d of %d sessions reset %v, %d configuration changes (goal 0 and 0)", outage.Round(time.Second), n, total, which, changed)
	assert.Zero(t, n, "sessions reset during the API outage")
	assert.Zero(t, changed, "configuration changed during the API outage")
}

// TestTCPMD5FromASecret: the core group's mesh and client keys come from
// a Secret; a router with another key never gets a session, with the
// right key it does. Then the Secret breaks, failing closed and locally: a
// malformed client key takes the router's session down and keeps it down
// while the mesh keeps its key and a deleted RR pod still drains and is
// replaced; with the client key missing (required: every session group's
// by default) a router without any key gets no session either.
func TestTCPMD5FromASecret(t *testing.T) {
	opts := namespace(t, "e2e-md5")
	setKeys := func(keys map[string]string) {
		var b strings.Builder
		for k, v := range keys {
			fmt.Fprintf(&b, "  %s: %q\n", k, v)
		}
		k8s.KubectlApplyFromString(t, opts, "apiVersion: v1\nkind: Secret\nmetadata: {name: core-bgp-keys}\nstringData:\n"+b.String())
	}
	setKeys(map[string]string{"mesh": "mesh-key-1", "downstream": "downstream-key-1", "client-routers": "right-key-123"})
	helm.Install(t, helmOptions(opts, []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.tcpMD5Secret":              "core-bgp-keys",
		"groups.core.clients.routers.ranges[0]": routerRange(),
	}), chart(), "core")
	ps := cluster.WaitReady(t, opts, coreSelector, 2, 3*time.Minute)
	rr := ps[0].Status.PodIP
	r := startRouter(t, "md5", fmt.Sprintf("router bgp 65000\n bgp router-id %s\n neighbor %s remote-as 65000\n neighbor %s timers connect 1\n neighbor %s password wrong-key-456\n", routerID(60), rr, rr, rr))
	for range 8 {
		time.Sleep(time.Second)
		require.NotEqual(t, "Established", r.neighborState(rr), "Established with the wrong key")
	}
	// why: the RR pod's kernel counted the badly signed segments
	n := int(cluster.Metric(t, opts, ps[0].Name, "meshrr_tcp_md5_segments_dropped_total", "reason", "failure"))
	assert.Positive(t, n, "the wrong key shows in the RR's metrics")
	r.configure(t, fmt.Sprintf("router bgp 65000\nneighbor %s password right-key-123", rr))
	start := time.Now()
	cluster.Wait(t, "the router Established with the right key", time.Minute, 200*time.Millisecond, func(c *assert.CollectT) {
		assert.Equal(c, "Established", r.neighborState(rr))
	})
	logf(t, "md5: wrong key: no session for 8 s, %d badly signed segments dropped (meshrr_tcp_md5_segments_dropped_total{reason=\"failure\"}); right key: Established %s after the router's change", n, time.Since(start).Round(100*time.Millisecond))

	// a malformed client key: the router's session goes and stays down,
	// nothing else moves
	meshBefore := meshSettled(t, opts, 2, time.Minute)
	setKeys(map[string]string{"mesh": "mesh-key-1", "downstream": "downstream-key-1", "client-routers": `bad"key`})
	start = time.Now()
	cluster.Wait(t, "the router's session refused with a malformed key", 3*time.Minute, time.Second, func(c *assert.CollectT) {
		assert.NotEqual(c, "Established", r.neighborState(rr), "the router's session with a malformed key in the Secret")
	})
	down := time.Since(start)
	for range 5 {
		time.Sleep(time.Second)
		require.NotEqual(t, "Established", r.neighborState(rr), "the client sessions came back without their key")
	}
	evs, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "events", "--field-selector", "reason=TCPMD5KeyRefused,involvedObject.name="+ps[0].Name, "-o", "jsonpath={.items[*].message}")
	require.NoError(t, err)
	assert.Contains(t, evs, `routers sessions refused, none runs without its TCP-MD5 key: Secret core-bgp-keys: key "client-routers" must be 1-80 printable ASCII characters`)
	assert.NotContains(t, evs, "bad")
	reset := 0
	meshAfter := meshSettled(t, opts, 2, time.Minute)
	for pod, peers := range meshBefore {
		for peer, s := range peers {
			if !assert.WithinDuration(t, s.Since, meshAfter[pod][peer].Since, sinceJitter, "%s: mesh session to %s reset by the malformed client key", pod, peer) {
				reset++
			}
		}
	}
	logf(t, "md5: malformed client key: the router's session down %s after the Secret changed and kept down; %d mesh sessions reset (goal 0)", down.Round(time.Second), reset)

	// the drain and the mesh still reconcile: a deleted RR drains and its
	// replacement meshes
	start = time.Now()
	k8s.RunKubectl(t, opts, "delete", "pod", ps[1].Name, "--wait=false")
	cluster.WaitReplaced(t, opts, coreSelector, []string{ps[1].Name}, 2, 3*time.Minute)
	meshSettled(t, opts, 2, 2*time.Minute)
	drained, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "events", "--field-selector", "reason=Draining,involvedObject.name="+ps[1].Name, "-o", "name")
	require.NoError(t, err)
	assert.NotEmpty(t, drained, "the deleted RR drained")
	logf(t, "md5: with the client key malformed, a deleted RR drained and its replacement meshed (with the mesh key) %s later", time.Since(start).Round(time.Second))

	// the client key missing: required by default, so a router without any
	// key gets no session (it would with MD5 silently off)
	k8s.RunKubectl(t, opts, "patch", "secret", "core-bgp-keys", "--type=json", `-p=[{"op": "remove", "path": "/data/client-routers"}]`)
	r.configure(t, fmt.Sprintf("router bgp 65000\nno neighbor %s password", rr))
	start = time.Now()
	cluster.Wait(t, "the Event naming the missing key", 3*time.Minute, 2*time.Second, func(c *assert.CollectT) {
		evs, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "events", "--field-selector", "reason=TCPMD5KeyRefused,involvedObject.name="+ps[0].Name, "-o", "jsonpath={.items[*].message}")
		assert.NoError(c, err)
		assert.Contains(c, evs, `Secret core-bgp-keys has no key "client-routers"`)
	})
	for range 8 {
		time.Sleep(time.Second)
		require.NotEqual(t, "Established", r.neighborState(rr), "a session without MD5 although the group requires its key")
	}
	logf(t, "md5: client key removed from the Secret: refused %s later, and a router without a key stayed down for 8 s", time.Since(start).Round(time.Second))
}

// TestTCPMD5KeyRolloverLosesNoRoute rotates the mesh key of a core of four
// RRs (two per side) with a rollover (docs/operations.md): the next key
// and its window written beside the key in the Secret. An origin homed on
// a0 and b0 announces prefixes that a client homed on a1 and b1 receives
// only across the mesh, sampled every 200 ms. Each mesh session switches at
// its own point of the window, the same at both ends, so the client never
// misses a prefix; the routers' sessions (another key) never reset; and
// making the next key the key afterwards resets nothing.
func TestTCPMD5KeyRolloverLosesNoRoute(t *testing.T) {
	opts := namespace(t, "e2e-rollover")
	// as docs/operations.md writes the Secret: create --dry-run piped to
	// apply, which also removes the keys no longer listed
	setKeys := func(keys map[string]string) {
		args := []string{"create", "secret", "generic", "core-bgp-keys", "--dry-run=client", "-o", "yaml"}
		for k, v := range keys {
			args = append(args, "--from-literal="+k+"="+v)
		}
		manifest, err := k8s.RunKubectlAndGetOutputE(t, opts, args...)
		require.NoError(t, err)
		k8s.KubectlApplyFromString(t, opts, manifest)
	}
	setKeys(map[string]string{"mesh": "mesh-key-1", "downstream": "downstream-key-1", "client-routers": "routers-key-1"})
	helm.Install(t, helmOptions(opts, []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.tcpMD5Secret":              "core-bgp-keys",
		"groups.core.replicas":                  "2",
		"groups.core.clients.routers.ranges[0]": routerRange(),
	}), chart(), "core")
	ps := cluster.WaitReady(t, opts, coreSelector, 4, 3*time.Minute)
	bySide := map[string][]string{}
	for _, p := range ps {
		bySide[p.Labels["meshrr.io/side"]] = append(bySide[p.Labels["meshrr.io/side"]], p.Status.PodIP)
	}
	require.Len(t, bySide["a"], 2)
	require.Len(t, bySide["b"], 2)
	originRRs, clientRRs := []string{bySide["a"][0], bySide["b"][0]}, []string{bySide["a"][1], bySide["b"][1]}
	announce := map[string]string{}
	var prefixes []string
	for i := range 20 {
		p := fmt.Sprintf("10.211.%d.0/24", i)
		announce[p], prefixes = "", append(prefixes, p)
	}
	keyed := func(conf string, rrs []string) string {
		for _, rr := range rrs {
			line := fmt.Sprintf(" neighbor %s remote-as 65000\n", rr)
			conf = strings.Replace(conf, line, line+fmt.Sprintf(" neighbor %s password routers-key-1\n", rr), 1)
		}
		return conf
	}
	startRouter(t, "roll-origin", keyed(routerConf(routerID(51), originRRs, announce), originRRs))
	client := startRouter(t, "roll-client", keyed(routerConf(routerID(52), clientRRs, nil), clientRRs))
	cluster.Wait(t, "the client holds the origin's prefixes across the mesh", 2*time.Minute, time.Second, func(c *assert.CollectT) {
		m, err := client.routes()
		if assert.NoError(c, err) {
			for _, p := range prefixes {
				assert.Contains(c, m, p)
			}
		}
	})
	sessions := func() (mesh, routers map[string]map[string]cluster.Session) {
		mesh, routers = meshSettled(t, opts, 4, 2*time.Minute), map[string]map[string]cluster.Session{}
		for _, p := range cluster.Pods(t, opts, coreSelector) {
			ss, err := cluster.Sessions(t, opts, p.Name)
			require.NoError(t, err)
			routers[p.Name] = cluster.Established(ss, "routers")
		}
		return mesh, routers
	}
	meshBefore, routersBefore := sessions()

	// the rollover: every agent must read it before the window opens
	// (kubelets update mounted Secrets within about a minute)
	written := time.Now()
	from := written.Add(100 * time.Second).Truncate(time.Second)
	until := from.Add(40 * time.Second)
	window := from.UTC().Format(time.RFC3339) + "/" + until.UTC().Format(time.RFC3339)
	setKeys(map[string]string{"mesh": "mesh-key-1", "mesh.next": "mesh-key-2", "mesh.next-window": window, "downstream": "downstream-key-1", "client-routers": "routers-key-1"})
	watch := watchRoutes(client, prefixes)
	cluster.Wait(t, "every RR read the rollover (Event TCPMD5KeyRollover)", 100*time.Second, 2*time.Second, func(c *assert.CollectT) {
		for _, p := range ps {
			evs, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "events", "--field-selector", "reason=TCPMD5KeyRollover,involvedObject.name="+p.Name, "-o", "jsonpath={.items[*].message}")
			assert.NoError(c, err)
			assert.Contains(c, evs, "mesh: its sessions switch to the next TCP-MD5 key one after the other between "+from.UTC().Format(time.RFC3339), p.Name)
		}
	})
	logf(t, "rollover: every RR read the next key %s after the Secret changed; the window opens %s after it", time.Since(written).Round(time.Second), from.Sub(written).Round(time.Second))
	time.Sleep(time.Until(until.Add(5 * time.Second)))
	meshAfter, routersAfter := sessions()
	samples, lost, longest, missing := watch.finish()

	switched := 0
	for pod, peers := range meshBefore {
		for peer, s := range peers {
			a, ok := meshAfter[pod][peer]
			require.True(t, ok, "%s: no mesh session to %s after the rollover", pod, peer)
			if a.Since.After(s.Since.Add(sinceJitter)) {
				switched++
				assert.False(t, a.Since.Before(from.Add(-2*time.Second)) || a.Since.After(until.Add(5*time.Second)), "%s-%s: re-established at %s, outside the window", pod, peer, a.Since.Format(time.TimeOnly))
			}
		}
	}
	assert.Equal(t, 12, switched, "each of the 6 mesh sessions (12 ends) re-established once on the new key")
	routerResets := 0
	for pod, peers := range routersBefore {
		for peer, s := range peers {
			if !assert.WithinDuration(t, s.Since, routersAfter[pod][peer].Since, sinceJitter, "%s: the router session to %s reset by the mesh key's rollover", pod, peer) {
				routerResets++
			}
		}
	}
	logf(t, "rollover: %d of 12 mesh session ends switched in the 40 s window; the client kept the origin's %d prefixes in %d samples, %d prefix-samples missing, longest gap %s (goal 0); %d router sessions reset (goal 0)", switched, len(prefixes), samples, lost, longest, routerResets)
	assert.Empty(t, missing)
	assert.Zero(t, lost, "the client lost a prefix during the mesh key's rollover")

	// the next key becomes the key, in one update: nothing resets
	setKeys(map[string]string{"mesh": "mesh-key-2", "downstream": "downstream-key-1", "client-routers": "routers-key-1"})
	start := time.Now()
	cluster.Wait(t, "every RR's rollover over (the Secret's update mounted)", 2*time.Minute, 2*time.Second, func(c *assert.CollectT) {
		for _, p := range ps {
			out, err := k8s.RunKubectlAndGetOutputE(t, opts, "logs", p.Name, "-c", "agent")
			if assert.NoError(c, err) {
				assert.Contains(c, out, "TCP-MD5 key rollover over", p.Name)
			}
		}
	})
	time.Sleep(5 * time.Second) // a reconcile after the last update
	meshDone, _ := sessions()
	for pod, peers := range meshAfter {
		for peer, s := range peers {
			assert.WithinDuration(t, s.Since, meshDone[pod][peer].Since, sinceJitter, "%s: mesh session to %s reset when the next key became the key", pod, peer)
		}
	}
	logf(t, "rollover: the next key made the key and the rollover removed, mounted everywhere %s later: 0 mesh sessions reset", time.Since(start).Round(time.Second))
}
