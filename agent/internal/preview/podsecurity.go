package preview

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// PodRefusal is a workload whose new pods the namespace's Pod Security
// admission refuses: its controller cannot create them, so a roll stops
// (helm upgrade --wait times out) a pod short where the old pod goes first
// (a DaemonSet, a StatefulSet), and a scale-out adds none.
type PodRefusal struct {
	Workload string `json:"workload"` // Kind/name
	Group    string `json:"group"`
	// Why: the enforced level and what in the pod template it forbids, as
	// the admission says it.
	Why string `json:"why"`
}

var evaluator = sync.OnceValues(func() (policy.Evaluator, error) {
	return policy.NewEvaluator(policy.DefaultChecks(), nil)
})

// PodSecurity checks the pod templates of the workloads that create pods
// in this upgrade (the ones that roll, are added or scale out) against the
// Pod Security level the namespace's labels enforce (nsLabels;
// pod-security.kubernetes.io/enforce and enforce-version), with Kubernetes'
// own checks. A namespace without the label is taken as privileged: the
// cluster's admission defaults are not readable here.
func PodSecurity(nsLabels map[string]string, old, new []Object) ([]PodRefusal, psaapi.LevelVersion, error) {
	privileged := psaapi.LevelVersion{Level: psaapi.LevelPrivileged, Version: psaapi.LatestVersion()}
	pol, errs := psaapi.PolicyToEvaluate(nsLabels, psaapi.Policy{Enforce: privileged, Audit: privileged, Warn: privileged})
	if len(errs) > 0 {
		return nil, pol.Enforce, fmt.Errorf("the namespace's Pod Security labels: %w", errs.ToAggregate())
	}
	if pol.Enforce.Level == psaapi.LevelPrivileged {
		return nil, pol.Enforce, nil
	}
	eval, err := evaluator()
	if err != nil {
		return nil, pol.Enforce, err
	}
	creates := map[string]bool{}
	for _, r := range Rolls(old, new) {
		creates[r.Workload] = true
	}
	for _, s := range Scales(old, new) {
		creates[s.Workload] = creates[s.Workload] || s.To > s.From
	}
	was := map[string]bool{}
	for _, o := range old {
		was[o.ID()] = true
	}
	var out []PodRefusal
	for _, o := range new {
		if !slices.Contains(workloadKinds, o.Kind()) || was[o.ID()] && !creates[o.ID()] {
			continue
		}
		b, err := json.Marshal(template(o))
		if err != nil {
			return nil, pol.Enforce, err
		}
		var tmpl corev1.PodTemplateSpec
		if err := json.Unmarshal(b, &tmpl); err != nil {
			return nil, pol.Enforce, fmt.Errorf("%s's pod template: %w", o.ID(), err)
		}
		res := policy.AggregateCheckResults(eval.EvaluatePod(pol.Enforce, &tmpl.ObjectMeta, &tmpl.Spec))
		if !res.Allowed {
			out = append(out, PodRefusal{Workload: o.ID(), Group: o.Label(LabelGroupName),
				Why: fmt.Sprintf("PodSecurity %q: %s", pol.Enforce.String(), res.ForbiddenDetail())})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Workload < out[j].Workload })
	return out, pol.Enforce, nil
}
