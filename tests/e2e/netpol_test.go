//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshrr/meshrr/tests/e2e/cluster"
)

// scraperLabel admits a pod to the metrics port of the groups whose
// networkPolicy.metricsFrom the hierarchy suite sets (see netpolValues).
const scraperLabel = "meshrr-e2e-role"

// netpolValues: the chart's NetworkPolicy (on by default) with the metrics
// port only for pods of the release namespace labelled as scrapers.
func netpolValues() map[string]string {
	return map[string]string{
		"networkPolicy.metricsFrom[0].podSelector.matchLabels." + scraperLabel: "scraper",
	}
}

// probe is a pod that opens TCP connections on request (the BIRD image:
// bash and coreutils' timeout).
type probe struct {
	opts *k8s.KubectlOptions
	name string
}

func startProbe(t *testing.T, opts *k8s.KubectlOptions, name string, labels map[string]string) probe {
	t.Helper()
	var l strings.Builder
	for k, v := range labels {
		fmt.Fprintf(&l, "\n    %s: %q", k, v)
	}
	k8s.KubectlApplyFromString(t, opts, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels:
    meshrr-e2e-probe: "true"%s
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 0
%s  containers:
  - name: probe
    image: %s
    imagePullPolicy: Never
    command: [sleep, infinity]
%s`, name, l.String(), restrictedPod, birdImage, restrictedContainer))
	return probe{opts: opts, name: name}
}

// dial opens a TCP connection from the probe pod: "open", "timeout" (the
// SYN went unanswered: what a NetworkPolicy drop looks like) or "error"
// with what the shell said (refused, no route).
func (p probe) dial(t *testing.T, addr string, port int) string {
	t.Helper()
	out, err := k8s.RunKubectlAndGetOutputE(t, p.opts, "exec", p.name, "--", "bash", "-c",
		`timeout 3 bash -c 'exec 3<>/dev/tcp/$0/$1' "$0" "$1" 2>&1; echo "rc=$?"`, addr, fmt.Sprint(port))
	out = strings.TrimSpace(out)
	switch {
	case err != nil:
		return "error: " + err.Error()
	case strings.HasSuffix(out, "rc=0"):
		return "open"
	case strings.HasSuffix(out, "rc=124"):
		return "timeout"
	}
	return "error: " + out
}

// networkPolicyHolds proves the chart's NetworkPolicy on a region of the
// hierarchy with enforcement on (kube-network-policies in the test
// clusters): the region's mesh, its upstream (core) and its client range
// (an FRR router) are Established and the core accepts the region as a
// downstream client; a pod in another namespace carrying the region's own
// labels or the core's, and a pod of the region's namespace outside the
// group, cannot open TCP 179 to a region RR; the metrics port admits the
// scraper pod only. Then the policy is deleted and the same probes open
// the same port: the refusals were the policy's, and this test fails
// without it.
func networkPolicyHolds(t *testing.T, coreNS, regionNS *k8s.KubectlOptions, release string, cores, region []corev1.Pod) {
	start := time.Now()
	regionIPs := map[string]bool{}
	for _, p := range region {
		regionIPs[p.Status.PodIP] = true
	}
	cluster.Wait(t, "mesh, upstream, downstream and client sessions through the policy", 2*time.Minute, time.Second, func(c *assert.CollectT) {
		for _, p := range region {
			ss, err := cluster.Sessions(t, regionNS, p.Name)
			if !assert.NoError(c, err) {
				return
			}
			assert.Len(c, cluster.Established(ss, "mesh"), len(region)-1, "%s: mesh sessions through the policy", p.Name)
			assert.NotEmpty(c, cluster.Established(ss, "upstream"), "%s: upstream sessions through the policy", p.Name)
			assert.NotEmpty(c, cluster.Established(ss, "routers"), "%s: client-range sessions through the policy", p.Name)
		}
		for _, p := range cores {
			ss, err := cluster.Sessions(t, coreNS, p.Name)
			if !assert.NoError(c, err) {
				return
			}
			n := 0
			for peer := range cluster.Established(ss, "downstream") {
				if regionIPs[peer] {
					n++
				}
			}
			assert.Equal(c, len(region), n, "%s: the region's RRs as downstream clients", p.Name)
		}
	})

	otherNS := namespace(t, "e2e-impostor")
	selfLabels := map[string]string{
		"app.kubernetes.io/name": "meshrr", "app.kubernetes.io/instance": release, "meshrr.io/group-name": release,
	}
	coreLabels := map[string]string{
		"app.kubernetes.io/name": "meshrr", "app.kubernetes.io/instance": "core", "meshrr.io/group-name": "core",
	}
	probes := map[string]probe{
		"impostor of the group, other namespace":    startProbe(t, otherNS, "impostor-self", selfLabels),
		"impostor of the upstream, other namespace": startProbe(t, otherNS, "impostor-core", coreLabels),
		"pod outside the group, same namespace":     startProbe(t, regionNS, "outsider", map[string]string{"app": "outsider"}),
	}
	scraper := startProbe(t, regionNS, "scraper", map[string]string{scraperLabel: "scraper"})
	for _, opts := range []*k8s.KubectlOptions{otherNS, regionNS} {
		_, err := k8s.RunKubectlAndGetOutputE(t, opts, "wait", "--for=condition=Ready", "pod", "-l", "meshrr-e2e-probe=true", "--timeout=90s")
		require.NoError(t, err, "probe pods in %s", opts.Namespace)
	}
	target := region[0].Status.PodIP

	cluster.Wait(t, "the scraper reaching the metrics port", 30*time.Second, time.Second, func(c *assert.CollectT) {
		assert.Equal(c, "open", scraper.dial(t, target, cluster.MetricsPort), "the scraper to the metrics port")
	})
	assert.Equal(t, "timeout", scraper.dial(t, target, 179), "the scraper (not a group member) to BGP")
	refused := 0
	for what, p := range probes {
		got := p.dial(t, target, 179)
		assert.Equal(t, "timeout", got, "%s to BGP", what)
		if got == "timeout" {
			refused++
		}
		assert.Equal(t, "timeout", p.dial(t, target, cluster.MetricsPort), "%s to the metrics port", what)
	}
	logf(t, "networkpolicy: %d of %d hostile pods refused on TCP 179 of %s (sessions of mesh, upstream, downstream and clients Established), %s after the check began",
		refused, len(probes), region[0].Name, time.Since(start).Round(100*time.Millisecond))

	// control: without the chart's policy the same probes reach BGP
	_, err := k8s.RunKubectlAndGetOutputE(t, regionNS, "delete", "networkpolicy", "-l", "meshrr.io/group-name="+release)
	require.NoError(t, err)
	removed := time.Now()
	cluster.Wait(t, "every probe reaches BGP once the policy is gone", time.Minute, time.Second, func(c *assert.CollectT) {
		for what, p := range probes {
			assert.Equal(c, "open", p.dial(t, target, 179), "%s to BGP once the policy is gone", what)
		}
	})
	logf(t, "networkpolicy: policy deleted, all %d probes reach TCP 179 %s later (the refusals were the policy's)",
		len(probes), time.Since(removed).Round(100*time.Millisecond))
}

// impostorPrefix is what the impostor speakers announce.
const impostorPrefix = "10.99.0.0/24"

// startImpostor runs a real BIRD in a restricted pod (allowed to bind TCP
// 179, as the chart's RR pods are) with the hierarchy's internal AS,
// announcing impostorPrefix to every RR address given, and returns the pod
// as a probe and its address.
func startImpostor(t *testing.T, opts *k8s.KubectlOptions, name string, rrs []string) (probe, string) {
	t.Helper()
	k8s.KubectlApplyFromString(t, opts, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels: {meshrr-e2e-impostor: "true"}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 0
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    seccompProfile: {type: RuntimeDefault}
    sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "0"}]
  containers:
  - name: probe
    image: %s
    imagePullPolicy: Never
    command: [sleep, infinity]
%s`, name, birdImage, restrictedContainer))
	_, err := k8s.RunKubectlAndGetOutputE(t, opts, "wait", "--for=condition=Ready", "pod/"+name, "--timeout=90s")
	require.NoError(t, err)
	var conf strings.Builder
	fmt.Fprintf(&conf, "router id 10.99.0.1;\nprotocol device {}\nprotocol static imp_static { ipv4; route %s blackhole; }\n", impostorPrefix)
	conf.WriteString("template bgp imp { local as 65000; connect retry time 2; ipv4 { import all; export all; }; }\n")
	for i, a := range rrs {
		fmt.Fprintf(&conf, "protocol bgp imp%d from imp { neighbor %s as 65000; }\n", i, a)
	}
	out, err := k8s.RunKubectlAndGetOutputE(t, opts, "exec", name, "--", "bash", "-c",
		`printf '%s' "$0" > /tmp/imp.conf && bird -c /tmp/imp.conf -s /tmp/imp.ctl -P /tmp/imp.pid`, conf.String())
	require.NoError(t, err, "the impostor's BIRD: %s", out)
	ip, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "pod", name, "-o", "jsonpath={.status.podIP}")
	require.NoError(t, err)
	return probe{opts: opts, name: name}, ip
}

// impostorSessions is how many of the impostor's BGP sessions are Established.
func (p probe) impostorSessions(t *testing.T) (int, string) {
	out, err := k8s.RunKubectlAndGetOutputE(t, p.opts, "exec", p.name, "--", "birdc", "-s", "/tmp/imp.ctl", "show", "protocols")
	require.NoError(t, err, out)
	up := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "imp") && strings.Contains(l, "Established") {
			up++
		}
	}
	return up, out
}

// impostorSpeakersGetNoSession: two real BIRD speakers with the internal
// AS announcing impostorPrefix, one in a namespace of its own and one in
// the core's namespace outside the release, try every core and region RR:
// TCP 179 is refused by the NetworkPolicy everywhere, no session comes up,
// and the prefix reaches no RR and no router. Then the core's policy is
// deleted: TCP reaches the core RRs, and still their BIRD admits neither
// (the core admits its region RRs one by one, each at its own address,
// where the example admitted the whole pod network before, and any pod of
// the cluster peered). The core's policy is restored at the end.
func impostorSpeakersGetNoSession(t *testing.T, coreNS *k8s.KubectlOptions, rrs map[*k8s.KubectlOptions][]corev1.Pod, routers []*Router) {
	start := time.Now()
	var addrs []string
	for _, ps := range rrs {
		for _, p := range ps {
			addrs = append(addrs, p.Status.PodIP)
		}
	}
	cores := rrs[coreNS]
	otherNS := namespace(t, "e2e-impostor-bgp")
	away, awayIP := startImpostor(t, otherNS, "impostor-bgp", addrs)
	inCore, inCoreIP := startImpostor(t, coreNS, "impostor-bgp", addrs)
	impostors := map[string]probe{"another namespace": away, "the core's namespace": inCore}
	impostorIPs := map[string]bool{awayIP: true, inCoreIP: true}

	refused := 0
	for what, p := range impostors {
		for _, a := range addrs {
			got := p.dial(t, a, 179)
			assert.Equal(t, "timeout", got, "impostor in %s to BGP of %s", what, a)
			if got == "timeout" {
				refused++
			}
		}
	}
	nothingReached := func(phase string) {
		for range 2 { // 16 s of the impostors' connect retries (every 2 s), checked twice
			time.Sleep(8 * time.Second)
			for what, p := range impostors {
				up, out := p.impostorSessions(t)
				require.Zero(t, up, "%s: the impostor in %s has a session:\n%s", phase, what, out)
			}
			for opts, ps := range rrs {
				for _, p := range ps {
					// birdc exits 1 with "Network not found" when no route covers it
					out, _ := cluster.Birdc(t, opts, p.Name, "show", "route", "for", impostorPrefix)
					require.Contains(t, out, "Network not found", "%s: the impostor's route reached %s", phase, p.Name)
					ss, err := cluster.Sessions(t, opts, p.Name)
					require.NoError(t, err)
					for _, s := range ss {
						require.False(t, impostorIPs[s.Peer], "%s: %s has a session with an impostor: %+v", phase, p.Name, s)
					}
				}
			}
			for _, r := range routers {
				m, err := r.routes()
				require.NoError(t, err)
				require.NotContains(t, m, impostorPrefix, "%s: the impostor's route reached router %s", phase, r.Name)
			}
		}
	}
	// the chart's defaults: the metrics port only for Prometheus pods, and
	// an RR opens BGP only to its peers (egress)
	for what, p := range impostors {
		for _, rr := range cores {
			assert.Equal(t, "timeout", p.dial(t, rr.Status.PodIP, cluster.MetricsPort), "impostor in %s to the metrics port of %s (default metricsFrom: Prometheus)", what, rr.Name)
		}
	}
	rrOut := probe{opts: coreNS, name: cores[0].Name} // its first container: BIRD's image, with bash
	assert.Equal(t, "timeout", rrOut.dial(t, awayIP, 179), "a core RR dials BGP to a pod that is not its peer (egress)")
	nothingReached("behind the policies")
	logf(t, "impostors: %d of %d connections from 2 real BGP speakers (AS 65000, announcing %s) to the %d core and region RRs refused on TCP 179 (and the core's metrics port, and a core RR's own connection to one of them); 0 sessions, the prefix at no RR and no router 16 s later (%s)",
		refused, 2*len(addrs), impostorPrefix, len(addrs), time.Since(start).Round(time.Second))

	// the agent's own admission, without the core's policy
	saved, err := k8s.RunKubectlAndGetOutputE(t, coreNS, "get", "networkpolicy", "-l", "app.kubernetes.io/name=meshrr", "-o", "json")
	require.NoError(t, err)
	_, err = k8s.RunKubectlAndGetOutputE(t, coreNS, "delete", "networkpolicy", "-l", "app.kubernetes.io/name=meshrr")
	require.NoError(t, err)
	t.Cleanup(func() { restorePolicies(t, coreNS, saved) })
	cluster.Wait(t, "every impostor reaches the core RRs without the policy", time.Minute, time.Second, func(c *assert.CollectT) {
		for what, p := range impostors {
			for _, rr := range cores {
				assert.Equal(c, "open", p.dial(t, rr.Status.PodIP, 179), "impostor in %s to core RR %s without the policy", what, rr.Name)
			}
		}
	})
	nothingReached("core policy deleted")
	logf(t, "impostors: with the core's NetworkPolicy deleted TCP 179 of both core RRs opens, and their BIRD still admits neither impostor (16 s): only the discovered region RRs are admitted")
	restorePolicies(t, coreNS, saved)
}

// restorePolicies recreates the NetworkPolicies of a saved list (kubectl
// get -o json), without their server-set fields; once.
func restorePolicies(t *testing.T, opts *k8s.KubectlOptions, saved string) {
	var list struct {
		Items []map[string]any `json:"items"`
	}
	require.NoError(t, json.Unmarshal([]byte(saved), &list))
	for _, np := range list.Items {
		meta := np["metadata"].(map[string]any)
		name := meta["name"].(string)
		if _, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "networkpolicy", name); err == nil {
			continue
		}
		for _, k := range []string{"resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"} {
			delete(meta, k)
		}
		delete(np, "status")
		b, err := json.Marshal(np)
		require.NoError(t, err)
		k8s.KubectlApplyFromString(t, opts, string(b))
	}
}
