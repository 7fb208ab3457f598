// Package chart tests the Helm chart by rendering it (helm template through
// Terratest's helm module) and reading the objects back with client-go's
// types: no cluster needed. The kind e2e suites install the same examples.
package chart

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/logger"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	psa "k8s.io/pod-security-admission/api"

	"github.com/meshrr/meshrr/agent/config"
)

var chartPath = filepath.Join("..", "..", "charts", "meshrr")

func example(parts ...string) string {
	return filepath.Join(append([]string{"..", "..", "examples"}, parts...)...)
}

// release is one rendered `helm template`.
type release struct {
	name, namespace string
	objects         []runtime.Object
}

func renderE(t *testing.T, name, namespace string, files []string, set map[string]string) (string, error) {
	opts := &helm.Options{ValuesFiles: files, SetValues: set, KubectlOptions: k8s.NewKubectlOptions("", "", namespace), Logger: logger.Discard}
	return helm.RenderTemplateE(t, opts, chartPath, name, nil)
}

func render(t *testing.T, name, namespace string, files []string, set map[string]string) release {
	t.Helper()
	out, err := renderE(t, name, namespace, files, set)
	require.NoError(t, err)
	r := release{name: name, namespace: namespace}
	decode := scheme.Codecs.UniversalDeserializer()
	for _, doc := range strings.Split(out, "\n---") {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		obj, _, err := decode.Decode([]byte(doc), nil, nil)
		if err != nil && strings.Contains(doc, "monitoring.coreos.com") || err != nil && strings.Contains(doc, "metallb.io") {
			continue // CRDs outside client-go's scheme, checked as text
		}
		require.NoError(t, err, "decode:\n%s", doc)
		r.objects = append(r.objects, obj)
	}
	return r
}

func stripComments(doc string) string {
	var keep []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func all[T runtime.Object](r release) []T {
	var out []T
	for _, o := range r.objects {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// workload is what the tests need of a Deployment, StatefulSet or DaemonSet.
type workload struct {
	kind, name string
	replicas   *int32
	selector   map[string]string
	labels     map[string]string // the workload's own labels
	template   corev1.PodTemplateSpec
}

func workloads(r release) []workload {
	var out []workload
	for _, o := range r.objects {
		switch w := o.(type) {
		case *appsv1.Deployment:
			out = append(out, workload{"Deployment", w.Name, w.Spec.Replicas, w.Spec.Selector.MatchLabels, w.Labels, w.Spec.Template})
		case *appsv1.StatefulSet:
			out = append(out, workload{"StatefulSet", w.Name, w.Spec.Replicas, w.Spec.Selector.MatchLabels, w.Labels, w.Spec.Template})
		case *appsv1.DaemonSet:
			out = append(out, workload{"DaemonSet", w.Name, nil, w.Spec.Selector.MatchLabels, w.Labels, w.Spec.Template})
		}
	}
	return out
}

// agentConfigs parses every rendered agent config with the agent's own
// validation, keyed by ConfigMap name.
func agentConfigs(t *testing.T, r release) map[string]*config.Config {
	t.Helper()
	out := map[string]*config.Config{}
	for _, cm := range all[*corev1.ConfigMap](r) {
		if cm.Labels["meshrr.io/group-name"] == "" {
			continue // not a group's (e.g. the dashboard)
		}
		raw, ok := cm.Data["config.yaml"]
		require.True(t, ok, "%s has no config.yaml", cm.Name)
		c, err := config.Parse([]byte(raw))
		require.NoError(t, err, "the agent rejects the chart's config %s:\n%s", cm.Name, raw)
		out[cm.Name] = c
	}
	return out
}

func hookJobs(r release, hook string) []*batchv1.Job {
	var out []*batchv1.Job
	for _, j := range all[*batchv1.Job](r) {
		if j.Annotations["helm.sh/hook"] == hook {
			out = append(out, j)
		}
	}
	return out
}

// checkValuesCheckHook: before install and upgrade, one Job runs the agent's
// check on every group's configuration, rendered byte for byte as in the
// group's ConfigMap, with no API access.
func checkValuesCheckHook(t *testing.T, r release) {
	t.Helper()
	jobs := hookJobs(r, "pre-install,pre-upgrade")
	require.Len(t, jobs, 1, "one values-check Job")
	spec := jobs[0].Spec.Template.Spec
	require.NotNil(t, spec.AutomountServiceAccountToken)
	assert.False(t, *spec.AutomountServiceAccountToken, "the check needs no API access")
	require.NotEmpty(t, spec.Containers)
	c := spec.Containers[0]
	require.NotEmpty(t, c.Args)
	assert.Equal(t, "check", c.Args[0])
	var hookCM *corev1.ConfigMap
	groups := map[string]string{}
	for _, cm := range all[*corev1.ConfigMap](r) {
		if cm.Annotations["helm.sh/hook"] == "pre-install,pre-upgrade" {
			hookCM = cm
		} else if g := cm.Labels["meshrr.io/group-name"]; g != "" {
			groups[g] = cm.Data["config.yaml"]
		}
	}
	require.NotNil(t, hookCM, "the values-check ConfigMap")
	require.Len(t, spec.Volumes, 1)
	assert.Equal(t, hookCM.Name, spec.Volumes[0].ConfigMap.Name)
	var files []string
	for g, cfg := range groups {
		key := "groups." + g + ".yaml"
		assert.Equal(t, strings.TrimSpace(cfg), strings.TrimSpace(hookCM.Data[key]), "%s: the hook checks what the group's ConfigMap holds", key)
		files = append(files, "/etc/meshrr-check/"+key)
	}
	extra, lines := 0, map[string]bool{}
	for k := range hookCM.Data {
		for _, line := range []string{"2", "3"} {
			if strings.HasSuffix(k, ".bird"+line+"-check.conf") {
				extra++
				lines[line] = true
			}
		}
	}
	assert.Len(t, hookCM.Data, len(groups)+extra)
	assert.Len(t, spec.Containers, 1+len(lines), "a birdN-check container only for a release line with an extraConfig to parse")
	assert.ElementsMatch(t, files, c.Args[1:], "every group's file is checked")
}

// checkRelease asserts what every release must satisfy.
func checkRelease(t *testing.T, r release) {
	t.Helper()
	cfgs := agentConfigs(t, r)
	require.NotEmpty(t, cfgs)
	checkValuesCheckHook(t, r)
	ws := workloads(r)
	require.NotEmpty(t, ws)
	for _, w := range ws {
		sel := labels.SelectorFromSet(w.selector)
		assert.True(t, sel.Matches(labels.Set(w.template.Labels)), "%s: selector does not match its own pods", w.name)
		assert.NotContains(t, w.selector, "helm.sh/chart", "%s: chart version in a selector", w.name)
		assert.NotContains(t, w.selector, "app.kubernetes.io/version", "%s: version in a selector", w.name)
		assert.Empty(t, w.template.Annotations["checksum/config"], "%s: a config checksum would roll every pod on a hot-reloadable change", w.name)
		spec := w.template.Spec
		names := []string{}
		for _, c := range spec.Containers {
			names = append(names, c.Name)
		}
		require.Len(t, names, 2, w.name)
		assert.Contains(t, []string{"bird", "crpd"}, names[0], w.name)
		assert.Equal(t, "agent", names[1], w.name)
		agent := spec.Containers[1]
		require.NotNil(t, agent.ReadinessProbe, "%s: agent readiness probe", w.name)
		assert.Equal(t, "/readyz", agent.ReadinessProbe.HTTPGet.Path)
		assert.Equal(t, "/healthz", agent.LivenessProbe.HTTPGet.Path)
		sc := agent.SecurityContext
		require.NotNil(t, sc)
		assert.True(t, *sc.RunAsNonRoot && *sc.ReadOnlyRootFilesystem && !*sc.AllowPrivilegeEscalation, "%s: agent must be unprivileged", w.name)
		assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
		if names[0] == "bird" {
			bird := spec.Containers[0].SecurityContext
			if bird.Capabilities.Add == nil { // without BFD (TestBFDReachesTheAgentAndTheNetworkPolicy has the exception)
				assert.Equal(t, int64(65532), *bird.RunAsUser, "%s: BIRD runs as the agent's user", w.name)
				assert.True(t, *bird.RunAsNonRoot && *bird.ReadOnlyRootFilesystem, w.name)
				assert.Equal(t, []corev1.Capability{"ALL"}, bird.Capabilities.Drop, w.name)
				assert.Contains(t, spec.SecurityContext.Sysctls, corev1.Sysctl{Name: "net.ipv4.ip_unprivileged_port_start", Value: "179"}, "%s: BIRD binds 179 without a capability", w.name)
			}
			assert.False(t, *bird.AllowPrivilegeEscalation)
			assert.Nil(t, bird.Privileged)
			assert.Contains(t, spec.Containers[0].LivenessProbe.Exec.Command, "status", "%s: BIRD liveness asks the daemon", w.name)
		}
		var env []string
		for _, e := range agent.Env {
			env = append(env, e.Name)
			if e.Name == "POD_IPS" {
				assert.Equal(t, "status.podIPs", e.ValueFrom.FieldRef.FieldPath)
			}
		}
		assert.Subset(t, env, []string{"POD_NAME", "POD_NAMESPACE", "POD_UID", "POD_IPS", "NODE_NAME"})
		mounts := map[string]string{}
		for _, m := range agent.VolumeMounts {
			mounts[m.Name] = m.MountPath
		}
		for _, m := range spec.Containers[0].VolumeMounts {
			if m.Name == "run-bird" {
				assert.Equal(t, mounts["run-bird"], m.MountPath, "%s: agent and bird share the control socket volume", w.name)
			}
		}
		cmName := ""
		for _, v := range spec.Volumes {
			if v.Name == "config" {
				cmName = v.ConfigMap.Name
			}
		}
		assert.Contains(t, cfgs, cmName, "%s mounts a ConfigMap that is not rendered", w.name)
	}
	// no two workloads select each other's pods
	for i, a := range ws {
		for j, b := range ws {
			if i != j {
				assert.False(t, labels.SelectorFromSet(a.selector).Matches(labels.Set(b.template.Labels)), "%s selects the pods of %s", a.name, b.name)
			}
		}
	}
	// RBAC: read EndpointSlices, write Events, hold the drain Lease; nothing else
	var locks []string
	for _, c := range cfgs {
		if !slices.Contains(locks, c.Drain.Lock) {
			locks = append(locks, c.Drain.Lock)
		}
	}
	for _, role := range all[*rbacv1.Role](r) {
		if role.Annotations["helm.sh/hook"] == "pre-delete" {
			checkUninstallHook(t, r, role)
			continue
		}
		for _, rule := range role.Rules {
			switch {
			case slices.Equal(rule.Resources, []string{"endpointslices"}):
				assert.Equal(t, []string{"discovery.k8s.io"}, rule.APIGroups)
				assert.ElementsMatch(t, []string{"get", "list", "watch"}, rule.Verbs)
			case slices.Equal(rule.Resources, []string{"services"}):
				assert.Equal(t, []string{""}, rule.APIGroups)
				assert.ElementsMatch(t, []string{"get", "list", "watch"}, rule.Verbs, "%s: Services are only read (a slice counts only with its Service)", role.Name)
			case slices.Equal(rule.Resources, []string{"events"}):
				assert.ElementsMatch(t, []string{"create", "patch"}, rule.Verbs)
				assert.Equal(t, r.namespace, role.Namespace, "events only in the release namespace")
			case slices.Equal(rule.Resources, []string{"leases"}):
				assert.Equal(t, []string{"coordination.k8s.io"}, rule.APIGroups)
				assert.Equal(t, r.namespace, role.Namespace, "the drain Lease only in the release namespace")
				if len(rule.ResourceNames) == 0 {
					// create cannot be restricted by name: nothing else unrestricted
					assert.Equal(t, []string{"create"}, rule.Verbs, "%s: lease verbs without resourceNames", role.Name)
					continue
				}
				assert.ElementsMatch(t, []string{"get", "update"}, rule.Verbs)
				assert.ElementsMatch(t, locks, rule.ResourceNames, "%s: get/update only on the groups' drain Leases", role.Name)
			default:
				assert.Fail(t, "unexpected RBAC rule", "%s: %+v", role.Name, rule)
			}
		}
	}
	assert.Empty(t, all[*rbacv1.ClusterRole](r), "no cluster-wide permissions")
	// one PDB per group, across its sides, selecting exactly its pods (a
	// pod under two budgets could not be evicted at all)
	pdbs := all[*policyv1.PodDisruptionBudget](r)
	groups := map[string][]string{} // group -> workloads
	for _, w := range ws {
		groups[w.template.Labels["meshrr.io/group-name"]] = append(groups[w.template.Labels["meshrr.io/group-name"]], w.name)
	}
	assert.Len(t, pdbs, len(groups))
	for _, p := range pdbs {
		sel := labels.SelectorFromSet(p.Spec.Selector.MatchLabels)
		var matched []string
		for _, w := range ws {
			if sel.Matches(labels.Set(w.template.Labels)) {
				matched = append(matched, w.name)
			}
		}
		assert.Equal(t, groups[p.Labels["meshrr.io/group-name"]], matched, "PDB %s must cover exactly its group's workloads, every side", p.Name)
		assert.EqualValues(t, 1, p.Spec.MaxUnavailable.IntVal)
	}
	// the API token is mounted into the agent container alone
	for _, w := range ws {
		spec := w.template.Spec
		require.NotNil(t, spec.AutomountServiceAccountToken, w.name)
		assert.False(t, *spec.AutomountServiceAccountToken, "%s: the token would reach every container", w.name)
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			var tokenMounts []string
			for _, m := range c.VolumeMounts {
				if m.MountPath == "/var/run/secrets/kubernetes.io/serviceaccount" {
					tokenMounts = append(tokenMounts, m.Name)
				}
			}
			if c.Name == "agent" {
				assert.Equal(t, []string{"kube-api-access"}, tokenMounts, "%s: the agent reads the API token", w.name)
			} else {
				assert.Empty(t, tokenMounts, "%s: container %s gets the API token", w.name, c.Name)
			}
		}
		var projected bool
		for _, v := range spec.Volumes {
			if v.Name == "kube-api-access" && v.Projected != nil {
				for _, src := range v.Projected.Sources {
					if src.ServiceAccountToken != nil {
						projected = true
						assert.Equal(t, "token", src.ServiceAccountToken.Path, w.name)
					}
				}
			}
		}
		assert.True(t, projected, "%s: no projected service-account token", w.name)
	}
	// graceful shutdown: the agent drains, the daemon stays up until the
	// drain is over, and the grace period covers the wait and the drain
	for _, w := range ws {
		spec := w.template.Spec
		daemon, agentC := spec.Containers[0], spec.Containers[len(spec.Containers)-1]
		require.NotNil(t, agentC.Lifecycle, w.name)
		assert.Equal(t, []string{"/meshrr-agent", "drain", "--config", "/etc/meshrr/config.yaml"}, agentC.Lifecycle.PreStop.Exec.Command, w.name)
		require.NotNil(t, daemon.Lifecycle, w.name)
		cmName := ""
		for _, v := range spec.Volumes {
			if v.Name == "config" {
				cmName = v.ConfigMap.Name
			}
		}
		c := cfgs[cmName]
		require.NotNil(t, c, "%s: config %s", w.name, cmName)
		need := int64((c.Drain.Time.Duration + c.Drain.WaitTimeout.Duration).Seconds())
		assert.GreaterOrEqual(t, *spec.TerminationGracePeriodSeconds, need+15, w.name)
		// the paths the chart, the image and the agent share agree: the
		// daemon's preStop waits for the agent's drain-done file, BIRD
		// opens (BIRD_SOCKET) and the probe asks the socket the agent uses
		assert.Contains(t, strings.Join(daemon.Lifecycle.PreStop.Exec.Command, " "), "[ ! -e "+c.Drain.DoneFile+" ]", w.name)
		if daemon.Name == "bird" {
			assert.Contains(t, daemon.Env, corev1.EnvVar{Name: "BIRD_SOCKET", Value: c.Backend.Bird.Socket}, w.name)
			assert.Equal(t, []string{"birdc", "-s", c.Backend.Bird.Socket, "show", "status"}, daemon.LivenessProbe.Exec.Command, w.name)
			assert.Equal(t, "/run/bird", filepath.Dir(c.Backend.Bird.Socket), "the socket is in the run-bird volume both containers mount")
		}
	}
	// discovery Services carry the group id the agents are configured with
	ids := map[string]bool{}
	for _, c := range cfgs {
		ids[c.Mesh.Group] = true
	}
	for _, s := range all[*corev1.Service](r) {
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			assert.True(t, ids[s.Labels["meshrr.io/group"]], "%s: meshrr.io/group %q matches no agent config", s.Name, s.Labels["meshrr.io/group"])
			assert.True(t, s.Spec.PublishNotReadyAddresses, "%s: a new RR must be discoverable before it is ready", s.Name)
			require.NotNil(t, s.Spec.IPFamilyPolicy)
			assert.Equal(t, corev1.IPFamilyPolicyPreferDualStack, *s.Spec.IPFamilyPolicy, "%s: both families are discovered on dual-stack clusters", s.Name)
		}
	}
}

// checkUninstallHook: the pre-delete Job may scale the release's
// workloads and list its pods, nothing else; its selector takes every RR
// pod of the release and not its own pod; it waits as long as the longest
// termination grace period.
func checkUninstallHook(t *testing.T, r release, role *rbacv1.Role) {
	t.Helper()
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}, Verbs: []string{"list"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale", "statefulsets/scale"}, Verbs: []string{"get", "update"}},
		{APIGroups: []string{"apps"}, Resources: []string{"daemonsets"}, Verbs: []string{"patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}},
	}
	assert.Equal(t, want, role.Rules, "%s: the uninstall hook's permissions", role.Name)
	assert.Equal(t, r.namespace, role.Namespace)
	jobs := hookJobs(r, "pre-delete")
	require.Len(t, jobs, 1, "one uninstall Job")
	job := jobs[0]
	assert.Equal(t, "pre-delete", job.Annotations["helm.sh/hook"])
	spec := job.Spec.Template.Spec
	assert.Equal(t, role.Name, spec.ServiceAccountName, "the Job runs with the hook's own ServiceAccount")
	require.Len(t, spec.Containers, 1)
	args := spec.Containers[0].Args
	require.NotEmpty(t, args)
	assert.Equal(t, "uninstall", args[0])
	flags := map[string]string{}
	for _, a := range args[1:] {
		k, v, ok := strings.Cut(a, "=")
		require.True(t, ok, a)
		flags[k] = v
	}
	assert.Equal(t, r.namespace, flags["--namespace"])
	sel, err := labels.Parse(flags["--selector"])
	require.NoError(t, err)
	assert.False(t, sel.Matches(labels.Set(job.Spec.Template.Labels)), "the Job would wait for itself")
	timeout, err := time.ParseDuration(flags["--timeout"])
	require.NoError(t, err)
	for _, w := range workloads(r) {
		assert.True(t, sel.Matches(labels.Set(w.template.Labels)), "the uninstall hook does not stop %s", w.name)
		assert.True(t, sel.Matches(labels.Set(w.labels)), "the uninstall hook does not find workload %s", w.name)
		assert.Greater(t, timeout, time.Duration(*w.template.Spec.TerminationGracePeriodSeconds)*time.Second, "%s stops within its grace period: the hook waits that long", w.name)
	}
	require.NotNil(t, job.Spec.ActiveDeadlineSeconds)
	assert.Greater(t, time.Duration(*job.Spec.ActiveDeadlineSeconds)*time.Second, timeout)
}

func sideOf(w workload) string {
	aff := w.template.Spec.Affinity
	if aff == nil || aff.NodeAffinity == nil || aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	e := aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0]
	return fmt.Sprintf("%s=%s", e.Key, strings.Join(e.Values, ","))
}

func TestTwoRegionsExampleRendersAHierarchy(t *testing.T) {
	core := render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, nil)
	checkRelease(t, core)
	ws := workloads(core)
	require.Len(t, ws, 2)
	assert.Equal(t, "core-meshrr-core-a", ws[0].name)
	assert.Equal(t, "redundancy_group=a", sideOf(ws[0]))
	assert.Equal(t, "redundancy_group=b", sideOf(ws[1]))
	assert.Equal(t, map[string]string{"meshrr_region_core": "true"}, ws[0].template.Spec.NodeSelector)
	assert.EqualValues(t, 1, *ws[0].replicas)
	coreCfg := agentConfigs(t, core)["core-meshrr-core"]
	assert.Equal(t, "core.core", coreCfg.Mesh.Group)
	// the core admits the region RRs one by one (discovered in the region
	// namespaces), never through a client range of the pod network
	require.NotNil(t, coreCfg.Downstream)
	assert.Equal(t, []string{"lothlorien", "mirkwood"}, coreCfg.Downstream.Namespaces)
	assert.Empty(t, coreCfg.Clients, "no client range admits pods")
	var coreRoleNS []string
	for _, role := range all[*rbacv1.Role](core) {
		if strings.HasSuffix(role.Name, "-discovery") {
			coreRoleNS = append(coreRoleNS, role.Namespace)
		}
	}
	assert.ElementsMatch(t, []string{"core", "lothlorien", "mirkwood"}, coreRoleNS, "the core reads the downstream namespaces")
	// the agents trust only Services of the names the chart gives them
	// (discovery.Owned): each side's is the stem plus the side
	coreServices := map[string]bool{}
	for _, svc := range all[*corev1.Service](core) {
		if svc.Spec.ClusterIP == corev1.ClusterIPNone {
			coreServices[svc.Name] = true
			assert.Equal(t, coreCfg.Mesh.Service+"-"+svc.Labels["meshrr.io/side"], svc.Name)
			assert.Equal(t, svc.Labels["meshrr.io/group"], svc.Labels["app.kubernetes.io/instance"]+"."+svc.Labels["meshrr.io/group-name"], "the labels make up the group ID")
		}
	}
	assert.Len(t, coreServices, 2)

	var regions []release
	for _, region := range []string{"lothlorien", "mirkwood"} {
		r := render(t, region, region, []string{example("2regions-hrr", "values.yaml"), example("2regions-hrr", "values-"+region+".yaml")}, nil)
		checkRelease(t, r)
		regions = append(regions, r)
		cfg := agentConfigs(t, r)[region+"-meshrr-"+region]
		require.NotNil(t, cfg)
		require.NotNil(t, cfg.Upstream)
		assert.Equal(t, "core.core", cfg.Upstream.Group, "region RRs peer up to the core release's group")
		assert.Equal(t, "core", cfg.Upstream.Namespace)
		assert.Equal(t, 2, cfg.Upstream.MaxPeers)
		assert.True(t, coreServices[cfg.Upstream.Service+"-a"] && coreServices[cfg.Upstream.Service+"-b"], "the upstream's Service stem %q names the core release's Services %v", cfg.Upstream.Service, coreServices)
		names := []string{}
		for _, p := range cfg.Policy {
			names = append(names, p.Name)
		}
		assert.Equal(t, []string{"keep-101-in-region", "depref-102-outside", "retag-103-outside"}, names)
		// the upstream choice needs the siblings' labels, and RBAC to read them
		for _, s := range all[*corev1.Service](r) {
			if s.Spec.ClusterIP == corev1.ClusterIPNone {
				assert.Equal(t, "core.core", s.Labels["meshrr.io/upstream-group"])
				assert.Equal(t, "core", s.Labels["meshrr.io/upstream-namespace"])
			}
		}
		// the core's NetworkPolicy admits the region's pods by this label
		for _, w := range workloads(r) {
			assert.Equal(t, coreCfg.Mesh.Group, w.template.Labels["meshrr.io/upstream-group"], "%s: the label the core's NetworkPolicy admits", w.name)
		}
		assert.Contains(t, coreCfg.Downstream.Namespaces, region)
		var roleNS []string
		for _, role := range all[*rbacv1.Role](r) {
			if strings.HasSuffix(role.Name, "-discovery") {
				roleNS = append(roleNS, role.Namespace)
			}
		}
		assert.ElementsMatch(t, []string{"core", "lothlorien", "mirkwood"}, roleNS)
	}
	// selectors never overlap across the three releases either
	var every []workload
	for _, r := range append([]release{core}, regions...) {
		every = append(every, workloads(r)...)
	}
	for i, a := range every {
		for j, b := range every {
			if i != j {
				assert.False(t, labels.SelectorFromSet(a.selector).Matches(labels.Set(b.template.Labels)), "%s selects %s", a.name, b.name)
			}
		}
	}
}

func TestRouteServerExampleRendersSidesWithAnycastAddresses(t *testing.T) {
	r := render(t, "rs", "rs", []string{example("route-servers", "values.yaml")}, nil)
	checkRelease(t, r)
	ws := workloads(r)
	require.Len(t, ws, 2)
	for _, w := range ws {
		assert.Equal(t, "StatefulSet", w.kind)
	}
	var lbs []*corev1.Service
	for _, s := range all[*corev1.Service](r) {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			lbs = append(lbs, s)
		}
	}
	require.Len(t, lbs, 2)
	assert.Equal(t, "172.30.0.1", lbs[0].Annotations["metallb.io/loadBalancerIPs"])
	assert.Equal(t, "172.30.0.2", lbs[1].Annotations["metallb.io/loadBalancerIPs"])
	for _, s := range lbs {
		assert.Equal(t, corev1.ServiceExternalTrafficPolicyLocal, s.Spec.ExternalTrafficPolicy, "announce only from nodes with a pod of the side")
	}
	side := func(s *corev1.Service) string { return s.Spec.Selector["meshrr.io/side"] }
	assert.Equal(t, "a", side(lbs[0]))
	assert.Equal(t, "b", side(lbs[1]))
	cfg := agentConfigs(t, r)["rs-meshrr-rs"]
	assert.Equal(t, config.ClientExternal, cfg.Clients[0].Type)
	assert.Equal(t, 4, cfg.Clients[0].Multihop)
	out, err := renderE(t, "rs", "rs", []string{example("route-servers", "values.yaml")}, nil)
	require.NoError(t, err)
	assert.Contains(t, out, "kind: IPAddressPool")
	assert.Contains(t, out, `addresses: ["172.30.0.1/32"]`)
	assert.Contains(t, out, "autoAssign: false")
	assert.Contains(t, out, "kind: BGPPeer")
	assert.Contains(t, out, "apiVersion: metallb.io/v1beta2")
}

func TestRouteServerEVPNOverlayRendersCRPDWithEVPN(t *testing.T) {
	files := []string{example("route-servers", "values.yaml"), example("route-servers", "values-crpd-evpn.yaml")}
	r := render(t, "rs", "rs", files, nil)
	checkRelease(t, r)
	cfg := agentConfigs(t, r)["rs-meshrr-rs"]
	assert.Equal(t, config.BackendCRPD, cfg.Backend.Type)
	assert.Equal(t, []config.Family{config.FamilyUnicast, config.FamilyEVPN}, cfg.Families)
	for _, w := range workloads(r) {
		assert.Equal(t, "crpd", w.template.Spec.Containers[0].Name)
	}
	// cRPD's NETCONF/SSH listens on the pod address: with backend crpd the
	// policy is rendered even with networkPolicy.enabled false and admits
	// only BGP and metrics
	r = render(t, "rs", "rs", files, map[string]string{"networkPolicy.enabled": "false"})
	nps := all[*networkingv1.NetworkPolicy](r)
	require.Len(t, nps, 2, "one per side")
	for _, np := range nps {
		var ports []int32
		for _, in := range np.Spec.Ingress {
			for _, p := range in.Ports {
				ports = append(ports, p.Port.IntVal)
			}
		}
		assert.ElementsMatch(t, []int32{179, 9479}, ports, "NETCONF (830) and SSH (22) are not admitted")
	}
	// BIRD groups get one by default, none when it is turned off
	assert.NotEmpty(t, all[*networkingv1.NetworkPolicy](render(t, "rs", "rs", files[:1], nil)))
	assert.Empty(t, all[*networkingv1.NetworkPolicy](render(t, "rs", "rs", files[:1], map[string]string{"networkPolicy.enabled": "false"})))
}

func TestClientTiersExampleRendersItsTiers(t *testing.T) {
	r := render(t, "edge", "edge", []string{example("client-tiers", "values.yaml")}, nil)
	checkRelease(t, r)
	cfg := agentConfigs(t, r)["edge-meshrr-edge"]
	tiers := map[string]config.Tier{}
	addPaths := map[string]int{}
	for _, c := range cfg.Clients {
		tiers[c.Name] = c.Export.Tier
		addPaths[c.Name] = c.AddPaths
	}
	assert.Equal(t, map[string]config.Tier{"full": "full", "partial": "partial", "default-only": "default", "full-paths": "full"}, tiers)
	assert.Equal(t, map[string]int{"full": 0, "partial": 0, "default-only": 0, "full-paths": 2}, addPaths, "addPaths reaches the agent's configuration")
}

func TestOptionalResources(t *testing.T) {
	set := map[string]string{"networkPolicy.enabled": "true", "serviceMonitor.enabled": "true", "groups.core.backend.bird.extraConfig": "protocol static s { ipv4; }",
		"grafanaDashboard.enabled": "true", "prometheusRule.enabled": "true", "prometheusRule.minEstablishedSessions": "2",
		"groups.core.probes.readiness.periodSeconds": "7"}
	r := render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, set)
	checkRelease(t, r)
	out, err := renderE(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, set)
	require.NoError(t, err)
	assert.Contains(t, out, "kind: ServiceMonitor")
	assert.Contains(t, out, "kind: PrometheusRule")
	assert.Contains(t, out, `state="Established"}) < 2`)
	var dash *corev1.ConfigMap
	for _, cm := range all[*corev1.ConfigMap](r) {
		if cm.Labels["grafana_dashboard"] == "1" {
			dash = cm
		}
	}
	require.NotNil(t, dash, "the dashboard ConfigMap carries the sidecar's label")
	assert.True(t, json.Valid([]byte(dash.Data["meshrr.json"])), "the dashboard survives the template as valid JSON")
	assert.Contains(t, out, "kind: NetworkPolicy")
	assert.NotContains(t, out, "ipBlock", "the core admits no address range")
	var np *networkingv1.NetworkPolicy
	for _, p := range all[*networkingv1.NetworkPolicy](r) {
		np = p
	}
	require.NotNil(t, np)
	var downstream *networkingv1.NetworkPolicyPeer
	for i, peer := range np.Spec.Ingress[0].From {
		if peer.NamespaceSelector != nil && len(peer.NamespaceSelector.MatchExpressions) > 0 {
			downstream = &np.Spec.Ingress[0].From[i]
		}
	}
	require.NotNil(t, downstream, "a rule admits the downstream RRs")
	nsSel, err := metav1.LabelSelectorAsSelector(downstream.NamespaceSelector)
	require.NoError(t, err)
	podSel, err := metav1.LabelSelectorAsSelector(downstream.PodSelector)
	require.NoError(t, err)
	region := labels.Set{"app.kubernetes.io/name": "meshrr", "app.kubernetes.io/instance": "lothlorien", "meshrr.io/group-name": "lothlorien", "meshrr.io/upstream-group": "core.core"}
	assert.True(t, nsSel.Matches(labels.Set{"kubernetes.io/metadata.name": "mirkwood"}))
	assert.False(t, nsSel.Matches(labels.Set{"kubernetes.io/metadata.name": "default"}), "a namespace not named")
	assert.True(t, podSel.Matches(region), "a region RR")
	assert.False(t, podSel.Matches(labels.Set{"app": "web"}), "any other pod")
	assert.False(t, podSel.Matches(labels.Set{"app.kubernetes.io/name": "meshrr", "meshrr.io/upstream-group": "other.core"}), "the RR of a group with another upstream")
	assert.EqualValues(t, 7, workloads(r)[0].template.Spec.Containers[1].ReadinessProbe.PeriodSeconds, "probe timings are values")
	assert.EqualValues(t, 2, workloads(r)[0].template.Spec.Containers[1].ReadinessProbe.FailureThreshold, "unset timings keep their defaults")
	var cm *corev1.ConfigMap
	for _, c := range all[*corev1.ConfigMap](r) {
		if c.Name == "core-meshrr-core" {
			cm = c
		}
	}
	require.NotNil(t, cm)
	assert.Equal(t, "protocol static s { ipv4; }", strings.TrimSpace(cm.Data["bird-extra.conf"]))
	// the agent reads it from its ConfigMap volume; BIRD includes only the
	// agent's copy of the last version it accepted (never the ConfigMap)
	agentCfg := agentConfigs(t, r)["core-meshrr-core"]
	assert.Equal(t, "/etc/meshrr/bird-extra.conf", agentCfg.Backend.Bird.ExtraConfigFile)
	spec := workloads(r)[0].template.Spec
	for _, v := range spec.Volumes {
		switch v.Name {
		case "config":
			require.NotNil(t, v.ConfigMap)
			assert.Contains(t, v.ConfigMap.Items, corev1.KeyToPath{Key: "bird-extra.conf", Path: "bird-extra.conf"})
		case "bird-conf-d":
			assert.Nil(t, v.ConfigMap, "BIRD never reads the ConfigMap's extraConfig directly")
		}
	}
	for _, c := range spec.Containers {
		for _, m := range c.VolumeMounts {
			assert.False(t, m.Name == "config" && c.Name != "agent", "%s mounts the ConfigMap", c.Name)
		}
	}
	// without extraConfig the key is there, empty: adding one later hot-reloads
	plain := render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, nil)
	for _, c := range all[*corev1.ConfigMap](plain) {
		if c.Name == "core-meshrr-core" {
			v, ok := c.Data["bird-extra.conf"]
			assert.True(t, ok)
			assert.Empty(t, v)
		}
	}
	assert.Equal(t, workloads(plain)[0].template.Spec.Volumes, spec.Volumes, "adding an extraConfig does not roll the pods")
}

// The daemon container takes its own backend's probe and resources: a
// BIRD value never reaches the cRPD container.
func TestDaemonContainerTakesItsBackendsProbeAndResources(t *testing.T) {
	set := crpdCore(map[string]string{
		"groups.core.resources.crpd.limits.memory":    "3Gi",
		"groups.core.resources.bird.limits.memory":    "1Gi",
		"groups.core.probes.crpd.periodSeconds":       "7",
		"groups.core.probes.bird.periodSeconds":       "13",
		"groups.core.resources.crpd.requests.memory":  "1Gi",
		"groups.core.probes.crpd.initialDelaySeconds": "9",
	})
	r := render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, set)
	ws := workloads(r)
	require.Len(t, ws, 2, "sides a and b")
	for _, w := range ws {
		c := w.template.Spec.Containers[0]
		require.Equal(t, "crpd", c.Name)
		assert.Equal(t, "3Gi", c.Resources.Limits.Memory().String())
		assert.Equal(t, "1Gi", c.Resources.Requests.Memory().String())
		assert.Equal(t, int32(7), c.LivenessProbe.PeriodSeconds)
		assert.Equal(t, int32(9), c.LivenessProbe.InitialDelaySeconds)
	}
}

// crpdCore: the core group with the cRPD backend (image and licence
// Secret set), plus extra values.
func crpdCore(extra map[string]string) map[string]string {
	set := map[string]string{
		"groups.core.backend.type":                    "crpd",
		"groups.core.backend.crpd.image":              "crpd:23.4R1",
		"groups.core.backend.crpd.licenseSecret.name": "crpd-license",
	}
	for k, v := range extra {
		set[k] = v
	}
	return set
}

func TestCRPDBackendRendersTheDaemonLicenceAndStartupVolumes(t *testing.T) {
	set := crpdCore(map[string]string{"groups.core.backend.crpd.extraConfig": "system { syslog { file messages { any notice; } } }"})
	r := render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, set)
	checkRelease(t, r)
	cfg := agentConfigs(t, r)["core-meshrr-core"]
	assert.Equal(t, config.BackendCRPD, cfg.Backend.Type)
	assert.Equal(t, "/etc/meshrr/license/license", cfg.Backend.CRPD.LicenseFile)
	assert.Equal(t, "/etc/meshrr/crpd-extra.conf", cfg.Backend.CRPD.ExtraConfigFile)
	assert.Equal(t, 16, *cfg.Backend.CRPD.LicenseLimits.BGPPeers, "the standard licence by default")
	assert.Equal(t, 4000000, *cfg.Backend.CRPD.LicenseLimits.RIBEntries, "not 4e+06: the agent reads an integer")
	w := workloads(r)[0]
	crpd := w.template.Spec.Containers[0]
	assert.Equal(t, "crpd", crpd.Name)
	assert.Equal(t, "crpd:23.4R1", crpd.Image)
	mounts := func(c corev1.Container) map[string]string {
		m := map[string]string{}
		for _, v := range c.VolumeMounts {
			m[v.Name] = v.MountPath
		}
		return m
	}
	init := w.template.Spec.InitContainers[0]
	assert.Equal(t, "/config", mounts(init)["crpd-config"], "init writes the startup juniper.conf cRPD reads")
	assert.Equal(t, "/config", mounts(crpd)["crpd-config"])
	assert.Equal(t, "/etc/meshrr/license", mounts(init)["crpd-license"], "the licence reaches only the init step")
	assert.NotContains(t, mounts(w.template.Spec.Containers[1]), "crpd-license")
	assert.Contains(t, mounts(w.template.Spec.Containers[1]), "run-meshrr", "the agent keeps its key and state in the pod volume")
	for _, v := range w.template.Spec.Volumes {
		if v.Name == "crpd-license" {
			assert.Equal(t, "crpd-license", v.Secret.SecretName)
		}
	}
	assert.Equal(t, int32(830), crpd.LivenessProbe.TCPSocket.Port.IntVal)
	// cRPD serves the host key the agent's init provisioned
	var hostKey *corev1.VolumeMount
	for i, m := range crpd.VolumeMounts {
		if m.MountPath == "/etc/ssh/ssh_host_ed25519_key" {
			hostKey = &crpd.VolumeMounts[i]
		}
	}
	require.NotNil(t, hostKey, "the provisioned host key is mounted where sshd reads it")
	assert.Equal(t, cfg.Backend.CRPD.HostKeyFile, filepath.Join(mounts(init)[hostKey.Name], hostKey.SubPath),
		"the mounted file is the one init writes")
	assert.True(t, hostKey.ReadOnly)
}

func TestDrainSettingsFollowValues(t *testing.T) {
	r := render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.drain.timeSeconds": "30", "groups.core.drain.waitTimeoutSeconds": "20", "groups.core.gracefulRestart.restartTime": "200",
	})
	checkRelease(t, r)
	c := agentConfigs(t, r)["core-meshrr-core"]
	assert.Equal(t, 30*time.Second, c.Drain.Time.Duration)
	assert.Equal(t, 20*time.Second, c.Drain.WaitTimeout.Duration)
	assert.Equal(t, []string{"a", "b"}, c.Drain.Sides, "every side of the group")
	assert.Equal(t, "core-meshrr-core-drain", c.Drain.Lock)
	assert.True(t, *c.Drain.WaitForPeers)
	assert.Equal(t, 200, c.GracefulRestart.RestartTime)
	for _, w := range workloads(r) {
		assert.EqualValues(t, 65, *w.template.Spec.TerminationGracePeriodSeconds, "30 s drain + 20 s wait + 15 s")
	}
	// a group of one pod has nobody to wait for
	one := render(t, "solo", "solo", nil, map[string]string{"groups.solo.identity.asn": "65000", "groups.solo.replicas": "1"})
	assert.False(t, *agentConfigs(t, one)["solo-meshrr-solo"].Drain.WaitForPeers)
}

func TestTCPMD5SecretReachesOnlyTheAgent(t *testing.T) {
	r := render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.tcpMD5Secret": "core-bgp-keys", "groups.core.clients.routers.ranges[0]": "172.20.0.0/16",
		"groups.core.clients.routers.maxPrefixes": "5000", "groups.core.clients.routers.ttlSecurity": "true",
	})
	checkRelease(t, r)
	c := agentConfigs(t, r)["core-meshrr-core"]
	assert.Equal(t, "/etc/meshrr-bgp-passwords", c.PasswordDir)
	assert.Equal(t, "/etc/meshrr-bgp-passwords/client-routers", c.PasswordFile("routers", true))
	assert.Equal(t, "/etc/meshrr-bgp-passwords/downstream", c.PasswordFile("downstream", false))
	assert.Equal(t, "core-bgp-keys", c.PasswordSecret, "named in the refusal Events")
	assert.Equal(t, []string{"mesh", "downstream", "client-routers"}, c.PasswordKeys, "fails closed: every session group's key is required by default")
	only := agentConfigs(t, render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.tcpMD5Secret": "core-bgp-keys", "groups.core.tcpMD5Keys[0]": "downstream",
	}))["core-meshrr-core"]
	assert.Equal(t, []string{"downstream"}, only.PasswordKeys)
	assert.False(t, only.PasswordRequired("mesh", false))
	assert.Equal(t, 5000, c.Clients[0].MaxPrefixes)
	assert.Equal(t, config.LimitRestart, c.Clients[0].MaxPrefixAction)
	assert.True(t, c.Clients[0].TTLSecurity)
	for _, w := range workloads(r) {
		for _, ct := range w.template.Spec.Containers {
			mounted := false
			for _, m := range ct.VolumeMounts {
				mounted = mounted || m.Name == "bgp-passwords"
			}
			assert.Equal(t, ct.Name == "agent", mounted, "%s/%s", w.name, ct.Name)
		}
		found := false
		for _, v := range w.template.Spec.Volumes {
			if v.Name == "bgp-passwords" {
				found = v.Secret != nil && v.Secret.SecretName == "core-bgp-keys"
			}
		}
		assert.True(t, found, w.name)
	}
}

func TestCRPDLicenceLimitsAreValues(t *testing.T) {
	r := render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.backend.type": "crpd", "groups.core.backend.crpd.image": "crpd:23.4R1",
		"groups.core.backend.crpd.licenseSecret.name":     "crpd-license",
		"groups.core.backend.crpd.licenseLimits.bgpPeers": "0", "groups.core.backend.crpd.licenseLimits.ribEntries": "10000000",
	})
	checkRelease(t, r)
	cfg := agentConfigs(t, r)["core-meshrr-core"]
	assert.Equal(t, 0, *cfg.Backend.CRPD.LicenseLimits.BGPPeers, "0: no limit, kept (not replaced by the default)")
	assert.Equal(t, 10000000, *cfg.Backend.CRPD.LicenseLimits.RIBEntries)
}

// The agent sizes BIRD against the memory limit the pod really gets:
// resources.bird.limits.memory reaches its configuration (a quantity, or
// plain bytes written as an integer, never 1.073741824e+09), with the
// cost per route of the values; cRPD gets no BIRD sizing.
func TestBirdMemoryLimitReachesTheAgent(t *testing.T) {
	r := render(t, "edge", "edge", []string{example("full-table", "values.yaml")}, nil)
	checkRelease(t, r)
	cfg := agentConfigs(t, r)["edge-meshrr-rr"]
	assert.Equal(t, "2Gi", cfg.Backend.Bird.MemoryLimit)
	assert.Equal(t, int64(config.DefaultBirdBytesPerRoute), cfg.BytesPerRoute(), "0 in values: BIRD 2's default")
	need, limit := cfg.MemoryNeed(1_000_000)
	assert.Equal(t, int64(2<<30), limit)
	assert.Equal(t, int64(32<<20+250_000_000), need)
	for _, w := range workloads(r) {
		for _, c := range w.template.Spec.Containers {
			if c.Name == "bird" {
				assert.Equal(t, "2Gi", c.Resources.Limits.Memory().String(), "the limit the agent compares with is the container's")
			}
		}
	}

	r = render(t, "edge", "edge", []string{example("full-table", "values.yaml")}, map[string]string{
		"groups.rr.resources.bird.limits.memory": "1073741824", "groups.rr.backend.bird.bytesPerRoute": "400",
	})
	cfg = agentConfigs(t, r)["edge-meshrr-rr"]
	assert.Equal(t, "1073741824", cfg.Backend.Bird.MemoryLimit)
	assert.Equal(t, int64(400), cfg.BytesPerRoute())
	r = render(t, "edge", "edge", []string{example("full-table", "values.yaml")}, map[string]string{"groups.rr.backend.bird.version": "3"})
	assert.Equal(t, int64(config.DefaultBird3BytesPerRoute), agentConfigs(t, r)["edge-meshrr-rr"].BytesPerRoute(), "0 in values: BIRD 3's default")

	r = render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.backend.type": "crpd", "groups.core.backend.crpd.image": "crpd:23.4R1",
		"groups.core.backend.crpd.licenseSecret.name": "crpd-license",
	})
	need, limit = agentConfigs(t, r)["core-meshrr-core"].MemoryNeed(1_000_000)
	assert.Zero(t, need+limit, "no BIRD sizing for cRPD")
}

// TestNetworkPolicyAdmitsOnlyTheGroupItsUpstreamAndItsClients: BGP from
// the group's own pods, the upstream group's pods in the upstream namespace
// (named, not "any namespace") and the client ranges; nothing that any pod
// could claim by labelling itself.
func TestNetworkPolicyAdmitsOnlyTheGroupItsUpstreamAndItsClients(t *testing.T) {
	r := render(t, "lothlorien", "lothlorien", []string{example("2regions-hrr", "values.yaml"), example("2regions-hrr", "values-lothlorien.yaml")},
		map[string]string{"networkPolicy.enabled": "true"})
	nps := all[*networkingv1.NetworkPolicy](r)
	require.Len(t, nps, 2, "one policy per side")
	assert.Equal(t, nps[0].Spec.Ingress, nps[1].Spec.Ingress, "both sides admit the same peers")
	assert.Equal(t, nps[0].Spec.Egress, nps[1].Spec.Egress, "both sides reach the same peers")
	np := nps[0]
	var bgp, metricsRule *networkingv1.NetworkPolicyIngressRule
	for i, in := range np.Spec.Ingress {
		require.Len(t, in.Ports, 1)
		switch in.Ports[0].Port.IntVal {
		case 179:
			bgp = &np.Spec.Ingress[i]
		case 9479:
			metricsRule = &np.Spec.Ingress[i]
		default:
			assert.Fail(t, "unexpected port", "%v", in.Ports[0].Port)
		}
	}
	require.NotNil(t, bgp)
	require.NotNil(t, metricsRule)
	require.Len(t, metricsRule.From, 1, "by default the metrics port admits Prometheus pods only")
	assert.Equal(t, map[string]string{"app.kubernetes.io/name": "prometheus"}, metricsRule.From[0].PodSelector.MatchLabels)
	assert.Empty(t, all[*networkingv1.NetworkPolicy](render(t, "lothlorien", "lothlorien", []string{example("2regions-hrr", "values.yaml"), example("2regions-hrr", "values-lothlorien.yaml")},
		map[string]string{"networkPolicy.metricsFrom": "null"}))[0].Spec.Ingress[1].From, "metricsFrom emptied: from anywhere")
	own := map[string]string{"app.kubernetes.io/name": "meshrr", "app.kubernetes.io/instance": "lothlorien", "meshrr.io/group-name": "lothlorien"}
	upstream := map[string]string{"app.kubernetes.io/name": "meshrr", "app.kubernetes.io/instance": "core", "meshrr.io/group-name": "core"}
	require.Len(t, bgp.From, 3)
	assert.Nil(t, bgp.From[0].NamespaceSelector, "own group: the release namespace only")
	assert.Equal(t, own, bgp.From[0].PodSelector.MatchLabels)
	require.NotNil(t, bgp.From[1].NamespaceSelector)
	assert.Equal(t, map[string]string{"kubernetes.io/metadata.name": "core"}, bgp.From[1].NamespaceSelector.MatchLabels, "the upstream namespace by name")
	assert.Equal(t, upstream, bgp.From[1].PodSelector.MatchLabels)
	require.NotNil(t, bgp.From[2].IPBlock)
	assert.Equal(t, "172.18.101.0/24", bgp.From[2].IPBlock.CIDR)
	// the policies select exactly the group's pods, each pod by one
	ws := workloads(r)
	require.Len(t, ws, 2)
	for _, w := range ws {
		n := 0
		for _, p := range nps {
			if labels.SelectorFromSet(p.Spec.PodSelector.MatchLabels).Matches(labels.Set(w.template.Labels)) {
				n++
			}
		}
		assert.Equal(t, 1, n, "%s: selected by one policy", w.name)
	}

	// metricsFrom restricts the metrics/status port
	r = render(t, "lothlorien", "lothlorien", []string{example("2regions-hrr", "values.yaml"), example("2regions-hrr", "values-lothlorien.yaml")},
		map[string]string{"networkPolicy.enabled": "true", "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name": "monitoring"})
	np = all[*networkingv1.NetworkPolicy](r)[0]
	for _, in := range np.Spec.Ingress {
		if in.Ports[0].Port.IntVal == 9479 {
			require.Len(t, in.From, 1)
			assert.Equal(t, map[string]string{"kubernetes.io/metadata.name": "monitoring"}, in.From[0].NamespaceSelector.MatchLabels)
		}
	}
}

// BFD values reach the agent per session group, and the group's
// NetworkPolicy admits BFD (UDP 3784 single-hop, 4784 multihop) from the
// peers it admits BGP from, only when a session group has BFD.
func TestBFDReachesTheAgentAndTheNetworkPolicy(t *testing.T) {
	set := map[string]string{
		"networkPolicy.enabled":                    "true",
		"groups.core.clients.regions.ranges[0]":    "172.20.0.0/16",
		"groups.core.clients.regions.bfd.enabled":  "true",
		"groups.core.clients.regions.bfd.interval": "300ms",
		"groups.core.clients.regions.peerMetrics":  "true",
		"groups.core.mesh.bfd.enabled":             "true",
	}
	r := render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, set)
	cfg := agentConfigs(t, r)["core-meshrr-core"]
	require.NotNil(t, cfg)
	require.True(t, cfg.Mesh.BFD.On())
	assert.Equal(t, 200*time.Millisecond, cfg.Mesh.BFD.Interval.Duration, "the agent's default")
	for _, c := range cfg.Clients {
		if c.Name == "regions" {
			assert.Equal(t, 300*time.Millisecond, c.BFD.Interval.Duration)
			assert.True(t, c.PeerMetrics)
		}
	}
	udp := func(r release) map[string][]int32 {
		out := map[string][]int32{}
		for _, np := range all[*networkingv1.NetworkPolicy](r) {
			out[np.Name] = nil
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					if p.Protocol != nil && *p.Protocol == corev1.ProtocolUDP {
						out[np.Name] = append(out[np.Name], p.Port.IntVal)
					}
				}
			}
		}
		return out
	}
	caps := func(r release) map[string][]corev1.Capability {
		out := map[string][]corev1.Capability{}
		for _, w := range workloads(r) {
			out[w.name] = w.template.Spec.Containers[0].SecurityContext.Capabilities.Add
		}
		return out
	}
	for name, add := range caps(r) {
		assert.ElementsMatch(t, []corev1.Capability{"SETGID", "CHOWN", "NET_ADMIN"}, add, "%s: BIRD's BFD sockets need NET_ADMIN (SO_PRIORITY 7)", name)
	}
	got := udp(r)
	require.Len(t, got, 2, "a policy per side")
	for name, ports := range got {
		assert.ElementsMatch(t, []int32{3784, 4784}, ports, name)
	}
	off := render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{"networkPolicy.enabled": "true"})
	for name, ports := range udp(off) {
		assert.Empty(t, ports, "%s: no BFD port without BFD", name)
	}
	for name, add := range caps(off) {
		assert.NotContains(t, add, corev1.Capability("NET_ADMIN"), "%s: no NET_ADMIN without BFD", name)
	}
}

// TestValuesCheckParsesBirdExtraConfigWithBIRD: a group's
// backend.bird.extraConfig reaches the values-check hook as a file that
// the real BIRD parser of the group's release line (bird -p, as the hook's
// bird2-check or bird3-check container runs it in images.bird or
// images.bird3, here the images' BIRD 2 and BIRD 3 on the host) accepts
// when BIRD would and refuses, naming the line, when BIRD would; the
// container passes Pod Security restricted.
func TestValuesCheckParsesBirdExtraConfigWithBIRD(t *testing.T) {
	for _, line := range []struct{ version, container, image, daemon string }{
		{"2", "bird2-check", "meshrr/bird:", "bird"}, {"3", "bird3-check", "meshrr/bird3:", "bird3"},
	} {
		for extra, ok := range map[string]bool{
			"protocol static extra4 { ipv4; route 10.0.0.0/8 blackhole; }": true,
			"protocol static broken { ipv4; route 10.0.0.0/8 blackhol; }":  false,
			"protocol static unclosed { ipv4;":                             false,
		} {
			checkExtraConfig(t, line.version, line.container, line.image, line.daemon, extra, ok)
		}
	}
}

func checkExtraConfig(t *testing.T, version, container, image, daemon, extra string, ok bool) {
	t.Helper()
	r := render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")},
		map[string]string{"groups.core.backend.bird.extraConfig": extra, "groups.core.backend.bird.version": version})
	checkRelease(t, r)
	job := hookJobs(r, "pre-install,pre-upgrade")[0]
	assert.Empty(t, admission(t, psa.LevelRestricted, job.Spec.Template))
	require.Len(t, job.Spec.Template.Spec.Containers, 2)
	check := job.Spec.Template.Spec.Containers[1]
	assert.Equal(t, container, check.Name)
	assert.True(t, strings.HasPrefix(check.Image, image), "the BIRD image: %s", check.Image)
	key := "groups.core.bird" + version + "-check.conf"
	var conf string
	for _, cm := range all[*corev1.ConfigMap](r) {
		if c, found := cm.Data[key]; found {
			conf = c
		}
	}
	require.NotEmpty(t, conf)
	f := filepath.Join(t.TempDir(), key)
	require.NoError(t, os.WriteFile(f, []byte(conf), 0o644))
	out, err := exec.Command(daemon, "-p", "-c", f).CombinedOutput()
	if ok {
		assert.NoError(t, err, "%s: %s", extra, out)
	} else {
		assert.Error(t, err, extra)
		assert.Contains(t, string(out), f+":", "BIRD names the file and position")
		if strings.Contains(extra, "blackhol;") {
			assert.Contains(t, string(out), f+":3:49 syntax error", "the extraConfig's first line is the file's third")
		}
	}
}

// The NetworkPolicy is on by default, both ways: BGP in and out only with
// the group's peers, the metrics port for Prometheus pods only, out to the
// API server's ports (any address unless networkPolicy.apiServer.cidrs
// names them) and nowhere else (no DNS).
func TestNetworkPolicyIsOnByDefaultInAndOut(t *testing.T) {
	files := []string{example("2regions-hrr", "values.yaml"), example("2regions-hrr", "values-lothlorien.yaml")}
	r := render(t, "lothlorien", "lothlorien", files, nil) // the example leaves networkPolicy to the chart's defaults
	nps := all[*networkingv1.NetworkPolicy](r)
	require.Len(t, nps, 2, "one policy per side")
	a, b := nps[0].Spec, nps[1].Spec
	assert.Equal(t, "a", a.PodSelector.MatchLabels["meshrr.io/side"])
	assert.Equal(t, "b", b.PodSelector.MatchLabels["meshrr.io/side"])
	a.PodSelector, b.PodSelector = metav1.LabelSelector{}, metav1.LabelSelector{}
	assert.Equal(t, a, b, "the sides' policies differ only in the side they select") // checked below on side a
	np := nps[0]
	assert.ElementsMatch(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}, np.Spec.PolicyTypes)
	require.Len(t, np.Spec.Ingress, 2)
	require.Len(t, np.Spec.Egress, 2)
	assert.Equal(t, np.Spec.Ingress[0].From, np.Spec.Egress[0].To, "BGP out to exactly the peers it admits")
	assert.EqualValues(t, 179, np.Spec.Egress[0].Ports[0].Port.IntVal)
	var kinds []string
	for _, p := range np.Spec.Egress[0].To {
		switch {
		case p.IPBlock != nil:
			kinds = append(kinds, "range "+p.IPBlock.CIDR)
		case p.NamespaceSelector != nil:
			kinds = append(kinds, "upstream "+p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
		default:
			kinds = append(kinds, "own group "+p.PodSelector.MatchLabels["meshrr.io/group-name"])
		}
	}
	assert.Equal(t, []string{"own group lothlorien", "upstream core", "range 172.18.101.0/24"}, kinds)
	var apiPorts []int32
	for _, p := range np.Spec.Egress[1].Ports {
		apiPorts = append(apiPorts, p.Port.IntVal)
	}
	assert.Equal(t, []int32{443, 6443}, apiPorts)
	assert.Empty(t, np.Spec.Egress[1].To, "any address on the API server's ports unless named")
	metrics := np.Spec.Ingress[1].From
	require.Len(t, metrics, 1)
	sel, err := metav1.LabelSelectorAsSelector(metrics[0].PodSelector)
	require.NoError(t, err)
	assert.True(t, sel.Matches(labels.Set{"app.kubernetes.io/name": "prometheus"}))
	assert.False(t, sel.Matches(labels.Set{"app": "web"}), "the metrics port for Prometheus only")

	named := all[*networkingv1.NetworkPolicy](render(t, "lothlorien", "lothlorien", files, map[string]string{"networkPolicy.apiServer.cidrs[0]": "172.18.0.2/32"}))[0]
	require.Len(t, named.Spec.Egress[1].To, 1)
	assert.Equal(t, "172.18.0.2/32", named.Spec.Egress[1].To[0].IPBlock.CIDR)
}

// A Deployment or StatefulSet RR leaves a node that stopped answering
// after nodeLossTolerationSeconds, not Kubernetes' 300 s; a DaemonSet RR
// gets no such toleration (Kubernetes never evicts it for that); an
// operator's own toleration of either key wins, and null restores
// Kubernetes' default.
func TestNodeLossTolerationsAreShortAndOverridable(t *testing.T) {
	nodeLoss := func(w workload) map[string]string {
		out := map[string]string{}
		for _, tol := range w.template.Spec.Tolerations {
			if strings.HasPrefix(tol.Key, "node.kubernetes.io/") {
				secs := "forever"
				if tol.TolerationSeconds != nil {
					secs = fmt.Sprint(*tol.TolerationSeconds)
				}
				out[tol.Key] = string(tol.Effect) + " " + secs
			}
		}
		return out
	}
	both := map[string]string{"node.kubernetes.io/not-ready": "NoExecute 30", "node.kubernetes.io/unreachable": "NoExecute 30"}
	for _, kind := range []string{"Deployment", "StatefulSet"} {
		r := render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{"groups.core.kind": kind})
		ws := workloads(r)
		require.Len(t, ws, 2)
		for _, w := range ws {
			assert.Equal(t, kind, w.kind)
			assert.Equal(t, both, nodeLoss(w), w.name)
		}
	}
	ds := render(t, "edge", "edge", nil, map[string]string{"groups.edge.identity.asn": "65000", "groups.edge.kind": "DaemonSet"})
	require.Len(t, workloads(ds), 1)
	for _, w := range workloads(ds) {
		assert.Equal(t, "DaemonSet", w.kind)
		assert.Empty(t, nodeLoss(w), "%s: the DaemonSet controller tolerates node loss for its pods", w.name)
	}
	own := render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.nodeLossTolerationSeconds": "45",
		"groups.core.tolerations[0].key":        "node.kubernetes.io/unreachable", "groups.core.tolerations[0].operator": "Exists",
		"groups.core.tolerations[0].effect": "NoExecute", "groups.core.tolerations[0].tolerationSeconds": "120",
		"groups.core.tolerations[1].key": "dedicated", "groups.core.tolerations[1].operator": "Exists",
	})
	for _, w := range workloads(own) {
		assert.Equal(t, map[string]string{"node.kubernetes.io/not-ready": "NoExecute 45", "node.kubernetes.io/unreachable": "NoExecute 120"}, nodeLoss(w))
		assert.Len(t, w.template.Spec.Tolerations, 3, "the operator's own stay")
	}
	off := render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{"groups.core.nodeLossTolerationSeconds": "null"})
	for _, w := range workloads(off) {
		assert.Empty(t, nodeLoss(w), "null: Kubernetes' default (300 s, added by its admission)")
	}
}

// A DaemonSet requires the absence of the uninstall hook's node label, a
// term of its own manifest: the hook turns it into Exists to stop the
// DaemonSet, and helm rollback sets it back (the hook's own patch, of
// uninstall.NoNodeLabel, is tested in agent/internal/uninstall against
// Helm's merge).
func TestDaemonSetsCarryTheTermTheUninstallHookTurns(t *testing.T) {
	f := filepath.Join(t.TempDir(), "values.yaml")
	require.NoError(t, os.WriteFile(f, []byte("groups:\n  e: {kind: DaemonSet, identity: {asn: 65000}, sides: {a: {}, b: {}}}\n"), 0o600))
	ds := render(t, "edge", "edge", []string{f}, nil)
	ws := workloads(ds)
	require.Len(t, ws, 2)
	for _, w := range ws {
		terms := w.template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		require.Len(t, terms, 1)
		assert.Contains(t, terms[0].MatchExpressions, corev1.NodeSelectorRequirement{Key: "meshrr.io/uninstalling", Operator: corev1.NodeSelectorOpDoesNotExist}, w.name)
		assert.Len(t, terms[0].MatchExpressions, 2, "%s: and its side", w.name)
	}
	dep := render(t, "edge", "edge", nil, map[string]string{"groups.e.identity.asn": "65000"})
	for _, w := range workloads(dep) {
		assert.Nil(t, w.template.Spec.Affinity.NodeAffinity, "%s: only DaemonSets are stopped that way", w.name)
	}
}

// A digest in the values pins every container of the release, hooks
// included, to that image (repository:tag@digest); without one the reference
// is repository:tag, the tag defaulting to the chart's appVersion.
func TestImageDigestPinsEveryContainer(t *testing.T) {
	agent := "sha256:" + strings.Repeat("a1", 32)
	bird := "sha256:" + strings.Repeat("b2", 32)
	files := []string{example("2regions-hrr", "values.yaml"), example("2regions-hrr", "values-lothlorien.yaml")}
	for _, tc := range []struct {
		name      string
		set       map[string]string
		wantAgent string
		wantBird  string
	}{
		{"pinned", map[string]string{"images.agent.repository": "reg.example/meshrr/agent", "images.agent.tag": "1.2.3", "images.agent.digest": agent, "images.bird.digest": bird},
			"reg.example/meshrr/agent:1.2.3@" + agent, "meshrr/bird:dev@" + bird},
		{"by tag", nil, "meshrr/agent:dev", "meshrr/bird:dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, "x", "meshrr", files, tc.set)
			var specs []corev1.PodSpec
			for _, w := range workloads(r) {
				specs = append(specs, w.template.Spec)
			}
			for _, j := range all[*batchv1.Job](r) {
				specs = append(specs, j.Spec.Template.Spec)
			}
			seen := map[string]int{}
			for _, s := range specs {
				for _, c := range append(append([]corev1.Container{}, s.InitContainers...), s.Containers...) {
					switch {
					case strings.Contains(c.Image, "/agent"):
						assert.Equal(t, tc.wantAgent, c.Image, c.Name)
						seen["agent"]++
					case strings.Contains(c.Image, "/bird"):
						assert.Equal(t, tc.wantBird, c.Image, c.Name)
						seen["bird"]++
					default:
						t.Errorf("container %s runs %s, neither of the chart's images", c.Name, c.Image)
					}
				}
			}
			assert.Positive(t, seen["agent"])
			assert.Positive(t, seen["bird"])
		})
	}
}

// backend.bird.version 3 runs images.bird3 in the group's BIRD container
// and tells the agent the line; the init and agent containers get the
// BIRD container's CPUs (the downward API's limits.cpu in whole CPUs) for
// BIRD 3's default threads, and threads set in values reach the agent. A
// group left on BIRD 2 is unchanged: images.bird, no CPUs variable.
func TestBIRD3GroupRunsImagesBird3(t *testing.T) {
	files := []string{example("2regions-hrr", "values.yaml"), example("2regions-hrr", "values-lothlorien.yaml")}
	for _, tc := range []struct {
		set     map[string]string
		image   string
		version int
		threads int
		cpus    bool
	}{
		{nil, "meshrr/bird:dev", 2, 0, false},
		{map[string]string{"defaults.backend.bird.version": "3"}, "meshrr/bird3:dev", 3, 0, true},
		{map[string]string{"defaults.backend.bird.version": "3", "defaults.backend.bird.threads": "4", "images.bird3.repository": "example.test/bird3", "images.bird3.tag": "1.2.3"}, "example.test/bird3:1.2.3", 3, 4, true},
	} {
		r := render(t, "lothlorien", "lothlorien", files, tc.set)
		checkRelease(t, r)
		ws := workloads(r)
		require.NotEmpty(t, ws)
		for _, w := range ws {
			spec := w.template.Spec
			for _, c := range spec.Containers {
				if c.Name == "bird" {
					assert.Equal(t, tc.image, c.Image, "%s", w.name)
				}
			}
			for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
				if c.Name != "agent" && c.Name != "init" {
					continue
				}
				var cpus *corev1.EnvVar
				for i := range c.Env {
					if c.Env[i].Name == config.BirdCPUsEnv {
						cpus = &c.Env[i]
					}
				}
				if !tc.cpus {
					assert.Nil(t, cpus, "%s/%s", w.name, c.Name)
					continue
				}
				if assert.NotNil(t, cpus, "%s/%s", w.name, c.Name) && assert.NotNil(t, cpus.ValueFrom) {
					ref := cpus.ValueFrom.ResourceFieldRef
					assert.Equal(t, "bird", ref.ContainerName)
					assert.Equal(t, "limits.cpu", ref.Resource)
					assert.Equal(t, "1", ref.Divisor.String())
				}
			}
		}
		for name, c := range agentConfigs(t, r) {
			assert.Equal(t, tc.version, c.Backend.Bird.Version, name)
			assert.Equal(t, tc.threads, c.Backend.Bird.Threads, name)
		}
	}
	// threads with BIRD 2: the agent refuses it, and so the values check
	cfgs, err := groupConfigs(t, map[string]string{"groups.core.identity.asn": "65000", "groups.core.backend.bird.threads": "4"}, nil, false)
	require.NoError(t, err)
	err = agentAccepts(cfgs)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "backend.bird.threads")
	assert.Contains(t, err.Error(), "BIRD 3 only: set backend.bird.version to 3, or remove threads")
}
