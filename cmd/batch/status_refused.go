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
func printRefused(w io.Writer, l repo.RefusedList) {
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
}

// recentRefused reads the refused files status lists.
func recentRefused(ctx context.Context, store *repo.Store, now time.Time) (repo.RefusedList, error) {
	l, err := store.RefusedImports(ctx, now.Add(-refusedStatusWindow), refusedStatusRows)
	if err != nil {
		return l, fmt.Errorf("status: %w", err)
	}
	return l, nil
}

// refusedDoc is the JSON of the refused files status lists.
type refusedDoc struct {
	// Count is every file refused in the last 7 days; Files the newest 10.
	Count int              `json:"count"`
	Files []refusedFileDoc `json:"files"`
}

type refusedFileDoc struct {
	File       string     `json:"file"`
	Reason     string     `json:"reason"`
	MovedTo    string     `json:"moved_to"` // "" when the file stayed in IMPORT_DIR
	RefusedAt  time.Time  `json:"refused_at"`
	ReportedAt *time.Time `json:"reported_at"` // null until a report listed it
}

func refusedJSON(l repo.RefusedList) refusedDoc {
	d := refusedDoc{Count: l.Count, Files: []refusedFileDoc{}}
	for _, r := range l.Rows {
		d.Files = append(d.Files, refusedFileDoc{File: r.File, Reason: r.Reason, MovedTo: r.MovedTo,
			RefusedAt: r.RefusedAt.UTC(), ReportedAt: utcPtr(r.ReportedAt)})
	}
	return d
}
