package promtext

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exposition is what client_golang itself writes for a registry, the way
// the agent's /metrics does, without its final newline (as kubectl's
// output reaches the suites).
func exposition(t *testing.T, observe func(*prometheus.Registry)) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	observe(reg)
	fams, err := reg.Gather()
	require.NoError(t, err)
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		require.NoError(t, enc.Encode(f))
	}
	return strings.TrimRight(buf.String(), "\n")
}

func TestValueFindsTheSampleWithTheLabelsGiven(t *testing.T) {
	text := exposition(t, func(r *prometheus.Registry) {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshrr_sessions", Help: "h"}, []string{"group", "state"})
		g.WithLabelValues("mesh", "Established").Set(4)
		g.WithLabelValues("mesh", "Active").Set(1)
		g.WithLabelValues("upstream", "Established").Set(2)
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "meshrr_daemon_restarts_total", Help: "h"})
		c.Add(3)
		r.MustRegister(g, c)
	})
	v, err := Value(text, "meshrr_sessions", "group", "mesh", "state", "Active")
	require.NoError(t, err)
	assert.Equal(t, 1.0, v)
	v, err = Value(text, "meshrr_sessions", "group", "upstream")
	require.NoError(t, err)
	assert.Equal(t, 2.0, v)
	v, err = Value(text, "meshrr_daemon_restarts_total")
	require.NoError(t, err)
	assert.Equal(t, 3.0, v)

	_, err = Value(text, "meshrr_sessions", "group", "clients")
	assert.ErrorContains(t, err, "no meshrr_sessions[group clients]")
	_, err = Value(text, "meshrr_nosuch")
	assert.ErrorContains(t, err, "no meshrr_nosuch")
	_, err = Value("meshrr_x{ 1\n", "meshrr_x")
	assert.Error(t, err, "a broken exposition is an error, not a zero")
}

func TestBucketsAndQuantilesOfAHistogram(t *testing.T) {
	text := exposition(t, func(r *prometheus.Registry) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "meshrr_reconcile_duration_seconds", Help: "h", Buckets: []float64{0.01, 0.1, 1}})
		for _, v := range []float64{0.005, 0.005, 0.05, 0.05, 0.05, 0.5, 0.5, 0.5, 0.5, 5} {
			h.Observe(v)
		}
		r.MustRegister(h)
	})
	b, err := Buckets(text, "meshrr_reconcile_duration_seconds")
	require.NoError(t, err)
	assert.Equal(t, map[float64]float64{0.01: 2, 0.1: 5, 1: 9, math.Inf(1): 10}, b)
	p50, p99, n := Quantiles(b)
	assert.Equal(t, 0.1, p50)
	assert.Equal(t, math.Inf(1), p99)
	assert.Equal(t, 10.0, n)

	_, err = Buckets(text, "meshrr_apply_duration_seconds")
	assert.Error(t, err)
	p50, p99, n = Quantiles(nil)
	assert.Zero(t, p50+p99+n)
}
