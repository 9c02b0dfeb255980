package repo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Report is one report run: its rows are fixed when it is built, before any
// send, so each terminal activation and each reject is in exactly one report.
type Report struct {
	ID          int64      `db:"id"`
	Number      int64      `db:"number"`
	CreatedAt   time.Time  `db:"created_at"`
	PeriodFrom  time.Time  `db:"period_from"`
	PeriodTo    time.Time  `db:"period_to"`
	MessageID   string     `db:"message_id"`
	File        string     `db:"file"`
	DeliveredAt *time.Time `db:"delivered_at"`
	Activations int        `db:"activations"`
	Rejects     int        `db:"rejects"`
	Refused     int        `db:"refused"` // files refused whole on import
}

const reportColumns = `id, number, created_at, period_from, period_to, message_id, file, delivered_at, activations, rejects, refused`

// PendingReport returns the oldest report built but not delivered.
// Errors: ErrNotFound when every report was delivered.
func (s *Store) PendingReport(ctx context.Context) (Report, error) {
	var r Report
	err := s.db.GetContext(ctx, &r, `SELECT `+reportColumns+` FROM reports WHERE delivered_at IS NULL ORDER BY number LIMIT 1`)
	if err != nil {
		return r, fmt.Errorf("repo: pending report: %w", notFound(err))
	}
	return r, nil
}

// NewReport builds the next report in one transaction: number = last + 1,
// period from the previous report's end to now; it takes every unreported
// terminal activation in no report (qr_ready rows capped at maxQRRows, oldest
// first, when maxQRRows > 0; provisioned, failed and cancelled rows all) and
// every unreported import reject and refused import file. The UNIQUE
// report_items (activation_id, retries), report_rejects.reject_id and
// report_refused.refused_id make a second report of a row (of one life of
// it: batch retry starts the next) impossible; two
// processes building at once take turns, and the second finds only what the
// first left (or nothing). A row that turns terminal after the build is in
// the next report. Errors: ErrNotFound when there is nothing to report
// (nothing written).
func (s *Store) NewReport(ctx context.Context, now time.Time, maxQRRows int) (Report, error) {
	var rep Report
	err := s.InTx(ctx, func(tx *sqlx.Tx) error {
		if s.dialect == DialectPostgres {
			// Builders take turns (SQLite's BEGIN IMMEDIATE already does):
			// under READ COMMITTED a second process would read the same
			// last number and the same unreported rows, then fail on the
			// UNIQUE constraints once the first commits, failing its
			// report phase. EXCLUSIVE conflicts with any write to reports
			// and still lets readers through; after the wait every
			// statement below sees the first builder's commit.
			if _, err := tx.ExecContext(ctx, `LOCK TABLE reports IN EXCLUSIVE MODE`); err != nil {
				return err
			}
		}
		var last struct {
			Number int64    `db:"number"`
			To     nullTime `db:"period_to"`
		}
		err := tx.GetContext(ctx, &last, `SELECT number, period_to FROM reports ORDER BY number DESC LIMIT 1`)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		from := now
		if last.To.T != nil {
			from = *last.To.T
		} else {
			// First report: from the first import.
			var first nullTime
			if err := tx.QueryRowxContext(ctx, `SELECT MIN(imported_at) FROM imports`).Scan(&first); err != nil {
				return err
			}
			if first.T != nil && first.T.Before(now) {
				from = *first.T
			}
		}
		if err := tx.GetContext(ctx, &rep.ID, s.q(`INSERT INTO reports (number, created_at, period_from, period_to)
VALUES (?, ?, ?, ?) RETURNING id`), last.Number+1, s.t(now), s.t(from), s.t(now)); err != nil {
			return err
		}
		// A row another builder took meanwhile is skipped, never an error.
		// Each life of a row (Retries: batch retry starts a new one) is
		// reported once.
		const onConflict = ` ON CONFLICT (activation_id, retries) DO NOTHING`
		const unreported = `reported_at IS NULL AND NOT EXISTS (SELECT 1 FROM report_items i
WHERE i.activation_id = activations.id AND i.retries = activations.retries)`
		qrLimit := ""
		args := []any{rep.ID}
		if maxQRRows > 0 {
			qrLimit = ` LIMIT ?`
			args = append(args, maxQRRows)
		}
		var n int64
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO report_items (report_id, activation_id, retries) SELECT ?, id, retries FROM activations
WHERE state = 'qr_ready' AND ` + unreported + ` ORDER BY completed_at, id` + qrLimit + onConflict, args},
			{`INSERT INTO report_items (report_id, activation_id, retries) SELECT ?, id, retries FROM activations
WHERE state IN ('provisioned', 'failed', 'cancelled') AND ` + unreported + ` ORDER BY id` + onConflict, []any{rep.ID}},
		} {
			res, err := tx.ExecContext(ctx, s.q(q.sql), q.args...)
			if err != nil {
				return err
			}
			k, _ := res.RowsAffected()
			n += k
		}
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO report_rejects (report_id, reject_id) SELECT ?, id FROM import_rejects
WHERE reported_at IS NULL AND NOT EXISTS (SELECT 1 FROM report_rejects x WHERE x.reject_id = import_rejects.id) ORDER BY id
ON CONFLICT (reject_id) DO NOTHING`), rep.ID)
		if err != nil {
			return err
		}
		k, _ := res.RowsAffected()
		res, err = tx.ExecContext(ctx, s.q(`INSERT INTO report_refused (report_id, refused_id) SELECT ?, id FROM refused_imports
WHERE reported_at IS NULL AND NOT EXISTS (SELECT 1 FROM report_refused x WHERE x.refused_id = refused_imports.id) ORDER BY id
ON CONFLICT (refused_id) DO NOTHING`), rep.ID)
		if err != nil {
			return err
		}
		refused, _ := res.RowsAffected()
		if n == 0 && k == 0 && refused == 0 {
			return ErrNotFound // rolls the empty report back
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE reports SET activations = ?, rejects = ?, refused = ? WHERE id = ?`),
			n, k, refused, rep.ID); err != nil {
			return err
		}
		return tx.GetContext(ctx, &rep, s.q(`SELECT `+reportColumns+` FROM reports WHERE id = ?`), rep.ID)
	})
	if err != nil {
		return Report{}, fmt.Errorf("repo: new report: %w", err)
	}
	return rep, nil
}

// SetReportMessage records the built workbook's file and the mail's message
// id (reused if the send is retried). Errors: ErrNotFound.
func (s *Store) SetReportMessage(ctx context.Context, reportID int64, messageID, file string) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE reports SET message_id = ?, file = ? WHERE id = ?`), messageID, file, reportID)
	if err != nil {
		return fmt.Errorf("repo: set report %d message: %w", reportID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("repo: set report %d message: %w", reportID, ErrNotFound)
	}
	return nil
}

// RejectRow is an import reject as reported.
type RejectRow struct {
	ID         int64     `db:"id"`
	File       string    `db:"file"`
	Line       int       `db:"line"`
	Reason     string    `db:"reason"`
	Raw        string    `db:"raw"`
	ImportedAt time.Time `db:"imported_at"`
}

// ReportContent is everything a report's workbook shows.
type ReportContent struct {
	Report      Report
	Activations []Activation    // in this report, by id
	Rejects     []RejectRow     // in this report, by file and line
	Refused     []RefusedImport // files refused whole, in this report, by id
	Totals      map[State]int   // all activations to date, by state
	ToDate      ToDate          // the other totals to date the Summary shows
	Calls       []MethodCalls   // calls sent in the report's period
	// Attention lists the open orders and late QR codes (up to
	// ReportAttentionRows of each, oldest first) at the time asked for.
	// They are not the report's rows: not terminal, never marked
	// reported, listed by every report while the condition holds.
	Attention Attention
}

// ReportContent is ReportContentAt at the report's creation time.
// Errors: ErrNotFound for an unknown report.
func (s *Store) ReportContent(ctx context.Context, reportID int64) (ReportContent, error) {
	return s.reportContent(ctx, reportID, nil)
}

// ReportContentAt reads a report's fixed content (the same on every retry of
// its send), the totals to date as they are when read, and the rows needing
// attention at now (the caller's clock; see Attention). Errors: ErrNotFound
// for an unknown report; the database's, wrapped.
func (s *Store) ReportContentAt(ctx context.Context, reportID int64, now time.Time) (ReportContent, error) {
	return s.reportContent(ctx, reportID, &now)
}

// reportContent reads the content; a nil now means the report's CreatedAt.
func (s *Store) reportContent(ctx context.Context, reportID int64, now *time.Time) (ReportContent, error) {
	var c ReportContent
	err := s.InTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &c.Report, s.q(`SELECT `+reportColumns+` FROM reports WHERE id = ?`), reportID); err != nil {
			return notFound(err)
		}
		at := c.Report.CreatedAt
		if now != nil {
			at = *now
		}
		var err error
		if c.Attention, err = s.attention(ctx, tx, at, ReportAttentionRows); err != nil {
			return err
		}
		if err := tx.SelectContext(ctx, &c.Activations, s.q(`SELECT `+activationCols("a.")+`
FROM activations a JOIN report_items i ON i.activation_id = a.id WHERE i.report_id = ? ORDER BY a.id`), reportID); err != nil {
			return err
		}
		if err := tx.SelectContext(ctx, &c.Rejects, s.q(`SELECT r.id, r.file, r.line, r.reason, r.raw, r.imported_at
FROM import_rejects r JOIN report_rejects x ON x.reject_id = r.id WHERE x.report_id = ? ORDER BY r.import_id, r.line, r.id`), reportID); err != nil {
			return err
		}
		if err := tx.SelectContext(ctx, &c.Refused, s.q(`SELECT `+refusedColumns("r.")+`
FROM refused_imports r JOIN report_refused x ON x.refused_id = r.id WHERE x.report_id = ? ORDER BY r.id`), reportID); err != nil {
			return err
		}
		if c.Totals, err = s.countByState(ctx, tx); err != nil {
			return err
		}
		if c.ToDate, err = s.toDate(ctx, tx); err != nil {
			return err
		}
		// Periods chain (each starts where the last ended), so runs are
		// counted in (from, to]; the first report also takes the runs at
		// its very start (the first import's time).
		from := c.Report.PeriodFrom
		if c.Report.Number == 1 {
			from = from.Add(-time.Microsecond) // the stored precision
		}
		c.Calls, err = s.callStats(ctx, tx, from, c.Report.PeriodTo)
		return err
	})
	if err != nil {
		return ReportContent{}, fmt.Errorf("repo: report %d content: %w", reportID, err)
	}
	return c, nil
}

// ToDate is what the Summary counts to date besides the states: the two
// kinds of provisioned service apart, import rejects and refused files.
type ToDate struct {
	ProvisionedPhysical int `db:"physical"` // provisioned physical SIMs
	ProvisionedEmailed  int `db:"emailed"`  // provisioned eSIMs whose QR code Octane emailed
	Rejects             int `db:"rejects"`  // sales rows rejected on import
	Refused             int `db:"refused"`  // files refused whole on import
}

// toDate counts ToDate as the database holds it now.
func (s *Store) toDate(ctx context.Context, q sqlx.QueryerContext) (ToDate, error) {
	var t ToDate
	err := sqlx.GetContext(ctx, q, &t, `SELECT
  (SELECT COUNT(*) FROM activations WHERE state = 'provisioned' AND sim_type = 'physical') AS physical,
  (SELECT COUNT(*) FROM activations WHERE state = 'provisioned' AND sim_type <> 'physical') AS emailed,
  (SELECT COUNT(*) FROM import_rejects) AS rejects,
  (SELECT COUNT(*) FROM refused_imports) AS refused`)
	return t, err
}

// countByState counts all activations by state (every state present, 0 if none).
func (s *Store) countByState(ctx context.Context, q sqlx.QueryerContext) (map[State]int, error) {
	var rows []struct {
		State State `db:"state"`
		N     int   `db:"n"`
	}
	if err := sqlx.SelectContext(ctx, q, &rows, `SELECT state, COUNT(*) AS n FROM activations GROUP BY state`); err != nil {
		return nil, err
	}
	out := make(map[State]int, len(States()))
	for _, st := range States() {
		out[st] = 0
	}
	for _, r := range rows {
		out[r.State] = r.N
	}
	return out, nil
}

// MarkReportDelivered records the send: the report's delivered_at and the
// reported_at of its activations, rejects and refused files. Delivering twice changes
// nothing. Errors: ErrNotFound for an unknown report.
func (s *Store) MarkReportDelivered(ctx context.Context, reportID int64, at time.Time) error {
	err := s.InTx(ctx, func(tx *sqlx.Tx) error {
		// Guarded like a claim: a concurrent delivery that committed first
		// makes this UPDATE match nothing (PostgreSQL re-checks the WHERE
		// after the wait), so its times are never overwritten.
		res, err := tx.ExecContext(ctx, s.q(`UPDATE reports SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL`), s.t(at), reportID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var one int
			return notFound(tx.GetContext(ctx, &one, s.q(`SELECT 1 FROM reports WHERE id = ?`), reportID))
		}
		// Only the life of the row the report holds: a row retried since
		// (batch retry refuses that, but a report is never trusted to be
		// current) is reported again at its next end.
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE activations SET reported_at = ?
WHERE EXISTS (SELECT 1 FROM report_items i WHERE i.report_id = ? AND i.activation_id = activations.id
  AND i.retries = activations.retries)`), s.t(at), reportID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE import_rejects SET reported_at = ?
WHERE id IN (SELECT reject_id FROM report_rejects WHERE report_id = ?)`), s.t(at), reportID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE refused_imports SET reported_at = ?
WHERE id IN (SELECT refused_id FROM report_refused WHERE report_id = ?)`), s.t(at), reportID)
		return err
	})
	if err != nil {
		return fmt.Errorf("repo: mark report %d delivered: %w", reportID, err)
	}
	return nil
}

// Status is what `batch status` shows.
type Status struct {
	Counts        map[State]int
	OldestPending *time.Time // created_at of the oldest pending row
	PollsDue      int
	ReleasesDue   int
	NextPoll      *time.Time // earliest next_poll_at of a submitted row
	NextRelease   *time.Time // when the oldest held number reaches the release age
	// OpenOrders and QRLate are Attention at now: the count and the
	// StatusAttentionRows oldest rows of each.
	OpenOrders AttentionList
	QRLate     AttentionList
}

// Status counts activations by state and the work due at now; numbers
// reserved at or before releaseBefore (now - RELEASE_AFTER) are due for
// release. It also lists the rows needing attention at now (see Attention).
// Errors: the database's, wrapped.
func (s *Store) Status(ctx context.Context, now, releaseBefore time.Time) (Status, error) {
	var st Status
	err := s.InTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		if st.Counts, err = s.countByState(ctx, tx); err != nil {
			return err
		}
		at, err := s.attention(ctx, tx, now, StatusAttentionRows)
		if err != nil {
			return err
		}
		st.OpenOrders, st.QRLate = at.OpenOrders, at.QRLate
		var oldest, nextPoll, oldestHeld nullTime
		if err := tx.QueryRowxContext(ctx, `SELECT MIN(created_at) FROM activations WHERE state = 'pending'`).Scan(&oldest); err != nil {
			return err
		}
		if err := tx.QueryRowxContext(ctx, s.q(`SELECT COUNT(*) FROM activations WHERE state = 'submitted' AND next_poll_at <= ?`),
			s.t(now)).Scan(&st.PollsDue); err != nil {
			return err
		}
		if err := tx.QueryRowxContext(ctx, `SELECT MIN(next_poll_at) FROM activations WHERE state = 'submitted'`).Scan(&nextPoll); err != nil {
			return err
		}
		const held = `FROM reservations r LEFT JOIN activations a ON a.id = r.activation_id
WHERE (r.state = 'free' OR (r.state = 'assigned' AND a.state IN ('pending', 'selected', 'failed', 'cancelled')))`
		if err := tx.QueryRowxContext(ctx, s.q(`SELECT COUNT(*) `+held+` AND r.reserved_at <= ?`),
			s.t(releaseBefore)).Scan(&st.ReleasesDue); err != nil {
			return err
		}
		if err := tx.QueryRowxContext(ctx, `SELECT MIN(r.reserved_at) `+held).Scan(&oldestHeld); err != nil {
			return err
		}
		st.OldestPending, st.NextPoll = oldest.T, nextPoll.T
		if oldestHeld.T != nil {
			next := oldestHeld.T.Add(now.Sub(releaseBefore))
			st.NextRelease = &next
		}
		return nil
	})
	if err != nil {
		return Status{}, fmt.Errorf("repo: status: %w", err)
	}
	return st, nil
}
