// Package birdlab runs real BIRD daemons on loopback addresses for tests:
// each instance has its own directory, control socket and log, and is
// stopped when the test ends. Each test package uses its own 127.0.N.0/24
// block so that packages running in parallel never share an address.
package birdlab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/backend/bird"
)

// Instance is one running BIRD.
type Instance struct {
	Name       string
	Addr       netip.Addr
	Dir        string
	Socket     string
	ConfigFile string // the agent-owned file BIRD runs
	IncludeDir string // operator additions (conf.d)
	Client     *bird.Client
	cmd        *exec.Cmd
	done       chan struct{} // closed when the process has exited
	log        string
	logf       *os.File
}

// Start runs BIRD with a bootstrap configuration (router id and the
// operator include), as the daemon image does before the agent's first
// apply.
func Start(t testing.TB, name, addr string) *Instance {
	t.Helper()
	checkDaemon(t)
	dir, err := os.MkdirTemp("", "birdlab-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	in := &Instance{
		Name:       name,
		Addr:       netip.MustParseAddr(addr),
		Dir:        dir,
		Socket:     filepath.Join(dir, "bird.ctl"),
		ConfigFile: filepath.Join(dir, "bird.conf"),
		IncludeDir: filepath.Join(dir, "conf.d"),
		log:        filepath.Join(dir, "bird.log"),
	}
	if err := os.Mkdir(in.IncludeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// the daemon's own log, dumped when a test fails
	if err := os.WriteFile(filepath.Join(in.IncludeDir, "00-log.conf"), []byte("log stderr all;\ndebug protocols { states, events };\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := bird.New(in.BackendConfig()).WriteBootstrap(routerID(in.Addr)); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(in.log)
	if err != nil {
		t.Fatal(err)
	}
	in.logf = logf
	in.Client = bird.NewClient(in.Socket, 5*time.Second)
	t.Cleanup(func() {
		in.Stop()
		logf.Close()
		if t.Failed() {
			in.Dump(t)
		}
		os.RemoveAll(dir)
	})
	in.spawn(t)
	return in
}

var (
	daemonOnce sync.Once
	daemonErr  error
	// Version is the release of the daemon the tests run (set by the
	// first Start).
	Version bird.Version
)

// Daemon is the BIRD binary the tests run: MESHRR_BIRD names it (make
// unit-bird3 sets bird3), bird when unset.
func Daemon() string {
	if d := os.Getenv("MESHRR_BIRD"); d != "" {
		return d
	}
	return "bird"
}

// checkDaemon fails the test unless the daemon is a release meshrr
// supports, one an image ships (make daemons puts them first on make's
// PATH): a test against another BIRD proves nothing about the product.
func checkDaemon(t testing.TB) {
	t.Helper()
	daemonOnce.Do(func() {
		out, err := exec.Command(Daemon(), "--version").CombinedOutput()
		if err != nil {
			daemonErr = fmt.Errorf("%s --version: %v: %s", Daemon(), err, out)
			return
		}
		if Version, daemonErr = bird.ReadVersion(string(out)); daemonErr == nil {
			daemonErr = Version.Supported()
		}
	})
	if daemonErr != nil {
		t.Fatalf("%s on PATH cannot run these tests: %v (make daemons provides the images' BIRD 2 and BIRD 3; run the tests through make, which puts them first on PATH)", Daemon(), daemonErr)
	}
}

// routerID is the instance's address, or for an IPv6 address an IPv4
// router id made of its last four bytes (BIRD's router id is 32 bits).
func routerID(a netip.Addr) netip.Addr {
	if a.Is4() {
		return a
	}
	b := a.As16()
	return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
}

// spawn starts the process on the instance's files and waits until it
// answers.
func (in *Instance) spawn(t testing.TB) {
	t.Helper()
	in.cmd = exec.Command(Daemon(), "-f", "-c", in.ConfigFile, "-s", in.Socket)
	in.cmd.Stdout, in.cmd.Stderr = in.logf, in.logf
	if err := in.cmd.Start(); err != nil {
		t.Fatalf("start bird %s: %v", in.Name, err)
	}
	done := make(chan struct{})
	in.done = done
	cmd := in.cmd
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := in.Client.Cmd(ctx, "show status")
		cancel()
		if err == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("bird %s exited at start (its log follows)", in.Name)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("bird %s did not answer on %s: %v", in.Name, in.Socket, err)
		}
	}
}

// Crash kills the daemon (no shutdown: peers see the session drop) and
// starts it again on the configuration file it was running, as the pod's
// restart of a crashed daemon container does.
func (in *Instance) Crash(t testing.TB) {
	t.Helper()
	in.Stop()
	in.spawn(t)
}

// Pid is the running daemon's process id.
func (in *Instance) Pid() int { return in.cmd.Process.Pid }

// Stop kills the daemon and waits for it (idempotent).
func (in *Instance) Stop() {
	select {
	case <-in.done:
	default:
		_ = in.cmd.Process.Kill()
		<-in.done
	}
}

// BackendConfig is the agent's backend section for this instance.
func (in *Instance) BackendConfig() config.BirdBackend {
	strict := true
	return config.BirdBackend{
		Socket:     in.Socket,
		ConfigFile: in.ConfigFile,
		Include:    []string{filepath.Join(in.IncludeDir, "*.conf")},
		StrictBind: &strict,
		Version:    Version.Major, // the agent checks the daemon's line too
	}
}

// AddInclude writes an operator addition and reconfigures BIRD.
func (in *Instance) AddInclude(t testing.TB, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(in.IncludeDir, name+".conf"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	in.Must(t, "configure")
}

// Must runs a command and returns its text; the test fails on error.
func (in *Instance) Must(t testing.TB, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lines, err := in.Client.Cmd(ctx, cmd)
	if err != nil {
		t.Fatalf("bird %s %q: %v", in.Name, cmd, err)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// Dump logs the daemon's protocols, configuration and log (on failure).
func (in *Instance) Dump(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var b strings.Builder
	if lines, err := in.Client.Cmd(ctx, "show protocols all"); err == nil {
		for _, l := range lines {
			b.WriteString(l.Text + "\n")
		}
	}
	conf, _ := os.ReadFile(in.ConfigFile)
	log, _ := os.ReadFile(in.log)
	state := "running"
	select {
	case <-in.done: // how it ended: an exit status, or the signal that killed it
		state = "exited: " + in.cmd.ProcessState.String()
	default:
	}
	t.Logf("=== bird %s (%s), %s\n--- show protocols all\n%s--- %s\n%s--- log\n%s", in.Name, in.Addr, state, b.String(), in.ConfigFile, conf, log)
}

// Attr is the name `show route all` gives a BGP attribute (BIRD 2's
// name without its "BGP." prefix: local_pref, as_path, next_hop, med) in
// the release the tests run: BIRD 2 writes "BGP.local_pref", BIRD 3
// "bgp_local_pref", and "bgp_path" for the AS path.
func Attr(name string) string {
	if Version.Major < 3 {
		return "BGP." + name
	}
	if name == "as_path" {
		return "bgp_path"
	}
	return "bgp_" + name
}
