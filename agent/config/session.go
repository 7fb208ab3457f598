package config

import (
	"reflect"
	"slices"
)

// clientResetting are the client group settings whose change makes BIRD
// reset the group's sessions: the preview's table says which model
// settings reset (asked of BIRD in TestEverySettingsEffectIsBIRDs), and
// TestTheAgentKeepsWhatResets that these are exactly the client settings
// that reach one. KeepSessionSettings keeps them and
// the chart rolls the pods for them (its session-settings checksum).
var clientResetting = []struct {
	name    string
	differs func(a, b *Client) bool
	keep    func(c, running *Client)
}{
	{"addPaths", func(a, b *Client) bool { return a.AddPaths != b.AddPaths }, func(c, r *Client) { c.AddPaths = r.AddPaths }},
	{"multihop", func(a, b *Client) bool { return a.Multihop != b.Multihop }, func(c, r *Client) { c.Multihop = r.Multihop }},
	{"ttlSecurity", func(a, b *Client) bool { return a.TTLSecurity != b.TTLSecurity }, func(c, r *Client) { c.TTLSecurity = r.TTLSecurity }},
	// internal or external: the whole group stays as it runs
	{"type", func(a, b *Client) bool { return a.Type != b.Type }, func(c, r *Client) { *c = *r }},
}

// SessionResettingClientSettings names the client group settings whose
// change waits for the pod to be replaced (KeepSessionSettings).
var SessionResettingClientSettings = func() []string {
	var out []string
	for _, s := range clientResetting {
		out = append(out, s.name)
	}
	return out
}()

// KeepSessionSettings copies into c the settings every BGP session of the
// pod is opened with (identity, families, timers, gracefulRestart, and a
// client group's SessionResettingClientSettings for that group's sessions),
// and the BIRD line and threads the pod's daemon was started with, from
// running, and names those that differed: changing one resets every
// session of the daemon, so they take effect when the pod is replaced. The
// chart rolls the pods (one at a time, each draining) through a checksum
// annotation of exactly these; the running agent keeps its values, so a
// hot-reloaded ConfigMap does not reset every RR of a group at once.
func (c *Config) KeepSessionSettings(running *Config) (kept []string) {
	if !reflect.DeepEqual(c.Identity, running.Identity) {
		kept = append(kept, "identity")
	}
	c.Identity, c.asn, c.routerID, c.clusterID = running.Identity, running.asn, running.routerID, running.clusterID
	if !reflect.DeepEqual(c.Families, running.Families) {
		kept = append(kept, "families")
		c.Families = running.Families
	}
	if c.Timers != running.Timers {
		kept = append(kept, "timers")
		c.Timers = running.Timers
	}
	if !reflect.DeepEqual(c.GracefulRestart, running.GracefulRestart) {
		kept = append(kept, "gracefulRestart")
		c.GracefulRestart = running.GracefulRestart
	}
	// the daemon takes them at its start: the pod's BIRD runs the line
	// its image holds, with the threads it was started with
	if c.Backend.Bird.Version != running.Backend.Bird.Version {
		kept = append(kept, "backend.bird.version")
		c.Backend.Bird.Version = running.Backend.Bird.Version
	}
	if c.Backend.Bird.Threads != running.Backend.Bird.Threads {
		kept = append(kept, "backend.bird.threads")
		c.Backend.Bird.Threads = running.Backend.Bird.Threads
	}
	// BIRD restarts a client group's sessions to change these, on every pod
	// at once
	for i := range c.Clients {
		cl := &c.Clients[i]
		j := slices.IndexFunc(running.Clients, func(r Client) bool { return r.Name == cl.Name })
		if j < 0 {
			continue // a new group takes its settings at once
		}
		r := &running.Clients[j]
		for _, s := range clientResetting {
			if s.differs(cl, r) {
				kept = append(kept, "clients["+r.Name+"]."+s.name)
				s.keep(cl, r)
			}
		}
	}
	return kept
}
