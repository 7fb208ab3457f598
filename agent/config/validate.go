package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meshrr/meshrr/agent/internal/model"
)

var (
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	labelValue       = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
)

// maxClientName keeps BIRD protocol names ("cl_<name>_r<hash>") within 63 characters.
const maxClientName = 32

type errs struct{ list []error }

// pathValue is a field and its value, for checks over a list of fields.
type pathValue struct {
	p *field.Path
	v string
}

// Whether checkPaths accepts an empty path (a file the agent can do without).
const (
	required = false
	optional = true
)

// checkPaths: each path must be absolute; an optional one may be empty.
func checkPaths(e *errs, mayBeEmpty bool, fps ...pathValue) {
	for _, fp := range fps {
		if fp.v == "" && mayBeEmpty {
			continue
		}
		if !filepath.IsAbs(fp.v) {
			e.add(fp.p, "%q must be an absolute path", fp.v)
		}
	}
}

func (e *errs) add(path *field.Path, format string, args ...any) {
	e.list = append(e.list, &FieldError{Field: path.String(), Msg: fmt.Sprintf(format, args...)})
}

// compile checks every field, gathers every problem and sets the typed
// values the plan uses (the unexported fields behind ASN, CompiledRanges
// and the others). Only Parse calls it, once, on a decoded and filled
// configuration: a Config the agent uses exists only through Parse.
func (c *Config) compile() error {
	var e errs
	c.validateIdentity(&e)
	c.validateBackend(&e)
	c.validateMesh(&e)
	c.validateUpstream(&e)
	c.validateDownstream(&e)
	c.validateClients(&e)
	c.validateClusterNetworks(&e)
	c.validatePolicy(&e)
	c.validateBFD(&e)
	c.validateFamilies(&e)
	c.validateTimers(&e)
	c.validateGracefulRestart(&e)
	c.validatePasswords(&e)
	c.validateDrain(&e)
	c.validateRuntime(&e)
	return errors.Join(e.list...)
}

func (c *Config) validateIdentity(e *errs) {
	if c.Identity.ASN == 0 {
		e.add(field.NewPath("identity", "asn"), "required: set the group's AS number (1-4294967295)")
	} else if err := model.CheckASN(c.Identity.ASN); err != nil {
		e.add(field.NewPath("identity", "asn"), "%v", err)
	} else {
		c.asn = model.ASN(c.Identity.ASN)
	}
	switch id := c.Identity.RouterID; id {
	case RouterIDAuto, RouterIDPodIPv4, RouterIDHash:
	default:
		a, err := parseID(id)
		if err != nil {
			e.add(field.NewPath("identity", "routerID"), "%q: use auto, podIPv4, hash or an IPv4 address (%v)", id, err)
		}
		c.routerID = a
	}
	if id := c.Identity.ClusterID; id != ClusterIDRouter {
		a, err := parseID(id)
		if err != nil {
			e.add(field.NewPath("identity", "clusterID"), "%q: use routerID or an IPv4 address (%v)", id, err)
		}
		c.clusterID = a
	}
}

// parseID parses a router or cluster id: a non-zero dotted quad.
func parseID(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, errors.New("not an IPv4 address")
	}
	if a.IsUnspecified() {
		return netip.Addr{}, errors.New("0.0.0.0 is not a valid id")
	}
	return a, nil
}

func (c *Config) validateBackend(e *errs) {
	switch c.Backend.Type {
	case BackendBird, BackendCRPD:
	default:
		e.add(field.NewPath("backend", "type"), "%q is not a backend: use bird or crpd", c.Backend.Type)
	}
	if c.Backend.Type == BackendCRPD {
		k := c.Backend.CRPD
		if host, _, err := net.SplitHostPort(k.Address); err != nil {
			e.add(field.NewPath("backend", "crpd", "address"), "%q: use host:port, e.g. 127.0.0.1:830", k.Address)
		} else if a, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !a.IsLoopback()) {
			e.add(field.NewPath("backend", "crpd", "address"), "%q: NETCONF must stay inside the pod: use a loopback address such as 127.0.0.1:830", k.Address)
		}
		if k.User == "" {
			e.add(field.NewPath("backend", "crpd", "user"), "required: the login the agent uses")
		}
		crpd := field.NewPath("backend", "crpd")
		checkPaths(e, required, pathValue{crpd.Child("keyFile"), k.KeyFile}, pathValue{crpd.Child("hostKeyFile"), k.HostKeyFile},
			pathValue{crpd.Child("knownHostFile"), k.KnownHostFile}, pathValue{crpd.Child("stateFile"), k.StateFile},
			pathValue{crpd.Child("startupConfig"), k.StartupConfig})
		checkPaths(e, optional, pathValue{crpd.Child("licenseFile"), k.LicenseFile}, pathValue{crpd.Child("extraConfigFile"), k.ExtraConfigFile})
		if k.RPCTimeout.Duration <= 0 {
			e.add(field.NewPath("backend", "crpd", "rpcTimeout"), "must be positive")
		}
		for _, l := range []struct {
			f *field.Path
			v *int
		}{{crpd.Child("licenseLimits", "bgpPeers"), k.LicenseLimits.BGPPeers}, {crpd.Child("licenseLimits", "ribEntries"), k.LicenseLimits.RIBEntries}} {
			if l.v != nil && *l.v < 0 {
				e.add(l.f, "%d: use the licence's limit, or 0 for none", *l.v)
			}
		}
		return
	}
	if c.Backend.Type != BackendBird {
		return
	}
	b := c.Backend.Bird
	bird := field.NewPath("backend", "bird")
	checkPaths(e, required, pathValue{bird.Child("socket"), b.Socket}, pathValue{bird.Child("configFile"), b.ConfigFile})
	checkPaths(e, optional, pathValue{bird.Child("extraConfigFile"), b.ExtraConfigFile})
	for i, p := range b.Include {
		if !filepath.IsAbs(p) || strings.ContainsAny(p, "\"\n") {
			e.add(field.NewPath("backend", "bird", "include").Index(i), "%q must be an absolute path or glob without quotes", p)
		}
		if p == b.ConfigFile {
			e.add(field.NewPath("backend", "bird", "include").Index(i), "must not include the agent's own configFile")
		}
	}
	c.memoryLimit = bytesOf(e, field.NewPath("backend", "bird", "memoryLimit"), b.MemoryLimit, "the chart renders resources.bird.limits.memory; leave it empty for no check")
	c.baseMemory = bytesOf(e, field.NewPath("backend", "bird", "baseMemory"), b.BaseMemory, "BIRD's memory without routes")
	switch c.routeBytes = b.BytesPerRoute; {
	case b.BytesPerRoute < 0:
		e.add(field.NewPath("backend", "bird", "bytesPerRoute"), "%d: must be positive, or 0 for the release line's default (BIRD's memory per route held, see docs/scale.md)", b.BytesPerRoute)
	case b.BytesPerRoute == 0 && b.Version == 3:
		c.routeBytes = DefaultBird3BytesPerRoute
	case b.BytesPerRoute == 0:
		c.routeBytes = DefaultBirdBytesPerRoute
	}
	switch b.Version {
	case 0, 2, 3:
	default:
		e.add(bird.Child("version"), "%d: must be 2 (BIRD 2, images.bird) or 3 (BIRD 3, images.bird3)", b.Version)
	}
	switch {
	case b.Threads < 0 || b.Threads > MaxBirdThreads:
		e.add(bird.Child("threads"), "%d: must be 1 to %d, or 0 for the BIRD container's CPUs", b.Threads, MaxBirdThreads)
	case b.Threads > 0 && b.Version != 3:
		e.add(bird.Child("threads"), "%d: BIRD 3 only: set backend.bird.version to 3, or remove threads", b.Threads)
	}
}

// BirdThreads is the threads BIRD 3 runs with: backend.bird.threads, or
// when it is 0 the CPUs cpus names (the value of BirdCPUsEnv: a whole
// number from the downward API), at most MaxBirdThreads; 0 (BIRD's own
// default) for BIRD 2 or when cpus is not a positive number.
func (b BirdBackend) BirdThreads(cpus string) int {
	if b.Version != 3 {
		return 0
	}
	if b.Threads > 0 {
		return b.Threads
	}
	n, err := strconv.Atoi(strings.TrimSpace(cpus))
	if err != nil || n <= 0 {
		return 0
	}
	return min(n, MaxBirdThreads)
}

// bytesOf reads a Kubernetes memory quantity ("512Mi", "1G"; empty: 0).
func bytesOf(e *errs, path *field.Path, q, hint string) int64 {
	if q == "" {
		return 0
	}
	v, err := resource.ParseQuantity(q)
	if err != nil || v.Sign() <= 0 {
		e.add(path, "%q is not a positive memory quantity such as 512Mi or 2Gi (%s)", q, hint)
		return 0
	}
	return v.Value()
}

func (c *Config) validateFamilies(e *errs) {
	if len(c.Families) == 0 {
		e.add(field.NewPath("families"), "must not be empty: list unicast and/or evpn")
	}
	seen := map[Family]bool{}
	for i, f := range c.Families {
		path := field.NewPath("families").Index(i)
		switch {
		case f != FamilyUnicast && f != FamilyEVPN:
			e.add(path, "%q is not a family: use unicast or evpn", f)
		case seen[f]:
			e.add(path, "%q is listed twice", f)
		case f == FamilyEVPN && !c.Can().EVPN:
			e.add(path, "evpn needs backend.type crpd: BIRD 2 has no EVPN support; remove evpn or use the crpd backend")
		}
		seen[f] = true
	}
}

// HasFamily reports whether the sessions carry family f.
func (c *Config) HasFamily(f Family) bool { return slices.Contains(c.Families, f) }

func checkNamespace(e *errs, path *field.Path, ns string) {
	if ns != "" && (len(ns) > 63 || !dns1123Label.MatchString(ns)) {
		e.add(path, "%q is not a namespace name (DNS-1123 label)", ns)
	}
}

func checkGroup(e *errs, path *field.Path, g string) {
	switch {
	case g == "":
		e.add(path, "required: the meshrr.io/group label value of the group's Services")
	case len(g) > 63 || !labelValue.MatchString(g):
		e.add(path, "%q is not a valid label value (up to 63 of A-Z a-z 0-9 - _ .)", g)
	}
}

func (c *Config) validateMesh(e *errs) {
	checkGroup(e, field.NewPath("mesh", "group"), c.Mesh.Group)
	checkNamespace(e, field.NewPath("mesh", "namespace"), c.Mesh.Namespace)
	checkService(e, field.NewPath("mesh", "service"), c.Mesh.Service)
}

func checkService(e *errs, path *field.Path, name string) {
	if name != "" && (len(name) > 63 || !dns1123Label.MatchString(name)) {
		e.add(path, "%q is not a Service name (DNS-1123 label)", name)
	}
}

// Services names the headless Service (or its stem, for sides) of each
// group discovery watches by name, keyed "namespace/group"; own is the
// pod's namespace. Groups without a configured name are absent.
func (c *Config) Services(own string) map[string]string {
	out := map[string]string{}
	if c.Mesh.Service != "" {
		out[cmp.Or(c.Mesh.Namespace, own)+"/"+c.Mesh.Group] = c.Mesh.Service
	}
	if u := c.Upstream; u != nil && u.Service != "" {
		out[cmp.Or(u.Namespace, own)+"/"+u.Group] = u.Service
	}
	return out
}

func (c *Config) validateUpstream(e *errs) {
	u := c.Upstream
	if u == nil {
		return
	}
	checkGroup(e, field.NewPath("upstream", "group"), u.Group)
	checkNamespace(e, field.NewPath("upstream", "namespace"), u.Namespace)
	checkService(e, field.NewPath("upstream", "service"), u.Service)
	if u.Group == c.Mesh.Group && u.Namespace == c.Mesh.Namespace {
		e.add(field.NewPath("upstream", "group"), "%q is this pod's own group: an upstream must be another group", u.Group)
	}
	if u.MaxPeers < 1 {
		e.add(field.NewPath("upstream", "maxPeers"), "%d: must be at least 1", u.MaxPeers)
	}
	if u.GracePeriod.Duration <= 0 {
		e.add(field.NewPath("upstream", "gracePeriod"), "must be positive")
	}
	if u.HoldDown.Duration < 0 {
		e.add(field.NewPath("upstream", "holdDown"), "must not be negative")
	}
	if u.Epsilon <= 0 || u.Epsilon > 1 {
		e.add(field.NewPath("upstream", "epsilon"), "%g: must be in (0, 1]; 0.05 caps each upstream member at 105%% of the mean (rounded up)", u.Epsilon)
	}
	for i, ns := range u.SiblingNamespaces {
		checkNamespace(e, field.NewPath("upstream", "siblingNamespaces").Index(i), ns)
	}
}

func (c *Config) validateClients(e *errs) {
	seen := map[string]bool{}
	var owned []ownedRange
	for i := range c.Clients {
		cl := &c.Clients[i]
		f := field.NewPath("clients").Index(i)
		validateClientName(e, f, cl.Name, seen)
		c.validateClientSessions(e, f, cl)
		owned = compileClientRanges(e, f, cl, owned)
		c.compilePeerASNs(e, f, cl)
		if cl.Multihop < 0 || cl.Multihop > 255 {
			e.add(f.Child("multihop"), "%d: TTL must be 0-255", cl.Multihop)
		}
		validateExport(e, f.Child("export"), &cl.Export)
	}
}

func validateClientName(e *errs, f *field.Path, name string, seen map[string]bool) {
	switch {
	case name == "":
		e.add(f.Child("name"), "required: a DNS-1123 label naming the client group")
	case len(name) > maxClientName || !dns1123Label.MatchString(name):
		e.add(f.Child("name"), "%q must be a DNS-1123 label of at most %d characters", name, maxClientName)
	case slices.Contains([]Target{TargetMesh, TargetUpstream, TargetClients, TargetDownstream}, Target(name)):
		e.add(f.Child("name"), "%q is reserved for policy targets: choose another name", name)
	case seen[name]:
		e.add(f.Child("name"), "%q is used by another client group", name)
	}
	seen[name] = true
}

// validateClientSessions: the type and the per-session settings of a
// client group.
func (c *Config) validateClientSessions(e *errs, f *field.Path, cl *Client) {
	switch cl.Type {
	case ClientInternal, ClientExternal:
	default:
		e.add(f.Child("type"), "%q: use internal (RR clients) or external (route-server clients)", cl.Type)
	}
	if len(cl.Ranges) == 0 {
		e.add(f.Child("ranges"), "required: at least one address range allowed to open sessions")
	}
	c.validateLimit(e, f, cl.PrefixLimit)
	if cl.OptimalRouteReflection {
		e.add(f.Child("optimalRouteReflection"), "not supported: optimal route reflection (RFC 9107) needs the IGP distances from the clients' positions, which RR pods do not have; set addPaths (2-64) so the clients receive several paths and choose with their own IGP view")
	}
	if cl.AddPaths != 0 && (cl.AddPaths < 2 || cl.AddPaths > 64) {
		e.add(f.Child("addPaths"), "%d: use 0 (the best path only) or 2-64 paths per prefix", cl.AddPaths)
	}
	if cl.TTLSecurity && !c.Can().TTLSecurity {
		e.add(f.Child("ttlSecurity"), "GTSM is not rendered for cRPD (Junos does it with a firewall filter): remove it or use bird")
	}
}

// validateLimit: a session group's maxPrefixes, maxPrefixAction and
// reenableAfter.
func (c *Config) validateLimit(e *errs, f *field.Path, l PrefixLimit) {
	maxPrefixes, action := l.MaxPrefixes, l.MaxPrefixAction
	if l.ReenableAfter.Duration < 0 {
		e.add(f.Child("reenableAfter"), "%s: must not be negative (0: until an operator re-enables the peer)", l.ReenableAfter.Duration)
	}
	if l.ReenableAfter.Duration != 0 && action != LimitDisable {
		e.add(f.Child("reenableAfter"), "only with maxPrefixAction: disable (restart re-admits the peer by itself)")
	}
	if maxPrefixes < 0 {
		e.add(f.Child("maxPrefixes"), "%d: must not be negative (0: no limit)", maxPrefixes)
	}
	switch action {
	case "", LimitRestart, LimitDisable, LimitWarn:
	case LimitBlock:
		if !c.Can().MaxPrefixBlock {
			e.add(f.Child("maxPrefixAction"), "block is not available with cRPD: use restart, disable or warn")
		}
	default:
		e.add(f.Child("maxPrefixAction"), "%q: use restart, disable, block or warn", action)
	}
	if action != "" && maxPrefixes == 0 {
		e.add(f.Child("maxPrefixAction"), "needs maxPrefixes")
	}
}

// validateDownstream: the namespaces where the downstream groups run.
func (c *Config) validateDownstream(e *errs) {
	d := c.Downstream
	if d == nil {
		return
	}
	if len(d.Namespaces) == 0 {
		e.add(field.NewPath("downstream", "namespaces"), "required: the namespaces of the groups that name this group as their upstream (their releases' namespaces)")
	}
	for i, ns := range d.Namespaces {
		checkNamespace(e, field.NewPath("downstream", "namespaces").Index(i), ns)
		if ns == "" {
			e.add(field.NewPath("downstream", "namespaces").Index(i), "empty: name a namespace")
		}
	}
	c.validateLimit(e, field.NewPath("downstream"), d.PrefixLimit)
}

// validateClusterNetworks: the cluster's networks, and no client range
// that overlaps one unless its group is Guarded.
func (c *Config) validateClusterNetworks(e *errs) {
	c.clusterNets = nil
	for i, s := range c.ClusterNetworks {
		p, err := parsePrefix(s)
		if err != nil {
			e.add(field.NewPath("clusterNetworks").Index(i), "%v", err)
			continue
		}
		c.clusterNets = append(c.clusterNets, p)
	}
	for i := range c.Clients {
		cl := &c.Clients[i]
		for j, r := range cl.CompiledRanges() {
			for k, n := range c.clusterNets {
				if why := c.ClusterExposure(cl.Name, r, fmt.Sprintf("the cluster network %s (clusterNetworks[%d])", n, k)); why != "" && r.Overlaps(n) {
					e.add(field.NewPath("clients").Index(i).Child("ranges").Index(j), "%s", why)
				}
			}
		}
	}
}

// ownedRange is a client range and the field that claimed it.
type ownedRange struct {
	p     netip.Prefix
	field *field.Path
}

// compileClientRanges parses a client group's ranges (canonical prefixes,
// none overlapping a range of any group before it) and returns the ranges
// owned so far.
func compileClientRanges(e *errs, f *field.Path, cl *Client, owned []ownedRange) []ownedRange {
	cl.ranges = nil
	for j, r := range cl.Ranges {
		rf := f.Child("ranges").Index(j)
		p, err := parsePrefix(r)
		if err != nil {
			e.add(rf, "%v", err)
			continue
		}
		for _, o := range owned {
			if o.p.Overlaps(p) {
				e.add(rf, "%s overlaps %s of %s: a client address must belong to one group", p, o.p, o.field)
			}
		}
		owned = append(owned, ownedRange{p, rf})
		cl.ranges = append(cl.ranges, p)
	}
	return owned
}

// compilePeerASNs: external clients name the AS numbers they may use (not
// the local AS); internal clients have none.
func (c *Config) compilePeerASNs(e *errs, f *field.Path, cl *Client) {
	cl.peerASNs = nil
	if cl.Type == ClientInternal && len(cl.PeerASNs) > 0 {
		e.add(f.Child("peerASNs"), "only external clients have peer AS numbers; remove it or set type: external")
	}
	if cl.Type == ClientExternal && len(cl.PeerASNs) == 0 {
		e.add(f.Child("peerASNs"), "required for external clients: the AS numbers or ranges (\"65100-65199\") they may use")
	}
	for j, s := range cl.PeerASNs {
		r, err := model.ParseASNRange(s)
		if err != nil {
			e.add(f.Child("peerASNs").Index(j), "%v", err)
			continue
		}
		if c.asn != 0 && r.Min <= c.asn && c.asn <= r.Max {
			e.add(f.Child("peerASNs").Index(j), "%s contains the local AS %d: external clients must use another AS", s, c.asn)
		}
		cl.peerASNs = append(cl.peerASNs, r)
	}
}

func validateExport(e *errs, f *field.Path, x *Export) {
	x.prefixes, x.communities = nil, nil
	switch x.Tier {
	case TierFull, TierDefault:
		if len(x.Prefixes)+len(x.Communities) > 0 {
			e.add(f, "tier %s takes no prefixes or communities; use tier partial to select routes", x.Tier)
		}
	case TierPartial:
		if len(x.Prefixes)+len(x.Communities) == 0 {
			e.add(f, "tier partial needs prefixes and/or communities selecting the routes to send")
		}
	default:
		e.add(f.Child("tier"), "%q: use full, partial or default", x.Tier)
	}
	x.prefixes = compilePrefixes(e, f.Child("prefixes"), x.Prefixes)
	x.communities = compileCommunities(e, f.Child("communities"), x.Communities)
}

func compilePrefixes(e *errs, f *field.Path, in []PrefixEntry) []model.PrefixMatch {
	var out []model.PrefixMatch
	for i, pe := range in {
		pf := f.Index(i)
		p, err := parsePrefix(pe.Prefix)
		if err != nil {
			e.add(pf.Child("prefix"), "%v", err)
			continue
		}
		max := pe.MaxLength
		if max == 0 {
			max = p.Bits()
		}
		if max < p.Bits() || max > p.Addr().BitLen() {
			e.add(pf.Child("maxLength"), "%d: must be between the prefix length %d and %d", pe.MaxLength, p.Bits(), p.Addr().BitLen())
			continue
		}
		out = append(out, model.PrefixMatch{Prefix: p, MaxLen: max})
	}
	return out
}

func compileCommunities(e *errs, f *field.Path, in []string) []model.Community {
	var out []model.Community
	for i, s := range in {
		c, err := model.ParseCommunity(s)
		if err != nil {
			e.add(f.Index(i), "%v", err)
			continue
		}
		out = append(out, c)
	}
	return out
}

// parsePrefix accepts canonical CIDR prefixes only: host bits set are a
// likely typo, so they are reported rather than masked silently.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix such as 10.0.0.0/8 or fd00::/8", s)
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q: zones are not allowed", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 prefix: write the IPv4 prefix", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set: did you mean %s?", s, m)
	}
	return p, nil
}

func (c *Config) validatePolicy(e *errs) {
	targets := map[Target]bool{TargetMesh: true, TargetClients: true}
	if c.Upstream != nil {
		targets[TargetUpstream] = true
	}
	if c.Downstream != nil {
		targets[TargetDownstream] = true
	}
	for _, cl := range c.Clients {
		targets[Target(cl.Name)] = true
	}
	names := map[string]bool{}
	for i := range c.Policy {
		r := &c.Policy[i]
		f := field.NewPath("policy").Index(i)
		switch {
		case r.Name == "":
			e.add(f.Child("name"), "required: name the rule (it appears in the daemon configuration)")
		case !dns1123Label.MatchString(r.Name):
			e.add(f.Child("name"), "%q must be a DNS-1123 label", r.Name)
		case names[r.Name]:
			e.add(f.Child("name"), "%q is used by another rule", r.Name)
		}
		names[r.Name] = true
		switch {
		case len(r.Towards) == 0 && len(r.From) == 0:
			e.add(f, "set towards (export) or from (import): the groups the rule applies to")
		case len(r.Towards) > 0 && len(r.From) > 0:
			e.add(f, "set either towards (export) or from (import), not both: split it into two rules")
		}
		for _, side := range []struct {
			field string
			list  []Target
		}{{"towards", r.Towards}, {"from", r.From}} {
			for j, t := range side.list {
				if !targets[t] {
					e.add(f.Child(side.field).Index(j), "%q is not a group here: use mesh, upstream (when configured), clients or a client group name", t)
				}
			}
		}
		r.communities = compileCommunities(e, f.Child("matchCommunities"), r.MatchCommunities)
		r.prefixes = compilePrefixes(e, f.Child("matchPrefixes"), r.MatchPrefixes)
		r.remove = compileCommunities(e, f.Child("removeCommunities"), r.RemoveCommunities)
		r.add = compileCommunities(e, f.Child("addCommunities"), r.AddCommunities)
		for j, a := range r.add {
			if slices.Contains(r.remove, a) {
				e.add(f.Child("addCommunities").Index(j), "%s is also in removeCommunities: keep it in one of them", a)
			}
		}
		c.validatePrepend(e, f, r)
		modifies := r.modifications()
		switch r.Action {
		case ActionContinue:
			if len(modifies) == 0 {
				e.add(f.Child("action"), "a rule needs an action (reject, accept) or a modification (setLocalPref, setMED, addCommunities, removeCommunities, prepend)")
			}
		case ActionAccept:
		case ActionReject:
			for _, m := range modifies {
				e.add(f.Child(m), "has no effect on rejected routes: remove it or drop action: reject")
			}
		default:
			e.add(f.Child("action"), "%q: use reject, accept, or leave empty to continue after the modifications", r.Action)
		}
	}
}

// modifications names the route modifications a rule sets.
func (r *PolicyRule) modifications() []string {
	var out []string
	for _, m := range []struct {
		field string
		set   bool
	}{
		{"setLocalPref", r.SetLocalPref != nil},
		{"setMED", r.SetMED != nil},
		{"removeCommunities", len(r.RemoveCommunities) > 0},
		{"addCommunities", len(r.AddCommunities) > 0},
		{"prepend", r.Prepend != 0},
	} {
		if m.set {
			out = append(out, m.field)
		}
	}
	return out
}

// validatePrepend: the local AS is prepended on export to external client
// groups only (an iBGP path must not carry the local AS: every peer of
// the AS would drop the route as a loop).
func (c *Config) validatePrepend(e *errs, f *field.Path, r *PolicyRule) {
	if r.Prepend == 0 {
		return
	}
	if r.Prepend < 1 || r.Prepend > 10 {
		e.add(f.Child("prepend"), "%d: prepend the local AS 1-10 times", r.Prepend)
	}
	if len(r.From) > 0 {
		e.add(f.Child("prepend"), "applies to routes sent: use towards with external client groups, not from")
	}
	for j, t := range r.Towards {
		for _, cl := range c.Clients {
			if (t == Target(cl.Name) || t == TargetClients) && cl.Type != ClientExternal {
				e.add(f.Child("towards").Index(j), "%q includes internal client group %s: prepend only towards external (eBGP) client groups", t, cl.Name)
			}
		}
		if t == TargetMesh || t == TargetUpstream || t == TargetDownstream || (t == TargetClients && c.Downstream != nil) {
			e.add(f.Child("towards").Index(j), "%q is iBGP: prepend only towards external (eBGP) client groups", t)
		}
	}
}

// validateBFD: intervals BIRD and Junos both take (Junos: 1 ms-255 s;
// below 50 ms a pod's scheduling alone takes peers down) and multipliers
// 1-255.
func (c *Config) validateBFD(e *errs) {
	for _, b := range c.bfds() {
		if b.v == nil {
			continue
		}
		if iv := b.v.Interval.Duration; iv < 50*time.Millisecond || iv > 10*time.Second || iv%time.Millisecond != 0 {
			e.add(b.field.Child("interval"), "%v: use whole milliseconds from 50ms to 10s (default 200ms)", iv)
		}
		if m := b.v.Multiplier; m < 1 || m > 255 {
			e.add(b.field.Child("multiplier"), "%d: must be 1-255 (default 3)", m)
		}
	}
}

func (c *Config) validateTimers(e *errs) {
	t := c.Timers
	before := len(e.list)
	check := func(f string, v, min, max int) {
		if v < min || v > max {
			e.add(field.NewPath("timers", f), "%d: must be %d-%d seconds", v, min, max)
		}
	}
	check("connectDelay", t.ConnectDelay, 1, 65535)
	check("connectRetry", t.ConnectRetry, 1, 65535)
	check("hold", t.Hold, 3, 65535)
	check("keepalive", t.Keepalive, 1, 65535)
	check("errorWaitMin", t.ErrorWaitMin, 1, 65535)
	check("errorWaitMax", t.ErrorWaitMax, 1, 65535)
	if len(e.list) > before {
		return // the order of timers out of range says nothing more
	}
	if t.ErrorWaitMax < t.ErrorWaitMin {
		e.add(field.NewPath("timers", "errorWaitMax"), "%d must not be below errorWaitMin %d", t.ErrorWaitMax, t.ErrorWaitMin)
	}
	if t.Keepalive >= t.Hold {
		e.add(field.NewPath("timers", "keepalive"), "%d must be below the hold time %d (usually a third of it)", t.Keepalive, t.Hold)
	}
}

func (c *Config) validatePasswords(e *errs) {
	if c.PasswordDir != "" && !filepath.IsAbs(c.PasswordDir) {
		e.add(field.NewPath("passwordDir"), "%q must be an absolute path", c.PasswordDir)
	}
	if c.PasswordDir == "" && len(c.PasswordKeys) > 0 {
		e.add(field.NewPath("passwordKeys"), "needs passwordDir: the keys are files there")
	}
	known := c.sessionGroupKeys()
	for i, k := range c.PasswordKeys {
		if !slices.Contains(known, k) {
			e.add(field.NewPath("passwordKeys").Index(i), "%q names no session group of this configuration (keys: %s)", k, strings.Join(known, ", "))
		}
	}
}

func (c *Config) validateGracefulRestart(e *errs) {
	g := c.GracefulRestart
	if !g.On() {
		if g.LongLived {
			e.add(field.NewPath("gracefulRestart", "longLived"), "needs gracefulRestart.enabled")
		}
		return
	}
	if g.RestartTime < 1 || g.RestartTime > 4095 {
		e.add(field.NewPath("gracefulRestart", "restartTime"), "%d: must be 1-4095 seconds (a 12-bit field of the capability)", g.RestartTime)
	}
	if g.LongLived && (g.StaleTime < 1 || g.StaleTime > 16777215) {
		e.add(field.NewPath("gracefulRestart", "staleTime"), "%d: must be 1-16777215 seconds", g.StaleTime)
	}
	if g.LongLived && !c.Can().LongLivedGR {
		e.add(field.NewPath("gracefulRestart", "longLived"), "not rendered for cRPD by this agent yet: use it with bird or set it false")
	}
	if !g.LongLived && g.StaleTime != 0 {
		e.add(field.NewPath("gracefulRestart", "staleTime"), "only with longLived: true")
	}
}

func (c *Config) validateDrain(e *errs) {
	d := c.Drain
	// a drain of no time moves no traffic, and no wait drains every member
	// at once: both take at least a second
	if d.Time.Duration < time.Second || d.Time.Duration > time.Hour {
		e.add(field.NewPath("drain", "time"), "%s: must be between 1s and 1h (default %s)", d.Time.Duration, DefaultDrainTime)
	}
	if d.WaitTimeout.Duration < time.Second || d.WaitTimeout.Duration > time.Hour {
		e.add(field.NewPath("drain", "waitTimeout"), "%s: must be between 1s and 1h (default %s)", d.WaitTimeout.Duration, DefaultDrainWait)
	}
	for i, s := range d.Sides {
		if !dns1123Label.MatchString(s) {
			e.add(field.NewPath("drain", "sides").Index(i), "%q is not a side name (DNS-1123 label)", s)
		}
	}
	if d.Lock != "" && (len(d.Lock) > 253 || !dns1123Subdomain.MatchString(d.Lock)) {
		e.add(field.NewPath("drain", "lock"), "%q is not a Lease name (DNS-1123 subdomain)", d.Lock)
	}
	for _, fp := range []pathValue{{field.NewPath("drain", "controlSocket"), d.ControlSocket}, {field.NewPath("drain", "doneFile"), d.DoneFile}} {
		if !filepath.IsAbs(fp.v) {
			e.add(fp.p, "%q must be an absolute path", fp.v)
		}
	}
}

func (c *Config) validateRuntime(e *errs) {
	r := c.Reconcile
	for _, d := range []struct {
		field string
		v     Duration
	}{{"debounce", r.Debounce}, {"statePoll", r.StatePoll}, {"retryMax", r.RetryMax}, {"configPoll", r.ConfigPoll}, {"daemonPoll", r.DaemonPoll}, {"shrinkHold", r.ShrinkHold}} {
		if d.v.Duration <= 0 {
			e.add(field.NewPath("reconcile", d.field), "must be positive")
		}
	}
	if r.MaxRemovedShare <= 0 || r.MaxRemovedShare > 1 {
		e.add(field.NewPath("reconcile", "maxRemovedShare"), "%g: must be in (0, 1]; 0.5 holds a change that removes more than half of the mesh at once", r.MaxRemovedShare)
	}
	if _, port, err := net.SplitHostPort(c.Status.Listen); err != nil {
		e.add(field.NewPath("status", "listen"), "%q: use host:port or :port", c.Status.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		e.add(field.NewPath("status", "listen"), "%q: the port must be 1-65535", c.Status.Listen)
	}
}

// WatchedNamespaces are the namespaces whose EndpointSlices discovery
// watches for a pod in own: its own, the mesh's, the upstream's and its
// siblings', and the downstream groups'.
func (c *Config) WatchedNamespaces(own string) []string {
	ns := []string{own}
	add := func(n string) {
		if n != "" && !slices.Contains(ns, n) {
			ns = append(ns, n)
		}
	}
	add(c.Mesh.Namespace)
	if u := c.Upstream; u != nil {
		add(u.Namespace)
		for _, s := range u.SiblingNamespaces {
			add(s)
		}
	}
	if d := c.Downstream; d != nil {
		for _, s := range d.Namespaces {
			add(s)
		}
	}
	return ns
}
