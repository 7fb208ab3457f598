package config

import "reflect"

// KeepSessionSettings copies into c the settings every BGP session of the
// pod is opened with (identity, families, timers, gracefulRestart, and a
// client group's addPaths for that group's sessions) from
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
	// ADD-PATH is negotiated when a session opens: BIRD restarts the
	// group's sessions to change it, on every pod at once
	for i := range c.Clients {
		for _, r := range running.Clients {
			if r.Name == c.Clients[i].Name && r.AddPaths != c.Clients[i].AddPaths {
				kept = append(kept, "clients["+r.Name+"].addPaths")
				c.Clients[i].AddPaths = r.AddPaths
			}
		}
	}
	return kept
}
