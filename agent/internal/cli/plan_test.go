package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/preview"
	"github.com/meshrr/meshrr/agent/internal/status"
	"github.com/meshrr/meshrr/agent/internal/testutil/fixture"
)

var update = flag.Bool("update", false, "rewrite golden files")

// helmTemplate renders the lothlorien region of the 2regions-hrr example
// with the real chart and helm.
func helmTemplate(t *testing.T, set ...string) []byte {
	return helmTemplateOf(t, "lothlorien", []string{"values.yaml", "values-lothlorien.yaml"}, set...)
}

// helmTemplateOf renders one release of the 2regions-hrr example.
func helmTemplateOf(t *testing.T, release string, files []string, set ...string) []byte {
	t.Helper()
	root, err := filepath.Abs("../../..")
	require.NoError(t, err)
	args := []string{"template", release, filepath.Join(root, "charts/meshrr"), "-n", release}
	for _, f := range files {
		args = append(args, "-f", filepath.Join(root, "examples/2regions-hrr", f))
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := exec.Command("helm", args...).CombinedOutput()
	require.NoError(t, err, "helm %s: %s (make unit puts the pinned helm on PATH)", strings.Join(args, " "), out)
	return out
}

// typed converts a rendered object into a typed one.
func typed[T any](t *testing.T, o preview.Object) *T {
	b, err := json.Marshal(o)
	require.NoError(t, err)
	var v T
	require.NoError(t, json.Unmarshal(b, &v))
	return &v
}

// ips are the RR pods' addresses, by namespace and side.
var ips = map[string]string{"lothlorien/a": "10.244.1.10", "lothlorien/b": "10.244.2.10", "core/a": "10.244.3.10", "core/b": "10.244.4.10"}

// cluster is the releases as deployed (their ConfigMaps and Services from
// the renderings), one RR pod per side, with the EndpointSlices the
// controller would make for them, and the API server's Service.
func cluster(t *testing.T, deployed ...[]byte) *fake.Clientset {
	return clusterIn(t, "restricted", deployed...)
}

// clusterIn is cluster with the releases' namespaces enforcing the Pod
// Security level given (none: no label).
func clusterIn(t *testing.T, level string, deployed ...[]byte) *fake.Clientset {
	var out []runtime.Object
	yes := true
	namespaces := map[string]bool{}
	for _, d := range deployed {
		objs, err := preview.ParseManifests(d)
		require.NoError(t, err)
		for _, o := range objs {
			if ns := o.Namespace(); ns != "" && !namespaces[ns] {
				namespaces[ns] = true
				labels := map[string]string{}
				if level != "" {
					labels["pod-security.kubernetes.io/enforce"] = level
				}
				out = append(out, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}})
			}
			switch o.Kind() {
			case "ConfigMap":
				out = append(out, typed[corev1.ConfigMap](t, o))
			case "Service":
				svc := typed[corev1.Service](t, o)
				svc.UID = types.UID("uid-" + svc.Name)
				out = append(out, svc)
				side := svc.Labels["meshrr.io/side"]
				if side == "" || svc.Labels["meshrr.io/group"] == "" {
					continue // not a discovery Service
				}
				ip := ips[svc.Namespace+"/"+side]
				labels := map[string]string{"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io", "kubernetes.io/service-name": svc.Name}
				for k, v := range svc.Labels {
					labels[k] = v
				}
				out = append(out, &discoveryv1.EndpointSlice{
					ObjectMeta: metav1.ObjectMeta{Name: svc.Name + "-x1", Namespace: svc.Namespace, Labels: labels,
						OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID, Controller: &yes}}},
					AddressType: discoveryv1.AddressTypeIPv4,
					Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &yes},
						TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: svc.Namespace, Name: svc.Namespace + "-" + side}}},
				})
				out = append(out, &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: svc.Namespace + "-" + side, Namespace: svc.Namespace, Labels: map[string]string{
						"app.kubernetes.io/name": "meshrr", "app.kubernetes.io/instance": svc.Namespace, preview.LabelGroupName: svc.Labels[preview.LabelGroupName], "meshrr.io/side": side}},
					Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9100}}}}},
					Status: corev1.PodStatus{Phase: corev1.PodRunning, HostIP: "172.18.0.3", PodIPs: []corev1.PodIP{{IP: ip}}},
				})
			}
		}
	}
	out = append(out, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1"}})
	return fake.NewClientset(out...)
}

// agents answer as the pods' agents do: the other side's RR meshed; a
// region RR with both core RRs upstream and a router of its range
// connected.
func agents(ctx context.Context, p corev1.Pod, port int) ([]byte, error) {
	side := p.Labels["meshrr.io/side"]
	other := map[string]string{"a": "b", "b": "a"}[side]
	since := time.Now().Add(-time.Hour)
	up := func(g model.GroupName, r model.Role, addr, name string) status.Peer {
		return status.Peer{Group: g, Role: r, Addr: addr, Name: name, State: model.StateEstablished, Established: true, Since: since}
	}
	r := status.Report{Pod: p.Name, Namespace: p.Namespace, Group: p.Namespace + "." + p.Labels[preview.LabelGroupName], Version: "test", Ready: true, Peers: []status.Peer{
		up(model.GroupMesh, model.RoleMesh, ips[p.Namespace+"/"+other], p.Namespace+"/"+p.Namespace+"-"+other),
	}}
	if p.Namespace == "lothlorien" {
		r.Peers = append(r.Peers, up(model.GroupUpstream, model.RoleUpstream, ips["core/a"], "core/core-a"), up(model.GroupUpstream, model.RoleUpstream, ips["core/b"], "core/core-b"),
			up("routers", model.RoleClients, "172.18.101.5", ""))
	}
	return json.Marshal(r)
}

// sessions: what the mesh, the router and the two upstream sessions get.
func sessions(mesh, router, upstream string) []string {
	return []string{"mesh 10.244.2.10 " + mesh, "routers 172.18.101.5 " + router, "upstream 10.244.3.10 " + upstream, "upstream 10.244.4.10 " + upstream}
}

func TestPlanOfAnUpgradeFromTheRealChart(t *testing.T) {
	deployed, core := helmTemplate(t), helmTemplateOf(t, "core", []string{"values-core.yaml"})
	for _, tc := range []struct {
		name    string
		set     []string
		verdict int
		want    []string // per pod: group peer outcome why
		rolls   bool
	}{
		{name: "nothing", verdict: preview.ExitHitless, want: sessions("untouched", "untouched", "untouched")},
		{name: "a boundary policy", set: []string{"defaults.policy[1].setLocalPref=30"}, verdict: preview.ExitHitless,
			want: sessions("untouched", "untouched", "refresh export")},
		{name: "an export tier", set: []string{"groups.lothlorien.clients.routers.export.tier=default"}, verdict: preview.ExitHitless,
			want: sessions("untouched", "refresh export", "untouched")},
		{name: "a range added", set: []string{"groups.lothlorien.clients.routers.ranges[1]=172.18.102.0/24"}, verdict: preview.ExitHitless,
			want: sessions("untouched", "untouched", "untouched")},
		{name: "the range narrowed", set: []string{"groups.lothlorien.clients.routers.ranges[0]=172.18.101.128/25"}, verdict: preview.ExitHitless,
			want: sessions("untouched", "removed", "untouched")},
		{name: "one upstream", set: []string{"defaults.upstream.maxPeers=1"}, verdict: preview.ExitHitless,
			want: []string{"mesh 10.244.2.10 untouched", "routers 172.18.101.5 untouched", "upstream 10.244.3.10 ?", "upstream 10.244.4.10 ?"}},
		{name: "the hold timer", set: []string{"defaults.timers.hold=30", "defaults.timers.keepalive=10"}, verdict: preview.ExitResets, rolls: true,
			want: sessions("untouched", "untouched", "untouched")},
		{name: "addPaths", set: []string{"groups.lothlorien.clients.routers.addPaths=2"}, verdict: preview.ExitResets, rolls: true,
			want: sessions("untouched", "untouched", "untouched")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := BuildPlan(context.Background(), cluster(t, deployed, core), agents, "lothlorien", "lothlorien", deployed, helmTemplate(t, tc.set...))
			require.NoError(t, err)
			var out strings.Builder
			preview.Table(&out, p)
			t.Log("\n" + out.String())
			// what operators read: the table and the JSON for CI gates
			golden := strings.ReplaceAll(tc.name, " ", "-")
			fixture.Golden(t, filepath.Join("testdata", "plan-"+golden+".golden"), []byte(out.String()), *update)
			js, err := json.MarshalIndent(p, "", "  ")
			require.NoError(t, err)
			fixture.Golden(t, filepath.Join("testdata", "plan-"+golden+".json.golden"), append(js, '\n'), *update)
			require.Len(t, p.Groups, 1)
			g := p.Groups[0]
			assert.Equal(t, "lothlorien", g.Group)
			assert.Equal(t, tc.verdict, p.Verdict())
			require.Len(t, g.Pods, 2)
			assert.Equal(t, tc.rolls, len(g.Rolls) == 2, "both sides' DaemonSets roll: %+v", g.Rolls)
			for _, pod := range g.Pods {
				require.Empty(t, pod.Error)
				assert.Equal(t, tc.rolls, pod.Rolls, pod.Pod)
				var got []string
				for _, s := range pod.Sessions {
					if s.Group == model.GroupMesh {
						s.Peer = netip.MustParseAddr("10.244.2.10") // the other side's, seen from either
					}
					got = append(got, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", s.Group, s.Peer, s.Outcome, strings.Join(s.Why, ","))))
				}
				if tc.name == "one upstream" { // which one each pod keeps is the balanced choice's
					require.Len(t, got, 4)
					assert.ElementsMatch(t, []string{"upstream untouched", "upstream removed"}, []string{dropAddr(got[2]), dropAddr(got[3])}, pod.Pod)
					got[2], got[3] = "upstream 10.244.3.10 ?", "upstream 10.244.4.10 ?"
				}
				assert.Equal(t, tc.want, got, pod.Pod)
			}
			if tc.rolls {
				assert.Contains(t, g.Rolls[0].Changed, "metadata.annotations.meshrr.io/session-settings")
				assert.NotEmpty(t, g.Pods[0].Roll, "the kept settings are named")
			}
		})
	}
}

// BFD gives BIRD NET_ADMIN, which Pod Security "restricted" and
// "baseline" refuse: the plan checks the new pods with Kubernetes' own
// admission checks and says the roll would stop (exit 1); in a privileged
// or unlabelled namespace it is an ordinary roll (exit 3).
func TestPlanChecksTheNewPodsAgainstPodSecurity(t *testing.T) {
	deployed, core := helmTemplate(t), helmTemplateOf(t, "core", []string{"values-core.yaml"})
	bfd := helmTemplate(t, "groups.lothlorien.clients.routers.bfd.enabled=true")
	for _, tc := range []struct {
		level, want string
		verdict     int
	}{
		{"restricted", "restricted:latest", preview.ExitRefused},
		{"baseline", "baseline:latest", preview.ExitRefused},
		{"privileged", "privileged:latest", preview.ExitResets},
		{"", "privileged:latest", preview.ExitResets},
	} {
		t.Run(cmp.Or(tc.level, "unlabelled"), func(t *testing.T) {
			p, err := BuildPlan(context.Background(), clusterIn(t, tc.level, deployed, core), agents, "lothlorien", "lothlorien", deployed, bfd)
			require.NoError(t, err)
			assert.Equal(t, tc.want, p.PodSecurity)
			assert.Equal(t, tc.verdict, p.Verdict())
			g := p.Groups[0]
			require.Len(t, g.Rolls, 2, "both sides' DaemonSets roll")
			if tc.verdict != preview.ExitRefused {
				assert.Empty(t, g.PodsRefused)
				return
			}
			require.Len(t, g.PodsRefused, 2)
			for i, r := range g.PodsRefused {
				assert.Equal(t, g.Rolls[i].Workload, r.Workload)
				assert.Contains(t, r.Why, `PodSecurity "`+tc.want+`"`)
				assert.Contains(t, r.Why, `"NET_ADMIN"`, "the capability BFD needs is named")
			}
			if tc.level == "restricted" {
				var out strings.Builder
				preview.Table(&out, p)
				t.Log("\n" + out.String())
				fixture.Golden(t, filepath.Join("testdata", "plan-bfd-in-a-restricted-namespace.golden"), []byte(out.String()), *update)
			}
		})
	}
	// nothing creates pods: nothing is checked, whatever the templates hold
	p, err := BuildPlan(context.Background(), clusterIn(t, "restricted", bfd, core), agents, "lothlorien", "lothlorien", bfd, bfd)
	require.NoError(t, err)
	assert.Empty(t, p.Groups[0].PodsRefused, "running pods are not the upgrade's")
	// a label the admission cannot read: the plan says it did not check
	p, err = BuildPlan(context.Background(), clusterIn(t, "strict", deployed, core), agents, "lothlorien", "lothlorien", deployed, bfd)
	require.NoError(t, err)
	assert.Contains(t, p.PodSecurityUnchecked, "pod-security.kubernetes.io/enforce")
	assert.Empty(t, p.PodSecurity)
}

// Scaling out the core (a Deployment per side) replaces no pod: the plan
// says how many pods each side gains, and every running session stays.
func TestPlanOfAScaleOut(t *testing.T) {
	files := []string{"values-core.yaml"}
	deployed := helmTemplateOf(t, "core", files)
	p, err := BuildPlan(context.Background(), cluster(t, deployed), agents, "core", "core", deployed, helmTemplateOf(t, "core", files, "groups.core.replicas=2"))
	require.NoError(t, err)
	var out strings.Builder
	preview.Table(&out, p)
	t.Log("\n" + out.String())
	fixture.Golden(t, filepath.Join("testdata", "plan-a-scale-out.golden"), []byte(out.String()), *update)
	require.Len(t, p.Groups, 1)
	g := p.Groups[0]
	assert.Equal(t, "unchanged", g.Status, "the agents' configuration does not change")
	assert.Empty(t, g.Rolls)
	assert.Equal(t, []preview.Scale{{Workload: "Deployment/core-meshrr-core-a", Group: "core", From: 1, To: 2}, {Workload: "Deployment/core-meshrr-core-b", Group: "core", From: 1, To: 2}}, g.Scales)
	assert.Equal(t, preview.ExitHitless, p.Verdict())
	for _, pod := range g.Pods {
		for _, s := range pod.Sessions {
			assert.Equal(t, preview.Untouched, s.Outcome, "%s %s", pod.Pod, s.Peer)
		}
	}
}

func dropAddr(s string) string {
	f := strings.Fields(s)
	return f[0] + " " + f[2]
}
