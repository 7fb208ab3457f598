// Package synthtable generates a synthetic BGP table shaped like the public
// Internet's, deterministically for a seed, and writes it as BIRD static
// routes for a feeder router.
//
// Shape (approximating the public tables of 2025): IPv4 prefix lengths with
// /24 about 60 %, /22 and /23 about 20 %, the rest from /8 to /21; IPv6 with
// /48 about half, /32 about an eighth, the rest from /28 to /47. Prefixes are
// unique and outside private, shared, documentation and multicast space (so
// never inside the test harness's own ranges). Routes belong to origin ASes
// (about 75,000 in a full table, a third of them 4-byte) with a heavy tail
// (Zipf: a few origins hold thousands of prefixes, most a handful); every
// route of an origin has that origin's AS path, 1 to 10 hops (mostly 3-5)
// through one of a few transit ASes, as a real single-peer table does, so
// attribute sets are shared as much as in a real table (that decides a
// reflector's memory per route); a share of the routes carry the origin's
// 1-3 standard communities of its transit.
package synthtable

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
)

// Route is one route of the table.
type Route struct {
	Prefix netip.Prefix
	// Path is the AS path, the feeder's neighbour AS first.
	Path []uint32
	// Communities are standard communities (AS, value).
	Communities [][2]uint16
}

// Spec says what to generate.
type Spec struct {
	Seed       uint64
	IPv4, IPv6 int
	// CommunityShare is the share of routes carrying communities (0-1).
	CommunityShare float64
}

// FullTable is a full Internet table of today's size.
func FullTable(seed uint64) Spec {
	return Spec{Seed: seed, IPv4: 1_000_000, IPv6: 200_000, CommunityShare: 0.3}
}

type lenShare struct {
	bits  int
	share float64
}

// v4Mix and v6Mix: share (percent) of each prefix length. The first entry
// is the dominant length: it takes what rounding and capping leave over.
var v4Mix = []lenShare{
	{24, 60.0}, {23, 9.5}, {22, 11.0}, {21, 4.5}, {20, 4.5}, {19, 3.5}, {18, 1.6}, {17, 1.0},
	{16, 1.6}, {15, 0.5}, {14, 0.5}, {13, 0.3}, {12, 0.2}, {11, 0.1}, {10, 0.1}, {9, 0.05}, {8, 0.05},
}

var v6Mix = []lenShare{
	{48, 52}, {32, 12}, {44, 6}, {40, 5}, {36, 4}, {29, 3}, {46, 3}, {47, 2}, {45, 1.5}, {42, 1.5},
	{33, 1.5}, {34, 1}, {35, 1}, {38, 1}, {28, 1}, {43, 1}, {41, 1}, {39, 1}, {37, 0.5}, {30, 0.5}, {31, 0.5},
}

// pathLen: share (percent) of AS-path lengths 1..10.
var pathLen = []float64{3, 15, 30, 25, 14, 7, 3, 1.5, 1, 0.5}

// transits are the feeder's neighbours (the first AS of every path);
// communities are tagged with them.
var transits = []uint32{174, 1299, 2914, 3257, 3356, 6453, 6762, 6939}

// counts splits n over the mix: exact, deterministic, each length capped to
// a quarter of its address space (there are not 500 public /8s), the
// dominant length absorbing the rest.
func counts(n int, mix []lenShare, space func(bits int) float64) map[int]int {
	total := 0.0
	for _, m := range mix {
		total += m.share
	}
	out := map[int]int{}
	given := 0
	for _, m := range mix[1:] {
		c := int(float64(n) * m.share / total)
		if max := int(space(m.bits) / 4); c > max {
			c = max
		}
		out[m.bits] = c
		given += c
	}
	out[mix[0].bits] = n - given
	return out
}

// origins: one per 13 routes (about 75,000 for a full table of 1M).
func origins(rng *rand.Rand, n int) []Route {
	out := make([]Route, max(1, n/13))
	for i := range out {
		l := 1 + pick(rng, pathLen)
		path := make([]uint32, l)
		path[0] = transits[rng.IntN(len(transits))]
		for j := 1; j < l-1; j++ {
			path[j] = 1000 + uint32(rng.IntN(2000)) // transit and regional networks
		}
		if l > 1 {
			path[l-1] = originAS(rng)
		}
		out[i].Path = path
		for range 1 + rng.IntN(3) {
			out[i].Communities = append(out[i].Communities, [2]uint16{uint16(path[0]), uint16(100 * (1 + rng.IntN(9)))})
		}
	}
	return out
}

// Generate returns the table: IPv4 routes (by the mix order, random within
// each length) then IPv6 routes. The same Spec always gives the same table.
func Generate(s Spec) []Route {
	rng := rand.New(rand.NewPCG(s.Seed, s.Seed^0x6d657368727221))
	routes := make([]Route, 0, s.IPv4+s.IPv6)
	seen := make(map[netip.Prefix]struct{}, s.IPv4+s.IPv6)
	orgs := origins(rng, s.IPv4+s.IPv6)
	zipf := rand.NewZipf(rng, 1.2, 8, uint64(len(orgs)-1))
	add := func(p netip.Prefix) {
		o := orgs[zipf.Uint64()]
		r := Route{Prefix: p, Path: o.Path}
		if rng.Float64() < s.CommunityShare {
			r.Communities = o.Communities
		}
		routes = append(routes, r)
	}
	// public IPv4 space is about 3.5 * 2^30 addresses
	v4 := counts(s.IPv4, v4Mix, func(bits int) float64 { return 0.8 * float64(uint64(1)<<bits) })
	for _, m := range v4Mix {
		for range v4[m.bits] {
			for {
				p := netip.PrefixFrom(netip.AddrFrom4(u32bytes(rng.Uint32())), m.bits).Masked()
				if _, dup := seen[p]; dup || !publicV4(p) {
					continue
				}
				seen[p] = struct{}{}
				add(p)
				break
			}
		}
	}
	// global unicast 2001::/16 .. 2c0f::/16: lengths >= 28 have room
	v6 := counts(s.IPv6, v6Mix, func(bits int) float64 { return float64(uint64(1) << min(bits-4, 62)) })
	for _, m := range v6Mix {
		for range v6[m.bits] {
			for {
				var a [16]byte
				hi := 0x2001 + rng.Uint64N(0x2c0f-0x2001+1)
				r := rng.Uint64()
				a[0], a[1] = byte(hi>>8), byte(hi)
				for i := range 6 {
					a[2+i] = byte(r >> (8 * i))
				}
				p := netip.PrefixFrom(netip.AddrFrom16(a), m.bits).Masked()
				if _, dup := seen[p]; dup || !publicV6(p) {
					continue
				}
				seen[p] = struct{}{}
				add(p)
				break
			}
		}
	}
	return routes
}

func u32bytes(v uint32) [4]byte { return [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// reservedV4 is what no public table carries (RFC 6890 and friends).
var reservedV4 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"), netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("224.0.0.0/3"),
}

func publicV4(p netip.Prefix) bool {
	for _, r := range reservedV4 {
		if r.Overlaps(p) {
			return false
		}
	}
	return true
}

var reservedV6 = []netip.Prefix{netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("2002::/16")}

func publicV6(p netip.Prefix) bool {
	for _, r := range reservedV6 {
		if r.Overlaps(p) {
			return false
		}
	}
	return true
}

// originAS is an origin AS number: two thirds 2-byte, a third 4-byte
// (RFC 6793 space from 131072).
func originAS(rng *rand.Rand) uint32 {
	if rng.IntN(3) == 0 {
		return 131072 + uint32(rng.IntN(25_000))
	}
	return 3000 + uint32(rng.IntN(50_000))
}

// pick returns an index of shares (percent) at random by weight.
func pick(rng *rand.Rand, shares []float64) int {
	total := 0.0
	for _, s := range shares {
		total += s
	}
	x := rng.Float64() * total
	for i, s := range shares {
		if x < s {
			return i
		}
		x -= s
	}
	return len(shares) - 1
}

// WriteBIRD writes the routes as BIRD 2 static protocols (feed4 and feed6,
// one per family present) whose routes carry their AS path and
// communities: a BIRD feeder exports them over BGP as they are. Only
// numbers and prefixes are written, nothing that needs quoting.
func WriteBIRD(w io.Writer, routes []Route) error {
	var v4, v6 []Route
	for _, r := range routes {
		if r.Prefix.Addr().Is4() {
			v4 = append(v4, r)
		} else {
			v6 = append(v6, r)
		}
	}
	var b strings.Builder
	for _, fam := range []struct {
		name   string
		routes []Route
	}{{"4", v4}, {"6", v6}} {
		if len(fam.routes) == 0 {
			continue
		}
		fmt.Fprintf(&b, "protocol static feed%s {\n  ipv%s;\n", fam.name, fam.name)
		for _, r := range fam.routes {
			b.WriteString("  route ")
			b.WriteString(r.Prefix.String())
			b.WriteString(" blackhole { bgp_path = ")
			// prepend builds the path from its end: the last AS first
			expr := "+empty+"
			for i := len(r.Path) - 1; i >= 0; i-- {
				expr = "prepend(" + expr + ", " + strconv.FormatUint(uint64(r.Path[i]), 10) + ")"
			}
			b.WriteString(expr)
			b.WriteString(";")
			for _, c := range r.Communities {
				fmt.Fprintf(&b, " bgp_community.add((%d,%d));", c[0], c[1])
			}
			b.WriteString(" };\n")
			if b.Len() > 1<<20 {
				if _, err := io.WriteString(w, b.String()); err != nil {
					return err
				}
				b.Reset()
			}
		}
		b.WriteString("}\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
