package crpd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/fileutil"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// Backend drives one cRPD over NETCONF.
type Backend struct {
	conn *Conn
	// stateFile keeps the last configuration committed by the agent (in the
	// pod's volume): after an agent restart an identical one is not loaded
	// again. cRPD's own rendering of the group differs from ours, so the
	// committed text cannot be compared directly.
	stateFile string
	now       func() time.Time

	mu     sync.Mutex
	groups map[netip.Addr]model.GroupName // neighbour -> model group, from the applied text
	allow  []allowed
	last   []model.Session // the last sessions read, served while a commit holds the session
	lastOK bool
	limits func() Limits
}

type allowed struct {
	prefix netip.Prefix
	group  model.GroupName
}

// New returns the backend for a cRPD reached through conn.
func New(conn *Conn, stateFile string) *Backend {
	b := &Backend{conn: conn, stateFile: stateFile, now: time.Now}
	if cur, err := fileutil.ReadIfExists(stateFile); err == nil && cur != nil {
		b.remember(cur)
	}
	return b
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return string(config.BackendCRPD) }

// Render implements backend.Backend.
func (b *Backend) Render(m model.Model) ([]byte, error) { return Render(m) }

// committedDigestRPC reads the apply-macro of the committed MESHRR group.
var committedDigestRPC = `<get-configuration database="committed" format="xml"><configuration><groups><name>` +
	GroupName + `</name><apply-macro><name>` + MacroName + `</name></apply-macro></groups></configuration></get-configuration>`

// Current implements backend.Backend: the last configuration the agent
// committed, when cRPD's committed configuration still carries its digest
// (cRPD may have lost it, or someone replaced the group: then it is
// applied again).
func (b *Backend) Current(ctx context.Context) ([]byte, error) {
	cur, err := fileutil.ReadIfExists(b.stateFile)
	if err != nil || cur == nil {
		return cur, err
	}
	_, raw, err := b.conn.Do(ctx, committedDigestRPC)
	if err != nil {
		return nil, fmt.Errorf("crpd: read the committed %s group: %w", GroupName, err)
	}
	got, err := ParseCommittedDigest(raw)
	if err != nil {
		return nil, fmt.Errorf("crpd: read the committed %s group: %w", GroupName, err)
	}
	if want := DigestOf(cur); got != want {
		return nil, fmt.Errorf("crpd: the committed %s group (digest %q) is not the agent's last commit (%q)", GroupName, short(got), short(want))
	}
	return cur, nil
}

func short(d string) string { return d[:min(len(d), 12)] }

// Apply loads cfg into a private candidate, checks and commits it. Any
// error discards the private candidate (and a dropped session discards it
// too): nothing partial is ever committed.
func (b *Backend) Apply(ctx context.Context, cfg []byte) error {
	r, _, err := b.conn.Do(ctx, "<open-configuration><private/></open-configuration>")
	if err == nil {
		err = r.Err()
	}
	if err != nil {
		return fmt.Errorf("crpd: open private candidate: %w", err)
	}
	step := func(name, rpc string, check func(Reply) error) error {
		r, _, err := b.conn.Do(ctx, rpc)
		if err == nil {
			err = check(r)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	err = step("crpd rejected the configuration", `<load-configuration action="replace" format="text"><configuration-text>`+xmlText(string(cfg))+`</configuration-text></load-configuration>`, Reply.LoadErr)
	if err == nil {
		err = step("crpd: commit check", "<commit-configuration><check/></commit-configuration>", Reply.CheckErr)
	}
	if err == nil {
		err = step("crpd: commit", "<commit-configuration/>", Reply.CommitErr)
	}
	// close the private candidate; after a transport failure the session,
	// and with it the candidate, is gone already: do not dial just to close
	if err != nil {
		if b.conn.Connected() {
			_, _, _ = b.conn.Do(ctx, "<close-configuration/>")
		}
		return err
	}
	_, _, cerr := b.conn.Do(ctx, "<close-configuration/>")
	if cerr != nil {
		return fmt.Errorf("crpd: close private candidate after commit: %w", cerr)
	}
	if err := fileutil.WriteAtomic(b.stateFile, cfg); err != nil {
		return fmt.Errorf("crpd: %w", err)
	}
	b.remember(cfg)
	return nil
}

// Sessions implements backend.Backend. While another RPC (a commit) holds
// the NETCONF session, the last sessions read are served instead of
// queueing behind it: readiness, /metrics and /status stay prompt.
func (b *Backend) Sessions(ctx context.Context) ([]model.Session, error) {
	_, raw, err := b.conn.TryDo(ctx, "<get-bgp-summary-information/>")
	if errors.Is(err, ErrBusy) {
		if ss, ok := b.lastSessions(); ok {
			return ss, nil
		}
		_, raw, err = b.conn.Do(ctx, "<get-bgp-summary-information/>") // nothing read yet: wait, within ctx
	}
	if err != nil {
		return nil, err
	}
	peers, err := ParseBGPSummary(raw, b.now())
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]model.Session, 0, len(peers))
	for _, p := range peers {
		out = append(out, model.Session{
			Name: p.Addr.String(), Group: b.groupOf(p.Addr), Peer: p.Addr, State: p.State,
			Since: p.Since, Imported: p.Received,
		})
	}
	b.last, b.lastOK = slices.Clone(out), true
	return out, nil
}

func (b *Backend) lastSessions() ([]model.Session, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.last), b.lastOK
}

// Started implements backend.Backend: when cRPD's routing protocols last
// started (<protocols-started-time> of <get-system-uptime-information>,
// in the shape captured from Junos (testdata/captured/uptime.xml); not yet
// seen from a cRPD).
func (b *Backend) Started(ctx context.Context) (time.Time, error) {
	_, raw, err := b.conn.Do(ctx, "<get-system-uptime-information/>")
	if err != nil {
		return time.Time{}, err
	}
	return ParseProtocolsStarted(raw)
}

// Ping implements backend.Backend.
// A session busy with another RPC answers for itself once a read
// has succeeded.
func (b *Backend) Ping(ctx context.Context) error {
	r, _, err := b.conn.TryDo(ctx, "<get-bgp-summary-information/>")
	if errors.Is(err, ErrBusy) {
		if _, ok := b.lastSessions(); ok {
			return nil
		}
		r, _, err = b.conn.Do(ctx, "<get-bgp-summary-information/>")
	}
	if err == nil {
		err = r.Err()
	}
	return err
}

var (
	groupRE    = regexp.MustCompile(`^\s*group (\S+) \{`)
	neighborLn = regexp.MustCompile(`^\s*neighbor ([0-9a-fA-F:.]+)`)
	allowLn    = regexp.MustCompile(`^\s*allow \[ (.*) \];`)
)

// remember maps neighbours and allow ranges to model groups from a
// configuration this package rendered (group "<name>" or "<name>-v6").
func (b *Backend) remember(cfg []byte) {
	groups := map[netip.Addr]model.GroupName{}
	var allow []allowed
	var cur model.GroupName
	for _, line := range strings.Split(string(cfg), "\n") {
		if m := groupRE.FindStringSubmatch(line); m != nil {
			cur = model.GroupName(strings.TrimSuffix(m[1], "-v6"))
		} else if m := neighborLn.FindStringSubmatch(line); m != nil && cur != "" {
			if a, err := netip.ParseAddr(m[1]); err == nil {
				groups[a] = cur
			}
		} else if m := allowLn.FindStringSubmatch(line); m != nil && cur != "" {
			for _, f := range strings.Fields(m[1]) {
				if p, err := netip.ParsePrefix(f); err == nil {
					allow = append(allow, allowed{p, cur})
				}
			}
		}
	}
	b.mu.Lock()
	b.groups, b.allow = groups, allow
	b.mu.Unlock()
}

func (b *Backend) groupOf(a netip.Addr) model.GroupName {
	if g, ok := b.groups[a]; ok {
		return g
	}
	for _, al := range b.allow {
		if al.prefix.Contains(a) {
			return al.group
		}
	}
	return ""
}

// xmlText escapes configuration text for <configuration-text>.
func xmlText(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}
