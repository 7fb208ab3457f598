package config

import "reflect"

// SessionSettings names the settings every BGP session of the pod is
// opened with: changing one resets every session of the daemon. The chart
// rolls the pods (one at a time, each draining) when one of them changes,
// through a checksum annotation of exactly these; a running agent keeps
// the values it started with (KeepSessionSettings), so a hot-reloaded
// ConfigMap does not reset every RR of a group at once.
var SessionSettings = []string{"identity", "families", "timers", "gracefulRestart"}

// KeepSessionSettings copies the SessionSettings of running into c, and
// names those that differed: they take effect when the pod is replaced.
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
	return kept
}
