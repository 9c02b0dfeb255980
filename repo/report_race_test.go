package repo_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// openPostgresTwice returns two stores (two pools, as two processes have) on
// one fresh migrated PostgreSQL schema.
func openPostgresTwice(t *testing.T) (*repo.Store, *repo.Store) {
	t.Helper()
	url := repotest.PostgresURL(t)
	ctx := context.Background()
	var out [2]*repo.Store
	for i := range out {
		s, err := repo.Open(ctx, url)
		must(t, err)
		t.Cleanup(func() { s.Close() })
		must(t, s.Migrate(ctx))
		out[i] = s
	}
	return out[0], out[1]
}

// failRows seeds n rows and fails them all (terminal, reportable).
func failRows(t *testing.T, s *repo.Store, prefix string, n int) {
	t.Helper()
	runID := seed(t, s, prefix, n)
	for range n {
		a := claimOne(t, s, t0, runID)
		must(t, s.Fail(context.Background(), &a, "addCustomer", "E1", "no", t0))
	}
}

// A second process calling NewReport while the first one's build is still
// open (not committed) waits its turn, then reports only what the first left,
// or finds nothing: it never fails on the UNIQUE constraints, which would
// fail its report phase, and never puts a row in two reports.
func TestNewReportWaitsForAnotherProcess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		firstTook int // rows the first builder's open report holds, of 5
		wantRows  int // rows the second builder's report must hold (0: ErrNotFound)
	}{
		{"first took every row", 5, 0},
		{"rows turned terminal after the first build", 3, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			first, second := openPostgresTwice(t)
			failRows(t, first, "race", 5)

			// The first process, mid-build: its report and items are written,
			// not committed.
			tx, err := first.DB().BeginTxx(ctx, nil)
			must(t, err)
			defer tx.Rollback()
			var repID int64
			must(t, tx.GetContext(ctx, &repID, `INSERT INTO reports (number, created_at, period_from, period_to)
VALUES (1, $1, $1, $1) RETURNING id`, t0.Add(time.Hour)))
			_, err = tx.ExecContext(ctx, `INSERT INTO report_items (report_id, activation_id)
SELECT $1, id FROM activations ORDER BY id LIMIT $2`, repID, tc.firstTook)
			must(t, err)

			type result struct {
				rep repo.Report
				err error
			}
			done := make(chan result, 1)
			go func() {
				rep, err := second.NewReport(ctx, t0.Add(2*time.Hour), 0)
				done <- result{rep, err}
			}()
			time.Sleep(300 * time.Millisecond) // let the second reach the first's uncommitted rows
			must(t, tx.Commit())
			var got result
			select {
			case got = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the second NewReport never returned")
			}
			if tc.wantRows == 0 {
				if !errors.Is(got.err, repo.ErrNotFound) {
					t.Fatalf("second NewReport = %+v, %v; want ErrNotFound (nothing left)", got.rep, got.err)
				}
			} else {
				if got.err != nil {
					t.Fatalf("second NewReport: %v", got.err)
				}
				if got.rep.Number != 2 || got.rep.Activations != tc.wantRows {
					t.Fatalf("second report = %+v, want number 2 with %d rows", got.rep, tc.wantRows)
				}
			}
			if n := count(t, first, `SELECT COUNT(*) FROM report_items`); n != 5 {
				t.Fatalf("report items = %d, want each of the 5 rows once", n)
			}
		})
	}
}

// Many processes building reports at once: every call returns a report or
// ErrNotFound, and every row is in exactly one report.
func TestNewReportManyProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := repotest.PostgresURL(t)
	stores := make([]*repo.Store, 4)
	for i := range stores {
		s, err := repo.Open(ctx, url)
		must(t, err)
		t.Cleanup(func() { s.Close() })
		must(t, s.Migrate(ctx))
		stores[i] = s
	}
	for round := range 5 {
		failRows(t, stores[0], fmt.Sprintf("many%d", round), 10)
		var wg sync.WaitGroup
		errs := make(chan error, len(stores))
		for _, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.NewReport(ctx, t0.Add(time.Duration(round+1)*time.Hour), 0); err != nil && !errors.Is(err, repo.ErrNotFound) {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: NewReport: %v", round, err)
		}
	}
	if n := count(t, stores[0], `SELECT COUNT(*) FROM report_items`); n != 50 {
		t.Fatalf("report items = %d, want 50", n)
	}
	if n := count(t, stores[0], `SELECT COUNT(DISTINCT number) FROM reports`); n != count(t, stores[0], `SELECT COUNT(*) FROM reports`) {
		t.Fatalf("report numbers repeat")
	}
}

// Two processes marking one report delivered at once: the one that commits
// first wins; the other changes nothing (it used to overwrite delivered_at
// and reported_at with its own, later time after a stale read).
func TestMarkReportDeliveredOnceUnderRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	first, second := openPostgresTwice(t)
	failRows(t, first, "deliv", 3)
	rep, err := first.NewReport(ctx, t0.Add(time.Hour), 0)
	must(t, err)
	firstAt, secondAt := t0.Add(2*time.Hour), t0.Add(3*time.Hour)

	// The first process's delivery, written and not yet committed.
	tx, err := first.DB().BeginTxx(ctx, nil)
	must(t, err)
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `UPDATE reports SET delivered_at = $1 WHERE id = $2`, firstAt, rep.ID)
	must(t, err)
	_, err = tx.ExecContext(ctx, `UPDATE activations SET reported_at = $1
WHERE id IN (SELECT activation_id FROM report_items WHERE report_id = $2)`, firstAt, rep.ID)
	must(t, err)

	done := make(chan error, 1)
	go func() { done <- second.MarkReportDelivered(ctx, rep.ID, secondAt) }()
	time.Sleep(300 * time.Millisecond)
	must(t, tx.Commit())
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("MarkReportDelivered never returned")
	}
	if n := count(t, first, `SELECT COUNT(*) FROM reports WHERE delivered_at = $1`, firstAt); n != 1 {
		t.Fatalf("delivered_at overwritten by the second delivery")
	}
	if n := count(t, first, `SELECT COUNT(*) FROM activations WHERE reported_at = $1`, firstAt); n != 3 {
		t.Fatalf("reported_at of %d rows kept, want 3", n)
	}
}
