package repo_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// TestIntentNeedsTheRunLock: once the run lock's session is gone (a
// restarted database, a terminated backend) or its lease is someone else's,
// no intent can be written, so a run that lost its lock cannot order on
// while a second run takes the credential.
func TestIntentNeedsTheRunLock(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "guard", 2)
		key := fmt.Sprintf("guard-%d", rand.Int64())
		l, err := s.AcquireRunLock(ctx, key)
		must(t, err)
		defer l.Release(ctx)

		a := toSelected(t, s, t0, runID, "0411")
		must(t, s.BeginOrder(ctx, &a, l.Guard(), false, t0)) // held: fine
		if a.State != repo.StateOrdering {
			t.Fatalf("state %s after BeginOrder, want ordering", a.State)
		}

		// Take the lock away.
		if s.Dialect() == repo.DialectPostgres {
			var ok bool
			must(t, s.DB().GetContext(ctx, &ok, `SELECT pg_terminate_backend($1)`, l.SessionPID()))
			if !ok {
				t.Fatal("pg_terminate_backend found no such backend")
			}
			// The session is gone; a second run may take the lock now.
			deadline := time.Now().Add(5 * time.Second)
			for {
				l2, err := s.AcquireRunLock(ctx, key)
				if err == nil {
					defer l2.Release(ctx)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("second run could not take the lock after the first session died: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		} else {
			_, err := s.DB().ExecContext(ctx, `UPDATE run_locks SET holder = 'someone-else' WHERE name = ?`, key)
			must(t, err)
		}

		b := toSelected(t, s, t0, runID, "0412")
		err = s.BeginOrder(ctx, &b, l.Guard(), false, t0)
		if !errors.Is(err, repo.ErrLocked) {
			t.Fatalf("BeginOrder after the lock was lost: %v, want ErrLocked", err)
		}
		got, err := s.Activation(ctx, b.ID)
		must(t, err)
		if got.State != repo.StateSelected || got.OrderAttempts != 0 {
			t.Fatalf("row after a refused intent: state %s, order attempts %d; want selected, 0", got.State, got.OrderAttempts)
		}
	})
}

// TestLiveRunKeepsItsNumbers: a free number of another run is an orphan
// only once that run has finished or its lease has passed, never while it
// may still select it.
func TestLiveRunKeepsItsNumbers(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		first := run(t, s)
		now := t0
		must(t, s.RenewRun(ctx, first, now.Add(10*time.Minute)))
		must(t, s.SaveReservations(ctx, first, "cred", now, []repo.Reservation{{MSN: "0421"}}))
		second := run(t, s)
		due := func(at time.Time) int {
			rs, err := s.DueReleases(ctx, at, at.Add(-23*time.Hour), second, "cred", 10)
			must(t, err)
			return len(rs)
		}
		if n := due(now.Add(time.Minute)); n != 0 {
			t.Fatalf("a live run's free number is due for release (%d), want 0", n)
		}
		if n := due(now.Add(11 * time.Minute)); n != 1 {
			t.Fatalf("after the first run's lease passed: %d due, want 1", n)
		}
		must(t, s.RenewRun(ctx, first, now.Add(time.Hour)))
		must(t, s.FinishRun(ctx, first, now.Add(2*time.Minute), "ok", nil, ""))
		if n := due(now.Add(3 * time.Minute)); n != 1 {
			t.Fatalf("after the first run finished: %d due, want 1", n)
		}
	})
}
