package repo_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/esimbatch/esimbatch/repo/repotest"
)

// A pooled connection that died while idle (its backend ended, as a
// cancelled statement of an earlier pass or a server restart can leave it)
// does not fail the next pass's run lock: a pinned connection is not
// retried by database/sql, so the store tries a fresh one.
func TestRunLockSurvivesADeadPooledConnection(t *testing.T) {
	t.Parallel()
	s := repotest.NewPostgres(t)
	other := repotest.NewPostgres(t)
	ctx := context.Background()
	db := s.DB()
	db.SetMaxIdleConns(1)
	db.SetMaxOpenConns(1)
	var pid int
	must(t, db.GetContext(ctx, &pid, `SELECT pg_backend_pid()`))
	var ended bool
	must(t, other.DB().GetContext(ctx, &ended, `SELECT pg_terminate_backend($1, 5000)`, pid))
	if !ended {
		t.Fatal("backend did not end")
	}
	l, err := s.AcquireRunLock(ctx, "badconn")
	if err != nil {
		t.Fatalf("run lock on a pool whose idle connection died: %v", err)
	}
	must(t, l.Release(ctx))
}

// A run lock whose context is cancelled while it is being taken (SIGTERM
// at a pass's start) fails as cancelled, never as a broken connection:
// the runner tells a stop from a fault by that. lateCancel puts the
// cancellation at every point the acquisition looks at its context, in
// turn; and the next acquisition, on the same pool, takes the lock.
func TestRunLockCancelledWhileTakenReadsAsCancelled(t *testing.T) {
	t.Parallel()
	s := repotest.NewPostgres(t)
	s.DB().SetMaxOpenConns(4)
	for after := int32(0); after < 30; after++ {
		for try := 0; try < 10; try++ {
			ctx := newLateCancel(after)
			l, err := s.AcquireRunLock(ctx, "cancelled")
			switch {
			case err == nil:
				must(t, l.Release(context.Background()))
			case !errors.Is(err, context.Canceled):
				t.Fatalf("cancelled at look %d: acquisition failed as %v, want context.Canceled", after, err)
			}
		}
	}
	l, err := s.AcquireRunLock(context.Background(), "cancelled")
	if err != nil {
		t.Fatalf("run lock after cancelled tries: %v", err)
	}
	must(t, l.Release(context.Background()))
}

// lateCancel is a context that reads as cancelled from its after-th look
// (a call of Done or Err) on.
type lateCancel struct {
	context.Context
	looks  atomic.Int32
	after  int32
	open   chan struct{}
	closed chan struct{}
}

func newLateCancel(after int32) *lateCancel {
	c := &lateCancel{Context: context.Background(), after: after, open: make(chan struct{}), closed: make(chan struct{})}
	close(c.closed)
	return c
}

func (c *lateCancel) Done() <-chan struct{} {
	if c.looks.Add(1) > c.after {
		return c.closed
	}
	return c.open
}

func (c *lateCancel) Err() error {
	if c.looks.Add(1) > c.after {
		return context.Canceled
	}
	return nil
}
