package reconcile

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/fileutil"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// readPasswords reads the TCP-MD5 keys of the configured session groups,
// at every reconcile so that a rotated Secret takes effect. A missing file
// leaves its group without MD5. Messages name the file, never the key.
func readPasswords(c *config.Config) (map[string]string, error) {
	out := map[string]string{}
	read := func(name string, client bool) error {
		p := c.PasswordFile(name, client)
		if p == "" {
			return nil
		}
		b, err := fileutil.ReadIfExists(p)
		if err != nil {
			return fmt.Errorf("passwordDir: %w", err)
		}
		if b == nil {
			return nil
		}
		k := strings.TrimRight(string(b), "\r\n")
		if k == "" || len(k) > 80 || strings.ContainsAny(k, "\"\\") || strings.ContainsFunc(k, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsPrint(r) }) {
			return fmt.Errorf("passwordDir: the key in %s must be 1-80 printable ASCII characters without quotes or backslashes", filepath.Base(p))
		}
		out[name] = k
		return nil
	}
	err := read(string(model.RoleMesh), false)
	if c.Upstream != nil {
		err = errors.Join(err, read(string(model.RoleUpstream), false))
	}
	for _, cl := range c.Clients {
		err = errors.Join(err, read(cl.Name, true))
	}
	return out, err
}

// redact removes every key from an error's text (daemons may echo
// configuration lines in their errors, which end up in logs and Events).
func redact(err error, secrets map[string]string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, "<redacted>")
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}
