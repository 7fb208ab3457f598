package metrics

import (
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshrr/meshrr/agent/internal/model"
)

// Per-peer series: one set per session of a group the PerPeer filter
// admits (mesh and upstream by default: their peers are few and known;
// client groups only when their clients[].peerMetrics is set, because
// every client address becomes a series).
var (
	peerUpDesc       = prometheus.NewDesc(ns+"_bgp_peer_up", "1 if the session with the peer is Established, as last read.", []string{"group", "peer"}, nil)
	peerUptimeDesc   = prometheus.NewDesc(ns+"_bgp_peer_uptime_seconds", "Seconds the session has been Established (0 when it is not).", []string{"group", "peer"}, nil)
	peerRecvDesc     = prometheus.NewDesc(ns+"_bgp_peer_prefixes_received", "Prefixes imported from the peer.", []string{"group", "peer"}, nil)
	peerSentDesc     = prometheus.NewDesc(ns+"_bgp_peer_prefixes_sent", "Prefixes exported to the peer.", []string{"group", "peer"}, nil)
	peerFlapsDesc    = prometheus.NewDesc(ns+"_bgp_peer_flaps_total", "Times an Established session with the peer was seen reset or down since the agent started (sessions are read every reconcile.statePoll, and for requests at most every 2 s).", []string{"group", "peer"}, nil)
	peerBFDDesc      = prometheus.NewDesc(ns+"_bfd_peer_up", "1 if the BFD session with the peer is Up, 0 otherwise; only sessions with BFD.", []string{"group", "peer"}, nil)
	bfdSessionsDesc  = prometheus.NewDesc(ns+"_bfd_sessions", "BFD sessions per group and state (Up, Down, Init, AdminDown), as last read.", []string{"group", "state"}, nil)
	peerImportDesc   = prometheus.NewDesc(ns+"_bgp_peer_import_updates_total", "Route updates received from the peer since its session came up, by result: received, rejected (invalid), filtered (by the import policy), ignored (no change, or kept out by maxPrefixAction block), accepted; BIRD only.", []string{"group", "peer", "result"}, nil)
	importDesc       = prometheus.NewDesc(ns+"_bgp_import_updates_total", "Route updates the group's sessions received since the agent started, by result: received, rejected (invalid), filtered (by the import policy), ignored (no change, or kept out by maxPrefixAction block), accepted; BIRD only (the daemon's per-session counts, added up across session restarts).", []string{"group", "result"}, nil)
	peerDescriptions = []*prometheus.Desc{peerUpDesc, peerUptimeDesc, peerRecvDesc, peerSentDesc, peerFlapsDesc, peerBFDDesc, bfdSessionsDesc, peerImportDesc, importDesc}
)

// importResults name the counts of model.ImportUpdates in its order.
var importResults = []string{"received", "rejected", "filtered", "ignored", "accepted"}

func importCounts(u model.ImportUpdates) []int64 {
	return []int64{u.Received, u.Rejected, u.Filtered, u.Ignored, u.Accepted}
}

// flapTolerance: a session whose start time moved by less is the same
// session (BIRD converts its monotonic clock to wall time at each read).
const flapTolerance = 500 * time.Millisecond

type peerKey struct {
	group model.GroupName
	peer  netip.Addr
}

// peerTracker counts flaps: an Established session that is later seen not
// Established, or Established since another time.
type peerTracker struct {
	mu    sync.Mutex
	last  map[peerKey]model.Session
	flaps map[peerKey]int
	// the import update counts of every session as last read, and their
	// sums per group: a count lower than last read is a session that
	// restarted, counted again from 0
	updates     map[peerKey]updatesRead
	groupImport map[model.GroupName]*[5]int64
}

// observe records the sessions of admitted groups.
func (p *peerTracker) observe(ss []model.Session, admit func(group model.GroupName) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		p.last, p.flaps = map[peerKey]model.Session{}, map[peerKey]int{}
		p.updates, p.groupImport = map[peerKey]updatesRead{}, map[model.GroupName]*[5]int64{}
	}
	p.addUpdates(ss)
	for _, s := range ss {
		if s.Group == "" || !s.Peer.IsValid() || !admit(s.Group) {
			continue
		}
		k := peerKey{s.Group, s.Peer}
		if prev, ok := p.last[k]; ok && prev.Established() {
			moved := s.Since.Sub(prev.Since)
			if !s.Established() || moved > flapTolerance || moved < -flapTolerance {
				p.flaps[k]++
			}
		}
		p.last[k] = s
	}
}

// addUpdates adds what every session received since its last read to its
// group's sums (all groups: the sums are one series per group), and
// forgets the sessions no longer there. Called with p.mu held.
func (p *peerTracker) addUpdates(ss []model.Session) {
	seen := map[peerKey]bool{}
	for _, s := range ss {
		if s.Group == "" || !s.Peer.IsValid() || s.Updates == nil {
			continue
		}
		k := peerKey{s.Group, s.Peer}
		seen[k] = true
		sum := p.groupImport[s.Group]
		if sum == nil {
			sum = &[5]int64{}
			p.groupImport[s.Group] = sum
		}
		last, cur := p.updates[k], importCounts(*s.Updates)
		prev := importCounts(last.counts)
		// a session that restarted counts from 0 again: its start time
		// moved, or it received fewer than before
		if moved := s.Since.Sub(last.since); moved > flapTolerance || moved < -flapTolerance || cur[0] < prev[0] {
			prev = make([]int64, len(cur))
		}
		for i := range cur {
			sum[i] += max(cur[i]-prev[i], 0)
		}
		p.updates[k] = updatesRead{s.Since, *s.Updates}
	}
	for k := range p.updates {
		if !seen[k] {
			delete(p.updates, k)
		}
	}
}

// updatesRead is a session's import update counts as last read, and the
// start time of the session they count.
type updatesRead struct {
	since  time.Time
	counts model.ImportUpdates
}

func (p *peerTracker) importSums() map[model.GroupName][5]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[model.GroupName][5]int64{}
	for g, s := range p.groupImport {
		out[g] = *s
	}
	return out
}

func (p *peerTracker) flapsOf(k peerKey) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flaps[k]
}

// Flaps returns the flaps counted for a peer of a per-peer group (0 for
// other groups: they are not tracked).
func (m *Metrics) Flaps(group model.GroupName, peer netip.Addr) int {
	return m.peers.flapsOf(peerKey{group, peer})
}

// ObserveSessions records sessions read outside a scrape (the loop's state
// poll), so that flaps between scrapes are counted.
func (m *Metrics) ObserveSessions(ss []model.Session) { m.peers.observe(ss, m.perPeer) }

// perPeer reports whether a group's sessions get per-peer series.
func (m *Metrics) perPeer(group model.GroupName) bool {
	if m.PerPeer != nil {
		return m.PerPeer(group)
	}
	return group.Meshed()
}

// collectPeers emits the per-peer series and the BFD session counts.
func (m *Metrics) collectPeers(ch chan<- prometheus.Metric, ss []model.Session, now time.Time) {
	m.peers.observe(ss, m.perPeer)
	type key struct{ group, state string }
	bfd := map[key]int{}
	for _, s := range ss {
		if s.Group == "" || !s.Peer.IsValid() {
			continue
		}
		if s.BFD != "" {
			bfd[key{string(s.Group), s.BFD}]++
		}
		if !m.perPeer(s.Group) {
			continue
		}
		labels := []string{string(s.Group), s.Peer.String()}
		up, uptime := 0.0, 0.0
		if s.Established() {
			up = 1
			if !s.Since.IsZero() && now.After(s.Since) {
				uptime = now.Sub(s.Since).Seconds()
			}
		}
		ch <- prometheus.MustNewConstMetric(peerUpDesc, prometheus.GaugeValue, up, labels...)
		ch <- prometheus.MustNewConstMetric(peerUptimeDesc, prometheus.GaugeValue, uptime, labels...)
		ch <- prometheus.MustNewConstMetric(peerRecvDesc, prometheus.GaugeValue, float64(s.Imported), labels...)
		ch <- prometheus.MustNewConstMetric(peerSentDesc, prometheus.GaugeValue, float64(s.Exported), labels...)
		ch <- prometheus.MustNewConstMetric(peerFlapsDesc, prometheus.CounterValue, float64(m.peers.flapsOf(peerKey{s.Group, s.Peer})), labels...)
		if s.BFD != "" {
			v := 0.0
			if s.BFD == "Up" {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(peerBFDDesc, prometheus.GaugeValue, v, labels...)
		}
		if s.Updates != nil {
			for i, n := range importCounts(*s.Updates) {
				ch <- prometheus.MustNewConstMetric(peerImportDesc, prometheus.CounterValue, float64(n), append(labels, importResults[i])...)
			}
		}
	}
	for k, n := range bfd {
		ch <- prometheus.MustNewConstMetric(bfdSessionsDesc, prometheus.GaugeValue, float64(n), k.group, k.state)
	}
	for g, sums := range m.peers.importSums() {
		for i, n := range sums {
			ch <- prometheus.MustNewConstMetric(importDesc, prometheus.CounterValue, float64(n), string(g), importResults[i])
		}
	}
}
