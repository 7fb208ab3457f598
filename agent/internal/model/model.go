// Package model is the daemon-neutral BGP vocabulary shared by the plan (which
// produces a Model) and the backends (which render it). It holds no I/O.
package model

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ASN is a 4-octet autonomous system number.
type ASN uint32

// ASNRange is an inclusive range of ASNs; Min == Max for a single ASN.
type ASNRange struct{ Min, Max ASN }

func (r ASNRange) String() string {
	if r.Min == r.Max {
		return strconv.FormatUint(uint64(r.Min), 10)
	}
	return fmt.Sprintf("%d-%d", r.Min, r.Max)
}

// ParseASNRange parses "65100" or "65100-65199".
func ParseASNRange(s string) (ASNRange, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	min, err := ParseASN(lo)
	if err != nil {
		return ASNRange{}, err
	}
	if !isRange {
		return ASNRange{min, min}, nil
	}
	max, err := ParseASN(hi)
	if err != nil {
		return ASNRange{}, err
	}
	if max < min {
		return ASNRange{}, fmt.Errorf("range %q ends below its start", s)
	}
	return ASNRange{min, max}, nil
}

// ParseASN parses a plain (asplain) ASN and rejects 0, AS_TRANS and out-of-range values.
func ParseASN(s string) (ASN, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not an AS number (1-4294967295)", s)
	}
	return ASN(v), CheckASN(uint64(v))
}

// CheckASN rejects values that are not usable as a BGP speaker's ASN.
func CheckASN(v uint64) error {
	switch {
	case v == 0 || v > 4294967295:
		return fmt.Errorf("%d is outside 1-4294967295", v)
	case v == 23456:
		return fmt.Errorf("23456 is AS_TRANS (RFC 6793) and cannot be used")
	}
	return nil
}

// Community is a standard (RFC 1997, A:B) or large (RFC 8092, A:B:C) community.
type Community struct {
	Large bool
	A     uint32
	B     uint32
	C     uint32 // large communities only
}

// ParseCommunity parses "65000:101" or "65000:1:2".
func ParseCommunity(s string) (Community, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	bad := fmt.Errorf("%q is not a community: use ASN:VALUE (each 0-65535) or ASN:VALUE:VALUE for a large community", s)
	var c Community
	switch len(parts) {
	case 2:
		for i, p := range parts {
			v, err := strconv.ParseUint(p, 10, 16)
			if err != nil {
				return c, bad
			}
			if i == 0 {
				c.A = uint32(v)
			} else {
				c.B = uint32(v)
			}
		}
	case 3:
		c.Large = true
		dst := []*uint32{&c.A, &c.B, &c.C}
		for i, p := range parts {
			v, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				return c, bad
			}
			*dst[i] = uint32(v)
		}
	default:
		return c, bad
	}
	return c, nil
}

// GracefulShutdown is the well-known GRACEFUL_SHUTDOWN community (RFC 8326).
var GracefulShutdown = Community{A: 65535, B: 0}

func (c Community) String() string {
	if c.Large {
		return fmt.Sprintf("%d:%d:%d", c.A, c.B, c.C)
	}
	return fmt.Sprintf("%d:%d", c.A, c.B)
}

// Family is an address family carried by a session.
type Family string

const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// FamilyOf returns the family of an address.
func FamilyOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// LimitAction is what happens to a session beyond its maximum prefixes.
type LimitAction string

// Limit actions.
const (
	LimitRestart LimitAction = "restart"
	LimitDisable LimitAction = "disable"
	LimitBlock   LimitAction = "block"
	LimitWarn    LimitAction = "warn"
)

// NLRI is what a session carries beyond its transport address family.
type NLRI string

const (
	NLRIUnicast NLRI = "unicast" // unicast of the session's address family
	NLRIEVPN    NLRI = "evpn"    // L2VPN EVPN (AFI 25, SAFI 70)
)

// Role says why a peer group exists.
type Role string

const (
	RoleMesh     Role = "mesh"     // the pod's own group: every other ready member
	RoleUpstream Role = "upstream" // at most maxPeers members of another group
	RoleClients  Role = "clients"  // sessions opened by address ranges
)

// Meshed: the role of the sessions between meshrr pods (mesh, upstream).
func (r Role) Meshed() bool { return r == RoleMesh || r == RoleUpstream }

// Group is the name of the role's peer group: the mesh's and the
// upstream's groups are named after their role; a client group has its
// own name ("" here).
func (r Role) Group() GroupName {
	switch r {
	case RoleMesh:
		return GroupMesh
	case RoleUpstream:
		return GroupUpstream
	}
	return ""
}

// GroupName names a peer group: GroupMesh, GroupUpstream or a client
// group's configured name. Sessions, peer groups, status, metrics labels
// and TCP-MD5 keys all name groups with it; a Role says why a group
// exists.
type GroupName string

const (
	GroupMesh     GroupName = "mesh"
	GroupUpstream GroupName = "upstream"
	// GroupDownstream admits the RRs of the groups below (a core's side of
	// a hierarchy).
	GroupDownstream GroupName = "downstream"
)

// Meshed: the mesh's or the upstream's group, the sessions between meshrr
// pods.
func (g GroupName) Meshed() bool { return g == GroupMesh || g == GroupUpstream }

// Model is the desired BGP configuration of one RR pod.
type Model struct {
	ASN        ASN
	RouterID   netip.Addr
	LocalAddrs []netip.Addr // the pod's own addresses, one per family at most
	Timers     Timers
	// GracefulRestart applies to every session.
	GracefulRestart GracefulRestart
	// Draining: the exports carry the graceful-shutdown rule (the pod is
	// about to stop).
	Draining bool
	Groups   []PeerGroup // sorted by Name
}

// GracefulRestart (RFC 4724) and long-lived graceful restart (RFC 9494).
type GracefulRestart struct {
	Enabled     bool
	RestartTime int // seconds
	LongLived   bool
	StaleTime   int // seconds
}

// Secrets are every TCP-MD5 key of the model (for redaction).
func (m *Model) Secrets() []string {
	var out []string
	for _, g := range m.Groups {
		if g.Password != "" {
			out = append(out, g.Password)
		}
		for _, k := range g.SessionKeys {
			out = append(out, k)
		}
	}
	return out
}

// LocalAddr returns the pod's address of the given family.
func (m *Model) LocalAddr(f Family) (netip.Addr, bool) {
	for _, a := range m.LocalAddrs {
		if FamilyOf(a) == f {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// Timers are BGP session timers in seconds (0 = daemon default).
type Timers struct {
	ConnectDelay int
	ConnectRetry int
	Hold         int
	Keepalive    int
	ErrorWaitMin int
	ErrorWaitMax int
}

// PeerGroup is a set of sessions sharing role, type and policy.
type PeerGroup struct {
	Name     GroupName // stable: "mesh", "upstream" or the client group's name
	Role     Role
	External bool // eBGP (route-server clients); otherwise iBGP
	RRClient bool // peers are route-reflector clients of this pod
	// ClusterID is the route-reflector cluster id used towards RR clients.
	ClusterID netip.Addr
	Neighbors []Neighbor // explicit peers (mesh, upstream); sorted by address
	// Ranges are the configured client ranges; Allow is Ranges minus every
	// explicitly configured peer of the model, as a minimal prefix set.
	// Backends whose daemon prefers explicit neighbours over ranges may render
	// Ranges; the others must render Allow.
	Ranges           []netip.Prefix
	Allow            []netip.Prefix
	PeerASNs         []ASNRange // external clients: accepted peer ASNs
	Multihop         int        // 0: daemon default
	NextHopUnchanged bool
	RouteServer      bool // transparent route server (external clients)
	// NLRI lists what the sessions carry; nil means unicast only.
	NLRI []NLRI
	// Password is the TCP-MD5 key (RFC 2385) of the sessions: a secret,
	// never logged ("" : none).
	Password string
	// SessionKeys are the keys of single sessions (by peer address: an
	// explicit neighbor or a single-address range) that differ from
	// Password while the group's key rolls over (Key). Secrets.
	SessionKeys map[netip.Addr]string
	// MaxPrefixes per session (0: none) and the action beyond it
	// (restart, disable, block, warn).
	MaxPrefixes     int
	MaxPrefixAction LimitAction
	// Disabled are client addresses kept out after exceeding MaxPrefixes
	// with action disable, until re-enabled: the daemon refuses their
	// sessions (sorted).
	Disabled []netip.Addr
	// TTLSecurity: GTSM (RFC 5082).
	TTLSecurity bool
	// AddPaths (RFC 7911): send up to this many paths per prefix and
	// receive several (0: off).
	AddPaths int
	// BFD of the group's sessions (nil: off).
	BFD    *BFD
	Import Policy
	Export Policy
}

// BFD (RFC 5880) timers of a session group: packets every Interval, the
// peer down after Multiplier missed.
type BFD struct {
	Interval   time.Duration
	Multiplier int
	// Graceful: a BFD failure is handled as a session failure under
	// graceful restart (a peer that preserves its forwarding state keeps
	// its routes for the restart time); otherwise the session goes down
	// and the peer's routes are withdrawn at once.
	Graceful bool
}

// Families returns the address families this group carries, from its
// neighbours and ranges.
func (g *PeerGroup) Families() []Family {
	var fs []Family
	add := func(f Family) {
		if !slices.Contains(fs, f) {
			fs = append(fs, f)
		}
	}
	for _, n := range g.Neighbors {
		add(FamilyOf(n.Addr))
	}
	for _, p := range g.Ranges {
		add(FamilyOf(p.Addr()))
	}
	slices.Sort(fs)
	return fs
}

// Carries reports whether the group's sessions carry n.
func (g *PeerGroup) Carries(n NLRI) bool {
	if g.NLRI == nil {
		return n == NLRIUnicast
	}
	return slices.Contains(g.NLRI, n)
}

// EVPNFamily is the transport family whose sessions carry EVPN: IPv4 when
// the group has IPv4 sessions, else IPv6 (one EVPN session per peer pair).
func (g *PeerGroup) EVPNFamily() Family {
	if fs := g.Families(); len(fs) > 0 {
		return fs[0]
	}
	return IPv4
}

// Neighbor is one explicitly configured peer.
type Neighbor struct {
	Addr netip.Addr
	ASN  ASN
	// Name identifies the peer for operators (namespace/pod), not used for matching.
	Name string
	// Side is the member's redundancy side, when it has one.
	Side string
}

// Policy is an ordered list of rules and a default action.
type Policy struct {
	Rules         []Rule
	DefaultReject bool
}

// Empty reports whether the policy accepts everything unchanged.
func (p Policy) Empty() bool { return len(p.Rules) == 0 && !p.DefaultReject }

// Rule applies Action to routes matching Match. Rules run in order; Reject and
// Accept stop evaluation, SetLocalPref continues with the next rule.
type Rule struct {
	Name   string
	Match  Match
	Action Action
}

// Match is a conjunction of conditions; within one condition any listed
// value matches. An empty Match matches every route.
type Match struct {
	Communities  []Community
	Prefixes     []PrefixMatch
	DefaultRoute bool
}

// PrefixMatch matches Prefix and its more specifics up to MaxLen.
type PrefixMatch struct {
	Prefix netip.Prefix
	MaxLen int
}

// Action is what a rule does to a matching route: the modifications in
// field order (communities removed before others are added), then Reject
// or Accept.
type Action struct {
	Reject            bool
	Accept            bool
	SetLocalPref      *uint32
	SetMED            *uint32
	RemoveCommunities []Community
	AddCommunities    []Community
	// Prepend the local AS this many times (eBGP exports only).
	Prepend int
}

// Session is a BGP session as read from the daemon.
type Session struct {
	Name  string       `json:"name"`  // daemon's protocol/peer name
	Group GroupName    `json:"group"` // model group name, "" when the session is not the agent's
	Peer  netip.Addr   `json:"peer"`
	State SessionState `json:"state"`
	Since time.Time    `json:"since"` // last state change
	// Restarting: the daemon still keeps the peer's routes (as stale) under
	// graceful restart or long-lived graceful restart, for the restart and
	// stale times the peer announced.
	Restarting bool `json:"restarting,omitempty"`
	// LimitDown: the daemon shut the session down for exceeding its prefix
	// limit and keeps it down (action disable).
	LimitDown bool `json:"limitDown,omitempty"`
	Imported  int  `json:"imported"`
	Exported  int  `json:"exported"`
	// BFD is the state of the session's BFD session (Up, Down, Init,
	// AdminDown), "" without one.
	BFD string `json:"bfd,omitempty"`
	// Updates counts the route updates the session received since it
	// came up, where the daemon counts them (nil: it does not).
	Updates *ImportUpdates `json:"importUpdates,omitempty"`
}

// ImportUpdates counts the route updates a session received, as BIRD's
// "Import updates" row has them: Received, of which Rejected as invalid,
// Filtered by the import policy, Ignored (no change, or kept out by a
// prefix limit with action block) and Accepted.
type ImportUpdates struct {
	Received int64 `json:"received"`
	Rejected int64 `json:"rejected"`
	Filtered int64 `json:"filtered"`
	Ignored  int64 `json:"ignored"`
	Accepted int64 `json:"accepted"`
}

// Add adds o to u (the channels of one session).
func (u *ImportUpdates) Add(o ImportUpdates) {
	u.Received, u.Rejected, u.Filtered, u.Ignored, u.Accepted = u.Received+o.Received, u.Rejected+o.Rejected, u.Filtered+o.Filtered, u.Ignored+o.Ignored, u.Accepted+o.Accepted
}

// Established reports whether the session is up. The JSON form carries it
// as "established" too, for readers that do not know the daemons' words.
func (s Session) Established() bool { return s.State.Established() }

// MarshalJSON writes the session with "established" beside its state.
func (s Session) MarshalJSON() ([]byte, error) {
	type fields Session // without the method, so no recursion
	return json.Marshal(struct {
		fields
		Established bool `json:"established"`
	}{fields(s), s.Established()})
}

// SessionState is a BGP session's state as the daemon reads it. BIRD and
// Junos both use the RFC 4271 names (Idle, Connect, Active, OpenSent,
// OpenConfirm, Established); BIRD also reports a session that is not
// running as Down, and a state of "" means the daemon did not say.
type SessionState string

// The states the agent acts on; any other is simply not Established.
const (
	StateEstablished SessionState = "Established"
	StateActive      SessionState = "Active"
	StateIdle        SessionState = "Idle"
	StateDown        SessionState = "Down"
)

// Established reports whether the state is Established.
func (s SessionState) Established() bool { return s == StateEstablished }

// In reports whether the session belongs to the mesh or upstream group
// (a client group's sessions are in no role's group).
func (s Session) In(r Role) bool { return s.Group != "" && s.Group == r.Group() }

// Member is one ready RR pod found through discovery.
type Member struct {
	Namespace string
	Group     string // meshrr.io/group label of its Service
	Side      string // meshrr.io/side label of its Service ("" without sides)
	Pod       string // targetRef name; "" if the endpoint has none
	Node      string
	Addrs     []netip.Addr // sorted
	// UpstreamGroup and UpstreamNamespace come from the meshrr.io/upstream-*
	// labels of its Service: the group this member's group peers up to.
	UpstreamGroup     string
	UpstreamNamespace string
	// Terminating members are stopping (and draining): still meshed until
	// they are gone, never chosen as a new upstream.
	Terminating bool
}

// ID identifies a member stably for hashing: namespace/pod, or
// namespace/address when the endpoint names no pod.
func (m Member) ID() string {
	if m.Pod != "" {
		return m.Namespace + "/" + m.Pod
	}
	if len(m.Addrs) > 0 {
		return m.Namespace + "/" + m.Addrs[0].String()
	}
	return m.Namespace + "/?"
}

// Snapshot is the discovered membership of every watched group.
type Snapshot struct {
	// Synced is false until every informer has synced once; an unsynced
	// snapshot must never remove peers.
	Synced  bool
	Members []Member // sorted by Namespace, Group, ID
	// Rejected explains, one line each, what discovery refused to trust
	// (forged or malformed EndpointSlices, endpoints, shared addresses).
	Rejected []string
}
