package plan

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
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

// upstreamChoice chooses a pod's upstream peers for one plan: the
// balanced assignment (AssignBounded) over every sibling that uses the
// same upstream group, this pod's share of it, replacements for members
// that are held down or whose sessions stayed down past the grace period,
// and bridges that keep leaving members until their successors are up.
type upstreamChoice struct {
	in   Input
	u    *config.Upstream
	upNS string         // the upstream group's namespace
	all  []model.Member // its members, stopping ones included
}

func newUpstreamChoice(in Input) upstreamChoice {
	u := in.Config.Upstream
	upNS := cmp.Or(u.Namespace, in.Self.Namespace)
	return upstreamChoice{in: in, u: u, upNS: upNS, all: members(in.Snapshot, upNS, u.Group)}
}

// choose returns the chosen members (bridges included), the members
// replaced and why, and how many running members the group has.
func (c upstreamChoice) choose() (chosen []model.Member, replaced []Replacement, seen int) {
	in, u, all := c.in, c.u, c.all
	// a stopping upstream member is replaced at once, but stays configured
	// (draining) while its session is up and the replacement's is not yet:
	// make before break, even with maxPeers 1
	ups := slices.DeleteFunc(slices.Clone(all), func(m model.Member) bool { return m.Terminating })
	seen = len(ups)
	if len(ups) == 0 {
		return c.bridges(nil, 0, u.MaxPeers), nil, 0
	}
	byID, cands := candidates(ups)
	self := in.Self.ID()
	a := AssignBounded(c.siblings(), cands, u.MaxPeers, u.Epsilon)
	want := min(u.MaxPeers, len(cands))
	down := c.down(byID)
	keep, replaced, excluded := keepUp(a.Choices[self], down)
	if len(keep) < want {
		keep = refill(self, keep, cands, a, want, func(id string) bool {
			if excluded[id] {
				return false
			}
			bad, _ := down(id)
			return !bad
		})
	}
	// Never end with fewer peers than members allow: when every candidate is
	// down or held down, keep trying the best-scoring ones.
	if len(keep) < want {
		keep = refill(self, keep, cands, a, want, func(string) bool { return true })
	}
	for _, id := range keep {
		chosen = append(chosen, byID[id])
	}
	return append(chosen, c.bridges(chosen, c.upCount(chosen), want)...), replaced, seen
}

// candidates: the upstream members by ID (the first of a duplicated ID)
// and as AssignBounded's candidates.
func candidates(ups []model.Member) (map[string]model.Member, []Candidate) {
	byID := map[string]model.Member{}
	cands := make([]Candidate, 0, len(ups))
	for _, m := range ups {
		if _, dup := byID[m.ID()]; dup {
			continue
		}
		byID[m.ID()] = m
		cands = append(cands, Candidate{ID: m.ID(), Side: m.Side, Node: m.Node})
	}
	return byID, cands
}

// siblings: this pod and every other running member that uses the same
// upstream group, sorted: the balanced assignment is computed over them.
func (c upstreamChoice) siblings() []string {
	in, u, upNS := c.in, c.u, c.upNS
	sibs := []string{in.Self.ID()}
	for _, m := range in.Snapshot.Members {
		if m.UpstreamGroup == u.Group && cmp.Or(m.UpstreamNamespace, m.Namespace) == upNS && !m.Terminating && !slices.Contains(sibs, m.ID()) && !isSelf(m, in.Self) {
			sibs = append(sibs, m.ID())
		}
	}
	slices.Sort(sibs)
	return sibs
}

// down: is an upstream member held down, or configured with no
// session Established for the grace period (and why, for the Event)?
func (c upstreamChoice) down(byID map[string]model.Member) func(id string) (bool, string) {
	in, u := c.in, c.u
	return func(id string) (bool, string) {
		if until, ok := in.HoldDown[id]; ok && in.Now.Before(until) {
			return true, ""
		}
		var configured, established bool
		var since time.Time
		for _, addr := range byID[id].Addrs {
			s, ok := in.Sessions[addr]
			if !ok || !s.In(model.RoleUpstream) {
				continue
			}
			configured = true
			established = established || s.Established()
			if s.Since.After(since) {
				since = s.Since
			}
		}
		if configured && !established && !since.IsZero() && in.Now.Sub(since) >= u.GracePeriod.Duration {
			return true, fmt.Sprintf("not Established for %s (grace period %s)", in.Now.Sub(since).Round(time.Second), u.GracePeriod.Duration)
		}
		return false, ""
	}
}

// keepUp: the assigned members that are not down; those that are, and
// the replacements (with their reasons) of those that are.
func keepUp(assigned []string, down func(string) (bool, string)) (keep []string, replaced []Replacement, excluded map[string]bool) {
	excluded = map[string]bool{}
	for _, id := range assigned {
		if bad, why := down(id); bad {
			excluded[id] = true
			if why != "" {
				replaced = append(replaced, Replacement{Member: id, Reason: why})
			}
			continue
		}
		keep = append(keep, id)
	}
	return keep, replaced, excluded
}

// upCount: how many chosen members count as up. One counts once its
// session carries as many routes as the sessions it replaces (Established
// alone may be a session whose table has not arrived yet: a full table
// takes seconds), or has been Established for the grace period.
func (c upstreamChoice) upCount(chosen []model.Member) int {
	floor := 0
	for _, m := range c.leaving(chosen) {
		s, _ := c.session(m)
		floor = max(floor, s.Imported)
	}
	up := 0
	for _, m := range chosen {
		if s, ok := c.session(m); ok && (s.Imported >= floor || c.in.Now.Sub(s.Since) >= c.u.GracePeriod.Duration) {
			up++
		}
	}
	return up
}

// leaving are the members the pod has an Established upstream session
// with that the plan no longer chooses: a stopping member, or one the
// balanced choice moved away from (a new member scored higher).
func (c upstreamChoice) leaving(chosen []model.Member) []model.Member {
	var out []model.Member
	for _, m := range c.all {
		if c.established(m) && !slices.ContainsFunc(chosen, func(c model.Member) bool { return c.ID() == m.ID() }) &&
			!slices.ContainsFunc(out, func(o model.Member) bool { return o.ID() == m.ID() }) {
			out = append(out, m)
		}
	}
	return out
}

// bridges are the leaving upstream members to keep while fewer than want
// chosen sessions are up: make before break, whether the member stops or
// the choice moved; members that stay before stopping ones, at most the
// missing number.
func (c upstreamChoice) bridges(chosen []model.Member, up, want int) []model.Member {
	l := c.leaving(chosen)
	slices.SortStableFunc(l, func(a, b model.Member) int {
		if a.Terminating == b.Terminating {
			return 0
		}
		if b.Terminating {
			return -1
		}
		return 1
	})
	return l[:max(0, min(len(l), want-up))]
}

// established: the pod has an Established upstream session with m.
func (c upstreamChoice) established(m model.Member) bool {
	_, ok := c.session(m)
	return ok
}

// session is the pod's Established upstream session with m.
func (c upstreamChoice) session(m model.Member) (model.Session, bool) {
	for _, a := range m.Addrs {
		if s, ok := c.in.Sessions[a]; ok && s.In(model.RoleUpstream) && s.Established() {
			return s, true
		}
	}
	return model.Session{}, false
}

// refill adds members to keep, best rendezvous score first, preferring
// members below the assignment's cap and on sides/nodes keep does not use.
func refill(self string, keep []string, cands []Candidate, a Assignment, want int, ok func(string) bool) []string {
	order := slices.Clone(cands)
	slices.SortFunc(order, func(x, y Candidate) int { return cmp.Compare(score(self, y.ID), score(self, x.ID)) })
	byID := map[string]Candidate{}
	for _, c := range cands {
		byID[c.ID] = c
	}
	uses := func(f func(Candidate) string, v string) bool {
		return v != "" && slices.ContainsFunc(keep, func(id string) bool { return f(byID[id]) == v })
	}
	side := func(c Candidate) string { return c.Side }
	node := func(c Candidate) string { return c.Node }
	below := func(c Candidate) bool { return a.Load[c.ID] < a.Caps[c.ID] }
	passes := []func(Candidate) bool{
		func(c Candidate) bool { return below(c) && !uses(side, c.Side) && !uses(node, c.Node) },
		func(c Candidate) bool { return below(c) && !uses(node, c.Node) },
		below,
		func(Candidate) bool { return true },
	}
	for _, p := range passes {
		for _, c := range order {
			if len(keep) >= want {
				return keep
			}
			if !slices.Contains(keep, c.ID) && ok(c.ID) && p(c) {
				keep = append(keep, c.ID)
			}
		}
	}
	return keep
}
