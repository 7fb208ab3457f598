package preview

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Object is one rendered Kubernetes object, as a tree of maps.
type Object map[string]any

// Kind, Name and Namespace of the object.
func (o Object) Kind() string      { return str(o, "kind") }
func (o Object) Name() string      { return str(o, "metadata", "name") }
func (o Object) Namespace() string { return str(o, "metadata", "namespace") }

// Label returns one of the object's labels.
func (o Object) Label(k string) string { return str(o, "metadata", "labels", k) }

// ID is kind/name.
func (o Object) ID() string { return o.Kind() + "/" + o.Name() }

func str(o map[string]any, path ...string) string {
	var v any = o
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

// ParseManifests reads the objects of a rendered chart: the output of helm
// template, helm get manifest, or helm upgrade --dry-run (whose release
// header, "HOOKS:"/"MANIFEST:" lines and NOTES are skipped). Hooks are
// left out: they run at the upgrade and are gone after it.
func ParseManifests(b []byte) ([]Object, error) {
	if i := bytes.Index(b, []byte("\nNOTES:\n")); i >= 0 {
		b = b[:i+1]
	}
	var out []Object
	for i, doc := range splitDocuments(b) {
		var lines []string
		for _, l := range strings.Split(doc, "\n") {
			if l != "HOOKS:" && l != "MANIFEST:" {
				lines = append(lines, l)
			}
		}
		doc = strings.Join(lines, "\n")
		var o Object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			if i == 0 && !strings.Contains(doc, "apiVersion:") {
				continue // helm upgrade --dry-run's release header
			}
			return nil, fmt.Errorf("rendered document %d: %w", i+1, err)
		}
		if o == nil || o.Kind() == "" {
			continue
		}
		if str(o, "metadata", "annotations", "helm.sh/hook") != "" {
			continue
		}
		out = append(out, o)
	}
	return out, nil
}

func splitDocuments(b []byte) []string {
	var docs []string
	var cur []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimRight(l, " ") == "---" {
			docs = append(docs, strings.Join(cur, "\n"))
			cur = nil
			continue
		}
		cur = append(cur, l)
	}
	return append(docs, strings.Join(cur, "\n"))
}

// LabelGroupName is the chart's label naming an object's group.
const LabelGroupName = "meshrr.io/group-name"

// GroupConfigs are the agent configurations of a release's groups by group
// name: the config.yaml of each ConfigMap labelled with its group.
func GroupConfigs(objs []Object) map[string][]byte {
	out := map[string][]byte{}
	for _, o := range objs {
		if o.Kind() != "ConfigMap" || o.Label(LabelGroupName) == "" {
			continue
		}
		if c := str(o, "data", "config.yaml"); c != "" {
			out[o.Label(LabelGroupName)] = []byte(c)
		}
	}
	return out
}

// Roll is a workload whose pod template changes: its pods are replaced,
// one at a time per side, each draining first.
type Roll struct {
	Workload string `json:"workload"` // Kind/name
	Group    string `json:"group"`
	Side     string `json:"side,omitempty"`
	// Changed are the pod template's fields that differ (dotted paths;
	// containers by name).
	Changed []string `json:"changed"`
}

var workloadKinds = []string{"Deployment", "DaemonSet", "StatefulSet"}

// Scale is a workload whose number of pods changes (spec.replicas; a
// DaemonSet follows its nodes and has none).
type Scale struct {
	Workload string `json:"workload"`
	Group    string `json:"group"`
	From     int    `json:"from"`
	To       int    `json:"to"`
}

// Scales compares the replicas of the workloads the two renderings share.
func Scales(old, new []Object) []Scale {
	was := map[string]Object{}
	for _, o := range old {
		was[o.ID()] = o
	}
	var out []Scale
	for _, o := range new {
		p, ok := was[o.ID()]
		if !ok || !slices.Contains(workloadKinds, o.Kind()) {
			continue
		}
		if a, b := replicas(p), replicas(o); a != b {
			out = append(out, Scale{Workload: o.ID(), Group: o.Label(LabelGroupName), From: a, To: b})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Workload < out[j].Workload })
	return out
}

func replicas(o Object) int {
	spec, _ := o["spec"].(map[string]any)
	switch n := spec["replicas"].(type) {
	case float64:
		return int(n)
	case int64:
		return int(n)
	}
	return 1 // the API's default
}

// Rolls compares the pod templates of the workloads the two renderings
// share. A workload only in new is created, one only in old deleted:
// neither is a roll.
func Rolls(old, new []Object) []Roll {
	was := map[string]Object{}
	for _, o := range old {
		if slices.Contains(workloadKinds, o.Kind()) {
			was[o.ID()] = o
		}
	}
	var out []Roll
	for _, o := range new {
		p, ok := was[o.ID()]
		if !ok {
			continue
		}
		a, b := template(p), template(o)
		if reflect.DeepEqual(a, b) {
			continue
		}
		out = append(out, Roll{Workload: o.ID(), Group: o.Label(LabelGroupName), Side: o.Label("meshrr.io/side"), Changed: diffPaths("", normalize(a), normalize(b))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Workload < out[j].Workload })
	return out
}

func template(o Object) any {
	spec, _ := o["spec"].(map[string]any)
	return spec["template"]
}

// normalize keys lists of named items (containers, volumes, env) by name.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range t {
			out[k] = normalize(x)
		}
		return out
	case []any:
		named := len(t) > 0
		for _, x := range t {
			if m, ok := x.(map[string]any); !ok || m["name"] == nil {
				named = false
			}
		}
		if !named {
			out := make([]any, len(t))
			for i, x := range t {
				out[i] = normalize(x)
			}
			return out
		}
		out := map[string]any{}
		for _, x := range t {
			m := x.(map[string]any)
			out["["+fmt.Sprint(m["name"])+"]"] = normalize(m)
		}
		return out
	}
	return v
}

func diffPaths(at string, a, b any) []string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if !aok || !bok {
		if reflect.DeepEqual(a, b) {
			return nil
		}
		return []string{at}
	}
	keys := map[string]bool{}
	for k := range am {
		keys[k] = true
	}
	for k := range bm {
		keys[k] = true
	}
	var out []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			if !yield(k) {
				return
			}
		}
	}) {
		p := k
		if at != "" {
			p = at + "." + k
		}
		if strings.HasPrefix(k, "[") {
			p = at + k
		}
		out = append(out, diffPaths(p, am[k], bm[k])...)
	}
	return out
}
