package crpd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/meshrr/meshrr/agent/internal/fileutil"
)

// EnsureKey returns the agent's ed25519 key, generating it (mode 0600) when
// keyFile does not exist. The private key never leaves the file.
func EnsureKey(keyFile string) (ssh.Signer, bool, error) {
	return ensureEd25519(keyFile, "meshrr-agent")
}

// EnsureHostKey provisions the SSH host key cRPD serves NETCONF with: an
// ed25519 key in hostKeyFile (generated when missing; the chart mounts it
// at /etc/ssh/ssh_host_ed25519_key in the cRPD container), and its public
// half in knownHostFile, the only key the agent accepts. Nothing is
// trusted on first use, and a restarted cRPD container serves the same key
// (both files live in the pod's volume), so a restart cannot lock the agent
// out; whoever could replace the key could already write the pod's volume.
func EnsureHostKey(hostKeyFile, knownHostFile string) (ssh.PublicKey, error) {
	s, _, err := ensureEd25519(hostKeyFile, "crpd-netconf")
	if err != nil {
		return nil, err
	}
	if err := fileutil.WriteAtomic(knownHostFile, ssh.MarshalAuthorizedKey(s.PublicKey())); err != nil {
		return nil, fmt.Errorf("crpd: %w", err)
	}
	return s.PublicKey(), nil
}

func ensureEd25519(file, comment string) (ssh.Signer, bool, error) {
	if raw, err := os.ReadFile(file); err == nil {
		s, err := ssh.ParsePrivateKey(raw)
		if err != nil {
			return nil, false, fmt.Errorf("crpd: %s is not a private key: %w", file, err)
		}
		return s, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("crpd: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, false, fmt.Errorf("crpd: %w", err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, false, fmt.Errorf("crpd: %w", err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	return s, true, err
}

// SSHConfig is the agent's SSH client configuration: its key, and only the
// host key the agent provisioned (knownHostFile, written by
// EnsureHostKey; read at every connection).
func SSHConfig(user, keyFile, knownHostFile string, timeout time.Duration) (*ssh.ClientConfig, error) {
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("crpd: agent key: %w (run meshrr-agent init)", err)
	}
	signer, err := ssh.ParsePrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("crpd: %s is not a private key: %w", keyFile, err)
	}
	return &ssh.ClientConfig{
		User:              user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   provisioned(knownHostFile),
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519}, // the provisioned key, not another one sshd may hold
		Timeout:           timeout,
	}, nil
}

func provisioned(file string) ssh.HostKeyCallback {
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		known, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("crpd: the provisioned host key: %w (run meshrr-agent init)", err)
		}
		want, _, _, _, err := ssh.ParseAuthorizedKey(known)
		if err != nil {
			return fmt.Errorf("crpd: %s: %w", file, err)
		}
		if !bytes.Equal(want.Marshal(), key.Marshal()) {
			return fmt.Errorf("crpd: the NETCONF server's host key (%s) is not the one meshrr provisioned (%s, in %s): cRPD must serve the key mounted at /etc/ssh/ssh_host_ed25519_key; refusing to connect",
				ssh.FingerprintSHA256(key), ssh.FingerprintSHA256(want), file)
		}
		return nil
	}
}
