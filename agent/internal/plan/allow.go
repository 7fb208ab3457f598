package plan

import (
	"net/netip"

	"go4.org/netipx"
)

// AllowList returns ranges minus every excluded address, as the minimal set
// of prefixes (meshrr's "subtractive" client group: a mesh or upstream peer
// never lands in a client group, whatever the daemon's matching order).
func AllowList(ranges []netip.Prefix, exclude []netip.Addr) []netip.Prefix {
	var b netipx.IPSetBuilder
	for _, r := range ranges {
		b.AddPrefix(r)
	}
	for _, a := range exclude {
		b.Remove(a)
	}
	set, err := b.IPSet()
	if err != nil { // only on invalid input, which validation has rejected
		return nil
	}
	var out []netip.Prefix
	for _, r := range set.Ranges() {
		out = r.AppendPrefixes(out)
	}
	return out
}
