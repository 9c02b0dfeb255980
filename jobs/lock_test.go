package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/octane/octanetest"
	"github.com/esimbatch/esimbatch/repo"
)

// losingLock is a held run lock whose Check starts failing after ok checks,
// as when the advisory lock's session is killed or a SQLite lease expires.
type losingLock struct {
	ok     int64
	checks atomic.Int64
}

func (l *losingLock) Check(context.Context) error {
	if l.checks.Add(1) > l.ok {
		return fmt.Errorf("lease lost: %w", repo.ErrLocked)
	}
	return nil
}

func (l *losingLock) Release(context.Context) error { return nil }

// A pass whose run lock is gone must stop before claiming more work: another
// runner may hold the credential now, and two runners can order one
// activation twice (invariant 1).
func TestLostRunLockStopsThePass(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   int64
	}{
		{"lost before the first phase", 0},
		{"lost after import and release", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, octanetest.Faults{})
			h.load(5)
			lock := &losingLock{ok: tc.ok}
			r := jobs.NewRunner(h.store, h.client("secret"), h.config, jobs.WithClock(h.clock.Now),
				jobs.WithLocker(func(context.Context, string) (jobs.Lock, error) { return lock, nil }))
			_, err := r.Pass(context.Background(), nil)
			if !errors.Is(err, jobs.ErrStopped) || !errors.Is(err, repo.ErrLocked) {
				t.Fatalf("Pass = %v, want ErrStopped wrapping repo.ErrLocked", err)
			}
			if n := len(h.sim.Orders()); n != 0 {
				t.Errorf("%d orders sent without the run lock", n)
			}
			for ref, a := range h.activations() {
				if a.State != repo.StatePending || a.ClaimToken != "" {
					t.Errorf("%s: %s claim %q, want pending and unclaimed", ref, a.State, a.ClaimToken)
				}
			}
		})
	}
}
