package bird

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/fileutil"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// Reply codes of BIRD's control protocol used here.
const (
	codeReconfigured      = 3
	codeReconfInProgress  = 4
	codeReconfQueued      = 5
	codeNothingToDo       = 19
	codeConfigOK          = 20
	codeDaemonUp          = 13
	defaultCommandTimeout = 10 * time.Second
)

// Backend drives one BIRD 2 daemon.
type Backend struct {
	opts       Options
	configFile string
	client     *Client
	loc        *time.Location
	extra      extraConfig
	line       int // the BIRD release line the configuration asks for (0: any supported)
}

// New returns the backend for the configured daemon.
func New(c config.BirdBackend) *Backend {
	b := &Backend{
		opts:       Options{Include: slices.Clone(c.Include), StrictBind: c.StrictBind == nil || *c.StrictBind, Threads: c.Threads},
		line:       c.Version,
		configFile: c.ConfigFile,
		client:     NewClient(c.Socket, defaultCommandTimeout),
		loc:        time.Local,
	}
	if c.ExtraConfigFile != "" {
		b.extra = extraConfig{source: c.ExtraConfigFile, live: filepath.Join(filepath.Dir(c.ConfigFile), "extra.conf")}
		b.opts.Include = append(b.opts.Include, b.extra.live)
	}
	return b
}

// Bootstrap is the configuration BIRD starts with before the agent's first
// apply: the router id, the operator's additions and the one protocol BIRD
// requires. It opens no BGP session.
func Bootstrap(routerID netip.Addr, o Options) []byte {
	var b strings.Builder
	b.WriteString("# Written by meshrr-agent init; replaced by the agent's first apply.\n")
	fmt.Fprintf(&b, "router id %s;\n", routerID)
	if o.Threads > 0 {
		fmt.Fprintf(&b, "threads %d;\n", o.Threads)
	}
	fmt.Fprintf(&b, "%s\n", logStatement)
	for _, inc := range o.Include {
		fmt.Fprintf(&b, "include %q;\n", inc)
	}
	b.WriteString("protocol device meshrr_device {\n}\n")
	return []byte(b.String())
}

// WriteBootstrap writes Bootstrap to the configured file unless a
// configuration is already there (a restarted pod keeps what it ran).
func (b *Backend) WriteBootstrap(routerID netip.Addr) (written bool, err error) {
	if _, err := os.Stat(b.configFile); err == nil {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(b.configFile), 0o755); err != nil {
		return false, fmt.Errorf("bird: %w", err)
	}
	if err := b.extra.bootstrap(); err != nil {
		return false, err
	}
	if err := fileutil.WriteAtomic(b.configFile, Bootstrap(routerID, b.opts)); err != nil {
		return false, fmt.Errorf("bird: %w", err)
	}
	return true, nil
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return string(config.BackendBird) }

// Client returns the control-socket client (status commands).
func (b *Backend) Client() *Client { return b.client }

// OnExtraConfig sets what hears of each new extraConfig version: nil once
// BIRD runs it, or why BIRD refused it (the last good version stays).
func (b *Backend) OnExtraConfig(f func(refused error)) { b.extra.OnChange = f }

// Render implements backend.Backend: the model's configuration and, with
// an extraConfig, a line naming the version of it the agent last read, so
// that an edit of it alone makes a new configuration to apply.
func (b *Backend) Render(m model.Model) ([]byte, error) {
	out, err := Render(m, b.opts)
	if err != nil {
		return nil, err
	}
	return b.extra.mark(out)
}

// Current returns the configuration file BIRD loads on start: the last one
// applied successfully.
func (b *Backend) Current(context.Context) ([]byte, error) {
	return fileutil.ReadIfExists(b.configFile)
}

// Apply writes cfg beside the live file, has BIRD check it, activates it
// with `configure`, and only then makes it the file BIRD loads on start. A
// configuration BIRD rejects is never activated and never replaces the
// live file.
func (b *Backend) Apply(ctx context.Context, cfg []byte) error {
	if b.extra.source != "" {
		return b.extra.apply(ctx, cfg, b.activate)
	}
	return b.activate(ctx, cfg)
}

// activate is Apply without the extraConfig: check, configure, keep.
func (b *Backend) activate(ctx context.Context, cfg []byte) error {
	next := b.configFile + ".next"
	if err := fileutil.WriteAtomic(next, cfg); err != nil {
		return fmt.Errorf("bird: %w", err)
	}
	lines, err := b.client.Cmd(ctx, `configure check "`+next+`"`)
	var rejected *CmdError
	if errors.As(err, &rejected) {
		return fmt.Errorf("bird rejected the configuration: %w", err)
	}
	if err != nil {
		return fmt.Errorf("bird: configure check: %w", err)
	}
	if !hasCode(lines, codeConfigOK) {
		return fmt.Errorf("bird: configure check: unexpected reply %s", replyText(lines))
	}
	lines, err = b.client.Cmd(ctx, `configure "`+next+`"`)
	if err != nil {
		return fmt.Errorf("bird: configure: %w", err)
	}
	if !hasCode(lines, codeReconfigured, codeReconfInProgress, codeReconfQueued, codeNothingToDo) {
		return fmt.Errorf("bird: configure: unexpected reply %s", replyText(lines))
	}
	if err := fileutil.WriteAtomic(b.configFile, cfg); err != nil {
		return fmt.Errorf("bird: %w", err)
	}
	return nil
}

// Sessions implements backend.Backend: every BGP protocol with a neighbour
// address (explicit peers and sessions spawned from ranges).
func (b *Backend) Sessions(ctx context.Context) ([]model.Session, error) {
	lines, err := b.client.Cmd(ctx, "show protocols all")
	if err != nil {
		return nil, err
	}
	protos := ParseProtocols(lines, b.loc)
	// BFD states, asked only when a BFD protocol runs (no group asks for
	// BFD otherwise), are for operators only: sessions are read without
	// them rather than not at all (readiness and the plan depend on them)
	var bfd map[netip.Addr]string
	if slices.ContainsFunc(protos, func(p Protocol) bool { return p.Proto == "BFD" }) {
		bfd, _ = b.bfdSessions(ctx)
	}
	var out []model.Session
	for _, p := range protos {
		if p.Proto != "BGP" || !p.Neighbor.IsValid() {
			continue
		}
		out = append(out, model.Session{
			Name:       p.Name,
			Group:      groupOf(p.Description),
			Peer:       p.Neighbor,
			State:      model.SessionState(p.BGPState),
			Since:      p.Since,
			Restarting: p.Restarting,
			LimitDown:  p.State == "down" && strings.Contains(p.LastError, "Route limit exceeded"),
			Imported:   p.Imported,
			Exported:   p.Exported,
			BFD:        bfd[p.Neighbor],
			Updates:    p.Updates,
		})
	}
	return out, nil
}

// codeNoBFD: "There is no BFD protocol running" (no group asks for BFD).
const codeNoBFD = 9001

// bfdSessions reads the BFD state of every peer; empty when no BFD
// protocol runs.
func (b *Backend) bfdSessions(ctx context.Context) (map[netip.Addr]string, error) {
	lines, err := b.client.Cmd(ctx, "show bfd sessions")
	var ce *CmdError
	if errors.As(err, &ce) && ce.Code == codeNoBFD && strings.Contains(ce.Text, "no BFD protocol") {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseBFDSessions(lines), nil
}

// groupOf maps a protocol description written by Render back to its group.
func groupOf(desc string) model.GroupName {
	rest, ok := strings.CutPrefix(desc, descPrefix)
	if !ok {
		return ""
	}
	g, _, _ := strings.Cut(rest, " ")
	return model.GroupName(g)
}

// Ping implements backend.Backend.
func (b *Backend) Ping(ctx context.Context) error {
	lines, err := b.client.Cmd(ctx, "show status")
	if err != nil {
		return err
	}
	if !hasCode(lines, codeDaemonUp) {
		return fmt.Errorf("bird: not up: %s", replyText(lines))
	}
	return nil
}

// Started implements backend.Backend: "Last reboot on" of show status
// (the configuration sets timeformat base to milliseconds).
func (b *Backend) Started(ctx context.Context) (time.Time, error) {
	lines, err := b.client.Cmd(ctx, "show status")
	if err != nil {
		return time.Time{}, err
	}
	return parseStarted(lines)
}

func parseStarted(lines []Line) (time.Time, error) {
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l.Text, "Last reboot on "); ok {
			for _, layout := range []string{"2006-01-02 15:04:05.000", "2006-01-02 15:04:05", time.DateOnly} {
				if t, err := time.ParseInLocation(layout, strings.TrimSpace(v), time.Local); err == nil {
					return t, nil
				}
			}
			return time.Time{}, fmt.Errorf("bird: show status: cannot read the time in %q", l.Text)
		}
	}
	return time.Time{}, fmt.Errorf("bird: show status has no \"Last reboot on\" line: %s", replyText(lines))
}

func hasCode(lines []Line, codes ...int) bool {
	return slices.ContainsFunc(lines, func(l Line) bool { return slices.Contains(codes, l.Code) })
}

func replyText(lines []Line) string {
	var parts []string
	for _, l := range lines {
		parts = append(parts, fmt.Sprintf("%04d %s", l.Code, l.Text))
	}
	return strings.Join(parts, " | ")
}

// Reap implements backend.Reaper: BIRD 2 keeps a session spawned from a
// range after its peer has gone; a disabled one is deleted by the next
// configure (of the live file: nothing else changes, no session resets).
func (b *Backend) Reap(ctx context.Context, sessions []string) error {
	for _, name := range sessions {
		if !symbolRE.MatchString(name) {
			return fmt.Errorf("bird: reap: %q is not a protocol name", name)
		}
		if _, err := b.client.Cmd(ctx, "disable "+name); err != nil {
			return fmt.Errorf("bird: disable %s: %w", name, err)
		}
	}
	lines, err := b.client.Cmd(ctx, `configure "`+b.configFile+`"`)
	if err != nil {
		return fmt.Errorf("bird: configure after reaping: %w", err)
	}
	if !hasCode(lines, codeReconfigured, codeReconfInProgress, codeReconfQueued, codeNothingToDo) {
		return fmt.Errorf("bird: configure after reaping: unexpected reply %s", replyText(lines))
	}
	return nil
}

var symbolRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
