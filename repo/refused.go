package repo

import (
	"context"
	"fmt"
	"time"
)

// RefusedImport is a sales file the import phase refused whole: it has no
// rows to reject one by one (no header, a required column missing, not
// UTF-8, not a readable workbook, too large). The
// next report lists it once on its Rejected imports sheet, and `batch
// status` lists it (docs/design.md, "Import").
type RefusedImport struct {
	ID          int64      `db:"id"`
	File        string     `db:"file"`         // the file's name in IMPORT_DIR
	ContentHash string     `db:"content_hash"` // sha256 of its content; "" when too large to read
	Reason      string     `db:"reason"`
	MovedTo     string     `db:"moved_to"` // the IMPORT_DIR subfolder it was moved to ("rejected")
	RefusedAt   time.Time  `db:"refused_at"`
	ReportedAt  *time.Time `db:"reported_at"`
}

// refusedColumns lists RefusedImport's columns, each prefixed (a table alias).
func refusedColumns(prefix string) string {
	out := ""
	for i, c := range []string{"id", "file", "content_hash", "reason", "moved_to", "refused_at", "reported_at"} {
		if i > 0 {
			out += ", "
		}
		out += prefix + c
	}
	return out
}

// RecordRefusedImport stores a refused file and reports whether it is new:
// the same file name and content refused again (after a move that failed)
// is recorded, and reported, once.
// Errors: the database's, wrapped.
func (s *Store) RecordRefusedImport(ctx context.Context, f RefusedImport, now time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO refused_imports (file, content_hash, reason, moved_to, refused_at)
VALUES (?, ?, ?, ?, ?) ON CONFLICT (file, content_hash) DO NOTHING`), f.File, f.ContentHash, f.Reason, f.MovedTo, s.t(now))
	if err != nil {
		return false, fmt.Errorf("repo: record refused import %s: %w", f.File, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("repo: record refused import %s: %w", f.File, err)
	}
	return n > 0, nil
}

// RefusedList is the files refused since a time: how many, and the newest
// of them.
type RefusedList struct {
	Count int
	Rows  []RefusedImport // newest first
}

// RefusedImports returns the files refused at or after since: their count
// and the newest limit of them (all when limit <= 0). Errors: the
// database's, wrapped.
func (s *Store) RefusedImports(ctx context.Context, since time.Time, limit int) (RefusedList, error) {
	var l RefusedList
	if err := s.db.GetContext(ctx, &l.Count, s.q(`SELECT COUNT(*) FROM refused_imports WHERE refused_at >= ?`), s.t(since)); err != nil {
		return l, fmt.Errorf("repo: refused imports: %w", err)
	}
	q := `SELECT ` + refusedColumns("") + ` FROM refused_imports WHERE refused_at >= ? ORDER BY refused_at DESC, id DESC`
	args := []any{s.t(since)}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	if err := s.db.SelectContext(ctx, &l.Rows, s.q(q), args...); err != nil {
		return l, fmt.Errorf("repo: refused imports: %w", err)
	}
	return l, nil
}
