package repo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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

// Import loads one file in one transaction: rows become pending activations
// (due now) unless their sales_ref exists (Duplicate, nothing changed);
// rejects are stored with the file name and line. A file whose hash was
// imported before writes nothing and returns AlreadyImported with the first
// import's id and zero counts. Errors: the database's, wrapped (nothing written).
func (s *Store) Import(ctx context.Context, f ImportFile, rows []NewActivation, rejects []ImportReject, now time.Time) (ImportResult, error) {
	var res ImportResult
	err := s.InTx(ctx, func(tx *sqlx.Tx) error {
		var prev int64
		err := tx.GetContext(ctx, &prev, s.q(`SELECT id FROM imports WHERE content_hash = ?`), f.Hash)
		if err == nil {
			res = ImportResult{ImportID: prev, AlreadyImported: true}
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err := tx.GetContext(ctx, &res.ImportID, s.q(`INSERT INTO imports (file_name, content_hash, imported_at, data_rows, blank)
VALUES (?, ?, ?, ?, ?) RETURNING id`), f.Name, f.Hash, s.t(now), f.DataRows, f.Blank); err != nil {
			return err
		}
		insert := s.q(`INSERT INTO activations (sales_ref, given_names, surname, email, address_line1, suburb, addr_state,
postcode, notes, cust_no, plan_no, sim_type, sim_serial, state, next_attempt_at, import_id, source_line, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?) ON CONFLICT (sales_ref) DO NOTHING`)
		for _, r := range rows {
			simType := r.SIMType
			if simType == "" {
				simType = "esim"
			}
			out, err := tx.ExecContext(ctx, insert, r.SalesRef, r.GivenNames, r.Surname, r.Email, r.AddressLine1,
				r.Suburb, r.AddrState, r.Postcode, r.Notes, r.CustNo, r.PlanNo, simType, r.SIMSerial,
				s.t(now), res.ImportID, r.Line, s.t(now), s.t(now))
			if err != nil {
				return fmt.Errorf("line %d (%s): %w", r.Line, r.SalesRef, err)
			}
			if n, err := out.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				res.Duplicate++
			} else {
				res.Accepted++
			}
		}
		for _, r := range rejects {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO import_rejects (import_id, file, line, reason, raw, imported_at)
VALUES (?, ?, ?, ?, ?, ?)`), res.ImportID, f.Name, r.Line, r.Reason, r.Raw, s.t(now)); err != nil {
				return fmt.Errorf("reject line %d: %w", r.Line, err)
			}
			res.Rejected++
		}
		res.Blank = f.Blank
		_, err = tx.ExecContext(ctx, s.q(`UPDATE imports SET accepted = ?, duplicate = ?, rejected = ? WHERE id = ?`),
			res.Accepted, res.Duplicate, res.Rejected, res.ImportID)
		return err
	})
	if err != nil {
		return ImportResult{}, fmt.Errorf("repo: import %s: %w", f.Name, err)
	}
	return res, nil
}

// ImportedHash reports whether a file with this content hash was imported.
func (s *Store) ImportedHash(ctx context.Context, hash string) (bool, error) {
	var n int
	if err := s.db.GetContext(ctx, &n, s.q(`SELECT COUNT(*) FROM imports WHERE content_hash = ?`), hash); err != nil {
		return false, fmt.Errorf("repo: imported hash: %w", err)
	}
	return n > 0, nil
}
