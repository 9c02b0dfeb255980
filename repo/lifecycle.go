package repo

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// unclaimed is the claimability half of every claim: no live lease.
const unclaimed = `(claim_until IS NULL OR claim_until < ?)`

// claim stamps a fresh claim token and lease on up to limit due rows in one
// statement (committed at once) and returns them in the claim's order.
func (s *Store) claim(ctx context.Context, op string, now time.Time, runID int64, limit int, lease time.Duration,
	where string, whereArgs []any, order string, extraSet string, extraArgs []any,
	less func(a, b Activation) int) ([]Activation, error) {
	if limit <= 0 {
		return []Activation{}, nil
	}
	set := `claim_token = ?, claim_until = ?, run_id = ?, updated_at = ?`
	setArgs := []any{newToken(), s.t(now.Add(lease)), runID, s.t(now)}
	if extraSet != "" {
		set += ", " + extraSet
		setArgs = append(setArgs, extraArgs...)
	}
	query, args := s.pickUpdate("activations", set, setArgs, where, whereArgs, order, limit, activationCols)
	var out []Activation
	var err error
	if s.dialect == DialectPostgres {
		// Each claim has a partial index in its order, which it must read
		// from the front: the planner, whose statistics of the state
		// column are whatever the last ANALYZE saw (all rows pending
		// after a night's import, none completed), otherwise reads every
		// matching row of the index and sorts them, per claim of 50: at
		// 20,000 rows that was 12 ms a claim and most of PostgreSQL's CPU
		// (BenchmarkOverhead). With sorting off the ordered index scan is
		// the only cheap plan left.
		err = s.claimTx(ctx, func(tx *sqlx.Tx) error {
			out = nil
			return tx.SelectContext(ctx, &out, query, args...)
		})
	} else {
		err = retryCancelled(ctx, func() error {
			out = nil
			return sqlx.SelectContext(ctx, s.db, &out, query, args...)
		})
	}
	if err != nil {
		return nil, fmt.Errorf("repo: %s: %w", op, err)
	}
	slices.SortFunc(out, less)
	return out, nil
}

// claimTx runs fn, a claim's statement, in a transaction that plans it
// with sorting off (PostgreSQL; see claim).
func (s *Store) claimTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	return s.InTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `SET LOCAL enable_sort = off`); err != nil {
			return err
		}
		return fn(tx)
	})
}

func byNextAttempt(a, b Activation) int {
	if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

func byID(a, b Activation) int { return cmp.Compare(a.ID, b.ID) }

// ownedBy is the ownership half of every claim but the first: the row
// belongs to the claiming credential. One ? (the credential).
const ownedBy = `credential = ?`

// pendingDue is ClaimPending's condition: its arguments are now, now and
// the credential.
const pendingDue = `state IN ('pending', 'selected') AND next_attempt_at <= ? AND ` + unclaimed + ` AND (credential = '' OR credential = ?)`

// ClaimPending claims up to limit due rows in state pending or selected (a
// selected row resumes at orderCreate), oldest next_attempt_at first, for
// lease, among the rows credential owns and the rows no credential owns yet;
// the claim makes credential their owner in the same statement, for good
// (docs/design.md, "Credentials and ownership"). Errors: the database's,
// wrapped.
func (s *Store) ClaimPending(ctx context.Context, now time.Time, runID int64, credential string, limit int, lease time.Duration) ([]Activation, error) {
	return s.claim(ctx, "claim pending", now, runID, limit, lease, pendingDue, []any{s.t(now), s.t(now), credential}, `next_attempt_at, id`, `credential = ?`, []any{credential}, byNextAttempt)
}

// ClaimUnknownOrders claims rows in state ordering whose outcome is unknown:
// no claim (left for reconcile) or an expired one (a crashed run). A live
// claim is never taken, not even from another run: its holder may still have
// the orderCreate in flight (a run that lost its lock, or a killed pod whose
// request Octane is still processing), and reconciling it now could read
// SELECTED and resubmit the number (invariant 1). The lease is the horizon.
// Only credential's rows are taken: the number is its reservation, and only
// its owner can read it as its own.
func (s *Store) ClaimUnknownOrders(ctx context.Context, now time.Time, runID int64, credential string, limit int, lease time.Duration) ([]Activation, error) {
	return s.claim(ctx, "claim unknown orders", now, runID, limit, lease,
		`state = 'ordering' AND `+unclaimed+` AND `+ownedBy, []any{s.t(now), credential}, `id`, "", nil, byID)
}

// ClaimPolls claims credential's submitted rows whose next poll is due and,
// in the same statement, spends the poll slot: next_poll_at = nextPoll,
// last_poll_at = now, so a crash after the claim still waits the full
// interval.
func (s *Store) ClaimPolls(ctx context.Context, now, nextPoll time.Time, runID int64, credential string, limit int, lease time.Duration) ([]Activation, error) {
	return s.claim(ctx, "claim polls", now, runID, limit, lease,
		`state = 'submitted' AND next_poll_at <= ? AND `+unclaimed+` AND `+ownedBy,
		[]any{s.t(now), s.t(now), credential}, `next_poll_at, id`,
		`next_poll_at = ?, last_poll_at = ?, poll_count = poll_count + 1`, []any{s.t(nextPoll), s.t(now)}, byID)
}

// Peek returns, without claiming or changing anything, up to limit rows a
// claim of kind by credential would take now, with ids above afterID, by
// id: what a dry run works through. kind is PeekPending or
// PeekUnknownOrders. Errors: the database's, wrapped.
func (s *Store) Peek(ctx context.Context, kind PeekKind, credential string, now time.Time, afterID int64, limit int) ([]Activation, error) {
	var where string
	var args []any
	switch kind {
	case PeekPending:
		where, args = `state IN ('pending', 'selected') AND next_attempt_at <= ? AND `+unclaimed+` AND (credential = '' OR credential = ?)`,
			[]any{s.t(now), s.t(now), credential}
	case PeekUnknownOrders:
		where, args = `state = 'ordering' AND `+unclaimed+` AND `+ownedBy, []any{s.t(now), credential}
	default:
		return nil, fmt.Errorf("repo: peek: unknown kind %d", kind)
	}
	var out []Activation
	err := s.db.SelectContext(ctx, &out, s.q(`SELECT `+activationColumns+` FROM activations WHERE `+where+
		` AND id > ? ORDER BY id LIMIT ?`), append(args, afterID, limit)...)
	if err != nil {
		return nil, fmt.Errorf("repo: peek: %w", err)
	}
	return out, nil
}

// PeekKind names the claim a Peek mirrors.
type PeekKind int

// The claims a dry run can peek at.
const (
	PeekPending PeekKind = iota + 1
	PeekUnknownOrders
)

// ClaimQR claims credential's completed rows due for the QR fetch.
func (s *Store) ClaimQR(ctx context.Context, now time.Time, runID int64, credential string, limit int, lease time.Duration) ([]Activation, error) {
	return s.claim(ctx, "claim qr", now, runID, limit, lease,
		`state = 'completed' AND next_attempt_at <= ? AND `+unclaimed+` AND `+ownedBy,
		[]any{s.t(now), s.t(now), credential}, `next_attempt_at, id`, "", nil, byNextAttempt)
}

// change is one guarded transition of an activation.
type change struct {
	to        State
	set       string // more assignments, with ? placeholders
	args      []any
	keepClaim bool
	noEvent   bool
	step      Step
	outcome   string
	code      string
	message   string
	// side are the writes on other tables that go with the transition,
	// made only when its guard matched.
	side []sideWrite
	// guard is the run lock that must still be held (zero: none).
	guard LockGuard
	// pgWith is a CTE ("name AS (...)") placed before the move's on
	// PostgreSQL, with its arguments, and pgWhere a condition on it added to
	// the move's guard (no arguments). SQLite ignores both.
	pgWith     string
	pgWithArgs []any
	pgWhere    string
	// lazy commits the transition without waiting for the WAL flush
	// (lazyPool): only for a transition that records an Octane answer and
	// that the job recovers from losing.
	lazy bool
	// calls are the answered calls written with the transition
	// (AnsweredCall), whatever its guard matched.
	calls []AnsweredCall
}

// sideWrite is an UPDATE ending in its WHERE conditions, with ?
// placeholders. On PostgreSQL it runs in the transition's own statement,
// with "AND EXISTS (SELECT 1 FROM moved)" appended; on SQLite as a
// statement of the transition's transaction, after the move.
type sideWrite struct {
	query string
	args  []any
}

// settleReservation moves the reservation assigned to an activation to
// state (consumed or released).
func (s *Store) settleReservation(activationID int64, state string, now time.Time) sideWrite {
	return sideWrite{`UPDATE reservations SET state = ?, updated_at = ?
WHERE activation_id = ? AND state = 'assigned'`, []any{state, s.t(now), activationID}}
}

// unhold gives the numbers assigned to a pending activation back to their
// run (state free), e.g. after selectResource failed; none for a row in
// another state (its number stays assigned for the release phase).
func (s *Store) unhold(from State, activationID int64, now time.Time) []sideWrite {
	if from != StatePending {
		return nil
	}
	return []sideWrite{{`UPDATE reservations SET state = 'free', activation_id = NULL, updated_at = ?
WHERE activation_id = ? AND state = 'assigned'`, []any{s.t(now), activationID}}}
}

// setColumn finds the column of each assignment in a SET list (a comma
// inside an expression, as in COALESCE(x, ?), is not followed by one).
var setColumn = regexp.MustCompile(`(?:^|,)\s*(\w+)\s*=`)

// movedColumnsBySet caches movedColumns.
var movedColumnsBySet sync.Map

// movedColumns are the columns a transition reads back: id (for its event
// and side writes), the claim, and the columns its SET list assigns, but
// qr_png, which can be large and which the caller holds. The rest of the row
// is the caller's copy, which the guard proves current: no other write
// changes a claimed row.
func movedColumns(set string) string {
	if v, ok := movedColumnsBySet.Load(set); ok {
		return v.(string)
	}
	cols := []string{"id", "claim_token", "claim_until"}
	for _, m := range setColumn.FindAllStringSubmatch(set, -1) {
		if c := m[1]; c != "qr_png" && !slices.Contains(cols, c) {
			cols = append(cols, c)
		}
	}
	out := strings.Join(cols, ", ")
	movedColumnsBySet.Store(set, out)
	return out
}

// move applies c to a inside q, guarded by a's state and claim token (and
// c.guard), with its side writes, and appends the state event. It returns
// the row as written (QRPNG as a had it). On PostgreSQL this is one
// statement, so with q the pool it is one round trip and one commit; on
// SQLite it is several, and q must be a transaction.
func (s *Store) move(ctx context.Context, q sqlx.ExtContext, op string, a *Activation, c change, now time.Time) (Activation, error) {
	out := *a // the returned columns are scanned over it
	if a.ClaimToken == "" {
		return out, fmt.Errorf("repo: %s activation %d: not claimed: %w", op, a.ID, ErrLostClaim)
	}
	set := `state = ?, updated_at = ?`
	args := []any{string(c.to), s.t(now)}
	if c.set != "" {
		set += ", " + c.set
		args = append(args, c.args...)
	}
	if !c.keepClaim {
		set += `, claim_token = '', claim_until = NULL`
	}
	args = append(args, a.ID, string(a.State), a.ClaimToken)
	update := `UPDATE activations SET ` + set + ` WHERE id = ? AND state = ? AND claim_token = ?`
	returning := movedColumns(set)
	ev := Event{At: now, RunID: a.RunID, ActivationID: a.ID, Kind: EventState,
		Step: c.step, FromState: a.State, ToState: c.to, Outcome: c.outcome, Code: c.code, Message: c.message}
	lost := func() error {
		return fmt.Errorf("repo: %s activation %d (%s -> %s): %w", op, a.ID, a.State, c.to, ErrLostClaim)
	}
	if s.dialect == DialectPostgres {
		query, qargs := s.moveStatement(update, returning, args, ev, c)
		var err error
		if p, pooled := q.(*pool); pooled {
			err = p.getPrepared(ctx, &out, query, qargs...)
		} else {
			err = sqlx.GetContext(ctx, q, &out, query, qargs...)
		}
		if errors.Is(err, sql.ErrNoRows) {
			if c.guard != (LockGuard{}) {
				// Nothing was written: say why, the lock first.
				if gerr := s.checkGuard(ctx, q, c.guard); gerr != nil {
					return out, fmt.Errorf("repo: %s activation %d: %w", op, a.ID, gerr)
				}
			}
			return out, lost()
		}
		if err != nil {
			return out, fmt.Errorf("repo: %s activation %d: %w", op, a.ID, err)
		}
		return out, nil
	}
	if err := sqlx.GetContext(ctx, q, &out, s.q(update+` RETURNING `+returning), args...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return out, lost()
		}
		return out, fmt.Errorf("repo: %s activation %d: %w", op, a.ID, err)
	}
	if err := s.checkGuard(ctx, q, c.guard); err != nil {
		return out, fmt.Errorf("repo: %s activation %d: %w", op, a.ID, err)
	}
	if !c.noEvent {
		if err := s.addEvent(ctx, q, ev); err != nil {
			return out, fmt.Errorf("repo: %s activation %d: %w", op, a.ID, err)
		}
	}
	for _, w := range c.side {
		if _, err := q.ExecContext(ctx, s.q(w.query), w.args...); err != nil {
			return out, fmt.Errorf("repo: %s activation %d: %w", op, a.ID, err)
		}
	}
	return out, nil
}

// moveStatement is move's one PostgreSQL statement: the guarded update (and
// the run lock's check, when c has a guard) in a data-modifying CTE, the
// event inserted and the side writes made from what it matched, and the
// moved row selected. A guard that matched nothing writes nothing and
// returns no row.
func (s *Store) moveStatement(update, returning string, args []any, ev Event, c change) (string, []any) {
	var b strings.Builder
	var qargs []any
	b.WriteString(`WITH `)
	if c.guard != (LockGuard{}) {
		b.WriteString(heldCTE + `, `)
		qargs = append(qargs, c.guard.heldArgs()...)
		update += ` AND EXISTS (SELECT 1 FROM held)`
	}
	if c.pgWith != "" {
		b.WriteString(c.pgWith + `, `)
		qargs = append(qargs, c.pgWithArgs...)
		update += ` AND ` + c.pgWhere
	}
	b.WriteString(`moved AS (` + update + ` RETURNING ` + returning + `)`)
	qargs = append(qargs, args...)
	switch {
	case len(c.calls) > 0:
		var own *Event
		if !c.noEvent {
			own = &ev
		}
		qargs = append(qargs, s.answeredStatement(&b, c.calls, own)...)
	case !c.noEvent:
		b.WriteString(`, ev AS (INSERT INTO events
(at, run_id, activation_id, kind, step, from_state, to_state, outcome, code, message, duration_ns, actor)
SELECT ?, ?, id, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM moved)`)
		qargs = append(qargs, s.t(ev.At), ev.RunID, ev.Kind, string(ev.Step), string(ev.FromState), string(ev.ToState),
			ev.Outcome, ev.Code, ev.Message, int64(ev.Duration), ev.Actor)
	}
	for i, w := range c.side {
		fmt.Fprintf(&b, `, side%d AS (%s AND EXISTS (SELECT 1 FROM moved))`, i, w.query)
		qargs = append(qargs, w.args...)
	}
	b.WriteString(` SELECT * FROM moved`)
	return s.q(b.String()), qargs
}

// heldCTE is the run lock's check on PostgreSQL, a CTE named held that has
// a row while the guard's session holds its advisory lock; heldArgs are its
// arguments.
const heldCTE = `held AS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = ? AND granted
AND classid = ((?::bigint >> 32) & 4294967295)::oid AND objid = (?::bigint & 4294967295)::oid AND objsubid = 1)`

func (g LockGuard) heldArgs() []any { return []any{g.pid, g.key, g.key} }

// transition runs move (in one transaction on SQLite; one statement on
// PostgreSQL) and, once committed, updates *a in place.
//
// c.calls are written with it (AnsweredCall), in the same statement or
// transaction: also when the guard matched nothing (ErrLostClaim, which
// commits them alone), and on their own after a statement or transaction
// that failed.
func (s *Store) transition(ctx context.Context, op string, a *Activation, now time.Time, c change) error {
	if len(c.calls) > 0 && c.guard != (LockGuard{}) {
		// A guard's failure reads as ErrLocked, after which nobody could
		// tell whether the calls were written.
		return fmt.Errorf("repo: %s activation %d: a guarded transition takes no answered calls", op, a.ID)
	}
	var moved Activation
	var err error
	written := false // the calls, by the transition's statement or transaction
	if s.dialect == DialectPostgres {
		// One statement, retried on a spurious cancel by getPrepared.
		p := s.db
		if c.lazy && answeredOK(c.calls) {
			p = s.lazyPool()
		}
		moved, err = s.move(ctx, p, op, a, c, now)
		// A row not claimed is refused before the statement is sent.
		written = a.ClaimToken != "" && (err == nil || errors.Is(err, ErrLostClaim))
	} else {
		var lost error
		err = s.InTx(ctx, func(tx *sqlx.Tx) error {
			if err := s.writeAnsweredTx(ctx, tx, c.calls); err != nil {
				return err
			}
			var err error
			moved, err = s.move(ctx, tx, op, a, c, now)
			if errors.Is(err, ErrLostClaim) && len(c.calls) > 0 {
				lost = err // the move wrote nothing: commit the calls
				return nil
			}
			return err
		})
		written = err == nil
		if err == nil {
			err = lost
		}
	}
	if !written && len(c.calls) > 0 {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), answeredTimeout)
		if cerr := s.WriteAnswered(wctx, c.calls...); cerr != nil {
			err = errors.Join(err, cerr)
		}
		cancel()
	}
	if err != nil {
		return err
	}
	*a = moved
	return nil
}

// SetCustomer stores the customer number addCustomer returned (pending ->
// pending) and keeps the claim. Errors: ErrLostClaim (wrapped).
func (s *Store) SetCustomer(ctx context.Context, a *Activation, custNo int64, now time.Time) error {
	return s.transition(ctx, "set customer", a, now, change{
		to: StatePending, set: `cust_no = ?`, args: []any{custNo}, keepClaim: true,
		step: StepCustomer, outcome: "ok",
	})
}

// MarkSelected records that r's number is selected for a (pending ->
// selected: msn, reserved_at) and assigns the reservation to it; the claim
// is kept. calls (selectResource's, answered) are written with it
// (AnsweredCall). Errors: ErrLostClaim when a moved or r is no longer free
// (or assigned to a), or r is not held by a's credential.
func (s *Store) MarkSelected(ctx context.Context, a *Activation, r Reservation, now time.Time, calls ...AnsweredCall) error {
	if s.groupable(ctx, s.selectedMoves, a, calls) {
		res, _ := s.selectedMoves.do(ctx, s.selectedMove(a, r, now, calls))
		return res
	}
	if s.dialect == DialectPostgres {
		return s.markSelectedPG(ctx, a, r, now, calls)
	}
	var reservedAt time.Time
	err := s.InTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.writeAnsweredTx(ctx, tx, calls); err != nil {
			return err
		}
		// Take the reservation first so its reserved_at (the request's send
		// time) is what the activation carries.
		var rt nullTime
		err := tx.QueryRowxContext(ctx, s.q(`UPDATE reservations SET state = 'assigned', activation_id = ?, updated_at = ?
WHERE id = ? AND credential = ? AND (state = 'free' OR (state = 'assigned' AND activation_id = ?)) RETURNING reserved_at`),
			a.ID, s.t(now), r.ID, a.Credential, a.ID).Scan(&rt)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && rt.T == nil) {
			return fmt.Errorf("repo: mark selected activation %d: reservation %d no longer free: %w", a.ID, r.ID, ErrLostClaim)
		}
		if err != nil {
			return fmt.Errorf("repo: mark selected activation %d: %w", a.ID, err)
		}
		reservedAt = *rt.T
		moved, err := s.move(ctx, tx, "mark selected", a, change{
			to: StateSelected, set: `msn = ?, reserved_at = ?`, args: []any{r.MSN, s.t(reservedAt)}, keepClaim: true,
			step: StepSelect, outcome: "ok",
			// Numbers taken earlier in this claim and not used go back to the run.
			side: []sideWrite{{`UPDATE reservations SET state = 'free', activation_id = NULL, updated_at = ?
WHERE activation_id = ? AND state = 'assigned' AND id <> ?`, []any{s.t(now), a.ID, r.ID}}},
		}, now)
		if err != nil {
			return err
		}
		*a = moved
		return nil
	})
	if err != nil && len(calls) > 0 {
		// Rolled back, the reservation's update with it: the calls on
		// their own.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), answeredTimeout)
		defer cancel()
		if cerr := s.WriteAnswered(wctx, calls...); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}
	return err
}

// markSelectedPG is MarkSelected in one PostgreSQL statement: the
// reservation is locked and checked (free, or already a's, and a's
// credential's) before the move, which takes its reserved_at; the
// reservation is assigned and the other numbers freed only when the move
// matched.
func (s *Store) markSelectedPG(ctx context.Context, a *Activation, r Reservation, now time.Time, calls []AnsweredCall) error {
	c := change{
		to: StateSelected, set: `msn = ?, reserved_at = (SELECT reserved_at FROM held_number)`, args: []any{r.MSN},
		keepClaim: true, step: StepSelect, outcome: "ok",
		pgWith: `held_number AS (SELECT reserved_at FROM reservations WHERE id = ? AND credential = ?
AND (state = 'free' OR (state = 'assigned' AND activation_id = ?)) FOR UPDATE)`,
		pgWithArgs: []any{r.ID, a.Credential, a.ID},
		pgWhere:    `(SELECT reserved_at FROM held_number) IS NOT NULL`,
		side: []sideWrite{
			{`UPDATE reservations SET state = 'assigned', activation_id = ?, updated_at = ? WHERE id = ?`,
				[]any{a.ID, s.t(now), r.ID}},
			// Numbers taken earlier in this claim and not used go back to the run.
			{`UPDATE reservations SET state = 'free', activation_id = NULL, updated_at = ?
WHERE activation_id = ? AND state = 'assigned' AND id <> ?`, []any{s.t(now), a.ID, r.ID}},
		},
	}
	c.calls = calls
	err := s.transition(ctx, "mark selected", a, now, c)
	if errors.Is(err, ErrLostClaim) && !s.numberStillFree(ctx, a, r) {
		return fmt.Errorf("repo: mark selected activation %d: reservation %d no longer free: %w", a.ID, r.ID, ErrLostClaim)
	}
	return err
}

// numberStillFree says, after a MarkSelected that wrote nothing, whether
// r could still be a's (free, or assigned to a, and a's credential's): when
// not, the reservation is what was lost. A failed check reads as free.
func (s *Store) numberStillFree(ctx context.Context, a *Activation, r Reservation) bool {
	free := true
	if err := s.db.GetContext(ctx, &free, s.q(`SELECT EXISTS (SELECT 1 FROM reservations WHERE id = ? AND credential = ?
AND (state = 'free' OR (state = 'assigned' AND activation_id = ?)))`), r.ID, a.Credential, a.ID); err != nil {
		return true
	}
	return free
}

// selectedMove is MarkSelected's transition of a as a move group takes it.
func (s *Store) selectedMove(a *Activation, r Reservation, now time.Time, calls []AnsweredCall) *groupedMove {
	return &groupedMove{a: a, now: now, vals: []any{r.MSN}, calls: calls, number: r,
		apply:  func(a *Activation) { a.MSN = r.MSN }, // reserved_at: the reservation's, from the statement
		single: func(ctx context.Context) error { return s.markSelectedPG(ctx, a, r, now, calls) },
	}
}

// selectedShape is MarkSelected's transition as moved together (moves.go):
// what markSelectedPG writes, committed durably, as it is.
var selectedShape = &moveShape{op: "mark selected", to: StateSelected, step: StepSelect, outcome: "ok",
	cols: []string{"msn"}, types: []string{"text"}, keepClaim: true, number: true, durable: true}

// BeginOrder writes the intent before orderCreate (selected -> ordering:
// order_sent_at, order_attempts+1, qr_by_email) and keeps the claim.
// Errors: ErrLostClaim.
//
// The write is also guarded by the run lock g: once the lock's session is
// gone (a restarted database, a terminated backend) or its lease passed, a
// second runner may hold the credential, so no new intent may be written
// and BeginOrder fails with ErrLocked. The zero LockGuard checks nothing.
func (s *Store) BeginOrder(ctx context.Context, a *Activation, g LockGuard, qrByEmail bool, now time.Time) error {
	if mg := s.beginGroup(g); s.groupable(ctx, mg, a, nil) {
		res, _ := mg.do(ctx, s.beginMove(a, g, qrByEmail, now))
		return res
	}
	return s.beginOrder(ctx, a, g, qrByEmail, now)
}

// beginMove is BeginOrder's transition of a as a move group takes it.
func (s *Store) beginMove(a *Activation, g LockGuard, qrByEmail bool, now time.Time) *groupedMove {
	at := now.UTC().Truncate(time.Microsecond)
	return &groupedMove{a: a, now: now, vals: []any{s.t(now), qrByEmail}, guard: g,
		apply: func(a *Activation) {
			a.OrderSentAt, a.QRByEmail = &at, qrByEmail
			a.OrderAttempts++
		},
		single: func(ctx context.Context) error { return s.beginOrder(ctx, a, g, qrByEmail, now) },
	}
}

// beginShape is BeginOrder's transition as moved together (moves.go): it
// sets what beginOrder's change sets, keeps the claim, is guarded by the
// run lock and commits durably (the intent is written before the call).
var beginShape = &moveShape{op: "begin order", to: StateOrdering, step: StepOrder, outcome: "intent",
	cols: []string{"order_sent_at", "qr_by_email"}, types: []string{"timestamptz", "boolean"},
	fixed: "order_attempts = order_attempts + 1", keepClaim: true, durable: true}

// beginOrder is BeginOrder as a statement of its own.
func (s *Store) beginOrder(ctx context.Context, a *Activation, g LockGuard, qrByEmail bool, now time.Time) error {
	return s.transition(ctx, "begin order", a, now, change{
		to: StateOrdering, set: `order_sent_at = ?, order_attempts = order_attempts + 1, qr_by_email = ?`,
		args: []any{s.t(now), qrByEmail}, keepClaim: true,
		step: StepOrder, outcome: "intent", guard: g,
	})
}

// OrderAccepted records the accepted order (ordering -> submitted: order_id,
// next_poll_at) and consumes the reservation. calls (orderCreate's,
// answered) are written with it (AnsweredCall). Errors: ErrLostClaim.
func (s *Store) OrderAccepted(ctx context.Context, a *Activation, orderID string, now, nextPoll time.Time, calls ...AnsweredCall) error {
	if s.groupable(ctx, s.acceptedMoves, a, calls) {
		res, _ := s.acceptedMoves.do(ctx, s.acceptedMove(a, orderID, now, nextPoll, calls))
		return res
	}
	return s.orderAccepted(ctx, a, orderID, now, nextPoll, calls)
}

// acceptedMove is OrderAccepted's transition of a as a move group takes it.
func (s *Store) acceptedMove(a *Activation, orderID string, now, nextPoll time.Time, calls []AnsweredCall) *groupedMove {
	next := nextPoll.UTC().Truncate(time.Microsecond)
	return &groupedMove{a: a, now: now, vals: []any{orderID, s.t(nextPoll)}, calls: calls,
		apply:  func(a *Activation) { a.OrderID, a.NextPollAt = orderID, &next },
		single: func(ctx context.Context) error { return s.orderAccepted(ctx, a, orderID, now, nextPoll, calls) },
	}
}

// acceptedShape is OrderAccepted's transition as moved together (moves.go):
// it sets what orderAccepted's change sets and consumes the reservation.
var acceptedShape = &moveShape{op: "order accepted", to: StateSubmitted, step: StepOrder, outcome: "accepted",
	cols: []string{"order_id", "next_poll_at"}, types: []string{"text", "timestamptz"}, settle: ReservationConsumed}

// orderAccepted is OrderAccepted as a statement of its own.
func (s *Store) orderAccepted(ctx context.Context, a *Activation, orderID string, now, nextPoll time.Time, calls []AnsweredCall) error {
	return s.transition(ctx, "order accepted", a, now, change{
		to: StateSubmitted, set: `order_id = ?, next_poll_at = ?`, args: []any{orderID, s.t(nextPoll)},
		step: StepOrder, outcome: "accepted",
		side: []sideWrite{s.settleReservation(a.ID, ReservationConsumed, now)},
		// Lost in a server crash, the row is left ordering, and reconcile
		// adopts the order from its number's state.
		lazy:  true,
		calls: calls,
	})
}

// Fail moves a to failed with its last error (step, Octane code, message)
// and clears the claim. A pending row's held numbers go back to the run;
// others stay assigned to the failed row for the release phase.
// Errors: ErrLostClaim.
func (s *Store) Fail(ctx context.Context, a *Activation, step Step, code, msg string, now time.Time) error {
	return s.transition(ctx, "fail", a, now, change{
		to: StateFailed,
		// The failing attempt counts: the Failures sheet shows attempts,
		// and a row rejected on its first call made one.
		set: `attempts = attempts + 1, last_error_step = ?, last_error_code = ?, last_error_message = ?,
first_attempt_at = COALESCE(first_attempt_at, ?), last_attempt_at = ?`,
		args: []any{string(step), code, msg, s.t(now), s.t(now)},
		step: step, outcome: "failed", code: code, message: msg,
		side: s.unhold(a.State, a.ID, now),
	})
}

// MaxBackoff and MinBackoff clamp BackoffDelay.
const (
	MinBackoff = time.Minute
	MaxBackoff = 6 * time.Hour
)

// BackoffDelay is the wait after the attempt-th failed attempt, before
// jitter: attempt^4 seconds clamped to [MinBackoff, MaxBackoff].
func BackoffDelay(attempt int) time.Duration {
	if attempt >= 13 { // 13^4 s > 6 h; also keeps the power from overflowing
		return MaxBackoff
	}
	a := time.Duration(max(attempt, 1))
	return min(max(a*a*a*a*time.Second, MinBackoff), MaxBackoff)
}

// RetryPolicy says when a row's transport failures end in failure. A row
// fails only when it has made MaxAttempts attempts AND its first failed
// attempt is at least MinSpan old, so an ordinary outage (hours, a day)
// never fails live work; with NeverFail it keeps trying (a completed
// service is never failed because its QR code could not be fetched yet).
type RetryPolicy struct {
	MaxAttempts int           // attempts before failing (0: never by count)
	MinSpan     time.Duration // the attempts must span at least this long
	MaxDelay    time.Duration // caps BackoffDelay (0: MaxBackoff)
	NeverFail   bool
}

// DefaultRetryPolicy: 8 attempts over at least two days.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 8, MinSpan: 48 * time.Hour}

// gaveUp reports whether the attempt-th failed attempt of a row whose first
// failed attempt was at first ends it.
func (p RetryPolicy) gaveUp(attempt int, first *time.Time, now time.Time) bool {
	if p.NeverFail || p.MaxAttempts <= 0 || attempt < p.MaxAttempts {
		return false
	}
	return first != nil && now.Sub(*first) >= p.MinSpan
}

// Backoff records a failed attempt (transport errors only): attempts+1,
// next_attempt_at = now + BackoffDelay (capped by the policy) + up to 10%
// jitter, the last error, claim cleared. The state is kept, except ordering
// -> selected (only when the order provably did not reach Octane). When the
// policy gives up the row fails instead and failed is true. Errors:
// ErrLostClaim.
func (s *Store) Backoff(ctx context.Context, a *Activation, step Step, code, msg string, now time.Time, policy RetryPolicy) (failed bool, err error) {
	attempt := a.Attempts + 1
	to := a.State
	if to == StateOrdering {
		to = StateSelected
	}
	outcome := "retry"
	next := now
	if policy.gaveUp(attempt, a.FirstAttemptAt, now) {
		to, outcome, failed = StateFailed, "failed", true
	} else {
		d := BackoffDelay(attempt)
		if policy.MaxDelay > 0 {
			d = min(d, policy.MaxDelay)
		}
		next = now.Add(d + time.Duration(rand.Int64N(int64(d/10)+1)))
	}
	err = s.transition(ctx, "backoff", a, now, change{
		to: to,
		set: `attempts = attempts + 1, next_attempt_at = ?, last_error_step = ?, last_error_code = ?, last_error_message = ?,
first_attempt_at = COALESCE(first_attempt_at, ?), last_attempt_at = ?`,
		args: []any{s.t(next), string(step), code, msg, s.t(now), s.t(now)},
		step: step, outcome: outcome, code: code, message: msg,
		side: s.unhold(a.State, a.ID, now),
	})
	if err != nil {
		return false, err
	}
	return failed, nil
}

// Unclaim clears a's claim and changes nothing else (a pending row's held
// numbers go back to the run). Errors: ErrLostClaim.
func (s *Store) Unclaim(ctx context.Context, a *Activation) error {
	now := a.UpdatedAt
	return s.transition(ctx, "unclaim", a, now, change{to: a.State, noEvent: true, side: s.unhold(a.State, a.ID, now)})
}

// ReconcileResubmit: queryResources says SELECTED, no order was created
// (ordering -> selected); the claim is kept for the resubmit.
func (s *Store) ReconcileResubmit(ctx context.Context, a *Activation, now time.Time) error {
	return s.transition(ctx, "reconcile resubmit", a, now, change{
		to: StateSelected, keepClaim: true, step: StepReconcile, outcome: "selected",
	})
}

// ReconcileAdopt: queryResources says IN_USE, the order exists (ordering ->
// submitted, adopted, order_id unknown, next_poll_at = nextPoll); the
// reservation is consumed.
func (s *Store) ReconcileAdopt(ctx context.Context, a *Activation, now, nextPoll time.Time) error {
	return s.transition(ctx, "reconcile adopt", a, now, change{
		to: StateSubmitted, set: `adopted = ?, next_poll_at = ?`, args: []any{true, s.t(nextPoll)},
		step: StepReconcile, outcome: "in_use",
		side: []sideWrite{s.settleReservation(a.ID, ReservationConsumed, now)},
	})
}

// BackToPending puts an ordering row whose orderCreate Octane provably did
// not take (it answered that resources are not available, and the number was
// given back) back to pending: msn and reserved_at cleared, due now; the
// reservation is released. Errors: ErrLostClaim.
func (s *Store) BackToPending(ctx context.Context, a *Activation, step Step, outcome string, now time.Time) error {
	return s.transition(ctx, "back to pending", a, now, change{
		to: StatePending, set: `msn = '', reserved_at = NULL, next_attempt_at = ?`, args: []any{s.t(now)},
		step: step, outcome: outcome,
		side: []sideWrite{s.settleReservation(a.ID, ReservationReleased, now)},
	})
}

// OrderCompleted records orderQuery COMPLETE: submitted -> completed (we
// fetch the QR next; due now, attempts reset for the QR phase) when awaitQR,
// else -> provisioned. calls (orderQuery's, answered) are written with it
// (AnsweredCall). Errors: ErrLostClaim.
func (s *Store) OrderCompleted(ctx context.Context, a *Activation, serviceNumber string, awaitQR bool, now time.Time, calls ...AnsweredCall) error {
	g := s.provisionedMoves
	if awaitQR {
		g = s.completedMoves
	}
	if s.groupable(ctx, g, a, calls) {
		res, _ := g.do(ctx, s.completedMove(a, serviceNumber, awaitQR, now, calls))
		return res
	}
	return s.orderCompleted(ctx, a, serviceNumber, awaitQR, now, calls)
}

// completedMove is OrderCompleted's transition of a as a move group takes
// it: completedShape's values when awaitQR, provisionedShape's otherwise.
func (s *Store) completedMove(a *Activation, serviceNumber string, awaitQR bool, now time.Time, calls []AnsweredCall) *groupedMove {
	at := now.UTC().Truncate(time.Microsecond)
	vals := []any{serviceNumber, s.t(now)}
	if awaitQR {
		vals = append(vals, s.t(now))
	}
	return &groupedMove{a: a, now: now, vals: vals, calls: calls,
		apply: func(a *Activation) {
			a.ServiceNumber, a.CompletedAt = serviceNumber, &at
			if awaitQR {
				a.Attempts, a.NextAttemptAt = 0, at
			}
		},
		single: func(ctx context.Context) error { return s.orderCompleted(ctx, a, serviceNumber, awaitQR, now, calls) },
	}
}

// completedShape and provisionedShape are OrderCompleted's transitions as
// moved together (moves.go): they set what orderCompleted's change sets.
var (
	completedShape = &moveShape{op: "order completed", to: StateCompleted, step: StepPoll, outcome: "complete",
		cols: []string{"service_number", "completed_at", "next_attempt_at"}, types: []string{"text", "timestamptz", "timestamptz"},
		fixed: "attempts = 0"}
	provisionedShape = &moveShape{op: "order completed", to: StateProvisioned, step: StepPoll, outcome: "complete",
		cols: []string{"service_number", "completed_at"}, types: []string{"text", "timestamptz"}}
)

// orderCompleted is OrderCompleted as a statement of its own.
func (s *Store) orderCompleted(ctx context.Context, a *Activation, serviceNumber string, awaitQR bool, now time.Time, calls []AnsweredCall) error {
	c := change{
		to: StateProvisioned, set: `service_number = ?, completed_at = ?`, args: []any{serviceNumber, s.t(now)},
		step: StepPoll, outcome: "complete",
		// Lost in a server crash, the order is polled again at its next
		// slot, which the claim stored before the call.
		lazy:  true,
		calls: calls,
	}
	if awaitQR {
		c.to = StateCompleted
		c.set += `, attempts = 0, next_attempt_at = ?`
		c.args = append(c.args, s.t(now))
	}
	return s.transition(ctx, "order completed", a, now, c)
}

// CompletedWithQR records an order found complete together with its QR
// code (an adopted order, whose first poll is getEsimDetails itself):
// submitted -> completed -> qr_ready in one transaction, with both events,
// so no QR fetch claims the row in between. Errors: ErrLostClaim.
func (s *Store) CompletedWithQR(ctx context.Context, a *Activation, serviceNumber, code string, png []byte, iccid string, now time.Time) error {
	return s.InTx(ctx, func(tx *sqlx.Tx) error {
		done, err := s.move(ctx, tx, "order completed", a, change{
			to: StateCompleted, set: `service_number = ?, completed_at = ?, attempts = 0, next_attempt_at = ?`,
			args: []any{serviceNumber, s.t(now), s.t(now)}, keepClaim: true, step: StepPoll, outcome: "complete",
		}, now)
		if err != nil {
			return err
		}
		ready, err := s.move(ctx, tx, "qr ready", &done, change{
			to: StateQRReady, set: `activation_code = ?, qr_png = ?, iccid = ?`, args: []any{code, png, iccid},
			step: StepQR, outcome: "ok",
		}, now)
		if err != nil {
			return err
		}
		ready.QRPNG = png
		*a = ready
		return nil
	})
}

// QRReady stores the eSIM's activation code, QR image and ICCID (completed ->
// qr_ready). calls (getEsimDetails', answered) are written with it
// (AnsweredCall). Errors: ErrLostClaim.
func (s *Store) QRReady(ctx context.Context, a *Activation, code string, png []byte, iccid string, now time.Time, calls ...AnsweredCall) error {
	if s.groupable(ctx, s.qrMoves, a, calls) {
		res, _ := s.qrMoves.do(ctx, s.qrMove(a, code, png, iccid, now, calls))
		return res
	}
	return s.qrReady(ctx, a, code, png, iccid, now, calls)
}

// qrMove is QRReady's transition of a as a move group takes it.
func (s *Store) qrMove(a *Activation, code string, png []byte, iccid string, now time.Time, calls []AnsweredCall) *groupedMove {
	return &groupedMove{a: a, now: now, vals: []any{code, png, iccid}, calls: calls,
		apply:  func(a *Activation) { a.ActivationCode, a.QRPNG, a.ICCID = code, png, iccid },
		single: func(ctx context.Context) error { return s.qrReady(ctx, a, code, png, iccid, now, calls) },
	}
}

// qrReadyShape is QRReady's transition as moved together (moves.go): it
// sets what qrReady's change sets.
var qrReadyShape = &moveShape{op: "qr ready", to: StateQRReady, step: StepQR, outcome: "ok",
	cols: []string{"activation_code", "qr_png", "iccid"}, types: []string{"text", "bytea", "text"}}

// qrReady is QRReady as a statement of its own.
func (s *Store) qrReady(ctx context.Context, a *Activation, code string, png []byte, iccid string, now time.Time, calls []AnsweredCall) error {
	err := s.transition(ctx, "qr ready", a, now, change{
		to: StateQRReady, set: `activation_code = ?, qr_png = ?, iccid = ?`, args: []any{code, png, iccid},
		step: StepQR, outcome: "ok",
		// Lost in a server crash, the row is left completed and its QR
		// code fetched again; a report reads the code only once it is
		// stored, and marks it reported with an ordinary commit.
		lazy:  true,
		calls: calls,
	})
	if err != nil {
		return err
	}
	a.QRPNG = png
	return nil
}

// Activation returns one activation by id. Errors: ErrNotFound.
func (s *Store) Activation(ctx context.Context, id int64) (Activation, error) {
	var a Activation
	err := s.db.GetContext(ctx, &a, s.q(`SELECT `+activationColumns+` FROM activations WHERE id = ?`), id)
	if err != nil {
		return a, fmt.Errorf("repo: activation %d: %w", id, notFound(err))
	}
	return a, nil
}

// ActivationByRef returns one activation by sales reference. Errors: ErrNotFound.
func (s *Store) ActivationByRef(ctx context.Context, salesRef string) (Activation, error) {
	var a Activation
	err := s.db.GetContext(ctx, &a, s.q(`SELECT `+activationColumns+` FROM activations WHERE sales_ref = ?`), salesRef)
	if err != nil {
		return a, fmt.Errorf("repo: activation %q: %w", salesRef, notFound(err))
	}
	return a, nil
}
