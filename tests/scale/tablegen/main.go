// Command tablegen writes a synthetic Internet-shaped BGP table (package
// agent/synthtable) as BIRD static routes for a feeder router.
//
//	tablegen -seed 1 -ipv4 1000000 -ipv6 200000 > feed.conf
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"github.com/meshrr/meshrr/agent/synthtable"
)

func main() {
	s := synthtable.FullTable(1)
	flag.Uint64Var(&s.Seed, "seed", s.Seed, "seed: the same seed writes the same table")
	flag.IntVar(&s.IPv4, "ipv4", s.IPv4, "IPv4 routes")
	flag.IntVar(&s.IPv6, "ipv6", s.IPv6, "IPv6 routes")
	flag.Float64Var(&s.CommunityShare, "communities", s.CommunityShare, "share of routes with communities (0-1)")
	flag.Parse()
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	err := synthtable.WriteBIRD(w, synthtable.Generate(s))
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tablegen:", err)
		os.Exit(1)
	}
}
