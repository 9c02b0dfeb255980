package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/jobs/sales"
	"github.com/esimbatch/esimbatch/repo"
)

// cmdImport is `batch import [--verbose] [--sheet NAME] FILE...`: it loads
// sales files into the store, one transaction per file, and prints one
// summary line per file (with --verbose, each rejected line and its reason).
// It returns nil when every file was read, even with rejected rows; an error
// (exit 1) when a file could not be read or was refused whole, after the
// other files were processed; a configError (exit 2) for bad usage, a
// missing DATABASE_URL or a schema that needs `batch migrate`.
func cmdImport(ctx context.Context, args []string, e env) error {
	fs := newFlags(e, "import", "import [--verbose] [--sheet NAME] FILE...",
		"Validates and loads sales files (CSV, XLSX), one transaction per file, and prints\n"+
			"FILE: accepted N, duplicate N, rejected N, blank N. Exit 1 if a file could not be read.")
	verbose := fs.Bool("verbose", false, "print each rejected line as FILE:LINE: reason")
	sheet := fs.String("sheet", "", "XLSX sheet to read (default: the first sheet)")
	paths, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		fs.printUsage(e.stderr)
		return badConfig("import: no FILE given")
	}
	cfg, err := loadConfig(ctx, e.lookup)
	if err != nil {
		return err
	}
	if strings.TrimSpace(cfg.DatabaseURL) == "" {
		return badConfig("DATABASE_URL: required")
	}
	store, err := repo.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer store.Close()
	if err := checkSchema(ctx, store); err != nil {
		return fmt.Errorf("import: %w", err)
	}

	// Only problems go to the log: the summary lines on stdout are the output.
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if cfg.LogFormat == "json" {
		log = slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	im := jobs.NewImporter(store, log, jobs.ImportOptions{Options: sales.Options{Sheet: *sheet}})
	results, err := im.ImportFiles(ctx, paths, time.Now().Add(cfg.TimeOffset))
	failed := 0
	for _, r := range results {
		fmt.Fprintln(e.stdout, r.Summary())
		if r.Err != nil {
			failed++
		}
		if *verbose {
			for _, rj := range r.Rejects {
				fmt.Fprintf(e.stdout, "%s:%d: %s\n", r.File, rj.Line, rj.Reason)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if failed > 0 {
		return fmt.Errorf("import: %d of %d files not imported", failed, len(paths))
	}
	return nil
}
