package plan

import (
	"cmp"
	"hash/fnv"
	"math"
	"slices"
)

// Candidate is an upstream member as seen by the assignment.
type Candidate struct {
	ID   string
	Side string
	Node string
}

// Assignment maps each sibling (a downstream RR) to the upstream member IDs
// it peers with, best first, and records the load caps that were used.
type Assignment struct {
	Choices map[string][]string
	Load    map[string]int
	Cap     int            // ceil((1+eps) * mean)
	Caps    map[string]int // per member: Cap, or more on a scarce side
}

type pair struct {
	score uint64
	s, u  int
}

// score is the rendezvous weight of (sibling, member): FNV-1a over both IDs,
// finished with the splitmix64 mixer so that near-identical IDs (pod name
// suffixes) still spread uniformly. Every agent computes the same value.
func score(s, u string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	h.Write([]byte{0})
	h.Write([]byte(u))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// AssignBounded computes rendezvous hashing with bounded loads: every
// sibling takes min(k, |members|) distinct members, each member serves at
// most ceil((1+eps) * mean) siblings, and (sibling, member) pairs are granted
// in descending rendezvous score, so the result depends only on the two sets
// (agents that see the same sets agree) and a new member mostly takes pairs
// that plain rendezvous hashing would also move. Pairs are granted in passes
// that prefer diversity: first a side and a node the sibling does not use
// yet, then a node it does not use yet, then any member; a last pass ignores
// the cap so that every sibling gets its k members even in corner cases.
func AssignBounded(siblings []string, members []Candidate, k int, eps float64) Assignment {
	a := Assignment{Choices: map[string][]string{}, Load: map[string]int{}}
	n := len(members)
	if n == 0 || k < 1 || len(siblings) == 0 {
		return a
	}
	kk := min(k, n)
	a.Cap = int(math.Ceil((1 + eps) * float64(len(siblings)*kk) / float64(n)))
	// With sides, every sibling wants one member per side: a side with
	// fewer members (9 cores as 5/4) must serve more each, or siblings lose
	// their diversity and many choices move. A member's cap is the larger of
	// the global cap and its side's fair share.
	perSide := map[string]int{}
	for _, u := range members {
		if u.Side == "" {
			perSide = nil
			break
		}
		perSide[u.Side]++
	}
	a.Caps = map[string]int{}
	capOf := make([]int, n)
	for ui, u := range members {
		capOf[ui] = a.Cap
		if len(perSide) > 1 {
			share := float64(len(siblings)*kk) / float64(len(perSide)) / float64(perSide[u.Side])
			capOf[ui] = max(a.Cap, int(math.Ceil((1+eps)*share)))
		}
		a.Caps[u.ID] = capOf[ui]
	}

	pairs := make([]pair, 0, len(siblings)*n)
	for si, s := range siblings {
		for ui, u := range members {
			pairs = append(pairs, pair{score(s, u.ID), si, ui})
		}
	}
	slices.SortFunc(pairs, func(x, y pair) int {
		if c := cmp.Compare(y.score, x.score); c != 0 {
			return c
		}
		if c := cmp.Compare(siblings[x.s], siblings[y.s]); c != 0 {
			return c
		}
		return cmp.Compare(members[x.u].ID, members[y.u].ID)
	})

	got := make([][]int, len(siblings))
	load := make([]int, n)
	has := func(si, ui int) bool { return slices.Contains(got[si], ui) }
	usesSide := func(si int, side string) bool {
		return side != "" && slices.ContainsFunc(got[si], func(ui int) bool { return members[ui].Side == side })
	}
	usesNode := func(si int, node string) bool {
		return node != "" && slices.ContainsFunc(got[si], func(ui int) bool { return members[ui].Node == node })
	}
	passes := []struct {
		capped bool
		ok     func(si, ui int) bool
	}{
		{true, func(si, ui int) bool { return !usesSide(si, members[ui].Side) && !usesNode(si, members[ui].Node) }},
		{true, func(si, ui int) bool { return !usesNode(si, members[ui].Node) }},
		{true, func(int, int) bool { return true }},
		{false, func(int, int) bool { return true }},
	}
	need := len(siblings) * kk
	for _, p := range passes {
		for _, pr := range pairs {
			if need == 0 {
				break
			}
			if len(got[pr.s]) >= kk || (p.capped && load[pr.u] >= capOf[pr.u]) || has(pr.s, pr.u) || !p.ok(pr.s, pr.u) {
				continue
			}
			got[pr.s] = append(got[pr.s], pr.u)
			load[pr.u]++
			need--
		}
	}
	for si, s := range siblings {
		// best first, by this sibling's own scores
		slices.SortFunc(got[si], func(x, y int) int { return cmp.Compare(score(s, members[y].ID), score(s, members[x].ID)) })
		ids := make([]string, len(got[si]))
		for i, ui := range got[si] {
			ids[i] = members[ui].ID
		}
		a.Choices[s] = ids
	}
	for ui, u := range members {
		a.Load[u.ID] = load[ui]
	}
	return a
}

// AssignRendezvous is plain rendezvous (highest random weight) hashing: each
// sibling takes its k best-scoring members. Used as the benchmark baseline.
func AssignRendezvous(siblings []string, members []Candidate, k int) map[string][]string {
	out := map[string][]string{}
	for _, s := range siblings {
		ms := slices.Clone(members)
		slices.SortFunc(ms, func(x, y Candidate) int { return cmp.Compare(score(s, y.ID), score(s, x.ID)) })
		for _, m := range ms[:min(k, len(ms))] {
			out[s] = append(out[s], m.ID)
		}
	}
	return out
}
