package synthtable

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSameSeedSameTableOtherSeedOther(t *testing.T) {
	s := Spec{Seed: 7, IPv4: 5000, IPv6: 1000, CommunityShare: 0.3}
	a, b := Generate(s), Generate(s)
	require.Equal(t, a, b)
	s.Seed = 8
	c := Generate(s)
	assert.NotEqual(t, a[0].Prefix, c[0].Prefix)
}

// The shape a reflector sees in a real table: exact counts, unique
// prefixes, the real length mix, nothing private or from the harness's
// own ranges, paths of 1-10 hops through a transit, about 30 % with
// communities of that transit.
func TestShapeOfATable(t *testing.T) {
	s := Spec{Seed: 1, IPv4: 100_000, IPv6: 20_000, CommunityShare: 0.3}
	routes := Generate(s)
	require.Len(t, routes, s.IPv4+s.IPv6)
	seen := map[netip.Prefix]bool{}
	lens4, lens6 := map[int]int{}, map[int]int{}
	n4, tagged := 0, 0
	paths := map[string]bool{}
	harness := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("fd00::/8"),
	}
	for _, r := range routes {
		require.False(t, seen[r.Prefix], "duplicate %s", r.Prefix)
		seen[r.Prefix] = true
		require.Equal(t, r.Prefix.Masked(), r.Prefix, "host bits set in %s", r.Prefix)
		for _, h := range harness {
			require.False(t, h.Overlaps(r.Prefix), "%s overlaps %s", r.Prefix, h)
		}
		if r.Prefix.Addr().Is4() {
			n4++
			lens4[r.Prefix.Bits()]++
		} else {
			lens6[r.Prefix.Bits()]++
		}
		paths[fmt.Sprint(r.Path)] = true
		require.GreaterOrEqual(t, len(r.Path), 1)
		require.LessOrEqual(t, len(r.Path), 10)
		require.Contains(t, transits, r.Path[0])
		if len(r.Communities) > 0 {
			tagged++
			require.LessOrEqual(t, len(r.Communities), 3)
			for _, c := range r.Communities {
				require.EqualValues(t, r.Path[0], c[0], "a community of the route's transit")
			}
		}
	}
	assert.Equal(t, s.IPv4, n4)
	assert.InDelta(t, 0.60, float64(lens4[24])/float64(s.IPv4), 0.01, "/24 share")
	assert.InDelta(t, 0.11, float64(lens4[22])/float64(s.IPv4), 0.01, "/22 share")
	assert.InDelta(t, 0.52, float64(lens6[48])/float64(s.IPv6), 0.01, "/48 share")
	assert.InDelta(t, 0.12, float64(lens6[32])/float64(s.IPv6), 0.01, "/32 share")
	assert.InDelta(t, 0.30, float64(tagged)/float64(len(routes)), 0.01, "community share")
	// routes share their origin's path, as in a real table: far fewer
	// paths than routes, but thousands of them
	t.Logf("%d routes, %d distinct AS paths", len(routes), len(paths))
	assert.Less(t, len(paths), len(routes)/13+1)
	assert.Greater(t, len(paths), len(routes)/40)
}

func TestAFullTableHasRoomForEveryLength(t *testing.T) {
	c := counts(1_000_000, v4Mix, func(bits int) float64 { return 0.8 * float64(uint64(1)<<bits) })
	assert.Equal(t, 51, c[8], "/8s capped to a quarter of the public ones")
	total := 0
	for _, n := range c {
		total += n
	}
	assert.Equal(t, 1_000_000, total)
}

// The feeder's configuration: one route written exactly, and a generated
// table read by BIRD's own parser.
func TestWriteBIRD(t *testing.T) {
	var one bytes.Buffer
	require.NoError(t, WriteBIRD(&one, []Route{{
		Prefix: netip.MustParsePrefix("1.2.3.0/24"), Path: []uint32{174, 64500, 131073}, Communities: [][2]uint16{{174, 100}},
	}}))
	assert.Equal(t, "protocol static feed4 {\n  ipv4;\n"+
		"  route 1.2.3.0/24 blackhole { bgp_path = prepend(prepend(prepend(+empty+, 131073), 64500), 174); bgp_community.add((174,100)); };\n}\n",
		one.String(), "the neighbour AS is prepended last: it is first in the path")

	routes := Generate(Spec{Seed: 3, IPv4: 2000, IPv6: 500, CommunityShare: 0.5})
	var b bytes.Buffer
	b.WriteString("router id 10.255.9.1;\nprotocol device {}\n")
	require.NoError(t, WriteBIRD(&b, routes))
	assert.Equal(t, len(routes), strings.Count(b.String(), "  route "))
	p := filepath.Join(t.TempDir(), "feeder.conf")
	require.NoError(t, os.WriteFile(p, b.Bytes(), 0o644))
	if _, err := exec.LookPath("bird"); err != nil {
		t.Fatalf("bird is not on PATH (make daemons provides the BIRD of the images; run the tests through make): %v", err)
	}
	out, err := exec.Command("bird", "-p", "-c", p).CombinedOutput()
	require.NoError(t, err, "bird -p: %s", out)
}

func BenchmarkGenerateFullTable(b *testing.B) {
	for b.Loop() {
		_ = Generate(FullTable(1))
	}
}
