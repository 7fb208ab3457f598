package backend

import (
	"context"
	"sync"
	"time"

	"github.com/meshrr/meshrr/agent/internal/model"
)

// SessionReader reads the daemon's BGP sessions.
type SessionReader interface {
	Sessions(ctx context.Context) ([]model.Session, error)
}

// SessionCache is the one reader of the daemon's sessions in a running
// agent: the loop, /metrics, /status, /readyz and the drain all read
// through it. A read at most MaxAge old is answered from memory; an older
// one makes one query, which every caller arriving meanwhile shares. So a
// request rate never becomes a daemon query rate: however many scrapes
// arrive at once, the daemon is asked at most once per MaxAge (the loop's
// own reads, every reconcile.statePoll, keep the answer fresh).
type SessionCache struct {
	src    SessionReader
	maxAge time.Duration
	// OnQuery, when set, is called once per query the daemon is asked
	// (metrics count them).
	OnQuery func()
	now     func() time.Time

	mu     sync.Mutex
	at     time.Time // when the last query ended (zero: none yet)
	ss     []model.Session
	err    error
	flight *flight
}

type flight struct {
	done chan struct{}
	ss   []model.Session
	err  error
}

// queryTimeout bounds one shared query: it runs on behalf of every caller
// waiting for it, so no single caller's deadline ends it.
const queryTimeout = 10 * time.Second

// NewSessionCache reads src at most once per maxAge.
func NewSessionCache(src SessionReader, maxAge time.Duration) *SessionCache {
	return &SessionCache{src: src, maxAge: maxAge, now: time.Now}
}

// Sessions returns the sessions last read when that is at most MaxAge
// ago (a failed read is remembered as long: a daemon that does not answer
// is not asked faster), else reads them, sharing a query already under
// way. The slice is shared: callers must not modify it.
func (c *SessionCache) Sessions(ctx context.Context) ([]model.Session, error) {
	c.mu.Lock()
	if !c.at.IsZero() && c.now().Sub(c.at) < c.maxAge {
		ss, err := c.ss, c.err
		c.mu.Unlock()
		return ss, err
	}
	f := c.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		c.flight = f
		go c.query(context.WithoutCancel(ctx), f)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.ss, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *SessionCache) query(ctx context.Context, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if c.OnQuery != nil {
		c.OnQuery()
	}
	f.ss, f.err = c.src.Sessions(ctx)
	c.mu.Lock()
	c.ss, c.err, c.at, c.flight = f.ss, f.err, c.now(), nil
	c.mu.Unlock()
	close(f.done)
}

// Age is how old the last read is (0 before the first).
func (c *SessionCache) Age() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() {
		return 0
	}
	return c.now().Sub(c.at)
}
