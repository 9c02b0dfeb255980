package repo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// An answered call handed to the transition that records its answer is
// written whatever becomes of the transition: with it (its in-flight row
// completed, or a call without one inserted whole, and the call event ahead
// of the state event), alone when the guard matched nothing, and on its
// own when the transition's statement failed.
func TestAnsweredCallsAreWrittenWhateverTheTransition(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "ans", 4)
		answered := func(a repo.Activation, method, msg string) repo.Call {
			id := a.ID
			return repo.Call{RunID: runID, ActivationID: &id, Credential: "cred", Method: method,
				SentAt: t0.Add(time.Second), Duration: 40 * time.Millisecond, Outcome: "ok", Message: msg, MSN: a.MSN}
		}
		inflight := func(c repo.Call) int64 {
			id, err := s.StartCall(ctx, c)
			must(t, err)
			return id
		}
		callRow := func(msg string) (outcome string, duration int64) {
			must(t, s.DB().QueryRowxContext(ctx, s.DB().Rebind(`SELECT outcome, duration_ns FROM calls WHERE message = ?`), msg).
				Scan(&outcome, &duration))
			return
		}
		lastTwo := func(a repo.Activation) (call, state repo.Event) {
			evs, err := s.Events(ctx, a.ID)
			must(t, err)
			if len(evs) < 2 {
				t.Fatalf("activation %d: %d events", a.ID, len(evs))
			}
			return evs[len(evs)-2], evs[len(evs)-1]
		}

		// With the transition: an in-flight orderCreate completed, then a
		// getEsimDetails without a row inserted whole.
		a := toSelected(t, s, t0, runID, "0431")
		must(t, s.BeginOrder(ctx, &a, repo.LockGuard{}, false, t0))
		oc := answered(a, "orderCreate", "oc-1")
		id := inflight(oc)
		must(t, s.OrderAccepted(ctx, &a, "ORD1", t0, t0.Add(time.Hour), repo.AnsweredCall{ID: id, Call: oc}))
		if o, d := callRow("oc-1"); o != "ok" || d != int64(40*time.Millisecond) {
			t.Errorf("orderCreate's row after OrderAccepted: outcome %q, duration %d; want ok, 40ms", o, d)
		}
		call, state := lastTwo(a)
		if call.Kind != repo.EventCall || call.Step != "orderCreate" || call.Message != "oc-1" ||
			state.Kind != repo.EventState || state.ToState != repo.StateSubmitted {
			t.Errorf("last events: %+v then %+v; want orderCreate's call event, then -> submitted", call, state)
		}
		if call.RunID == nil || *call.RunID != runID {
			t.Errorf("call event run %v, want %d", call.RunID, runID)
		}

		toSubmitted(t, s, t0, runID, "0432")
		later := t0.Add(31 * time.Minute) // its poll is due, the first row's not yet
		got, err := s.ClaimPolls(ctx, later, later.Add(30*time.Minute), runID, "cred", 10, lease)
		must(t, err)
		if len(got) != 1 {
			t.Fatalf("ClaimPolls: %d rows, want 1", len(got))
		}
		b := got[0]
		must(t, s.OrderCompleted(ctx, &b, "0432", true, later))
		if got, err = s.ClaimQR(ctx, later, runID, "cred", 10, lease); err != nil || len(got) != 1 {
			t.Fatalf("ClaimQR: %d rows, %v", len(got), err)
		}
		b = got[0]
		qr := answered(b, "getEsimDetails", "qr-1")
		must(t, s.QRReady(ctx, &b, "LPA:1$x$y", []byte{1}, "8961", later, repo.AnsweredCall{Call: qr}))
		if o, _ := callRow("qr-1"); o != "ok" {
			t.Errorf("getEsimDetails after QRReady: outcome %q, want ok", o)
		}
		if call, state := lastTwo(b); call.Step != "getEsimDetails" || state.ToState != repo.StateQRReady {
			t.Errorf("last events: %+v then %+v; want getEsimDetails' call event, then -> qr_ready", call, state)
		}

		// A lost claim moves nothing, but the calls happened: written.
		c := toSelected(t, s, t0, runID, "0433")
		must(t, s.BeginOrder(ctx, &c, repo.LockGuard{}, false, t0))
		stale := c
		stale.ClaimToken = "not-the-claim"
		lostCall := answered(c, "orderCreate", "oc-lost")
		lostID := inflight(lostCall)
		err = s.OrderAccepted(ctx, &stale, "ORD3", t0, t0.Add(time.Hour), repo.AnsweredCall{ID: lostID, Call: lostCall})
		if !errors.Is(err, repo.ErrLostClaim) {
			t.Fatalf("OrderAccepted with a stale claim: %v, want ErrLostClaim", err)
		}
		if o, _ := callRow("oc-lost"); o != "ok" {
			t.Errorf("orderCreate's row after a lost OrderAccepted: outcome %q, want ok", o)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM events WHERE activation_id = ? AND kind = 'state' AND to_state = 'submitted'`, c.ID); n != 0 {
			t.Errorf("a lost OrderAccepted wrote %d state events", n)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM events WHERE activation_id = ? AND kind = 'call' AND message = 'oc-lost'`, c.ID); n != 1 {
			t.Errorf("a lost OrderAccepted left %d call events for its call, want 1", n)
		}

		// MarkSelected with a lost claim: nothing moved, not even the
		// reservation, and the selectResource call written all the same;
		// then with the claim.
		d := claimOne(t, s, t0, runID)
		must(t, s.SaveReservations(ctx, runID, "cred", t0, []repo.Reservation{{MSN: "0434"}}))
		r, err := s.TakeReservation(ctx, runID, &d, t0)
		must(t, err)
		staleD := d
		staleD.ClaimToken = "not-the-claim"
		err = s.MarkSelected(ctx, &staleD, r, t0, repo.AnsweredCall{Call: answered(d, "selectResource", "sel-lost")})
		if !errors.Is(err, repo.ErrLostClaim) {
			t.Fatalf("MarkSelected with a stale claim: %v, want ErrLostClaim", err)
		}
		if o, _ := callRow("sel-lost"); o != "ok" {
			t.Errorf("selectResource after a lost MarkSelected: outcome %q, want ok", o)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM activations WHERE id = ? AND state = 'pending'`, d.ID); n != 1 {
			t.Error("a lost MarkSelected moved its row")
		}
		must(t, s.MarkSelected(ctx, &d, r, t0, repo.AnsweredCall{Call: answered(d, "selectResource", "sel-1")}))
		if call, state := lastTwo(d); call.Message != "sel-1" || state.ToState != repo.StateSelected {
			t.Errorf("last events: %+v then %+v; want selectResource's call event, then -> selected", call, state)
		}

		// A statement that fails (its context is done): the calls are
		// written on their own.
		sel := answered(c, "selectResource", "sel-cancelled")
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.OrderAccepted(cctx, &c, "ORD3", t0, t0.Add(time.Hour), repo.AnsweredCall{Call: sel}); err == nil {
			t.Fatal("OrderAccepted with a done context succeeded")
		}
		if o, _ := callRow("sel-cancelled"); o != "ok" {
			t.Errorf("call after a failed OrderAccepted: outcome %q, want ok", o)
		}
		if c.State != repo.StateOrdering {
			t.Errorf("failed OrderAccepted moved the row to %s", c.State)
		}

		if n := count(t, s, `SELECT COUNT(*) FROM calls WHERE outcome = ?`, repo.CallInflight); n != 0 {
			t.Errorf("%d calls left in flight", n)
		}
	})
}
