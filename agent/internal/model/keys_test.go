package model

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Both ends of a session compute the same switch time, inside the window,
// and the sessions of a mesh spread over it rather than switch together.
func TestKeySwitchAtIsTheSameAtBothEndsAndSpreadsTheSessions(t *testing.T) {
	from := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	k := Key{Current: "old", Next: "new", From: from, Until: from.Add(10 * time.Minute)}
	var addrs []netip.Addr
	for i := 1; i <= 12; i++ {
		addrs = append(addrs, netip.AddrFrom4([4]byte{10, 244, byte(i), 1}))
	}
	addrs = append(addrs, netip.MustParseAddr("fd00:244::1"), netip.MustParseAddr("fd00:244::2"))
	seen := map[time.Time]bool{}
	var first, last time.Time
	for i, a := range addrs {
		for _, b := range addrs[i+1:] {
			at := k.SwitchAt(a, b)
			require.Equal(t, at, k.SwitchAt(b, a), "%s-%s: the two ends differ", a, b)
			require.False(t, at.Before(k.From) || !at.Before(k.Until), "%s-%s: %s outside the window", a, b, at)
			seen[at] = true
			if first.IsZero() || at.Before(first) {
				first = at
			}
			if at.After(last) {
				last = at
			}
		}
	}
	n := len(addrs) * (len(addrs) - 1) / 2
	assert.Len(t, seen, n, "two sessions switch at the same instant")
	assert.Less(t, first.Sub(k.From), time.Minute, "%d sessions all switch late in the window", n)
	assert.Less(t, k.Until.Sub(last), time.Minute, "%d sessions all switch early in the window", n)

	// the switch is a point of the window: nothing changes outside it
	a, b := addrs[0], addrs[1]
	at := k.SwitchAt(a, b)
	assert.Equal(t, "old", k.At(at, at.Add(-time.Nanosecond)))
	assert.Equal(t, "new", k.At(at, at))
	assert.Equal(t, "old", Key{Current: "old"}.At(at, at.Add(time.Hour)), "no rollover: the key stays")
	zero := Key{Current: "old", Next: "new", From: from, Until: from}
	assert.Equal(t, from, zero.SwitchAt(a, b), "an empty window switches every session at its start")
}

// A group of ranges switches side after side over the window, side 0 at
// its start; a pod without a side (or one the sides do not list) at the
// start.
func TestKeySideAtSwitchesTheSidesOneAfterTheOther(t *testing.T) {
	from := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	k := Key{Current: "old", Next: "new", From: from, Until: from.Add(10 * time.Minute)}
	assert.Equal(t, from, k.SideAt(0, 2))
	assert.Equal(t, from.Add(5*time.Minute), k.SideAt(1, 2))
	assert.Equal(t, from.Add(20*time.Minute/3), k.SideAt(2, 3))
	assert.Equal(t, from, k.SideAt(-1, 2), "a side the group does not list")
	assert.Equal(t, from, k.SideAt(-1, 0), "no sides")
}
