package crpd

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/meshrr/meshrr/agent/internal/testutil/fixture"
)

func TestStartupGolden(t *testing.T) {
	out, err := RenderStartup(Startup{RouterID: netip.MustParseAddr("10.244.1.5"), ASN: 65000, User: "meshrr-agent",
		PublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample", License: "JUNOS_LICENSE_KEY",
		Extra: "protocols {\n    bfd;\n}"})
	require.NoError(t, err)
	fixture.Golden(t, filepath.Join("testdata", "startup.golden"), out, *update)
	assert.Equal(t, strings.Count(string(out), "{"), strings.Count(string(out), "}"))
	_, err = RenderStartup(Startup{License: "bad\"licence"})
	assert.Error(t, err)
}

func TestInitGeneratesAPrivateKeyOnceAndKeepsAnExistingConfiguration(t *testing.T) {
	dir := t.TempDir()
	key, conf, lic := filepath.Join(dir, "crpd", "id_ed25519"), filepath.Join(dir, "config", "juniper.conf"), filepath.Join(dir, "license")
	require.NoError(t, os.WriteFile(lic, []byte("LICENCE-KEY\n"), 0o600))
	s := Startup{RouterID: netip.MustParseAddr("10.244.1.5"), ASN: 65000, User: "meshrr-agent"}
	files := Files{Startup: conf, Key: key, HostKey: filepath.Join(dir, "crpd", "ssh_host_ed25519_key"), KnownHost: filepath.Join(dir, "crpd", "known_host"), License: lic}
	written, err := Init(files, s)
	require.NoError(t, err)
	assert.True(t, written)
	st, err := os.Stat(key)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the private key is readable by the agent only")
	raw, _ := os.ReadFile(key)
	signer, err := ssh.ParsePrivateKey(raw)
	require.NoError(t, err)
	cfg, _ := os.ReadFile(conf)
	assert.Contains(t, string(cfg), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))))
	assert.Contains(t, string(cfg), `key "LICENCE-KEY";`)
	assert.NotContains(t, string(cfg), "PRIVATE KEY")

	require.NoError(t, os.WriteFile(conf, []byte("/* operator's */\n"), 0o644))
	written, err = Init(files, s)
	require.NoError(t, err)
	assert.False(t, written)
	again, _ := os.ReadFile(key)
	assert.Equal(t, raw, again, "the key is generated once per pod volume")
	cfg, _ = os.ReadFile(conf)
	assert.Equal(t, "/* operator's */\n", string(cfg))

	other := files
	other.Startup, other.License = filepath.Join(dir, "other.conf"), filepath.Join(dir, "missing")
	_, err = Init(other, s)
	assert.ErrorContains(t, err, "mount the licence Secret")
}

// The agent accepts only the host key it provisioned: a cRPD container
// restarted with the same pod volume serves it again (connects), while any
// other key on the NETCONF port is refused with the reason, and nothing is
// trusted on first use.
func TestSSHConfigAcceptsOnlyTheProvisionedHostKey(t *testing.T) {
	dir := t.TempDir()
	files := Files{Startup: filepath.Join(dir, "juniper.conf"), Key: filepath.Join(dir, "id_ed25519"),
		HostKey: filepath.Join(dir, "ssh_host_ed25519_key"), KnownHost: filepath.Join(dir, "known_host")}
	_, err := Init(files, Startup{RouterID: netip.MustParseAddr("10.244.1.5"), ASN: 65000, User: "meshrr-agent"})
	require.NoError(t, err)
	st, err := os.Stat(files.HostKey)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	raw, err := os.ReadFile(files.HostKey)
	require.NoError(t, err)
	hostKey, err := ssh.ParsePrivateKey(raw)
	require.NoError(t, err, "sshd reads the OpenSSH private key format")
	agentKey, _, err := EnsureKey(files.Key)
	require.NoError(t, err)
	cfg, err := SSHConfig("meshrr-agent", files.Key, files.KnownHost, 0)
	require.NoError(t, err)

	for i := range 2 { // the cRPD container restarts: a new server, the same provisioned key
		srv, _ := startFakeJunosWithHostKey(t, false, hostKey)
		srv.clients = agentKey.PublicKey()
		_, _, err = NewConn(srv.addr, cfg).Do(ctx5(t), "<get-bgp-summary-information/>")
		require.NoError(t, err, "start %d", i)
	}

	stranger, _ := startFakeJunos(t, false) // a key of its own (a restarted cRPD that made one)
	stranger.clients = agentKey.PublicKey()
	_, _, err = NewConn(stranger.addr, cfg).Do(ctx5(t), "<get-bgp-summary-information/>")
	require.ErrorContains(t, err, "is not the one meshrr provisioned")
	assert.Contains(t, err.Error(), "/etc/ssh/ssh_host_ed25519_key")

	// Init again (the pod restarts): the same host key, the same known host
	before, _ := os.ReadFile(files.KnownHost)
	_, err = Init(files, Startup{RouterID: netip.MustParseAddr("10.244.1.5"), ASN: 65000, User: "meshrr-agent"})
	require.NoError(t, err)
	after, _ := os.ReadFile(files.KnownHost)
	assert.Equal(t, before, after)

	// no provisioned key, no connection (not trust on first use)
	require.NoError(t, os.Remove(files.KnownHost))
	srv, _ := startFakeJunosWithHostKey(t, false, hostKey)
	srv.clients = agentKey.PublicKey()
	_, _, err = NewConn(srv.addr, cfg).Do(ctx5(t), "<get-bgp-summary-information/>")
	require.ErrorContains(t, err, "run meshrr-agent init")
}
