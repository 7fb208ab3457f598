package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/discovery"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/plan"
	"github.com/meshrr/meshrr/agent/internal/preview"
)

const planUsage = `usage: kubectl meshrr plan [-n NAMESPACE] [-o table|json] RELEASE CHART [helm upgrade flags: -f FILE, --set K=V, --reuse-values ...]
       kubectl meshrr plan [-n NAMESPACE] [-o table|json] RELEASE --rendered FILE|-

Says, before the upgrade, what it does to each BGP session of each RR pod of
the release: reset, refresh, added, removed or untouched at once, and which
pods are replaced (each of their sessions resets once, the pod draining
first). The first form renders the upgrade with helm upgrade --dry-run=server
(helm on PATH); the second reads a rendering (helm template, helm upgrade
--dry-run). It reads the release's ConfigMaps, EndpointSlices, pods and
each pod's status, and the deployed release's manifest (a helm Secret;
--running FILE gives it instead, from helm get manifest). The pods the
upgrade creates are checked against the namespace's Pod Security level.

Exit status: 0 nothing resets, 3 a session resets or pods are replaced,
1 the agent or Pod Security refuses the values, or the plan cannot tell.
`

func runPlan(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, planUsage) }
	ns := fs.String("n", "", "the release's namespace (default: the kubeconfig's)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	rendered := fs.String("rendered", "", "the upgrade as rendered (helm template, helm upgrade --dry-run); - reads stdin")
	running := fs.String("running", "", "the deployed release's manifest (helm get manifest); default: read from the release's helm Secret")
	output := fs.String("o", "table", "output: table or json")
	timeout := fs.Duration("timeout", 60*time.Second, "overall time limit")
	if err := fs.Parse(args); err != nil {
		return preview.ExitRefused
	}
	rest := fs.Args()
	if len(rest) == 0 || (*rendered == "") == (len(rest) < 2) || *output != "table" && *output != "json" {
		fs.Usage()
		return preview.ExitRefused
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "kubectl-meshrr plan:", err)
		return preview.ExitRefused
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cfg, client, namespace, err := connect(*kubeconfig, *ns, false)
	if err != nil {
		return fail(err)
	}
	release := rest[0]
	var proposed []byte
	switch {
	case *rendered == "-":
		proposed, err = io.ReadAll(os.Stdin)
	case *rendered != "":
		proposed, err = os.ReadFile(*rendered)
	default:
		proposed, err = helmDryRun(ctx, *kubeconfig, namespace, release, rest[1:])
	}
	if err != nil {
		return fail(err)
	}
	var old []byte
	if *running != "" {
		old, err = os.ReadFile(*running)
	} else {
		old, err = releaseManifest(ctx, client, namespace, release)
	}
	if err != nil {
		return fail(err)
	}
	p, err := BuildPlan(ctx, client, ExecOrProxy(cfg, client), namespace, release, old, proposed)
	if err != nil {
		return fail(err)
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(p)
	} else {
		preview.Table(stdout, p)
	}
	return p.Verdict()
}

// helmDryRun renders the upgrade as helm would run it, against the
// cluster (lookups, capabilities): helm upgrade RELEASE CHART FLAGS...
// --dry-run=server.
func helmDryRun(ctx context.Context, kubeconfig, namespace, release string, chartAndFlags []string) ([]byte, error) {
	args := append([]string{"upgrade", release}, chartAndFlags...)
	args = append(args, "--namespace", namespace, "--dry-run=server")
	if kubeconfig != "" {
		args = append(args, "--kubeconfig", kubeconfig)
	}
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "helm", args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %v: %s (the values are refused as helm would refuse the upgrade)", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.Bytes(), nil
}

// releaseManifest is the manifest of the release's deployed revision,
// from helm's own record of it (a Secret: base64 of gzipped JSON).
func releaseManifest(ctx context.Context, client kubernetes.Interface, namespace, release string) ([]byte, error) {
	list, err := client.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,status=deployed,name=" + release})
	if apierrors.IsForbidden(err) {
		return nil, fmt.Errorf("reading release %s's record needs get on Secrets in %s: give --running with the output of helm get manifest %s -n %s", release, namespace, release, namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", release, err)
	}
	var latest *corev1.Secret
	for i := range list.Items {
		s := &list.Items[i]
		if latest == nil || version(s) > version(latest) {
			latest = s
		}
	}
	if latest == nil {
		return nil, fmt.Errorf("no deployed release %s in namespace %s (helm list -n %s)", release, namespace, namespace)
	}
	raw, err := base64.StdEncoding.DecodeString(string(latest.Data["release"]))
	if err != nil {
		return nil, fmt.Errorf("release %s's record %s: %w", release, latest.Name, err)
	}
	if len(raw) > 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("release %s's record %s: %w", release, latest.Name, err)
		}
		if raw, err = io.ReadAll(io.LimitReader(zr, 64<<20)); err != nil {
			return nil, fmt.Errorf("release %s's record %s: %w", release, latest.Name, err)
		}
	}
	var rel struct {
		Manifest string `json:"manifest"`
	}
	if err := json.Unmarshal(raw, &rel); err != nil {
		return nil, fmt.Errorf("release %s's record %s: %w", release, latest.Name, err)
	}
	return []byte(rel.Manifest), nil
}

func version(s *corev1.Secret) int {
	v, _ := strconv.Atoi(s.Labels["version"])
	return v
}

// BuildPlan predicts what the upgrade from the deployed manifest (old) to
// the proposed one does to every RR pod of the release, from the live
// ConfigMaps, EndpointSlices, pods and each pod's status.
func BuildPlan(ctx context.Context, client kubernetes.Interface, fetch Fetch, namespace, release string, old, proposed []byte) (preview.Plan, error) {
	p := preview.Plan{Release: release, Namespace: namespace}
	oldObjs, err := preview.ParseManifests(old)
	if err != nil {
		return p, fmt.Errorf("the deployed manifest: %w", err)
	}
	newObjs, err := preview.ParseManifests(proposed)
	if err != nil {
		return p, fmt.Errorf("the proposed rendering: %w", err)
	}
	rolls, scales := preview.Rolls(oldObjs, newObjs), preview.Scales(oldObjs, newObjs)
	var refused []preview.PodRefusal
	if ns, err := client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{}); err != nil {
		p.PodSecurityUnchecked = fmt.Sprintf("reading namespace %s: %v", namespace, err)
	} else if r, level, err := preview.PodSecurity(ns.Labels, oldObjs, newObjs); err != nil {
		p.PodSecurityUnchecked = fmt.Sprintf("namespace %s: %v", namespace, err)
	} else {
		refused, p.PodSecurity = r, level.String()
	}
	instance := "app.kubernetes.io/instance=" + release
	cms, err := client.CoreV1().ConfigMaps(namespace).List(ctx, metav1.ListOptions{LabelSelector: instance + "," + preview.LabelGroupName})
	if err != nil {
		return p, fmt.Errorf("the release's ConfigMaps: %w", err)
	}
	live := map[string][]byte{}
	for _, cm := range cms.Items {
		if c, ok := cm.Data["config.yaml"]; ok {
			live[cm.Labels[preview.LabelGroupName]] = []byte(c)
		}
	}
	next := preview.GroupConfigs(newObjs)
	var groups []string
	for g := range live {
		groups = append(groups, g)
	}
	for g := range next {
		if live[g] == nil {
			groups = append(groups, g)
		}
	}
	sort.Strings(groups)
	api := apiServerAddr(ctx, client)
	for _, g := range groups {
		gp := preview.GroupPlan{Group: g}
		running, proposedCfg := live[g], next[g]
		switch {
		case running == nil:
			gp.Status = "added"
		case proposedCfg == nil:
			gp.Status = "removed"
		case bytes.Equal(running, proposedCfg):
			gp.Status = "unchanged"
		default:
			gp.Status = "changed"
		}
		for _, r := range rolls {
			if r.Group == g {
				gp.Rolls = append(gp.Rolls, r)
			}
		}
		for _, sc := range scales {
			if sc.Group == g {
				gp.Scales = append(gp.Scales, sc)
			}
		}
		for _, r := range refused {
			if r.Group == g {
				gp.PodsRefused = append(gp.PodsRefused, r)
			}
		}
		if proposedCfg != nil {
			if _, err := config.Parse(proposedCfg); err != nil {
				gp.Refused = err.Error()
				p.Groups = append(p.Groups, gp)
				continue
			}
		}
		if running == nil {
			p.Groups = append(p.Groups, gp)
			continue
		}
		pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: instance + "," + preview.LabelGroupName + "=" + g})
		if err != nil {
			return p, fmt.Errorf("group %s's pods: %w", g, err)
		}
		items := pods.Items
		sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
		var snap model.Snapshot
		if len(items) > 0 {
			if snap, err = snapshot(ctx, client, namespace, running, proposedCfg); err != nil {
				return p, fmt.Errorf("group %s: %w", g, err)
			}
		}
		for _, pod := range items {
			gp.Pods = append(gp.Pods, podPlan(ctx, fetch, pod, api, gp.Rolls, snap, running, proposedCfg))
		}
		p.Groups = append(p.Groups, gp)
	}
	return p, nil
}

func podPlan(ctx context.Context, fetch Fetch, pod corev1.Pod, api netip.Addr, rolls []preview.Roll, snap model.Snapshot, running, proposed []byte) preview.PodPlan {
	side := pod.Labels["meshrr.io/side"]
	pp := preview.PodPlan{Pod: pod.Name, Side: side}
	pp.Rolls = slices.ContainsFunc(rolls, func(r preview.Roll) bool { return r.Side == "" || r.Side == side })
	pctx, cancel := context.WithTimeout(ctx, podTimeout)
	r := report(pctx, fetch, pod)
	cancel()
	if r.Version == "" {
		pp.Error = "no status: " + r.NotReady
		return pp
	}
	var sessions []model.Session
	for _, peer := range r.Peers {
		a, err := netip.ParseAddr(peer.Addr)
		if err != nil {
			continue
		}
		sessions = append(sessions, model.Session{Name: peer.Name, Group: peer.Group, Peer: a.Unmap(), State: peer.State, Since: peer.Since})
	}
	if proposed == nil { // the group goes: so does every session
		for _, s := range sessions {
			pp.Sessions = append(pp.Sessions, preview.Session{Group: s.Group, Peer: s.Peer, Name: s.Name, Outcome: preview.Removed})
		}
		return pp
	}
	self := plan.Self{Name: pod.Name, Namespace: pod.Namespace, Side: side}
	var cluster []plan.ClusterAddr
	host, _ := netip.ParseAddr(pod.Status.HostIP)
	for _, ip := range pod.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			self.Addrs = append(self.Addrs, a.Unmap())
			if a.Unmap() != host.Unmap() {
				cluster = append(cluster, plan.ClusterAddr{Addr: a.Unmap(), What: "the pod's address " + a.String()})
			}
		}
	}
	if api.IsValid() {
		cluster = append(cluster, plan.ClusterAddr{Addr: api, What: "the API server's Service address " + api.String()})
	}
	pred, err := preview.Predict(preview.Change{Running: running, Proposed: proposed, Snapshot: snap, Now: time.Now(), Passwords: preview.Passwords},
		preview.Pod{Self: self, Sessions: sessions, ClusterAddrs: cluster})
	if err != nil {
		pp.Error = err.Error()
		return pp
	}
	pp.Prediction = pred
	return pp
}

// snapshot is the membership the group's agents see: the release-owned
// EndpointSlices of the namespaces either configuration watches, checked
// as discovery checks them.
func snapshot(ctx context.Context, client kubernetes.Interface, own string, running, proposed []byte) (model.Snapshot, error) {
	var namespaces []string
	var names map[string]string
	for i, b := range [][]byte{running, proposed} {
		if b == nil {
			continue
		}
		c, err := config.Parse(b)
		if err != nil {
			return model.Snapshot{}, err
		}
		if i == 0 {
			names = c.Services(own)
		}
		for _, n := range c.WatchedNamespaces(own) {
			if !slices.Contains(namespaces, n) {
				namespaces = append(namespaces, n)
			}
		}
	}
	var eps []*discoveryv1.EndpointSlice
	var svcs []*corev1.Service
	for _, n := range namespaces {
		sl, err := client.DiscoveryV1().EndpointSlices(n).List(ctx, metav1.ListOptions{LabelSelector: discovery.LabelGroup})
		if err != nil {
			return model.Snapshot{}, fmt.Errorf("EndpointSlices in %s: %w", n, err)
		}
		for i := range sl.Items {
			eps = append(eps, &sl.Items[i])
		}
		sv, err := client.CoreV1().Services(n).List(ctx, metav1.ListOptions{LabelSelector: discovery.LabelGroup})
		if err != nil {
			return model.Snapshot{}, fmt.Errorf("Services in %s: %w", n, err)
		}
		for i := range sv.Items {
			svcs = append(svcs, &sv.Items[i])
		}
	}
	owned, rejected := discovery.Owned(eps, svcs, names)
	snap := discovery.Members(owned, rejected)
	snap.Synced = true
	return snap, nil
}

// apiServerAddr is the API server's Service address (invalid when it
// cannot be read).
func apiServerAddr(ctx context.Context, client kubernetes.Interface) netip.Addr {
	svc, err := client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(svc.Spec.ClusterIP)
	return a.Unmap()
}
