package config

import (
	"errors"
	"fmt"
	"time"

	kjson "sigs.k8s.io/json"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Defaults, documented in the chart's values.yaml and docs/configuration.md.
const (
	DefaultBirdSocket     = "/run/bird/bird.ctl"
	DefaultBirdConfigFile = "/run/meshrr/bird.conf"
	DefaultBirdInclude    = "/etc/bird/conf.d/*.conf"
	DefaultMaxPeers       = 2
	DefaultGracePeriod    = 90 * time.Second
	DefaultHoldDown       = 5 * time.Minute
	DefaultEpsilon        = 0.05
	DefaultListen         = ":9479"
	DefaultDrainTime      = 15 * time.Second
	DefaultDrainWait      = 60 * time.Second
	// the chart mounts this file (in the run-meshrr volume) into the cRPD container
	DefaultCRPDHostKeyFile = "/run/meshrr/crpd/ssh_host_ed25519_key"
	// cRPD's standard licence, as Juniper's meshrr documents it
	DefaultLicenseBGPPeers   = 16
	DefaultLicenseRIBEntries = 4000000
	// BIRD's memory per route held, BIRD 2 and BIRD 3, and without routes
	// (docs/scale.md: twice the measurement)
	DefaultBirdBytesPerRoute  = 250
	DefaultBird3BytesPerRoute = 500
	DefaultBirdBaseMemory     = "32Mi"
	// BFD: detection in 600 ms, slow enough for pods under CPU limits
	DefaultBFDInterval   = 200 * time.Millisecond
	DefaultBFDMultiplier = 3
	// graceful restart: peers wait 120 s; long-lived keeps routes an hour
	DefaultRestartTime = 120
	DefaultStaleTime   = 3600
)

// Defaults come in two kinds. Numbers and durations are the starting
// value the file is decoded over (defaultConfig, and for the sections that
// are pointers or list items, their UnmarshalJSON): a 0 written in the file
// therefore stays 0, and validation judges it (hold: 0 is a legal BGP hold
// time, and must not silently become 90 s). Strings, lists and settings
// that depend on other fields are filled after decoding (fill): an empty
// string is "left out".

// defaultConfig is the configuration of a file that sets nothing.
func defaultConfig() Config {
	return Config{
		Backend: Backend{
			Bird: BirdBackend{},
			CRPD: CRPDBackend{RPCTimeout: Duration{2 * time.Minute}},
		},
		Timers: Timers{
			ConnectDelay: 1, // BIRD's default 5 s delays every new mesh session
			ConnectRetry: 5,
			Hold:         90,
			Keepalive:    30,
			ErrorWaitMin: 1,
			ErrorWaitMax: 30,
		},
		GracefulRestart: GracefulRestart{RestartTime: DefaultRestartTime},
		Drain:           Drain{Time: Duration{DefaultDrainTime}, WaitTimeout: Duration{DefaultDrainWait}},
		Reconcile: Reconcile{
			Debounce:        Duration{100 * time.Millisecond},
			StatePoll:       Duration{5 * time.Second},
			RetryMax:        Duration{30 * time.Second},
			ConfigPoll:      Duration{2 * time.Second},
			DaemonPoll:      Duration{time.Second},
			ShrinkHold:      Duration{30 * time.Second},
			MaxRemovedShare: 0.5,
		},
	}
}

// UnmarshalJSON decodes an upstream section over its defaults.
func (u *Upstream) UnmarshalJSON(b []byte) error {
	type fields Upstream // without this method
	f := fields{MaxPeers: DefaultMaxPeers, GracePeriod: Duration{DefaultGracePeriod}, HoldDown: Duration{DefaultHoldDown}, Epsilon: DefaultEpsilon}
	if err := decodeStrict(b, &f); err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	*u = Upstream(f)
	return nil
}

// UnmarshalJSON decodes a BFD section over its defaults.
func (b *BFD) UnmarshalJSON(data []byte) error {
	type fields BFD
	f := fields{Interval: Duration{DefaultBFDInterval}, Multiplier: DefaultBFDMultiplier}
	if err := decodeStrict(data, &f); err != nil {
		return fmt.Errorf("bfd: %w", err)
	}
	*b = BFD(f)
	return nil
}

// UnmarshalJSON decodes graceful restart over its defaults; the stale time
// defaults only with longLived, so whether the file gives it is read here.
func (g *GracefulRestart) UnmarshalJSON(b []byte) error {
	type fields GracefulRestart
	f := struct {
		*fields
		StaleTime *int `json:"staleTime,omitempty"` // shadows fields.StaleTime
	}{fields: (*fields)(g)}
	if err := decodeStrict(b, &f); err != nil {
		return fmt.Errorf("gracefulRestart: %w", err)
	}
	switch {
	case f.StaleTime != nil:
		g.StaleTime = *f.StaleTime
	case g.LongLived:
		g.StaleTime = DefaultStaleTime
	}
	return nil
}

// decodeStrict decodes JSON as the API server does: keys match field
// names exactly (longlived is not longLived), and an unknown or repeated
// key is an error. The file and every section decoded over its defaults
// go through it.
func decodeStrict(b []byte, v any) error {
	strict, err := kjson.UnmarshalStrict(b, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// fill sets the strings, lists and dependent settings the file left out.
func (c *Config) fill() {
	setStr(&c.Identity.RouterID, RouterIDAuto)
	setStr(&c.Identity.ClusterID, ClusterIDRouter)
	setStr(&c.Backend.Type, BackendBird)
	b := &c.Backend.Bird
	setStr(&b.Socket, DefaultBirdSocket)
	setStr(&b.ConfigFile, DefaultBirdConfigFile)
	if b.Include == nil {
		b.Include = []string{DefaultBirdInclude}
	}
	if b.StrictBind == nil {
		b.StrictBind = ptr(true)
	}
	if c.PasswordDir != "" && c.PasswordKeys == nil {
		c.PasswordKeys = c.sessionGroupKeys() // fail closed: every session group needs its key
	}
	setStr(&b.BaseMemory, DefaultBirdBaseMemory)
	k := &c.Backend.CRPD
	setStr(&k.Address, "127.0.0.1:830")
	setStr(&k.User, "meshrr-agent")
	setStr(&k.KeyFile, "/run/meshrr/crpd/id_ed25519")
	setStr(&k.HostKeyFile, DefaultCRPDHostKeyFile)
	setStr(&k.KnownHostFile, "/run/meshrr/crpd/known_host")
	setStr(&k.StateFile, "/run/meshrr/crpd/applied.conf")
	setStr(&k.StartupConfig, "/config/juniper.conf")
	if k.LicenseLimits.BGPPeers == nil {
		k.LicenseLimits.BGPPeers = ptr(DefaultLicenseBGPPeers)
	}
	if k.LicenseLimits.RIBEntries == nil {
		k.LicenseLimits.RIBEntries = ptr(DefaultLicenseRIBEntries)
	}
	if d := c.Downstream; d != nil && d.MaxPrefixes > 0 {
		setStr(&d.MaxPrefixAction, LimitRestart)
	}
	for i := range c.Clients {
		cl := &c.Clients[i]
		setStr(&cl.Type, ClientInternal)
		setStr(&cl.Export.Tier, TierFull)
		if cl.MaxPrefixes > 0 {
			setStr(&cl.MaxPrefixAction, LimitRestart)
		}
		if cl.NextHopUnchanged == nil {
			cl.NextHopUnchanged = ptr(cl.Type == ClientExternal)
		}
	}
	if c.Families == nil {
		c.Families = []Family{FamilyUnicast}
	}
	d := &c.Drain
	if d.WaitForPeers == nil {
		d.WaitForPeers = ptr(true)
	}
	setStr(&d.ControlSocket, "/run/meshrr/agent.sock")
	setStr(&d.DoneFile, "/run/meshrr/drain-done")
	setStr(&c.Reconcile.StateFile, "/run/meshrr/state.json")
	setStr(&c.Status.Listen, DefaultListen)
	if c.Status.ReadyRequiresEstablished == nil {
		c.Status.ReadyRequiresEstablished = ptr(true)
	}
}

func ptr[T any](v T) *T { return &v }

func setStr[T ~string](p *T, v T) {
	if *p == "" {
		*p = v
	}
}

type fieldBFD struct {
	field *field.Path
	v     *BFD
}

// bfds lists the BFD settings of every session group with its field.
func (c *Config) bfds() []fieldBFD {
	out := []fieldBFD{{field.NewPath("mesh", "bfd"), c.Mesh.BFD}}
	if c.Upstream != nil {
		out = append(out, fieldBFD{field.NewPath("upstream", "bfd"), c.Upstream.BFD})
	}
	for i := range c.Clients {
		out = append(out, fieldBFD{field.NewPath("clients").Index(i).Child("bfd"), c.Clients[i].BFD})
	}
	return out
}
