package repo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
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

// importChunkRows is how many rows one INSERT carries. Measured on the
// 100,000-row benchmark: below a few hundred, round trips and per-statement
// work dominate; above about a thousand SQLite gets slower (a longer
// statement to compile) and PostgreSQL no faster.
const importChunkRows = 1000

// maxBindParams caps the parameters of one SQLite statement (its default
// limit since 3.32). PostgreSQL binds a chunk as a few arrays, far below its
// 65,535.
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

// activationInsert is Import's bulk INSERT of rows; its shared arguments
// are now and the import id.
func activationInsert() bulkInsert {
	return bulkInsert{
		table:     "activations",
		fixedCols: "state, next_attempt_at, import_id, created_at, updated_at",
		fixed:     func(p func(int) string) string { return "'pending', " + p(1) + ", " + p(2) + ", " + p(1) + ", " + p(1) },
		cols: []string{"sales_ref", "given_names", "surname", "email", "address_line1", "suburb", "addr_state",
			"postcode", "notes", "cust_no", "plan_no", "sim_type", "sim_serial", "source_line"},
		types: []string{"text", "text", "text", "text", "text", "text", "text",
			"text", "text", "bigint", "integer", "text", "text", "integer"},
		tail: " ON CONFLICT (sales_ref) DO NOTHING",
	}
}

// rejectInsert is Import's bulk INSERT of rejects; its shared arguments are
// the import id, the file name and now.
func rejectInsert() bulkInsert {
	return bulkInsert{
		table:     "import_rejects",
		fixedCols: "import_id, file, imported_at",
		fixed:     func(p func(int) string) string { return p(1) + ", " + p(2) + ", " + p(3) },
		cols:      []string{"line", "reason", "raw"},
		types:     []string{"integer", "text", "text"},
	}
}

// importChunked is Import with chunk rows per INSERT (tests lower it to
// cross chunk boundaries).
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

		// ON CONFLICT DO NOTHING counts only inserted rows, so the rows
		// affected are the accepted rows and the rest are duplicates (of
		// earlier files or of earlier rows of this one).
		accepted, err := s.insertChunks(ctx, tx, activationInsert(), []any{s.t(now), res.ImportID}, len(rows), chunk,
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

		stored, err := s.insertChunks(ctx, tx, rejectInsert(), []any{res.ImportID, f.Name, s.t(now)}, len(rejects), chunk,
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

// bulkInsert is an INSERT of many rows into table that share some values:
// fixedCols get fixed, the same SQL for every row, in which p(k) stands for
// the k-th shared argument (bound once per statement); cols (of PostgreSQL
// types types) get each row's own arguments.
type bulkInsert struct {
	table     string
	fixedCols string
	fixed     func(p func(k int) string) string
	cols      []string
	types     []string
	tail      string
}

// sql and args build the INSERT of n rows and its arguments from shared and
// perRow (n rows of len(b.cols) values, row after row). This is where the
// dialects differ:
//   - PostgreSQL binds one array per column and reads the rows back with
//     unnest(): a handful of parameters whatever n is, and about 2.5 times
//     the rows per second of a multi-row VALUES, whose thousands of
//     parameters the server parses and binds one by one;
//   - SQLite, which has no arrays, gets VALUES (...), (...) with a bare ? per
//     value, limited to maxBindParams. SQLite numbers a bare ? one past the
//     highest so far, and the shared ?k come first in the text; numbering
//     every parameter made compiling quadratic (each ?k is a linear search).
func (b bulkInsert) sql(s *Store, shared, n int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "INSERT INTO %s (%s, %s) ", b.table, b.fixedCols, strings.Join(b.cols, ", "))
	if s.dialect == DialectPostgres {
		fmt.Fprintf(&sb, "SELECT %s, u.* FROM unnest(", b.fixed(func(k int) string { return "$" + strconv.Itoa(k) }))
		for c, typ := range b.types {
			if c > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "$%d::%s[]", shared+c+1, typ)
		}
		sb.WriteString(") AS u")
	} else {
		fixed := b.fixed(func(k int) string { return "?" + strconv.Itoa(k) })
		tuple := "(" + fixed + strings.Repeat(", ?", len(b.cols)) + ")"
		sb.Grow(n*(len(tuple)+2) + len(b.tail) + 7)
		sb.WriteString("VALUES ")
		for i := range n {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(tuple)
		}
	}
	sb.WriteString(b.tail)
	return sb.String()
}

// args appends to buf[:0] the arguments of sql's statement.
func (b bulkInsert) args(s *Store, buf, shared, perRow []any) []any {
	buf = append(buf[:0], shared...)
	if s.dialect != DialectPostgres {
		return append(buf, perRow...)
	}
	n := len(perRow) / len(b.cols)
	for c := range b.cols {
		col := make([]any, n)
		for i := range col {
			col[i] = perRow[i*len(b.cols)+c]
		}
		buf = append(buf, pq.Array(col))
	}
	return buf
}

// insertChunks inserts n rows with b, chunk rows per statement (at most
// maxBindParams parameters), row(i, args) appending row i's values. It
// returns the rows affected in total; an error names the source lines
// (line(i)) of the failing chunk.
func (s *Store) insertChunks(ctx context.Context, tx *sqlx.Tx, b bulkInsert, shared []any, n, chunk int,
	row func(i int, args []any) []any, line func(i int) int) (int64, error) {
	chunk = max(1, min(chunk, (maxBindParams-len(shared))/len(b.cols)))
	var perRow, args []any
	var query string
	queryRows := -1
	var total int64
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		perRow = perRow[:0]
		for i := lo; i < hi; i++ {
			perRow = row(i, perRow)
		}
		if hi-lo != queryRows {
			query, queryRows = b.sql(s, len(shared), hi-lo), hi-lo
		}
		args = b.args(s, args, shared, perRow)
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
