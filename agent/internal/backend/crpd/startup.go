package crpd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/meshrr/meshrr/agent/internal/fileutil"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// Startup is what the startup juniper.conf needs.
type Startup struct {
	RouterID  netip.Addr
	ASN       model.ASN
	User      string
	PublicKey string // authorized-key form: "ssh-ed25519 AAAA..."
	License   string
	Extra     string // operator additions, verbatim
}

// RenderStartup renders the startup configuration. It is pure.
func RenderStartup(s Startup) ([]byte, error) {
	if quoteErr(s.License) != nil || quoteErr(s.PublicKey) != nil {
		return nil, errors.New("crpd: licence and key must be single lines of printable ASCII without quotes or backslashes")
	}
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, "startup.tmpl", s); err != nil {
		return nil, fmt.Errorf("crpd: render startup: %w", err)
	}
	return buf.Bytes(), nil
}

// Files are the paths Init writes and reads.
type Files struct {
	Startup   string // juniper.conf cRPD starts with
	Key       string // the agent's private key
	HostKey   string // cRPD's SSH host key (provisioned by the agent)
	KnownHost string // its public half, the only host key the agent accepts
	License   string // the licence key, "" for none
}

// Init provisions the agent's key and cRPD's host key when missing and
// writes the startup configuration when none exists (a persistent
// configuration is kept: the identity arrives with the MESHRR group at the
// first apply).
func Init(f Files, s Startup) (written bool, err error) {
	signer, _, err := EnsureKey(f.Key)
	if err != nil {
		return false, err
	}
	if _, err := EnsureHostKey(f.HostKey, f.KnownHost); err != nil {
		return false, err
	}
	startupFile, licenseFile := f.Startup, f.License
	if _, err := os.Stat(startupFile); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("crpd: %w", err)
	}
	s.PublicKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	if licenseFile != "" {
		lic, err := os.ReadFile(licenseFile)
		if err != nil {
			return false, fmt.Errorf("crpd: licence: %w (mount the licence Secret)", err)
		}
		s.License = strings.TrimSpace(string(lic))
	}
	out, err := RenderStartup(s)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(startupFile), 0o755); err != nil {
		return false, fmt.Errorf("crpd: %w", err)
	}
	if err := fileutil.WriteAtomic(startupFile, out); err != nil {
		return false, fmt.Errorf("crpd: %w", err)
	}
	return true, nil
}
