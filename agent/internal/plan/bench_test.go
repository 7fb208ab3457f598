package plan

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// balanceSets builds n region RR IDs (Deployment-style pod names) and m core members on sides a/b.
func balanceSets(n, m int) ([]string, []Candidate) {
	r := rand.New(rand.NewPCG(1, 2))
	sibs := make([]string, n)
	for i := range sibs {
		sibs[i] = fmt.Sprintf("region-%d/rr-%08x-%05x", i%4, r.Uint32(), r.Uint32()&0xfffff)
	}
	cores := make([]Candidate, m)
	for i := range cores {
		side := []string{"a", "b"}[i%2]
		cores[i] = Candidate{ID: fmt.Sprintf("core/core-%s-%d", side, i/2), Side: side, Node: fmt.Sprintf("w%d", i)}
	}
	return sibs, cores
}

func maxOverMean(choices map[string][]string, members []Candidate) float64 {
	load := map[string]int{}
	total := 0
	for _, ids := range choices {
		for _, id := range ids {
			load[id]++
			total++
		}
	}
	mx := 0
	for _, c := range members {
		mx = max(mx, load[c.ID])
	}
	return float64(mx) / (float64(total) / float64(len(members)))
}

func moved(before, after map[string][]string) int {
	n := 0
	for s, ids := range after {
		for _, id := range ids {
			if !slices.Contains(before[s], id) {
				n++
			}
		}
	}
	return n
}

// TestBoundedAssignmentRespectsCapAndDiversity checks the invariants the
// benchmark's numbers rely on.
func TestBoundedAssignmentRespectsCapAndDiversity(t *testing.T) {
	sibs, cores := balanceSets(100, 8)
	a := AssignBounded(sibs, cores, 2, 0.1)
	assert.Equal(t, 28, a.Cap) // ceil(1.1 * 200 / 8)
	for _, c := range cores {
		assert.LessOrEqual(t, a.Load[c.ID], a.Cap)
	}
	side := map[string]string{}
	for _, c := range cores {
		side[c.ID] = c.Side
	}
	for s, ids := range a.Choices {
		if assert.Len(t, ids, 2, s) {
			assert.NotEqual(t, side[ids[0]], side[ids[1]], "%s uses one side twice", s)
		}
	}
	// uneven sides (5 a, 4 b): the scarce side serves more, every sibling
	// still has one member per side
	_, nine := balanceSets(100, 9)
	side9 := map[string]string{}
	for _, c := range nine {
		side9[c.ID] = c.Side
	}
	a9 := AssignBounded(sibs, nine, 2, 0.05)
	for s, ids := range a9.Choices {
		if assert.Len(t, ids, 2, s) {
			assert.NotEqual(t, side9[ids[0]], side9[ids[1]], "%s lost its side diversity", s)
		}
	}
	for _, c := range nine {
		assert.LessOrEqual(t, a9.Load[c.ID], a9.Caps[c.ID])
		if c.Side == "b" {
			assert.Greater(t, a9.Caps[c.ID], a9.Cap, "the scarce side may exceed the global cap")
		}
	}

	// more peers wanted than members: each sibling takes all of them
	few := AssignBounded(sibs[:3], cores[:1], 2, 0.1)
	for _, ids := range few.Choices {
		assert.Equal(t, []string{cores[0].ID}, ids)
	}
	assert.Empty(t, AssignBounded(sibs, nil, 2, 0.1).Choices)
}

// BenchmarkUpstreamBalance reports, for 100 region RRs choosing 2 of 8 core
// RRs, the busiest core's load over the mean for bounded-load rendezvous
// (default epsilon), plain rendezvous and random choice (mean and 95th
// percentile over 1000 draws), and how many of the 200 choices move when a
// 9th core RR appears (optimal k*N/(n+1) = 22). "sides" spreads the cores
// over sides a/b (the 9th makes them 5/4, so side diversity moves more);
// "flat" has no sides.
func BenchmarkUpstreamBalance(b *testing.B) {
	eps := config.DefaultEpsilon
	sibs, sided := balanceSets(100, 8)
	_, sided9 := balanceSets(100, 9)
	flat := func(cs []Candidate) []Candidate {
		out := slices.Clone(cs)
		for i := range out {
			out[i].Side, out[i].Node = "", ""
		}
		return out
	}
	for _, sc := range []struct {
		name   string
		c8, c9 []Candidate
	}{{"sides", sided, sided9}, {"flat", flat(sided), flat(sided9)}} {
		b.Run(sc.name, func(b *testing.B) {
			var bounded, bounded9, hrw float64
			var movedBounded, movedHRW int
			for b.Loop() {
				a8 := AssignBounded(sibs, sc.c8, 2, eps)
				a9 := AssignBounded(sibs, sc.c9, 2, eps)
				bounded = maxOverMean(a8.Choices, sc.c8)
				bounded9 = maxOverMean(a9.Choices, sc.c9)
				movedBounded = moved(a8.Choices, a9.Choices)
				h8 := AssignRendezvous(sibs, sc.c8, 2)
				hrw = maxOverMean(h8, sc.c8)
				movedHRW = moved(h8, AssignRendezvous(sibs, sc.c9, 2))
			}
			b.ReportMetric(bounded, "bounded-max/mean")
			b.ReportMetric(bounded9, "bounded-max/mean-9-cores")
			b.ReportMetric(hrw, "rendezvous-max/mean")
			b.ReportMetric(float64(movedBounded), "bounded-moved-on-9th")
			b.ReportMetric(float64(movedHRW), "rendezvous-moved-on-9th")
		})
	}
	b.Run("random", func(b *testing.B) {
		var mean, p95 float64
		for b.Loop() {
			r := rand.New(rand.NewPCG(3, 4))
			draws := make([]float64, 0, 1000)
			for range 1000 {
				choices := map[string][]string{}
				for _, s := range sibs {
					for _, i := range r.Perm(len(sided))[:2] {
						choices[s] = append(choices[s], sided[i].ID)
					}
				}
				draws = append(draws, maxOverMean(choices, sided))
			}
			slices.Sort(draws)
			var sum float64
			for _, d := range draws {
				sum += d
			}
			mean, p95 = sum/float64(len(draws)), draws[949]
		}
		b.ReportMetric(mean, "random-max/mean")
		b.ReportMetric(p95, "random-p95-max/mean")
	})
}

// BenchmarkPlan2000Peers50Groups plans one pod of a 40-member group that is
// also a client of a 40-member core, with 2,000 members in 50 groups
// discovered.
func BenchmarkPlan2000Peers50Groups(b *testing.B) {
	cfg := mustConfig(b, `
apiVersion: meshrr.io/v1alpha1
kind: AgentConfig
identity: {asn: 65000}
mesh: {group: g0}
upstream: {group: g1, maxPeers: 2}
clients: [{name: routers, ranges: [10.0.0.0/8, "fd00::/8"]}]
policy: [{name: r, towards: [upstream], matchCommunities: ["65000:101"], action: reject}]
`)
	var snap model.Snapshot
	snap.Synced = true
	for g := range 50 {
		for i := range 40 {
			m := model.Member{
				Namespace: "ns", Group: fmt.Sprintf("g%d", g), Pod: fmt.Sprintf("g%d-%d", g, i),
				Side: []string{"a", "b"}[i%2], Node: fmt.Sprintf("w%d", i%7),
				Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, byte(g), byte(i), 1}), netip.AddrFrom16([16]byte{0xfd, 0, 15: byte(g), 14: byte(i)})},
			}
			if g != 1 {
				m.UpstreamGroup = "g1"
			}
			snap.Members = append(snap.Members, m)
		}
	}
	in := Input{Config: cfg, Self: Self{Name: "g0-0", Namespace: "ns", Addrs: snap.Members[0].Addrs}, Snapshot: snap}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAllowList10000Exclusions subtracts 5,000 /32 and 5,000 /128
// peers from 10.0.0.0/8 and fd00::/8. "podCIDR": peers are pod addresses
// as Kubernetes allocates them (a /24 per node from 10.244.0.0/16, a /64 per
// node from fd00:10:244::/56, filled from the start); "random": the worst
// case, every peer in its own corner of the ranges.
func BenchmarkAllowList10000Exclusions(b *testing.B) {
	ranges := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	podCIDR := func() []netip.Addr {
		var ex []netip.Addr
		for node := range 50 {
			for pod := range 100 {
				ex = append(ex, netip.AddrFrom4([4]byte{10, 244, byte(node), byte(pod + 2)}))
				ex = append(ex, netip.AddrFrom16([16]byte{0xfd, 0, 0, 0x10, 0x02, 0x44, 0, byte(node), 15: byte(pod + 2)}))
			}
		}
		return ex
	}
	random := func() []netip.Addr {
		var ex []netip.Addr
		r := rand.New(rand.NewPCG(5, 6))
		for range 5000 {
			v := r.Uint32()
			ex = append(ex, netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)}))
			var a [16]byte
			a[0] = 0xfd
			for j := 1; j < 16; j++ {
				a[j] = byte(r.Uint32())
			}
			ex = append(ex, netip.AddrFrom16(a))
		}
		return ex
	}
	for _, sc := range []struct {
		name string
		ex   []netip.Addr
	}{{"podCIDR", podCIDR()}, {"random", random()}} {
		b.Run(sc.name, func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				n = len(AllowList(ranges, sc.ex))
			}
			b.ReportMetric(float64(n), "prefixes")
		})
	}
}
