package chart

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psa "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// podSpecs are every pod a release creates: its workloads' and its hook
// Jobs' pod templates, keyed by kind/name.
func podSpecs(r release) map[string]corev1.PodTemplateSpec {
	out := map[string]corev1.PodTemplateSpec{}
	for _, w := range workloads(r) {
		out[w.kind+"/"+w.name] = w.template
	}
	for _, j := range all[*batchv1.Job](r) {
		out["Job/"+j.Name] = j.Spec.Template
	}
	return out
}

// admission is what the Kubernetes Pod Security admission (its own
// evaluator, k8s.io/pod-security-admission, as the API server runs it)
// says of a pod at a level: "" when allowed, else its reasons.
func admission(t *testing.T, level psa.Level, pod corev1.PodTemplateSpec) string {
	t.Helper()
	e, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	require.NoError(t, err)
	meta := metav1.ObjectMeta{Labels: pod.Labels, Annotations: pod.Annotations}
	res := policy.AggregateCheckResults(e.EvaluatePod(psa.LevelVersion{Level: level, Version: psa.LatestVersion()}, &meta, &pod.Spec))
	if res.Allowed {
		return ""
	}
	return res.ForbiddenReason() + ": " + res.ForbiddenDetail()
}

// TestEveryExamplePassesPodSecurityRestricted: every pod every BIRD
// example creates (the RR workloads and the hook Jobs) is admitted in a
// namespace that enforces the Pod Security Standard "restricted", as the
// API server's own evaluator judges it; the e2e suites install them into
// such namespaces.
func TestEveryExamplePassesPodSecurityRestricted(t *testing.T) {
	for _, ex := range [][]string{
		{"2regions-hrr", "values-core.yaml"},
		{"2regions-hrr", "values.yaml", "values-lothlorien.yaml"},
		{"2regions-hrr", "values.yaml", "values-mirkwood.yaml"},
		{"route-servers", "values.yaml"},
		{"client-tiers", "values.yaml"},
		{"full-table", "values.yaml"},
	} {
		var files []string
		for _, f := range ex[1:] {
			files = append(files, example(ex[0], f))
		}
		r := render(t, "rel", "ns", files, nil)
		specs := podSpecs(r)
		require.NotEmpty(t, specs)
		jobs := 0
		for name, pod := range specs {
			assert.Empty(t, admission(t, psa.LevelRestricted, pod), "%s %s", strings.Join(ex, "/"), name)
			if strings.HasPrefix(name, "Job/") {
				jobs++
			}
		}
		assert.Equal(t, 2, jobs, "%v: the values check and the uninstall hook are judged too", ex)
	}
}

// TestPodSecurityExceptionsAreBFDAndCRPD: the two documented exceptions
// (docs/security.md) and nothing else: BIRD with BFD needs NET_ADMIN (as
// root), cRPD runs privileged; neither passes even "baseline", and their
// releases' hook Jobs still pass "restricted".
func TestPodSecurityExceptionsAreBFDAndCRPD(t *testing.T) {
	for what, set := range map[string]map[string]string{
		"bfd":  {"groups.core.mesh.bfd.enabled": "true"},
		"crpd": crpdCore(nil),
	} {
		r := render(t, "core", "core", []string{example("2regions-hrr", "values-core.yaml")}, set)
		for name, pod := range podSpecs(r) {
			if strings.HasPrefix(name, "Job/") {
				assert.Empty(t, admission(t, psa.LevelRestricted, pod), "%s: %s", what, name)
				continue
			}
			got := admission(t, psa.LevelBaseline, pod)
			assert.NotEmpty(t, got, "%s: %s", what, name)
			want := map[string]string{"bfd": `must not include "NET_ADMIN"`, "crpd": `privileged (container "crpd"`}[what]
			assert.Contains(t, got, want, fmt.Sprintf("%s: %s", what, name))
		}
	}
}
