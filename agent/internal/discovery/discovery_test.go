package discovery

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/meshrr/meshrr/agent/internal/model"
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

func slice(ns, name string, typ discoveryv1.AddressType, lbl map[string]string, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbl},
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
	snap := Members([]*discoveryv1.EndpointSlice{
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
		slice("lothl", "rr", discoveryv1.AddressTypeIPv4, region, ep{addrs: []string{"10.244.5.1", "bogus"}}),
	})
	assert.Equal(t, model.Snapshot{Synced: true, Members: []model.Member{
		{Namespace: "core", Group: "core.core", Side: "a", Pod: "core-a-0", Node: "w1", Addrs: addrs("10.244.1.10", "fd00:244::1:10")},
		{Namespace: "core", Group: "core.core", Side: "a", Pod: "core-a-1", Node: "w2", Addrs: addrs("10.244.2.10")},
		{Namespace: "core", Group: "core.core", Side: "a", Pod: "core-a-3", Node: "w3", Addrs: addrs("10.244.3.11"), Terminating: true},
		{Namespace: "lothl", Group: "lothl.lothlorien", Addrs: addrs("10.244.5.1"), UpstreamGroup: "core.core", UpstreamNamespace: "core"},
	}}, snap)
}

func TestInformersFollowEndpointSliceChangesInWatchedNamespacesOnly(t *testing.T) {
	lbl := map[string]string{LabelGroup: "core.core"}
	client := fake.NewClientset(
		slice("core", "s1", discoveryv1.AddressTypeIPv4, lbl, ep{pod: "core-0", addrs: []string{"10.0.0.1"}}),
		slice("elsewhere", "s2", discoveryv1.AddressTypeIPv4, lbl, ep{pod: "x-0", addrs: []string{"10.0.9.1"}}),
	)
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
	_, err := client.DiscoveryV1().EndpointSlices("lothl").Create(ctx,
		slice("lothl", "s3", discoveryv1.AddressTypeIPv4, map[string]string{LabelGroup: "lothl.lothlorien"}, ep{pod: "rr-0", addrs: []string{"10.0.1.1"}}),
		metav1.CreateOptions{})
	require.NoError(t, err)
	waitChange(t, d)
	snap, since = d.Snapshot()
	assert.Len(t, snap.Members, 2)
	assert.WithinDuration(t, time.Now(), since, 5*time.Second)
	_, second := d.Snapshot()
	assert.True(t, second.IsZero(), "a change is reported once")

	// the core pod goes away
	require.NoError(t, client.DiscoveryV1().EndpointSlices("core").Delete(ctx, "s1", metav1.DeleteOptions{}))
	waitChange(t, d)
	snap, _ = d.Snapshot()
	require.Len(t, snap.Members, 1)
	assert.Equal(t, "rr-0", snap.Members[0].Pod)
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
