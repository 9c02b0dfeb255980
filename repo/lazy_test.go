package repo_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// The lazy pool, which records what Octane answered, commits without
// waiting for the WAL flush; the ordinary pool, which writes everything a
// call relies on before it is sent, waits. Only a call Octane answered
// without a fault is completed lazily: a failure, and above all a fault
// 233's block, which other processes must keep to, is durable at once.
func TestLazyCommitsOnlyRecordAnswers(t *testing.T) {
	t.Parallel()
	s := repotest.NewPostgres(t)
	ordinary, lazy, err := s.CommitModes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ordinary != "on" || lazy != "off" {
		t.Errorf("synchronous_commit: ordinary pool %q, lazy pool %q; want on and off", ordinary, lazy)
	}
	for _, tc := range []struct {
		c    repo.Call
		lazy bool
	}{
		{repo.Call{Method: "orderQuery", Outcome: "ok"}, true},
		{repo.Call{Method: "orderCreate", Outcome: "rejected"}, false},
		{repo.Call{Method: "orderCreate", Outcome: "transport"}, false},
		{repo.Call{Method: "reserveResources", Outcome: "rate_limited", BlockedUntil: time.Now().Add(time.Minute)}, false},
		{repo.Call{Method: "reserveResources", Outcome: "ok", BlockedUntil: time.Now().Add(time.Minute)}, false},
	} {
		if got := s.FinishesLazily(tc.c); got != tc.lazy {
			t.Errorf("%s %s (blocked until set: %v): lazy = %v, want %v", tc.c.Method, tc.c.Outcome,
				!tc.c.BlockedUntil.IsZero(), got, tc.lazy)
		}
	}
	sq := repotest.NewSQLite(t)
	if sq.FinishesLazily(repo.Call{Method: "orderQuery", Outcome: "ok"}) {
		t.Error("SQLite has no lazy pool, yet a completion would go to one")
	}
}

// Calls recorded whole at the same moment (one statement on PostgreSQL)
// each get their own row, and the call events of one activation stay in the
// order its calls were recorded.
func TestConcurrentRecordedCallsKeepTheirRows(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		const workers, each = 8, 12
		runID := seed(t, s, "record", workers)
		ids := make([]int64, workers)
		for w := range workers {
			a, err := s.ActivationByRef(ctx, fmt.Sprintf("record-%d", w+1))
			must(t, err)
			ids[w] = a.ID
		}
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					msn := fmt.Sprintf("04%02d%04d", w, i)
					outcome := "ok"
					if i%5 == 4 {
						outcome = "rejected" // an ordinary commit in the same moment as lazy ones
					}
					err := s.RecordCall(ctx, repo.Call{RunID: runID, ActivationID: &ids[w], Credential: "c1",
						Method: "getEsimDetails", SentAt: t0.Add(time.Duration(w*each+i) * time.Millisecond),
						Duration: time.Millisecond, Outcome: outcome, Message: "m" + msn, MSN: msn})
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		// A call for no activation is recorded without an event.
		must(t, s.RecordCall(ctx, repo.Call{RunID: runID, Credential: "c1", Method: "queryResources", SentAt: t0, Outcome: "ok"}))
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM calls WHERE message = 'm' || msn AND run_id = ? AND method = 'getEsimDetails'`, runID); n != workers*each {
			t.Errorf("%d calls recorded with their own message, want %d", n, workers*each)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM calls WHERE run_id = ? AND method = 'queryResources' AND activation_id IS NULL`, runID); n != 1 {
			t.Errorf("%d queryResources rows, want 1", n)
		}
		for w, id := range ids {
			evs, err := s.Events(ctx, id)
			must(t, err)
			var calls []repo.Event
			for _, e := range evs {
				if e.Kind == repo.EventCall {
					calls = append(calls, e)
				}
			}
			if len(calls) != each {
				t.Fatalf("activation %d: %d call events, want %d", id, len(calls), each)
			}
			for i, e := range calls {
				want := fmt.Sprintf("m04%02d%04d", w, i)
				if e.Step != "getEsimDetails" || e.Message != want || e.RunID == nil || *e.RunID != runID {
					t.Fatalf("activation %d call event %d: %+v, want %q of run %d", id, i, e, want, runID)
				}
			}
		}
	})
}
