package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// Compressed Octane windows for the budget tests, and a reserveResources
// budget small enough that two processes exhaust its hour quickly.
const (
	budgetMinute = 250 * time.Millisecond
	budgetHour   = 2 * time.Second
)

func budgetLimits() map[string]octane.Limit {
	l := octane.DefaultLimits()
	l[octane.MethodReserveResources] = octane.Limit{PerMinute: 4, PerHour: 12}
	return l
}

// budgetEnv is one database (the dialect's), one simulator with compressed
// windows, n eSIM activations pending, and the variables a process on them
// reads.
func budgetEnv(t *testing.T, url string, n int, extra map[string]string) (map[string]string, *repo.Store, *octanetest.Server) {
	t.Helper()
	ctx := context.Background()
	store, err := repo.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cred := fmt.Sprintf("budget-%d", time.Now().UnixNano())
	sim := octanetest.New(octanetest.Config{Username: cred, Password: "pw", MinuteWindow: budgetMinute,
		HourWindow: budgetHour, Limits: budgetLimits(), OrderLatency: time.Hour})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	rows := make([]repo.NewActivation, n)
	for i := range rows {
		rows[i] = repo.NewActivation{Line: i + 2, SalesRef: fmt.Sprintf("B-%03d", i), GivenNames: "Ada",
			Surname: "Budget", Email: fmt.Sprintf("b%d@example.com", i), PlanNo: 1001, SIMType: "esim"}
	}
	if _, err := store.Import(ctx, repo.ImportFile{Name: "b.csv", Hash: cred, DataRows: n}, rows, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"DATABASE_URL": url, "OCTANE_SOAP_URL": srv.URL + "/tiab", "OCTANE_REST_URL": srv.URL + "/tiab/api",
		"OCTANE_USERNAME": cred, "OCTANE_PASSWORD": "pw", "OCTANE_GROUP_NO": "3", "LOG_FORMAT": "text",
		"REPORT_DIR": t.TempDir(), "RESERVE_BATCH": "1", "BATCH_SIZE": "5", "MAX_SUBMIT_PER_RUN": "5",
		"RUN_DEADLINE": "1m",
	}
	for k, v := range extra {
		vars[k] = v
	}
	return vars, store, sim
}

// process wires one `batch` process on vars, as `batch schedule` or a
// `batch run` would, with the compressed windows and budget.
func process(t *testing.T, vars map[string]string, dryRun bool) *wired {
	t.Helper()
	cfg, err := loadConfig(context.Background(), lookupMap(vars))
	if err != nil {
		t.Fatal(err)
	}
	w, err := wire(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), dryRun, nil,
		octane.WithWindows(budgetMinute, budgetHour), octane.WithLimits(budgetLimits()),
		octane.WithRetries(3, 2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.store.Close() })
	return w
}

func faults233(sim *octanetest.Server) []octanetest.LedgerEntry {
	var out []octanetest.LedgerEntry
	for _, l := range sim.Ledger() {
		if l.Outcome == octanetest.OutcomeFault && l.Code == octane.FaultCodeRateLimited {
			out = append(out, l)
		}
	}
	return out
}

func eachURL(t *testing.T, fn func(t *testing.T, url string)) {
	for _, d := range []struct {
		name string
		url  func(testing.TB) string
	}{{repo.DialectPostgres, repotest.PostgresURL}, {repo.DialectSQLite, repotest.SQLiteURL}} {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			fn(t, d.url(t))
		})
	}
}

// Two processes on one credential, both started before either spent
// anything (a `batch schedule` pod and a manual `batch run`, or two pods),
// take turns: each pass must start from the budget the other spent, or
// Octane answers fault 233. 20 reserveResources calls against 12 an hour
// need the second hour, so the limiters must wait for it.
func TestTwoProcessesShareTheBudget(t *testing.T) {
	t.Parallel()
	eachURL(t, func(t *testing.T, url string) {
		vars, store, sim := budgetEnv(t, url, 20, nil)
		p1, p2 := process(t, vars, false), process(t, vars, false)
		ctx := context.Background()
		for i, p := range []*wired{p1, p2, p1, p2} {
			res, err := p.runner.Pass(ctx, []string{"submit"})
			if err != nil || res.Skipped {
				t.Fatalf("pass %d: %v (skipped %v)", i, err, res.Skipped)
			}
			if res.Counts["submit.ordered"] != 5 {
				t.Fatalf("pass %d ordered %d, want 5: %v", i, res.Counts["submit.ordered"], res.Counts)
			}
		}
		if f := faults233(sim); len(f) != 0 {
			t.Fatalf("%d faults 233 on one credential: %+v", len(f), f)
		}
		reserves := 0
		for _, l := range sim.Ledger() {
			if l.Method == octane.MethodReserveResources && l.Outcome == octanetest.OutcomeOK {
				reserves++
			}
		}
		if reserves != 20 {
			t.Fatalf("%d reserveResources answered, want 20 (the test must overrun one hour's 12)", reserves)
		}
		calls, err := store.RecentCalls(ctx, vars["OCTANE_USERNAME"], time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(calls[octane.MethodReserveResources]); n != 20 {
			t.Errorf("call log holds %d reserveResources, want 20", n)
		}
	})
}

// A dry run changes nothing: the Octane calls it makes (the credential
// check, reads) go to the log lines, not to the call log or the events.
func TestDryRunRecordsNoCall(t *testing.T) {
	t.Parallel()
	eachURL(t, func(t *testing.T, url string) {
		vars, store, sim := budgetEnv(t, url, 3, nil)
		w := process(t, vars, true)
		ctx := context.Background()
		if _, err := w.runner.Pass(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if len(sim.Ledger()) == 0 {
			t.Fatal("the dry run made no Octane call: the test proves nothing")
		}
		for _, table := range []string{"calls", "events"} {
			var n int
			if err := store.DB().GetContext(ctx, &n, `SELECT COUNT(*) FROM `+table); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("a dry run wrote %d rows to %s", n, table)
			}
		}
	})
}

// wire's runner syncs the clock with the database at the start of every
// pass (a clock can drift, a pod can move) and runs on it shifted by
// BATCH_TIME_OFFSET.
func TestWireSyncsTheClockEveryPass(t *testing.T) {
	t.Parallel()
	eachURL(t, func(t *testing.T, url string) {
		vars, store, _ := budgetEnv(t, url, 1, map[string]string{"BATCH_TIME_OFFSET": "2h"})
		w := process(t, vars, false)
		ctx := context.Background()
		last, _ := w.clock.LastSync()
		if last.IsZero() {
			t.Fatal("wire did not sync the clock")
		}
		for i := range 2 {
			if _, err := w.runner.Pass(ctx, []string{"poll"}); err != nil {
				t.Fatal(err)
			}
			at, _ := w.clock.LastSync()
			if !at.After(last) {
				t.Fatalf("pass %d did not sync the clock (last sync %s, before %s)", i, at, last)
			}
			last = at
		}
		runs, err := store.Runs(ctx, 1)
		if err != nil || len(runs) != 1 {
			t.Fatalf("runs %v, %v", runs, err)
		}
		if d := runs[0].StartedAt.Sub(time.Now()); d < 2*time.Hour-time.Minute || d > 2*time.Hour {
			t.Errorf("the pass started %v from now, want BATCH_TIME_OFFSET's 2h ahead", d)
		}
	})
}
