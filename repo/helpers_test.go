package repo_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
)

var t0 = time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC)

const lease = 5 * time.Minute

// seed imports n rows (refs prefix-1..n) at t0 and returns the new run's id.
func seed(t *testing.T, s *repo.Store, prefix string, n int) int64 {
	t.Helper()
	ctx := context.Background()
	rows := make([]repo.NewActivation, n)
	for i := range rows {
		rows[i] = repo.NewActivation{Line: i + 2, SalesRef: fmt.Sprintf("%s-%d", prefix, i+1), Email: "x@example.com", PlanNo: 7}
	}
	if _, err := s.Import(ctx, repo.ImportFile{Name: prefix + ".csv", Hash: prefix, DataRows: n}, rows, nil, t0); err != nil {
		t.Fatal(err)
	}
	return run(t, s)
}

func run(t *testing.T, s *repo.Store) int64 {
	t.Helper()
	id, err := s.StartRun(context.Background(), t0, "cred", []string{"submit"}, false)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func claimOne(t *testing.T, s *repo.Store, now time.Time, runID int64) repo.Activation {
	t.Helper()
	return claimAs(t, s, now, runID, "cred")
}

// claimAs claims the next pending row for credential.
func claimAs(t *testing.T, s *repo.Store, now time.Time, runID int64, credential string) repo.Activation {
	t.Helper()
	got, err := s.ClaimPending(context.Background(), now, runID, credential, 1, lease)
	must(t, err)
	if len(got) != 1 {
		t.Fatalf("ClaimPending: got %d rows, want 1", len(got))
	}
	return got[0]
}

// toSelected claims the next pending row and selects a fresh number for it.
func toSelected(t *testing.T, s *repo.Store, now time.Time, runID int64, msn string) repo.Activation {
	t.Helper()
	ctx := context.Background()
	a := claimOne(t, s, now, runID)
	must(t, s.SaveReservations(ctx, runID, "cred", now, []repo.Reservation{{MSN: msn, ReservationID: "R" + msn}}))
	r, err := s.TakeReservation(ctx, runID, &a, now)
	must(t, err)
	must(t, s.MarkSelected(ctx, &a, r, now))
	return a
}

// toSubmitted drives the next pending row to submitted, next poll at now+30m.
func toSubmitted(t *testing.T, s *repo.Store, now time.Time, runID int64, msn string) repo.Activation {
	t.Helper()
	ctx := context.Background()
	a := toSelected(t, s, now, runID, msn)
	must(t, s.BeginOrder(ctx, &a, repo.LockGuard{}, false, now))
	must(t, s.OrderAccepted(ctx, &a, "ORD"+msn, now, now.Add(30*time.Minute)))
	return a
}

func count(t *testing.T, s *repo.Store, query string, args ...any) int {
	t.Helper()
	var n int
	must(t, s.DB().GetContext(context.Background(), &n, s.DB().Rebind(query), args...))
	return n
}

// claimRef claims due rows and keeps only ref's, unclaiming the others.
func claimRef(t *testing.T, s *repo.Store, now time.Time, runID int64, ref string) repo.Activation {
	t.Helper()
	got, err := s.ClaimPending(context.Background(), now, runID, "cred", 100, lease)
	must(t, err)
	var out *repo.Activation
	for i := range got {
		if got[i].SalesRef == ref {
			out = &got[i]
			continue
		}
		must(t, s.Unclaim(context.Background(), &got[i]))
	}
	if out == nil {
		t.Fatalf("%s not claimable", ref)
	}
	return *out
}

// selectRef drives ref (pending) to selected with a fresh number msn.
func selectRef(t *testing.T, s *repo.Store, now time.Time, runID int64, ref, msn string) repo.Activation {
	t.Helper()
	ctx := context.Background()
	a := claimRef(t, s, now, runID, ref)
	must(t, s.SaveReservations(ctx, runID, "cred", now, []repo.Reservation{{MSN: msn}}))
	r, err := s.TakeReservation(ctx, runID, &a, now)
	must(t, err)
	must(t, s.MarkSelected(ctx, &a, r, now))
	return a
}
