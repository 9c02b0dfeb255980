package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/reports"
)

// cmdRun is `batch run [--phases ...] [--dry-run]`: one pass, then exit.
func cmdRun(ctx context.Context, args []string, e env) error {
	fs := newFlags(e, "run", "run [--phases import,release,submit,poll,qr,report] [--dry-run]",
		"One pass of the phases, then exit. Exit 0 when the pass completed or reached RUN_DEADLINE\n"+
			"(failed rows are data), 1 on an infrastructure or credential failure, 2 on bad configuration.")
	phasesFlag := fs.String("phases", strings.Join(jobs.AllPhases, ","), "comma-separated phases to run, in pass order")
	dryRun := fs.Bool("dry-run", false, "make every read and selection; no mutating Octane call, no row change")
	if err := fs.parseNone(args); err != nil {
		return err
	}
	phases, err := jobs.ParsePhases(*phasesFlag)
	if err != nil {
		return badConfig("--phases: %w", err)
	}
	cfg, err := loadConfig(ctx, e.lookup)
	if err != nil {
		return err
	}
	if err := cfg.requireOctane(); err != nil {
		return err
	}
	log := newLogger(cfg, e.stderr)
	log.Info("batch run", "config", cfg, "phases", strings.Join(phases, ","), "dry_run", *dryRun)

	w, err := wire(ctx, cfg, log, *dryRun, nil)
	if err != nil {
		return err
	}
	defer w.store.Close()
	start := time.Now()
	res, err := w.runner.Pass(ctx, phases)
	if res.Skipped {
		fmt.Fprintln(e.stdout, "another run holds the lock; nothing done")
		return nil
	}
	pushRun(ctx, cfg, log, w, phases, *dryRun, start, res, err)
	printResult(e.stdout, res, *dryRun)
	if err != nil {
		return fmt.Errorf("batch run: %w", err)
	}
	return nil
}

// newLogger builds the process logger (JSON in production, text on request).
//
// Durations are written as Go duration strings ("1.5s"), never as the
// nanosecond integers slog's JSON handler writes by default.
func newLogger(cfg *config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{ReplaceAttr: durationsAsText}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// durationsAsText rewrites a duration attribute as its string form.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// wired is what a command that runs passes needs.
type wired struct {
	store  *repo.Store
	client *octane.Client
	runner *jobs.Runner
	now    func() time.Time
	clock  *repo.DBClock // the database's clock, synced at every pass start
}

// wire opens the store, checks its schema, builds the client (every call
// recorded in the call log before it is sent, except in a dry run, which
// writes nothing) and the runner. At the start of every pass, under the run
// lock, the runner syncs the clock with the database's and gives the
// limiter the credential's calls of the last hour from the call log, so a
// pass starts from what every process on the credential spent. clock nil:
// the database's clock shifted by BATCH_TIME_OFFSET. Errors: configError
// for a schema that needs `batch migrate` or a bad client setting, plain
// errors otherwise.
func wire(ctx context.Context, cfg *config, log *slog.Logger, dryRun bool, clock func() time.Time, opts ...octane.Option) (*wired, error) {
	if dir := strings.TrimSpace(cfg.ImportDir); dir != "" {
		// A missing folder would fail every pass at its first phase: say so
		// once, as configuration, before anything runs.
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, badConfig("IMPORT_DIR: %q is not a readable folder", dir)
		}
	}
	store, err := repo.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := checkSchema(ctx, store); err != nil {
		store.Close()
		return nil, err
	}
	// Claims, poll slots and the call log are compared across processes:
	// one clock for all of them, the database's.
	dbClock := repo.NewDBClock(store, time.Now, cfg.TimeOffset)
	if err := dbClock.Sync(ctx); err != nil {
		store.Close()
		return nil, fmt.Errorf("sync clock: %w", err)
	}
	if clock == nil {
		clock = dbClock.Now
	}
	cred := cfg.Octane.Username
	copts := []octane.Option{
		octane.WithGroupNo(cfg.Octane.GroupNo),
		octane.WithLogger(log),
	}
	if dryRun {
		copts = append(copts, octane.WithReadOnly())
	} else {
		copts = append(copts, octane.WithCallRecorder(jobs.CallRecorder(store, cred, log, jobs.WithDBOffset(dbClock.Offset))))
	}
	client, err := octane.New(cfg.Octane.SOAPURL, cfg.Octane.RESTURL, cred, cfg.Octane.Password.Reveal(), append(copts, opts...)...)
	if err != nil {
		store.Close()
		return nil, badConfig("octane client: %w", err)
	}
	syncClock := func(ctx context.Context) error {
		if err := dbClock.Sync(ctx); err != nil {
			return err
		}
		off := dbClock.Offset()
		_, rtt := dbClock.LastSync()
		lvl := slog.LevelDebug
		if off > time.Second || off < -time.Second {
			lvl = slog.LevelWarn
		}
		log.Log(ctx, lvl, "database clock", "offset_ms", off.Milliseconds(), "rtt_ms", rtt.Milliseconds())
		return nil
	}
	runner := jobs.NewRunner(store, client, jobs.Config{
		Credential:      cred,
		BatchSize:       cfg.BatchSize,
		MaxSubmitPerRun: cfg.MaxSubmitPerRun,
		ReserveBatch:    cfg.ReserveBatch,
		QRByEmail:       cfg.Octane.QRByEmail,
		PollInterval:    cfg.PollInterval,
		ReleaseAfter:    cfg.ReleaseAfter,
		RunDeadline:     cfg.RunDeadline,
		DryRun:          dryRun,
	}, jobs.WithClock(clock), jobs.WithLogger(log),
		jobs.WithPassStart(syncClock),
		jobs.WithPassStart(jobs.SeedLimiter(store, client, cred, dbClock.Offset)),
		jobs.WithImport(importPhase(cfg, store, log)),
		jobs.WithReport(jobs.NewReporter(store, log, reportOptions(cfg)).Phase))
	return &wired{store: store, client: client, runner: runner, now: clock, clock: dbClock}, nil
}

// importPhase picks up IMPORT_DIR; without it the phase only says it has
// nothing to read (sales files then come through `batch import`).
func importPhase(cfg *config, store *repo.Store, log *slog.Logger) jobs.PhaseFunc {
	if strings.TrimSpace(cfg.ImportDir) == "" {
		return func(ctx context.Context, _ time.Time) (map[string]int, error) {
			log.InfoContext(ctx, "import phase skipped: IMPORT_DIR is not set")
			return map[string]int{"skipped": 1}, nil
		}
	}
	return jobs.NewImporter(store, log, jobs.ImportOptions{}).DirPhase(cfg.ImportDir)
}

// reportOptions maps REPORT_* and SMTP_* to the report phase: without
// SMTP_HOST each report is written as a .eml file under REPORT_DIR (which
// counts as delivered); with it, TLS is required unless the host is
// loopback (reports.Mailer decides).
func reportOptions(cfg *config) jobs.ReportOptions {
	o := jobs.ReportOptions{
		Dir:       cfg.Report.Dir,
		Password:  cfg.Report.Password.Reveal(),
		From:      cfg.SMTP.From,
		To:        cfg.Report.To,
		SendEmpty: cfg.Report.SendEmpty,
	}
	if strings.TrimSpace(cfg.SMTP.Host) != "" {
		o.SMTP = &reports.SMTPConfig{
			Host:     cfg.SMTP.Host,
			Port:     cfg.SMTP.Port,
			Username: cfg.SMTP.Username,
			Password: cfg.SMTP.Password.Reveal(),
		}
	}
	return o
}

// checkSchema refuses a database whose schema does not match this binary:
// a configError (exit 2: a retry cannot help) telling the operator to run
// `batch migrate`, or a plain error when the database cannot be read.
func checkSchema(ctx context.Context, store *repo.Store) error {
	err := store.CheckSchema(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, repo.ErrSchemaBehind): // its text says to run `batch migrate`
		return badConfig("database schema: %w", err)
	case errors.Is(err, repo.ErrSchemaAhead):
		return badConfig("database schema: %w: deploy the binary that migrated it", err)
	default:
		return fmt.Errorf("check schema: %w", err)
	}
}

// printResult writes a pass's counts, one per line, sorted.
func printResult(w io.Writer, res jobs.Result, dryRun bool) {
	switch {
	case dryRun:
		fmt.Fprintf(w, "run %d (dry run: no order placed, no row changed; counts are what a run would start with)\n", res.RunID)
	case res.Cancelled:
		fmt.Fprintf(w, "run %d (stopped before the end; the next run picks up)\n", res.RunID)
	case res.DeadlineReached:
		left := 0
		for _, n := range res.Left {
			left += n
		}
		fmt.Fprintf(w, "run %d (reached RUN_DEADLINE with %d activations still in progress; the next run picks up)\n", res.RunID, left)
	default:
		fmt.Fprintf(w, "run %d\n", res.RunID)
	}
	keys := make([]string, 0, len(res.Counts))
	for k := range res.Counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-32s %d\n", k, res.Counts[k])
	}
	if res.SubmitStopped != "" {
		fmt.Fprintf(w, "submitting stopped: %s\n", res.SubmitStopped)
	}
}
