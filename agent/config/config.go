// Package config loads, defaults and validates the agent's configuration file
// (YAML, rendered by the Helm chart into a ConfigMap). Validation gathers every
// problem, each naming its field and what to do.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/meshrr/meshrr/agent/internal/model"
)

// BackendType names a routing daemon the agent drives.
type BackendType string

// Backend types.
const (
	BackendBird BackendType = "bird"
	BackendCRPD BackendType = "crpd"
)

// Router-id and cluster-id policies.
const (
	RouterIDAuto    = "auto"    // pod IPv4 address if the pod has one, else Hash
	RouterIDPodIPv4 = "podIPv4" // the pod's IPv4 address; an error on IPv6-only pods
	RouterIDHash    = "hash"    // 32 bits of SHA-256(namespace/pod name), never 0.0.0.0
	ClusterIDRouter = "routerID"
)

// ClientType: internal clients are RR clients (iBGP), external clients are
// route-server clients (eBGP).
type ClientType string

// Client types.
const (
	ClientInternal ClientType = "internal"
	ClientExternal ClientType = "external"
)

// Tier is what a client group receives.
type Tier string

// Export tiers.
const (
	TierFull    Tier = "full"
	TierPartial Tier = "partial"
	TierDefault Tier = "default"
)

// Family is an NLRI family carried by every session (besides the
// session's own address family, which decides between IPv4 and IPv6
// unicast): the model's type, decoded and checked here once.
type Family = model.NLRI

// Families.
const (
	FamilyUnicast = model.NLRIUnicast // IPv4 unicast on IPv4 sessions, IPv6 unicast on IPv6 sessions
	FamilyEVPN    = model.NLRIEVPN    // L2VPN EVPN (AFI 25, SAFI 70); backend crpd only
)

// LimitAction is what happens to a session beyond its maxPrefixes: the
// model's type, decoded and checked here once.
type LimitAction = model.LimitAction

// Limit actions.
const (
	LimitRestart = model.LimitRestart
	LimitDisable = model.LimitDisable
	LimitBlock   = model.LimitBlock
	LimitWarn    = model.LimitWarn
)

// PasswordFile is the key file of a session group ("mesh", "upstream" or a
// client group's name) under PasswordDir ("" without PasswordDir).
func (c *Config) PasswordFile(group model.GroupName, client bool) string {
	if c.PasswordDir == "" {
		return ""
	}
	return filepath.Join(c.PasswordDir, PasswordKey(group, client))
}

// PasswordKey is the Secret key (file name) of a session group's TCP-MD5
// key: "mesh", "upstream", or "client-<name>" for a client group.
func PasswordKey(group model.GroupName, client bool) string {
	if client {
		return "client-" + string(group)
	}
	return string(group)
}

// SessionGroup is a session group of the configuration: the mesh, the
// upstream, the downstream or a client group (Client), by model name.
type SessionGroup struct {
	Name   model.GroupName
	Client bool
}

// SessionGroups are the configuration's session groups, each of which may
// have a TCP-MD5 key.
func (c *Config) SessionGroups() []SessionGroup {
	out := []SessionGroup{{Name: model.GroupMesh}}
	if c.Upstream != nil {
		out = append(out, SessionGroup{Name: model.GroupUpstream})
	}
	if c.Downstream != nil {
		out = append(out, SessionGroup{Name: model.GroupDownstream})
	}
	for _, cl := range c.Clients {
		out = append(out, SessionGroup{Name: model.GroupName(cl.Name), Client: true})
	}
	return out
}

// sessionGroupKeys: the key of every session group of the configuration.
func (c *Config) sessionGroupKeys() []string {
	var keys []string
	for _, g := range c.SessionGroups() {
		keys = append(keys, PasswordKey(g.Name, g.Client))
	}
	return keys
}

// PasswordRequired reports whether a session group's key must exist.
func (c *Config) PasswordRequired(group model.GroupName, client bool) bool {
	return c.PasswordDir != "" && slices.Contains(c.PasswordKeys, PasswordKey(group, client))
}

// Action is what a policy rule does with a matching route after its
// modifications.
type Action string

// Policy rule actions.
const (
	ActionContinue Action = ""
	ActionAccept   Action = "accept"
	ActionReject   Action = "reject"
)

// Target names what a policy rule applies to (towards, from): a session
// group (mesh, upstream, downstream or a client group's name), or clients,
// every client group.
type Target string

// Well-known policy targets.
const (
	TargetMesh     Target = "mesh"
	TargetUpstream Target = "upstream"
	TargetClients  Target = "clients"
	// TargetDownstream is the downstream RRs' session group (a client
	// group: "clients" includes it).
	TargetDownstream Target = "downstream"
)

// Selects reports whether the target names a peer group: the group's own
// name (the mesh's and the upstream's are their roles'), or clients for
// every client group.
func (t Target) Selects(g model.PeerGroup) bool {
	return model.GroupName(t) == g.Name || t == TargetClients && g.Role == model.RoleClients
}

// The file's format: every configuration file starts with
//
//	apiVersion: meshrr.io/v1alpha1
//	kind: AgentConfig
//
// so that an agent never reads a file written for another format as its
// own. v1alpha1's body is this package's Config; a later version is
// converted into it when it is decoded.
const (
	APIVersion = "meshrr.io/v1alpha1"
	Kind       = "AgentConfig"
)

// Config is the agent configuration file.
type Config struct {
	// APIVersion and Kind name the file's format (APIVersion, Kind).
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Identity of the BGP speaker.
	Identity Identity `json:"identity"`
	// Backend selects and configures the routing daemon.
	Backend Backend `json:"backend"`
	// Mesh is the pod's own group: full iBGP mesh with every other ready member.
	Mesh Mesh `json:"mesh"`
	// Upstream optionally peers with up to MaxPeers members of another group.
	Upstream *Upstream `json:"upstream,omitempty"`
	// Downstream admits the RRs of the groups that peer up to this one,
	// each at its own discovered address (never a range of the pod network).
	Downstream *Downstream `json:"downstream,omitempty"`
	// Clients are address ranges allowed to open sessions to this group.
	Clients []Client `json:"clients,omitempty"`
	// ClusterNetworks are the cluster's pod and service CIDRs. A client
	// range that overlaps one (or, at run time, holds the pod's own
	// address, a discovered RR's or the API server's Service address) would
	// let any pod of the cluster peer: it is refused unless its group
	// requires its TCP-MD5 key and has an import policy (Guarded).
	ClusterNetworks []string `json:"clusterNetworks,omitempty"`
	// Policy rules applied at group boundaries, in order.
	Policy []PolicyRule `json:"policy,omitempty"`
	// Families the sessions carry: unicast (default) and/or evpn (crpd only).
	Families []Family `json:"families,omitempty"`
	// Timers for every session.
	Timers Timers `json:"timers"`
	// GracefulRestart keeps routes through a daemon restart (RFC 4724).
	GracefulRestart GracefulRestart `json:"gracefulRestart"`
	// Drain is what the pod does before it stops (graceful shutdown, RFC 8326).
	Drain Drain `json:"drain"`
	// PasswordDir holds TCP-MD5 keys (RFC 2385), one file per session
	// group: "mesh", "upstream", "client-<name>" (a Secret mounted by the
	// chart). Keys are read at every reconcile (rotation) and never logged.
	// A session group whose key is malformed, or missing while
	// PasswordKeys lists it, gets no session at all (never one without the
	// key it was configured with); the other groups and the drain go on.
	PasswordDir string `json:"passwordDir,omitempty"`
	// PasswordSecret names the Secret mounted at PasswordDir, for the
	// messages that name a refused key.
	PasswordSecret string `json:"passwordSecret,omitempty"`
	// PasswordKeys are the key files that must exist ("mesh", "upstream",
	// "client-<name>"); default with PasswordDir: every session group's.
	// A session group not listed runs without TCP-MD5 when its key is absent.
	PasswordKeys []string `json:"passwordKeys,omitempty"`
	// Reconcile tunes the loop.
	Reconcile Reconcile `json:"reconcile"`
	// Status configures metrics and health endpoints.
	Status Status `json:"status"`

	// compiled values, set by compile (Parse)
	asn         model.ASN
	routerID    netip.Addr // zero when derived at run time
	clusterID   netip.Addr // zero when it follows the router id
	memoryLimit int64      // backend.bird.memoryLimit in bytes, 0: none
	clusterNets []netip.Prefix
	baseMemory  int64 // backend.bird.baseMemory in bytes
	routeBytes  int64 // backend.bird.bytesPerRoute, or its release line's default
}

// BytesPerRoute is BIRD's memory per route held as the agent sizes it:
// backend.bird.bytesPerRoute, or when it is 0 the default of the release
// line (DefaultBirdBytesPerRoute, DefaultBird3BytesPerRoute).
func (c *Config) BytesPerRoute() int64 { return c.routeBytes }

// MemoryNeed is the memory, in bytes, the daemon needs to hold the given
// number of routes and the limit it runs under (0: none, or a backend the
// agent has no sizing for).
func (c *Config) MemoryNeed(routes int) (need, limit int64) {
	if c.memoryLimit == 0 {
		return 0, 0
	}
	return c.baseMemory + int64(routes)*c.routeBytes, c.memoryLimit
}

// LimitOf returns the prefix limit of a client session group (a client
// group's name, or "downstream"); zero when there is none.
func (c *Config) LimitOf(group model.GroupName) PrefixLimit {
	if group == model.GroupDownstream && c.Downstream != nil {
		return c.Downstream.PrefixLimit
	}
	for _, cl := range c.Clients {
		if model.GroupName(cl.Name) == group {
			return cl.PrefixLimit
		}
	}
	return PrefixLimit{}
}

// PeerMetrics reports whether a session group ("mesh", "upstream" or a
// client group's name) gets per-peer metrics: mesh and upstream always
// (few, known peers), client groups when they opt in.
func (c *Config) PeerMetrics(group model.GroupName) bool {
	if group.Meshed() {
		return true
	}
	for _, cl := range c.Clients {
		if model.GroupName(cl.Name) == group {
			return cl.PeerMetrics
		}
	}
	return false
}

// ASN returns the validated local AS number.
func (c *Config) ASN() model.ASN { return c.asn }

// ExplicitRouterID returns the configured router id, if it is an address.
func (c *Config) ExplicitRouterID() (netip.Addr, bool) { return c.routerID, c.routerID.IsValid() }

// ExplicitClusterID returns the configured cluster id, if it is an address.
func (c *Config) ExplicitClusterID() (netip.Addr, bool) { return c.clusterID, c.clusterID.IsValid() }

// Identity of the BGP speaker.
type Identity struct {
	ASN uint64 `json:"asn"`
	// RouterID: "auto" (default), "podIPv4", "hash" or an IPv4 address.
	RouterID string `json:"routerID,omitempty"`
	// ClusterID: "routerID" (default: each RR is its own cluster) or an IPv4 address shared by the group.
	ClusterID string `json:"clusterID,omitempty"`
}

// Backend selects the daemon.
type Backend struct {
	Type BackendType `json:"type"`
	Bird BirdBackend `json:"bird"`
	CRPD CRPDBackend `json:"crpd"`
}

// CRPDBackend configures Juniper cRPD, driven over NETCONF.
type CRPDBackend struct {
	// Address of cRPD's NETCONF-over-SSH service inside the pod.
	Address string `json:"address,omitempty"`
	// User is the login the init step creates for the agent.
	User string `json:"user,omitempty"`
	// KeyFile is the agent's ed25519 private key, generated per pod by init.
	KeyFile string `json:"keyFile,omitempty"`
	// HostKeyFile is cRPD's SSH host key, provisioned by init in the pod's
	// volume and mounted into the cRPD container at
	// /etc/ssh/ssh_host_ed25519_key.
	HostKeyFile string `json:"hostKeyFile,omitempty"`
	// KnownHostFile holds the public half of HostKeyFile: the only host key
	// the agent accepts (nothing is trusted on first use).
	KnownHostFile string `json:"knownHostFile,omitempty"`
	// StateFile keeps the last configuration the agent committed.
	StateFile string `json:"stateFile,omitempty"`
	// StartupConfig is the juniper.conf init writes when none exists.
	StartupConfig string `json:"startupConfig,omitempty"`
	// LicenseFile holds the cRPD licence key (from a Secret).
	LicenseFile string `json:"licenseFile,omitempty"`
	// ExtraConfigFile holds Junos text appended to the startup configuration.
	ExtraConfigFile string `json:"extraConfigFile,omitempty"`
	// RPCTimeout bounds one NETCONF RPC (commits can be slow).
	RPCTimeout Duration `json:"rpcTimeout,omitempty"`
	// LicenseLimits are the limits of the cRPD licence in use; the agent
	// warns (Event, metric) when a planned configuration or the routes
	// received exceed them.
	LicenseLimits LicenseLimits `json:"licenseLimits"`
}

// LicenseLimits of a cRPD licence (Juniper's standard licence: 16 BGP
// peers, 4M RIB entries); 0 means no limit.
type LicenseLimits struct {
	BGPPeers   *int `json:"bgpPeers,omitempty"`
	RIBEntries *int `json:"ribEntries,omitempty"`
}

// BirdBackend configures BIRD 2.
type BirdBackend struct {
	// Socket is BIRD's control socket.
	Socket string `json:"socket,omitempty"`
	// ConfigFile is the agent-owned configuration BIRD runs (bird -c). It
	// includes the operator's additions.
	ConfigFile string `json:"configFile,omitempty"`
	// Include lists files or globs of operator additions included by ConfigFile.
	Include []string `json:"include,omitempty"`
	// ExtraConfigFile is the operator's extraConfig as mounted from the
	// group's ConfigMap. BIRD never reads it: the agent keeps its own copy
	// beside ConfigFile (extra.conf, included after Include) and replaces
	// it only with a version BIRD accepted (configure check, then
	// configure); a version BIRD refuses leaves the last good one in use,
	// so an edit outside helm cannot break the next apply or a restarting
	// BIRD.
	ExtraConfigFile string `json:"extraConfigFile,omitempty"`
	// StrictBind binds each session to the pod address (needed when several
	// daemons share a host network namespace).
	StrictBind *bool `json:"strictBind,omitempty"`
	// MemoryLimit is the memory limit of BIRD's container, a Kubernetes
	// quantity such as 512Mi (the chart renders resources.bird.limits.memory).
	// The agent compares it with what the routes BIRD holds need (Warning
	// Event MemoryLimitLow, metrics meshrr_memory_*). Empty: no comparison.
	MemoryLimit string `json:"memoryLimit,omitempty"`
	// BytesPerRoute is BIRD's memory per route it holds, every path
	// received counting once; 0: the release line's default (docs/scale.md:
	// the measurement doubled, for a session's table arriving again while
	// the old one is still held).
	BytesPerRoute int64 `json:"bytesPerRoute,omitempty"`
	// BaseMemory is BIRD's memory without routes, a Kubernetes quantity.
	BaseMemory string `json:"baseMemory,omitempty"`
	// Version is the BIRD release line the chart runs (its
	// backend.bird.version: 2 or 3); the agent refuses a daemon of the
	// other line. 0: any release the agent supports.
	Version int `json:"version,omitempty"`
	// Threads is BIRD 3's worker threads (`threads N;`), 1 to
	// MaxBirdThreads; 0: from the BIRD container's CPUs (BirdCPUsEnv).
	Threads int `json:"threads,omitempty"`
}

// MaxBirdThreads bounds backend.bird.threads.
const MaxBirdThreads = 64

// BirdCPUsEnv names the environment variable the chart sets to the BIRD
// container's CPU limit in whole CPUs (rounded up), or the node's CPUs when
// it has none (the downward API's limits.cpu): BIRD 3's threads when
// backend.bird.threads is 0.
const BirdCPUsEnv = "MESHRR_BIRD_CPUS"

// Mesh names the pod's own group.
type Mesh struct {
	// Group is the value of the meshrr.io/group label on the group's headless Services.
	Group string `json:"group"`
	// Namespace of the group; default: the pod's namespace.
	Namespace string `json:"namespace,omitempty"`
	// Service is the name of the group's headless Service, or its stem
	// when the group has sides (<service>-<side>): discovery trusts only
	// Services of that name (the chart renders it). Empty: any name.
	Service string `json:"service,omitempty"`
	// BFD of the mesh sessions.
	BFD *BFD `json:"bfd,omitempty"`
}

// BFD (RFC 5880) detects a dead peer of a session group in
// interval x multiplier instead of the hold time; single-hop where the
// sessions are (directly connected eBGP), multihop elsewhere (RFC 5883).
// Towards clients a BFD failure takes the session down and the client's
// routes are withdrawn at once; between meshrr pods (mesh, upstream) with
// graceful restart on it is handled as a session failure under graceful
// restart, as a broken TCP session is (a restarting daemon keeps its
// routes).
type BFD struct {
	Enabled bool `json:"enabled,omitempty"`
	// Interval between BFD packets, sent and expected (default 200ms:
	// pods under CPU limits miss 10-100 ms timers).
	Interval Duration `json:"interval,omitempty"`
	// Multiplier: packets missed before the peer is down (default 3).
	Multiplier int `json:"multiplier,omitempty"`
}

// On reports whether b enables BFD.
func (b *BFD) On() bool { return b != nil && b.Enabled }

// Upstream is another group this group peers up to.
type Upstream struct {
	Group     string `json:"group"`
	Namespace string `json:"namespace,omitempty"`
	// Service names the upstream group's headless Service as Mesh.Service
	// does the own group's.
	Service string `json:"service,omitempty"`
	// MaxPeers is how many upstream members each pod peers with.
	MaxPeers int `json:"maxPeers,omitempty"`
	// GracePeriod a chosen peer may stay not Established before it is replaced.
	GracePeriod Duration `json:"gracePeriod,omitempty"`
	// HoldDown keeps a replaced peer out of the choice for this long.
	HoldDown Duration `json:"holdDown,omitempty"`
	// Epsilon is the load slack of the balanced choice: no upstream member
	// takes more than ceil((1+epsilon) * mean) sessions.
	Epsilon float64 `json:"epsilon,omitempty"`
	// SiblingNamespaces are the namespaces of other groups that use the same
	// upstream (found through the meshrr.io/upstream-* labels of their Services);
	// default: the pod's namespace.
	SiblingNamespaces []string `json:"siblingNamespaces,omitempty"`
	// BFD of the upstream sessions.
	BFD *BFD `json:"bfd,omitempty"`
}

// Guarded reports whether a client group may admit a range of the
// cluster's own networks: only with its TCP-MD5 key required (PasswordKeys)
// and an import policy (a rule from it or from all clients), so a pod that
// can reach it still needs the key, and what it announces is filtered.
func (c *Config) Guarded(client string) bool {
	if !c.PasswordRequired(model.GroupName(client), true) {
		return false
	}
	for _, r := range c.Policy {
		if slices.Contains(r.From, Target(client)) || slices.Contains(r.From, TargetClients) {
			return true
		}
	}
	return false
}

// ClusterExposure says why a client group's range must not admit the
// cluster address or network it overlaps (what), or "" when the group is
// Guarded.
func (c *Config) ClusterExposure(client string, r netip.Prefix, what string) string {
	if c.Guarded(client) {
		return ""
	}
	return fmt.Sprintf("%s overlaps %s: any pod of the cluster could open a session; admit RRs with downstream (each at its own address), or narrow the range to the routers' addresses, or require the group's TCP-MD5 key (tcpMD5Secret, key %s) and give it an import policy (a policy rule with from: [%s])", r, what, PasswordKey(model.GroupName(client), true), client)
}

// CompiledClusterNetworks returns the validated cluster networks.
func (c *Config) CompiledClusterNetworks() []netip.Prefix { return c.clusterNets }

// Downstream: the groups that name this group as their upstream. Each of
// their RRs, discovered through its release's Service in Namespaces (the
// Service's meshrr.io/upstream-group and meshrr.io/upstream-namespace
// labels name this group), is admitted as an iBGP RR client at its own
// addresses only: a pod of the cluster that is not such an RR cannot open a
// session, as it could through a client range of the pod network. The
// sessions are the "downstream" session group (policy target, TCP-MD5 key
// "downstream").
type Downstream struct {
	Namespaces []string `json:"namespaces"`
	// The limit per downstream RR session, as for client groups.
	PrefixLimit
}

// PrefixLimit caps the prefixes each session of a group may send.
type PrefixLimit struct {
	// MaxPrefixes per session (0: no limit) and what happens beyond it:
	// restart (default: the session restarts), disable (stays down until an
	// operator re-enables it, or ReenableAfter), block (excess routes
	// dropped; BIRD only), warn (log).
	MaxPrefixes     int         `json:"maxPrefixes,omitempty"`
	MaxPrefixAction LimitAction `json:"maxPrefixAction,omitempty"`
	// ReenableAfter (action disable): a peer disabled for exceeding the
	// limit is admitted again after this long (0: only when an operator
	// re-enables it with meshrr-agent enable).
	ReenableAfter Duration `json:"reenableAfter,omitempty"`
}

// Client is a set of address ranges allowed to open sessions.
type Client struct {
	Name string `json:"name"`
	// Type: internal (RR clients, cluster id) or external (route-server clients).
	Type   ClientType `json:"type,omitempty"`
	Ranges []string   `json:"ranges"`
	// PeerASNs (external only): accepted peer AS numbers or ranges "A-B".
	PeerASNs []string `json:"peerASNs,omitempty"`
	// Multihop TTL for external clients (0: directly connected).
	Multihop int `json:"multihop,omitempty"`
	// NextHopUnchanged keeps the next hop of routes sent to the clients
	// (default true for external clients).
	NextHopUnchanged *bool `json:"nextHopUnchanged,omitempty"`
	// Export is the table tier the clients receive.
	Export Export `json:"export,omitempty"`
	PrefixLimit
	// TTLSecurity enables GTSM (RFC 5082): packets must arrive with TTL
	// 255 - multihop + 1 or more (BIRD only).
	TTLSecurity bool `json:"ttlSecurity,omitempty"`
	// AddPaths (RFC 7911) sends the clients up to this many paths per
	// prefix instead of the best one only, and accepts several paths from
	// them: 0 (off) or 2-64. BIRD 2 has no path count: it sends every path
	// it holds (docs/features.md).
	AddPaths int `json:"addPaths,omitempty"`
	// BFD of the clients' sessions (the clients must run BFD too).
	BFD *BFD `json:"bfd,omitempty"`
	// OptimalRouteReflection (RFC 9107) is refused: it needs the IGP
	// distances seen from the clients' positions, which RR pods do not
	// have. The field exists to say so (use AddPaths: the clients choose).
	OptimalRouteReflection bool `json:"optimalRouteReflection,omitempty"`
	// PeerMetrics exports per-peer series (meshrr_bgp_peer_*) for each
	// client session instead of the group's totals only: one series set
	// per client address, so mind the cardinality.
	PeerMetrics bool `json:"peerMetrics,omitempty"`

	ranges   []netip.Prefix
	peerASNs []model.ASNRange
}

// CompiledRanges returns the validated ranges.
func (c *Client) CompiledRanges() []netip.Prefix { return c.ranges }

// CompiledPeerASNs returns the validated peer AS ranges.
func (c *Client) CompiledPeerASNs() []model.ASNRange { return c.peerASNs }

// Export is a client export tier.
type Export struct {
	// Tier: full (default), partial (prefixes and/or communities) or default (0.0.0.0/0 and ::/0 only).
	Tier        Tier          `json:"tier,omitempty"`
	Prefixes    []PrefixEntry `json:"prefixes,omitempty"`
	Communities []string      `json:"communities,omitempty"`

	prefixes    []model.PrefixMatch
	communities []model.Community
}

// Compiled returns the validated prefix and community matches.
func (e *Export) Compiled() ([]model.PrefixMatch, []model.Community) {
	return e.prefixes, e.communities
}

// PrefixEntry matches Prefix and more specifics up to MaxLength (default: exact).
type PrefixEntry struct {
	Prefix    string `json:"prefix"`
	MaxLength int    `json:"maxLength,omitempty"`
}

// PolicyRule is one boundary rule: routes sent towards (export) or received
// from (import) the listed groups that match get the action.
type PolicyRule struct {
	Name             string        `json:"name"`
	Towards          []Target      `json:"towards,omitempty"`
	From             []Target      `json:"from,omitempty"`
	MatchCommunities []string      `json:"matchCommunities,omitempty"`
	MatchPrefixes    []PrefixEntry `json:"matchPrefixes,omitempty"`
	// Action: reject, accept, or empty to continue with the next rule
	// after the modifications below.
	Action       Action  `json:"action,omitempty"`
	SetLocalPref *uint32 `json:"setLocalPref,omitempty"`
	// SetMED sets the MULTI_EXIT_DISC.
	SetMED *uint32 `json:"setMED,omitempty"`
	// RemoveCommunities are deleted from matching routes, then
	// AddCommunities added (standard A:B or large A:B:C both): removing
	// one and adding another re-tags a route.
	RemoveCommunities []string `json:"removeCommunities,omitempty"`
	AddCommunities    []string `json:"addCommunities,omitempty"`
	// Prepend adds the local AS this many times (1-10) to the AS path of
	// routes sent to external (eBGP) client groups.
	Prepend int `json:"prepend,omitempty"`

	communities []model.Community
	prefixes    []model.PrefixMatch
	remove, add []model.Community
}

// Compiled returns the validated prefix and community matches.
func (r *PolicyRule) Compiled() ([]model.PrefixMatch, []model.Community) {
	return r.prefixes, r.communities
}

// CompiledCommunityActions returns the validated communities the rule
// removes and adds.
func (r *PolicyRule) CompiledCommunityActions() (remove, add []model.Community) {
	return r.remove, r.add
}

// Timers in seconds.
type Timers struct {
	ConnectDelay int `json:"connectDelay,omitempty"`
	ConnectRetry int `json:"connectRetry,omitempty"`
	Hold         int `json:"hold,omitempty"`
	Keepalive    int `json:"keepalive,omitempty"`
	// ErrorWaitMin and ErrorWaitMax bound the (exponential) wait before a
	// session restarts after an error; BIRD's own default of 60-300 s would
	// keep a replaced peer unreachable for a minute.
	ErrorWaitMin int `json:"errorWaitMin,omitempty"`
	ErrorWaitMax int `json:"errorWaitMax,omitempty"`
}

// GracefulRestart (RFC 4724) for every session: peers keep this pod's routes
// while its daemon restarts; long-lived graceful restart (RFC 9494) keeps
// them, least preferred, for much longer.
type GracefulRestart struct {
	Enabled *bool `json:"enabled,omitempty"`
	// RestartTime (seconds) peers wait for the daemon to come back.
	RestartTime int `json:"restartTime,omitempty"`
	// LongLived enables long-lived graceful restart with StaleTime seconds.
	LongLived bool `json:"longLived,omitempty"`
	StaleTime int  `json:"staleTime,omitempty"`
}

// On reports whether graceful restart is enabled.
func (g GracefulRestart) On() bool { return g.Enabled == nil || *g.Enabled }

// Drain is the graceful shutdown of a pod that is about to stop (the
// chart's preStop runs `meshrr-agent drain`): one member of the group at a
// time, after every other side has a meshed member, every route this pod
// sends gets the GRACEFUL_SHUTDOWN community 65535:0 and local-preference 0,
// so that peers move to other paths before the sessions close.
type Drain struct {
	// Time the routes stay announced, drained, before the pod stops.
	Time Duration `json:"time,omitempty"`
	// WaitTimeout bounds the wait for the group's drain lock and for the
	// other sides; after it the pod drains anyway.
	WaitTimeout Duration `json:"waitTimeout,omitempty"`
	// Sides every member waits for (one meshed member of each other side);
	// empty: any other member of the group. The chart fills it.
	Sides []string `json:"sides,omitempty"`
	// WaitForPeers: false for groups of one pod (nothing to wait for).
	WaitForPeers *bool `json:"waitForPeers,omitempty"`
	// Lock names the Lease that lets one member drain at a time ("" : none).
	Lock string `json:"lock,omitempty"`
	// ControlSocket is where the running agent takes drain and enable
	// requests and serves /status to the pod's own containers.
	ControlSocket string `json:"controlSocket,omitempty"`
	// DoneFile is created once the drain time is over: the daemon
	// container's preStop waits for it.
	DoneFile string `json:"doneFile,omitempty"`
}

// Reconcile tunes the loop.
type Reconcile struct {
	// Debounce coalesces bursts of changes.
	Debounce Duration `json:"debounce,omitempty"`
	// StatePoll reads session state and re-plans this often (upstream
	// grace periods and hold-downs expire without any discovery change).
	StatePoll Duration `json:"statePoll,omitempty"`
	// RetryMax caps the backoff after failed applies.
	RetryMax Duration `json:"retryMax,omitempty"`
	// ConfigPoll is how often the config file is checked for changes.
	ConfigPoll Duration `json:"configPoll,omitempty"`
	// DaemonPoll is how often the daemon's start time is read: a restart
	// is noticed within it and the configuration applied again.
	DaemonPoll Duration `json:"daemonPoll,omitempty"`
	// ShrinkHold: a plan that would remove more than MaxRemovedShare of the
	// mesh peers, or every upstream peer, at once (a view emptied by a
	// deleted or relabelled Service, an uninstall, an API hiccup) keeps the
	// peers it would remove for this long, and removes them only if a later
	// look still plans it.
	ShrinkHold Duration `json:"shrinkHold,omitempty"`
	// MaxRemovedShare of the mesh peers one change may remove at once
	// without being held (0.5: half).
	MaxRemovedShare float64 `json:"maxRemovedShare,omitempty"`
	// StateFile keeps what a restarted agent must know of the one before
	// (the peers last applied, a held shrink, vanished Services, disabled
	// clients), in the pod's own volume; read when the agent starts.
	StateFile string `json:"stateFile,omitempty"`
}

// Status configures the HTTP endpoints.
type Status struct {
	// Listen address of /metrics, /healthz and /readyz.
	Listen string `json:"listen,omitempty"`
	// ReadyRequiresEstablished: ready only with at least one Established mesh
	// or upstream session (when any are configured), until the pod is first
	// ready; from then on losing them does not make it unready.
	ReadyRequiresEstablished *bool `json:"readyRequiresEstablished,omitempty"`
}

// Duration is a time.Duration written as "90s", "5m".
type Duration struct{ time.Duration }

// UnmarshalJSON accepts Go duration strings.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"90s\" or \"5m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (use e.g. \"90s\", \"5m\")", s)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Load reads, defaults and validates a configuration file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse is the one way to a Config: it checks the format (apiVersion,
// kind), decodes the body strictly over the defaults (defaultConfig), fills
// what the file left out (fill) and compiles it (compile: every problem,
// each naming its field).
func Parse(b []byte) (*Config, error) {
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := checkFormat(j); err != nil {
		return nil, err
	}
	c := defaultConfig()
	if err := decodeStrict(j, &c); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	c.fill()
	if err := c.compile(); err != nil {
		return nil, err
	}
	return &c, nil
}

// checkFormat reads apiVersion and kind before the body, so that a file of
// another format is refused by name rather than by its unknown fields.
func checkFormat(j []byte) error {
	var tm struct {
		APIVersion any `json:"apiVersion"`
		Kind       any `json:"kind"`
	}
	if err := json.Unmarshal(j, &tm); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	var e errs
	header := fmt.Sprintf("the file starts with \"apiVersion: %s\" and \"kind: %s\" (the chart writes both)", APIVersion, Kind)
	for _, h := range []struct {
		key       string
		got       any
		want, fix string
	}{
		{"apiVersion", tm.APIVersion, APIVersion, "render the file with the chart of the agent's version"},
		{"kind", tm.Kind, Kind, header},
	} {
		switch v := h.got.(type) {
		case nil:
			e.add(field.NewPath(h.key), "required: %s", header)
		case string:
			if v != h.want {
				e.add(field.NewPath(h.key), "%q: this agent reads %s; %s", v, h.want, h.fix)
			}
		default:
			e.add(field.NewPath(h.key), "%v: a string; %s", v, header)
		}
	}
	return errors.Join(e.list...)
}

// FieldError names a field and what is wrong with it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Fields returns the field errors in err (from Parse).
func Fields(err error) []*FieldError {
	var out []*FieldError
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			var fe *FieldError
			if errors.As(e, &fe) {
				out = append(out, fe)
			}
		}
	}
	return out
}
