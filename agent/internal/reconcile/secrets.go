package reconcile

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
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
//
// A group's key rolls over with two more keys of the Secret: "<key>.next"
// (the next key) and "<key>.next-window" ("FROM/UNTIL", two RFC 3339
// times: the group's sessions switch one after the other in between, see
// model.Key). A rollover that cannot be read is refused (rollover: by
// group, with why) and the group keeps its current key.
func readPasswords(c *config.Config) (keys map[model.GroupName]model.Key, refused, rollover map[model.GroupName]string) {
	keys, refused, rollover = map[model.GroupName]model.Key{}, map[model.GroupName]string{}, map[model.GroupName]string{}
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
		k, err := readKey(p)
		switch {
		case err != nil:
			refused[name] = fmt.Sprintf("%s: key %q %v", secret, key, err)
			return
		case k == "" && c.PasswordRequired(name, client):
			refused[name] = fmt.Sprintf("%s has no key %q: add it (1-80 printable ASCII characters) or leave %s out of tcpMD5Keys", secret, key, key)
			return
		case k == "":
			return
		}
		next, err := readRollover(p, k)
		if err != nil {
			rollover[name] = fmt.Sprintf("%s: %v; the sessions keep key %q", secret, err, key)
		}
		keys[name] = next
	}
	for _, g := range c.SessionGroups() {
		read(g.Name, g.Client)
	}
	return keys, refused, rollover
}

// readKey reads one key file: "" when it does not exist, an error (never
// with the key) when it cannot be read or is not a key BIRD and Junos take.
func readKey(path string) (string, error) {
	b, err := fileutil.ReadIfExists(path)
	if err != nil {
		return "", fmt.Errorf("cannot be read (%v)", err)
	}
	if b == nil {
		return "", nil
	}
	k := strings.TrimRight(string(b), "\r\n")
	if k == "" || len(k) > 80 || strings.ContainsAny(k, "\"\\") || strings.ContainsFunc(k, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsPrint(r) }) {
		return "", errors.New("must be 1-80 printable ASCII characters without quotes or backslashes")
	}
	return k, nil
}

// readRollover reads the next key and its window beside a group's key
// file: the key alone without either, an error when only one exists or
// either is malformed.
func readRollover(path, current string) (model.Key, error) {
	k := model.Key{Current: current}
	base := filepath.Base(path)
	next, err := readKey(path + ".next")
	if err != nil {
		return k, fmt.Errorf("key %q %v", base+".next", err)
	}
	b, err := fileutil.ReadIfExists(path + ".next-window")
	if err != nil {
		return k, fmt.Errorf("key %q cannot be read (%v)", base+".next-window", err)
	}
	window := strings.TrimSpace(string(b))
	switch {
	case next == "" && b == nil:
		return k, nil
	case next == "":
		return k, fmt.Errorf("key %q has no key %q beside it: add the next key, or remove the window", base+".next-window", base+".next")
	case b == nil:
		return k, fmt.Errorf("key %q has no key %q beside it: add FROM/UNTIL (RFC 3339 times, e.g. 2026-12-07T08:00:00Z/2026-12-07T08:10:00Z), the window in which the sessions switch", base+".next", base+".next-window")
	}
	from, until, ok := strings.Cut(window, "/")
	f, err1 := time.Parse(time.RFC3339, from)
	u, err2 := time.Parse(time.RFC3339, until)
	if !ok || err1 != nil || err2 != nil || u.Before(f) {
		return k, fmt.Errorf("key %q must be FROM/UNTIL, two RFC 3339 times with UNTIL not before FROM (e.g. 2026-12-07T08:00:00Z/2026-12-07T08:10:00Z)", base+".next-window")
	}
	k.Next, k.From, k.Until = next, f, u
	return k, nil
}

// redact removes every key from an error's text (daemons may echo
// configuration lines in their errors, which end up in logs and Events).
func redact(err error, secrets []string) error {
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
