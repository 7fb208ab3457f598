package chart

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/logger"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/meshrr/meshrr/agent/config"
)

// The agent's validation is the authority on what it accepts; the chart's
// schema only rejects early. For every bounded number in the schema this
// test asks both at the boundaries (min-1, min, max, max+1; for a number
// without a maximum a value of 2^40; the value a `not const` excludes) and
// requires the same answer: a value the schema accepts renders and the
// agent accepts every group's configuration; a value the schema rejects is
// rejected by the agent too (rendered with the schema skipped). A field
// whose value never reaches an agent configuration (replicas, probes,
// MetalLB) is the chart's alone: there the schema's accepted boundaries
// must render.
//
// A new bounded field needs nothing here unless it depends on another
// field (then add that to agreementContext).
func TestSchemaAndAgentAgreeAtEveryBound(t *testing.T) {
	var schema map[string]any
	b, err := os.ReadFile(filepath.Join(chartPath, "values.schema.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &schema))
	fields := boundedFields(schema, schema, "", 0)
	require.NotEmpty(t, fields)
	t.Logf("%d bounded fields in the schema", len(fields))
	for _, f := range fields {
		t.Run(f.path, func(t *testing.T) {
			t.Parallel()
			checkAgreement(t, f)
		})
	}
}

// boundedField is one number of the values with its schema bounds.
type boundedField struct {
	path    string // --set path, e.g. groups.core.clients.r.multihop
	integer bool
	min     *float64
	exclMin bool
	max     *float64
	not     *float64
}

// agreementContext: values a field needs beside it to be meaningful
// (every matching prefix applies; the group's AS number always does). The
// group is "core", a client group "r", a side "a".
var agreementContext = map[string]map[string]string{
	"groups.core.upstream.":                     {"groups.core.upstream.group": "x", "groups.core.upstream.release": "other"},
	"groups.core.upstream.bfd.":                 {"groups.core.upstream.bfd.enabled": "true"},
	"groups.core.mesh.bfd.":                     {"groups.core.mesh.bfd.enabled": "true"},
	"groups.core.clients.r.":                    {"groups.core.clients.r.ranges[0]": "10.0.0.0/8"},
	"groups.core.clients.r.bfd.":                {"groups.core.clients.r.bfd.enabled": "true"},
	"groups.core.clients.r.export.prefixes[0].": {"groups.core.clients.r.export.prefixes[0].prefix": "::/0", "groups.core.clients.r.export.tier": "partial"},
	"groups.core.policy[0].":                    {"groups.core.policy[0].name": "x", "groups.core.policy[0].towards[0]": "r", "groups.core.policy[0].action": "accept", "groups.core.clients.r.ranges[0]": "10.0.0.0/8", "groups.core.clients.r.type": "external", "groups.core.clients.r.peerASNs[0]": "65100-65199"},
	"groups.core.policy[0].matchPrefixes[0].":   {"groups.core.policy[0].matchPrefixes[0].prefix": "::/0"},
	"groups.core.timers.hold":                   {"groups.core.timers.keepalive": "1"},
	"groups.core.timers.keepalive":              {"groups.core.timers.hold": "65535"},
	"groups.core.timers.errorWaitMin":           {"groups.core.timers.errorWaitMax": "65535"},
	"groups.core.timers.errorWaitMax":           {"groups.core.timers.errorWaitMin": "1"},
	"groups.core.backend.bird.threads":          {"groups.core.backend.bird.version": "3"},
	"groups.core.gracefulRestart.staleTime":     {"groups.core.gracefulRestart.longLived": "true"},
	"groups.core.backend.crpd.":                 {"groups.core.backend.type": "crpd", "groups.core.backend.crpd.image": "crpd:x", "groups.core.backend.crpd.licenseSecret.name": "lic"},
	"groups.core.sides.a.":                      {"groups.core.sides.a.loadBalancerIP": "192.0.2.1"},
	"metallb.":                                  {"metallb.enabled": "true"},
	"metallb.peers[0].":                         {"metallb.peers[0].peerAddress": "192.0.2.2", "metallb.peers[0].name": "tor"},
	"prometheusRule.":                           {"prometheusRule.enabled": "true"},
}

// chartOnly: fields the chart turns into something else before the agent
// sees them, so the agent cannot refuse their values; the schema alone does.
var chartOnly = map[string]string{
	"groups.core.replicas":         "the chart derives drain.waitForPeers (more than one pod) from the count",
	"groups.core.sides.a.replicas": "the chart derives drain.waitForPeers (more than one pod) from the count",
}

// entryNames: the key the test uses under a map of named entries.
var entryNames = map[string]string{"groups": "core", "clients": "r", "sides": "a"}

func boundedFields(root, n map[string]any, path string, depth int) []boundedField {
	if depth > 12 {
		return nil
	}
	if ref, ok := n["$ref"].(string); ok {
		def := root
		for _, p := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			def = def[p].(map[string]any)
		}
		return boundedFields(root, def, path, depth+1)
	}
	var out []boundedField
	if f, ok := numberField(n, path); ok {
		out = append(out, f)
	}
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	if props, ok := n["properties"].(map[string]any); ok {
		for _, k := range sortedKeys(props) {
			if path == "" && k == "defaults" {
				continue // the same definition as every group's, reached through groups
			}
			out = append(out, boundedFields(root, props[k].(map[string]any), join(k), depth+1)...)
		}
	}
	if pp, ok := n["patternProperties"].(map[string]any); ok {
		last := path[strings.LastIndex(path, ".")+1:]
		for _, k := range sortedKeys(pp) {
			out = append(out, boundedFields(root, pp[k].(map[string]any), join(entryNames[last]), depth+1)...)
		}
	}
	if items, ok := n["items"].(map[string]any); ok {
		out = append(out, boundedFields(root, items, path+"[0]", depth+1)...)
	}
	return out
}

func numberField(n map[string]any, path string) (boundedField, bool) {
	types := []string{}
	switch ty := n["type"].(type) {
	case string:
		types = append(types, ty)
	case []any:
		for _, x := range ty {
			types = append(types, x.(string))
		}
	}
	f := boundedField{path: path, integer: slices.Contains(types, "integer")}
	if !f.integer && !slices.Contains(types, "number") {
		return f, false
	}
	num := func(k string) *float64 {
		if v, ok := n[k].(float64); ok {
			return &v
		}
		return nil
	}
	f.min, f.max = num("minimum"), num("maximum")
	if v := num("exclusiveMinimum"); v != nil {
		f.min, f.exclMin = v, true
	}
	if not, ok := n["not"].(map[string]any); ok {
		if v, ok := not["const"].(float64); ok {
			f.not = &v
		}
	}
	return f, f.min != nil || f.max != nil
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// probes: the values to ask about, each with whether the schema should
// accept it by its own bounds.
func (f boundedField) probes() []float64 {
	step := 1.0
	if !f.integer {
		step = 0.01
	}
	var out []float64
	if f.min != nil {
		if f.exclMin {
			out = append(out, *f.min, *f.min+step)
		} else {
			out = append(out, *f.min-step, *f.min)
		}
	}
	if f.max != nil {
		out = append(out, *f.max, *f.max+step)
	} else {
		out = append(out, math.Exp2(40))
	}
	if f.not != nil {
		out = append(out, *f.not)
	}
	return out
}

func format(v float64, integer bool) string {
	if integer {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func (f boundedField) context() map[string]string {
	set := map[string]string{"groups.core.identity.asn": "65000"}
	for prefix, kv := range agreementContext {
		if strings.HasPrefix(f.path, prefix) {
			for k, v := range kv {
				set[k] = v
			}
		}
	}
	delete(set, f.path) // the probe sets it
	return set
}

// groupConfigs renders the chart and returns every group's agent
// configuration; skipSchema renders what the schema would have refused.
func groupConfigs(t *testing.T, set, setJSON map[string]string, skipSchema bool) (map[string]string, error) {
	opts := &helm.Options{SetValues: set, SetJsonValues: setJSON, KubectlOptions: k8s.NewKubectlOptions("", "", "core"), Logger: logger.Discard}
	var extra []string
	if skipSchema {
		extra = append(extra, "--skip-schema-validation")
	}
	out, err := helm.RenderTemplateE(t, opts, chartPath, "core", nil, extra...)
	if err != nil {
		return nil, err
	}
	cfgs := map[string]string{}
	decode := scheme.Codecs.UniversalDeserializer()
	for _, doc := range strings.Split(out, "\n---") {
		if !strings.Contains(doc, "\nkind: ConfigMap") || !strings.Contains(doc, "meshrr.io/group-name:") {
			continue
		}
		obj, _, err := decode.Decode([]byte(doc), nil, nil)
		require.NoError(t, err)
		cm := obj.(*corev1.ConfigMap)
		cfgs[cm.Labels["meshrr.io/group-name"]] = cm.Data["config.yaml"]
	}
	require.NotEmpty(t, cfgs, "no group ConfigMap rendered")
	return cfgs, nil
}

// agentAccepts: the agent's own validation of every group's configuration.
func agentAccepts(cfgs map[string]string) error {
	for g, c := range cfgs {
		if _, err := config.Parse([]byte(c)); err != nil {
			return fmt.Errorf("group %s: %w", g, err)
		}
	}
	return nil
}

func checkAgreement(t *testing.T, f boundedField) {
	type answer struct {
		value      string
		schemaErr  error
		agentErr   error
		cfgs       map[string]string
		chartRefus error // the templates refused with the schema skipped
	}
	var answers []answer
	for _, v := range f.probes() {
		a := answer{value: format(v, f.integer)}
		set := f.context()
		// --set-json: --set would make 0.5 a string
		js := map[string]string{f.path: a.value}
		a.cfgs, a.schemaErr = groupConfigs(t, set, js, false)
		if a.schemaErr != nil {
			a.cfgs, a.chartRefus = groupConfigs(t, set, js, true)
		}
		if a.cfgs != nil {
			a.agentErr = agentAccepts(a.cfgs)
		}
		answers = append(answers, a)
	}
	// the agent sees the field when two values the schema accepts render
	// different configurations
	var accepted []answer
	for _, a := range answers {
		if a.schemaErr == nil {
			accepted = append(accepted, a)
		}
	}
	require.NotEmpty(t, accepted, "the schema accepts none of the probes (%v): add what %s needs to agreementContext", answers[len(answers)-1].schemaErr, f.path)
	agentSees := false
	for _, a := range accepted[1:] {
		if _, ok := chartOnly[f.path]; ok {
			break
		}
		if !mapsEqual(a.cfgs, accepted[0].cfgs) {
			agentSees = true
		}
	}
	for _, a := range answers {
		if !agentSees {
			// the chart's alone: whatever the schema accepts renders (it did)
			continue
		}
		switch {
		case a.schemaErr == nil && a.agentErr != nil:
			t.Errorf("%s=%s: the schema accepts it, the agent refuses it: %v", f.path, a.value, a.agentErr)
		case a.schemaErr != nil && a.chartRefus == nil && a.agentErr == nil:
			t.Errorf("%s=%s: the schema refuses it (%v), the agent accepts it", f.path, a.value, firstLine(a.schemaErr))
		}
	}
	kind := "chart only"
	if agentSees {
		kind = "agent"
	}
	var vs []string
	for _, a := range answers {
		mark := "ok"
		if a.schemaErr != nil {
			mark = "refused"
		}
		vs = append(vs, a.value+":"+mark)
	}
	t.Logf("%s (%s): %s", f.path, kind, strings.Join(vs, " "))
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func firstLine(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
