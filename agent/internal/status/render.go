package status

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meshrr/meshrr/agent/internal/model"
)

// GroupView is the reports of one group (namespace + group id).
type GroupView struct {
	Namespace string
	Group     string
	Upstream  string
	Sides     []string
	Reports   []Report // sorted by pod
	Problems  []string
}

// Groups sorts reports into groups, each with its problems.
func Groups(reports []Report) []GroupView {
	idx := map[[2]string]int{}
	var out []GroupView
	for _, r := range reports {
		k := [2]string{r.Namespace, r.Group}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, GroupView{Namespace: r.Namespace, Group: r.Group})
		}
		g := &out[i]
		g.Reports = append(g.Reports, r)
		if r.Upstream != "" {
			g.Upstream = r.Upstream
		}
		if r.Side != "" && !slices.Contains(g.Sides, r.Side) {
			g.Sides = append(g.Sides, r.Side)
		}
		g.Problems = append(g.Problems, Problems(r)...)
	}
	for i := range out {
		slices.Sort(out[i].Sides)
		slices.SortFunc(out[i].Reports, func(a, b Report) int { return cmp.Compare(a.Pod, b.Pod) })
	}
	slices.SortFunc(out, func(a, b GroupView) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Group, b.Group))
	})
	return out
}

// Table writes one table per group: its verdict line, then a row per
// session of each pod. It returns whether any group is degraded.
func Table(w io.Writer, groups []GroupView) (degraded bool) {
	for gi, g := range groups {
		if gi > 0 {
			fmt.Fprintln(w)
		}
		verdict := "OK"
		if len(g.Problems) > 0 {
			verdict = "DEGRADED"
			degraded = true
		}
		est, total := 0, 0
		for _, r := range g.Reports {
			for _, p := range r.Peers {
				total++
				if p.Established {
					est++
				}
			}
		}
		sides := "-"
		if len(g.Sides) > 0 {
			sides = strings.Join(g.Sides, ",")
		}
		up := ""
		if g.Upstream != "" {
			up = ", upstream " + g.Upstream
		}
		fmt.Fprintf(w, "GROUP %s (namespace %s): %d RRs, sides %s%s, %d of %d sessions Established: %s\n",
			g.Group, g.Namespace, len(g.Reports), sides, up, est, total, verdict)
		for _, p := range g.Problems {
			fmt.Fprintf(w, "  ! %s\n", p)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  POD\tSIDE\tREADY\tPEER\tGROUP\tSTATE\tBFD\tUP FOR\tRECEIVED\tSENT")
		for _, r := range g.Reports {
			ready := "yes"
			switch {
			case r.Draining:
				ready = "draining"
			case !r.Ready:
				ready = "no"
			}
			if len(r.Peers) == 0 {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\n", r.Pod, dash(r.Side), ready)
			}
			for _, p := range r.Peers {
				peer := p.Addr
				if p.Name != "" {
					peer = p.Name + " " + p.Addr
				}
				upFor := "-"
				if p.Established && !p.Since.IsZero() {
					upFor = r.Time.Sub(p.Since).Round(time.Second).String()
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", r.Pod, dash(r.Side), ready, peer, p.Group, p.State, dash(p.BFD), upFor, p.Received, p.Sent)
			}
		}
		_ = tw.Flush()
	}
	return degraded
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Colours of the picture.
const (
	colourUp      = "#2e7d32"
	colourDown    = "#c62828"
	fillReady     = "#c8e6c9"
	fillNotReady  = "#ffcdd2"
	fillDraining  = "#fff9c4"
	fillClients   = "#e3f2fd"
	fontAttribute = `fontname="Helvetica"`
)

// DOT renders the live hierarchy as Graphviz: one box per group with its
// RR pods (filled by readiness), mesh sessions inside a group, upstream
// sessions up to the core, and each client group with its number of
// Established clients; session edges are green when Established, red
// otherwise.
func DOT(groups []GroupView) []byte {
	var b bytes.Buffer
	b.WriteString("digraph meshrr {\n")
	b.WriteString("  rankdir=BT;\n  newrank=true;\n")
	fmt.Fprintf(&b, "  graph [%s, fontsize=12];\n  node [shape=box, style=\"rounded,filled\", %s, fontsize=10];\n  edge [%s, fontsize=9];\n", fontAttribute, fontAttribute, fontAttribute)
	type edge struct{ from, to, attrs string }
	var edges []edge
	for _, g := range groups {
		fmt.Fprintf(&b, "  subgraph %s {\n", dotQuote("cluster_"+g.Namespace+"/"+g.Group))
		label := []string{g.Group, "(namespace " + g.Namespace + ")"}
		if len(g.Problems) > 0 {
			label = append(label, "DEGRADED")
		}
		fmt.Fprintf(&b, "    label=%s;\n    style=rounded;\n", dotQuote(label...))
		clients := map[string]map[string]bool{} // client group -> connected addresses
		for _, r := range g.Reports {
			id := r.Namespace + "/" + r.Pod
			fill := fillReady
			switch {
			case r.Draining:
				fill = fillDraining
			case !r.Ready:
				fill = fillNotReady
			}
			l := []string{r.Pod}
			if r.Side != "" {
				l = append(l, "side "+r.Side)
			}
			fmt.Fprintf(&b, "    %s [label=%s, fillcolor=%q];\n", dotQuote(id), dotQuote(l...), fill)
			for _, p := range r.Peers {
				colour := colourDown
				if p.Established {
					colour = colourUp
				}
				switch p.Role {
				case model.RoleMesh:
					// one edge per pair, drawn from the lower name
					if p.Name != "" && id < p.Name {
						edges = append(edges, edge{id, p.Name, fmt.Sprintf("dir=none, color=%q, constraint=false", colour)})
					}
				case model.RoleUpstream:
					if p.Name != "" {
						edges = append(edges, edge{id, p.Name, fmt.Sprintf("color=%q, style=dashed", colour)})
					}
				case model.RoleClients:
					if clients[string(p.Group)] == nil {
						clients[string(p.Group)] = map[string]bool{}
					}
					if p.Established {
						clients[string(p.Group)][p.Addr] = true
					}
				}
			}
		}
		names := make([]string, 0, len(clients))
		for n := range clients {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			cid := g.Namespace + "/" + g.Group + "/clients/" + n
			fmt.Fprintf(&b, "    %s [shape=ellipse, label=%s, fillcolor=%q];\n", dotQuote(cid), dotQuote(n, fmt.Sprintf("%d clients", len(clients[n]))), fillClients)
			for _, r := range g.Reports {
				edges = append(edges, edge{cid, r.Namespace + "/" + r.Pod, fmt.Sprintf("color=%q, arrowhead=none", "#90a4ae")})
			}
		}
		b.WriteString("  }\n")
	}
	for _, e := range edges {
		fmt.Fprintf(&b, "  %s -> %s [%s];\n", dotQuote(e.from), dotQuote(e.to), e.attrs)
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// dotEscape makes text literal inside a DOT string: quotes and backslashes
// escaped, line breaks turned into DOT's own, nothing that could end the
// string or start an escape of its own.
var dotEscape = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", "")

// dotQuote is the one way text reaches the DOT output (pod, group and
// client names come from the cluster): a quoted DOT string of the lines
// given, joined by DOT line breaks.
func dotQuote(lines ...string) string {
	for i, l := range lines {
		lines[i] = dotEscape.Replace(l)
	}
	return `"` + strings.Join(lines, `\n`) + `"`
}
