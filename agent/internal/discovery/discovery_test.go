package discovery

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/state"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type ep struct {
	pod, node   string
	addrs       []string
	ready, term *bool
	serving     *bool
}

func yes() *bool { b := true; return &b }
func no() *bool  { b := false; return &b }

// slice is an EndpointSlice as the EndpointSlice controller writes it for
// the Service "svc-<name>".
func slice(ns, name string, typ discoveryv1.AddressType, lbl map[string]string, eps ...ep) *discoveryv1.EndpointSlice {
	s := forged(ns, name, typ, lbl, eps...)
	svc := "svc-" + name
	s.Labels[labelManagedBy], s.Labels[labelServiceName] = managedBy, svc
	s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svc, UID: "u-" + types.UID(svc), Controller: yes()}}
	return s
}

// forged is an EndpointSlice someone made by hand.
func forged(ns, name string, typ discoveryv1.AddressType, lbl map[string]string, eps ...ep) *discoveryv1.EndpointSlice {
	l := map[string]string{}
	for k, v := range lbl {
		l[k] = v
	}
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l},
		AddressType: typ,
	}
	for _, e := range eps {
		x := discoveryv1.Endpoint{Addresses: e.addrs, Conditions: discoveryv1.EndpointConditions{Ready: e.ready, Terminating: e.term, Serving: e.serving}}
		if e.pod != "" {
			x.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: e.pod, Namespace: ns}
		}
		if e.node != "" {
			x.NodeName = &e.node
		}
		s.Endpoints = append(s.Endpoints, x)
	}
	return s
}

// serviceOf is the release's headless Service the EndpointSlice controller
// made s for: named as s says, with the UID s's owner reference carries,
// the slice's meshrr labels and the release's instance and group-name
// labels that make up its group ID.
func serviceOf(s *discoveryv1.EndpointSlice) *corev1.Service {
	name := s.Labels[labelServiceName]
	l := map[string]string{}
	for _, k := range []string{LabelGroup, LabelSide, LabelUpstreamGroup, LabelUpstreamNamespace} {
		if v, ok := s.Labels[k]; ok {
			l[k] = v
		}
	}
	if g := s.Labels[LabelGroup]; strings.Contains(g, ".") {
		i := strings.LastIndex(g, ".")
		l[LabelInstance], l[LabelGroupName] = g[:i], g[i+1:]
	}
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: name, UID: "u-" + types.UID(name), Labels: l}}
}

// servicesOf are the Services of the controller's slices among eps.
func servicesOf(eps []*discoveryv1.EndpointSlice) []*corev1.Service {
	seen := map[string]bool{}
	var out []*corev1.Service
	for _, s := range eps {
		k := s.Namespace + "/" + s.Labels[labelServiceName]
		if s.Labels[labelManagedBy] != managedBy || s.Labels[LabelGroup] == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, serviceOf(s))
	}
	return out
}

// owned and members: the slices with the release's own Services.
func owned(eps []*discoveryv1.EndpointSlice) []OwnedSlice {
	o, _ := Owned(eps, servicesOf(eps), nil)
	return o
}

func members(eps []*discoveryv1.EndpointSlice) model.Snapshot {
	return Members(Owned(eps, servicesOf(eps), nil))
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestMembersMergeFamiliesKeepStoppingOnesAndDropUnusableEndpoints(t *testing.T) {
	core := map[string]string{LabelGroup: "core.core", LabelSide: "a"}
	region := map[string]string{LabelGroup: "lothl.lothlorien", LabelUpstreamGroup: "core.core", LabelUpstreamNamespace: "core"}
	snap := members([]*discoveryv1.EndpointSlice{
		slice("core", "core-a-v4", discoveryv1.AddressTypeIPv4, core,
			ep{pod: "core-a-0", node: "w1", addrs: []string{"10.244.1.10"}, ready: yes()},
			ep{pod: "core-a-1", node: "w2", addrs: []string{"10.244.2.10"}},                                           // ready unset = ready
			ep{pod: "core-a-2", node: "w3", addrs: []string{"10.244.3.10"}, ready: no()},                              // not ready
			ep{pod: "core-a-3", node: "w3", addrs: []string{"10.244.3.11"}, ready: yes(), term: yes()},                // terminating, published as ready: still a member
			ep{pod: "core-a-4", node: "w3", addrs: []string{"10.244.3.12"}, ready: yes(), term: yes(), serving: no()}, // terminating and no longer serving
		),
		slice("core", "core-a-v6", discoveryv1.AddressTypeIPv6, core,
			ep{pod: "core-a-0", node: "w1", addrs: []string{"fd00:244::1:10"}, ready: yes()},
		),
		slice("core", "core-fqdn", discoveryv1.AddressTypeFQDN, core, ep{pod: "x", addrs: []string{"a.example"}}),
		slice("core", "unlabelled", discoveryv1.AddressTypeIPv4, nil, ep{pod: "y", addrs: []string{"10.0.0.1"}}),
		slice("lothl", "rr", discoveryv1.AddressTypeIPv4, region, ep{pod: "rr-0", addrs: []string{"10.244.5.1", "bogus"}}),
	})
	assert.Empty(t, snap.Rejected)
	snap.Rejected = nil
	assert.Equal(t, model.Snapshot{Synced: true, Members: []model.Member{
		{Namespace: "core", Group: "core.core", Side: "a", Pod: "core-a-0", Node: "w1", Addrs: addrs("10.244.1.10", "fd00:244::1:10")},
		{Namespace: "core", Group: "core.core", Side: "a", Pod: "core-a-1", Node: "w2", Addrs: addrs("10.244.2.10")},
		{Namespace: "core", Group: "core.core", Side: "a", Pod: "core-a-3", Node: "w3", Addrs: addrs("10.244.3.11"), Terminating: true},
		{Namespace: "lothl", Group: "lothl.lothlorien", Pod: "rr-0", Addrs: addrs("10.244.5.1"), UpstreamGroup: "core.core", UpstreamNamespace: "core"},
	}}, snap)
}

func TestInformersFollowEndpointSliceChangesInWatchedNamespacesOnly(t *testing.T) {
	lbl := map[string]string{LabelGroup: "core.core"}
	s1 := slice("core", "s1", discoveryv1.AddressTypeIPv4, lbl, ep{pod: "core-0", addrs: []string{"10.0.0.1"}})
	s2 := slice("elsewhere", "s2", discoveryv1.AddressTypeIPv4, lbl, ep{pod: "x-0", addrs: []string{"10.0.9.1"}})
	s3 := slice("lothl", "s3", discoveryv1.AddressTypeIPv4, map[string]string{LabelGroup: "lothl.lothlorien"}, ep{pod: "rr-0", addrs: []string{"10.0.1.1"}})
	client := fake.NewClientset(s1, s2, serviceOf(s1), serviceOf(s2), serviceOf(s3))
	d := New(client, []string{"core", "lothl", "core", ""}, 0, quiet)
	assert.Equal(t, []string{"core", "lothl"}, d.Namespaces())

	snap, _ := d.Snapshot()
	assert.False(t, snap.Synced, "no snapshot is complete before the informers sync")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, d.Start(ctx))
	<-d.Changes()
	snap, since := d.Snapshot()
	require.True(t, snap.Synced)
	assert.False(t, since.IsZero())
	require.Len(t, snap.Members, 1)
	assert.Equal(t, "core-0", snap.Members[0].Pod)

	// a new RR in a watched namespace
	_, err := client.DiscoveryV1().EndpointSlices("lothl").Create(ctx, s3, metav1.CreateOptions{})
	require.NoError(t, err)
	waitChange(t, d)
	snap, since = d.Snapshot()
	assert.Len(t, snap.Members, 2)
	assert.WithinDuration(t, time.Now(), since, 5*time.Second)
	_, second := d.Snapshot()
	assert.True(t, second.IsZero(), "a change is reported once")

	// the core pod goes away: the controller removes its endpoint
	_, err = client.DiscoveryV1().EndpointSlices("core").Update(ctx, slice("core", "s1", discoveryv1.AddressTypeIPv4, lbl), metav1.UpdateOptions{})
	require.NoError(t, err)
	waitChange(t, d)
	snap, _ = d.Snapshot()
	require.Len(t, snap.Members, 1)
	assert.Equal(t, "rr-0", snap.Members[0].Pod)

	// the lothl Service is deleted (its slice goes): its member stays for
	// ServiceGoneHold (TestMembersOfAVanishedServiceStayForTheHold)
	d.ServiceGoneHold = 0
	require.NoError(t, client.DiscoveryV1().EndpointSlices("lothl").Delete(ctx, "s3", metav1.DeleteOptions{}))
	waitChange(t, d)
	snap, _ = d.Snapshot()
	assert.Empty(t, snap.Members, "with no hold it leaves at once")
}

func waitChange(t *testing.T, d *Discovery) {
	t.Helper()
	select {
	case <-d.Changes():
	case <-time.After(5 * time.Second):
		t.Fatal("no change notification")
	}
}

func TestAPIErrorsNeverProduceACompleteEmptySnapshot(t *testing.T) {
	client := fake.NewClientset()
	client.PrependReactor("list", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("apiserver unavailable")
	})
	d := New(client, []string{"core"}, 0, quiet)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := d.Start(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "did not sync")
	snap, _ := d.Snapshot()
	assert.False(t, snap.Synced, "an unsynced snapshot must not be used to remove peers")
	assert.Empty(t, snap.Members)
}

// What an attacker or a careless operator could put into a watched
// namespace changes no membership: slices not managed by the EndpointSlice
// controller for their Service, endpoints that are not pods or whose pod
// name would leave a string in the daemon's configuration, and addresses
// two members claim. Each refusal is reported.
func TestUntrustedSlicesEndpointsAndSharedAddressesAreRefused(t *testing.T) {
	g := map[string]string{LabelGroup: "lothl.lothlorien"}
	hostile := "x\";\nprotocol static pwn { ipv4; route 0.0.0.0/0 blackhole; }\n#"
	stolen := slice("lothl", "stolen", discoveryv1.AddressTypeIPv4, g, ep{pod: "rr-0", addrs: []string{"10.244.5.1"}})
	stolen.OwnerReferences[0].Name = "another-service"
	notController := slice("lothl", "nc", discoveryv1.AddressTypeIPv4, g, ep{pod: "rr-7", addrs: []string{"10.244.5.7"}})
	notController.OwnerReferences[0].Controller = nil
	node := slice("lothl", "node", discoveryv1.AddressTypeIPv4, g, ep{pod: "rr-8", addrs: []string{"10.244.5.8"}})
	node.Endpoints[0].TargetRef.Kind = "Node"
	otherNS := slice("lothl", "otherns", discoveryv1.AddressTypeIPv4, g, ep{pod: "rr-9", addrs: []string{"10.244.5.9"}})
	otherNS.Endpoints[0].TargetRef.Namespace = "kube-system"
	snap := members([]*discoveryv1.EndpointSlice{
		slice("lothl", "rr", discoveryv1.AddressTypeIPv4, g,
			ep{pod: "rr-0", addrs: []string{"10.244.5.1"}},
			ep{pod: "rr-1", addrs: []string{"10.244.5.2"}},
			ep{pod: hostile, addrs: []string{"10.244.5.3"}},
			ep{addrs: []string{"10.244.5.4"}}, // no targetRef
		),
		forged("lothl", "forged", discoveryv1.AddressTypeIPv4, g, ep{pod: "pwn-0", addrs: []string{"192.0.2.66"}}),
		stolen, notController, node, otherNS,
		// another group claims rr-1's address: neither keeps it
		slice("lothl", "dup", discoveryv1.AddressTypeIPv4, map[string]string{LabelGroup: "lothl.other"}, ep{pod: "intruder-0", addrs: []string{"10.244.5.2"}}),
	})
	require.Len(t, snap.Members, 1)
	assert.Equal(t, "rr-0", snap.Members[0].Pod)
	assert.Equal(t, addrs("10.244.5.1"), snap.Members[0].Addrs)
	joined := strings.Join(snap.Rejected, "\n")
	for _, want := range []string{
		"EndpointSlice lothl/forged is not managed by the EndpointSlice controller",
		`EndpointSlice lothl/stolen is not owned by its Service "svc-stolen"`,
		`EndpointSlice lothl/nc is not owned by its Service "svc-nc"`,
		"refers to a Node, not a Pod",
		`refers to a pod of namespace "kube-system"`,
		"is not a valid name",
		"has no targetRef",
		"address 10.244.5.2 is claimed by lothl.lothlorien lothl/rr-1 and lothl.other lothl/intruder-0: used by none",
	} {
		assert.Contains(t, joined, want)
	}
	assert.Len(t, snap.Rejected, 8)
}

// A group's per-side Services deleted and restored one at a time: the
// members of a Service whose slices all vanished stay for the hold time,
// so no side sees the other leave and come back; a pod that stops (its
// endpoint removed from a slice that still exists) leaves at once; after
// the hold a Service that stays deleted takes its members away.
func TestMembersOfAVanishedServiceStayForTheHold(t *testing.T) {
	g := map[string]string{LabelGroup: "core.core"}
	a := slice("core", "core-a", discoveryv1.AddressTypeIPv4, g, ep{pod: "core-a-0", addrs: []string{"10.0.0.1"}})
	b := slice("core", "core-b", discoveryv1.AddressTypeIPv4, g, ep{pod: "core-b-0", addrs: []string{"10.0.0.2"}})
	ids := func(s model.Snapshot) []string {
		var out []string
		for _, m := range s.Members {
			out = append(out, m.ID())
		}
		return out
	}
	const hold = 30 * time.Second
	t0 := time.Unix(1000, 0)
	var r retention
	all := []*discoveryv1.EndpointSlice{a, b}
	snap, gone := r.apply(members(all), owned(all), t0, hold)
	assert.Equal(t, []string{"core/core-a-0", "core/core-b-0"}, ids(snap))
	assert.Empty(t, gone)

	// Service a deleted (its slice goes), then b
	onlyB := []*discoveryv1.EndpointSlice{b}
	snap, gone = r.apply(members(onlyB), owned(onlyB), t0.Add(time.Second), hold)
	assert.Equal(t, []string{"core/core-a-0", "core/core-b-0"}, ids(snap), "side a's member stays")
	assert.Equal(t, []string{"core/svc-core-a"}, gone)
	snap, gone = r.apply(members(nil), owned(nil), t0.Add(2*time.Second), hold)
	assert.Equal(t, []string{"core/core-a-0", "core/core-b-0"}, ids(snap), "both stay")
	assert.Equal(t, []string{"core/svc-core-b"}, gone)
	// restored one at a time, within the hold: nothing ever changed
	snap, _ = r.apply(members(onlyB), owned(onlyB), t0.Add(20*time.Second), hold)
	assert.Equal(t, []string{"core/core-a-0", "core/core-b-0"}, ids(snap))
	snap, _ = r.apply(members(all), owned(all), t0.Add(21*time.Second), hold)
	assert.Equal(t, []string{"core/core-a-0", "core/core-b-0"}, ids(snap))

	// a pod that stops leaves its slice, which stays: gone at once
	aEmpty := slice("core", "core-a", discoveryv1.AddressTypeIPv4, g)
	withEmptyA := []*discoveryv1.EndpointSlice{aEmpty, b}
	snap, gone = r.apply(members(withEmptyA), owned(withEmptyA), t0.Add(22*time.Second), hold)
	assert.Equal(t, []string{"core/core-b-0"}, ids(snap))
	assert.Empty(t, gone)

	// a Service deleted for good: its members go after the hold
	snap, _ = r.apply(members(all), owned(all), t0.Add(23*time.Second), hold)
	require.Len(t, snap.Members, 2)
	r.apply(members(onlyB), owned(onlyB), t0.Add(24*time.Second), hold)
	snap, _ = r.apply(members(onlyB), owned(onlyB), t0.Add(24*time.Second+hold-time.Millisecond), hold)
	assert.Equal(t, []string{"core/core-a-0", "core/core-b-0"}, ids(snap))
	snap, _ = r.apply(members(onlyB), owned(onlyB), t0.Add(24*time.Second+hold), hold)
	assert.Equal(t, []string{"core/core-b-0"}, ids(snap), "the hold is over")

	// a forged slice never counts as a Service (nothing to retain from it)
	f := forged("core", "x", discoveryv1.AddressTypeIPv4, g, ep{pod: "x-0", addrs: []string{"10.0.0.9"}})
	var r2 retention
	withF := []*discoveryv1.EndpointSlice{f, b}
	r2.apply(members(withF), owned(withF), t0, hold)
	_, gone = r2.apply(members(onlyB), owned(onlyB), t0.Add(time.Second), hold)
	assert.Empty(t, gone)
}

// What a user allowed to create Services (the default "edit" role) could
// add to a watched namespace changes no membership: a Service carrying a
// group's label without being the release's, one with the release's
// labels but another name than the chart's, a Service labelled as another
// group over a real member (which made that member's address shared, so
// used by none: an eviction), and a slice that names the real Service but
// not its UID. The owning Service's labels, not the slice's, say the group
// and side. Each refusal is reported.
func TestOnlyTheReleasesOwnServicesCount(t *testing.T) {
	g := map[string]string{LabelGroup: "lothl.lothlorien", LabelSide: "a"}
	real := slice("lothl", "rr-a", discoveryv1.AddressTypeIPv4, g,
		ep{pod: "rr-0", addrs: []string{"10.244.5.1"}}, ep{pod: "rr-1", addrs: []string{"10.244.5.2"}})
	realSvc := serviceOf(real)
	realSvc.Name = "lothl-meshrr-lothlorien-a"
	real.Labels[labelServiceName] = realSvc.Name
	real.OwnerReferences[0].Name, real.OwnerReferences[0].UID = realSvc.Name, "u-real"
	realSvc.UID = "u-real"

	// a Service with only the group's label, selecting the attacker's pod
	bare := slice("lothl", "bare", discoveryv1.AddressTypeIPv4, map[string]string{LabelGroup: "lothl.lothlorien"}, ep{pod: "evil-0", addrs: []string{"10.244.9.1"}})
	bareSvc := serviceOf(bare)
	delete(bareSvc.Labels, LabelInstance)
	// the release's labels copied, another name
	copied := slice("lothl", "copied", discoveryv1.AddressTypeIPv4, g, ep{pod: "evil-1", addrs: []string{"10.244.9.2"}})
	// another group's label over a real member: the eviction attempt
	evict := slice("lothl", "evict", discoveryv1.AddressTypeIPv4, map[string]string{LabelGroup: "lothl.other"}, ep{pod: "rr-1", addrs: []string{"10.244.5.2"}})
	// a slice naming the real Service, with the controller's label, but not its UID
	noUID := slice("lothl", "nouid", discoveryv1.AddressTypeIPv4, g, ep{pod: "evil-2", addrs: []string{"10.244.9.3"}})
	noUID.Labels[labelServiceName] = realSvc.Name
	noUID.OwnerReferences[0].Name = realSvc.Name
	// a slice whose labels claim side b: the Service says a
	relabelled := slice("lothl", "rr-a-2", discoveryv1.AddressTypeIPv4, map[string]string{LabelGroup: "lothl.lothlorien", LabelSide: "b"}, ep{pod: "rr-0", addrs: []string{"fd00::1"}})
	relabelled.Labels[labelServiceName] = realSvc.Name
	relabelled.OwnerReferences[0].Name, relabelled.OwnerReferences[0].UID = realSvc.Name, "u-real"

	eps := []*discoveryv1.EndpointSlice{real, bare, copied, evict, noUID, relabelled}
	svcs := []*corev1.Service{realSvc, bareSvc, serviceOf(copied), serviceOf(evict)}
	names := map[string]string{"lothl/lothl.lothlorien": "lothl-meshrr-lothlorien", "lothl/lothl.other": "lothl-meshrr-other"}
	snap := Members(Owned(eps, svcs, names))
	assert.Equal(t, []model.Member{
		{Namespace: "lothl", Group: "lothl.lothlorien", Side: "a", Pod: "rr-0", Addrs: addrs("10.244.5.1", "fd00::1")},
		{Namespace: "lothl", Group: "lothl.lothlorien", Side: "a", Pod: "rr-1", Addrs: addrs("10.244.5.2")},
	}, snap.Members)
	joined := strings.Join(snap.Rejected, "\n")
	for _, want := range []string{
		`Service lothl/svc-bare carries meshrr.io/group="lothl.lothlorien" but not the labels of that release and group`,
		`Service lothl/svc-copied carries meshrr.io/group="lothl.lothlorien" but the release names that group's Service "lothl-meshrr-lothlorien"`,
		`Service lothl/svc-evict carries meshrr.io/group="lothl.other" but the release names that group's Service "lothl-meshrr-other"`,
		`EndpointSlice lothl/nouid names its Service "lothl-meshrr-lothlorien-a" but not that Service's UID`,
		`EndpointSlice lothl/bare: its Service "svc-bare" is not a meshrr release's`,
	} {
		assert.Contains(t, joined, want)
	}

	// a group the release does not watch by name, with correct labels over
	// a real member: its claim loses to the named group's, no eviction
	snap = Members(Owned(eps, svcs, map[string]string{"lothl/lothl.lothlorien": "lothl-meshrr-lothlorien"}))
	require.Len(t, snap.Members, 2)
	assert.Equal(t, addrs("10.244.5.2"), snap.Members[1].Addrs, "rr-1 keeps its address")
	assert.Contains(t, strings.Join(snap.Rejected, "\n"), "address 10.244.5.2 is claimed by lothl.lothlorien lothl/rr-1 and lothl.other lothl/rr-1: kept by lothl.lothlorien lothl/rr-1")

	// without names (a group watched only by labels, e.g. a sibling) the
	// release's labels suffice: the copied Service's pod gets in, which is
	// what the RBAC of Services in that namespace must prevent
	snap = Members(Owned(eps, svcs, nil))
	var pods []string
	for _, m := range snap.Members {
		pods = append(pods, m.Pod)
	}
	assert.Contains(t, pods, "evil-1")
	assert.NotContains(t, pods, "evil-0")
}

// A Service deleted while the agent was down is noticed by the next agent
// of the pod (the members it had are in the state file): its members stay
// for the hold, as they would have for an agent that ran throughout, and
// leave after it.
func TestAServiceThatVanishedWhileTheAgentWasDownIsHeld(t *testing.T) {
	g := map[string]string{LabelGroup: "core.core"}
	a := slice("core", "core-a", discoveryv1.AddressTypeIPv4, g, ep{pod: "core-a-0", addrs: []string{"10.0.0.1"}})
	b := slice("core", "core-b", discoveryv1.AddressTypeIPv4, g, ep{pod: "core-b-0", addrs: []string{"10.0.0.2"}})
	client := fake.NewClientset(a, b, serviceOf(a), serviceOf(b))
	file := filepath.Join(t.TempDir(), "state.json")
	pods := func(s model.Snapshot) []string {
		var out []string
		for _, m := range s.Members {
			out = append(out, m.Pod)
		}
		return out
	}
	start := func() *Discovery {
		st, err := state.Open(file)
		require.NoError(t, err)
		d := New(client, []string{"core"}, 0, quiet)
		d.State, d.ServiceGoneHold = st, 2*time.Second
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		require.NoError(t, d.Start(ctx))
		return d
	}
	d := start()
	snap, _ := d.Snapshot()
	require.Equal(t, []string{"core-a-0", "core-b-0"}, pods(snap))

	// the agent stops; meanwhile Service b is deleted (its slice goes)
	ctx := context.Background()
	require.NoError(t, client.CoreV1().Services("core").Delete(ctx, "svc-core-b", metav1.DeleteOptions{}))
	require.NoError(t, client.DiscoveryV1().EndpointSlices("core").Delete(ctx, "core-b", metav1.DeleteOptions{}))
	d = start()
	snap, _ = d.Snapshot()
	assert.Equal(t, []string{"core-a-0", "core-b-0"}, pods(snap), "side b's member stays for the hold")
	time.Sleep(2 * time.Second)
	snap, _ = d.Snapshot()
	assert.Equal(t, []string{"core-a-0"}, pods(snap), "and leaves after it")

	// a file the agent cannot use is reported and ignored
	require.NoError(t, os.WriteFile(file, []byte("{not json"), 0o600))
	_, err := state.Open(file)
	assert.ErrorContains(t, err, "is not valid")
}
