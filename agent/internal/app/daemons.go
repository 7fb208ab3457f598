package app

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/backend/bird"
	"github.com/meshrr/meshrr/agent/internal/backend/crpd"
)

// daemon is what the agent knows of a backend type: how to open the
// backend (run, sessions) and how to write the daemon's startup
// configuration (init). A new backend is one entry of daemons.
type daemon struct {
	// open builds the backend; current is the configuration in force (it
	// follows reloads) for what the backend reads at every reconcile.
	open func(c *config.Config, current func() *config.Config) (backend.Backend, error)
	// bootstrap writes the startup configuration unless one exists, and
	// says which file and whether it wrote it.
	bootstrap func(c *config.Config, rid netip.Addr) (file string, written bool, err error)
}

// birdBackend is the configuration's BIRD section with BIRD 3's threads
// resolved (from the BIRD container's CPUs when backend.bird.threads is 0).
func birdBackend(c *config.Config) config.BirdBackend {
	b := c.Backend.Bird
	b.Threads = b.BirdThreads(os.Getenv(config.BirdCPUsEnv))
	return b
}

var daemons = map[config.BackendType]daemon{
	config.BackendBird: {
		open: func(c *config.Config, _ func() *config.Config) (backend.Backend, error) {
			return bird.New(birdBackend(c)), nil
		},
		bootstrap: func(c *config.Config, rid netip.Addr) (string, bool, error) {
			written, err := bird.New(birdBackend(c)).WriteBootstrap(rid)
			return c.Backend.Bird.ConfigFile, written, err
		},
	},
	config.BackendCRPD: {
		open: func(c *config.Config, current func() *config.Config) (backend.Backend, error) {
			k := c.Backend.CRPD
			sshCfg, err := crpd.SSHConfig(k.User, k.KeyFile, k.KnownHostFile, 10*time.Second)
			if err != nil {
				return nil, err
			}
			limits := func() crpd.Limits {
				l := current().Backend.CRPD.LicenseLimits
				return crpd.Limits{BGPPeers: *l.BGPPeers, RIBEntries: *l.RIBEntries}
			}
			return crpd.New(crpd.NewConn(k.Address, sshCfg).WithRPCTimeout(k.RPCTimeout.Duration), k.StateFile).WithLimits(limits), nil
		},
		bootstrap: func(c *config.Config, rid netip.Addr) (string, bool, error) {
			k := c.Backend.CRPD
			st := crpd.Startup{RouterID: rid, ASN: c.ASN(), User: k.User}
			if k.ExtraConfigFile != "" {
				extra, err := os.ReadFile(k.ExtraConfigFile)
				if err != nil {
					return k.StartupConfig, false, fmt.Errorf("backend.crpd.extraConfigFile: %w", err)
				}
				st.Extra = strings.TrimSpace(string(extra))
			}
			written, err := crpd.Init(crpd.Files{Startup: k.StartupConfig, Key: k.KeyFile, HostKey: k.HostKeyFile, KnownHost: k.KnownHostFile, License: k.LicenseFile}, st)
			return k.StartupConfig, written, err
		},
	},
}

// daemonOf is the configured backend type's entry.
func daemonOf(c *config.Config) (daemon, error) {
	d, ok := daemons[c.Backend.Type]
	if !ok {
		var known []string
		for t := range daemons {
			known = append(known, string(t))
		}
		slices.Sort(known)
		return daemon{}, fmt.Errorf("backend.type %q is not available (supported: %s)", c.Backend.Type, strings.Join(known, ", "))
	}
	return d, nil
}

// newBackend opens the configured backend.
func newBackend(c *config.Config, current func() *config.Config) (backend.Backend, error) {
	d, err := daemonOf(c)
	if err != nil {
		return nil, err
	}
	return d.open(c, current)
}
