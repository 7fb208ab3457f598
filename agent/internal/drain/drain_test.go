package drain

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestLeaseLetsOneMemberDrainAtATime(t *testing.T) {
	client := fake.NewClientset()
	a := &LeaseLock{Client: client, Namespace: "core", Name: "core-drain", Identity: "core-a-0"}
	b := &LeaseLock{Client: client, Namespace: "core", Name: "core-drain", Identity: "core-b-0"}
	require.NoError(t, a.Acquire(ctxTimeout(t, 5*time.Second)))

	ctx := ctxTimeout(t, 2*time.Second)
	require.ErrorIs(t, b.Acquire(ctx), context.DeadlineExceeded, "a second member waits while the first drains")

	a.Release()
	start := time.Now()
	require.NoError(t, b.Acquire(ctxTimeout(t, 10*time.Second)), "released on exit: the next member goes on")
	t.Logf("lease handed over %s after release", time.Since(start).Round(10*time.Millisecond))
	b.Release()
}

type fakeLock struct{ err error }

func (f fakeLock) Acquire(ctx context.Context) error { return f.err }
func (fakeLock) Release()                            {}

func TestDrainWaitsForTheOtherSidesThenApplies(t *testing.T) {
	var polls atomic.Int32
	applied := false
	d := &Drainer{
		Lock: fakeLock{},
		Blockers: func(context.Context) ([]string, error) {
			if polls.Add(1) < 3 {
				return []string{"side b has no member with an Established mesh session to this pod"}, nil
			}
			return nil, nil
		},
		Apply:       func(context.Context) error { applied = true; return nil },
		WaitTimeout: 5 * time.Second,
		Poll:        10 * time.Millisecond,
	}
	rep, err := d.Drain(context.Background())
	require.NoError(t, err)
	assert.True(t, applied)
	assert.Empty(t, rep.Forced)
	assert.EqualValues(t, 3, polls.Load())
	assert.Contains(t, rep.String(), "for the other sides")
}

func TestDrainGoesOnWhenTheWaitTimesOut(t *testing.T) {
	applied := false
	d := &Drainer{
		Lock:        fakeLock{err: context.DeadlineExceeded},
		Blockers:    func(context.Context) ([]string, error) { return []string{"side b has no member"}, nil },
		Apply:       func(context.Context) error { applied = true; return nil },
		WaitTimeout: 50 * time.Millisecond,
		Poll:        10 * time.Millisecond,
	}
	rep, err := d.Drain(context.Background())
	require.NoError(t, err)
	assert.True(t, applied, "a pod that must stop drains anyway")
	assert.Contains(t, rep.String(), "wait timed out, drained anyway")
	assert.Contains(t, rep.String(), "side b has no member")

	d.Apply = func(context.Context) error { return errors.New("bird said no") }
	d.Blockers = func(context.Context) ([]string, error) { return nil, nil }
	_, err = d.Drain(context.Background())
	require.ErrorContains(t, err, "bird said no")
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// A second drain request while the lock is held shares it: one elector
// only, and Release really gives the Lease up (no elector left renewing).
func TestASecondAcquireDoesNotLeakAnElector(t *testing.T) {
	client := fake.NewClientset()
	a := &LeaseLock{Client: client, Namespace: "core", Name: "core-drain", Identity: "core-a-0"}
	require.NoError(t, a.Acquire(ctxTimeout(t, 5*time.Second)))
	require.NoError(t, a.Acquire(ctxTimeout(t, 5*time.Second)), "already held")
	a.Release()
	time.Sleep(2500 * time.Millisecond) // more than two retry periods: a leaked elector would renew
	lease, err := client.CoordinationV1().Leases("core").Get(context.Background(), "core-drain", metav1.GetOptions{})
	require.NoError(t, err)
	holder := ""
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	assert.Empty(t, holder, "released, and nothing took it back")
	b := &LeaseLock{Client: client, Namespace: "core", Name: "core-drain", Identity: "core-b-0"}
	require.NoError(t, b.Acquire(ctxTimeout(t, 5*time.Second)), "the next member gets it at once")
	b.Release()
}
