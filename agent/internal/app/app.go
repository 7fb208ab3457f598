// Package app wires the agent together: main only calls Main, and each
// subcommand is an entry of commands (commands.go) and a file of its own
// (run.go, check.go, init.go, sessions.go, status.go, enable.go, drain.go,
// uninstall.go); daemons.go is the one table of backends.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/meshrr/meshrr/agent/internal/status"
)

// Version is set at build time (-ldflags -X).
var Version = "dev"

// Main runs the agent and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := Run(ctx, args, os.Getenv, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "meshrr-agent:", err)
	}
	return exitCode(err)
}

// exitCode: 2 for a degraded verdict (as kubectl meshrr status), 1 for any
// other failure.
func exitCode(err error) int {
	switch {
	case err == nil:
		return status.ExitOK
	case errors.Is(err, status.ErrDegraded):
		return status.ExitDegraded
	}
	return status.ExitError
}

// Run executes one subcommand, with its own flags (commands).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText())
		return errors.New("a subcommand is required")
	}
	if slices.Contains([]string{"help", "-h", "--help"}, args[0]) {
		fmt.Fprint(stdout, usageText())
		return nil
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == args[0] })
	if i < 0 {
		fmt.Fprint(stderr, usageText())
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
	c := commands[i]
	fs := flag.NewFlagSet("meshrr-agent "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	run := c.flags(fs, invocation{getenv: getenv, stdout: stdout, stderr: stderr})
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%s: %w (its flags: meshrr-agent %s -h)", c.name, err, c.name)
	}
	return run(ctx, fs.Args())
}
