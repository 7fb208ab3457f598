// Command meshrr-fleet runs a fleet of BGP client sessions (package fleet)
// against one route reflector until it is signalled (SIGTERM or SIGINT),
// writing its report as JSON to a file every interval and when it ends:
// the e2e fan-out suite runs it in a container on the kind network, with
// the fleet's addresses on that container's loopback.
//
//	meshrr-fleet -rr 10.244.1.5 -as 65000 -sources 10.250.0.0/22 -n 500 -routes 100 -report /run/fleet.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/meshrr/meshrr/tests/fleet"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "meshrr-fleet:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("meshrr-fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rr := fs.String("rr", "", "the route reflector's address, optionally with :port (179)")
	localAS := fs.Uint("as", 0, "the fleet's AS number")
	peerAS := fs.Uint("peer-as", 0, "the RR's AS number (default: -as, iBGP)")
	block := fs.String("sources", "", "the IPv4 block the sessions' source addresses come from (250 per /24, .1 to .250); they must be local addresses")
	n := fs.Int("n", 0, "the number of sessions")
	routes := fs.Int("routes", 100, fmt.Sprintf("the routes each session announces (1 to %d)", fleet.MaxPrefixes))
	hold := fs.Duration("hold", 90*time.Second, "the hold time each session proposes")
	openTimeout := fs.Duration("open-timeout", 10*time.Second, "how long a connected session waits for the RR's OPEN")
	maxConnecting := fs.Int("max-connecting", 0, "the most sessions between dialling and Established at once (0: no limit)")
	report := fs.String("report", "", "the file the JSON report is written to")
	interval := fs.Duration("interval", time.Second, "how often the report is written")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	rrAddr, err := netip.ParseAddrPort(*rr)
	if err != nil {
		a, aerr := netip.ParseAddr(*rr)
		if aerr != nil {
			return fmt.Errorf("-rr %q: an IP address, optionally with :port", *rr)
		}
		rrAddr = netip.AddrPortFrom(a, 179)
	}
	if *localAS == 0 || *localAS > 1<<32-1 || *peerAS > 1<<32-1 {
		return fmt.Errorf("-as %d, -peer-as %d: AS numbers from 1 to 4294967295 (-peer-as defaults to -as)", *localAS, *peerAS)
	}
	if *peerAS == 0 {
		*peerAS = *localAS
	}
	b, err := netip.ParsePrefix(*block)
	if err != nil {
		return fmt.Errorf("-sources %q: %v", *block, err)
	}
	sources, err := fleet.Addresses(b, *n)
	if err != nil {
		return fmt.Errorf("-sources, -n: %w", err)
	}
	if *routes < 1 || *routes > fleet.MaxPrefixes {
		return fmt.Errorf("-routes %d: 1 to %d", *routes, fleet.MaxPrefixes)
	}
	if *report == "" || *interval <= 0 {
		return fmt.Errorf("-report FILE and a positive -interval are required")
	}
	f, err := fleet.Start(fleet.Config{RR: rrAddr, LocalAS: uint32(*localAS), PeerAS: uint32(*peerAS), Sources: sources,
		Announce: fleet.Prefixes(*routes), HoldTime: *hold, OpenTimeout: *openTimeout, MaxConnecting: *maxConnecting})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if err := write(*report, f.Report()); err != nil {
				f.Stop()
				return err
			}
		case <-ctx.Done():
			f.Stop()
			return write(*report, f.Report())
		}
	}
}

// write replaces file with the report in one rename, so a reader never
// sees half of it.
func write(file string, r fleet.Report) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".fleet-*.json")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), file)
}
