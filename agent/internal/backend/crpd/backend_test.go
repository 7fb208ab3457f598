package crpd

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newBackend(t *testing.T, srv *fakeJunos, cfg *Conn) *Backend {
	t.Helper()
	t.Cleanup(func() { cfg.Close() })
	return New(cfg, filepath.Join(t.TempDir(), "crpd-applied.conf"))
}

func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".golden"))
	require.NoError(t, err)
	return b
}

func (f *fakeJunos) snapshot() (string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.committed, f.commits
}

func TestApplyCommitsAndSessionsMapToGroups(t *testing.T) {
	srv, cfg := startFakeJunos(t, false)
	b := newBackend(t, srv, NewConn(srv.addr, cfg))
	cur, err := b.Current(context.Background())
	require.NoError(t, err)
	assert.Nil(t, cur)

	want := golden(t, "region")
	require.NoError(t, b.Apply(ctx5(t), want))
	committed, n := srv.snapshot()
	assert.Equal(t, string(want), committed)
	assert.Equal(t, 1, n)
	cur, err = b.Current(context.Background())
	require.NoError(t, err)
	assert.Equal(t, want, cur, "the applied configuration is remembered for restarts")

	srv.setState("10.244.2.10", "Established")
	ss, err := b.Sessions(ctx5(t))
	require.NoError(t, err)
	groups := map[string]model.GroupName{}
	for _, s := range ss {
		groups[s.Peer.String()] = s.Group
		if s.Peer.String() == "10.244.2.10" {
			assert.True(t, s.Established())
			assert.WithinDuration(t, time.Now().Add(-42*time.Second), s.Since, 5*time.Second)
		}
	}
	assert.Equal(t, model.GroupName("mesh"), groups["10.244.6.1"])
	assert.Equal(t, model.GroupName("mesh"), groups["fd00:244::6:1"], "the -v6 group maps back to its model group")
	assert.Equal(t, model.GroupName("upstream"), groups["10.244.2.10"])
	require.NoError(t, b.Ping(ctx5(t)))

	// a restarted agent knows the groups from the remembered configuration
	again := New(NewConn(srv.addr, cfg), b.stateFile)
	ss, err = again.Sessions(ctx5(t))
	require.NoError(t, err)
	assert.NotEmpty(t, ss)
	for _, s := range ss {
		assert.NotEmpty(t, s.Group, "%s", s.Peer)
	}
}

// After an agent restart the remembered configuration counts only while
// cRPD's committed group still carries its digest.
func TestCurrentTrustsTheStateFileOnlyWhenCRPDStillRunsIt(t *testing.T) {
	srv, cfg := startFakeJunos(t, false)
	b := newBackend(t, srv, NewConn(srv.addr, cfg))
	want := golden(t, "core")
	require.NoError(t, b.Apply(ctx5(t), want))

	restarted := New(NewConn(srv.addr, cfg), b.stateFile)
	cur, err := restarted.Current(ctx5(t))
	require.NoError(t, err)
	assert.Equal(t, want, cur, "identical: nothing is loaded again")

	// someone committed another MESHRR group (or cRPD lost it)
	other := golden(t, "alone")
	srv.mu.Lock()
	srv.committed = string(other)
	srv.mu.Unlock()
	cur, err = restarted.Current(ctx5(t))
	require.ErrorContains(t, err, "is not the agent's last commit")
	assert.Nil(t, cur, "the loop applies its plan again")

	srv.mu.Lock()
	srv.committed = ""
	srv.mu.Unlock()
	_, err = restarted.Current(ctx5(t))
	require.ErrorContains(t, err, `digest ""`)
}

func TestRejectedLoadCommitsNothing(t *testing.T) {
	srv, cfg := startFakeJunos(t, false)
	b := newBackend(t, srv, NewConn(srv.addr, cfg))
	err := b.Apply(ctx5(t), []byte("groups {\n    replace: MESHRR {\n        protocls {\n        }\n    }\n}\n"))
	require.ErrorContains(t, err, "crpd rejected the configuration: syntax error")
	_, n := srv.snapshot()
	assert.Zero(t, n)
	cur, _ := b.Current(context.Background())
	assert.Nil(t, cur, "a rejected configuration is not remembered as applied")
	// the private candidate was discarded: a good configuration applies next
	require.NoError(t, b.Apply(ctx5(t), golden(t, "core")))
}

func TestConnectionDroppedMidCommitLeavesNothingPartialAndConverges(t *testing.T) {
	srv, cfg := startFakeJunos(t, false)
	b := newBackend(t, srv, NewConn(srv.addr, cfg))
	require.NoError(t, b.Apply(ctx5(t), golden(t, "core")))
	srv.mu.Lock()
	srv.dropCommit = true
	srv.mu.Unlock()
	err := b.Apply(ctx5(t), golden(t, "region"))
	require.Error(t, err)
	committed, n := srv.snapshot()
	assert.Equal(t, string(golden(t, "core")), committed, "nothing of the dropped commit is committed")
	assert.Equal(t, 1, n)
	cur, _ := b.Current(context.Background())
	assert.Equal(t, golden(t, "core"), cur)

	require.NoError(t, b.Apply(ctx5(t), golden(t, "region")), "the agent reconnects and converges")
	committed, _ = srv.snapshot()
	assert.Equal(t, string(golden(t, "region")), committed)
}

func TestSlowCommitIsWaitedFor(t *testing.T) {
	srv, cfg := startFakeJunos(t, false)
	b := newBackend(t, srv, NewConn(srv.addr, cfg))
	srv.mu.Lock()
	srv.commitDelay = 1500 * time.Millisecond
	srv.mu.Unlock()
	start := time.Now()
	require.NoError(t, b.Apply(ctx5(t), golden(t, "tiers")), "a slow commit within the context's deadline succeeds")
	assert.GreaterOrEqual(t, time.Since(start), 1500*time.Millisecond)

	srv.mu.Lock()
	srv.commitDelay = 2 * time.Second
	srv.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	require.Error(t, b.Apply(ctx, golden(t, "core")), "past the deadline the apply fails instead of hanging")
}

func TestReplyCutWithoutDelimiterIsAFailureNotASuccess(t *testing.T) {
	srv, cfg := startFakeJunos(t, false)
	b := newBackend(t, srv, NewConn(srv.addr, cfg))
	srv.mu.Lock()
	srv.truncate = true
	srv.mu.Unlock()
	err := b.Apply(ctx5(t), golden(t, "core"))
	require.Error(t, err, "go-netconf returns the partial data of an EOF without delimiter; it must not read as success")
	cur, _ := b.Current(context.Background())
	assert.Nil(t, cur)
	require.NoError(t, b.Apply(ctx5(t), golden(t, "core")), "re-applying converges (the commit is idempotent)")
}

func TestAnExclusiveLockBlocksThePrivateCommitUntilReleased(t *testing.T) {
	srv, cfg := startFakeJunos(t, false)
	operator := NewConn(srv.addr, cfg)
	defer operator.Close()
	r, _, err := operator.Do(ctx5(t), "<lock-configuration/>")
	require.NoError(t, err)
	require.NoError(t, r.Err())

	b := newBackend(t, srv, NewConn(srv.addr, cfg))
	err = b.Apply(ctx5(t), golden(t, "core"))
	require.ErrorContains(t, err, "configuration database locked")
	_, n := srv.snapshot()
	assert.Zero(t, n)

	_, _, err = operator.Do(ctx5(t), "<unlock-configuration/>")
	require.NoError(t, err)
	require.NoError(t, b.Apply(ctx5(t), golden(t, "core")))
}

func TestStartedFollowsTheRoutingProcess(t *testing.T) {
	srv, cfg := startFakeJunos(t, false)
	b := newBackend(t, srv, NewConn(srv.addr, cfg))
	first, err := b.Started(ctx5(t))
	require.NoError(t, err)
	assert.Equal(t, time.Unix(1795300000, 0), first)
	srv.mu.Lock()
	srv.started = srv.started.Add(time.Hour) // rpd restarted
	srv.mu.Unlock()
	again, err := b.Started(ctx5(t))
	require.NoError(t, err)
	assert.Equal(t, time.Hour, again.Sub(first))
}

// Readiness, /metrics and /status never queue behind a commit: while one
// holds the NETCONF session they are answered from the last sessions
// read, and a caller that must wait gives up at its own deadline.
func TestReadersDoNotQueueBehindACommit(t *testing.T) {
	srv, cfg := startFakeJunos(t, false)
	b := newBackend(t, srv, NewConn(srv.addr, cfg))
	require.NoError(t, b.Apply(ctx5(t), golden(t, "core")))
	before, err := b.Sessions(ctx5(t))
	require.NoError(t, err)
	require.NotEmpty(t, before)

	srv.mu.Lock()
	srv.commitDelay = 2 * time.Second
	srv.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- b.Apply(ctx5(t), golden(t, "region")) }()
	require.Eventually(t, func() bool { // the commit is in flight
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.commitDelay == 0
	}, 2*time.Second, 5*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	ss, err := b.Sessions(ctx)
	require.NoError(t, err)
	assert.Equal(t, before, ss, "the last read is served")
	require.NoError(t, b.Ping(ctx), "a session busy with a commit is an answering daemon")
	t.Logf("sessions and ping during a 2 s commit answered in %v", time.Since(start))
	assert.NoError(t, ctx.Err(), "answered within the caller's deadline")

	// a caller that has to wait (a raw RPC) gives up at its deadline
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	_, err = b.Started(short)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, <-done)
}
