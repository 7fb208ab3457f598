// Package walk is the plan walk's course: a seeded random sequence of helm
// upgrades over the 2regions-hrr releases, each turning one change on or
// off, and the confusion table of what kubectl meshrr plan predicted for
// each session against what the routers and RRs saw. Pure: the e2e suite
// applies the steps and observes.
package walk

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Change is one change a step turns on or off: the values it sets on top
// of the release's files (Set as --set, JSON as --set-json).
type Change struct {
	Name    string
	Release string
	// Kind: policy, timers, clients, bfd, addpaths, replicas, upstream.
	Kind string
	Set  map[string]string
	JSON map[string]string
}

// Catalog is every change of the walk. policy is the example's shared
// boundary policy (defaults.policy of values.yaml): a region's own list
// replaces it, so a region's extra rule comes with it.
func Catalog(policy []any) []Change {
	regionPolicy := func(region string) string {
		rules := append(slices.Clone(policy), map[string]any{
			"name": "walk-drop-65000-9" + region[:1], "towards": []string{"upstream"}, "matchCommunities": []string{"65000:9" + fmt.Sprint(len(region))}, "action": "reject",
		})
		b, _ := json.Marshal(rules)
		return string(b)
	}
	var out []Change
	for _, region := range []string{"lothlorien", "mirkwood"} {
		g := "groups." + region
		out = append(out,
			Change{Name: region + ": a boundary rule", Release: region, Kind: "policy", JSON: map[string]string{g + ".policy": regionPolicy(region)}},
			Change{Name: region + ": the routers' export tier default", Release: region, Kind: "clients", Set: map[string]string{g + ".clients.routers.export.tier": "default"}},
			Change{Name: region + ": one upstream", Release: region, Kind: "upstream", Set: map[string]string{g + ".upstream.maxPeers": "1"}},
		)
	}
	g := "groups.lothlorien"
	out = append(out,
		Change{Name: "lothlorien: a second routers' range", Release: "lothlorien", Kind: "clients", Set: map[string]string{g + ".clients.routers.ranges[1]": "198.51.100.0/24"}},
		Change{Name: "lothlorien: the routers' prefix limit", Release: "lothlorien", Kind: "clients", Set: map[string]string{g + ".clients.routers.maxPrefixes": "100000"}},
		Change{Name: "lothlorien: ADD-PATH to the routers", Release: "lothlorien", Kind: "addpaths", Set: map[string]string{g + ".clients.routers.addPaths": "2"}},
		Change{Name: "lothlorien: BFD to the routers", Release: "lothlorien", Kind: "bfd", Set: map[string]string{g + ".clients.routers.bfd.enabled": "true"}},
		Change{Name: "lothlorien: the hold timer", Release: "lothlorien", Kind: "timers", Set: map[string]string{g + ".timers.hold": "30", g + ".timers.keepalive": "10"}},
		Change{Name: "core: a boundary rule", Release: "core", Kind: "policy", JSON: map[string]string{"groups.core.policy": `[{"name":"walk-drop-65000-999","towards":["downstream"],"matchCommunities":["65000:999"],"action":"reject"}]`}},
		Change{Name: "core: two RRs per side", Release: "core", Kind: "replicas", Set: map[string]string{"groups.core.replicas": "2"}},
		Change{Name: "core: the hold timer", Release: "core", Kind: "timers", Set: map[string]string{"groups.core.timers.hold": "30", "groups.core.timers.keepalive": "10"}},
	)
	return out
}

// ExamplePolicy reads defaults.policy of the example's shared values file.
func ExamplePolicy(valuesFile string) ([]any, error) {
	b, err := os.ReadFile(valuesFile)
	if err != nil {
		return nil, err
	}
	var v struct {
		Defaults struct {
			Policy []any `json:"policy"`
		} `json:"defaults"`
	}
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", valuesFile, err)
	}
	return v.Defaults.Policy, nil
}

// Step is one helm upgrade of the walk.
type Step struct {
	N       int
	Change  Change
	On      bool // the change turned on (else off, back to the files' value)
	Release string
	// Set and JSON are the release's values on top of its files after the
	// step: every change of the release that is on.
	Set, JSON map[string]string
}

func (s Step) String() string {
	return fmt.Sprintf("step %d: %s %s (%s)", s.N, map[bool]string{true: "on:", false: "off:"}[s.On], s.Change.Name, s.Change.Kind)
}

// Walk is n steps from seed: each turns one change of the catalog on or
// off (chosen at random, every change as likely), so that the releases
// wander through combinations of changes and back.
func Walk(catalog []Change, seed uint64, n int) []Step {
	r := rand.New(rand.NewPCG(seed, 0x6d657368727221))
	on := map[string]bool{}
	var out []Step
	for i := 1; i <= n; i++ {
		c := catalog[r.IntN(len(catalog))]
		on[c.Name] = !on[c.Name]
		s := Step{N: i, Change: c, On: on[c.Name], Release: c.Release, Set: map[string]string{}, JSON: map[string]string{}}
		for _, o := range catalog {
			if o.Release != c.Release || !on[o.Name] {
				continue
			}
			for k, v := range o.Set {
				s.Set[k] = v
			}
			for k, v := range o.JSON {
				s.JSON[k] = v
			}
		}
		out = append(out, s)
	}
	return out
}

// Outcomes, as kubectl meshrr plan names them, and "replaced": the
// session's pod was replaced (a roll), which resets it.
var Outcomes = []string{"untouched", "refresh", "reset", "added", "removed", "replaced"}

// Confusion counts sessions by predicted and observed outcome.
type Confusion map[string]map[string]int

// Add counts one session.
func (c Confusion) Add(predicted, observed string) {
	if c[predicted] == nil {
		c[predicted] = map[string]int{}
	}
	c[predicted][observed]++
}

// Wrong counts the sessions whose prediction was not what happened.
func (c Confusion) Wrong() int {
	n := 0
	for p, row := range c {
		for o, k := range row {
			if p != o {
				n += k
			}
		}
	}
	return n
}

// String is the table: a row per prediction, a column per observation,
// the outcomes outside Outcomes (an "absent" session, say) after them.
func (c Confusion) String() string {
	var extra []string
	for p, row := range c {
		for _, o := range append([]string{p}, slices.Collect(maps.Keys(row))...) {
			if !slices.Contains(Outcomes, o) && !slices.Contains(extra, o) {
				extra = append(extra, o)
			}
		}
	}
	slices.Sort(extra)
	all := append(slices.Clone(Outcomes), extra...)
	var b strings.Builder
	fmt.Fprintf(&b, "%-22s", "predicted \\ observed")
	for _, o := range all {
		fmt.Fprintf(&b, "%10s", o)
	}
	b.WriteString("\n")
	for _, p := range all {
		fmt.Fprintf(&b, "%-22s", p)
		for _, o := range all {
			fmt.Fprintf(&b, "%10d", c[p][o])
		}
		b.WriteString("\n")
	}
	return b.String()
}
