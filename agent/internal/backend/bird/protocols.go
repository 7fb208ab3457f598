package bird

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshrr/meshrr/agent/internal/model"
)

// Protocol is one entry of `show protocols all`.
type Protocol struct {
	Name        string
	Proto       string // BGP, Device, Static, ...
	Table       string
	State       string // up, start, stop, down
	Since       time.Time
	Info        string
	Description string
	BGPState    string // Established, Active, Connect, Passive, Idle, ...
	Neighbor    netip.Addr
	Range       netip.Prefix // dynamic (listening) protocols
	NeighborAS  uint32
	LastError   string
	// Restarting: BIRD keeps the neighbour's routes as stale, in graceful
	// restart ("Neighbor graceful restart active") or long-lived graceful
	// restart (an "LL stale timer" runs), for the times the neighbour
	// announced; once both end BIRD flushes them.
	Restarting bool
	Imported   int
	Exported   int
	// Updates sums the "Import updates" rows of the protocol's channels
	// (nil: none shown).
	Updates *model.ImportUpdates
}

// sinceLayout matches `timeformat protocol iso long ms`, which the agent's
// configuration sets.
const sinceLayout = "2006-01-02 15:04:05.000"

// ParseProtocols parses the reply lines of `show protocols all`. It never
// fails: unknown lines are ignored and malformed values left zero, because
// the output is read for status, never to decide what to configure.
func ParseProtocols(lines []Line, loc *time.Location) []Protocol {
	var out []Protocol
	var cur *Protocol
	var columns []string // the channel's "Route change stats" header
	for _, l := range lines {
		switch l.Code {
		case 1002: // table row
			f := strings.Fields(l.Text)
			if len(f) < 4 {
				cur = nil
				continue
			}
			out = append(out, Protocol{Name: f[0], Proto: f[1], Table: f[2], State: f[3]})
			cur = &out[len(out)-1]
			rest := f[4:]
			if len(rest) >= 2 && len(rest[0]) == 10 && strings.Count(rest[0], "-") == 2 {
				if t, err := time.ParseInLocation(sinceLayout, rest[0]+" "+rest[1], loc); err == nil {
					cur.Since = t
				}
				rest = rest[2:]
			} else if len(rest) >= 1 {
				rest = rest[1:] // a time without date: not our timeformat
			}
			cur.Info = strings.Join(rest, " ")
		case 1006: // details of the current row
			if cur == nil {
				continue
			}
			if strings.TrimSpace(l.Text) == "Neighbor graceful restart active" {
				cur.Restarting = true
				continue
			}
			key, val, ok := strings.Cut(strings.TrimSpace(l.Text), ":")
			if !ok {
				continue
			}
			val = strings.TrimSpace(val)
			switch key {
			case "Description":
				cur.Description = val
			case "BGP state":
				cur.BGPState = val
			case "Neighbor address":
				if a, err := netip.ParseAddr(val); err == nil {
					cur.Neighbor = a
				}
			case "Neighbor range":
				if p, err := netip.ParsePrefix(val); err == nil {
					cur.Range = p
				}
			case "Neighbor AS":
				if v, err := strconv.ParseUint(val, 10, 32); err == nil {
					cur.NeighborAS = uint32(v)
				}
			case "Last error":
				cur.LastError = val
			case "LL stale timer":
				cur.Restarting = true
			case "Routes":
				imp, exp := parseRoutes(val)
				cur.Imported += imp
				cur.Exported += exp
			case "Route change stats":
				columns = strings.Fields(val)
			case "Import updates":
				if u, ok := parseUpdates(columns, val); ok {
					if cur.Updates == nil {
						cur.Updates = &model.ImportUpdates{}
					}
					cur.Updates.Add(u)
				}
			}
		}
	}
	return out
}

// parseRoutes reads "2 imported, 1 filtered, 0 exported, 2 preferred".
func parseRoutes(s string) (imported, exported int) {
	for _, part := range strings.Split(s, ",") {
		f := strings.Fields(part)
		if len(f) != 2 {
			continue
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		switch f[1] {
		case "imported":
			imported = n
		case "exported":
			exported = n
		}
	}
	return imported, exported
}

// updateColumns is BIRD 2's "Route change stats" header; BIRD 3 adds
// "RX limit" and "limit" before "accepted", so a row is read by the
// header's column names, this one when none came first. BIRD 2 counts a
// route an import limit keeps out as ignored, BIRD 3 in its own columns:
// they are added to Ignored, so that the counts mean the same with both.
var updateColumns = []string{"received", "rejected", "filtered", "ignored", "accepted"}

// parseUpdates reads an "Import updates" row by the columns of its
// header (columns: the header's words; "RX limit" is two): received,
// rejected, filtered, ignored and accepted counts ("---" for none).
func parseUpdates(columns []string, s string) (model.ImportUpdates, bool) {
	var names []string
	for i := 0; i < len(columns); i++ {
		if columns[i] == "RX" && i+1 < len(columns) && columns[i+1] == "limit" {
			names, i = append(names, "RX limit"), i+1
			continue
		}
		names = append(names, columns[i])
	}
	if len(names) == 0 {
		names = updateColumns
	}
	f := strings.Fields(s)
	if len(f) != len(names) {
		return model.ImportUpdates{}, false
	}
	var u model.ImportUpdates
	fields := map[string]*int64{"received": &u.Received, "rejected": &u.Rejected, "filtered": &u.Filtered, "ignored": &u.Ignored, "accepted": &u.Accepted,
		"RX limit": &u.Ignored, "limit": &u.Ignored}
	found := 0
	for i, v := range f {
		x := int64(0)
		if v != "---" {
			var err error
			if x, err = strconv.ParseInt(v, 10, 64); err != nil || x < 0 {
				return model.ImportUpdates{}, false
			}
		}
		if field := fields[names[i]]; field != nil {
			*field += x
			if slices.Contains(updateColumns, names[i]) {
				found++
			}
		}
	}
	return u, found == len(updateColumns)
}

// codeBFDSessions marks the rows of `show bfd sessions`.
const codeBFDSessions = 1020

// ParseBFDSessions reads the reply of `show bfd sessions`: the state of
// each BFD session by peer address. Like ParseProtocols it never fails.
//
//	meshrr_bfd:
//	IP address                Interface  State      Since         Interval  Timeout
//	127.0.10.129              ---        Up         2026-12-02 20:14:11.778    0.200    0.600
func ParseBFDSessions(lines []Line) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, l := range lines {
		if l.Code != codeBFDSessions {
			continue
		}
		f := strings.Fields(l.Text)
		if len(f) < 3 {
			continue
		}
		if a, err := netip.ParseAddr(f[0]); err == nil {
			out[a.Unmap()] = f[2]
		}
	}
	return out
}
