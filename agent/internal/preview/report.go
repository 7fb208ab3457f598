package preview

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// Exit statuses of kubectl meshrr plan, for CI gates.
const (
	ExitHitless = 0 // no session resets and no pod rolls
	ExitRefused = 1 // the agent or Pod Security refuses the proposed values, or the plan could not tell
	ExitResets  = 3 // a session resets, or pods roll (each of their sessions resets once)
)

// Plan is the preview of one release's upgrade.
type Plan struct {
	Release   string `json:"release"`
	Namespace string `json:"namespace"`
	// PodSecurity is the Pod Security level the namespace enforces
	// (level:version), which the new pods were checked against, or why
	// they could not be (PodSecurityUnchecked).
	PodSecurity          string      `json:"podSecurity,omitempty"`
	PodSecurityUnchecked string      `json:"podSecurityUnchecked,omitempty"`
	Groups               []GroupPlan `json:"groups"`
}

// GroupPlan is what the upgrade does to one group of the release.
type GroupPlan struct {
	Group string `json:"group"`
	// Status: unchanged, changed (its configuration), added, removed.
	Status string `json:"status"`
	// Refused: why the agent refuses the proposed configuration (the
	// values check refuses the upgrade for it).
	Refused string `json:"refused,omitempty"`
	// Rolls are the group's workloads whose pods are replaced, one at a
	// time per side, each draining first.
	Rolls []Roll `json:"rolls,omitempty"`
	// Scales are the group's workloads whose number of pods changes: a
	// new pod meshes with every member (the others' sessions are added,
	// none resets), a removed one drains first.
	Scales []Scale `json:"scales,omitempty"`
	// PodsRefused are the group's workloads whose new pods the namespace's
	// Pod Security admission refuses.
	PodsRefused []PodRefusal `json:"podsRefused,omitempty"`
	Pods        []PodPlan    `json:"pods,omitempty"`
}

// PodPlan is what the upgrade does to one running pod of the group.
type PodPlan struct {
	Pod  string `json:"pod"`
	Side string `json:"side,omitempty"`
	// Rolls: the pod is replaced (its workload rolls), after the
	// sessions' outcomes at once; each of its sessions resets then.
	Rolls bool `json:"rolls"`
	Prediction
	// Error: why the pod's sessions cannot be told (its agent does not
	// answer).
	Error string `json:"error,omitempty"`
}

// Verdict is the exit status for the plan.
func (p Plan) Verdict() int {
	resets := false
	for _, g := range p.Groups {
		if g.Refused != "" || len(g.PodsRefused) > 0 {
			return ExitRefused
		}
		for _, pod := range g.Pods {
			if pod.Error != "" {
				return ExitRefused
			}
			resets = resets || pod.Rolls || slices.ContainsFunc(pod.Sessions, func(s Session) bool { return s.Outcome == Reset })
		}
		resets = resets || len(g.Rolls) > 0
	}
	if resets {
		return ExitResets
	}
	return ExitHitless
}

// Passwords stands for the TCP-MD5 keys of a configuration without reading
// them: each session group with a key file gets the Secret's name and the
// key's name, so that a change of either (a key added, another Secret)
// shows as a key change. A key changed inside the Secret is not a change
// of the release (docs/operations.md: the rollover).
func Passwords(c *config.Config) map[model.GroupName]model.Key {
	out := map[model.GroupName]model.Key{}
	for _, g := range c.SessionGroups() {
		if c.PasswordFile(g.Name, g.Client) != "" {
			out[g.Name] = model.Key{Current: c.PasswordSecret + "/" + config.PasswordKey(g.Name, g.Client)}
		}
	}
	return out
}

// Table prints the plan for operators: per group its status and rolls,
// per pod and session what happens at once and at the pod's roll, and a
// summary line.
func Table(w io.Writer, p Plan) {
	counts := map[Outcome]int{}
	rolling := 0
	fmt.Fprintf(w, "release %s (namespace %s)\n", p.Release, p.Namespace)
	switch {
	case p.PodSecurityUnchecked != "":
		fmt.Fprintf(w, "new pods NOT checked against Pod Security: %s\n", p.PodSecurityUnchecked)
	case p.PodSecurity != "":
		fmt.Fprintf(w, "new pods checked against the namespace's Pod Security: enforce %s\n", p.PodSecurity)
	}
	for _, g := range p.Groups {
		fmt.Fprintf(w, "\ngroup %s: %s\n", g.Group, g.Status)
		if g.Refused != "" {
			fmt.Fprintf(w, "  REFUSED: %s\n", g.Refused)
		}
		for _, sc := range g.Scales {
			more := "each new pod meshes with every member and is ready with its first Established mesh or upstream session; the others keep their sessions and each gains one to every new pod"
			if sc.To < sc.From {
				more = "each pod removed drains first; its sessions are removed"
			}
			fmt.Fprintf(w, "  scales %s from %d to %d pods: %s\n", sc.Workload, sc.From, sc.To, more)
		}
		for _, r := range g.Rolls {
			fmt.Fprintf(w, "  rolls %s, one pod at a time, each draining first: %s\n", r.Workload, strings.Join(r.Changed, ", "))
		}
		for _, r := range g.PodsRefused {
			fmt.Fprintf(w, "  REFUSED PODS: %s: its new pods violate %s. Its controller cannot create them: the roll stops (helm upgrade --wait times out), a pod short where the old pod goes first (DaemonSet, StatefulSet); a scale-out adds none. Change the values or the namespace's level (docs/security.md)\n", r.Workload, r.Why)
		}
		if len(g.Pods) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  POD\tSESSION\tPEER\tNAME\tAT ONCE\tAT ITS ROLL\tWHY")
		for _, pod := range g.Pods {
			if pod.Rolls {
				rolling++
			}
			if pod.Error != "" {
				fmt.Fprintf(tw, "  %s\t-\t-\t-\t?\t?\t%s\n", pod.Pod, pod.Error)
				continue
			}
			roll := "-"
			if pod.Rolls {
				roll = "reset"
			}
			var kept string
			if len(pod.Roll) > 0 {
				kept = "kept until replaced: " + strings.Join(pod.Roll, ", ")
			}
			for _, s := range pod.Sessions {
				counts[s.Outcome]++
				why := strings.Join(s.Why, ", ")
				if kept != "" {
					why = strings.TrimPrefix(why+"; "+kept, "; ")
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", pod.Pod, s.Group, s.Peer, or(s.Name, "-"), s.Outcome, roll, why)
			}
			if len(pod.Sessions) == 0 {
				fmt.Fprintf(tw, "  %s\t-\t-\t-\t-\t%s\t%s\n", pod.Pod, roll, kept)
			}
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(w, "\nsessions at once: %d reset, %d refresh, %d added, %d removed, %d untouched; pods replaced: %d\n",
		counts[Reset], counts[Refresh], counts[Added], counts[Removed], counts[Untouched], rolling)
	switch p.Verdict() {
	case ExitRefused:
		fmt.Fprintln(w, "verdict: refused or not told (exit 1)")
	case ExitResets:
		fmt.Fprintln(w, "verdict: sessions reset (exit 3)")
	default:
		fmt.Fprintln(w, "verdict: hitless, no session resets (exit 0)")
	}
}

func or(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
