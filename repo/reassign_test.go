package repo_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// Reassign hands over only the rows that hold nothing at Octane under the
// old credential and that no run is working on; a dry run counts the same
// and writes nothing.
func TestReassign(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "R", 7)
		now := t0.Add(time.Minute)
		claimed := map[string]repo.Activation{}
		for range 6 {
			a := claimAs(t, s, now, runID, "old") // R-1..R-6 owned by old
			claimed[a.SalesRef] = a
		}
		other := claimAs(t, s, now, runID, "other")
		must(t, s.Unclaim(ctx, &other))

		r1 := claimed["R-1"] // pending
		must(t, s.Unclaim(ctx, &r1))
		r2 := claimed["R-2"] // failed before any order
		must(t, s.Fail(ctx, &r2, repo.StepCustomer, "400", "bad address", now))
		r3 := claimed["R-3"] // selected: holds a number of old's
		must(t, s.SaveReservations(ctx, runID, "old", now, []repo.Reservation{{MSN: "0410000003"}}))
		res, err := s.TakeReservation(ctx, runID, &r3, now)
		must(t, err)
		must(t, s.MarkSelected(ctx, &r3, res, now))
		must(t, s.Unclaim(ctx, &r3))
		r4 := claimed["R-4"] // submitted: an order of old's
		must(t, s.SaveReservations(ctx, runID, "old", now, []repo.Reservation{{MSN: "0410000004"}}))
		res, err = s.TakeReservation(ctx, runID, &r4, now)
		must(t, err)
		must(t, s.MarkSelected(ctx, &r4, res, now))
		must(t, s.BeginOrder(ctx, &r4, repo.LockGuard{}, false, now))
		must(t, s.OrderAccepted(ctx, &r4, "ORD-4", now, now.Add(30*time.Minute)))
		r5 := claimed["R-5"] // pending, and a run is working on it
		_ = r5
		r6 := claimed["R-6"] // cancelled
		must(t, s.Unclaim(ctx, &r6))
		r6, err = s.ActivationByRef(ctx, "R-6")
		must(t, err)
		_, err = s.Cancel(ctx, r6, "ops", "", now)
		must(t, err)

		later := now.Add(time.Second) // R-5's claim is still live
		wantMoved := map[repo.State]int{repo.StatePending: 1, repo.StateFailed: 1, repo.StateCancelled: 1}
		wantKept := map[repo.State]int{repo.StateSelected: 1, repo.StateSubmitted: 1, repo.StatePending: 1}
		dry, err := s.Reassign(ctx, "old", "new", "ops", "", true, later)
		must(t, err)
		if !maps.Equal(dry.Moved, wantMoved) || !maps.Equal(dry.Kept, wantKept) {
			t.Fatalf("dry run: moved %v kept %v, want %v and %v", dry.Moved, dry.Kept, wantMoved, wantKept)
		}
		owners := func() map[string]string {
			out := map[string]string{}
			for _, ref := range []string{"R-1", "R-2", "R-3", "R-4", "R-5", "R-6", "R-7"} {
				a, err := s.ActivationByRef(ctx, ref)
				must(t, err)
				out[ref] = a.Credential
			}
			return out
		}
		before := owners()
		if before["R-1"] != "old" || before["R-7"] != "other" {
			t.Fatalf("owners before: %v", before)
		}

		got, err := s.Reassign(ctx, "old", "new", "ops", "password withdrawn", false, later)
		must(t, err)
		if !maps.Equal(got.Moved, wantMoved) || !maps.Equal(got.Kept, wantKept) {
			t.Fatalf("reassign: moved %v kept %v, want %v and %v", got.Moved, got.Kept, wantMoved, wantKept)
		}
		want := map[string]string{"R-1": "new", "R-2": "new", "R-3": "old", "R-4": "old", "R-5": "old", "R-6": "new", "R-7": "other"}
		if after := owners(); !maps.Equal(after, want) {
			t.Fatalf("owners after: %v, want %v (dry run left %v)", after, want, before)
		}
		evs, err := s.Events(ctx, r1.ID)
		must(t, err)
		if last := evs[len(evs)-1]; last.Step != repo.StepReassign || last.Actor != "ops" ||
			last.Message != "credential old -> new by ops: password withdrawn" {
			t.Errorf("reassign event %+v", last)
		}
		// The new owner claims the moved pending row; the old one no longer can.
		olds, err := s.ClaimPending(ctx, later, runID, "old", 10, lease)
		must(t, err)
		for i := range olds {
			if olds[i].SalesRef != "R-3" { // its own selected row resumes at orderCreate
				t.Errorf("old claimed %s after the reassign", olds[i].SalesRef)
			}
			must(t, s.Unclaim(ctx, &olds[i]))
		}
		if a := claimAs(t, s, later, runID, "new"); a.SalesRef != "R-1" {
			t.Errorf("new claimed %s, want R-1", a.SalesRef)
		}
		if _, err := s.Reassign(ctx, "new", "new", "ops", "", false, later); err == nil {
			t.Error("a reassign to the same credential was accepted")
		}
	})
}

// A reassign racing the old credential's claims: each row is either handed
// over unclaimed or claimed by the old credential and kept, never both.
func TestReassignRacesClaim(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		const n = 60
		runID := seed(t, s, "Q", n)
		now := t0.Add(time.Minute)
		first, err := s.ClaimPending(ctx, now, runID, "old", n, lease) // old owns them all
		must(t, err)
		for i := range first {
			must(t, s.Unclaim(ctx, &first[i]))
		}
		later := now.Add(time.Second)
		var claimed []repo.Activation
		var res repo.Reassigned
		var cerr, rerr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 6 {
				got, err := s.ClaimPending(ctx, later, runID, "old", 5, lease)
				if err != nil {
					cerr = err
					return
				}
				claimed = append(claimed, got...)
			}
		}()
		go func() {
			defer wg.Done()
			res, rerr = s.Reassign(ctx, "old", "new", "ops", "", false, later)
		}()
		wg.Wait()
		must(t, cerr)
		must(t, rerr)
		mine := map[string]bool{}
		for _, a := range claimed {
			mine[a.SalesRef] = true
		}
		moved := 0
		for i := 1; i <= n; i++ {
			a, err := s.ActivationByRef(ctx, fmt.Sprintf("Q-%d", i))
			must(t, err)
			switch {
			case a.Credential == "new" && (mine[a.SalesRef] || a.ClaimToken != ""):
				t.Errorf("%s handed to new while old's run holds it", a.SalesRef)
			case a.Credential == "new":
				moved++
			case a.Credential != "old":
				t.Errorf("%s owned by %q", a.SalesRef, a.Credential)
			}
		}
		if moved != res.Moved[repo.StatePending] || moved+len(claimed) != n {
			t.Errorf("moved %d (Reassign says %v), claimed %d, of %d rows", moved, res.Moved, len(claimed), n)
		}
	})
}
