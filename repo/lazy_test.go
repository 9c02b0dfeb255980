package repo_test

import (
	"context"
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
	ok, rejected := repo.Call{Method: "orderQuery", Outcome: "ok"}, repo.Call{Method: "orderCreate", Outcome: "rejected"}
	if !s.FinishesLazily(ok, ok) || s.FinishesLazily(ok, rejected, ok) {
		t.Errorf("a shared statement: lazy for two answered calls = %v, with a rejected one among them = %v; want true, false",
			s.FinishesLazily(ok, ok), s.FinishesLazily(ok, rejected, ok))
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
		// A call for no activation is recorded without an event.
		must(t, s.RecordCall(ctx, repo.Call{Credential: "c1", Method: "queryResources", SentAt: t0, Outcome: "ok", Message: "lone"}))
		runID, ids := concurrentCalls(t, s, "record", workers, each, func(c callSlot) error {
			outcome := "ok"
			if c.i%5 == 4 {
				outcome = "rejected" // an ordinary commit in the same moment as lazy ones
			}
			return s.RecordCall(ctx, repo.Call{RunID: c.run, ActivationID: c.activation, Credential: "c1",
				Method: "getEsimDetails", SentAt: c.sent, Duration: time.Millisecond, Outcome: outcome, Message: "m" + c.msn, MSN: c.msn})
		})
		if n := count(t, s, `SELECT COUNT(*) FROM calls WHERE message = 'm' || msn AND run_id = ? AND method = 'getEsimDetails'`, runID); n != workers*each {
			t.Errorf("%d calls recorded with their own message, want %d", n, workers*each)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM calls WHERE message = 'lone' AND activation_id IS NULL`); n != 1 {
			t.Errorf("%d queryResources rows, want 1", n)
		}
		checkCallEvents(t, s, ids, each, "getEsimDetails", runID)
	})
}
