//go:build e2e

package e2e

import (
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
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/tests/e2e/cluster"
	"github.com/meshrr/meshrr/tests/e2e/routers"
)

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
	return cluster.Namespace(t, kubeconfig, prefix, podSecurity)
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

// Router is an FRR container on the kind network, outside the cluster.
type Router struct {
	Name string
	Addr netip.Addr
}

// routerEnv is what package routers needs of this run's cluster.
func routerEnv() routers.Env {
	return routers.Env{
		Cluster: clusterName, Kubectl: filepath.Join(kindWork(), "bin", "kubectl"), Kubeconfig: kubeconfig,
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
	lostBy        map[string]int // prefix-samples missing, by prefix
	longest       time.Duration
	samples, lost int
	stop, done    chan struct{}
}

func watchRoutes(r *Router, prefixes []string) *routeWatch { return watchRoutesWhile(r, prefixes, nil) }

// watchRoutesWhile is watchRoutes counting only the samples taken while
// guard holds (checked before and after each sample; nil: always).
func watchRoutesWhile(r *Router, prefixes []string, guard func() bool) *routeWatch {
	w := &routeWatch{missingSince: map[string]time.Time{}, lostBy: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
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
				w.lostBy[p]++
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

// lostOf is the prefix-samples missing of the prefixes given (after
// finish).
func (w *routeWatch) lostOf(prefixes []string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, p := range prefixes {
		n += w.lostBy[p]
	}
	return n
}

// routerID is a BGP identifier for the n-th test router (not an address).
func routerID(n int) string { return fmt.Sprintf("10.255.0.%d", n) }

// routerRange is the client range the e2e routers connect from: the kind
// Docker network.
func routerRange() string { return kindNet.String() }
