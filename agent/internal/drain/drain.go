// Package drain is the graceful shutdown of an RR pod (RFC 8326): when the
// pod is about to stop, the chart's preStop asks the running agent to drain.
// The agent takes the group's drain lock (a Lease: one member drains at a
// time, whatever the workload or side), waits until every other side has a
// member meshed with it, then switches its exports to the graceful-shutdown
// rule and answers; the preStop keeps the pod up for the drain time, so
// that peers move to other paths before the sessions close.
package drain

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Lock lets one member of a group drain at a time.
type Lock interface {
	// Acquire blocks until the lock is held or ctx ends.
	Acquire(ctx context.Context) error
	// Release gives the lock up (at the latest when the agent exits).
	Release()
}

// LeaseLock is a Lock on a coordination.k8s.io Lease, held through
// client-go's leader election: a holder that dies without releasing it
// loses it after the lease duration.
type LeaseLock struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
	Identity  string

	mu     sync.Mutex
	turn   chan struct{} // one Acquire at a time
	cancel context.CancelFunc
	done   chan struct{}
}

// Acquire implements Lock. It is idempotent: while the lock is held a
// second request (another drain) shares it instead of starting a second
// elector that nobody would stop.
func (l *LeaseLock) Acquire(ctx context.Context) error {
	l.mu.Lock()
	if l.turn == nil {
		l.turn = make(chan struct{}, 1)
	}
	turn := l.turn
	l.mu.Unlock()
	select {
	case turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-turn }()
	l.mu.Lock()
	held := l.cancel != nil
	l.mu.Unlock()
	if held {
		return nil
	}
	acquired := make(chan struct{})
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: l.Namespace, Name: l.Name},
			Client:     l.Client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: l.Identity},
		},
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     time.Second,
		ReleaseOnCancel: true,
		Name:            l.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { close(acquired) },
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		cancel()
		return fmt.Errorf("drain lock %s/%s: %w", l.Namespace, l.Name, err)
	}
	done := make(chan struct{})
	go func() { defer close(done); le.Run(lctx) }()
	select {
	case <-acquired:
		l.mu.Lock()
		l.cancel, l.done = cancel, done
		l.mu.Unlock()
		return nil
	case <-ctx.Done():
		cancel()
		<-done
		return ctx.Err()
	}
}

// Release implements Lock.
func (l *LeaseLock) Release() {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.cancel, l.done = nil, nil
	l.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Drainer runs one drain.
type Drainer struct {
	Lock Lock // nil: no lock
	// Blockers says what the pod still waits for (nil: nothing).
	Blockers func(ctx context.Context) ([]string, error)
	// Apply switches the exports to the graceful-shutdown rule.
	Apply       func(ctx context.Context) error
	WaitTimeout time.Duration
	Poll        time.Duration
	Now         func() time.Time
}

// Report says what a drain waited for.
type Report struct {
	LockWait  time.Duration
	SidesWait time.Duration
	// Forced lists what was still missing when WaitTimeout ran out.
	Forced []string
}

func (r Report) String() string {
	s := fmt.Sprintf("drained after %s for the drain lock and %s for the other sides", r.LockWait.Round(time.Millisecond), r.SidesWait.Round(time.Millisecond))
	if len(r.Forced) > 0 {
		s += "; wait timed out, drained anyway: " + strings.Join(r.Forced, "; ")
	}
	return s
}

// Drain waits (at most WaitTimeout in all) for the lock and for the other
// sides, then applies the drained configuration. Waiting never fails the
// drain: a pod that must stop drains anyway, later at worst.
func (d *Drainer) Drain(ctx context.Context) (Report, error) {
	now := d.Now
	if now == nil {
		now = time.Now
	}
	poll := d.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	var rep Report
	start := now()
	wctx, cancel := context.WithTimeout(ctx, d.WaitTimeout)
	defer cancel()
	if d.Lock != nil {
		if err := d.Lock.Acquire(wctx); err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			rep.Forced = append(rep.Forced, "drain lock not acquired: "+err.Error())
		}
	}
	rep.LockWait = now().Sub(start)
	sides := now()
	for {
		blockers, err := d.Blockers(wctx)
		if err != nil {
			blockers = []string{"sessions unreadable: " + err.Error()}
		}
		if len(blockers) == 0 {
			break
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			rep.Forced = append(rep.Forced, blockers...)
		case <-time.After(poll):
			continue
		}
		break
	}
	rep.SidesWait = now().Sub(sides)
	if err := d.Apply(ctx); err != nil {
		return rep, fmt.Errorf("apply the drained configuration: %w", err)
	}
	return rep, nil
}
