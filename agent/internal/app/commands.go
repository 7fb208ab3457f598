package app

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/meshrr/meshrr/agent/internal/uninstall"
)

// invocation is what every subcommand may use of its process.
type invocation struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

// command is one subcommand: its line in the usage text and its own flags.
// flags defines them on fs and returns what runs once they are parsed,
// with the arguments left.
type command struct {
	name  string
	args  string // flags and arguments, for the usage text
	help  string // what it does ("" for none)
	flags func(fs *flag.FlagSet, in invocation) func(ctx context.Context, args []string) error
}

const defaultConfig = "/etc/meshrr/config.yaml"

// commands is every subcommand, in the order the usage text lists them.
var commands = []command{
	{name: "run", args: "--config FILE [--kubeconfig FILE] [--log-level info]",
		flags: func(fs *flag.FlagSet, in invocation) func(context.Context, []string) error {
			cfg, kubeconfig, level := configFlag(fs), kubeconfigFlag(fs), levelFlag(fs)
			return func(ctx context.Context, args []string) error {
				log, err := logger(*level, in.stderr)
				if err != nil {
					return err
				}
				return noArgs("run", args, func() error { return runAgent(ctx, *cfg, *kubeconfig, in.getenv, log) })
			}
		}},
	{name: "check", args: "--config FILE | FILE...",
		help: "validate configuration files with the agent's rules (every error, naming the file and the field) and exit",
		flags: func(fs *flag.FlagSet, in invocation) func(context.Context, []string) error {
			cfg := configFlag(fs)
			return func(_ context.Context, files []string) error {
				if len(files) == 0 {
					files = []string{*cfg}
				}
				return runCheck(files, in.stdout)
			}
		}},
	{name: "init", args: "--config FILE", help: "write the daemon's startup configuration if none exists",
		flags: func(fs *flag.FlagSet, in invocation) func(context.Context, []string) error {
			cfg := configFlag(fs)
			return func(_ context.Context, args []string) error {
				return noArgs("init", args, func() error { return runInit(*cfg, in.getenv, in.stdout) })
			}
		}},
	{name: "sessions", args: "--config FILE", help: "print the daemon's BGP sessions as JSON",
		flags: func(fs *flag.FlagSet, in invocation) func(context.Context, []string) error {
			cfg := configFlag(fs)
			return func(ctx context.Context, args []string) error {
				return noArgs("sessions", args, func() error { return runSessions(ctx, *cfg, in.stdout) })
			}
		}},
	{name: "status", args: "--config FILE [--json]",
		help: "this pod's peers and sessions (from the running agent); exits 2 when the pod is degraded (as kubectl meshrr status), 1 when it cannot tell",
		flags: func(fs *flag.FlagSet, in invocation) func(context.Context, []string) error {
			cfg := configFlag(fs)
			asJSON := fs.Bool("json", false, "print the report as JSON")
			return func(ctx context.Context, args []string) error {
				return noArgs("status", args, func() error { return runStatus(ctx, *cfg, *asJSON, in.stdout) })
			}
		}},
	{name: "enable", args: "--config FILE ADDRESS",
		help: "admit again a client kept out for exceeding maxPrefixes (maxPrefixAction: disable); run it in each RR pod of the group",
		flags: func(fs *flag.FlagSet, in invocation) func(context.Context, []string) error {
			cfg := configFlag(fs)
			return func(ctx context.Context, args []string) error { return runEnable(ctx, *cfg, args, in.stdout) }
		}},
	{name: "drain", args: "--config FILE",
		help: "graceful shutdown (the pod's preStop): ask the running agent to drain, then stay up for drain.time",
		flags: func(fs *flag.FlagSet, in invocation) func(context.Context, []string) error {
			cfg := configFlag(fs)
			return func(ctx context.Context, args []string) error {
				return noArgs("drain", args, func() error { return runDrain(ctx, *cfg, in.stdout) })
			}
		}},
	{name: "uninstall", args: "--namespace NS --selector LABELS [--timeout 300s] [--kubeconfig FILE] [--log-level info]",
		help: "the chart's pre-delete hook: scale the release's workloads to zero and wait until their pods (draining one at a time per group) are gone",
		flags: func(fs *flag.FlagSet, in invocation) func(context.Context, []string) error {
			namespace := fs.String("namespace", "", "the release namespace")
			selector := fs.String("selector", "", "label selector of the release's workloads and pods")
			timeout := fs.Duration("timeout", 300*time.Second, "how long to wait for the pods to stop")
			kubeconfig, level := kubeconfigFlag(fs), levelFlag(fs)
			return func(ctx context.Context, args []string) error {
				log, err := logger(*level, in.stderr)
				if err != nil {
					return err
				}
				o := uninstall.Options{Namespace: *namespace, Selector: *selector, Timeout: *timeout, Log: log}
				return noArgs("uninstall", args, func() error { return runUninstall(ctx, o, *kubeconfig, in.stdout) })
			}
		}},
	{name: "version",
		flags: func(fs *flag.FlagSet, in invocation) func(context.Context, []string) error {
			return func(_ context.Context, args []string) error {
				return noArgs("version", args, func() error { _, err := fmt.Fprintln(in.stdout, Version); return err })
			}
		}},
}

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", defaultConfig, "agent configuration file")
}

func kubeconfigFlag(fs *flag.FlagSet) *string {
	return fs.String("kubeconfig", "", "kubeconfig file (default: in-cluster)")
}

func levelFlag(fs *flag.FlagSet) *string {
	return fs.String("log-level", "info", "debug, info, warn or error")
}

func logger(level string, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}

// noArgs runs f when no argument is left after the flags: a stray word is
// a mistake (a flag after an argument is not parsed) and never ignored.
func noArgs(name string, args []string, f func() error) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments, got %q (flags go before arguments; meshrr-agent help lists each subcommand's)", name, strings.Join(args, " "))
	}
	return f()
}

// usageText lists the subcommands from the table.
func usageText() string {
	var b strings.Builder
	b.WriteString(`meshrr-agent keeps a routing daemon's BGP configuration in step with the
route reflectors it discovers through the Kubernetes API.

Usage:
`)
	for _, c := range commands {
		line := strings.TrimSpace("  meshrr-agent " + c.name + " " + c.args)
		b.WriteString("  " + line + "\n")
		if c.help != "" {
			for _, l := range wrap(c.help, helpWidth) {
				b.WriteString("                                       " + l + "\n")
			}
		}
	}
	b.WriteString(`
The pod is described by the environment (downward API): POD_NAME,
POD_NAMESPACE, POD_UID, POD_IPS (status.podIPs, comma-separated; POD_IP is
accepted too), NODE_NAME and MESHRR_SIDE (the pod's meshrr.io/side label).
`)
	return b.String()
}

// helpWidth is the width of the usage text's help column.
const helpWidth = 52

// wrap breaks s into lines of at most width characters (a longer word
// stands alone).
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}
