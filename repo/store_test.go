package repo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

func TestMigrateUpDownUp(t *testing.T) {
	t.Parallel()
	for _, d := range []struct {
		name string
		url  func(testing.TB) string
	}{
		{"postgres", repotest.PostgresURL},
		{"sqlite", repotest.SQLiteURL},
	} {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := repo.Open(ctx, d.url(t))
			must(t, err)
			defer s.Close()
			if s.Dialect() != d.name {
				t.Fatalf("Dialect() = %q, want %q", s.Dialect(), d.name)
			}
			if err := s.CheckSchema(ctx); !errors.Is(err, repo.ErrSchemaBehind) {
				t.Fatalf("CheckSchema on empty database = %v, want ErrSchemaBehind", err)
			}
			must(t, s.Migrate(ctx))
			must(t, s.Migrate(ctx)) // idempotent
			must(t, s.CheckSchema(ctx))
			must(t, s.MigrateDown(ctx))
			if err := s.CheckSchema(ctx); !errors.Is(err, repo.ErrSchemaBehind) {
				t.Fatalf("CheckSchema after down = %v, want ErrSchemaBehind", err)
			}
			if _, err := s.ImportedHash(ctx, "x"); err == nil {
				t.Fatal("imports table still there after down")
			}
			// Down drops everything Up made: only goose's own table is left.
			objects := `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name <> 'goose_db_version'`
			if d.name == "sqlite" {
				objects = `SELECT COUNT(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version'`
			}
			if n := count(t, s, objects); n != 0 {
				t.Fatalf("%d schema objects left after down", n)
			}
			must(t, s.Migrate(ctx))
			must(t, s.CheckSchema(ctx))
			seed(t, s, "after-up", 3)
			if n := count(t, s, `SELECT COUNT(*) FROM activations`); n != 3 {
				t.Fatalf("activations after up, down, up: %d, want 3", n)
			}
			// A version this binary does not know.
			_, err = s.DB().ExecContext(ctx, s.DB().Rebind(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, ?)`), 99, true)
			must(t, err)
			if err := s.CheckSchema(ctx); !errors.Is(err, repo.ErrSchemaAhead) {
				t.Fatalf("CheckSchema with version 99 = %v, want ErrSchemaAhead", err)
			}
		})
	}
}

func TestImport(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		cust := int64(42)
		rows := []repo.NewActivation{
			{Line: 2, SalesRef: "A", Email: "a@x", PlanNo: 1, CustNo: &cust},
			{Line: 3, SalesRef: "B", Email: "b@x", PlanNo: 1, SIMType: "physical", SIMSerial: "8961"},
			{Line: 4, SalesRef: "A", Email: "dup@x", PlanNo: 1}, // duplicate within the file
		}
		rejects := []repo.ImportReject{{Line: 5, Reason: "email: required", Raw: "C,,1"}}
		f := repo.ImportFile{Name: "day1.csv", Hash: "hash1", DataRows: 4, Blank: 1}
		got, err := s.Import(ctx, f, rows, rejects, t0)
		must(t, err)
		want := repo.ImportResult{ImportID: got.ImportID, Accepted: 2, Duplicate: 1, Rejected: 1, Blank: 1}
		if got != want || got.ImportID == 0 {
			t.Fatalf("Import = %+v, want %+v", got, want)
		}
		a, err := s.ActivationByRef(ctx, "A")
		must(t, err)
		if a.State != repo.StatePending || a.Email != "a@x" || a.CustNo == nil || *a.CustNo != 42 ||
			!a.NextAttemptAt.Equal(t0) || a.SIMType != "esim" || a.SourceLine != 2 || a.ImportID == nil {
			t.Fatalf("imported row = %+v", a)
		}
		b, err := s.ActivationByRef(ctx, "B")
		must(t, err)
		if b.SIMType != "physical" || b.SIMSerial != "8961" || b.CustNo != nil {
			t.Fatalf("physical row = %+v", b)
		}

		tests := []struct {
			name string
			file repo.ImportFile
			rows []repo.NewActivation
			want repo.ImportResult
			acts int
		}{
			{"same hash writes nothing", f, []repo.NewActivation{{Line: 2, SalesRef: "NEW", Email: "n@x", PlanNo: 1}},
				repo.ImportResult{ImportID: got.ImportID, AlreadyImported: true}, 2},
			{"other file, known refs are duplicates", repo.ImportFile{Name: "day2.csv", Hash: "hash2", DataRows: 2},
				[]repo.NewActivation{{Line: 2, SalesRef: "A", Email: "a@x", PlanNo: 1}, {Line: 3, SalesRef: "C", Email: "c@x", PlanNo: 1}},
				repo.ImportResult{Accepted: 1, Duplicate: 1}, 3},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				res, err := s.Import(ctx, tc.file, tc.rows, nil, t0)
				must(t, err)
				if !tc.want.AlreadyImported {
					tc.want.ImportID = res.ImportID
				}
				if res != tc.want {
					t.Fatalf("Import = %+v, want %+v", res, tc.want)
				}
				if n := count(t, s, `SELECT COUNT(*) FROM activations`); n != tc.acts {
					t.Fatalf("activations = %d, want %d", n, tc.acts)
				}
			})
		}
		a2, err := s.ActivationByRef(ctx, "A")
		must(t, err)
		if a2.Email != "a@x" {
			t.Fatalf("duplicate changed the row: email %q", a2.Email)
		}
		for hash, want := range map[string]bool{"hash1": true, "hash2": true, "nope": false} {
			got, err := s.ImportedHash(ctx, hash)
			must(t, err)
			if got != want {
				t.Errorf("ImportedHash(%q) = %v, want %v", hash, got, want)
			}
		}
		if n := count(t, s, `SELECT COUNT(*) FROM import_rejects WHERE file = 'day1.csv' AND line = 5`); n != 1 {
			t.Fatalf("rejects stored: %d, want 1", n)
		}
		if _, err := s.ActivationByRef(ctx, "missing"); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("ActivationByRef(missing) = %v, want ErrNotFound", err)
		}
	})
}

// Two (here eight) claimers never get the same row.
func TestClaimConcurrent(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		const rows = 300
		runID := seed(t, s, "c", rows)
		var (
			mu   sync.Mutex
			seen = map[int64]int{}
			wg   sync.WaitGroup
			errs = make(chan error, 8)
		)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					got, err := s.ClaimPending(context.Background(), t0, runID, "cred", 7, lease)
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, a := range got {
						seen[a.ID]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if len(seen) != rows {
			t.Fatalf("claimed %d distinct rows, want %d", len(seen), rows)
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("row %d claimed %d times", id, n)
			}
		}
	})
}

func TestClaimPendingOrderAndLease(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "o", 3)
		got, err := s.ClaimPending(ctx, t0, runID, "cred", 2, lease)
		must(t, err)
		if len(got) != 2 || got[0].SalesRef != "o-1" || got[1].SalesRef != "o-2" {
			t.Fatalf("claimed %v, want o-1, o-2", got)
		}
		a := got[0]
		if a.ClaimToken == "" || a.ClaimUntil == nil || !a.ClaimUntil.Equal(t0.Add(lease)) || a.RunID == nil || *a.RunID != runID {
			t.Fatalf("claim stamp: token %q until %v run %v", a.ClaimToken, a.ClaimUntil, a.RunID)
		}
		if got[0].ClaimToken != got[1].ClaimToken {
			t.Fatal("one claim call should stamp one token")
		}
		tests := []struct {
			name string
			now  time.Time
			want int
		}{
			{"live leases are not claimable", t0.Add(time.Minute), 1},
			{"nothing left", t0.Add(time.Minute), 0},
			{"expired leases are", t0.Add(lease + time.Second), 2},
		}
		for _, tc := range tests {
			got, err := s.ClaimPending(ctx, tc.now, runID, "cred", 10, lease)
			must(t, err)
			if len(got) != tc.want {
				t.Fatalf("%s: claimed %d, want %d", tc.name, len(got), tc.want)
			}
		}
		// Not yet due.
		b := claimOne(t, s, t0.Add(20*time.Minute), runID)
		_, err = s.Backoff(ctx, &b, "addCustomer", "", "timeout", t0.Add(20*time.Minute), repo.RetryPolicy{MaxAttempts: 8})
		must(t, err)
		got, err = s.ClaimPending(ctx, t0.Add(20*time.Minute+30*time.Second), runID, "cred", 10, lease)
		must(t, err)
		for _, g := range got {
			if g.ID == b.ID {
				t.Fatal("a backed-off row was claimed before next_attempt_at")
			}
		}
	})
}

// A stale claim token (the lease expired and another claimer took the row)
// can move nothing.
func TestStaleClaimCannotMove(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "s", 1)
		must(t, s.SaveReservations(ctx, runID, "cred", t0, []repo.Reservation{{MSN: "0411"}}))
		stale := claimOne(t, s, t0, runID)
		later := t0.Add(lease + time.Minute)
		fresh := claimOne(t, s, later, runID)
		if fresh.ClaimToken == stale.ClaimToken {
			t.Fatal("re-claim kept the token")
		}
		tests := []struct {
			name string
			op   func(a *repo.Activation) error
		}{
			{"SetCustomer", func(a *repo.Activation) error { return s.SetCustomer(ctx, a, 9, later) }},
			{"TakeReservation", func(a *repo.Activation) error { _, err := s.TakeReservation(ctx, runID, a, later); return err }},
			{"MarkSelected", func(a *repo.Activation) error {
				return s.MarkSelected(ctx, a, repo.Reservation{ID: 1, MSN: "0411"}, later)
			}},
			{"Fail", func(a *repo.Activation) error { return s.Fail(ctx, a, "x", "1", "no", later) }},
			{"Backoff", func(a *repo.Activation) error {
				_, err := s.Backoff(ctx, a, "x", "", "t", later, repo.RetryPolicy{MaxAttempts: 8})
				return err
			}},
			{"Unclaim", func(a *repo.Activation) error { return s.Unclaim(ctx, a) }},
			{"wrong state", func(a *repo.Activation) error {
				b := *a
				b.State = repo.StateSelected
				b.ClaimToken = fresh.ClaimToken
				return s.BeginOrder(ctx, &b, repo.LockGuard{}, false, later)
			}},
			{"no token", func(a *repo.Activation) error {
				b := *a
				b.ClaimToken = ""
				return s.SetCustomer(ctx, &b, 9, later)
			}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				a := stale
				err := tc.op(&a)
				if !errors.Is(err, repo.ErrLostClaim) {
					t.Fatalf("%s with a stale claim = %v, want ErrLostClaim", tc.name, err)
				}
				if a.ClaimToken != stale.ClaimToken || a.State != stale.State {
					t.Fatal("a failed transition changed *a")
				}
			})
		}
		row, err := s.Activation(ctx, stale.ID)
		must(t, err)
		if row.State != repo.StatePending || row.ClaimToken != fresh.ClaimToken || row.CustNo != nil || row.Attempts != 0 {
			t.Fatalf("row moved by a stale claim: %+v", row)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM events`); n != 0 {
			t.Fatalf("failed transitions wrote %d events", n)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE state = 'free'`); n != 1 {
			t.Fatalf("the reservation moved: %d free, want 1", n)
		}
		// The fresh claim still works.
		must(t, s.SetCustomer(ctx, &fresh, 9, later))
	})
}

// A polled row is not claimable again for the poll interval, even when the
// poller crashed (its claim expired) or unclaimed it at once.
func TestPollSlot(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "p", 1)
		a := toSubmitted(t, s, t0, runID, "0400")
		tests := []struct {
			name  string
			at    time.Duration
			want  int
			after func(a *repo.Activation)
		}{
			{"not due before next_poll_at", 29 * time.Minute, 0, nil},
			{"due at next_poll_at", 30 * time.Minute, 1, func(a *repo.Activation) { must(t, s.Unclaim(ctx, a)) }},
			{"unclaimed right after: still spent", 31 * time.Minute, 0, nil},
			{"just under 30 min later", 59*time.Minute + 59*time.Second, 0, nil},
			{"30 min after the last poll (crash: never unclaimed)", 60 * time.Minute, 1, nil},
			{"lease expired, slot not", 60*time.Minute + lease + time.Second, 0, nil},
			{"next slot", 90 * time.Minute, 1, nil},
		}
		for _, tc := range tests {
			now := t0.Add(tc.at)
			got, err := s.ClaimPolls(ctx, now, now.Add(30*time.Minute), runID, "cred", 10, lease)
			must(t, err)
			if len(got) != tc.want {
				t.Fatalf("%s: ClaimPolls claimed %d, want %d", tc.name, len(got), tc.want)
			}
			if tc.want == 1 {
				g := got[0]
				if g.ID != a.ID || !g.NextPollAt.Equal(now.Add(30*time.Minute)) || !g.LastPollAt.Equal(now) {
					t.Fatalf("%s: poll claim stamped next %v last %v", tc.name, g.NextPollAt, g.LastPollAt)
				}
				if tc.after != nil {
					tc.after(&g)
				}
			}
		}
		if n := count(t, s, `SELECT poll_count FROM activations WHERE id = ?`, a.ID); n != 3 {
			t.Fatalf("poll_count = %d, want 3", n)
		}
	})
}

func TestLifecycleEvents(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "e", 3)
		a := claimOne(t, s, t0, runID)
		must(t, s.SetCustomer(ctx, &a, 1234, t0))
		must(t, s.SaveReservations(ctx, runID, "cred", t0.Add(-time.Second), []repo.Reservation{{MSN: "0400", ReservationID: "R1"}}))
		r, err := s.TakeReservation(ctx, runID, &a, t0)
		must(t, err)
		if r.MSN != "0400" || r.State != repo.ReservationAssigned {
			t.Fatalf("TakeReservation = %+v", r)
		}
		must(t, s.MarkSelected(ctx, &a, r, t0))
		if a.State != repo.StateSelected || a.MSN != "0400" || !a.ReservedAt.Equal(t0.Add(-time.Second)) || a.ClaimToken == "" {
			t.Fatalf("after MarkSelected: %+v", a)
		}
		must(t, s.BeginOrder(ctx, &a, repo.LockGuard{}, true, t0))
		if a.State != repo.StateOrdering || a.OrderAttempts != 1 || !a.QRByEmail || !a.OrderSentAt.Equal(t0) {
			t.Fatalf("after BeginOrder: %+v", a)
		}
		must(t, s.OrderAccepted(ctx, &a, "ORD1", t0, t0.Add(30*time.Minute)))
		if a.State != repo.StateSubmitted || a.OrderID != "ORD1" || a.ClaimToken != "" || a.ClaimUntil != nil {
			t.Fatalf("after OrderAccepted: %+v", a)
		}
		polls, err := s.ClaimPolls(ctx, t0.Add(30*time.Minute), t0.Add(time.Hour), runID, "cred", 5, lease)
		must(t, err)
		a = polls[0]
		must(t, s.OrderCompleted(ctx, &a, "0400123456", true, t0.Add(30*time.Minute)))
		qr, err := s.ClaimQR(ctx, t0.Add(31*time.Minute), runID, "cred", 5, lease)
		must(t, err)
		if len(qr) != 1 {
			t.Fatalf("ClaimQR = %d rows", len(qr))
		}
		a = qr[0]
		must(t, s.QRReady(ctx, &a, "LPA:1$x$y", []byte{0x89, 'P', 'N', 'G'}, "8961000", t0.Add(31*time.Minute)))
		if a.State != repo.StateQRReady || a.ActivationCode != "LPA:1$x$y" || string(a.QRPNG[1:]) != "PNG" {
			t.Fatalf("after QRReady: %+v", a)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE state = 'consumed' AND activation_id = ?`, a.ID); n != 1 {
			t.Fatal("reservation not consumed")
		}
		evs, err := s.Events(ctx, a.ID)
		must(t, err)
		want := []string{
			"addCustomer pending->pending", "selectResource pending->selected", "orderCreate selected->ordering",
			"orderCreate ordering->submitted", "orderQuery submitted->completed", "getEsimDetails completed->qr_ready",
		}
		if len(evs) != len(want) {
			t.Fatalf("events: %+v", evs)
		}
		for i, e := range evs {
			if got := fmt.Sprintf("%s %s->%s", e.Step, e.FromState, e.ToState); got != want[i] || e.Kind != repo.EventState || e.RunID == nil {
				t.Errorf("event %d = %q (%s), want %q", i, got, e.Kind, want[i])
			}
		}

		// provisioned: Octane emails the QR.
		b := toSubmitted(t, s, t0, runID, "0401")
		polls, err = s.ClaimPolls(ctx, t0.Add(30*time.Minute), t0.Add(time.Hour), runID, "cred", 5, lease)
		must(t, err)
		b = polls[0]
		must(t, s.OrderCompleted(ctx, &b, "0401", false, t0.Add(30*time.Minute)))
		if b.State != repo.StateProvisioned || b.CompletedAt == nil {
			t.Fatalf("OrderCompleted(awaitQR=false): %+v", b)
		}
	})
}

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{0, time.Minute}, {1, time.Minute}, {2, time.Minute}, {3, 81 * time.Second}, {4, 256 * time.Second},
		{5, 625 * time.Second}, {6, 1296 * time.Second}, {7, 2401 * time.Second}, {8, 4096 * time.Second},
		{12, 20736 * time.Second}, {13, 6 * time.Hour}, {1 << 40, 6 * time.Hour},
	}
	for _, tc := range tests {
		if got := repo.BackoffDelay(tc.attempt); got != tc.want {
			t.Errorf("BackoffDelay(%d) = %v, want %v", tc.attempt, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "b", 1)
		now := t0
		a := claimOne(t, s, now, runID)
		for attempt := 1; attempt <= 3; attempt++ {
			failed, err := s.Backoff(ctx, &a, "addCustomer", "", "connection reset", now, repo.RetryPolicy{MaxAttempts: 3})
			must(t, err)
			if attempt < 3 {
				d := repo.BackoffDelay(attempt)
				if failed || a.State != repo.StatePending || a.Attempts != attempt ||
					a.NextAttemptAt.Before(now.Add(d)) || a.NextAttemptAt.After(now.Add(d+d/10)) {
					t.Fatalf("attempt %d: failed=%v %+v", attempt, failed, a)
				}
				now = a.NextAttemptAt
				a = claimOne(t, s, now, runID)
				continue
			}
			if !failed || a.State != repo.StateFailed || a.Attempts != 3 || a.LastErrorMessage != "connection reset" ||
				a.LastErrorStep != "addCustomer" || !a.FirstAttemptAt.Equal(t0) || !a.LastAttemptAt.Equal(now) {
				t.Fatalf("after max attempts: failed=%v %+v", failed, a)
			}
		}
		// ordering -> selected: the order provably never left.
		runID = seed(t, s, "b2", 1)
		b := toSelected(t, s, now, runID, "0400")
		must(t, s.BeginOrder(ctx, &b, repo.LockGuard{}, false, now))
		failed, err := s.Backoff(ctx, &b, "orderCreate", "", "dial tcp: refused", now, repo.RetryPolicy{MaxAttempts: 8})
		must(t, err)
		if failed || b.State != repo.StateSelected || b.ClaimToken != "" {
			t.Fatalf("Backoff from ordering: %+v", b)
		}
	})
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		crashed := seed(t, s, "r", 4)
		rows := make([]repo.Activation, 3)
		for i := range rows {
			rows[i] = toSelected(t, s, t0, crashed, fmt.Sprintf("04%02d", i))
			must(t, s.BeginOrder(ctx, &rows[i], repo.LockGuard{}, false, t0))
		}
		live := toSelected(t, s, t0, crashed, "0499")
		must(t, s.BeginOrder(ctx, &live, repo.LockGuard{}, false, t0))
		current := run(t, s)
		// A live claim is not an unknown outcome, whichever run asks: the
		// run holding it may have its orderCreate in flight (a run that lost
		// its lock, or a killed pod whose request Octane is still
		// processing), and a second reconcile would resubmit the number.
		for _, asker := range []int64{crashed, current} {
			live, err := s.ClaimUnknownOrders(ctx, t0.Add(time.Minute), asker, "cred", 10, lease)
			must(t, err)
			if len(live) != 0 {
				t.Fatalf("run %d claimed %d ordering rows under a live claim", asker, len(live))
			}
		}
		now := t0.Add(lease + time.Minute)
		got, err := s.ClaimUnknownOrders(ctx, now, current, "cred", 10, lease)
		must(t, err)
		if len(got) != 4 {
			t.Fatalf("ClaimUnknownOrders = %d rows, want 4 (earlier run, lease expired)", len(got))
		}
		must(t, s.ReconcileResubmit(ctx, &got[0], now))
		must(t, s.ReconcileAdopt(ctx, &got[1], now, now.Add(30*time.Minute)))
		must(t, s.BackToPending(ctx, &got[2], repo.StepReconcile, "available", now))
		if got[0].State != repo.StateSelected || got[0].ClaimToken == "" {
			t.Fatalf("resubmit: %+v", got[0])
		}
		if got[1].State != repo.StateSubmitted || !got[1].Adopted || got[1].OrderID != "" || !got[1].NextPollAt.Equal(now.Add(30*time.Minute)) {
			t.Fatalf("adopt: %+v", got[1])
		}
		if got[2].State != repo.StatePending || got[2].MSN != "" || got[2].ReservedAt != nil {
			t.Fatalf("lapsed: %+v", got[2])
		}
		want := map[string]string{"0400": "assigned", "0401": "consumed", "0402": "released"}
		for msn, st := range want {
			if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE msn = ? AND state = ?`, msn, st); n != 1 {
				t.Errorf("reservation %s not %s", msn, st)
			}
		}
		// Once moved, the rows are no unknown outcome any more.
		again, err := s.ClaimUnknownOrders(ctx, now.Add(lease+time.Minute), current+1, "cred", 10, lease)
		must(t, err)
		if len(again) != 1 || again[0].ID != got[3].ID {
			t.Fatalf("after reconcile, unknown orders = %v", again)
		}
	})
}

func TestReleases(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		old := seed(t, s, "rel", 4)
		// rel-1: selected at t0 (old). rel-2: ordering at t0 (never released).
		sel := toSelected(t, s, t0, old, "0401")
		must(t, s.Unclaim(ctx, &sel))
		ord := selectRef(t, s, t0, old, "rel-2", "0402")
		must(t, s.BeginOrder(ctx, &ord, repo.LockGuard{}, false, t0))
		// A free number of the old run, and a young free one of the current run.
		must(t, s.SaveReservations(ctx, old, "cred", t0.Add(20*time.Hour), []repo.Reservation{{MSN: "0403"}}))
		cur := run(t, s)
		must(t, s.SaveReservations(ctx, cur, "cred", t0.Add(20*time.Hour), []repo.Reservation{{MSN: "0404"}}))
		// rel-3: selected recently (young) by the current run.
		young := claimRef(t, s, t0.Add(21*time.Hour), cur, "rel-3")
		must(t, s.SaveReservations(ctx, cur, "cred", t0.Add(21*time.Hour), []repo.Reservation{{MSN: "0405"}}))
		r, err := s.TakeReservation(ctx, cur, &young, t0.Add(21*time.Hour))
		must(t, err)
		if r.MSN != "0404" {
			t.Fatalf("TakeReservation gave %s, want the oldest free number 0404", r.MSN)
		}
		must(t, s.MarkSelected(ctx, &young, r, t0.Add(21*time.Hour)))
		must(t, s.Unclaim(ctx, &young))

		now := t0.Add(23*time.Hour + time.Minute)
		releaseAge := 23 * time.Hour
		due, err := s.DueReleases(ctx, now, now.Add(-releaseAge), cur, "cred", 10)
		must(t, err)
		var msns []string
		for _, r := range due {
			msns = append(msns, r.MSN)
		}
		if fmt.Sprint(msns) != "[0401 0403]" {
			t.Fatalf("DueReleases = %v, want [0401 0403] (old selected, orphan free)", msns)
		}
		st, err := s.Status(ctx, now, now.Add(-releaseAge))
		must(t, err)
		if st.ReleasesDue != 1 || st.Counts[repo.StateSelected] != 2 || st.Counts[repo.StateOrdering] != 1 {
			t.Fatalf("Status = %+v", st)
		}
		for _, r := range due {
			must(t, s.ReleaseReservation(ctx, "cred", r, now))
		}
		back, err := s.Activation(ctx, sel.ID)
		must(t, err)
		if back.State != repo.StatePending || back.MSN != "" || back.ReservedAt != nil {
			t.Fatalf("released activation: %+v", back)
		}
		if err := s.ReleaseReservation(ctx, "cred", due[0], now); !errors.Is(err, repo.ErrLostClaim) {
			t.Fatalf("second release = %v, want ErrLostClaim", err)
		}
		evs, err := s.Events(ctx, sel.ID)
		must(t, err)
		if last := evs[len(evs)-1]; last.Step != "release" || last.FromState != repo.StateSelected || last.ToState != repo.StatePending {
			t.Fatalf("last event %+v", last)
		}
		free, err := s.FreeReservations(ctx, cur)
		must(t, err)
		if len(free) != 1 || free[0].MSN != "0405" {
			t.Fatalf("FreeReservations = %+v", free)
		}
		if _, err := s.TakeReservation(ctx, old, &repo.Activation{ID: sel.ID}, now); !errors.Is(err, repo.ErrLostClaim) {
			t.Fatalf("TakeReservation without claim = %v", err)
		}
		a := claimRef(t, s, now, cur, "rel-4")
		if _, err := s.TakeReservation(ctx, old, &a, now); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("TakeReservation with no free number = %v, want ErrNotFound", err)
		}
	})
}

func TestReports(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		if _, err := s.NewReport(ctx, t0, 10); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("NewReport on an empty store = %v, want ErrNotFound", err)
		}
		runID := seed(t, s, "rep", 5)
		_, err := s.Import(ctx, repo.ImportFile{Name: "bad.csv", Hash: "bad"}, nil,
			[]repo.ImportReject{{Line: 2, Reason: "plan_no: not a number", Raw: "x,y"}}, t0)
		must(t, err)
		// Three QR rows, one failure, one still pending.
		for i := 0; i < 3; i++ {
			a := toSubmitted(t, s, t0, runID, fmt.Sprintf("04%02d", i))
			p, err := s.ClaimPolls(ctx, t0.Add(30*time.Minute), t0.Add(time.Hour), runID, "cred", 1, lease)
			must(t, err)
			a = p[0]
			must(t, s.OrderCompleted(ctx, &a, "svc", true, t0.Add(time.Duration(30+i)*time.Minute)))
			q, err := s.ClaimQR(ctx, t0.Add(40*time.Minute), runID, "cred", 1, lease)
			must(t, err)
			must(t, s.QRReady(ctx, &q[0], "LPA", nil, "", t0.Add(40*time.Minute)))
		}
		f := claimOne(t, s, t0, runID)
		must(t, s.Fail(ctx, &f, "addCustomer", "E12", "invalid email", t0))
		if f.Attempts != 1 || f.FirstAttemptAt == nil || !f.LastAttemptAt.Equal(t0) {
			t.Fatalf("failed on its first call: attempts %d, first %v, last %v; want 1 attempt at %s", f.Attempts, f.FirstAttemptAt, f.LastAttemptAt, t0)
		}

		now := t0.Add(time.Hour)
		r1, err := s.NewReport(ctx, now, 2)
		must(t, err)
		if r1.Number != 1 || r1.Activations != 3 || r1.Rejects != 1 || !r1.PeriodTo.Equal(now) || !r1.PeriodFrom.Equal(t0) {
			t.Fatalf("report 1 = %+v, want 2 QR (capped) + 1 failure, 1 reject", r1)
		}
		r2, err := s.NewReport(ctx, now.Add(time.Minute), 2)
		must(t, err)
		if r2.Number != 2 || r2.Activations != 1 || r2.Rejects != 0 || !r2.PeriodFrom.Equal(now) {
			t.Fatalf("report 2 = %+v, want the third QR row only", r2)
		}
		if _, err := s.NewReport(ctx, now.Add(2*time.Minute), 2); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("third NewReport = %v, want ErrNotFound (every row is in a report)", err)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM report_items`); n != 4 {
			t.Fatalf("report items = %d, want 4", n)
		}
		// The UNIQUE constraint is the last word.
		_, err = s.DB().ExecContext(ctx, s.DB().Rebind(`INSERT INTO report_items (report_id, activation_id)
SELECT ?, activation_id FROM report_items WHERE report_id = ?`), r2.ID, r1.ID)
		if err == nil {
			t.Fatal("an activation could be put in a second report")
		}

		pend, err := s.PendingReport(ctx)
		must(t, err)
		if pend.ID != r1.ID {
			t.Fatalf("PendingReport = %d, want %d", pend.Number, r1.Number)
		}
		must(t, s.SetReportMessage(ctx, r1.ID, "<m1@x>", "/r/1.xlsx"))
		c, err := s.ReportContent(ctx, r1.ID)
		must(t, err)
		if len(c.Activations) != 3 || len(c.Rejects) != 1 || c.Rejects[0].File != "bad.csv" || c.Rejects[0].Line != 2 ||
			c.Totals[repo.StateQRReady] != 3 || c.Totals[repo.StateFailed] != 1 || c.Totals[repo.StatePending] != 1 ||
			c.Report.MessageID != "<m1@x>" {
			t.Fatalf("ReportContent = %+v", c)
		}
		must(t, s.MarkReportDelivered(ctx, r1.ID, now))
		must(t, s.MarkReportDelivered(ctx, r1.ID, now.Add(time.Hour))) // no-op
		if n := count(t, s, `SELECT COUNT(*) FROM activations WHERE reported_at IS NOT NULL`); n != 3 {
			t.Fatalf("reported activations = %d, want 3", n)
		}
		pend, err = s.PendingReport(ctx)
		must(t, err)
		if pend.ID != r2.ID {
			t.Fatalf("PendingReport after delivering 1 = %d", pend.Number)
		}
		must(t, s.MarkReportDelivered(ctx, r2.ID, now))
		if _, err := s.PendingReport(ctx); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("PendingReport = %v, want ErrNotFound", err)
		}
		if err := s.MarkReportDelivered(ctx, 999, now); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("MarkReportDelivered(999) = %v", err)
		}
	})
}

// NewReport from many goroutines at once: each row lands in one report.
func TestNewReportConcurrent(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "nc", 20)
		for i := 0; i < 20; i++ {
			a := claimOne(t, s, t0, runID)
			must(t, s.Fail(ctx, &a, "addCustomer", "E1", "no", t0))
		}
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Builders take turns: the later ones find nothing, never an error.
				if _, err := s.NewReport(ctx, t0.Add(time.Hour), 0); err != nil && !errors.Is(err, repo.ErrNotFound) {
					t.Errorf("NewReport: %v", err)
				}
			}()
		}
		wg.Wait()
		if n := count(t, s, `SELECT COUNT(DISTINCT activation_id) FROM report_items`); n != 20 {
			t.Fatalf("distinct reported = %d, want 20", n)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM report_items`); n != 20 {
			t.Fatalf("report items = %d, want 20", n)
		}
	})
}

func TestCalls(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "call", 1)
		earlier, err := s.StartRun(ctx, t0.Add(-2*time.Hour), "c1", []string{"submit"}, false)
		must(t, err)
		a, err := s.ActivationByRef(ctx, "call-1")
		must(t, err)
		calls := []repo.Call{
			{RunID: runID, Credential: "c1", Method: "orderCreate", SentAt: t0, Outcome: "ok", ActivationID: &a.ID, Duration: 150 * time.Millisecond},
			{RunID: runID, Credential: "c1", Method: "orderCreate", SentAt: t0.Add(time.Second), Outcome: "fault", Code: "233", Waited: 2 * time.Second},
			{RunID: runID, Credential: "c1", Method: "reserveResources", SentAt: t0.Add(2 * time.Second), Outcome: "ok"},
			{RunID: runID, Credential: "c2", Method: "orderCreate", SentAt: t0.Add(3 * time.Second), Outcome: "ok"},
			{RunID: earlier, Credential: "c1", Method: "orderCreate", SentAt: t0.Add(-2 * time.Hour), Outcome: "ok"},
		}
		for _, c := range calls {
			must(t, s.RecordCall(ctx, c))
		}
		recent, err := s.RecentCalls(ctx, "c1", t0.Add(-time.Hour))
		must(t, err)
		if len(recent["orderCreate"]) != 2 || !recent["orderCreate"][1].Equal(t0.Add(time.Second)) || len(recent["reserveResources"]) != 1 {
			t.Fatalf("RecentCalls = %v", recent)
		}
		stats, err := s.CallStats(ctx, t0.Add(-time.Hour), t0) // the run at t0, not the one at t0-2h
		must(t, err)
		// Per credential: the Summary sheet shows each credential's calls.
		want := []repo.MethodCalls{
			{Method: "orderCreate", Outcome: "fault", Count: 1, Waited: 2 * time.Second, Credential: "c1"},
			{Method: "orderCreate", Outcome: "ok", Count: 1, Credential: "c1"},
			{Method: "orderCreate", Outcome: "ok", Count: 1, Credential: "c2"},
			{Method: "reserveResources", Outcome: "ok", Count: 1, Credential: "c1"},
		}
		if fmt.Sprint(stats) != fmt.Sprint(want) {
			t.Fatalf("CallStats = %v, want %v", stats, want)
		}
		evs, err := s.Events(ctx, a.ID)
		must(t, err)
		if len(evs) != 1 || evs[0].Kind != repo.EventCall || evs[0].Step != "orderCreate" || evs[0].Duration != 150*time.Millisecond {
			t.Fatalf("call events = %+v", evs)
		}
		must(t, s.FinishRun(ctx, runID, t0.Add(time.Minute), "ok", map[string]int{"submit": 3}, ""))
		runs, err := s.Runs(ctx, 2)
		must(t, err)
		i := slices.IndexFunc(runs, func(r repo.Run) bool { return r.ID == runID })
		if len(runs) != 2 || i < 0 || runs[i].Counts["submit"] != 3 || runs[i].FinishedAt == nil {
			t.Fatalf("Runs = %+v", runs)
		}
		if err := s.FinishRun(ctx, 999, t0, "ok", nil, ""); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("FinishRun(999) = %v", err)
		}
	})
}

func TestRunLock(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		key := fmt.Sprintf("lock-test-%s-%d", s.Dialect(), time.Now().UnixNano())
		l1, err := s.AcquireRunLock(ctx, key)
		must(t, err)
		if _, err := s.AcquireRunLock(ctx, key); !errors.Is(err, repo.ErrLocked) {
			t.Fatalf("second AcquireRunLock = %v, want ErrLocked", err)
		}
		other, err := s.AcquireRunLock(ctx, key+"-other")
		must(t, err)
		must(t, other.Release(ctx))
		must(t, l1.Check(ctx))
		must(t, l1.Release(ctx))
		must(t, l1.Release(ctx)) // twice is fine
		if err := l1.Check(ctx); !errors.Is(err, repo.ErrLocked) {
			t.Fatalf("Check after Release = %v", err)
		}
		l2, err := s.AcquireRunLock(ctx, key)
		must(t, err)
		must(t, l2.Release(ctx))
	})
}

func TestInTx(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		insert := func(tx *sqlx.Tx, n int) {
			_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO runs (started_at, credential) VALUES (?, ?)`),
				"2026-01-31 10:00:00.000000", fmt.Sprint(n))
			must(t, err)
		}
		boom := errors.New("boom")
		if err := s.InTx(ctx, func(tx *sqlx.Tx) error { insert(tx, 1); return boom }); !errors.Is(err, boom) {
			t.Fatalf("InTx = %v, want boom", err)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("panic swallowed")
				}
			}()
			_ = s.InTx(ctx, func(tx *sqlx.Tx) error { insert(tx, 2); panic("boom") })
		}()
		must(t, s.InTx(ctx, func(tx *sqlx.Tx) error { insert(tx, 3); return nil }))
		if n := count(t, s, `SELECT COUNT(*) FROM runs`); n != 1 {
			t.Fatalf("runs = %d, want only the committed one", n)
		}
	})
}

func TestLogValueHidesSecrets(t *testing.T) {
	t.Parallel()
	a := repo.Activation{ID: 1, SalesRef: "S", State: repo.StateQRReady, ActivationCode: "LPA:1$secret", QRPNG: []byte("PNGDATA"), ClaimToken: "tok"}
	got := a.LogValue().String()
	for _, secret := range []string{"LPA:1$secret", "PNGDATA", "tok"} {
		if strings.Contains(got, secret) {
			t.Fatalf("LogValue %q leaks %q", got, secret)
		}
	}
	if !strings.Contains(got, "qr_ready") {
		t.Fatalf("LogValue %q lacks the state", got)
	}
}

// A number read as due for release whose activation is then claimed and
// ordered must not be marked released afterwards (the release's UPDATE
// repeats DueReleases' predicate, River #1302); the order consumes it.
func TestReleaseAfterOrderBeganIsLost(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "rr", 1)
		a := toSelected(t, s, t0, runID, "0501")
		must(t, s.Unclaim(ctx, &a))
		now := t0.Add(23*time.Hour + time.Minute)
		due, err := s.DueReleases(ctx, now, now.Add(-23*time.Hour), runID, "cred", 10)
		must(t, err)
		if len(due) != 1 || due[0].MSN != "0501" {
			t.Fatalf("DueReleases = %+v, want 0501", due)
		}
		// Meanwhile the row is claimed and its order begins.
		b := claimOne(t, s, now, runID)
		must(t, s.BeginOrder(ctx, &b, repo.LockGuard{}, false, now))
		if err := s.ReleaseReservation(ctx, "cred", due[0], now); !errors.Is(err, repo.ErrLostClaim) {
			t.Fatalf("ReleaseReservation of an ordering row's number = %v, want ErrLostClaim", err)
		}
		must(t, s.OrderAccepted(ctx, &b, "ORD1", now, now.Add(30*time.Minute)))
		if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE msn = '0501' AND state = 'consumed'`); n != 1 {
			t.Fatalf("the ordered number is not consumed (%d rows)", n)
		}
	})
}

// Several `batch migrate` at once on one fresh PostgreSQL schema: goose's
// session lock (an advisory lock whose id is derived from the schema) makes
// them take turns, so all succeed and the schema is applied once.
func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := repotest.PostgresURL(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := repo.Open(ctx, url)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			errs <- s.Migrate(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate: %v", err)
		}
	}
	s, err := repo.Open(ctx, url)
	must(t, err)
	defer s.Close()
	must(t, s.CheckSchema(ctx))
	total := count(t, s, `SELECT COUNT(*) FROM goose_db_version WHERE version_id > 0`)
	distinct := count(t, s, `SELECT COUNT(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0`)
	if total != distinct || distinct < 2 {
		t.Fatalf("%d migration records for %d versions: each must be recorded once", total, distinct)
	}
}

// Times compare as instants on both dialects whatever zone they are given in
// and down to the microsecond: SQLite stores one fixed-width UTC text format,
// so text order is time order (a variable format would sort "10:00:00Z"
// after "10:00:00.5Z"). The import is stamped in New York just after the
// 2026 spring-forward, claims are asked in UTC and Tokyo time.
func TestTimesCompareAcrossZonesAndFractions(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	must(t, err)
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	must(t, err)
	// 03:00:00.5 EDT on 2026-03-08 is 07:00:00.5 UTC (02:00-03:00 local never happened).
	due := time.Date(2026, 3, 8, 3, 0, 0, 500_000_000, ny)
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		_, err := s.Import(ctx, repo.ImportFile{Name: "tz.csv", Hash: "tz", DataRows: 2},
			[]repo.NewActivation{{Line: 2, SalesRef: "tz-1", Email: "x@example.com", PlanNo: 1}}, nil, due)
		must(t, err)
		runID := run(t, s)
		for _, tc := range []struct {
			name string
			now  time.Time
			want int
		}{
			{"a microsecond early, UTC", due.UTC().Add(-time.Microsecond), 0},
			{"half a second early, local wall clock an hour 'later' (DST)", time.Date(2026, 3, 8, 3, 0, 0, 0, ny), 0},
			{"a whole second early in Tokyo", due.In(tokyo).Add(-time.Second), 0},
			{"exactly due, Tokyo", due.In(tokyo), 1},
		} {
			got, err := s.ClaimPending(ctx, tc.now, runID, "cred", 10, lease)
			must(t, err)
			if len(got) != tc.want {
				t.Fatalf("%s: claimed %d rows at %s, want %d", tc.name, len(got), tc.now, tc.want)
			}
			if len(got) == 1 && !got[0].NextAttemptAt.Equal(due) {
				t.Fatalf("next_attempt_at read back as %s, want %s", got[0].NextAttemptAt, due.UTC())
			}
		}
	})
}

// Each run's Octane calls land in exactly one report's Summary: the report
// built by a run includes that run's calls, the next report does not, and
// the first report includes the runs at the first import's time.
func TestReportCallsChain(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		seed(t, s, "chain", 2) // imported at t0; a run starts at t0
		call := func(at time.Time, method string) int64 {
			id, err := s.StartRun(ctx, at, "c", []string{"submit"}, false)
			must(t, err)
			must(t, s.RecordCall(ctx, repo.Call{RunID: id, Credential: "c", Method: method, SentAt: time.Now(), Outcome: "ok"}))
			return id
		}
		fail := func(at time.Time, runID int64) {
			a := claimOne(t, s, at, runID)
			must(t, s.Fail(ctx, &a, "x", "1", "no", at))
		}
		t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
		r0 := call(t0, "reserveResources") // the first pass, at the import's time
		fail(t0, r0)
		call(t1, "orderQuery") // the run that builds report 1
		rep1, err := s.NewReport(ctx, t1, 0)
		must(t, err)
		r2 := call(t2, "getEsimDetails")
		fail(t2, r2)
		rep2, err := s.NewReport(ctx, t2, 0)
		must(t, err)
		methods := func(id int64) string {
			c, err := s.ReportContent(ctx, id)
			must(t, err)
			var m []string
			for _, x := range c.Calls {
				m = append(m, x.Method)
			}
			return strings.Join(m, ",")
		}
		if got := methods(rep1.ID); got != "orderQuery,reserveResources" {
			t.Errorf("report 1 calls = %q, want the runs at t0 and t1", got)
		}
		if got := methods(rep2.ID); got != "getEsimDetails" {
			t.Errorf("report 2 calls = %q, want only the run at t2", got)
		}
	})
}

// TestBackoffOutlastsAnOutage: under the default policy a row whose
// attempts all fall inside a few hours (an Octane outage) never fails, however
// many there are; it fails only once its attempts span two days; NeverFail
// never fails.
func TestBackoffOutlastsAnOutage(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "span", 1)
		now := t0
		for attempt := 1; attempt <= 12; attempt++ {
			a := claimOne(t, s, now, runID)
			failed, err := s.Backoff(ctx, &a, repo.StepCustomer, "", "connection refused", now, repo.DefaultRetryPolicy)
			must(t, err)
			if failed || a.State == repo.StateFailed {
				t.Fatalf("attempt %d at +%s: failed inside an outage", attempt, now.Sub(t0))
			}
			now = now.Add(15 * time.Minute) // claim again well before 48 h
			if a.NextAttemptAt.After(now) {
				now = a.NextAttemptAt
			}
			if now.Sub(t0) > 40*time.Hour {
				break
			}
		}
		late := t0.Add(49 * time.Hour)
		a := claimOne(t, s, late, runID)
		failed, err := s.Backoff(ctx, &a, repo.StepCustomer, "", "connection refused", late, repo.DefaultRetryPolicy)
		must(t, err)
		if !failed || a.State != repo.StateFailed {
			t.Fatalf("after 49 h of attempts: failed=%v state %s, want failed", failed, a.State)
		}

		runID = seed(t, s, "never", 1)
		b := claimOne(t, s, late, runID)
		never := repo.RetryPolicy{MaxAttempts: 1, MinSpan: time.Nanosecond, NeverFail: true, MaxDelay: 30 * time.Minute}
		for i := 0; i < 3; i++ {
			failed, err := s.Backoff(ctx, &b, repo.StepQR, "", "not ready", late, never)
			must(t, err)
			if failed || b.State == repo.StateFailed {
				t.Fatalf("NeverFail failed the row on attempt %d", i+1)
			}
			if d := b.NextAttemptAt.Sub(late); d > 33*time.Minute {
				t.Fatalf("next attempt in %s, want at most MaxDelay plus jitter", d)
			}
			late = b.NextAttemptAt
			b = claimOne(t, s, late, runID)
		}
	})
}

// StoreReservations returns what it stored, in the answer's order, so a
// pass hands the numbers out from memory: MarkSelected takes a number
// nobody took (free) and assigns it. A number still held for a live row is
// left with it and not returned.
func TestStoredReservationsGoStraightToSelect(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "sr", 2)
		toSelected(t, s, t0, runID, "0420")
		// An older free hold on 0421: Octane reserving it again proves it gone.
		must(t, s.SaveReservations(ctx, runID, "cred", t0, []repo.Reservation{{MSN: "0421", ReservationID: "R1old"}}))

		at := t0.Add(time.Minute)
		got, err := s.StoreReservations(ctx, runID, "cred", at, []repo.Reservation{
			{MSN: "0423", ReservationID: "R3"}, {MSN: "0420", ReservationID: "R0420b"}, {MSN: "0421", ReservationID: "R1"},
		})
		must(t, err)
		var msns []string
		for _, r := range got {
			msns = append(msns, r.MSN)
			if r.ID == 0 || r.State != repo.ReservationFree || r.RunID != runID || r.Credential != "cred" ||
				!r.ReservedAt.Equal(at) || r.ActivationID != nil {
				t.Errorf("stored %+v, want a free reservation of run %d by cred, reserved at %v", r, runID, at)
			}
		}
		if strings.Join(msns, ",") != "0423,0421" {
			t.Fatalf("StoreReservations returned %v, want 0423,0421 (0420 is still the selected row's)", msns)
		}
		var holds []string
		must(t, s.DB().Select(&holds, `SELECT reservation_id || ':' || state FROM reservations WHERE msn = '0421' ORDER BY id`))
		if strings.Join(holds, ",") != "R1old:released,R1:free" {
			t.Errorf("holds on 0421: %v, want the older one released and the new one free", holds)
		}
		a := claimOne(t, s, t0, runID)
		must(t, s.MarkSelected(ctx, &a, got[1], at))
		if a.State != repo.StateSelected || a.MSN != "0421" || !a.ReservedAt.Equal(at) {
			t.Fatalf("after MarkSelected with a stored number: %s %q %v", a.State, a.MSN, a.ReservedAt)
		}
		var state string
		var owner int64
		must(t, s.DB().QueryRowx(s.DB().Rebind(`SELECT state, activation_id FROM reservations WHERE id = ?`), got[1].ID).Scan(&state, &owner))
		if state != repo.ReservationAssigned || owner != a.ID {
			t.Errorf("reservation %s assigned to %d, want assigned to %d", state, owner, a.ID)
		}
	})
}
