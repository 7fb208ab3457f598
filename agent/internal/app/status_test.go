package app

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A flood of /status or /readyz requests makes the agent ask the daemon
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
