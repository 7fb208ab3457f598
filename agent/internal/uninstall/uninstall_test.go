package uninstall

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes/fake"
)

// Bad flags name the flag and what to give (the behaviour against a real
// API server is the e2e suite's: helm uninstall of a region).
func TestValidateNamesTheFlag(t *testing.T) {
	ok := Options{Namespace: "core", Selector: "app.kubernetes.io/instance=core", Timeout: time.Minute}
	assert.NoError(t, ok.Validate())
	for flag, o := range map[string]Options{
		"--namespace": {Selector: ok.Selector, Timeout: time.Minute},
		"--selector":  {Namespace: "core", Timeout: time.Minute},
		"--timeout":   {Namespace: "core", Selector: ok.Selector},
	} {
		err := o.Validate()
		if assert.Error(t, err, flag) {
			assert.Contains(t, err.Error(), flag)
		}
	}
	bad := ok
	bad.Selector = "app in (("
	if err := bad.Validate(); assert.Error(t, err) {
		assert.Contains(t, err.Error(), "--selector")
	}
}

// The hook stops a DaemonSet by turning a term of its manifest into its
// opposite; Helm's three-way merge (the one `helm rollback` and `helm
// upgrade` apply: original and target manifests, the live object) sets it
// back, so an interrupted uninstall is undone. A key the manifest lacks
// would stay: the hook used to add a nodeSelector, which Helm kept.
func TestAStoppedDaemonSetIsRestoredByHelmsThreeWayMerge(t *testing.T) {
	manifest := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "rr", Namespace: "core"}, Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		NodeSelector: map[string]string{"meshrr_region_core": "true"},
		Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: "redundancy_group", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}},
				{Key: NoNodeLabel, Operator: corev1.NodeSelectorOpDoesNotExist},
			}}},
		}}},
	}}}}
	client := fake.NewClientset(manifest.DeepCopy())
	require.NoError(t, stopDaemonSet(context.Background(), client, manifest))
	live, err := client.AppsV1().DaemonSets("core").Get(context.Background(), "rr", metav1.GetOptions{})
	require.NoError(t, err)
	terms := func(d *appsv1.DaemonSet) []corev1.NodeSelectorTerm {
		return d.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	}
	assert.Equal(t, []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: NoNodeLabel, Operator: corev1.NodeSelectorOpExists}}}}, terms(live),
		"stopped: only nodes with the label, which none has")

	// helm rollback / upgrade with the same manifest
	orig, err := json.Marshal(manifest)
	require.NoError(t, err)
	cur, err := json.Marshal(live)
	require.NoError(t, err)
	meta, err := strategicpatch.NewPatchMetaFromStruct(appsv1.DaemonSet{})
	require.NoError(t, err)
	patch, err := strategicpatch.CreateThreeWayMergePatch(orig, orig, cur, meta, true)
	require.NoError(t, err)
	restored, err := strategicpatch.StrategicMergePatch(cur, patch, appsv1.DaemonSet{})
	require.NoError(t, err)
	var back appsv1.DaemonSet
	require.NoError(t, json.Unmarshal(restored, &back))
	assert.Equal(t, terms(manifest), terms(&back), "Helm's merge sets the manifest's terms back: %s", patch)

	// what the hook did before: a nodeSelector key the manifest lacks
	old := manifest.DeepCopy()
	old.Spec.Template.Spec.NodeSelector[NoNodeLabel] = "true"
	cur, err = json.Marshal(old)
	require.NoError(t, err)
	patch, err = strategicpatch.CreateThreeWayMergePatch(orig, orig, cur, meta, true)
	require.NoError(t, err)
	restored, err = strategicpatch.StrategicMergePatch(cur, patch, appsv1.DaemonSet{})
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(restored, &back))
	assert.Equal(t, "true", back.Spec.Template.Spec.NodeSelector[NoNodeLabel], "the old way stays pinned after a rollback")
}
