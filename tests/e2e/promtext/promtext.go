// Package promtext reads a Prometheus text exposition (an agent's
// /metrics as the e2e suites fetch it) with Prometheus' own parser.
package promtext

import (
	"fmt"
	"math"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Parse returns the exposition's metric families by name.
func Parse(text string) (map[string]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	// the format ends with a newline, which kubectl's output as terratest
	// returns it has lost
	fams, err := parser.TextToMetricFamilies(strings.NewReader(strings.TrimRight(text, "\n") + "\n"))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return fams, nil
}

// Value is the value of one counter, gauge or untyped sample: the metric
// name with every label of labels (name, value pairs) as given.
func Value(text, name string, labels ...string) (float64, error) {
	fams, err := Parse(text)
	if err != nil {
		return 0, err
	}
	fam, ok := fams[name]
	if !ok {
		return 0, fmt.Errorf("no %s in the metrics", name)
	}
	for _, m := range fam.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), nil
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), nil
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), nil
		}
		return 0, fmt.Errorf("%s%v is neither a counter, a gauge nor untyped", name, labels)
	}
	return 0, fmt.Errorf("no %s%v in the metrics", name, labels)
}

func hasLabels(m *dto.Metric, labels []string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for i := 0; i+1 < len(labels); i += 2 {
		if have[labels[i]] != labels[i+1] {
			return false
		}
	}
	return true
}

// Buckets returns a histogram's cumulative counts by upper bound, +Inf
// (the sample count) included, summed over its series.
func Buckets(text, name string) (map[float64]float64, error) {
	fams, err := Parse(text)
	if err != nil {
		return nil, err
	}
	fam, ok := fams[name]
	if !ok || fam.GetType() != dto.MetricType_HISTOGRAM {
		return nil, fmt.Errorf("no histogram %s in the metrics", name)
	}
	out := map[float64]float64{}
	for _, m := range fam.GetMetric() {
		h := m.GetHistogram()
		inf := false
		for _, b := range h.GetBucket() {
			out[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			inf = inf || math.IsInf(b.GetUpperBound(), 1)
		}
		if !inf { // the text always has le="+Inf"; other sources may not
			out[math.Inf(1)] += float64(h.GetSampleCount())
		}
	}
	return out, nil
}

// Quantiles gives the upper bounds of the buckets holding the 50th and
// 99th percentiles, and the count, of cumulative buckets.
func Quantiles(b map[float64]float64) (p50, p99, count float64) {
	les := make([]float64, 0, len(b))
	for le := range b {
		les = append(les, le)
	}
	if len(les) == 0 {
		return 0, 0, 0
	}
	slices.Sort(les)
	count = b[les[len(les)-1]]
	p50, p99 = math.NaN(), math.NaN()
	for _, le := range les {
		if math.IsNaN(p50) && b[le] >= 0.5*count {
			p50 = le
		}
		if math.IsNaN(p99) && b[le] >= 0.99*count {
			p99 = le
		}
	}
	return p50, p99, count
}
