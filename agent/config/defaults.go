package config

import (
	"time"

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
	// BIRD 2's memory per route held and without routes (docs/scale.md)
	DefaultBirdBytesPerRoute = 250
	DefaultBirdBaseMemory    = "32Mi"
	// BFD: detection in 600 ms, slow enough for pods under CPU limits
	DefaultBFDInterval   = 200 * time.Millisecond
	DefaultBFDMultiplier = 3
)

// SetDefaults fills every unset field with its documented default.
func (c *Config) SetDefaults() {
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
	if b.BytesPerRoute == 0 {
		b.BytesPerRoute = DefaultBirdBytesPerRoute
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
	setDur(&k.RPCTimeout, 2*time.Minute)
	if k.LicenseLimits.BGPPeers == nil {
		k.LicenseLimits.BGPPeers = ptr(DefaultLicenseBGPPeers)
	}
	if k.LicenseLimits.RIBEntries == nil {
		k.LicenseLimits.RIBEntries = ptr(DefaultLicenseRIBEntries)
	}
	if u := c.Upstream; u != nil {
		if u.MaxPeers == 0 {
			u.MaxPeers = DefaultMaxPeers
		}
		setDur(&u.GracePeriod, DefaultGracePeriod)
		setDur(&u.HoldDown, DefaultHoldDown)
		if u.Epsilon == 0 {
			u.Epsilon = DefaultEpsilon
		}
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
	for _, b := range c.bfds() {
		if b.v != nil {
			setDur(&b.v.Interval, DefaultBFDInterval)
			setInt(&b.v.Multiplier, DefaultBFDMultiplier)
		}
	}
	if c.Families == nil {
		c.Families = []Family{FamilyUnicast}
	}
	t := &c.Timers
	setInt(&t.ConnectDelay, 1) // BIRD's default 5 s delays every new mesh session
	setInt(&t.ConnectRetry, 5)
	setInt(&t.Hold, 90)
	setInt(&t.Keepalive, 30)
	setInt(&t.ErrorWaitMin, 1)
	setInt(&t.ErrorWaitMax, 30)
	g := &c.GracefulRestart
	if g.On() {
		setInt(&g.RestartTime, 120)
		if g.LongLived {
			setInt(&g.StaleTime, 3600)
		}
	}
	d := &c.Drain
	setDur(&d.Time, DefaultDrainTime)
	setDur(&d.WaitTimeout, DefaultDrainWait)
	if d.WaitForPeers == nil {
		d.WaitForPeers = ptr(true)
	}
	setStr(&d.ControlSocket, "/run/meshrr/agent.sock")
	setStr(&d.DoneFile, "/run/meshrr/drain-done")
	r := &c.Reconcile
	setDur(&r.Debounce, 100*time.Millisecond)
	setDur(&r.StatePoll, 5*time.Second)
	setDur(&r.RetryMax, 30*time.Second)
	setDur(&r.ConfigPoll, 2*time.Second)
	setDur(&r.DaemonPoll, time.Second)
	setDur(&r.ShrinkHold, 30*time.Second)
	if r.MaxRemovedShare == 0 {
		r.MaxRemovedShare = 0.5
	}
	setStr(&r.StateFile, "/run/meshrr/state.json")
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

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDur(p *Duration, v time.Duration) {
	if p.Duration == 0 {
		p.Duration = v
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
