package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/jobs/sales"
	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/reports"
)

// demoSales is the bundled sample: 50 good rows (a few of which the
// simulator refuses) and 2 rows the importer rejects.
//
//go:embed testdata/sample-sales.csv
var demoSales []byte

// demoMaxPasses bounds the demo: the sample settles in well under it.
const demoMaxPasses = 20

// Demo fixtures the simulator must know: the one physical SIM in stock and
// the customers that already exist.
var (
	demoSIMs      = []string{"8961010000000000011"}
	demoCustomers = []int64{500010, 500020, 500030, 500040, 500050}
)

// simClock is a business clock moved by hand, shared by the job and the
// simulator.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *simClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// cmdDemo is `batch demo [--out DIR] [-v]`: the whole pipeline on an
// embedded SQLite store, the simulator on a loopback port and a simulated
// clock. The sample goes through the real importer, passes run until every
// activation is terminal, then one report pass writes the workbook and its
// .eml into the folder; the command prints the counts and the paths.
// Errors: configError for bad flags or a folder that already holds a demo
// database; plain errors otherwise.
func cmdDemo(ctx context.Context, args []string, e env) error {
	fs := newFlags(e, "demo", "demo [--out DIR] [-v]",
		"The whole pipeline embedded: SQLite, the Octane simulator on loopback, a bundled sample and a\n"+
			"simulated clock; prints where the workbook and its email went.")
	out := fs.String("out", "", "folder for the database, sample, workbook and email (a new temporary folder when empty)")
	verbose := fs.Bool("v", false, "log every phase")
	if err := fs.parseNone(args); err != nil {
		return err
	}
	dir := *out
	if dir == "" {
		d, err := os.MkdirTemp("", "esimbatch-demo-")
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	res, err := runDemo(ctx, dir, demoStart(time.Now()), log)
	if err != nil {
		return err
	}
	w := e.stdout
	fmt.Fprintf(w, "demo: %d activations, %d passes over %s of simulated time (%s wall)\n",
		res.total, res.passes, res.simulated.Round(time.Minute), res.wall.Round(time.Millisecond))
	fmt.Fprintf(w, "import: %s\n", res.imported.Summary())
	for _, s := range repo.States() {
		if n := res.counts[s]; n > 0 {
			fmt.Fprintf(w, "  %-12s %d\n", s, n)
		}
	}
	fmt.Fprintf(w, "octane orders: %d accepted\n", res.orders)
	printDemoFailures(w, res)
	fmt.Fprintf(w, "reported: %d activations and %d rejected rows in %d report(s)\n",
		res.report.Activations, res.report.Rejects, res.report.Reports)
	for _, f := range res.report.Files {
		label := "workbook:"
		if filepath.Ext(f) == ".eml" {
			label = "email:   "
		}
		fmt.Fprintf(w, "%s %s\n", label, f)
	}
	fmt.Fprintf(w, "database: %s\n", res.db)
	return nil
}

type demoResult struct {
	total, passes, orders int
	counts                map[repo.State]int
	imported              jobs.FileResult
	failures              []reports.FailureRow // the failed rows, in the sample's order, as the Failures sheet shows them
	report                jobs.ReportResult
	simulated, wall       time.Duration
	db                    string
}

// demoStart is where the demo's simulated clock starts, so that its report
// carries today's date (UTC) like a real one: twelve hours before now, or
// midnight when that was yesterday. The demo's passes span well under
// twelve hours of simulated time (at most demoMaxPasses x 31 minutes), so
// they end today and, after midday, before now.
func demoStart(now time.Time) time.Time {
	now = now.UTC()
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	start := now.Add(-12 * time.Hour).Truncate(time.Minute)
	if start.Before(midnight) {
		return midnight
	}
	return start
}

// printDemoFailures lists the rows that failed, each with its step, our
// reason, Octane's code and message when it answered, and what to do; then
// the sample lines the import rejected.
func printDemoFailures(w io.Writer, res demoResult) {
	fmt.Fprintf(w, "failed: %d\n", len(res.failures))
	for _, f := range res.failures {
		fmt.Fprintf(w, "  %s at %s: %s", f.SalesRef, f.Step, f.Reason)
		if f.Code != "" || f.Message != "" {
			fmt.Fprintf(w, " (Octane %s: %s)", f.Code, f.Message)
		}
		fmt.Fprintf(w, "\n    what to do: %s\n", f.Advice)
	}
	fmt.Fprintf(w, "rejected on import: %d\n", len(res.imported.Rejects))
	for _, r := range res.imported.Rejects {
		fmt.Fprintf(w, "  line %d: %s\n", r.Line, r.Reason)
	}
}

// runDemo writes the sample into dir, imports it, runs passes from start
// (on a simulated clock) until every activation is terminal, then a report
// pass.
func runDemo(ctx context.Context, dir string, start time.Time, log *slog.Logger) (demoResult, error) {
	wall := time.Now()
	clock := &simClock{t: start}
	res := demoResult{db: filepath.Join(dir, "esimbatch.db")}

	// A second demo in the same folder would find its sample already
	// imported and its rows reported: refuse rather than mislead.
	if _, err := os.Stat(res.db); err == nil {
		return res, badConfig("demo: %s already holds a demo database; give --out a new or empty folder", dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("demo: %w", err)
	}
	sample := filepath.Join(dir, "sample-sales.csv")
	if err := os.WriteFile(sample, demoSales, 0o644); err != nil {
		return res, fmt.Errorf("demo: write sample: %w", err)
	}

	store, err := repo.Open(ctx, res.db)
	if err != nil {
		return res, fmt.Errorf("demo: open store: %w", err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return res, fmt.Errorf("demo: migrate: %w", err)
	}

	sim := octanetest.New(octanetest.Config{
		Username: "demo", Password: "demo", Now: clock.Now,
		PhysicalSIMs: demoSIMs, Customers: demoCustomers, OrderLatency: 5 * time.Minute,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, fmt.Errorf("demo: listen: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String() + "/tiab"

	results, err := jobs.NewImporter(store, log, jobs.ImportOptions{}).ImportFiles(ctx, []string{sample}, clock.Now())
	if err != nil {
		return res, fmt.Errorf("demo: %w", err)
	}
	if len(results) != 1 || results[0].Err != nil {
		return res, fmt.Errorf("demo: sample not imported: %v", results)
	}
	res.imported = results[0]
	res.total = res.imported.Accepted

	client, err := octane.New(base, base+"/api", "demo", "demo",
		octane.WithGroupNo(1), octane.WithLogger(log), octane.WithCallRecorder(jobs.CallRecorder(store, "demo", log)))
	if err != nil {
		return res, fmt.Errorf("demo: client: %w", err)
	}
	reporter := jobs.NewReporter(store, log, jobs.ReportOptions{Dir: dir})
	reportPhase := func(ctx context.Context, now time.Time) (map[string]int, error) {
		r, err := reporter.Run(ctx, now)
		res.report.Reports += r.Reports
		res.report.Resent += r.Resent
		res.report.Activations += r.Activations
		res.report.Rejects += r.Rejects
		res.report.Files = append(res.report.Files, r.Files...)
		return map[string]int{"reports": r.Reports, "reported_activations": r.Activations, "reported_rejects": r.Rejects}, err
	}
	runner := jobs.NewRunner(store, client, jobs.Config{
		Credential: "demo", BatchSize: 25, MaxSubmitPerRun: 2000, ReserveBatch: 5,
		PollInterval: 30 * time.Minute, ReleaseAfter: 23 * time.Hour, RunDeadline: time.Minute,
	}, jobs.WithClock(clock.Now), jobs.WithLogger(log), jobs.WithReport(reportPhase))

	work := []string{jobs.PhaseRelease, jobs.PhaseSubmit, jobs.PhasePoll, jobs.PhaseQR}
	for {
		if res.passes == demoMaxPasses {
			return res, fmt.Errorf("demo: activations still open after %d passes: %v", res.passes, res.counts)
		}
		if _, err := runner.Pass(ctx, work); err != nil {
			return res, fmt.Errorf("demo: pass %d: %w", res.passes+1, err)
		}
		res.passes++
		st, err := store.Status(ctx, clock.Now(), clock.Now().Add(-23*time.Hour))
		if err != nil {
			return res, fmt.Errorf("demo: status: %w", err)
		}
		res.counts = st.Counts
		open := 0
		for s, n := range st.Counts {
			if !s.Terminal() {
				open += n
			}
		}
		if open == 0 {
			break
		}
		clock.Advance(31 * time.Minute)
	}
	// Every activation is terminal: one report pass puts them all, and the
	// rejected sample rows, in one workbook and one email.
	if _, err := runner.Pass(ctx, []string{jobs.PhaseReport}); err != nil {
		return res, fmt.Errorf("demo: report pass: %w", err)
	}
	res.passes++
	if res.report.Activations != res.total || res.report.Rejects != res.imported.Rejected {
		return res, fmt.Errorf("demo: reported %d of %d activations and %d of %d rejected rows",
			res.report.Activations, res.total, res.report.Rejects, res.imported.Rejected)
	}
	if res.failures, err = demoFailures(ctx, store); err != nil {
		return res, err
	}
	res.orders = len(sim.Orders())
	res.simulated = clock.Now().Sub(start)
	res.wall = time.Since(wall)
	return res, nil
}

// demoFailures reads the sample's failed rows back from the store, in the
// sample's order.
func demoFailures(ctx context.Context, store *repo.Store) ([]reports.FailureRow, error) {
	f, err := sales.Read(bytes.NewReader(demoSales), "sample-sales.csv", sales.Options{})
	if err != nil {
		return nil, fmt.Errorf("demo: read sample: %w", err)
	}
	var out []reports.FailureRow
	for _, r := range f.Rows {
		a, err := store.ActivationByRef(ctx, r.SalesRef)
		if err != nil {
			return nil, fmt.Errorf("demo: %s: %w", r.SalesRef, err)
		}
		if a.State == repo.StateFailed {
			out = append(out, jobs.FailureRow(a))
		}
	}
	return out, nil
}
