package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/esimbatch/esimbatch/repo"
)

// How far back and how many of the files the import phase refused whole
// `batch status` lists.
const (
	refusedStatusWindow = 7 * 24 * time.Hour
	refusedStatusRows   = 10
)

// printRefused lists the files IMPORT_DIR's import refused whole in the last
// seven days before now, newest first: when, the file, whether a report has
// listed it yet, and why.
func printRefused(ctx context.Context, w io.Writer, store *repo.Store, now time.Time) error {
	l, err := store.RefusedImports(ctx, now.Add(-refusedStatusWindow), refusedStatusRows)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	fmt.Fprintf(w, "import files refused in the last 7 days: %d\n", l.Count)
	for _, r := range l.Rows {
		reported := "not yet reported"
		if r.ReportedAt != nil {
			reported = "reported"
		}
		where := "stayed in IMPORT_DIR"
		if r.MovedTo != "" {
			where = "moved to " + r.MovedTo + "/"
		}
		fmt.Fprintf(w, "  %s  %s  %s, %s  %q\n", r.RefusedAt.UTC().Format(time.RFC3339), field(r.File), where, reported, r.Reason)
	}
	if more := l.Count - len(l.Rows); more > 0 && len(l.Rows) > 0 {
		fmt.Fprintf(w, "  ... and %d more\n", more)
	}
	return nil
}
