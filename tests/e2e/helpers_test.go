//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/logger"
	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshrr/meshrr/tests/e2e/promtext"
	"github.com/meshrr/meshrr/tests/e2e/routers"
)

// Session is one BGP session as `meshrr-agent sessions` prints it.
type Session struct {
	Name        string    `json:"name"`
	Group       string    `json:"group"`
	Peer        string    `json:"peer"`
	State       string    `json:"state"`
	Established bool      `json:"established"`
	Since       time.Time `json:"since"`
	Imported    int       `json:"imported"`
	BFD         string    `json:"bfd"`
}

// namespace creates a unique namespace that enforces the Pod Security
// Standard "restricted" (what the chart runs under by default), deleted at
// the end of the test (kept, with state dumped, when the test fails).
func namespace(t *testing.T, prefix string) *k8s.KubectlOptions {
	t.Helper()
	return namespaceAt(t, prefix, "restricted")
}

// namespaceAt is namespace with another Pod Security level: "privileged"
// for the documented exceptions only (BIRD with BFD, cRPD: docs/security.md).
func namespaceAt(t *testing.T, prefix, podSecurity string) *k8s.KubectlOptions {
	t.Helper()
	name := strings.ToLower(prefix + "-" + random.UniqueId())
	opts := k8s.NewKubectlOptions("", kubeconfig, name)
	opts.Logger = logger.Discard
	k8s.CreateNamespaceWithMetadata(t, opts, metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": podSecurity,
		"pod-security.kubernetes.io/warn":    podSecurity,
	}})
	t.Cleanup(func() {
		if t.Failed() {
			dump(t, opts)
		}
		_ = k8s.DeleteNamespaceE(t, opts, name)
	})
	return opts
}

// restrictedPod is the security context of the suites' own pods (probes,
// baselines) in namespaces that enforce "restricted"; indented for a pod
// spec at two spaces.
const restrictedPod = `  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    seccompProfile: {type: RuntimeDefault}
`

// restrictedContainer is the matching container security context, for a
// container at four spaces.
const restrictedContainer = `    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
`

// helmOptions: an install or upgrade of the chart with values files and
// --set values. The 2regions-hrr core admits the region RRs of the
// demo's namespaces (lothlorien, mirkwood), which the tests do not create:
// a values file after the example's makes the core's downstream its own
// namespace (kept by upgrades that replace the --set values); a test with
// region releases names their namespaces with --set
// groups.core.downstream.namespaces.
//
// Every release also admits the kind nodes' network to the metrics port,
// beside the chart's default (Prometheus pods): the suites read /metrics
// through the API server's pod proxy, which connects from the control
// plane's node. A suite that sets metricsFrom itself gets only its own
// (--set would merge into the list's elements).
func helmOptions(opts *k8s.KubectlOptions, files []string, set map[string]string) *helm.Options {
	write := func(name, text string) string {
		f := filepath.Join(os.TempDir(), "meshrr-e2e-"+name+"-"+opts.Namespace+".yaml")
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			panic(err) // the test host's temporary directory is not writable
		}
		return f
	}
	files = slices.Clone(files)
	if !slices.ContainsFunc(slices.Collect(maps.Keys(set)), func(k string) bool { return strings.HasPrefix(k, "networkPolicy.metricsFrom") }) {
		files = slices.Insert(files, 0, write("metrics", fmt.Sprintf(`networkPolicy:
  metricsFrom:
    - namespaceSelector: {}
      podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}
    - ipBlock: {cidr: %q}
`, kindNet)))
	}
	if i := slices.IndexFunc(files, func(f string) bool { return strings.HasSuffix(f, "values-core.yaml") }); i >= 0 {
		files = slices.Insert(files, i+1, write("downstream", "groups: {core: {downstream: {namespaces: ["+opts.Namespace+"]}}}\n"))
	}
	return &helm.Options{
		KubectlOptions: opts,
		ValuesFiles:    files,
		SetValues:      set,
		Logger:         logger.Discard,
		ExtraArgs:      map[string][]string{"install": {"--wait", "--timeout", "180s"}, "upgrade": {"--wait", "--timeout", "180s"}},
	}
}

// What the tests read from an RR pod, as the chart sets it up: the
// default metricsPort (charts/meshrr/values.yaml) and the BIRD control
// socket (meshrr.path.birdSocket in the chart's _helpers.tpl; the chart
// render tests check that the agent, the probe and BIRD agree on it).
const (
	metricsPort = 9479
	birdSocket  = "/run/bird/bird.ctl"
)

func chart() string { return filepath.Join(repoRoot, "charts", "meshrr") }

func example(parts ...string) string {
	return filepath.Join(append([]string{repoRoot, "examples"}, parts...)...)
}

// regionValues are the 2regions-hrr files of a region release, and one
// after them that runs the region's RRs as one Deployment (defaults.replicas
// pods) without sides or MetalLB: these suites peer routers with single RR
// pods. The example's own shape (a DaemonSet and a LoadBalancer address per
// side) is what make demo installs and checks (a router re-established at
// its side's address after the pod behind it is replaced).
func regionValues(t *testing.T, name string) []string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "region-as-deployment.yaml")
	body := fmt.Sprintf("metallb: {enabled: false}\ndefaults: {kind: Deployment}\ngroups: {%s: {sides: null}}\n", name)
	require.NoError(t, os.WriteFile(f, []byte(body), 0o644))
	return []string{example("2regions-hrr", "values.yaml"), example("2regions-hrr", "values-"+name+".yaml"), f}
}

// pods returns the release's pods, sorted by name.
func pods(t *testing.T, opts *k8s.KubectlOptions, selector string) []corev1.Pod {
	t.Helper()
	ps := k8s.ListPods(t, opts, metav1.ListOptions{LabelSelector: selector})
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	return ps
}

// waitReady waits until exactly n pods match and all are Ready.
func waitReady(t *testing.T, opts *k8s.KubectlOptions, selector string, n int, timeout time.Duration) []corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ps := pods(t, opts, selector)
		ready := 0
		for _, p := range ps {
			if p.DeletionTimestamp == nil && isReady(p) {
				ready++
			}
		}
		if ready == n && len(ps) == n {
			return ps
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d pods ready (%d listed) after %s", selector, ready, n, len(ps), timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitReplaced waits until the selector has n pods, all Ready and none
// of the deleted ones.
func waitReplaced(t *testing.T, opts *k8s.KubectlOptions, selector string, deleted []string, n int, timeout time.Duration) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		ps := pods(t, opts, selector)
		if !assert.Len(c, ps, n) {
			return
		}
		for _, p := range ps {
			assert.NotContains(c, deleted, p.Name, "a deleted pod is still there")
			assert.True(c, isReady(p), "%s not ready", p.Name)
		}
	}, timeout, 500*time.Millisecond)
}

func isReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// sessions reads an RR pod's sessions through its agent.
func sessions(t *testing.T, opts *k8s.KubectlOptions, pod string) ([]Session, error) {
	out, err := k8s.RunKubectlAndGetOutputE(t, opts, "exec", pod, "-c", "agent", "--", "/meshrr-agent", "sessions", "--config", "/etc/meshrr/config.yaml")
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", pod, err, out)
	}
	var ss []Session
	if err := json.Unmarshal([]byte(out), &ss); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", pod, err, out)
	}
	return ss, nil
}

func established(ss []Session, group string) map[string]Session {
	out := map[string]Session{}
	for _, s := range ss {
		if s.Group == group && s.Established {
			out[s.Peer] = s
		}
	}
	return out
}

// metric reads one sample line of an agent's /metrics through the API
// server's pod proxy (the agent image has no shell).
func metrics(t *testing.T, opts *k8s.KubectlOptions, pod string) string {
	t.Helper()
	out, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "--raw", fmt.Sprintf("/api/v1/namespaces/%s/pods/%s:%d/proxy/metrics", opts.Namespace, pod, metricsPort))
	require.NoError(t, err)
	return out
}

// dump logs what an operator would look at first.
func dump(t *testing.T, opts *k8s.KubectlOptions) {
	out, _ := k8s.RunKubectlAndGetOutputE(t, opts, "get", "pods,svc,endpointslices", "-o", "wide")
	t.Logf("=== %s resources\n%s", opts.Namespace, out)
	out, _ = k8s.RunKubectlAndGetOutputE(t, opts, "describe", "pods")
	t.Logf("=== %s describe pods\n%s", opts.Namespace, out)
	out, _ = k8s.RunKubectlAndGetOutputE(t, opts, "get", "events", "--sort-by=.lastTimestamp")
	t.Logf("=== %s events\n%s", opts.Namespace, out)
	for _, p := range pods(t, opts, "app.kubernetes.io/name=meshrr") {
		out, _ := podBirdc(t, opts, p.Name, "show", "protocols", "all")
		t.Logf("=== %s/%s show protocols all\n%s", opts.Namespace, p.Name, out)
		out, _ = k8s.RunKubectlAndGetOutputE(t, opts, "logs", p.Name, "-c", "agent", "--tail", "50")
		t.Logf("=== %s/%s agent log\n%s", opts.Namespace, p.Name, out)
	}
}

// podBirdc runs a birdc command in an RR pod's BIRD container.
func podBirdc(t *testing.T, opts *k8s.KubectlOptions, pod string, args ...string) (string, error) {
	return k8s.RunKubectlAndGetOutputE(t, opts, append([]string{"exec", pod, "-c", "bird", "--", "birdc", "-s", birdSocket}, args...)...)
}

// Router is an FRR container on the kind network, outside the cluster.
type Router struct {
	Name string
	Addr netip.Addr
}

// routerEnv is what package routers needs of this run's cluster.
func routerEnv() routers.Env {
	return routers.Env{
		Cluster: cluster, Kubectl: filepath.Join(kindWork(), "bin", "kubectl"), Kubeconfig: kubeconfig,
		Kind: kindBin(), FRRImage: frrImage, BIRDImage: birdImage,
	}
}

// startRouter runs an FRR router on the kind network with the given
// frr.conf body (package routers owns how) and removes it at the end of
// the test.
func startRouter(t *testing.T, name string, conf string) *Router {
	t.Helper()
	rr, err := routerEnv().StartFRR(name, conf)
	require.NoError(t, err, "router %s", name)
	r := &Router{Name: rr.Container, Addr: rr.Addr}
	t.Cleanup(func() {
		if t.Failed() {
			o, _ := exec.Command("docker", "exec", r.Name, "vtysh", "-c", "show bgp summary", "-c", "show bgp ipv4 unicast").CombinedOutput()
			t.Logf("=== router %s\n%s", name, o)
		}
		routers.Stop(r.Name)
	})
	return r
}

// Route is a prefix in a router's BGP table.
type Route = routers.Route

// routes reads the router's IPv4 BGP table.
func (r *Router) routes() (map[string]Route, error) { return routers.Routes(r.Name, "ipv4") }

// routesOf reads the router's BGP table of a family (ipv4, ipv6).
func (r *Router) routesOf(family string) (map[string]Route, error) {
	return routers.Routes(r.Name, family)
}

// vtyshJSON runs one FRR show command ending in "json" on the router and
// decodes its answer into v.
func (r *Router) vtyshJSON(cmd string, v any) error { return routers.VtyshJSON(r.Name, cmd, v) }

// communities returns the standard and large communities of the
// router's best path to prefix, as FRR prints them ("" when none).
func (r *Router) communities(prefix string) (std, large string, err error) {
	var route struct {
		Paths []struct {
			Community      struct{ String string } `json:"community"`
			LargeCommunity struct{ String string } `json:"largeCommunity"`
			Bestpath       struct{ Overall bool }  `json:"bestpath"`
		} `json:"paths"`
	}
	if err := r.vtyshJSON("show bgp ipv4 unicast "+prefix+" json", &route); err != nil {
		return "", "", err
	}
	for _, p := range route.Paths {
		if p.Bestpath.Overall {
			return p.Community.String, p.LargeCommunity.String, nil
		}
	}
	return "", "", fmt.Errorf("%s: no best path to %s", r.Name, prefix)
}

// configure applies FRR configuration commands (one per line, from the
// configuration node) to a running router.
func (r *Router) configure(t *testing.T, conf string) {
	t.Helper()
	args := []string{"exec", r.Name, "vtysh", "-c", "configure terminal"}
	for _, l := range strings.Split(strings.TrimSpace(conf), "\n") {
		args = append(args, "-c", strings.TrimSpace(l))
	}
	out, err := exec.Command("docker", args...).CombinedOutput()
	require.NoError(t, err, "configure %s: %s", r.Name, out)
}

// neighborState is the BGP state of one of the router's neighbours.
func (r *Router) neighborState(addr string) string {
	var n map[string]struct {
		State string `json:"bgpState"`
	}
	if r.vtyshJSON("show bgp neighbors "+addr+" json", &n) != nil {
		return ""
	}
	return n[addr].State
}

// routeWatch samples a router's table every 200 ms and records how long
// each watched prefix was missing.
type routeWatch struct {
	mu            sync.Mutex
	missingSince  map[string]time.Time
	longest       time.Duration
	samples, lost int
	stop, done    chan struct{}
}

func watchRoutes(r *Router, prefixes []string) *routeWatch { return watchRoutesWhile(r, prefixes, nil) }

// watchRoutesWhile is watchRoutes counting only the samples taken while
// guard holds (checked before and after each sample; nil: always).
func watchRoutesWhile(r *Router, prefixes []string, guard func() bool) *routeWatch {
	w := &routeWatch{missingSince: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if guard != nil && !guard() {
				continue
			}
			m, err := r.routes()
			if err != nil || (guard != nil && !guard()) {
				continue
			}
			now := time.Now()
			w.mu.Lock()
			w.samples++
			for _, p := range prefixes {
				if _, ok := m[p]; ok {
					if s, was := w.missingSince[p]; was {
						w.longest = max(w.longest, now.Sub(s))
						delete(w.missingSince, p)
					}
					continue
				}
				w.lost++
				if _, was := w.missingSince[p]; !was {
					w.missingSince[p] = now
				}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// finish stops sampling and reports samples taken, prefix-samples missing,
// the longest gap and the prefixes still missing.
func (w *routeWatch) finish() (samples, lost int, longest time.Duration, missing []string) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	for p, s := range w.missingSince {
		w.longest = max(w.longest, time.Since(s))
		missing = append(missing, p)
	}
	sort.Strings(missing)
	return w.samples, w.lost, w.longest, missing
}

// routerID is a BGP identifier for the n-th test router (not an address).
func routerID(n int) string { return fmt.Sprintf("10.255.0.%d", n) }

// routerRange is the client range the e2e routers connect from: the kind
// Docker network.
func routerRange() string { return kindNet.String() }

// buckets is promtext.Buckets of a /metrics text; the test fails without
// the histogram.
func buckets(t *testing.T, text, name string) map[float64]float64 {
	t.Helper()
	b, err := promtext.Buckets(text, name)
	require.NoError(t, err)
	return b
}

// metric is promtext.Value of a pod's /metrics; the test fails without it.
func metric(t *testing.T, opts *k8s.KubectlOptions, pod, name string, labels ...string) float64 {
	t.Helper()
	v, err := promtext.Value(metrics(t, opts, pod), name, labels...)
	require.NoError(t, err, "%s", pod)
	return v
}
