package repo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// A call is on record from before it is sent: in flight it counts at its
// send time, completed at its end; one that never left is deleted and
// counts nowhere; a fault 233's block is kept while it is ahead.
func TestCallInflightLifecycle(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "inflight", 1)
		a, err := s.ActivationByRef(ctx, "inflight-1")
		must(t, err)
		budget := func() repo.CallBudget {
			t.Helper()
			b, err := s.CallBudget(ctx, "c1", t0.Add(-time.Hour), t0.Add(10*time.Second))
			must(t, err)
			return b
		}

		sent := t0.Add(time.Second)
		id, err := s.StartCall(ctx, repo.Call{RunID: runID, ActivationID: &a.ID, Credential: "c1", Method: "orderCreate",
			SentAt: sent, Outcome: "ignored", MSN: "0410000001"})
		must(t, err)
		if n := count(t, s, `SELECT COUNT(*) FROM calls WHERE outcome = 'inflight'`); n != 1 {
			t.Fatalf("%d in-flight rows, want 1", n)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM events`); n != 0 {
			t.Fatalf("%d events for a call not ended yet", n)
		}
		if b := budget(); len(b.Calls["orderCreate"]) != 1 || !b.Calls["orderCreate"][0].Equal(sent) {
			t.Fatalf("in flight: budget %v, want the call at its send time %s", b.Calls, sent)
		}

		must(t, s.FinishCall(ctx, id, repo.Call{Method: "orderCreate", SentAt: sent, Duration: 300 * time.Millisecond,
			Outcome: "ok", MSN: "0410000001", OrderID: "700001"}))
		if b := budget(); len(b.Calls["orderCreate"]) != 1 || !b.Calls["orderCreate"][0].Equal(sent.Add(300*time.Millisecond)) {
			t.Fatalf("ended: budget %v, want the call at its end", b.Calls)
		}
		var row struct {
			Outcome string `db:"outcome"`
			OrderID string `db:"order_id"`
			RunID   int64  `db:"run_id"`
		}
		must(t, s.DB().GetContext(ctx, &row, s.DB().Rebind(`SELECT outcome, order_id, run_id FROM calls WHERE id = ?`), id))
		if row.Outcome != "ok" || row.OrderID != "700001" || row.RunID != runID {
			t.Fatalf("completed row %+v", row)
		}
		evs, err := s.Events(ctx, a.ID)
		must(t, err)
		if len(evs) != 1 || evs[0].Kind != repo.EventCall || evs[0].Step != "orderCreate" || evs[0].Outcome != "ok" {
			t.Fatalf("events %+v, want one call event", evs)
		}
		if err := s.FinishCall(ctx, id, repo.Call{Method: "orderCreate", Outcome: "ok"}); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("second FinishCall = %v, want ErrNotFound", err)
		}
		if err := s.DropCall(ctx, id); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("DropCall of an ended call = %v, want ErrNotFound", err)
		}

		// Never left the process: gone from the log and the budget.
		gone, err := s.StartCall(ctx, repo.Call{Credential: "c1", Method: "reserveResources", SentAt: t0.Add(2 * time.Second)})
		must(t, err)
		if b := budget(); len(b.Calls["reserveResources"]) != 1 {
			t.Fatalf("in-flight reserve not counted: %v", b.Calls)
		}
		must(t, s.DropCall(ctx, gone))
		if b := budget(); len(b.Calls["reserveResources"]) != 0 {
			t.Fatalf("dropped call still counted: %v", b.Calls)
		}

		// Blocks: the latest one still ahead of now, per method.
		past, ahead, later := t0.Add(5*time.Second), t0.Add(40*time.Second), t0.Add(70*time.Second)
		must(t, s.RecordCall(ctx, repo.Call{Credential: "c1", Method: "orderQuery", SentAt: t0, Outcome: "rate_limited",
			Code: "233", BlockedUntil: past}))
		b233, err := s.StartCall(ctx, repo.Call{Credential: "c1", Method: "orderQuery", SentAt: t0.Add(3 * time.Second)})
		must(t, err)
		must(t, s.FinishCall(ctx, b233, repo.Call{Method: "orderQuery", SentAt: t0.Add(3 * time.Second), Outcome: "rate_limited",
			Code: "233", BlockedUntil: later}))
		must(t, s.RecordCall(ctx, repo.Call{Credential: "c1", Method: "orderQuery", SentAt: t0.Add(4 * time.Second),
			Outcome: "rate_limited", Code: "233", BlockedUntil: ahead}))
		must(t, s.RecordCall(ctx, repo.Call{Credential: "c2", Method: "reserveResources", SentAt: t0, Outcome: "rate_limited",
			Code: "233", BlockedUntil: later}))
		b := budget()
		if len(b.BlockedUntil) != 1 || !b.BlockedUntil["orderQuery"].Equal(later) {
			t.Fatalf("blocks %v, want orderQuery until %s only", b.BlockedUntil, later)
		}
		if len(b.Calls["orderQuery"]) != 3 {
			t.Fatalf("the 233s count as calls: %v", b.Calls)
		}
	})
}
