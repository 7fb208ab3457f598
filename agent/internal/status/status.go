// Package status is what an RR pod says about itself (served by the agent
// at /status) and what operators read from a whole release set: a table
// per group, a degraded verdict for scripts, and a Graphviz picture of the
// live hierarchy. Everything here is pure: the agent and kubectl-meshrr
// gather the reports.
package status

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/meshrr/meshrr/agent/internal/model"
)

// Exit statuses of both status commands, kubectl meshrr status (a release
// set) and meshrr-agent status (one pod): scripts read "degraded" the same
// way from either.
const (
	ExitOK       = 0
	ExitError    = 1 // could not tell: bad flags, no agent or API server answers
	ExitDegraded = 2 // told: a pod not ready or a mesh/upstream session down
)

// ErrDegraded is what a status command returns when it printed a
// degraded verdict (ExitDegraded).
var ErrDegraded = errors.New("degraded")

// Report is one RR pod's view of itself. It never carries a secret.
type Report struct {
	Pod       string    `json:"pod"`
	Namespace string    `json:"namespace"`
	Group     string    `json:"group"` // the meshrr.io/group id (release.group)
	Side      string    `json:"side,omitempty"`
	Node      string    `json:"node,omitempty"`
	Version   string    `json:"version"`
	Backend   string    `json:"backend"`
	RouterID  string    `json:"routerID"`
	Ready     bool      `json:"ready"`
	NotReady  string    `json:"notReady,omitempty"` // why, when not ready
	Draining  bool      `json:"draining,omitempty"`
	Upstream  string    `json:"upstream,omitempty"` // upstream group id
	LastError string    `json:"lastError,omitempty"`
	Peers     []Peer    `json:"peers"`
	Time      time.Time `json:"time"` // when the report was made
}

// Peer is one session: a configured neighbour (mesh, upstream) or a client
// that connected through a range.
type Peer struct {
	Group       model.GroupName    `json:"group"` // mesh, upstream or the client group's name
	Role        model.Role         `json:"role"`  // mesh, upstream, clients
	Addr        string             `json:"addr"`
	Name        string             `json:"name,omitempty"` // namespace/pod of an RR peer
	Side        string             `json:"side,omitempty"`
	State       model.SessionState `json:"state"`
	Established bool               `json:"established"`
	Since       time.Time          `json:"since,omitzero"`
	Received    int                `json:"received"`
	Sent        int                `json:"sent"`
	BFD         string             `json:"bfd,omitempty"` // BFD session state (Up, Down, Init, AdminDown); "" without BFD
	// Flaps: resets of the Established session seen since the agent
	// started (groups with per-peer metrics: mesh, upstream, clients with
	// peerMetrics)
	Flaps  int  `json:"flaps,omitempty"`
	TCPMD5 bool `json:"tcpMD5,omitempty"` // the session is signed (the key itself is never reported)
}

// Build makes a pod's report from the applied model and the daemon's
// sessions. Configured neighbours without a session are reported "Down";
// client sessions come from the daemon only.
func Build(base Report, m model.Model, sessions []model.Session) Report {
	r := base
	r.Draining = m.Draining
	if m.RouterID.IsValid() {
		r.RouterID = m.RouterID.String()
	}
	byAddr := map[netip.Addr]model.Session{}
	for _, s := range sessions {
		byAddr[s.Peer] = s
	}
	seen := map[netip.Addr]bool{}
	for _, g := range m.Groups {
		for _, n := range g.Neighbors {
			p := Peer{Group: g.Name, Role: g.Role, Addr: n.Addr.String(), Name: n.Name, Side: n.Side, State: "Down", TCPMD5: g.Password != ""}
			if s, ok := byAddr[n.Addr]; ok {
				p.fill(s)
			}
			seen[n.Addr] = true
			r.Peers = append(r.Peers, p)
		}
	}
	roles := map[model.GroupName]model.Role{}
	for _, g := range m.Groups {
		roles[g.Name] = g.Role
	}
	for _, s := range sessions {
		if seen[s.Peer] || !s.Peer.IsValid() || s.Group == "" {
			continue
		}
		p := Peer{Group: s.Group, Role: roles[s.Group], Addr: s.Peer.String()}
		p.fill(s)
		r.Peers = append(r.Peers, p)
	}
	slices.SortFunc(r.Peers, func(a, b Peer) int { return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Addr, b.Addr)) })
	if r.Peers == nil {
		r.Peers = []Peer{}
	}
	return r
}

func (p *Peer) fill(s model.Session) {
	p.State, p.Established, p.Since, p.Received, p.Sent, p.BFD = s.State, s.Established(), s.Since, s.Imported, s.Exported, s.BFD
	if p.State == "" {
		p.State = model.StateDown
	}
}

// Problems says why a pod is degraded: not ready, failing to apply, or a
// configured mesh or upstream peer not Established. nil: healthy.
func Problems(r Report) []string {
	var out []string
	if !r.Ready {
		out = append(out, fmt.Sprintf("%s not ready: %s", r.Pod, r.NotReady))
	}
	if r.LastError != "" {
		out = append(out, fmt.Sprintf("%s: last reconcile failed: %s", r.Pod, r.LastError))
	}
	for _, p := range r.Peers {
		if p.Role.Meshed() && !p.Established {
			who := p.Addr
			if p.Name != "" {
				who = p.Name + " (" + p.Addr + ")"
			}
			msg := fmt.Sprintf("%s: %s peer %s is %s", r.Pod, p.Group, who, p.State)
			if p.TCPMD5 {
				msg += " (TCP-MD5 is on: if meshrr_tcp_md5_segments_dropped_total grows, the keys differ)"
			}
			out = append(out, msg)
		}
	}
	return out
}
