package repo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// runAs starts a run of credential at t0.
func runAs(t *testing.T, s *repo.Store, credential string) int64 {
	t.Helper()
	id, err := s.StartRun(context.Background(), t0, credential, []string{"submit"}, false)
	must(t, err)
	return id
}

func refsOf(rows []repo.Activation) []string {
	out := make([]string, 0, len(rows))
	for _, a := range rows {
		out = append(out, a.SalesRef)
	}
	slices.Sort(out)
	return out
}

// A pending row belongs to no credential until one claims it; from then on
// it is that credential's alone, in every claim (pending, reconcile, polls,
// QR) and in a dry run's peek, even after the claim ended.
func TestClaimsFollowTheOwner(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		seed(t, s, "own", 6)
		ra, rb := runAs(t, s, "A"), runAs(t, s, "B")

		mine, err := s.ClaimPending(ctx, t0, ra, "A", 3, lease)
		must(t, err)
		if fmt.Sprint(refsOf(mine)) != "[own-1 own-2 own-3]" {
			t.Fatalf("A claimed %v", refsOf(mine))
		}
		for i := range mine {
			if mine[i].Credential != "A" {
				t.Fatalf("claimed row %s owned by %q, want A (set by the claim itself)", mine[i].SalesRef, mine[i].Credential)
			}
		}
		// own-1 goes on to selected, ordering and beyond under A; own-2 is
		// handed back pending; own-3 stays claimed.
		must(t, s.SaveReservations(ctx, ra, "A", t0, []repo.Reservation{{MSN: "0460"}, {MSN: "0461"}}))
		r, err := s.TakeReservation(ctx, ra, &mine[0], t0)
		must(t, err)
		must(t, s.MarkSelected(ctx, &mine[0], r, t0))
		must(t, s.Unclaim(ctx, &mine[1]))

		later := t0.Add(time.Hour) // every claim of A's has lapsed
		theirs, err := s.ClaimPending(ctx, later, rb, "B", 10, lease)
		must(t, err)
		if got := fmt.Sprint(refsOf(theirs)); got != "[own-4 own-5 own-6]" {
			t.Fatalf("B claimed %s, want only the rows no credential owned (own-4..6)", got)
		}
		for i := range theirs {
			must(t, s.Unclaim(ctx, &theirs[i]))
		}
		peek, err := s.Peek(ctx, repo.PeekPending, "B", later.Add(time.Hour), 0, 10)
		must(t, err)
		if got := fmt.Sprint(refsOf(peek)); got != "[own-4 own-5 own-6]" {
			t.Fatalf("B's dry run peeks at %s, want own-4..6", got)
		}
		back, err := s.ClaimPending(ctx, later, ra, "A", 10, lease)
		must(t, err)
		if got := fmt.Sprint(refsOf(back)); got != "[own-1 own-2 own-3]" {
			t.Fatalf("A claims %s again, want its own rows own-1..3", got)
		}
		sel := back[0]
		if sel.SalesRef != "own-1" {
			sel = back[slices.IndexFunc(back, func(a repo.Activation) bool { return a.SalesRef == "own-1" })]
		}
		for i := range back {
			if back[i].ID != sel.ID {
				must(t, s.Unclaim(ctx, &back[i]))
			}
		}

		// own-1 ordering with its outcome unknown: only A reconciles it.
		must(t, s.BeginOrder(ctx, &sel, repo.LockGuard{}, false, later))
		must(t, s.Unclaim(ctx, &sel))
		for _, c := range []struct {
			cred string
			want int
		}{{"B", 0}, {"A", 1}} {
			got, err := s.ClaimUnknownOrders(ctx, later, rb, c.cred, 10, lease)
			must(t, err)
			if len(got) != c.want {
				t.Fatalf("ClaimUnknownOrders by %s = %d rows, want %d", c.cred, len(got), c.want)
			}
			if c.want == 1 {
				sel = got[0]
			}
		}
		peekU, err := s.Peek(ctx, repo.PeekUnknownOrders, "B", later.Add(time.Hour), 0, 10)
		must(t, err)
		if len(peekU) != 0 {
			t.Fatalf("B's dry run peeks at A's unknown order: %v", refsOf(peekU))
		}
		// Adopted, polled and completed: only A polls it and fetches its QR.
		must(t, s.ReconcileAdopt(ctx, &sel, later, later))
		for _, c := range []struct {
			cred string
			want int
		}{{"B", 0}, {"A", 1}} {
			got, err := s.ClaimPolls(ctx, later, later.Add(30*time.Minute), rb, c.cred, 10, lease)
			must(t, err)
			if len(got) != c.want {
				t.Fatalf("ClaimPolls by %s = %d rows, want %d", c.cred, len(got), c.want)
			}
			if c.want == 1 {
				sel = got[0]
			}
		}
		must(t, s.OrderCompleted(ctx, &sel, "0460", true, later))
		for _, c := range []struct {
			cred string
			want int
		}{{"B", 0}, {"A", 1}} {
			got, err := s.ClaimQR(ctx, later, rb, c.cred, 10, lease)
			must(t, err)
			if len(got) != c.want {
				t.Fatalf("ClaimQR by %s = %d rows, want %d", c.cred, len(got), c.want)
			}
		}
	})
}

// The bug of issue 11: B's release phase took A's held numbers for
// orphans. A's run has ended, so its free numbers and the number of its
// unclaimed selected row are due for release, but only by A: B's
// DueReleases never lists them, B's ReleaseReservation of one changes
// nothing, and B can neither take nor select one of A's numbers.
func TestReleaseByOtherCredentialLeavesNumbersAlone(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		seed(t, s, "rel", 3)
		ra := runAs(t, s, "A")
		a := claimAs(t, s, t0, ra, "A")
		must(t, s.SaveReservations(ctx, ra, "A", t0, []repo.Reservation{{MSN: "0471"}, {MSN: "0472"}}))
		r, err := s.TakeReservation(ctx, ra, &a, t0)
		must(t, err)
		must(t, s.MarkSelected(ctx, &a, r, t0))
		must(t, s.Unclaim(ctx, &a))
		must(t, s.FinishRun(ctx, ra, t0.Add(time.Minute), "ok", nil, "")) // A's free 0472 is an orphan now

		rb := runAs(t, s, "B")
		now := t0.Add(23*time.Hour + time.Minute) // 0471 is past RELEASE_AFTER too
		due, err := s.DueReleases(ctx, now, now.Add(-23*time.Hour), rb, "B", 10)
		must(t, err)
		if len(due) != 0 {
			t.Fatalf("B's DueReleases = %+v, want none of A's numbers", due)
		}
		dueA, err := s.DueReleases(ctx, now, now.Add(-23*time.Hour), rb+1, "A", 10)
		must(t, err)
		if len(dueA) != 2 {
			t.Fatalf("A's DueReleases = %+v, want its two numbers", dueA)
		}
		for _, r := range dueA {
			if r.Credential != "A" {
				t.Fatalf("reservation %s credential %q, want A", r.MSN, r.Credential)
			}
			if err := s.ReleaseReservation(ctx, "B", r, now); !errors.Is(err, repo.ErrLostClaim) {
				t.Fatalf("B releasing A's %s = %v, want ErrLostClaim", r.MSN, err)
			}
		}
		if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE state IN ('free', 'assigned') AND credential = 'A'`); n != 2 {
			t.Fatalf("A holds %d numbers after B's release attempts, want 2", n)
		}
		if got, err := s.Activation(ctx, a.ID); err != nil || got.State != repo.StateSelected || got.MSN != "0471" {
			t.Fatalf("A's selected row after B's release: %+v, %v", got, err)
		}

		// B's own pending row can neither take A's free number (B's run
		// holds none) nor be selected with it.
		b := claimAs(t, s, now, rb, "B")
		if b.Credential != "B" {
			t.Fatalf("B's claim owner %q", b.Credential)
		}
		if _, err := s.TakeReservation(ctx, ra, &b, now); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("B's row taking from A's run = %v, want ErrNotFound (A's numbers are A's)", err)
		}
		free := dueA[slices.IndexFunc(dueA, func(r repo.Reservation) bool { return r.MSN == "0472" })]
		if err := s.MarkSelected(ctx, &b, free, now); !errors.Is(err, repo.ErrLostClaim) {
			t.Fatalf("selecting A's number for B's row = %v, want ErrLostClaim", err)
		}

		// A releases its own.
		for _, r := range dueA {
			must(t, s.ReleaseReservation(ctx, "A", r, now))
		}
		if got, err := s.Activation(ctx, a.ID); err != nil || got.State != repo.StatePending || got.Credential != "A" {
			t.Fatalf("A's released row: %+v, %v (want pending, still A's)", got, err)
		}
	})
}

// batch status counts rows and held numbers per credential.
func TestStatusByCredential(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		seed(t, s, "st", 4)
		ra, rb := runAs(t, s, "A"), runAs(t, s, "B")
		a := claimAs(t, s, t0, ra, "A")
		must(t, s.SaveReservations(ctx, ra, "A", t0, []repo.Reservation{{MSN: "0481"}}))
		r, err := s.TakeReservation(ctx, ra, &a, t0)
		must(t, err)
		must(t, s.MarkSelected(ctx, &a, r, t0))
		must(t, s.Unclaim(ctx, &a))
		b := claimAs(t, s, t0, rb, "B")
		must(t, s.Unclaim(ctx, &b))
		must(t, s.RecordCall(ctx, repo.Call{RunID: rb, Credential: "C", Method: "queryResources", SentAt: t0, Outcome: "ok"}))

		got, err := s.StatusByCredential(ctx, t0.Add(-time.Hour))
		must(t, err)
		var lines []string
		for _, c := range got {
			lines = append(lines, fmt.Sprintf("%q pending=%d selected=%d held=%d", c.Credential,
				c.Counts[repo.StatePending], c.Counts[repo.StateSelected], c.Held))
		}
		want := []string{`"" pending=2 selected=0 held=0`, `"A" pending=0 selected=1 held=1`,
			`"B" pending=1 selected=0 held=0`, `"C" pending=0 selected=0 held=0`}
		if fmt.Sprint(lines) != fmt.Sprint(want) {
			t.Fatalf("StatusByCredential:\n got %q\nwant %q", lines, want)
		}
	})
}
