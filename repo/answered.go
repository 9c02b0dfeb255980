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

// AnsweredCall is an Octane call that Octane answered without a fault,
// handed to the transition that records its answer (MarkSelected,
// OrderAccepted, OrderCompleted, QRReady) so that both are written in one
// statement on PostgreSQL: one round trip and one commit fewer per call.
// ID is its in-flight row (StartCall), which the transition completes as
// FinishCall would; 0 when it has none (a method written once, when it
// ends), which the transition inserts as RecordCall would. Either way the
// call event goes to the activation's log before the state event.
//
// The call is written whatever becomes of the transition: with it, also
// when the guard matched nothing (ErrLostClaim: the call happened all the
// same); when the transition's statement fails, on its own afterwards, and
// an error doing so is joined to the one returned.
type AnsweredCall struct {
	ID   int64
	Call Call
}

// answeredTimeout bounds writing answered calls on their own, after the
// transition that was to carry them failed (its context may be done).
const answeredTimeout = 10 * time.Second

// answeredOK reports whether every call in cs was answered: outcome "ok"
// (octane.OutcomeOK) with no fault-233 block. Only those may be committed
// lazily, and only those may share a transition's statement, which the
// transition may commit lazily.
func answeredOK(cs []AnsweredCall) bool {
	for _, c := range cs {
		if c.Call.Outcome != "ok" || !c.Call.BlockedUntil.IsZero() {
			return false
		}
	}
	return true
}

// answeredStatement adds the calls' writes to move's PostgreSQL statement
// b (after its moved CTE): each call completed by its in-flight row or
// inserted whole, unconditionally (a data-modifying CTE runs whether or not
// the statement reads it), and then one events insert with the calls'
// events first and the transition's own (when it has one, from moved)
// last, in that order. It returns the arguments, in text order.
func (s *Store) answeredStatement(b *strings.Builder, cs []AnsweredCall, ev *Event) []any {
	var args []any
	for i, a := range cs {
		c := a.Call
		if a.ID != 0 {
			fmt.Fprintf(b, `, call%d AS (%s)`, i, finishCallUpdate)
			args = append(args, s.finishCallArgs(a.ID, c)...)
			continue
		}
		fmt.Fprintf(b, `, call%d AS (%s RETURNING run_id, activation_id)`, i, insertCallStatement)
		args = append(args, s.insertCallArgs(c)...)
	}
	b.WriteString(`, ev AS (INSERT INTO events
(at, run_id, activation_id, kind, step, from_state, to_state, outcome, code, message, duration_ns, actor)
SELECT at, run_id, activation_id, kind, step, from_state, to_state, outcome, code, message, duration_ns, actor FROM (`)
	for i, a := range cs {
		c := a.Call
		if i > 0 {
			b.WriteString(` UNION ALL `)
		}
		fmt.Fprintf(b, `SELECT %d AS ord, ?::timestamptz AS at, run_id, activation_id, ?::text AS kind, ?::text AS step,
''::text AS from_state, ''::text AS to_state, ?::text AS outcome, ?::text AS code, ?::text AS message,
?::bigint AS duration_ns, ''::text AS actor FROM call%d WHERE activation_id IS NOT NULL`, i, i)
		args = append(args, s.t(c.SentAt), EventCall, c.Method, c.Outcome, c.Code, c.Message, int64(c.Duration))
	}
	if ev != nil {
		fmt.Fprintf(b, ` UNION ALL SELECT %d, ?, ?, id, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM moved`, len(cs))
		args = append(args, s.t(ev.At), ev.RunID, ev.Kind, string(ev.Step), string(ev.FromState), string(ev.ToState),
			ev.Outcome, ev.Code, ev.Message, int64(ev.Duration), ev.Actor)
	}
	b.WriteString(`) e ORDER BY ord)`)
	return args
}

// writeAnsweredTx writes cs in tx (SQLite), before the transition's move.
func (s *Store) writeAnsweredTx(ctx context.Context, tx *sqlx.Tx, cs []AnsweredCall) error {
	for _, a := range cs {
		if _, err := s.writeCallTx(ctx, tx, a.ID, a.Call); err != nil {
			return err
		}
	}
	return nil
}

// writeCallTx writes one ended call and its call event in tx (SQLite):
// completing its in-flight row id (FinishCall; found says whether it was in
// flight) or, for id 0, inserting it whole (RecordCall).
func (s *Store) writeCallTx(ctx context.Context, tx *sqlx.Tx, id int64, c Call) (found bool, err error) {
	if id == 0 {
		if _, err := tx.ExecContext(ctx, s.q(insertCallStatement), s.insertCallArgs(c)...); err != nil {
			return false, err
		}
		return true, s.callEvent(ctx, tx, c, c.runID())
	}
	var row struct {
		RunID        *int64 `db:"run_id"`
		ActivationID *int64 `db:"activation_id"`
	}
	err = tx.GetContext(ctx, &row, s.q(finishCallUpdate), s.finishCallArgs(id, c)...)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	c.ActivationID = row.ActivationID
	return true, s.callEvent(ctx, tx, c, row.RunID)
}

// WriteAnswered writes answered calls on their own, each as FinishCall (its
// in-flight row) or RecordCall (no row) would: for a transition whose
// statement or transaction failed before it wrote them, and for the calls
// no transition took. A row no longer in flight is skipped (its completion
// is already there). Errors: each call's, joined.
func (s *Store) WriteAnswered(ctx context.Context, cs ...AnsweredCall) error {
	var errs []error
	for _, a := range cs {
		var err error
		if a.ID != 0 {
			err = s.FinishCall(ctx, a.ID, a.Call)
			if errors.Is(err, ErrNotFound) {
				err = nil
			}
		} else {
			err = s.RecordCall(ctx, a.Call)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// finishCallUpdate completes an in-flight call row with its outcome
// (FinishCall, and an answered call's transition); finishCallArgs are its
// arguments for the row id and the ended call c.
const finishCallUpdate = `UPDATE calls SET sent_at = ?, duration_ns = ?, waited_ns = ?, outcome = ?,
code = ?, message = ?, msn = ?, order_id = ?, blocked_until = ?
WHERE id = ? AND outcome = ? RETURNING run_id, activation_id`

func (s *Store) finishCallArgs(id int64, c Call) []any {
	return []any{s.t(c.SentAt), int64(c.Duration), int64(c.Waited), c.Outcome, c.Code, c.Message, c.MSN, c.OrderID,
		s.nt(c.BlockedUntil), id, CallInflight}
}

// insertCallStatement writes an ended call whole (RecordCall, and an
// answered call's transition when it has no in-flight row); insertCallArgs
// are its arguments for c.
const insertCallStatement = `INSERT INTO calls
(run_id, activation_id, credential, method, sent_at, duration_ns, waited_ns, outcome, code, message, msn, order_id, blocked_until)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func (s *Store) insertCallArgs(c Call) []any {
	return []any{c.runID(), c.ActivationID, c.Credential, c.Method, s.t(c.SentAt), int64(c.Duration), int64(c.Waited),
		c.Outcome, c.Code, c.Message, c.MSN, c.OrderID, s.nt(c.BlockedUntil)}
}

// runID is c's run as a column value: NULL when it has none.
func (c Call) runID() *int64 {
	if c.RunID == 0 {
		return nil
	}
	return &c.RunID
}
