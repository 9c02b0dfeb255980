package repo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
	migrations "github.com/esimbatch/esimbatch/sql"
)

// failAt claims ref and fails it at step with code and message.
func failAt(t *testing.T, s *repo.Store, now time.Time, runID int64, ref string, step repo.Step, code, msg string) repo.Activation {
	t.Helper()
	a := claimRef(t, s, now, runID, ref)
	must(t, s.Fail(context.Background(), &a, step, code, msg, now))
	return a
}

func refusal(t *testing.T, err error) *repo.Refusal {
	t.Helper()
	var r *repo.Refusal
	if !errors.As(err, &r) || !errors.Is(err, repo.ErrRefused) {
		t.Fatalf("err = %v, want a *repo.Refusal (ErrRefused)", err)
	}
	return r
}

func TestFindActivation(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "F", 3)
		sub := toSubmitted(t, s, t0, runID, "0400000001") // F-1, order ORD0400000001
		// F-2 failed on number 0400000002, which was then reserved for F-3.
		f2 := selectRef(t, s, t0, runID, "F-2", "0400000002")
		must(t, s.Fail(ctx, &f2, repo.StepOrder, "E1", "plan not allowed", t0))
		_, err := s.DB().ExecContext(ctx, s.DB().Rebind(`UPDATE reservations SET state = 'released' WHERE msn = ?`), "0400000002")
		must(t, err)
		selectRef(t, s, t0, runID, "F-3", "0400000002")

		for _, tc := range []struct{ ref, want string }{
			{"F-1", "F-1"}, {" F-1 ", "F-1"}, {"ORD0400000001", "F-1"}, {"0400000001", "F-1"},
		} {
			a, err := s.FindActivation(ctx, tc.ref)
			must(t, err)
			if a.SalesRef != tc.want || a.ID != sub.ID {
				t.Errorf("FindActivation(%q) = %s, want %s", tc.ref, a.SalesRef, tc.want)
			}
		}
		if _, err := s.FindActivation(ctx, "0400000002"); !errors.Is(err, repo.ErrAmbiguous) ||
			!strings.Contains(err.Error(), "F-2, F-3") {
			t.Errorf("a number on two rows: err = %v, want ErrAmbiguous naming F-2, F-3", err)
		}
		for _, ref := range []string{"nope", "", "  "} {
			if _, err := s.FindActivation(ctx, ref); !errors.Is(err, repo.ErrNotFound) {
				t.Errorf("FindActivation(%q) err = %v, want ErrNotFound", ref, err)
			}
		}
	})
}

// RetryCheck follows the error table: no order can exist for a row that
// failed before or at orderCreate or whose order Octane rejected; one may
// exist after reconcile or an accepted order.
func TestRetryCheck(t *testing.T) {
	t.Parallel()
	ok := []repo.Activation{
		{State: repo.StateFailed, LastErrorStep: "addCustomer", LastErrorCode: "transport"},
		{State: repo.StateFailed, LastErrorStep: "simCheck", LastErrorCode: "invalid_sim"},
		{State: repo.StateFailed, LastErrorStep: "reserveResources", LastErrorCode: "E7"},
		{State: repo.StateFailed, LastErrorStep: "selectResource", LastErrorCode: "E8"},
		{State: repo.StateFailed, LastErrorStep: "orderCreate", LastErrorCode: "E9", MSN: "0400"},
		{State: repo.StateFailed, LastErrorStep: "orderCreate", LastErrorCode: "not_sent", MSN: "0400"},
		{State: repo.StateFailed, LastErrorStep: "orderQuery", LastErrorCode: "REJECTED", OrderID: "O1"},
		{State: repo.StateFailed, LastErrorStep: "orderQuery", LastErrorCode: "CANCELLED", OrderID: "O1"},
		{State: repo.StateCancelled, LastErrorStep: "cancel"},
	}
	for _, a := range ok {
		if err := repo.RetryCheck(a); err != nil {
			t.Errorf("%s/%s: %v, want retryable", a.LastErrorStep, a.LastErrorCode, err)
		}
	}
	refused := []struct {
		a          repo.Activation
		needsCheck bool
		says       string
	}{
		{repo.Activation{State: repo.StateFailed, LastErrorStep: "reconcile", LastErrorCode: "review", LastErrorMessage: "number AVAILABLE"}, true, "number AVAILABLE"},
		{repo.Activation{State: repo.StateFailed, LastErrorStep: "getEsimDetails", OrderID: "O2"}, true, "O2"},
		{repo.Activation{State: repo.StateFailed, LastErrorStep: "orderQuery", LastErrorCode: "transport", OrderID: "O3"}, true, "O3"},
		{repo.Activation{State: repo.StateFailed, LastErrorStep: "orderQuery", Adopted: true}, true, "adopted"},
		{repo.Activation{State: repo.StateFailed, LastErrorStep: ""}, true, "unrecorded"},
		{repo.Activation{State: repo.StatePending}, false, "pending"},
		{repo.Activation{State: repo.StateQRReady}, false, "qr_ready"},
	}
	for _, tc := range refused {
		r := refusal(t, repo.RetryCheck(tc.a))
		if r.NeedsCheck != tc.needsCheck || !strings.Contains(r.Reason, tc.says) {
			t.Errorf("%s at %s: refusal %+v, want NeedsCheck %v saying %q", tc.a.State, tc.a.LastErrorStep, r, tc.needsCheck, tc.says)
		}
	}
}

func TestRetry(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "R", 3)
		now := t0.Add(time.Hour)
		a := selectRef(t, s, t0, runID, "R-1", "0400000001")
		must(t, s.BeginOrder(ctx, &a, repo.LockGuard{}, false, t0))
		must(t, s.Fail(ctx, &a, repo.StepOrder, "E42", "plan not allowed", t0))

		got, err := s.Retry(ctx, a, "alice", "plan fixed in Octane", false, now)
		must(t, err)
		if got.State != repo.StatePending || got.Attempts != 0 || got.FirstAttemptAt != nil || got.LastAttemptAt != nil ||
			got.LastErrorStep != "" || got.MSN != "" || got.ReservedAt != nil || got.OrderSentAt != nil ||
			got.ReportedAt != nil || got.Retries != 1 || !got.NextAttemptAt.Equal(now) {
			t.Fatalf("retried row: %+v, want pending with a fresh budget, due now, retries 1", got)
		}
		evs, err := s.Events(ctx, a.ID)
		must(t, err)
		last := evs[len(evs)-1]
		if last.Step != repo.StepRetry || last.Actor != "alice" || last.Message != "plan fixed in Octane" ||
			last.FromState != repo.StateFailed || last.ToState != repo.StatePending || last.Outcome != "retried" || last.Code != "E42" {
			t.Fatalf("retry event %+v", last)
		}
		// The retried row is claimable at once.
		if c := claimRef(t, s, now, runID, "R-1"); c.ID != a.ID {
			t.Fatal("not claimable")
		}

		// A stale read: the row is no longer failed.
		if _, err := s.Retry(ctx, a, "alice", "", false, now); !strings.Contains(refusal(t, err).Reason, "moved") {
			t.Errorf("retry of a stale read: %v", err)
		}

		// Reconcile failures need --force.
		b := selectRef(t, s, t0, runID, "R-2", "0400000002")
		must(t, s.BeginOrder(ctx, &b, repo.LockGuard{}, false, t0))
		must(t, s.Fail(ctx, &b, repo.StepReconcile, "review", "number AVAILABLE: check Octane", t0))
		if r := refusal(t, func() error { _, err := s.Retry(ctx, b, "bob", "", false, now); return err }()); !r.NeedsCheck {
			t.Errorf("reconcile failure refused without NeedsCheck: %+v", r)
		}
		if cur, _ := s.Activation(ctx, b.ID); cur.State != repo.StateFailed {
			t.Fatalf("refused retry changed the row: %s", cur.State)
		}
		forced, err := s.Retry(ctx, b, "bob", "checked Octane: no order for R-2", true, now)
		must(t, err)
		if forced.State != repo.StatePending || forced.Retries != 1 {
			t.Fatalf("forced retry: %+v", forced)
		}
		evs, err = s.Events(ctx, b.ID)
		must(t, err)
		if last := evs[len(evs)-1]; last.Outcome != "forced" || last.Actor != "bob" {
			t.Fatalf("forced retry event %+v", last)
		}
		// --force does not retry what has not ended.
		c, err := s.ActivationByRef(ctx, "R-3")
		must(t, err)
		if r := refusal(t, func() error { _, err := s.Retry(ctx, c, "bob", "", true, now); return err }()); r.NeedsCheck {
			t.Errorf("pending row: %+v", r)
		}
	})
}

// A retried row starts a new life that is reported again: it failed and
// was reported, then is retried and fails again (and another one succeeds);
// both appear in the next report, and each life is in exactly one report.
// Under the old UNIQUE (activation_id) the second report could not hold it.
func TestRetriedRowIsReportedAgain(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "RR", 2)
		a := failAt(t, s, t0, runID, "RR-1", repo.StepReserve, "E1", "no numbers for plan")
		b := failAt(t, s, t0, runID, "RR-2", repo.StepCustomer, "E2", "bad address")
		rep1, err := s.NewReport(ctx, t0.Add(time.Minute), 0)
		must(t, err)
		if rep1.Activations != 2 {
			t.Fatalf("report 1 has %d activations, want 2", rep1.Activations)
		}
		// In a report not delivered yet: refused (a resend rebuilds it).
		_, err = s.Retry(ctx, a, "ops", "", false, t0.Add(2*time.Minute))
		if r := refusal(t, err); !strings.Contains(r.Reason, "report 1") {
			t.Fatalf("retry before delivery: %v", r)
		}
		must(t, s.MarkReportDelivered(ctx, rep1.ID, t0.Add(3*time.Minute)))
		if _, err := s.NewReport(ctx, t0.Add(4*time.Minute), 0); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("a second report before any retry: %v, want ErrNotFound", err)
		}

		now := t0.Add(time.Hour)
		for _, x := range []repo.Activation{a, b} {
			x, err = s.Activation(ctx, x.ID)
			must(t, err)
			_, err := s.Retry(ctx, x, "ops", "fixed", false, now)
			must(t, err)
		}
		// Pending again: nothing to report.
		if _, err := s.NewReport(ctx, now, 0); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("report of pending rows: %v, want ErrNotFound", err)
		}
		failAt(t, s, now, runID, "RR-1", repo.StepReserve, "E1", "still no numbers")
		sub := toSubmitted(t, s, now, runID, "0400000009") // RR-2
		polls, err := s.ClaimPolls(ctx, now.Add(31*time.Minute), now.Add(time.Hour), runID, "cred", 10, lease)
		must(t, err)
		must(t, s.OrderCompleted(ctx, &polls[0], "svc", false, now.Add(31*time.Minute)))
		if polls[0].ID != sub.ID {
			t.Fatal("polled the wrong row")
		}

		rep2, err := s.NewReport(ctx, now.Add(time.Hour), 0)
		must(t, err)
		if rep2.Activations != 2 {
			t.Fatalf("report 2 has %d activations, want both retried rows", rep2.Activations)
		}
		content, err := s.ReportContent(ctx, rep2.ID)
		must(t, err)
		states := map[string]repo.State{}
		for _, x := range content.Activations {
			states[x.SalesRef] = x.State
		}
		if states["RR-1"] != repo.StateFailed || states["RR-2"] != repo.StateProvisioned {
			t.Fatalf("report 2 rows: %v", states)
		}
		must(t, s.MarkReportDelivered(ctx, rep2.ID, now.Add(time.Hour)))
		if _, err := s.NewReport(ctx, now.Add(2*time.Hour), 0); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("a third report: %v, want ErrNotFound", err)
		}
		items, err := s.ActivationReports(ctx, a.ID)
		must(t, err)
		if len(items) != 2 || items[0].Number != 1 || items[0].Retries != 0 || items[1].Number != 2 || items[1].Retries != 1 ||
			items[1].DeliveredAt == nil {
			t.Fatalf("RR-1's reports: %+v, want report 1 (life 0) and report 2 (life 1)", items)
		}
		if cur, _ := s.Activation(ctx, a.ID); cur.ReportedAt == nil {
			t.Fatal("RR-1 not marked reported after report 2")
		}
	})
}

func TestFailedActivations(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "FA", 3)
		failAt(t, s, t0, runID, "FA-1", repo.StepReserve, "E", "x")
		failAt(t, s, t0.Add(2*time.Hour), runID, "FA-2", repo.StepReserve, "E", "x")
		failAt(t, s, t0.Add(2*time.Hour), runID, "FA-3", repo.StepCustomer, "E", "x")
		refs := func(step repo.Step, since time.Time) string {
			got, err := s.FailedActivations(ctx, step, since)
			must(t, err)
			var out []string
			for _, a := range got {
				out = append(out, a.SalesRef)
			}
			return strings.Join(out, ",")
		}
		for _, tc := range []struct {
			step  repo.Step
			since time.Time
			want  string
		}{
			{"", time.Time{}, "FA-1,FA-2,FA-3"},
			{repo.StepReserve, time.Time{}, "FA-1,FA-2"},
			{"", t0.Add(time.Hour), "FA-2,FA-3"},
			{repo.StepReserve, t0.Add(time.Hour), "FA-2"},
			{repo.StepOrder, time.Time{}, ""},
		} {
			if got := refs(tc.step, tc.since); got != tc.want {
				t.Errorf("FailedActivations(%q, %s) = %q, want %q", tc.step, tc.since.Format(time.TimeOnly), got, tc.want)
			}
		}
	})
}

func TestCancel(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "C", 7)
		now := t0.Add(time.Hour)

		pending, err := s.ActivationByRef(ctx, "C-1")
		must(t, err)
		got, err := s.Cancel(ctx, pending, "carol", "customer withdrew", now)
		must(t, err)
		if got.State != repo.StateCancelled || got.LastErrorStep != "cancel" || got.LastErrorMessage != "cancelled by carol: customer withdrew" {
			t.Fatalf("cancelled row: %+v", got)
		}
		evs, err := s.Events(ctx, got.ID)
		must(t, err)
		if last := evs[len(evs)-1]; last.Step != repo.StepCancel || last.Actor != "carol" || last.Message != "customer withdrew" ||
			last.FromState != repo.StatePending || last.ToState != repo.StateCancelled {
			t.Fatalf("cancel event %+v", last)
		}
		// Never claimed again.
		claimed, err := s.ClaimPending(ctx, now, runID, "cred", 100, lease)
		must(t, err)
		for i := range claimed {
			if claimed[i].ID == got.ID {
				t.Fatal("a cancelled row was claimed")
			}
			must(t, s.Unclaim(ctx, &claimed[i]))
		}

		// Selected: cancelled; its number goes back at the release phase
		// once the run that reserved it is over.
		sel := selectRef(t, s, t0, runID, "C-2", "0400000002")
		must(t, s.Unclaim(ctx, &sel))
		_, err = s.Cancel(ctx, sel, "carol", "", now)
		must(t, err)
		must(t, s.FinishRun(ctx, runID, now, "ok", nil, ""))
		next, err := s.StartRun(ctx, now, "cred", []string{"release"}, false)
		must(t, err)
		due, err := s.DueReleases(ctx, now, now.Add(-23*time.Hour), next, "cred", 10)
		must(t, err)
		if len(due) != 1 || due[0].MSN != "0400000002" {
			t.Fatalf("due releases after cancelling a selected row: %+v, want its number", due)
		}
		must(t, s.ReleaseReservation(ctx, "cred", due[0], now))
		if cur, _ := s.ActivationByRef(ctx, "C-2"); cur.State != repo.StateCancelled {
			t.Fatalf("release moved the cancelled row to %s", cur.State)
		}

		// Claimed by a live run: refused, the run wins.
		claimedRow := claimRef(t, s, now, next, "C-3")
		if r := refusal(t, func() error { _, err := s.Cancel(ctx, claimedRow, "carol", "", now); return err }()); !strings.Contains(r.Reason, "working on it") {
			t.Errorf("cancel of a claimed row: %v", r)
		}
		// The same from a read made before the claim: the UPDATE repeats
		// the predicate, so the claim still wins.
		stale, err := s.ActivationByRef(ctx, "C-4")
		must(t, err)
		claimedRow4 := claimRef(t, s, now, next, "C-4")
		if r := refusal(t, func() error { _, err := s.Cancel(ctx, stale, "carol", "", now); return err }()); !strings.Contains(r.Reason, "working on it") {
			t.Errorf("cancel from a read before the claim: %v", r)
		}
		if cur, _ := s.Activation(ctx, claimedRow4.ID); cur.State != repo.StatePending || cur.ClaimToken != claimedRow4.ClaimToken {
			t.Fatalf("refused cancel changed the claimed row: %+v", cur)
		}

		must(t, s.Unclaim(ctx, &claimedRow))
		must(t, s.Unclaim(ctx, &claimedRow4))

		// Past orderCreate, or ended: refused with the reason.
		ordering := selectRef(t, s, now, next, "C-5", "0400000005")
		must(t, s.BeginOrder(ctx, &ordering, repo.LockGuard{}, false, now))
		must(t, s.Unclaim(ctx, &ordering))
		sub := selectRef(t, s, now, next, "C-6", "0400000006")
		must(t, s.BeginOrder(ctx, &sub, repo.LockGuard{}, false, now))
		must(t, s.OrderAccepted(ctx, &sub, "ORD-C6", now, now.Add(30*time.Minute)))
		failed := failAt(t, s, now, next, "C-7", repo.StepReserve, "E", "no numbers")
		cancelled, err := s.ActivationByRef(ctx, "C-1")
		must(t, err)
		for _, tc := range []struct {
			a    repo.Activation
			says string
		}{
			{ordering, "orderCreate was sent"},
			{sub, "ORD-C6 was accepted"},
			{failed, "already ended (failed at reserveResources)"},
			{cancelled, "already cancelled"},
		} {
			_, err := s.Cancel(ctx, tc.a, "carol", "", now)
			if r := refusal(t, err); !strings.Contains(r.Reason, tc.says) {
				t.Errorf("cancel of %s (%s): %q, want it to say %q", tc.a.SalesRef, tc.a.State, r.Reason, tc.says)
			}
			if cur, _ := s.Activation(ctx, tc.a.ID); cur.State != tc.a.State {
				t.Errorf("refused cancel moved %s to %s", tc.a.SalesRef, cur.State)
			}
		}

		// The cancelled rows are in the next report, once.
		rep, err := s.NewReport(ctx, now.Add(time.Minute), 0)
		must(t, err)
		content, err := s.ReportContent(ctx, rep.ID)
		must(t, err)
		var refs []string
		for _, a := range content.Activations {
			refs = append(refs, a.SalesRef+"="+string(a.State))
		}
		if got := strings.Join(refs, ","); got != "C-1=cancelled,C-2=cancelled,C-7=failed" {
			t.Fatalf("report rows %s", got)
		}
		must(t, s.MarkReportDelivered(ctx, rep.ID, now.Add(time.Minute)))
		if _, err := s.NewReport(ctx, now.Add(2*time.Minute), 0); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("second report: %v, want ErrNotFound", err)
		}
		if content.Totals[repo.StateCancelled] != 2 {
			t.Errorf("totals: %v", content.Totals)
		}
	})
}

// Cancel against a concurrent claim: for every row exactly one wins. A
// cancel that succeeded never hands the row to a claim, and a row a claim
// returned is never cancelled.
func TestCancelRacesClaim(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		const n = 60
		runID := seed(t, s, "X", n)
		now := t0.Add(time.Minute)
		rows := make([]repo.Activation, n)
		for i := range rows {
			a, err := s.ActivationByRef(ctx, fmt.Sprintf("X-%d", i+1))
			must(t, err)
			rows[i] = a // read before any claim: the check alone would pass for all
		}
		var (
			wg        sync.WaitGroup
			cancelled = map[int64]bool{}
			claimed   = map[int64]bool{}
			mu        sync.Mutex
			errs      = make(chan error, 2*n)
		)
		// Claims take the oldest rows first, cancels start from the newest:
		// they meet (and contend) in the middle.
		start := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			for i := len(rows) - 1; i >= 0; i-- {
				a := rows[i]
				_, err := s.Cancel(ctx, a, "race", "", now)
				switch {
				case err == nil:
					mu.Lock()
					cancelled[a.ID] = true
					mu.Unlock()
				case !errors.Is(err, repo.ErrRefused):
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			for range n {
				got, err := s.ClaimPending(ctx, now, runID, "cred", 1, lease)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, a := range got {
					claimed[a.ID] = true
				}
				mu.Unlock()
			}
		}()
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for id := range claimed {
			if cancelled[id] {
				t.Errorf("activation %d was both cancelled and claimed", id)
			}
		}
		for _, a := range rows {
			cur, err := s.Activation(ctx, a.ID)
			must(t, err)
			switch {
			case cancelled[a.ID] && cur.State != repo.StateCancelled,
				claimed[a.ID] && (cur.State != repo.StatePending || cur.ClaimToken == ""),
				!cancelled[a.ID] && !claimed[a.ID]:
				t.Errorf("%s: state %s claimed %v cancelled %v", a.SalesRef, cur.State, claimed[a.ID], cancelled[a.ID])
			}
		}
		if len(cancelled) == 0 || len(claimed) == 0 {
			t.Logf("no contention this time: %d cancelled, %d claimed", len(cancelled), len(claimed))
		}
	})
}

// Migration 00006 on a database with data at version 5: rows and reports
// are kept (report_items of life 0), the state check is widened to
// cancelled and still refuses anything else; on SQLite the schema edit is
// closed and the file is sound.
func TestMigration00006(t *testing.T) {
	t.Parallel()
	for _, d := range migrationDialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			s, p, url := migratedTo(t, d, 5)
			db := s.DB()
			exec := func(q string, args ...any) {
				t.Helper()
				_, err := db.ExecContext(ctx, db.Rebind(q), args...)
				must(t, err)
			}
			at := t0.UTC().Format("2006-01-02 15:04:05.000000")
			exec(`INSERT INTO activations (sales_ref, plan_no, state, next_attempt_at, created_at, updated_at, reported_at)
VALUES ('M-1', 1, 'failed', ?, ?, ?, ?)`, at, at, at, at)
			exec(`INSERT INTO activations (sales_ref, plan_no, state, next_attempt_at, created_at, updated_at)
VALUES ('M-2', 1, 'pending', ?, ?, ?)`, at, at, at)
			exec(`INSERT INTO reports (number, created_at, period_from, period_to, delivered_at, activations)
VALUES (1, ?, ?, ?, ?, 1)`, at, at, at, at)
			exec(`INSERT INTO report_items (report_id, activation_id)
SELECT r.id, a.id FROM reports r, activations a WHERE r.number = 1 AND a.sales_ref = 'M-1'`)

			res, err := s.MigrateUp(ctx)
			must(t, err)
			if len(res.Applied) < 1 || res.Applied[0].Version != 6 || res.Applied[0].Source != "00006_operator_actions.sql" {
				t.Fatalf("MigrateUp applied %+v, want 00006 first", res.Applied)
			}
			must(t, s.CheckSchema(ctx))
			if n := count(t, s, `SELECT COUNT(*) FROM report_items i JOIN activations a ON a.id = i.activation_id WHERE a.sales_ref = 'M-1' AND i.retries = 0`); n != 1 {
				t.Fatalf("report item of M-1 after the migration: %d", n)
			}
			if _, err := s.NewReport(ctx, t0.Add(time.Hour), 0); !errors.Is(err, repo.ErrNotFound) {
				t.Fatalf("M-1 reported again after the migration: %v", err)
			}
			m2, err := s.ActivationByRef(ctx, "M-2")
			must(t, err)
			if _, err := s.Cancel(ctx, m2, "ops", "", t0.Add(time.Hour)); err != nil {
				t.Fatalf("cancel after the migration: %v", err)
			}
			if _, err := db.ExecContext(ctx, `UPDATE activations SET state = 'bogus' WHERE sales_ref = 'M-1'`); err == nil {
				t.Fatal("the widened check accepts any state")
			}
			if d.name == "sqlite" {
				var ws int
				must(t, db.GetContext(ctx, &ws, `PRAGMA writable_schema`))
				var ic string
				must(t, db.GetContext(ctx, &ic, `PRAGMA integrity_check`))
				if ws != 0 || ic != "ok" {
					t.Fatalf("writable_schema %d, integrity_check %q", ws, ic)
				}
				// A second connection (another process) sees the new check.
				other, err := repo.Open(ctx, url)
				must(t, err)
				defer other.Close()
				if _, err := other.DB().ExecContext(ctx, `UPDATE activations SET state = 'cancelled' WHERE sales_ref = 'M-1'`); err != nil {
					t.Fatalf("another connection after the migration: %v", err)
				}
			}
			// Down to 5 turns cancelled rows into failed ones and keeps one
			// report per activation; up again works.
			_, err = p.DownTo(ctx, 5)
			must(t, err)
			if n := count(t, s, `SELECT COUNT(*) FROM activations WHERE state = 'failed' AND last_error_step = 'cancel'`); n < 1 {
				t.Fatalf("cancelled rows after down: %d failed at cancel", n)
			}
			must(t, s.Migrate(ctx))
			must(t, s.CheckSchema(ctx))
		})
	}
}

// Migration 00005 gives rows and numbers from before credentials the
// credential of the run that last claimed or reserved them; a row no run
// has claimed stays unowned (an empty credential).
func TestMigration00005Backfill(t *testing.T) {
	t.Parallel()
	for _, d := range migrationDialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			s, p, _ := migratedTo(t, d, 4)
			db := s.DB()
			exec := func(q string, args ...any) {
				t.Helper()
				_, err := db.ExecContext(ctx, db.Rebind(q), args...)
				must(t, err)
			}
			at := t0.UTC().Format("2006-01-02 15:04:05.000000")
			exec(`INSERT INTO runs (id, started_at, credential) VALUES (71, ?, 'u1'), (72, ?, 'u2')`, at, at)
			exec(`INSERT INTO activations (sales_ref, plan_no, state, next_attempt_at, created_at, updated_at, run_id)
VALUES ('B-1', 1, 'submitted', ?, ?, ?, 71), ('B-2', 1, 'selected', ?, ?, ?, 72)`, at, at, at, at, at, at)
			exec(`INSERT INTO activations (sales_ref, plan_no, state, next_attempt_at, created_at, updated_at)
VALUES ('B-3', 1, 'pending', ?, ?, ?)`, at, at, at)
			exec(`INSERT INTO reservations (msn, run_id, reserved_at, state, updated_at) VALUES
('0410000001', 71, ?, 'free', ?), ('0410000002', 72, ?, 'assigned', ?)`, at, at, at, at)

			_, err := p.UpTo(ctx, 5)
			must(t, err)
			owner := func(q, key string) string {
				t.Helper()
				var c string
				must(t, db.GetContext(ctx, &c, db.Rebind(q), key))
				return c
			}
			for ref, want := range map[string]string{"B-1": "u1", "B-2": "u2", "B-3": ""} {
				if got := owner(`SELECT credential FROM activations WHERE sales_ref = ?`, ref); got != want {
					t.Errorf("activation %s owned by %q after 00005, want %q", ref, got, want)
				}
			}
			for msn, want := range map[string]string{"0410000001": "u1", "0410000002": "u2"} {
				if got := owner(`SELECT credential FROM reservations WHERE msn = ?`, msn); got != want {
					t.Errorf("number %s held by %q after 00005, want %q", msn, got, want)
				}
			}
		})
	}
}

// migrationDialect is a dialect a migration test runs on, with goose's name
// for it.
type migrationDialect struct {
	name    string
	url     func(testing.TB) string
	dialect goose.Dialect
}

// migrationDialects are the dialects migration tests run on.
var migrationDialects = []migrationDialect{
	{"postgres", repotest.PostgresURL, goose.DialectPostgres},
	{"sqlite", repotest.SQLiteURL, goose.DialectSQLite3},
}

// migratedTo opens a fresh database of dialect d migrated up to version
// only, and returns the store (closed with t), the goose provider to go on
// with and the database's URL.
func migratedTo(t *testing.T, d migrationDialect, version int64) (*repo.Store, *goose.Provider, string) {
	t.Helper()
	ctx := context.Background()
	url := d.url(t)
	s, err := repo.Open(ctx, url)
	must(t, err)
	t.Cleanup(func() { s.Close() })
	fsys, err := migrations.FS(d.name)
	must(t, err)
	p, err := goose.NewProvider(d.dialect, s.DB().DB, fsys)
	must(t, err)
	_, err = p.UpTo(ctx, version)
	must(t, err)
	return s, p, url
}
