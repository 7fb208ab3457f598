package preview

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/plan"
)

// Outcome is what a change does to one session.
type Outcome string

// Outcomes.
const (
	Untouched Outcome = "untouched"
	Refresh   Outcome = "refresh"
	Reset     Outcome = "reset"
	Added     Outcome = "added"
	Removed   Outcome = "removed"
)

// Session is one session's predicted outcome.
type Session struct {
	Group model.GroupName `json:"group"`
	Peer  netip.Addr      `json:"peer"`
	// Name is the peer's name (namespace/pod) or the daemon's name of the
	// session, when known.
	Name    string  `json:"name,omitempty"`
	Outcome Outcome `json:"outcome"`
	// Why names the settings that cause a reset or a refresh.
	Why []string `json:"why,omitempty"`
}

// peer is one session of a group in the old or the new model.
type peer struct {
	name         string
	inOld, inNew bool
}

// Compare predicts what replacing the model old by new does to each
// session: the explicit neighbours of either, and the live sessions the
// daemon spawned for a client range (live, read from the daemon; a
// session no model names is not the agent's and is left out).
func Compare(old, new model.Model, live []model.Session) []Session {
	var out []Session
	names := map[model.GroupName]bool{}
	for _, g := range old.Groups {
		names[g.Name] = true
	}
	for _, g := range new.Groups {
		names[g.Name] = true
	}
	for name := range names {
		og, ng := group(&old, name), group(&new, name)
		peers := map[netip.Addr]*peer{}
		at := func(a netip.Addr) *peer {
			if peers[a] == nil {
				peers[a] = &peer{}
			}
			return peers[a]
		}
		if og != nil {
			for _, n := range og.Neighbors {
				p := at(n.Addr)
				p.inOld, p.name = true, n.Name
			}
		}
		if ng != nil {
			for _, n := range ng.Neighbors {
				p := at(n.Addr)
				p.inNew, p.name = true, cmp.Or(p.name, n.Name)
			}
		}
		for _, s := range live {
			if s.Group != name || peers[s.Peer] != nil && (peers[s.Peer].inOld || peers[s.Peer].inNew) {
				continue
			}
			if !admits(og, s.Peer) {
				continue // not the old model's: the agent removes it either way
			}
			p := at(s.Peer)
			p.inOld, p.inNew, p.name = true, admits(ng, s.Peer), s.Name
		}
		for a, p := range peers {
			s := Session{Group: name, Peer: a, Name: p.name}
			switch {
			case !p.inOld && !p.inNew:
				continue
			case !p.inOld:
				s.Outcome = Added
			case !p.inNew:
				s.Outcome = Removed
			default:
				s.Outcome, s.Why = effect(&old, &new, og, ng, a)
			}
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Session) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), a.Peer.Compare(b.Peer))
	})
	return out
}

// effect is the strongest effect of the settings that differ for one
// session, and their names.
func effect(old, new *model.Model, og, ng *model.PeerGroup, a netip.Addr) (Outcome, []string) {
	worst := EffectNone
	var why []string
	for _, s := range Settings {
		var differs bool
		switch {
		case s.Model != nil:
			differs = s.Model(old, new)
		case s.Group != nil:
			differs = s.Group(og, ng)
		default:
			differs = s.Peer(og, ng, a)
		}
		if !differs || s.Effect == EffectNone {
			continue
		}
		if s.Effect > worst {
			worst, why = s.Effect, nil
		}
		if s.Effect == worst {
			why = append(why, s.Name)
		}
	}
	return map[Effect]Outcome{EffectNone: Untouched, EffectRefresh: Refresh, EffectReset: Reset}[worst], why
}

// admits reports whether a client range of g admits a session from a: g
// exists, a range it allows holds a, and a is not kept out.
func admits(g *model.PeerGroup, a netip.Addr) bool {
	if g == nil || slices.Contains(g.Disabled, a) {
		return false
	}
	return slices.ContainsFunc(g.Allow, func(p netip.Prefix) bool { return p.Contains(a) })
}

func group(m *model.Model, name model.GroupName) *model.PeerGroup {
	for i := range m.Groups {
		if m.Groups[i].Name == name {
			return &m.Groups[i]
		}
	}
	return nil
}

// Pod is one RR pod as it runs.
type Pod struct {
	Self plan.Self
	// Sessions are the daemon's sessions, as the pod's /status reads them.
	Sessions []model.Session
	// ClusterAddrs are the cluster's own addresses the agent knows (plan.Input).
	ClusterAddrs []plan.ClusterAddr
}

// Prediction is what a change of the group's configuration does to one
// pod's sessions.
type Prediction struct {
	// Sessions: what the running agent does at once (it reloads the new
	// configuration in place, keeping the settings Roll names).
	Sessions []Session `json:"sessions"`
	// Roll names the settings the running agent keeps until its pod is
	// replaced (config.KeepSessionSettings): the chart rolls the pods for
	// them, one at a time, each draining first, and each session resets
	// once, when its pod is replaced.
	Roll []string `json:"roll,omitempty"`
}

// Change is a group's configuration as it runs and as proposed, and what
// the plan needs besides.
type Change struct {
	Running, Proposed []byte // AgentConfig documents (the group's ConfigMap)
	Snapshot          model.Snapshot
	Now               time.Time
	// Passwords gives the TCP-MD5 keys of a configuration by group; a
	// key's value matters only in that it changes (nil: no keys).
	Passwords func(*config.Config) map[model.GroupName]model.Key
}

// Predict runs the agent's own plan for the running and the proposed
// configuration of one pod, as the agent would: the proposed one with the
// settings it keeps (config.KeepSessionSettings) kept, and compares them.
// A proposed configuration the agent refuses is an error naming why.
func Predict(c Change, p Pod) (Prediction, error) {
	running, err := config.Parse(c.Running)
	if err != nil {
		return Prediction{}, fmt.Errorf("the running configuration: %w", err)
	}
	proposed, err := config.Parse(c.Proposed)
	if err != nil {
		return Prediction{}, fmt.Errorf("the proposed configuration: %w", err)
	}
	roll := proposed.KeepSessionSettings(running)
	live := map[netip.Addr]model.Session{}
	for _, s := range p.Sessions {
		live[s.Peer] = s
	}
	build := func(cfg *config.Config) (model.Model, error) {
		in := plan.Input{Config: cfg, Self: p.Self, Snapshot: c.Snapshot, Now: c.Now, ClusterAddrs: p.ClusterAddrs, Sessions: live}
		if c.Passwords != nil {
			in.Passwords = c.Passwords(cfg)
		}
		res, err := plan.Build(in)
		return res.Model, err
	}
	old, err := build(running)
	if err != nil {
		return Prediction{}, fmt.Errorf("planning the running configuration: %w", err)
	}
	hot, err := build(proposed)
	if err != nil {
		return Prediction{}, fmt.Errorf("planning the proposed configuration: %w", err)
	}
	return Prediction{Sessions: Compare(old, hot, p.Sessions), Roll: roll}, nil
}
