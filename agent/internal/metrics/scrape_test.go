package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// slowDaemon answers a session query after a delay, as a loaded BIRD
// does, and counts the queries.
type slowDaemon struct {
	queries atomic.Int64
	delay   time.Duration
}

func (d *slowDaemon) Sessions(context.Context) ([]model.Session, error) {
	d.queries.Add(1)
	time.Sleep(d.delay)
	return []model.Session{{Group: "mesh", State: "Established"}}, nil
}

// TestConcurrentScrapesShareOneDaemonQuery: 200 scrapes at once over
// HTTP (the metrics port is reachable from the network) make the daemon
// answer one query, and the query counter says so.
func TestConcurrentScrapesShareOneDaemonQuery(t *testing.T) {
	d := &slowDaemon{delay: 50 * time.Millisecond}
	cache := backend.NewSessionCache(d, time.Minute)
	m := New(cache)
	cache.OnQuery = m.DaemonQueries.Inc
	srv := httptest.NewServer(promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: 200}}
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 200 {
		wg.Go(func() {
			resp, err := client.Get(srv.URL)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			if b, _ := io.ReadAll(resp.Body); resp.StatusCode == http.StatusOK && len(b) > 0 {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, 200, ok.Load(), "every scrape answered")
	assert.EqualValues(t, 1, d.queries.Load(), "daemon queries for 200 concurrent scrapes")
	require.InDelta(t, 1, testutil.ToFloat64(m.DaemonQueries), 0)
}
