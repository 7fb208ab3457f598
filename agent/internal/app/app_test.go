package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/status"
	"github.com/meshrr/meshrr/agent/internal/testutil/birdlab"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func run(t *testing.T, getenv func(string) string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(context.Background(), args, getenv, &out, &errb)
	return out.String(), errb.String(), err
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestCheckValidatesTheFile(t *testing.T) {
	good := writeConfig(t, "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core}\n")
	out, _, err := run(t, env(nil), "check", "--config", good)
	require.NoError(t, err)
	assert.Contains(t, out, "valid")

	bad := writeConfig(t, "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 0}\nmesh: {group: core.core}\nclients: [{name: r, ranges: [10.0.0.1/8]}]\n")
	out, _, err = run(t, env(nil), "check", "--config", bad)
	require.Error(t, err)
	assert.Contains(t, out, bad+": identity.asn: ")
	assert.Contains(t, out, bad+`: clients[0].ranges[0] (clients "r"): "10.0.0.1/8" has host bits set: did you mean 10.0.0.0/8?`)
}

// The chart's values-check hook passes every group's file: each is checked,
// every error printed, and the command fails when one is invalid.
func TestCheckReportsEveryFile(t *testing.T) {
	dir := t.TempDir()
	good, bad, broken := filepath.Join(dir, "core.yaml"), filepath.Join(dir, "edge.yaml"), filepath.Join(dir, "x.yaml")
	require.NoError(t, os.WriteFile(good, []byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: r.core}\n"), 0o600))
	require.NoError(t, os.WriteFile(bad, []byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: r.edge}\ntimers: {hold: 9, keepalive: 10}\npolicy: [{name: a, towards: [mesh], action: reject, matchCommunities: ['65000:70000']}]\n"), 0o600))
	require.NoError(t, os.WriteFile(broken, []byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: [\n"), 0o600))
	out, _, err := run(t, env(nil), "check", good, bad, broken)
	require.Error(t, err)
	assert.Equal(t, "2 of 3 configurations invalid (core.yaml, edge.yaml, x.yaml)", err.Error())
	assert.Contains(t, out, good+": valid")
	assert.Contains(t, out, bad+": timers.keepalive: 10 must be below the hold time 9")
	assert.Contains(t, out, bad+`: policy[0].matchCommunities[0] (policy "a"): `)
	assert.Contains(t, out, broken+": decode: ")
}

func TestInitWritesTheBootstrapOnceAndKeepsAnExistingConfiguration(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core}\nbackend: {bird: {configFile: "+filepath.Join(dir, "bird.conf")+", include: ['"+filepath.Join(dir, "conf.d", "*.conf")+"']}}\n")
	e := env(map[string]string{"POD_NAME": "core-0", "POD_NAMESPACE": "core", "POD_IPS": "10.244.1.5,fd00::5"})
	out, _, err := run(t, e, "init", "--config", cfg)
	require.NoError(t, err)
	assert.Contains(t, out, "router id 10.244.1.5")
	b, err := os.ReadFile(filepath.Join(dir, "bird.conf"))
	require.NoError(t, err)
	assert.Contains(t, string(b), "router id 10.244.1.5;")
	assert.Contains(t, string(b), "conf.d/*.conf")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "bird.conf"), []byte("# applied by the agent\n"), 0o644))
	out, _, err = run(t, e, "init", "--config", cfg)
	require.NoError(t, err)
	assert.Contains(t, out, "kept the existing")
	b, _ = os.ReadFile(filepath.Join(dir, "bird.conf"))
	assert.Equal(t, "# applied by the agent\n", string(b))
}

func TestMissingDownwardAPIEnvironmentIsNamed(t *testing.T) {
	cfg := writeConfig(t, "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core}\n")
	_, _, err := run(t, env(map[string]string{"POD_IPS": "10.0.0.x"}), "run", "--config", cfg)
	require.Error(t, err)
	for _, want := range []string{"POD_NAME", "POD_NAMESPACE", `POD_IPS: "10.0.0.x"`} {
		assert.Contains(t, err.Error(), want)
	}
	_, _, err = run(t, env(map[string]string{"POD_NAME": "p", "POD_NAMESPACE": "n", "POD_IP": "10.0.0.1"}), "run", "--config", cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pass --kubeconfig", "outside a pod the agent says how to connect")
}

func TestEachSubcommandTakesOnlyItsOwnFlagsAndArguments(t *testing.T) {
	cfg := writeConfig(t, "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core}\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--json", "--config", cfg}, "run: flag provided but not defined: -json (its flags: meshrr-agent run -h)"},
		{[]string{"run", "--selector", "x", "--config", cfg}, "run: flag provided but not defined: -selector"},
		{[]string{"status", "--timeout", "1s"}, "status: flag provided but not defined: -timeout"},
		{[]string{"uninstall", "--config", cfg}, "uninstall: flag provided but not defined: -config"},
		{[]string{"check", "--json", cfg}, "check: flag provided but not defined: -json"},
		{[]string{"version", "--config", cfg}, "version: flag provided but not defined: -config"},
		{[]string{"sessions", cfg}, `sessions takes no arguments, got "` + cfg + `"`},
		{[]string{"run", "--config", cfg, "--log-level", "debug", "extra"}, `run takes no arguments, got "extra"`},
		{[]string{"drain", "now"}, `drain takes no arguments, got "now"`},
		{[]string{"run", "--log-level", "loud", "--config", cfg}, "--log-level"},
	} {
		_, stderr, err := run(t, env(nil), tc.args...)
		require.Error(t, err, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.want, "%v", tc.args)
		if strings.Contains(tc.want, "not defined") {
			assert.Contains(t, stderr, "Usage of meshrr-agent "+tc.args[0], "the subcommand's own flags are listed")
		}
	}
	out, _, err := run(t, env(nil), "version")
	require.NoError(t, err)
	assert.Equal(t, Version+"\n", out)
	out, _, err = run(t, env(nil), "help")
	require.NoError(t, err)
	for _, c := range commands {
		assert.Contains(t, out, "meshrr-agent "+c.name, "the usage text lists every subcommand")
	}
}

func TestUnknownSubcommandAndCrpdInit(t *testing.T) {
	_, stderr, err := run(t, env(nil), "frobnicate")
	require.ErrorContains(t, err, `unknown subcommand "frobnicate"`)
	assert.Contains(t, stderr, "Usage:")
	_, _, err = run(t, env(nil))
	require.ErrorContains(t, err, "subcommand is required")

	dir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: core.core}\nbackend: {type: crpd, crpd: {keyFile: %s/id, startupConfig: %s/juniper.conf}}\n", dir, dir))
	out, _, err := run(t, env(map[string]string{"POD_NAME": "p", "POD_NAMESPACE": "n", "POD_IP": "10.0.0.1"}), "init", "--config", cfg)
	require.NoError(t, err)
	assert.Contains(t, out, "juniper.conf (router id 10.0.0.1)")
	_, _, err = run(t, env(nil), "sessions", "--config", cfg)
	require.ErrorContains(t, err, "crpd: connect 127.0.0.1:830", "without cRPD running the agent says what it tried")

	out, _, err = run(t, env(nil), "version")
	require.NoError(t, err)
	assert.Equal(t, "dev", strings.TrimSpace(out))
}

func TestWatchedNamespacesCoverMeshUpstreamAndSiblings(t *testing.T) {
	cfg := writeConfig(t, "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: g}\nupstream: {group: core.core, namespace: core, siblingNamespaces: [lothl, mirk, core]}\n")
	w, err := config.Load(cfg)
	require.NoError(t, err)
	assert.Equal(t, []string{"lothl", "core", "mirk"}, w.WatchedNamespaces("lothl"))
}

func TestSessionsPrintsTheDaemonsSessionsAsJSON(t *testing.T) {
	lab := birdlab.Start(t, "sessions", "127.0.30.1")
	lab.AddInclude(t, "peer", "protocol bgp mesh_127_0_30_2 { description \"meshrr:mesh ns/p\"; local 127.0.30.1 as 65000; neighbor 127.0.30.2 as 65000; strict bind yes; ipv4; }\n")
	cfg := writeConfig(t, fmt.Sprintf("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: g}\nbackend: {bird: {socket: %s, configFile: %s}}\n", lab.Socket, lab.ConfigFile))
	out, _, err := run(t, env(nil), "sessions", "--config", cfg)
	require.NoError(t, err)
	var ss []model.Session
	require.NoError(t, json.Unmarshal([]byte(out), &ss), out)
	require.Len(t, ss, 1)
	assert.Equal(t, model.GroupName("mesh"), ss[0].Group)
	assert.Equal(t, "127.0.30.2", ss[0].Peer.String())
	assert.False(t, ss[0].Established())

	lab.Stop()
	_, _, err = run(t, env(nil), "sessions", "--config", cfg)
	require.Error(t, err, "a daemon that does not answer is an error, not an empty list")
}

// A reload of the same file, or one that changes only what the loop reads
// live (the licence limits, policies, peers), never restarts the agent; a
// setting read only at start does, named. (Pointer fields once made every
// reload look like a backend change.)
func TestOnlySettingsReadAtStartRestartTheAgent(t *testing.T) {
	parse := func(y string) *config.Config {
		c, err := config.Parse([]byte(y))
		require.NoError(t, err)
		return c
	}
	base := "apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: g}\n"
	for _, backend := range []string{"", "backend: {type: crpd}\n"} {
		assert.Empty(t, restartFields(parse(base+backend), parse(base+backend)), "the same file, parsed twice")
	}
	crpd := base + "backend: {type: crpd, crpd: {licenseLimits: {bgpPeers: 16}}}\n"
	assert.Empty(t, restartFields(parse(crpd), parse(strings.Replace(crpd, "16", "64", 1))), "licence limits are read live")
	assert.Empty(t, restartFields(parse(base), parse(base+"clients: [{name: r, ranges: [10.0.0.0/8]}]\ntimers: {hold: 30, keepalive: 10}\n")), "planned settings apply live")
	assert.Equal(t, []string{"backend.crpd"}, restartFields(parse(crpd), parse(strings.Replace(crpd, "licenseLimits: {bgpPeers: 16}", "address: \"127.0.0.1:8300\"", 1))))
	assert.Equal(t, []string{"backend.type"}, restartFields(parse(base), parse(base+"backend: {type: crpd}\n")))
	assert.Equal(t, []string{"backend.bird.include", "backend.bird.strictBind", "status.listen", "drain.controlSocket"},
		restartFields(parse(base), parse(base+"backend: {bird: {include: [/etc/x/*.conf], strictBind: false}}\nstatus: {listen: \":9999\"}\ndrain: {controlSocket: /run/meshrr/other.sock}\n")))
}

// Both status commands say "degraded" with exit 2 and "could not tell"
// with exit 1 (kubectl meshrr status: cli.ExitDegraded).
func TestExitCodesMatchTheStatusPlugin(t *testing.T) {
	assert.Equal(t, 0, exitCode(nil))
	assert.Equal(t, 2, exitCode(fmt.Errorf("status: %w", status.ErrDegraded)))
	assert.Equal(t, 1, exitCode(errors.New("status: no running agent answers")))
}
