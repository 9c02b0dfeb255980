package repo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// NewActivation is one valid sales row to import.
type NewActivation struct {
	Line         int
	SalesRef     string
	GivenNames   string
	Surname      string
	Email        string
	AddressLine1 string
	Suburb       string
	AddrState    string
	Postcode     string
	Notes        string
	CustNo       *int64
	PlanNo       int
	SIMType      string // "esim" (default when empty) or "physical"
	SIMSerial    string
}

// ImportReject is one sales row that was refused, with why.
type ImportReject struct {
	Line   int
	Reason string
	Raw    string
}

// ImportFile describes the file being imported: its name, content hash, and
// how many data rows and blank lines it had.
type ImportFile struct {
	Name     string
	Hash     string
	DataRows int
	Blank    int
}

// ImportResult counts what an import did. Accepted + Duplicate + Rejected
// equals the rows given.
type ImportResult struct {
	ImportID        int64
	AlreadyImported bool
	Accepted        int
	Duplicate       int
	Rejected        int
	Blank           int
}

// importChunkRows is how many rows one multi-row INSERT carries. Measured
// on the 100,000-row benchmark: round trips and per-statement planning
// dominate below a few hundred rows; past about a thousand the gain is flat
// while the statement text and argument slice keep growing.
const importChunkRows = 1000

// maxBindParams caps the parameters of one statement: SQLite's default limit
// (32,766 since 3.32), under PostgreSQL's 65,535, so one chunk size serves both.
const maxBindParams = 32766

// Import loads one file in one transaction: rows become pending activations
// (due now) unless their sales_ref exists (Duplicate, nothing changed);
// rejects are stored with the file name and line. A file whose hash was
// imported before, or is being imported by a concurrent caller that commits
// first, writes nothing and returns AlreadyImported with that import's id and
// zero counts. Errors: the database's, wrapped (nothing written).
func (s *Store) Import(ctx context.Context, f ImportFile, rows []NewActivation, rejects []ImportReject, now time.Time) (ImportResult, error) {
	return s.importChunked(ctx, f, rows, rejects, now, importChunkRows)
}

// importChunked is Import with rows and rejects inserted chunk rows per
// statement (tests lower it to cross chunk boundaries).
func (s *Store) importChunked(ctx context.Context, f ImportFile, rows []NewActivation, rejects []ImportReject, now time.Time, chunk int) (ImportResult, error) {
	var res ImportResult
	err := s.InTx(ctx, func(tx *sqlx.Tx) error {
		// Claim the hash first. A concurrent import of the same content
		// waits here on the unique index (PostgreSQL) or at BEGIN IMMEDIATE
		// (SQLite) until the first commits, then finds the row and writes
		// nothing; if the first rolls back, this one proceeds.
		err := tx.GetContext(ctx, &res.ImportID, s.q(`INSERT INTO imports (file_name, content_hash, imported_at, data_rows, blank)
VALUES (?, ?, ?, ?, ?) ON CONFLICT (content_hash) DO NOTHING RETURNING id`), f.Name, f.Hash, s.t(now), f.DataRows, f.Blank)
		if errors.Is(err, sql.ErrNoRows) {
			var prev int64
			if err := tx.GetContext(ctx, &prev, s.q(`SELECT id FROM imports WHERE content_hash = ?`), f.Hash); err != nil {
				return fmt.Errorf("find earlier import: %w", err)
			}
			res = ImportResult{ImportID: prev, AlreadyImported: true}
			return nil
		}
		if err != nil {
			return fmt.Errorf("record file: %w", err)
		}

		// ON CONFLICT DO NOTHING counts only inserted rows, so each
		// chunk's rows affected are its accepted rows and the rest are
		// duplicates (of earlier files or earlier rows of this one).
		accepted, err := s.insertChunks(ctx, tx, bulkInsert{
			head: `INSERT INTO activations (state, next_attempt_at, import_id, created_at, updated_at, sales_ref, given_names,
surname, email, address_line1, suburb, addr_state, postcode, notes, cust_no, plan_no, sim_type, sim_serial, source_line) VALUES `,
			perRow: 14,
			tail:   ` ON CONFLICT (sales_ref) DO NOTHING`,
			// 1 now, 2 import id: one argument each, not one per row.
			fixed: func(p func(int) string) string { return `'pending', ` + p(1) + `, ` + p(2) + `, ` + p(1) + `, ` + p(1) },
		}, []any{s.t(now), res.ImportID}, len(rows), chunk,
			func(i int, args []any) []any {
				r := &rows[i]
				simType := r.SIMType
				if simType == "" {
					simType = "esim"
				}
				var cust any
				if r.CustNo != nil {
					cust = *r.CustNo
				}
				return append(args, r.SalesRef, r.GivenNames, r.Surname, r.Email, r.AddressLine1, r.Suburb, r.AddrState,
					r.Postcode, r.Notes, cust, int64(r.PlanNo), simType, r.SIMSerial, int64(r.Line))
			},
			func(i int) int { return rows[i].Line })
		if err != nil {
			return fmt.Errorf("insert activations: %w", err)
		}
		res.Accepted = int(accepted)
		res.Duplicate = len(rows) - res.Accepted

		stored, err := s.insertChunks(ctx, tx, bulkInsert{
			head:   `INSERT INTO import_rejects (import_id, file, imported_at, line, reason, raw) VALUES `,
			perRow: 3,
			fixed:  func(p func(int) string) string { return p(1) + `, ` + p(2) + `, ` + p(3) },
		}, []any{res.ImportID, f.Name, s.t(now)}, len(rejects), chunk,
			func(i int, args []any) []any {
				r := &rejects[i]
				return append(args, int64(r.Line), r.Reason, r.Raw)
			},
			func(i int) int { return rejects[i].Line })
		if err != nil {
			return fmt.Errorf("insert rejects: %w", err)
		}
		if int(stored) != len(rejects) {
			return fmt.Errorf("insert rejects: stored %d of %d", stored, len(rejects))
		}
		res.Rejected = len(rejects)
		res.Blank = f.Blank
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE imports SET accepted = ?, duplicate = ?, rejected = ? WHERE id = ?`),
			res.Accepted, res.Duplicate, res.Rejected, res.ImportID); err != nil {
			return fmt.Errorf("record counts: %w", err)
		}
		return nil
	})
	if err != nil {
		return ImportResult{}, fmt.Errorf("repo: import %s: %w", f.Name, err)
	}
	return res, nil
}

// bulkInsert is the shape of a multi-row INSERT: head, then one tuple per
// row of fixed (SQL shared by every row, which may refer to the shared
// parameters through p) followed by perRow parameters, then tail. The shared
// parameters come first in the text so that SQLite numbers the per-row ones
// after them.
type bulkInsert struct {
	head   string
	perRow int
	fixed  func(p func(n int) string) string
	tail   string
}

// sql returns the statement for n rows after shared shared parameters.
func (b bulkInsert) sql(s *Store, shared, n int) string {
	fixed := b.fixed(func(n int) string { return s.param(n, true) })
	var sb strings.Builder
	sb.Grow(len(b.head) + len(b.tail) + n*(b.perRow*7+len(fixed)+4))
	sb.WriteString(b.head)
	next := shared + 1
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		sb.WriteString(fixed)
		for range b.perRow {
			sb.WriteString(", ")
			sb.WriteString(s.param(next, false))
			next++
		}
		sb.WriteByte(')')
	}
	sb.WriteString(b.tail)
	return sb.String()
}

// insertChunks inserts n rows with b, chunk rows per statement (capped by
// maxBindParams), each statement bound to shared and then row(i, args) for
// its rows. It returns the rows affected in total; an error names the
// source lines (line(i)) of the failing chunk.
func (s *Store) insertChunks(ctx context.Context, tx *sqlx.Tx, b bulkInsert, shared []any, n, chunk int,
	row func(i int, args []any) []any, line func(i int) int) (int64, error) {
	if n == 0 {
		return 0, nil
	}
	chunk = max(1, min(chunk, n, (maxBindParams-len(shared))/b.perRow))
	full := b.sql(s, len(shared), chunk) // every chunk but maybe the last
	args := make([]any, 0, len(shared)+chunk*b.perRow)
	var total int64
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		query := full
		if hi-lo != chunk {
			query = b.sql(s, len(shared), hi-lo)
		}
		args = append(args[:0], shared...)
		for i := lo; i < hi; i++ {
			args = row(i, args)
		}
		out, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return 0, fmt.Errorf("lines %d-%d: %w", line(lo), line(hi-1), err)
		}
		k, err := out.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("lines %d-%d: rows affected: %w", line(lo), line(hi-1), err)
		}
		total += k
	}
	return total, nil
}

// ImportedHash reports whether a file with this content hash was imported.
func (s *Store) ImportedHash(ctx context.Context, hash string) (bool, error) {
	var n int
	if err := s.db.GetContext(ctx, &n, s.q(`SELECT COUNT(*) FROM imports WHERE content_hash = ?`), hash); err != nil {
		return false, fmt.Errorf("repo: imported hash: %w", err)
	}
	return n > 0, nil
}
