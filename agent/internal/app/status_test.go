package app

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/meshrr/meshrr/agent/internal/metrics"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/status"
)

// A flood of /readyz requests makes the agent ask the daemon
// once per statusMaxAge, not once per request.
func TestMemoComputesOncePerMaxAgeWhateverTheRequestRate(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m := &memo[int]{maxAge: statusMaxAge, now: clock}
	var calls atomic.Int32
	compute := func() int { return int(calls.Add(1)) }

	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() { assert.Equal(t, 1, m.get(compute)) })
	}
	wg.Wait()
	assert.EqualValues(t, 1, calls.Load(), "200 concurrent requests, one daemon query")

	mu.Lock()
	now = now.Add(statusMaxAge - time.Millisecond)
	mu.Unlock()
	assert.Equal(t, 1, m.get(compute), "younger than maxAge: the cached answer")
	mu.Lock()
	now = now.Add(time.Millisecond)
	mu.Unlock()
	assert.Equal(t, 2, m.get(compute), "maxAge old: computed again")
	assert.EqualValues(t, 2, calls.Load())
}

// /status carries the flaps the metrics counted for each per-peer session.
func TestStatusReportsFlapsPerPeer(t *testing.T) {
	peer := netip.MustParseAddr("10.244.1.7")
	m := metrics.New(nil)
	up := model.Session{Group: "mesh", Peer: peer, State: "Established", Since: time.Unix(1000, 0)}
	again := up
	again.Since = time.Unix(2000, 0)
	m.ObserveSessions([]model.Session{up})
	m.ObserveSessions([]model.Session{again})
	rep := status.Report{Peers: []status.Peer{{Group: "mesh", Addr: peer.String()}, {Group: "routers", Addr: "172.19.0.9"}}}
	withFlaps(rep, m.Flaps)
	assert.Equal(t, 1, rep.Peers[0].Flaps, "one reset of the mesh session")
	assert.Zero(t, rep.Peers[1].Flaps)
}
