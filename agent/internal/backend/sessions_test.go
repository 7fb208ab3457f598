package backend

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/model"
)

type countingDaemon struct {
	n       atomic.Int64
	release chan struct{} // each query waits for it when set
	err     error
}

func (d *countingDaemon) Sessions(ctx context.Context) ([]model.Session, error) {
	d.n.Add(1)
	if d.release != nil {
		select {
		case <-d.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return []model.Session{{Group: "mesh", State: "Established"}}, d.err
}

func TestSessionCacheAnswersFromMemoryWithinMaxAge(t *testing.T) {
	d := &countingDaemon{}
	c := NewSessionCache(d, 2*time.Second)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	for range 5 {
		ss, err := c.Sessions(t.Context())
		require.NoError(t, err)
		require.Len(t, ss, 1)
	}
	assert.EqualValues(t, 1, d.n.Load(), "five reads within 2 s")
	now = now.Add(1999 * time.Millisecond)
	_, _ = c.Sessions(t.Context())
	assert.EqualValues(t, 1, d.n.Load())
	assert.Equal(t, 1999*time.Millisecond, c.Age())
	now = now.Add(time.Millisecond)
	_, _ = c.Sessions(t.Context())
	assert.EqualValues(t, 2, d.n.Load(), "a read 2 s old is too old")
}

func TestSessionCacheCallersShareOneQueryInFlight(t *testing.T) {
	d := &countingDaemon{release: make(chan struct{})}
	c := NewSessionCache(d, time.Second)
	var wg sync.WaitGroup
	var got atomic.Int64
	for range 200 {
		wg.Go(func() {
			if ss, err := c.Sessions(t.Context()); err == nil && len(ss) == 1 {
				got.Add(1)
			}
		})
	}
	require.Eventually(t, func() bool { return d.n.Load() == 1 }, time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // let the other callers arrive and wait
	close(d.release)
	wg.Wait()
	assert.EqualValues(t, 200, got.Load())
	assert.EqualValues(t, 1, d.n.Load(), "200 concurrent callers, one query")
}

// A caller that gives up does not end the query the others wait for.
func TestSessionCacheQueryOutlivesACallerThatGivesUp(t *testing.T) {
	d := &countingDaemon{release: make(chan struct{})}
	c := NewSessionCache(d, time.Second)
	impatient, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { _, err := c.Sessions(impatient); errc <- err }()
	require.Eventually(t, func() bool { return d.n.Load() == 1 }, time.Second, time.Millisecond)
	patient := make(chan []model.Session, 1)
	go func() { ss, _ := c.Sessions(t.Context()); patient <- ss }()
	cancel()
	assert.ErrorIs(t, <-errc, context.Canceled)
	close(d.release)
	assert.Len(t, <-patient, 1, "the shared query still answers")
	assert.EqualValues(t, 1, d.n.Load())
}

// A daemon that does not answer is not asked faster than one that does.
func TestSessionCacheRemembersAFailureForMaxAge(t *testing.T) {
	d := &countingDaemon{err: errors.New("connection refused")}
	c := NewSessionCache(d, time.Minute)
	for range 3 {
		_, err := c.Sessions(t.Context())
		require.Error(t, err)
	}
	assert.EqualValues(t, 1, d.n.Load())
}
