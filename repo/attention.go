package repo

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// AttentionAge is how long an accepted order may stay open, and a completed
// eSIM service wait for its QR code, before an operator is told. Neither row
// is ever failed for it: an open order is polled on, a missing QR code
// fetched again; they are listed (`batch status`, every report) until they
// move on.
const AttentionAge = 24 * time.Hour

// StatusAttentionRows is how many of the oldest rows of each attention list
// Status returns; ReportAttentionRows is how many ReportContentAt returns.
const (
	StatusAttentionRows = 10
	ReportAttentionRows = 500
)

// AttentionRow is one activation an operator should look at: an order open
// for more than AttentionAge (state submitted) or a completed eSIM service
// whose QR code is still missing after AttentionAge (state completed).
type AttentionRow struct {
	ID       int64  `db:"id"`
	SalesRef string `db:"sales_ref"`
	MSN      string `db:"msn"`
	OrderID  string `db:"order_id"` // empty for an order adopted by reconcile
	State    State  `db:"state"`
	// Since is when the order was sent (submitted rows) or completed
	// (completed rows); updated_at when that time is missing.
	Since     time.Time `db:"-"`
	PollCount int       `db:"poll_count"` // orderQuery calls made for the order
	Attempts  int       `db:"attempts"`   // failed attempts (for a completed row: QR fetches that failed)
	LastError string    `db:"last_error_message"`
	// Credential owns the row: the Octane user its order and polls go through.
	Credential string `db:"credential"`
}

// AttentionList is one kind of attention row at a given time: how many rows
// are in the condition and the oldest of them, oldest first.
type AttentionList struct {
	Count int
	Rows  []AttentionRow // at most the limit asked for: fewer than Count when capped
}

// Attention is what an operator must be told about at a given time.
type Attention struct {
	// OpenOrders: state submitted (Octane answers OPEN, IN_PROGRESS or a
	// status we do not know), order sent more than AttentionAge ago.
	OpenOrders AttentionList
	// QRLate: state completed (waiting for the QR fetch), order completed
	// more than AttentionAge ago.
	QRLate AttentionList
}

// attentionKinds are the two conditions: the state and the time it is in
// that state since. The fallback to updated_at keeps a row with a missing
// time listed rather than hidden (updated_at is NOT NULL).
var attentionKinds = [...]struct {
	state State
	since string
}{
	{StateSubmitted, `COALESCE(order_sent_at, updated_at)`},
	{StateCompleted, `COALESCE(completed_at, updated_at)`},
}

// Attention returns the open orders older than AttentionAge and the QR codes
// late by more than AttentionAge at now (the caller's clock; nothing here
// reads the database's clock): each list's count and its oldest rows, at most
// limit of them (none when limit <= 0), oldest first (ties by id). A row is
// listed only when its time is strictly before now - AttentionAge. Errors:
// the database's, wrapped.
func (s *Store) Attention(ctx context.Context, now time.Time, limit int) (Attention, error) {
	var at Attention
	err := s.InTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		at, err = s.attention(ctx, tx, now, limit)
		return err
	})
	if err != nil {
		return Attention{}, fmt.Errorf("repo: attention: %w", err)
	}
	return at, nil
}

// attention is Attention inside q (a transaction of the caller's).
func (s *Store) attention(ctx context.Context, q sqlx.QueryerContext, now time.Time, limit int) (Attention, error) {
	var at Attention
	before := s.t(now.Add(-AttentionAge))
	for i, k := range attentionKinds {
		list := []*AttentionList{&at.OpenOrders, &at.QRLate}[i]
		where := ` FROM activations WHERE state = ? AND ` + k.since + ` < ?`
		if err := q.QueryRowxContext(ctx, s.q(`SELECT COUNT(*)`+where), string(k.state), before).Scan(&list.Count); err != nil {
			return at, fmt.Errorf("count %s: %w", k.state, err)
		}
		list.Rows = []AttentionRow{}
		if limit <= 0 || list.Count == 0 {
			continue
		}
		var rows []struct {
			AttentionRow
			Since nullTime `db:"since"`
		}
		if err := sqlx.SelectContext(ctx, q, &rows, s.q(`SELECT id, sales_ref, msn, order_id, state, `+k.since+` AS since,
poll_count, attempts, last_error_message, credential`+where+` ORDER BY `+k.since+`, id LIMIT ?`),
			string(k.state), before, limit); err != nil {
			return at, fmt.Errorf("list %s: %w", k.state, err)
		}
		for _, r := range rows {
			if r.Since.T != nil {
				r.AttentionRow.Since = *r.Since.T
			}
			list.Rows = append(list.Rows, r.AttentionRow)
		}
	}
	return at, nil
}
