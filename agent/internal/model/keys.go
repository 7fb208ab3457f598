package model

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"time"
)

// Key is a session group's TCP-MD5 key (RFC 2385) and, during a rollover,
// the next one with the window in which the group's sessions switch to it.
// The keys are secrets, never logged.
//
// TCP-MD5 gives a session one key at each end, so a session whose ends
// switch at different times is down in between. Each session therefore
// switches at one point of the window that both its ends compute alike
// from the session's two addresses (SwitchAt), so that the sessions of a
// mesh switch one after the other rather than all at once, and a session
// goes down only for its own reset.
type Key struct {
	Current string
	// Next, From and Until: the rollover; empty Next: none.
	Next        string
	From, Until time.Time
}

// SwitchAt is when the session between a and b (either order) switches
// to the next key: From plus a share of the window taken from a hash of
// the two addresses, the same at both ends.
func (k Key) SwitchAt(a, b netip.Addr) time.Time {
	if b.Less(a) {
		a, b = b, a
	}
	x, y := a.As16(), b.As16()
	sum := sha256.Sum256(append(x[:], y[:]...))
	share := float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53) // [0, 1)
	return k.From.Add(time.Duration(share * float64(k.Until.Sub(k.From))))
}

// SideAt is when the sessions of a group of ranges (clients, whose
// sessions the daemon spawns under one key) on side i of n switch: the
// sides one after the other, side 0 at From, so that a router homed on
// every side keeps a session through the rollover.
func (k Key) SideAt(i, n int) time.Time {
	if n < 1 || i < 0 || i >= n {
		return k.From
	}
	return k.From.Add(k.Until.Sub(k.From) * time.Duration(i) / time.Duration(n))
}

// At is the key in use from switch on: Current before it, Next after.
func (k Key) At(switchAt, now time.Time) string {
	if k.Next == "" || now.Before(switchAt) {
		return k.Current
	}
	return k.Next
}

// Rolling reports a rollover in the key.
func (k Key) Rolling() bool { return k.Next != "" }
