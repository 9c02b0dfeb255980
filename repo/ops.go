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

// The operators' store methods: finding one activation, its calls and
// reports, and the two actions on it (batch retry, batch cancel; README
// "Operating"). Both actions are guarded writes like the job's own: they
// repeat the predicate they were decided on in the UPDATE, so a row that
// moved meanwhile is refused, never overwritten.

// ErrAmbiguous: a reference matches more than one activation.
var ErrAmbiguous = errors.New("repo: reference matches more than one activation")

// ErrRefused: the activation's state does not allow the operator's action.
// The error is a *Refusal saying why.
var ErrRefused = errors.New("repo: refused")

// Refusal is why an operator action was refused. NeedsCheck is set when
// the action is refused only because an order may exist in Octane: after
// checking Octane an operator may force it.
type Refusal struct {
	SalesRef   string
	Reason     string
	NeedsCheck bool
}

func (r *Refusal) Error() string        { return r.SalesRef + ": " + r.Reason }
func (r *Refusal) Is(target error) bool { return target == ErrRefused }

// FindActivation returns the activation ref names: a sales reference, else
// an order id, else an MSN (a number may have served several activations
// over time, one after another). Errors: ErrNotFound; ErrAmbiguous (its text
// lists the sales references) when ref matches several.
func (s *Store) FindActivation(ctx context.Context, ref string) (Activation, error) {
	ref = strings.TrimSpace(ref)
	for _, by := range []struct{ col, what string }{{"sales_ref", "sales reference"}, {"order_id", "order id"}, {"msn", "MSN"}} {
		if ref == "" {
			break
		}
		var found []Activation
		err := s.db.SelectContext(ctx, &found, s.q(`SELECT `+activationColumns+` FROM activations WHERE `+by.col+` = ? ORDER BY id LIMIT 11`), ref)
		if err != nil {
			return Activation{}, fmt.Errorf("repo: find activation %q: %w", ref, err)
		}
		switch len(found) {
		case 0:
			continue
		case 1:
			return found[0], nil
		}
		refs := make([]string, len(found))
		for i, a := range found {
			refs[i] = a.SalesRef
		}
		if len(refs) > 10 {
			refs = append(refs[:10], "...")
		}
		return Activation{}, fmt.Errorf("%w: %s %q is on %s; give the sales reference",
			ErrAmbiguous, by.what, ref, strings.Join(refs, ", "))
	}
	return Activation{}, fmt.Errorf("repo: no activation has sales reference, order id or MSN %q: %w", ref, ErrNotFound)
}

// LoggedCall is one row of the call log as `batch show` lists it.
type LoggedCall struct {
	ID       int64         `db:"id"`
	RunID    *int64        `db:"run_id"`
	Method   string        `db:"method"`
	SentAt   time.Time     `db:"sent_at"`
	Duration time.Duration `db:"duration_ns"`
	Waited   time.Duration `db:"waited_ns"`
	Outcome  string        `db:"outcome"` // CallInflight while (or if its process died) in flight
	Code     string        `db:"code"`
	Message  string        `db:"message"`
	MSN      string        `db:"msn"`
	OrderID  string        `db:"order_id"`
}

// ActivationCalls returns the Octane calls made for an activation, oldest
// first (empty when none). Errors: the database's, wrapped.
func (s *Store) ActivationCalls(ctx context.Context, activationID int64) ([]LoggedCall, error) {
	out := []LoggedCall{}
	err := s.db.SelectContext(ctx, &out, s.q(`SELECT id, run_id, method, sent_at, duration_ns, waited_ns, outcome, code,
message, msn, order_id FROM calls WHERE activation_id = ? ORDER BY sent_at, id`), activationID)
	if err != nil {
		return nil, fmt.Errorf("repo: calls of activation %d: %w", activationID, err)
	}
	return out, nil
}

// ReportItem is one report an activation is in: Retries is the life of the
// row it reports (0 before any batch retry).
type ReportItem struct {
	Number      int64      `db:"number"`
	Retries     int        `db:"retries"`
	CreatedAt   time.Time  `db:"created_at"`
	DeliveredAt *time.Time `db:"delivered_at"`
}

// ActivationReports returns the reports an activation is in, oldest first.
// Errors: the database's, wrapped.
func (s *Store) ActivationReports(ctx context.Context, activationID int64) ([]ReportItem, error) {
	out := []ReportItem{}
	err := s.db.SelectContext(ctx, &out, s.q(`SELECT r.number, i.retries, r.created_at, r.delivered_at
FROM report_items i JOIN reports r ON r.id = i.report_id WHERE i.activation_id = ? ORDER BY r.number`), activationID)
	if err != nil {
		return nil, fmt.Errorf("repo: reports of activation %d: %w", activationID, err)
	}
	return out, nil
}

// FailedActivations returns the failed activations, by id: only those that
// failed at step (when not empty) and last tried at or after since (when
// not zero; a row's last attempt, else its last update). Errors: the
// database's, wrapped.
func (s *Store) FailedActivations(ctx context.Context, step Step, since time.Time) ([]Activation, error) {
	where := `state = 'failed'`
	var args []any
	if step != "" {
		where += ` AND last_error_step = ?`
		args = append(args, string(step))
	}
	if !since.IsZero() {
		where += ` AND COALESCE(last_attempt_at, updated_at) >= ?`
		args = append(args, s.t(since))
	}
	out := []Activation{}
	if err := s.db.SelectContext(ctx, &out, s.q(`SELECT `+activationColumns+` FROM activations WHERE `+where+` ORDER BY id`), args...); err != nil {
		return nil, fmt.Errorf("repo: failed activations: %w", err)
	}
	return out, nil
}

// RetryCheck says whether a can be put back to pending without risking a
// second order, by the error table (docs/design.md "Outcomes"): a row that
// failed before orderCreate, at orderCreate (Octane refused it, or it was
// provably never sent: an unknown outcome goes to reconcile, never to
// failed), or whose order Octane rejected or cancelled (the poll's REJECTED
// or CANCELLED: the number is free again), or that was cancelled before its
// order, has no live order. Anything else (a reconcile verdict, an order
// that was accepted or adopted) may have one: a *Refusal with NeedsCheck.
// A row that has not ended is refused without it.
func RetryCheck(a Activation) error {
	refuse := func(needsCheck bool, format string, args ...any) error {
		return &Refusal{SalesRef: a.SalesRef, Reason: fmt.Sprintf(format, args...), NeedsCheck: needsCheck}
	}
	switch a.State {
	case StateCancelled:
		return nil // cancelled while pending or selected: never ordered
	case StateFailed:
	default:
		return refuse(false, "is %s, not failed: only a failed (or cancelled) activation can be retried", a.State)
	}
	step := Step(a.LastErrorStep)
	rejectedOrder := step == StepPoll && (a.LastErrorCode == "REJECTED" || a.LastErrorCode == "CANCELLED")
	switch {
	case rejectedOrder:
		return nil
	case a.OrderID != "" || a.Adopted:
		order := "order " + a.OrderID
		if a.OrderID == "" {
			order = "an order adopted by reconcile"
		}
		return refuse(true, "failed at %s after %s was accepted: the order may be live in Octane", stepName(step), order)
	}
	switch step {
	case StepCustomer, StepSIMCheck, StepReserve, StepSelect:
		return nil
	case StepOrder:
		return nil
	case StepReconcile:
		return refuse(true, "failed at reconcile: an order may exist (%s)", a.LastErrorMessage)
	default:
		return refuse(true, "failed at %s: an order may exist", stepName(step))
	}
}

func stepName(st Step) string {
	if st == "" {
		return "an unrecorded step"
	}
	return string(st)
}

// notInUndeliveredReport is the guard that keeps a row's reported life
// fixed until its report is delivered: a resend rebuilds the report from
// the rows, so a row in a report not yet delivered must not change.
const notInUndeliveredReport = `NOT EXISTS (SELECT 1 FROM report_items i JOIN reports r ON r.id = i.report_id
WHERE i.activation_id = activations.id AND i.retries = activations.retries AND r.delivered_at IS NULL)`

// Retry puts a failed (or cancelled) activation back to pending with a
// fresh attempt budget: attempts and their times, the last error, the
// number, the order and the QR fields cleared, due now, reported_at cleared
// and Retries + 1, so its next end is reported again (its earlier reports
// stay as they were). A number it still holds is given back by the release
// phase. The event (step retry) records actor and note. Unless force,
// RetryCheck must pass. It returns the row as written. Errors: *Refusal
// (ErrRefused) when the row is not retryable, is in a report not delivered
// yet, or moved since a was read; the database's otherwise, wrapped.
func (s *Store) Retry(ctx context.Context, a Activation, actor, note string, force bool, now time.Time) (Activation, error) {
	outcome := "retried"
	if err := RetryCheck(a); err != nil {
		var r *Refusal
		if !force || !errors.As(err, &r) || !r.NeedsCheck {
			return Activation{}, err
		}
		outcome = "forced"
	}
	var out Activation
	err := s.InTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.lockReportsShared(ctx, tx); err != nil {
			return err
		}
		err := tx.GetContext(ctx, &out, s.q(`UPDATE activations SET state = 'pending', retries = retries + 1,
attempts = 0, next_attempt_at = ?, first_attempt_at = NULL, last_attempt_at = NULL,
last_error_step = '', last_error_code = '', last_error_message = '',
msn = '', reserved_at = NULL, order_id = '', order_sent_at = NULL, qr_by_email = ?, adopted = ?,
next_poll_at = NULL, last_poll_at = NULL, poll_count = 0, service_number = '', completed_at = NULL,
activation_code = '', qr_png = NULL, iccid = '', claim_token = '', claim_until = NULL, reported_at = NULL, updated_at = ?
WHERE id = ? AND state = ? AND retries = ? AND `+notInUndeliveredReport+`
RETURNING `+activationColumns), s.t(now), false, false, s.t(now), a.ID, string(a.State), a.Retries)
		if errors.Is(err, sql.ErrNoRows) {
			return s.whyNot(ctx, tx, a, "retried")
		}
		if err != nil {
			return err
		}
		return s.addEvent(ctx, tx, Event{At: now, ActivationID: a.ID, Kind: EventState, Step: StepRetry,
			FromState: a.State, ToState: StatePending, Outcome: outcome, Code: a.LastErrorCode, Message: note, Actor: actor})
	})
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return Activation{}, err
		}
		return Activation{}, fmt.Errorf("repo: retry activation %d: %w", a.ID, err)
	}
	return out, nil
}

// CancelCheck says whether a can be cancelled: only a pending or selected
// row, which no orderCreate has been sent for, and that no run is working on
// at now (a live claim: the run may be about to order it). Otherwise a
// *Refusal saying why.
func CancelCheck(a Activation, now time.Time) error {
	refuse := func(format string, args ...any) error {
		return &Refusal{SalesRef: a.SalesRef, Reason: fmt.Sprintf(format, args...)}
	}
	switch a.State {
	case StatePending, StateSelected:
	case StateOrdering:
		return refuse("its orderCreate was sent (state ordering, intent at %s): an order may exist; it can no longer be cancelled here", fmtStamp(a.OrderSentAt))
	case StateSubmitted:
		return refuse("order %s was accepted (state submitted): cancel the order in Octane instead", orderName(a))
	case StateCompleted, StateQRReady, StateProvisioned:
		return refuse("its order %s is complete (state %s): the service is live", orderName(a), a.State)
	case StateFailed:
		return refuse("it has already ended (failed at %s)", stepName(Step(a.LastErrorStep)))
	case StateCancelled:
		return refuse("it is already cancelled")
	default:
		return refuse("state %s cannot be cancelled", a.State)
	}
	if a.ClaimToken != "" && a.ClaimUntil != nil && !a.ClaimUntil.Before(now) {
		run := ""
		if a.RunID != nil {
			run = fmt.Sprintf(" %d", *a.RunID)
		}
		return refuse("a run%s is working on it (claimed until %s) and may be about to order it; try again after that run", run, fmtStamp(a.ClaimUntil))
	}
	return nil
}

func orderName(a Activation) string {
	if a.OrderID == "" {
		return "(adopted by reconcile, no order id)"
	}
	return a.OrderID
}

func fmtStamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// Cancel moves a pending or selected activation to cancelled, so it is
// never ordered, and records who and why (step cancel; last error step
// cancel with the note as message, which the report shows). The UPDATE
// repeats CancelCheck's predicate: a run that claimed the row meanwhile
// wins and the cancel is refused, and a claim made after the cancel finds
// the row no longer pending. A number the row holds stays assigned to it
// until the release phase gives it back (the row's run must be over). It
// returns the row as written. Errors: *Refusal (ErrRefused); the
// database's otherwise, wrapped.
func (s *Store) Cancel(ctx context.Context, a Activation, actor, note string, now time.Time) (Activation, error) {
	if err := CancelCheck(a, now); err != nil {
		return Activation{}, err
	}
	msg := "cancelled by " + actor
	if note != "" {
		msg += ": " + note
	}
	var out Activation
	err := s.InTx(ctx, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &out, s.q(`UPDATE activations SET state = 'cancelled',
last_error_step = ?, last_error_code = '', last_error_message = ?, claim_token = '', claim_until = NULL, updated_at = ?
WHERE id = ? AND state IN ('pending', 'selected') AND `+unclaimed+`
RETURNING `+activationColumns), string(StepCancel), msg, s.t(now), a.ID, s.t(now))
		if errors.Is(err, sql.ErrNoRows) {
			return s.whyNot(ctx, tx, a, "cancelled")
		}
		if err != nil {
			return err
		}
		return s.addEvent(ctx, tx, Event{At: now, ActivationID: a.ID, Kind: EventState, Step: StepCancel,
			FromState: a.State, ToState: StateCancelled, Outcome: "cancelled", Message: note, Actor: actor})
	})
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return Activation{}, err
		}
		return Activation{}, fmt.Errorf("repo: cancel activation %d: %w", a.ID, err)
	}
	return out, nil
}

// whyNot explains a guarded operator write that matched nothing: the row as
// it is now, read inside tx.
func (s *Store) whyNot(ctx context.Context, tx *sqlx.Tx, a Activation, verb string) error {
	var now Activation
	if err := tx.GetContext(ctx, &now, s.q(`SELECT `+activationColumns+` FROM activations WHERE id = ?`), a.ID); err != nil {
		return notFound(err)
	}
	var undelivered sql.NullInt64
	if err := tx.GetContext(ctx, &undelivered, s.q(`SELECT MIN(r.number) FROM report_items i JOIN reports r ON r.id = i.report_id
WHERE i.activation_id = ? AND i.retries = ? AND r.delivered_at IS NULL`), now.ID, now.Retries); err != nil {
		return err
	}
	reason := fmt.Sprintf("it moved while being %s (now %s); look again with batch show", verb, now.State)
	if undelivered.Valid && now.State == a.State && now.Retries == a.Retries {
		reason = fmt.Sprintf("it is in report %d, which is not delivered yet (the report is rebuilt from the rows on a resend); retry once it is delivered",
			undelivered.Int64)
	} else if now.State == a.State && now.ClaimUntil != nil {
		reason = fmt.Sprintf("a run is working on it (claimed until %s) and may be about to order it; try again after that run", fmtStamp(now.ClaimUntil))
	}
	return &Refusal{SalesRef: a.SalesRef, Reason: reason}
}

// lockReportsShared makes an operator write wait for a report being built
// (which takes reports EXCLUSIVE) and a build wait for it, so a report never
// takes a row that is changing under it. SQLite's write transactions are
// serialized already.
func (s *Store) lockReportsShared(ctx context.Context, tx *sqlx.Tx) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `LOCK TABLE reports IN SHARE MODE`)
	return err
}

// LastRuns returns the latest run of each credential, by credential.
// Errors: the database's, wrapped.
func (s *Store) LastRuns(ctx context.Context) ([]Run, error) {
	out := []Run{}
	err := s.db.SelectContext(ctx, &out, `SELECT id, started_at, finished_at, credential, phases, dry_run, outcome, counts,
error, lease_until FROM runs WHERE id IN (SELECT MAX(id) FROM runs GROUP BY credential) ORDER BY credential`)
	if err != nil {
		return nil, fmt.Errorf("repo: last runs: %w", err)
	}
	for i := range out {
		if err := out[i].decodeCounts(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
