package reconcile

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/fileutil"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// readPasswords reads the TCP-MD5 keys of the configured session groups,
// at every reconcile so that a rotated Secret takes effect. It fails
// closed and locally: a session group whose key is malformed, or missing
// while the configuration requires it (config.PasswordKeys), is refused
// (by model group name, with why: the Secret and the key, never the key's
// value) and gets no session; the other groups keep their keys. A missing
// key of a group that does not require one leaves that group without MD5.
func readPasswords(c *config.Config) (keys, refused map[model.GroupName]string) {
	keys, refused = map[model.GroupName]string{}, map[model.GroupName]string{}
	secret := "the Secret mounted at " + c.PasswordDir
	if c.PasswordSecret != "" {
		secret = "Secret " + c.PasswordSecret
	}
	read := func(name model.GroupName, client bool) {
		p := c.PasswordFile(name, client)
		if p == "" {
			return
		}
		key := config.PasswordKey(name, client)
		b, err := fileutil.ReadIfExists(p)
		switch {
		case err != nil:
			refused[name] = fmt.Sprintf("%s: key %q cannot be read (%v)", secret, key, err)
			return
		case b == nil && c.PasswordRequired(name, client):
			refused[name] = fmt.Sprintf("%s has no key %q: add it (1-80 printable ASCII characters) or leave %s out of tcpMD5Keys", secret, key, key)
			return
		case b == nil:
			return
		}
		k := strings.TrimRight(string(b), "\r\n")
		if k == "" || len(k) > 80 || strings.ContainsAny(k, "\"\\") || strings.ContainsFunc(k, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsPrint(r) }) {
			refused[name] = fmt.Sprintf("%s: key %q must be 1-80 printable ASCII characters without quotes or backslashes", secret, key)
			return
		}
		keys[name] = k
	}
	read(model.GroupMesh, false)
	if c.Upstream != nil {
		read(model.GroupUpstream, false)
	}
	if c.Downstream != nil {
		read(model.GroupDownstream, false)
	}
	for _, cl := range c.Clients {
		read(model.GroupName(cl.Name), true)
	}
	return keys, refused
}

// redact removes every key from an error's text (daemons may echo
// configuration lines in their errors, which end up in logs and Events).
func redact(err error, secrets map[model.GroupName]string) error {
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
