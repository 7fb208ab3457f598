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
)

// EnsureKey returns the agent's ed25519 key, generating it (mode 0600) when
// keyFile does not exist. The private key never leaves the file.
func EnsureKey(keyFile string) (ssh.Signer, bool, error) {
	if raw, err := os.ReadFile(keyFile); err == nil {
		s, err := ssh.ParsePrivateKey(raw)
		if err != nil {
			return nil, false, fmt.Errorf("crpd: %s is not a private key: %w", keyFile, err)
		}
		return s, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("crpd: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "meshrr-agent")
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		return nil, false, fmt.Errorf("crpd: %w", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, false, fmt.Errorf("crpd: %w", err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	return s, true, err
}

// SSHConfig is the agent's SSH client configuration: its key, and cRPD's
// host key trusted on first use (stored in knownHostFile, which lives in
// the pod's volume; a different key later is refused).
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
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: trustOnFirstUse(knownHostFile),
		Timeout:         timeout,
	}, nil
}

func trustOnFirstUse(file string) ssh.HostKeyCallback {
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		known, err := os.ReadFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			return os.WriteFile(file, ssh.MarshalAuthorizedKey(key), 0o600)
		}
		if err != nil {
			return err
		}
		want, _, _, _, err := ssh.ParseAuthorizedKey(known)
		if err != nil {
			return fmt.Errorf("crpd: %s: %w", file, err)
		}
		if !bytes.Equal(want.Marshal(), key.Marshal()) {
			return fmt.Errorf("crpd: host key changed (stored in %s); refusing to connect", file)
		}
		return nil
	}
}
