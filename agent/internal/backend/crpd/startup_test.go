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
	written, err := Init(conf, key, lic, s)
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
	written, err = Init(conf, key, lic, s)
	require.NoError(t, err)
	assert.False(t, written)
	again, _ := os.ReadFile(key)
	assert.Equal(t, raw, again, "the key is generated once per pod volume")
	cfg, _ = os.ReadFile(conf)
	assert.Equal(t, "/* operator's */\n", string(cfg))

	_, err = Init(filepath.Join(dir, "other.conf"), key, filepath.Join(dir, "missing"), s)
	assert.ErrorContains(t, err, "mount the licence Secret")
}

func TestSSHConfigTrustsTheHostKeyOnFirstUseOnly(t *testing.T) {
	srv, serverCfg := startFakeJunos(t, false)
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	signer, _, err := EnsureKey(key)
	require.NoError(t, err)
	srv.clients = signer.PublicKey()
	known := filepath.Join(dir, "known_host")
	cfg, err := SSHConfig("meshrr-agent", key, known, 0)
	require.NoError(t, err)
	_, _, err = NewConn(srv.addr, cfg).Do(ctx5(t), "<get-bgp-summary-information/>")
	require.NoError(t, err)
	_, err = os.Stat(known)
	require.NoError(t, err, "the host key is stored on first use")

	other, _ := startFakeJunos(t, false) // another host key on another server
	other.clients = signer.PublicKey()
	_, _, err = NewConn(other.addr, cfg).Do(ctx5(t), "<get-bgp-summary-information/>")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "host key changed")
	_ = serverCfg
}
