// Package discovery watches meshrr groups' headless Services and their
// EndpointSlices with client-go informers and turns them into a membership
// snapshot. Only what a release owns counts: a Service labelled as the
// release's (instance and group) and named as the chart names it, and the
// EndpointSlices the EndpointSlice controller made for that very Service
// (its UID). It never reports a partial view as complete: until every
// informer has synced the snapshot says so, and after that the informer
// caches keep the last known state through API errors.
package discovery

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/state"
)

// Labels the chart puts on every group's headless Service; the EndpointSlice
// controller copies Service labels onto the Service's EndpointSlices.
const (
	LabelGroup             = "meshrr.io/group"
	LabelSide              = "meshrr.io/side"
	LabelUpstreamGroup     = "meshrr.io/upstream-group"
	LabelUpstreamNamespace = "meshrr.io/upstream-namespace"
	// The release's own labels on the Service: a group ID is
	// "<release>.<group>", and a Service counts for it only when its
	// instance and group-name labels say so.
	LabelInstance  = "app.kubernetes.io/instance"
	LabelGroupName = "meshrr.io/group-name"
)

// Discovery keeps one namespace-scoped informer per watched namespace.
type Discovery struct {
	namespaces []string
	factories  []informers.SharedInformerFactory
	listers    []discoverylisters.EndpointSliceLister
	services   []corelisters.ServiceLister
	synced     []cache.InformerSynced
	log        *slog.Logger

	isSynced atomic.Bool
	changes  chan struct{}
	mu       sync.Mutex
	pending  time.Time // first change not yet taken by Snapshot

	// ServiceGoneHold is how long the members of a Service whose
	// EndpointSlices all vanished stay in the snapshot (default 30 s).
	ServiceGoneHold time.Duration
	// Names gives the Service name (or the stem before -<side>) of each
	// group watched by name, keyed "namespace/group" (config.Services);
	// nil or a missing key: any name the release's labels carry.
	Names func() map[string]string
	// State, when set, keeps the retention across agent restarts: a
	// Service that vanished while the agent was down is noticed when it
	// starts (its members were seen before), and one that vanished just
	// before is kept for the rest of its hold.
	State *state.Store
	kept  retention
}

// New prepares informers for the given namespaces (duplicates and empty
// names are dropped). resync is the informers' periodic resync (0: none).
func New(client kubernetes.Interface, namespaces []string, resync time.Duration, log *slog.Logger) *Discovery {
	d := &Discovery{changes: make(chan struct{}, 1), log: log, ServiceGoneHold: 30 * time.Second}
	selector := labels.NewSelector()
	if req, err := labels.NewRequirement(LabelGroup, "exists", nil); err == nil {
		selector = selector.Add(*req)
	}
	for _, ns := range namespaces {
		if ns == "" || slices.Contains(d.namespaces, ns) {
			continue
		}
		d.namespaces = append(d.namespaces, ns)
		f := informers.NewSharedInformerFactoryWithOptions(client, resync,
			informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector.String() }),
		)
		inf := f.Discovery().V1().EndpointSlices()
		svc := f.Core().V1().Services()
		for _, i := range []cache.SharedIndexInformer{inf.Informer(), svc.Informer()} {
			_, _ = i.AddEventHandler(cache.ResourceEventHandlerFuncs{
				AddFunc: func(any) { d.notify() },
				UpdateFunc: func(o, n any) {
					if om, ok := o.(metav1.Object); ok {
						if nm, ok := n.(metav1.Object); ok && om.GetResourceVersion() != "" && om.GetResourceVersion() == nm.GetResourceVersion() {
							return // periodic resync, nothing changed
						}
					}
					d.notify()
				},
				DeleteFunc: func(any) { d.notify() },
			})
			d.synced = append(d.synced, i.HasSynced)
		}
		d.factories = append(d.factories, f)
		d.listers = append(d.listers, inf.Lister())
		d.services = append(d.services, svc.Lister())
	}
	return d
}

// Namespaces returns the watched namespaces.
func (d *Discovery) Namespaces() []string { return d.namespaces }

func (d *Discovery) notify() {
	d.mu.Lock()
	if d.pending.IsZero() {
		d.pending = time.Now()
	}
	d.mu.Unlock()
	select {
	case d.changes <- struct{}{}:
	default:
	}
}

// Changes signals (coalesced) that the snapshot may have changed.
func (d *Discovery) Changes() <-chan struct{} { return d.changes }

// Start runs the informers and returns once all have synced, or with the
// context's error. Informers keep running until ctx ends.
func (d *Discovery) Start(ctx context.Context) error {
	st := d.State.Get()
	d.mu.Lock()
	d.kept = retention{last: st.Services, gone: maps.Clone(st.Vanished)}
	d.mu.Unlock()
	for _, f := range d.factories {
		f.Start(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), d.synced...) {
		return fmt.Errorf("discovery: Service and EndpointSlice informers for %v did not sync: %w", d.namespaces, context.Cause(ctx))
	}
	d.isSynced.Store(true)
	d.log.Info("discovery synced", "namespaces", d.namespaces)
	d.notify()
	return nil
}

// Snapshot returns the current membership and the time of the oldest
// change it includes that no earlier Snapshot returned (zero if none).
func (d *Discovery) Snapshot() (model.Snapshot, time.Time) {
	d.mu.Lock()
	since := d.pending
	d.pending = time.Time{}
	d.mu.Unlock()
	if !d.isSynced.Load() {
		return model.Snapshot{}, since
	}
	var slicesAll []*discoveryv1.EndpointSlice
	for _, l := range d.listers {
		s, err := l.List(labels.Everything())
		if err != nil { // listers read the local cache; they do not fail
			continue
		}
		slicesAll = append(slicesAll, s...)
	}
	var svcs []*corev1.Service
	for _, l := range d.services {
		s, err := l.List(labels.Everything())
		if err != nil {
			continue
		}
		svcs = append(svcs, s...)
	}
	var names map[string]string
	if d.Names != nil {
		names = d.Names()
	}
	owned, rejected := Owned(slicesAll, svcs, names)
	d.mu.Lock()
	defer d.mu.Unlock()
	snap, vanished := d.kept.apply(Members(owned, rejected), owned, time.Now(), d.ServiceGoneHold)
	for _, v := range vanished {
		d.log.Warn("the EndpointSlices of a Service vanished: its members stay for the hold time (a Service deleted and restored changes nothing)", "op", "discovery", "service", v, "hold", d.ServiceGoneHold)
	}
	if err := d.State.Update(func(s *state.State) { s.Services, s.Vanished = d.kept.last, maps.Clone(d.kept.gone) }); err != nil {
		d.log.Warn("cannot keep the vanished Services across a restart", "op", "discovery", "error", err)
	}
	return snap, since
}

// retention keeps the members of Services whose EndpointSlices all
// vanished. The EndpointSlice controller keeps at least one slice for
// every Service, even one without endpoints, so a Service with no slice
// at all was deleted or relabelled, which says nothing about its pods: a
// group with sides has one Service per side, deleted and restored one at a
// time, and without this the other sides would drop those members and
// add them back. Pods that stop are removed from their slices instead,
// and leave the snapshot at once.
type retention struct {
	last map[string][]model.Member // Service (namespace/name) -> members last seen
	gone map[string]state.Vanished
}

// apply adds to snap the members of Services that vanished less than hold
// ago, and returns the Services that vanished in this call.
func (r *retention) apply(snap model.Snapshot, owned []OwnedSlice, now time.Time, hold time.Duration) (model.Snapshot, []string) {
	podService := map[string]string{} // member ID -> Service
	present := map[string]bool{}
	for _, o := range owned {
		s := o.Slice
		svc := s.Namespace + "/" + o.Service.Name
		present[svc] = true
		for _, ep := range s.Endpoints {
			if ep.TargetRef != nil {
				podService[s.Namespace+"/"+ep.TargetRef.Name] = svc
			}
		}
	}
	current := map[string][]model.Member{}
	for _, m := range snap.Members {
		if svc, ok := podService[m.ID()]; ok {
			current[svc] = append(current[svc], m)
		}
	}
	if r.gone == nil {
		r.gone = map[string]state.Vanished{}
	}
	var vanished []string
	for svc, ms := range r.last {
		if !present[svc] && len(ms) > 0 {
			r.gone[svc] = state.Vanished{Members: ms, Since: now}
			vanished = append(vanished, svc)
		}
	}
	listed := map[string]bool{}
	for _, m := range snap.Members {
		listed[m.Namespace+" "+m.Group+" "+m.ID()] = true
	}
	for svc, g := range r.gone {
		if present[svc] || now.Sub(g.Since) >= hold {
			delete(r.gone, svc)
			continue
		}
		for _, m := range g.Members {
			if k := m.Namespace + " " + m.Group + " " + m.ID(); !listed[k] {
				listed[k] = true
				snap.Members = append(snap.Members, m)
			}
		}
	}
	r.last = current
	sortMembers(snap.Members)
	slices.Sort(vanished)
	return snap, vanished
}

// The EndpointSlice controller's marks on the slices it manages.
const (
	labelManagedBy   = "endpointslice.kubernetes.io/managed-by"
	managedBy        = "endpointslice-controller.k8s.io"
	labelServiceName = "kubernetes.io/service-name"
)

// untrustedSlice says why a slice is not the EndpointSlice controller's
// for its Service ("" when it is): anyone allowed to create EndpointSlices
// in a watched namespace could otherwise add peers to a mesh.
func untrustedSlice(s *discoveryv1.EndpointSlice) string {
	if s.Labels[labelManagedBy] != managedBy {
		return fmt.Sprintf("EndpointSlice %s/%s is not managed by the EndpointSlice controller (%s=%q)", s.Namespace, s.Name, labelManagedBy, s.Labels[labelManagedBy])
	}
	svc := s.Labels[labelServiceName]
	for _, o := range s.OwnerReferences {
		if o.Kind == "Service" && o.APIVersion == "v1" && o.Controller != nil && *o.Controller && o.Name == svc && svc != "" {
			return ""
		}
	}
	return fmt.Sprintf("EndpointSlice %s/%s is not owned by its Service %q", s.Namespace, s.Name, svc)
}

// OwnedSlice is an EndpointSlice with the Service that owns it, both
// checked: the Service is the release's and the slice is the EndpointSlice
// controller's for that Service.
type OwnedSlice struct {
	Slice   *discoveryv1.EndpointSlice
	Service *corev1.Service
	// Named: the Service's group is watched by name (the own group, the
	// upstream) and the Service has that name; its members' addresses
	// win over a claim by a group trusted by its labels only.
	Named bool
}

// Owned keeps the slices that belong to a release's Service and says why
// the others, and the Services that carry a group's label without being
// the release's, are refused. names is config.Services: the Service name
// (or stem, "<name>-<side>" for sides) of each group watched by name,
// keyed "namespace/group". Pure.
func Owned(eps []*discoveryv1.EndpointSlice, svcs []*corev1.Service, names map[string]string) ([]OwnedSlice, []string) {
	var rejected []string
	trusted := map[string]*corev1.Service{} // namespace/name
	for _, svc := range svcs {
		if svc.Labels[LabelGroup] == "" {
			continue
		}
		if why := untrustedService(svc, names); why != "" {
			rejected = append(rejected, why)
			continue
		}
		trusted[svc.Namespace+"/"+svc.Name] = svc
	}
	var out []OwnedSlice
	for _, s := range eps {
		if s.Labels[LabelGroup] == "" {
			continue
		}
		if why := untrustedSlice(s); why != "" {
			rejected = append(rejected, why)
			continue
		}
		svc := trusted[s.Namespace+"/"+s.Labels[labelServiceName]]
		switch {
		case svc == nil:
			rejected = append(rejected, fmt.Sprintf("EndpointSlice %s/%s: its Service %q is not a meshrr release's (see the Service's refusal) or does not exist", s.Namespace, s.Name, s.Labels[labelServiceName]))
			continue
		case controllerUID(s) != svc.UID:
			rejected = append(rejected, fmt.Sprintf("EndpointSlice %s/%s names its Service %q but not that Service's UID", s.Namespace, s.Name, svc.Name))
			continue
		}
		_, named := names[svc.Namespace+"/"+svc.Labels[LabelGroup]]
		out = append(out, OwnedSlice{Slice: s, Service: svc, Named: named})
	}
	return out, rejected
}

// untrustedService says why a Service carrying a group's label is not the
// release's ("" when it is): its instance and group-name labels must make
// up its group ID ("<release>.<group>", as the chart labels them), and for
// groups watched by name its name must be the chart's.
func untrustedService(svc *corev1.Service, names map[string]string) string {
	g := svc.Labels[LabelGroup]
	if svc.Labels[LabelInstance]+"."+svc.Labels[LabelGroupName] != g {
		return fmt.Sprintf("Service %s/%s carries %s=%q but not the labels of that release and group (%s=%q, %s=%q): not a meshrr release's Service", svc.Namespace, svc.Name, LabelGroup, g, LabelInstance, svc.Labels[LabelInstance], LabelGroupName, svc.Labels[LabelGroupName])
	}
	want, ok := names[svc.Namespace+"/"+g]
	if !ok {
		return ""
	}
	if svc.Name == want || (svc.Labels[LabelSide] != "" && svc.Name == want+"-"+svc.Labels[LabelSide]) {
		return ""
	}
	return fmt.Sprintf("Service %s/%s carries %s=%q but the release names that group's Service %q: not the release's", svc.Namespace, svc.Name, LabelGroup, g, want)
}

// controllerUID is the UID of the Service that controls the slice.
func controllerUID(s *discoveryv1.EndpointSlice) types.UID {
	for _, o := range s.OwnerReferences {
		if o.Kind == "Service" && o.Controller != nil && *o.Controller {
			return o.UID
		}
	}
	return ""
}

// untrustedEndpoint says why an endpoint is not a pod of the slice's
// namespace with a valid name ("" when it is): the pod name reaches the
// daemon's configuration.
func untrustedEndpoint(s *discoveryv1.EndpointSlice, ep discoveryv1.Endpoint) string {
	r := ep.TargetRef
	switch {
	case r == nil:
		return fmt.Sprintf("EndpointSlice %s/%s: an endpoint (%v) has no targetRef", s.Namespace, s.Name, ep.Addresses)
	case r.Kind != "Pod":
		return fmt.Sprintf("EndpointSlice %s/%s: endpoint %v refers to a %s, not a Pod", s.Namespace, s.Name, ep.Addresses, r.Kind)
	case r.Namespace != "" && r.Namespace != s.Namespace:
		return fmt.Sprintf("EndpointSlice %s/%s: endpoint %v refers to a pod of namespace %q", s.Namespace, s.Name, ep.Addresses, r.Namespace)
	}
	if errs := validation.IsDNS1123Subdomain(r.Name); len(errs) > 0 {
		return fmt.Sprintf("EndpointSlice %s/%s: endpoint %v: pod name %q is not a valid name", s.Namespace, s.Name, ep.Addresses, r.Name)
	}
	return ""
}

// Members turns the release-owned EndpointSlices (Owned) into members:
// one per pod (addresses of IPv4 and IPv6 slices merged), from ready
// endpoints and from terminating ones while they still serve (marked
// Terminating: a draining pod stays meshed until it is gone; see usable),
// sorted. The group, side and upstream come from the owning Service's
// labels. Only endpoints that are pods with valid names count; an address
// claimed by two members belongs to neither. What is refused, with what
// Owned refused, is listed in Rejected. Pure.
func Members(owned []OwnedSlice, rejected []string) model.Snapshot {
	type key struct{ ns, group, id string }
	byKey := map[key]*model.Member{}
	named := map[key]bool{}
	rejected = slices.Clone(rejected)
	for _, o := range owned {
		s, lbl := o.Slice, o.Service.Labels
		group := lbl[LabelGroup]
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		for _, ep := range s.Endpoints {
			ok, terminating := usable(ep)
			if !ok {
				continue
			}
			if why := untrustedEndpoint(s, ep); why != "" {
				rejected = append(rejected, why)
				continue
			}
			var addrs []netip.Addr
			for _, a := range ep.Addresses {
				if ip, err := netip.ParseAddr(a); err == nil {
					addrs = append(addrs, ip.Unmap())
				}
			}
			if len(addrs) == 0 {
				continue
			}
			m := model.Member{
				Namespace:         s.Namespace,
				Group:             group,
				Side:              lbl[LabelSide],
				UpstreamGroup:     lbl[LabelUpstreamGroup],
				UpstreamNamespace: lbl[LabelUpstreamNamespace],
				Pod:               ep.TargetRef.Name,
				Addrs:             addrs,
				Terminating:       terminating,
			}
			if ep.NodeName != nil {
				m.Node = *ep.NodeName
			}
			k := key{m.Namespace, m.Group, m.ID()}
			named[k] = o.Named
			if prev, ok := byKey[k]; ok {
				for _, a := range addrs {
					if !slices.Contains(prev.Addrs, a) {
						prev.Addrs = append(prev.Addrs, a)
					}
				}
				continue
			}
			byKey[k] = &m
		}
	}
	// an address claimed by two members belongs to neither, unless exactly
	// one claim comes from a group watched by name: a Service trusted by
	// its labels alone cannot evict the own group's or the upstream's members
	claims := map[netip.Addr][]key{}
	for k, m := range byKey {
		for _, a := range m.Addrs {
			claims[a] = append(claims[a], k)
		}
	}
	winner := map[netip.Addr]key{}
	for a, ks := range claims {
		if len(ks) < 2 {
			continue
		}
		var byName []key
		var who []string
		for _, k := range ks {
			who = append(who, k.group+" "+k.id)
			if named[k] {
				byName = append(byName, k)
			}
		}
		slices.Sort(who)
		if len(byName) == 1 {
			winner[a] = byName[0]
			rejected = append(rejected, fmt.Sprintf("address %s is claimed by %s: kept by %s %s (its release's named Service)", a, strings.Join(who, " and "), byName[0].group, byName[0].id))
			continue
		}
		rejected = append(rejected, fmt.Sprintf("address %s is claimed by %s: used by none", a, strings.Join(who, " and ")))
	}
	snap := model.Snapshot{Synced: true}
	for k, m := range byKey {
		m.Addrs = slices.DeleteFunc(m.Addrs, func(a netip.Addr) bool {
			w, won := winner[a]
			return len(claims[a]) > 1 && (!won || w != k)
		})
		if len(m.Addrs) == 0 {
			continue
		}
		slices.SortFunc(m.Addrs, func(a, b netip.Addr) int { return a.Compare(b) })
		snap.Members = append(snap.Members, *m)
	}
	sortMembers(snap.Members)
	slices.Sort(rejected)
	snap.Rejected = slices.Compact(rejected)
	return snap
}

// usable: ready (unset means ready), or terminating and still serving. A
// terminating member stays a member until its pod is gone: it drains
// before it stops and its mesh sessions must last until then. Terminating
// is checked on its own because Services that publish not-ready addresses
// (as the chart's discovery Services do) report terminating endpoints as
// ready.
func usable(ep discoveryv1.Endpoint) (ok, terminating bool) {
	c := ep.Conditions
	if c.Terminating != nil && *c.Terminating {
		return c.Serving == nil || *c.Serving, true
	}
	return c.Ready == nil || *c.Ready, false
}

// sortMembers orders members by namespace, group and ID.
func sortMembers(ms []model.Member) {
	slices.SortFunc(ms, func(a, b model.Member) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Group, b.Group), cmp.Compare(a.ID(), b.ID()))
	})
}
