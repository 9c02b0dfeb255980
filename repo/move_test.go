package repo_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// A transition whose guard matches nothing writes nothing: not the row, not
// its event, not the writes on other tables that go with it (on PostgreSQL
// these share the transition's one statement).
func TestLostTransitionWritesNothing(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "lost", 1)
		a := toSelected(t, s, t0, runID, "0421")
		must(t, s.BeginOrder(ctx, &a, repo.LockGuard{}, false, t0))
		events := count(t, s, `SELECT COUNT(*) FROM events WHERE activation_id = ?`, a.ID)

		stale := a
		stale.ClaimToken = "not-the-claim"
		err := s.OrderAccepted(ctx, &stale, "ORD1", t0, t0.Add(time.Hour))
		if !errors.Is(err, repo.ErrLostClaim) {
			t.Fatalf("OrderAccepted with a stale claim: %v, want ErrLostClaim", err)
		}
		if stale.State != repo.StateOrdering || stale.OrderID != "" {
			t.Errorf("stale copy changed by a failed transition: state %s, order %q", stale.State, stale.OrderID)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE activation_id = ? AND state = 'assigned'`, a.ID); n != 1 {
			t.Errorf("assigned reservations after a lost transition: %d, want 1 (not consumed)", n)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM events WHERE activation_id = ?`, a.ID); n != events {
			t.Errorf("events after a lost transition: %d, want %d", n, events)
		}

		must(t, s.OrderAccepted(ctx, &a, "ORD1", t0, t0.Add(time.Hour)))
		if a.State != repo.StateSubmitted || a.OrderID != "ORD1" || a.ClaimToken != "" || a.NextPollAt == nil {
			t.Fatalf("after OrderAccepted: state %s, order %q, claim %q, next poll %v", a.State, a.OrderID, a.ClaimToken, a.NextPollAt)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE activation_id = ? AND state = 'consumed'`, a.ID); n != 1 {
			t.Errorf("consumed reservations after OrderAccepted: %d, want 1", n)
		}
		evs, err := s.Events(ctx, a.ID)
		must(t, err)
		last := evs[len(evs)-1]
		if len(evs) != events+1 || last.Kind != repo.EventState || last.FromState != repo.StateOrdering ||
			last.ToState != repo.StateSubmitted || last.Outcome != "accepted" || last.RunID == nil || *last.RunID != runID {
			t.Errorf("events after OrderAccepted: %d, last %+v; want %d, ordering -> submitted accepted in run %d",
				len(evs), last, events+1, runID)
		}
	})
}

// A pending row that backs off gives its held number back to the run, in
// the same write; a lost backoff gives back nothing.
func TestBackoffUnholdsWithTheMove(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "unhold", 1)
		a := claimOne(t, s, t0, runID)
		must(t, s.SaveReservations(ctx, runID, "cred", t0, []repo.Reservation{{MSN: "0431", ReservationID: "R0431"}}))
		_, err := s.TakeReservation(ctx, runID, &a, t0)
		must(t, err)

		stale := a
		stale.ClaimToken = "not-the-claim"
		if _, err := s.Backoff(ctx, &stale, repo.StepSelect, "transport", "no answer", t0, repo.DefaultRetryPolicy); !errors.Is(err, repo.ErrLostClaim) {
			t.Fatalf("Backoff with a stale claim: %v, want ErrLostClaim", err)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE activation_id = ? AND state = 'assigned'`, a.ID); n != 1 {
			t.Fatalf("assigned reservations after a lost backoff: %d, want 1", n)
		}

		failed, err := s.Backoff(ctx, &a, repo.StepSelect, "transport", "no answer", t0, repo.DefaultRetryPolicy)
		must(t, err)
		if failed || a.State != repo.StatePending || a.Attempts != 1 || a.ClaimToken != "" || a.LastErrorCode != "transport" {
			t.Fatalf("after Backoff: failed %v, state %s, attempts %d, claim %q, code %q",
				failed, a.State, a.Attempts, a.ClaimToken, a.LastErrorCode)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE state = 'free' AND activation_id IS NULL AND msn = '0431'`); n != 1 {
			t.Errorf("free reservations after Backoff: %d, want 1 (given back to the run)", n)
		}
	})
}

// The transitions do not read qr_png back: the in-memory row keeps the image
// it had, or the one QRReady stored, which the database holds too.
func TestTransitionsKeepTheQRImage(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "png", 1)
		a := toSubmitted(t, s, t0, runID, "0441")
		polls, err := s.ClaimPolls(ctx, t0.Add(time.Hour), t0.Add(2*time.Hour), runID, "cred", 1, lease)
		must(t, err)
		if len(polls) != 1 {
			t.Fatalf("ClaimPolls: %d rows, want 1", len(polls))
		}
		a = polls[0]
		must(t, s.OrderCompleted(ctx, &a, "0441", true, t0.Add(time.Hour)))
		qrs, err := s.ClaimQR(ctx, t0.Add(time.Hour), runID, "cred", 1, lease)
		must(t, err)
		if len(qrs) != 1 {
			t.Fatalf("ClaimQR: %d rows, want 1", len(qrs))
		}
		a = qrs[0]
		png := []byte("\x89PNG\r\n\x1a\n not really")
		must(t, s.QRReady(ctx, &a, "LPA:1$x$y", png, "8961", t0.Add(time.Hour)))
		if a.State != repo.StateQRReady || !bytes.Equal(a.QRPNG, png) || a.ActivationCode != "LPA:1$x$y" || a.ICCID != "8961" {
			t.Fatalf("after QRReady: state %s, png %q, code %q, iccid %q", a.State, a.QRPNG, a.ActivationCode, a.ICCID)
		}
		got, err := s.Activation(ctx, a.ID)
		must(t, err)
		if !bytes.Equal(got.QRPNG, png) {
			t.Errorf("stored qr_png %q, want %q", got.QRPNG, png)
		}
	})
}

// Selecting a number takes the reservation only with the move: a stale
// claim, or a number another row holds, leaves both the row and the number
// as they were; TakeReservation tells a lost claim from an empty pool.
func TestSelectTakesTheNumberWithTheMove(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "sel", 2)
		a := claimRef(t, s, t0, runID, "sel-1")
		if _, err := s.TakeReservation(ctx, runID, &a, t0); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("TakeReservation from an empty pool: %v, want ErrNotFound", err)
		}
		stale := a
		stale.ClaimToken = "not-the-claim"
		if _, err := s.TakeReservation(ctx, runID, &stale, t0); !errors.Is(err, repo.ErrLostClaim) {
			t.Fatalf("TakeReservation with a stale claim: %v, want ErrLostClaim", err)
		}
		// A number twice in one answer is one reservation.
		must(t, s.SaveReservations(ctx, runID, "cred", t0, []repo.Reservation{
			{MSN: "0451", ReservationID: "R1"}, {MSN: "0452", ReservationID: "R2"}, {MSN: "0451", ReservationID: "R1"}}))
		if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE state = 'free' AND run_id = ?`, runID); n != 2 {
			t.Fatalf("%d free reservations after saving 0451, 0452, 0451; want 2", n)
		}
		r, err := s.TakeReservation(ctx, runID, &a, t0)
		must(t, err)
		if r.MSN != "0451" || r.State != repo.ReservationAssigned || r.ActivationID == nil || *r.ActivationID != a.ID {
			t.Fatalf("TakeReservation: %+v, want 0451 assigned to %d", r, a.ID)
		}
		events := count(t, s, `SELECT COUNT(*) FROM events WHERE activation_id = ?`, a.ID)

		if err := s.MarkSelected(ctx, &stale, r, t0); !errors.Is(err, repo.ErrLostClaim) {
			t.Fatalf("MarkSelected with a stale claim: %v, want ErrLostClaim", err)
		}
		// b takes the other number; a cannot select it.
		b := claimRef(t, s, t0, runID, "sel-2")
		rb, err := s.TakeReservation(ctx, runID, &b, t0)
		must(t, err)
		if err := s.MarkSelected(ctx, &a, rb, t0); !errors.Is(err, repo.ErrLostClaim) {
			t.Fatalf("MarkSelected of another row's number: %v, want ErrLostClaim", err)
		}
		got, err := s.Activation(ctx, a.ID)
		must(t, err)
		if got.State != repo.StatePending || got.MSN != "" || got.ReservedAt != nil {
			t.Fatalf("row after refused selects: state %s, msn %q, reserved %v", got.State, got.MSN, got.ReservedAt)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM events WHERE activation_id = ?`, a.ID); n != events {
			t.Errorf("events after refused selects: %d, want %d", n, events)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE msn = '0452' AND state = 'assigned' AND activation_id = ?`, b.ID); n != 1 {
			t.Errorf("0452 no longer assigned to its row after another's refused select")
		}

		must(t, s.MarkSelected(ctx, &a, r, t0.Add(time.Minute)))
		if a.State != repo.StateSelected || a.MSN != "0451" || a.ReservedAt == nil || !a.ReservedAt.Equal(t0) || a.ClaimToken == "" {
			t.Fatalf("after MarkSelected: state %s, msn %q, reserved %v, claim %q; want selected, 0451 reserved at %s, claimed",
				a.State, a.MSN, a.ReservedAt, a.ClaimToken, t0)
		}
	})
}

// A transition reads back only the columns it can change; the row it leaves
// in memory is still the row in the database, column for column.
func TestTransitionsLeaveTheStoredRow(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "row", 2)
		same := func(step string, a repo.Activation) {
			t.Helper()
			got, err := s.Activation(ctx, a.ID)
			must(t, err)
			if !reflect.DeepEqual(a, got) {
				t.Fatalf("after %s the row in memory differs from the stored one:\n memory %+v\n stored %+v", step, a, got)
			}
		}
		a := claimRef(t, s, t0, runID, "row-1")
		must(t, s.SetCustomer(ctx, &a, 4711, t0))
		same("SetCustomer", a)
		must(t, s.SaveReservations(ctx, runID, "cred", t0, []repo.Reservation{{MSN: "0461", ReservationID: "R1"}}))
		r, err := s.TakeReservation(ctx, runID, &a, t0)
		must(t, err)
		must(t, s.MarkSelected(ctx, &a, r, t0.Add(time.Second)))
		same("MarkSelected", a)
		must(t, s.BeginOrder(ctx, &a, repo.LockGuard{}, true, t0.Add(2*time.Second)))
		same("BeginOrder", a)
		if _, err := s.Backoff(ctx, &a, repo.StepOrder, "transport", "no answer", t0.Add(3*time.Second), repo.DefaultRetryPolicy); err != nil {
			t.Fatal(err)
		}
		same("Backoff", a)

		b := claimRef(t, s, t0.Add(time.Hour), runID, "row-2")
		must(t, s.Fail(ctx, &b, repo.StepCustomer, "1", "refused", t0.Add(time.Hour)))
		same("Fail", b)
	})
}
