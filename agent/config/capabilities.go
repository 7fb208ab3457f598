package config

// Capabilities is what a backend renders beyond the common BGP core.
// Validation consults this one table, so a setting a backend cannot do is
// refused once, naming the field, and never reaches a renderer
// (docs/features.md lists the same per backend, with the reasons).
type Capabilities struct {
	EVPN           bool // the evpn family (BIRD 2 has no EVPN)
	MaxPrefixBlock bool // maxPrefixAction: block (Junos has no such action)
	TTLSecurity    bool // GTSM (Junos does it with a firewall filter, not rendered)
	LongLivedGR    bool // long-lived graceful restart (not rendered for cRPD yet)
}

var capabilities = map[BackendType]Capabilities{
	BackendBird: {EVPN: false, MaxPrefixBlock: true, TTLSecurity: true, LongLivedGR: true},
	BackendCRPD: {EVPN: true, MaxPrefixBlock: false, TTLSecurity: false, LongLivedGR: false},
}

// Can is the configured backend's capabilities (none for an unknown
// backend, which validateBackend reports).
func (c *Config) Can() Capabilities { return capabilities[c.Backend.Type] }
