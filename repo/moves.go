package repo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"
)

// Group commit of the hot transitions (MarkSelected, BeginOrder,
// OrderAccepted, OrderCompleted, QRReady) on PostgreSQL. Each of these is
// one statement of its own (move), whose fixed cost (a round trip, parsing,
// the executor's start, a commit) is most of what it costs: set-based, the
// same update of 16 rows costs about a third of 16 single-row statements.
// So the rows that workers move at the same time are moved by one statement
// (group): one UPDATE ... FROM unnest(...) of the activations, one
// completion or insert of their answered calls, one insert of their events. Each caller still returns only once its own row is written,
// with its own result: nil, or ErrLostClaim when its row was no longer
// claimed (its calls are written all the same, as transition writes them).

// moveShape is one transition that many rows make alike: the same target
// state, step and outcome, and the same columns set from each row's values.
type moveShape struct {
	op      string
	to      State
	step    Step
	outcome string
	cols    []string // columns set from each row's vals, in order
	types   []string // their PostgreSQL types, for the array casts
	fixed   string   // further assignments without arguments ("attempts = 0"), or ""
	// settle, when set, is the state the moved row's assigned reservation
	// goes to (settleReservation's side write).
	settle string
	// keepClaim leaves the rows claimed (change.keepClaim).
	keepClaim bool
	// number takes each row's reservation (MarkSelected): the reservation
	// (groupedMove.number) is locked and must be free or the row's own and
	// of its credential; the row takes its reserved_at, the reservation is
	// assigned to it, and the row's other assigned numbers go back free.
	number bool
	// durable commits with the WAL flush although the statement runs on
	// the lazy pool: the statement itself sets synchronous_commit on for
	// its transaction (a write something is done on, like the intent).
	durable bool
}

// groupedMove is one row's transition of a moveShape, queued on the shape's
// group.
type groupedMove struct {
	a     *Activation
	now   time.Time
	vals  []any // the row's values of the shape's cols (converted: s.t, ...)
	calls []AnsweredCall
	// guard is the run lock the write needs (change.guard); a group's rows
	// share it (beginGroup).
	guard LockGuard
	// number is the reservation a number-taking shape takes (moveShape.number).
	number Reservation
	// apply writes the moved columns into a once the statement committed
	// (what move scans back on its own path).
	apply func(a *Activation)
	// single is the transition on its own (transition): the group's
	// fallback when a shared statement failed.
	single func(ctx context.Context) error
}

// moveGroup queues the rows of one moveShape.
type moveGroup = group[*groupedMove, error]

// newMoveGroup returns the group that moves rows of sh together.
func (s *Store) newMoveGroup(sh *moveShape) *moveGroup {
	return &moveGroup{
		flush: func(ctx context.Context, ms []*groupedMove) ([]error, error) { return s.movesTogether(ctx, sh, ms) },
		one:   func(ctx context.Context, m *groupedMove) (error, error) { return m.single(ctx), nil },
	}
}

// groupable says whether a transition may go through a move group: on
// PostgreSQL with the lazy pool (whose sessions keep the grouped
// statement's plan to the indexes), a claimed row, calls that may be
// committed lazily, as the grouped statement is (answeredOK), and a live
// context. A queued write is
// made whatever becomes of its caller's context (group), so a caller whose
// context is already done takes the statement of its own, which fails as
// it did before groups.
func (s *Store) groupable(ctx context.Context, g *moveGroup, a *Activation, calls []AnsweredCall) bool {
	return g != nil && s.lazy != nil && a.ClaimToken != "" && answeredOK(calls) && ctx.Err() == nil
}

// movedBase sets in a the columns every transition sets (move), with now
// as the store writes it.
func (s *Store) movedBase(a *Activation, sh *moveShape, now time.Time) {
	a.State = sh.to
	a.UpdatedAt = now.UTC().Truncate(time.Microsecond)
	if !sh.keepClaim {
		a.ClaimToken = ""
		a.ClaimUntil = nil
	}
}

// beginGroup returns the move group of BeginOrder under guard g: one per
// run lock's key (a credential), since a grouped statement checks one lock
// for all its rows. Keyed by the lock's key, not the whole guard, so that a
// process running pass after pass (each its own session, so its own guard)
// keeps one group per credential; rows of two guards that meet in a group
// (one pass ending as the next begins) fail the shared statement, and the
// group writes them one by one.
func (s *Store) beginGroup(g LockGuard) *moveGroup {
	if s.lazy == nil {
		return nil
	}
	if mg, ok := s.beginMoves.Load(g.key); ok {
		return mg.(*moveGroup)
	}
	mg, _ := s.beginMoves.LoadOrStore(g.key, s.newMoveGroup(beginShape))
	return mg.(*moveGroup)
}

// movesTogether moves ms (rows of sh) in one statement, committed lazily
// like each of them alone, and returns each row's result.
//
// The rows and calls travel as arrays (unnest), so the statement's text is
// the same whatever their number: it is prepared once per connection, as
// the single-row statements are, instead of being parsed and planned for
// every group, which cost as much as running it. Its plan finds every row
// by key (the id lists, and the lazy pool's sessions plan no sequential
// scan), whatever the tables' size when the plan was made.
func (s *Store) movesTogether(ctx context.Context, sh *moveShape, ms []*groupedMove) ([]error, error) {
	query, args, err := s.movesStatement(sh, ms)
	if err != nil {
		return nil, err
	}
	var got []struct {
		Ord        int64      `db:"ord"`
		ReservedAt *time.Time `db:"reserved_at"`
	}
	if err := s.lazyPool().selectPrepared(ctx, &got, query, args...); err != nil {
		return nil, err
	}
	n := len(ms)
	out := make([]error, n)
	done := make([]bool, n)
	for _, g := range got {
		if o := g.Ord; o >= 1 && o <= int64(n) { // WITH ORDINALITY counts from 1
			done[o-1] = true
			if sh.number {
				ms[o-1].a.ReservedAt = g.ReservedAt
			}
		}
	}
	var guardErr error
	if g := ms[0].guard; g != (LockGuard{}) && len(got) < n {
		// Nothing was written for some rows: say why, the lock first (as
		// move does).
		guardErr = s.checkGuard(ctx, s.lazyPool(), g)
	}
	for i, m := range ms {
		if !done[i] && guardErr != nil {
			out[i] = fmt.Errorf("repo: %s activation %d: %w", sh.op, m.a.ID, guardErr)
			continue
		}
		if !done[i] && sh.number && !s.numberStillFree(ctx, m.a, m.number) {
			out[i] = fmt.Errorf("repo: %s activation %d: reservation %d no longer free: %w", sh.op, m.a.ID, m.number.ID, ErrLostClaim)
			continue
		}
		if !done[i] {
			out[i] = fmt.Errorf("repo: %s activation %d (%s -> %s): %w", sh.op, m.a.ID, m.a.State, sh.to, ErrLostClaim)
			continue
		}
		s.movedBase(m.a, sh, m.now)
		m.apply(m.a)
	}
	return out, nil
}

// movesStatement is movesTogether's statement and its arguments.
func (s *Store) movesStatement(sh *moveShape, ms []*groupedMove) (string, []any, error) {
	n := len(ms)
	ids := make([]int64, n)
	from, token, at, run := make([]any, n), make([]any, n), make([]any, n), make([]any, n)
	vals := make([][]any, len(sh.cols))
	for j := range vals {
		vals[j] = make([]any, n)
	}
	rids := make([]int64, n) // the reservations a number-taking shape takes
	for i, m := range ms {
		rids[i] = m.number.ID
		if len(m.vals) != len(sh.cols) {
			return "", nil, fmt.Errorf("repo: %s activation %d: %d values for %d columns", sh.op, m.a.ID, len(m.vals), len(sh.cols))
		}
		ids[i], from[i], token[i], at[i], run[i] = m.a.ID, string(m.a.State), m.a.ClaimToken, s.t(m.now), m.a.RunID
		for j, v := range m.vals {
			vals[j][i] = v
		}
	}
	var b strings.Builder
	var args []any
	b.WriteString(`WITH `)
	guard := ms[0].guard
	for _, m := range ms {
		if m.guard != guard {
			return "", nil, fmt.Errorf("repo: %s: rows of one group under different run locks", sh.op)
		}
	}
	var where string
	if guard != (LockGuard{}) {
		b.WriteString(heldCTE + `, `)
		args = append(args, guard.heldArgs()...)
		where += ` AND EXISTS (SELECT 1 FROM held)`
	}
	if sh.durable {
		// set_config's is_local lasts to the end of the statement's
		// transaction, whose commit reads synchronous_commit; the scalar
		// subquery runs once, before any row is written.
		b.WriteString(`durable AS (SELECT set_config('synchronous_commit', 'on', true) AS mode), `)
		where += ` AND (SELECT mode FROM durable) = 'on'`
	}
	args = append(args, pq.Array(ids), pq.GenericArray{A: from}, pq.GenericArray{A: token}, pq.GenericArray{A: at}, pq.GenericArray{A: run})
	b.WriteString(`v AS (SELECT * FROM unnest(?::bigint[], ?::text[], ?::text[], ?::timestamptz[], ?::bigint[]`)
	for j, t := range sh.types {
		fmt.Fprintf(&b, `, ?::%s[]`, t)
		args = append(args, arrayOf(t, vals[j]))
	}
	if sh.number {
		creds := make([]any, n)
		for i, m := range ms {
			creds[i] = m.a.Credential
		}
		b.WriteString(`, ?::bigint[], ?::text[]`)
		args = append(args, pq.Array(rids), pq.GenericArray{A: creds})
	}
	b.WriteString(`) WITH ORDINALITY AS v (id, from_state, claim_token, at, run_id`)
	for j := range sh.cols {
		fmt.Fprintf(&b, `, p%d`, j)
	}
	if sh.number {
		b.WriteString(`, rid, credential`)
	}
	b.WriteString(`, ord))`)
	source, reservedAt := `v`, `NULL::timestamptz`
	if sh.number {
		// markSelectedPG's held_number, for every row: its reservation,
		// locked, while it is free or already the row's own.
		b.WriteString(`,
held_number AS (SELECT r.id AS rid, r.reserved_at FROM reservations r JOIN v ON r.id = v.rid
WHERE r.id = ANY (?::bigint[]) AND r.credential = v.credential
AND (r.state = 'free' OR (r.state = 'assigned' AND r.activation_id = v.id)) FOR UPDATE OF r)`)
		args = append(args, pq.Array(rids))
		source, reservedAt = `v JOIN held_number h ON h.rid = v.rid`, `h.reserved_at`
	}
	b.WriteString(`,
moved AS (UPDATE activations a SET state = ?, updated_at = v.at`)
	args = append(args, string(sh.to))
	if sh.number {
		b.WriteString(`, reserved_at = h.reserved_at`)
	}
	for j, c := range sh.cols {
		fmt.Fprintf(&b, `, %s = v.p%d`, c, j)
	}
	if sh.fixed != "" {
		b.WriteString(`, ` + sh.fixed)
	}
	if !sh.keepClaim {
		b.WriteString(`, claim_token = '', claim_until = NULL`)
	}
	// The id list lets the planner find the rows by key; joined with v
	// alone it may read the table whole (as finishCallsTogether says).
	b.WriteString(`
FROM ` + source + ` WHERE a.id = v.id AND a.id = ANY (?::bigint[]) AND a.state = v.from_state AND a.claim_token = v.claim_token` + where + `
RETURNING v.ord, v.id, v.at, v.run_id, v.from_state, ` + reservedAt + ` AS reserved_at`)
	if sh.number {
		b.WriteString(`, v.rid`)
	}
	b.WriteString(`)`)
	args = append(args, pq.Array(ids))
	if sh.number {
		// markSelectedPG's side writes, from the rows moved.
		b.WriteString(`,
assigned AS (UPDATE reservations r SET state = 'assigned', activation_id = m.id, updated_at = m.at FROM moved m
WHERE r.id = m.rid AND r.id = ANY (?::bigint[])),
freed AS (UPDATE reservations r SET state = 'free', activation_id = NULL, updated_at = m.at FROM moved m
WHERE r.activation_id = m.id AND r.activation_id = ANY (?::bigint[]) AND r.state = 'assigned' AND r.id <> m.rid)`)
		args = append(args, pq.Array(rids), pq.Array(ids))
	}
	if sh.settle != "" {
		b.WriteString(`,
settled AS (UPDATE reservations r SET state = ?, updated_at = moved.at FROM moved
WHERE r.activation_id = moved.id AND r.activation_id = ANY (?::bigint[]) AND r.state = 'assigned')`)
		args = append(args, sh.settle, pq.Array(ids))
	}

	// The answered calls: completed by their in-flight rows or inserted
	// whole, whatever the move matched (transition's rule).
	var fin, ins []Call
	var finIDs []int64
	for _, m := range ms {
		for _, c := range m.calls {
			if c.ID != 0 {
				fin = append(fin, c.Call)
				finIDs = append(finIDs, c.ID)
			} else {
				ins = append(ins, c.Call)
			}
		}
	}
	var events []string
	if len(fin) > 0 {
		cols := callColumns(s, fin)
		b.WriteString(`,
cf AS (SELECT * FROM unnest(?::bigint[], ?::timestamptz[], ?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[],
?::text[], ?::timestamptz[]) AS cf (id, sent_at, duration_ns, waited_ns, outcome, code, message, msn, order_id, blocked_until)),
fin AS (UPDATE calls c SET sent_at = cf.sent_at, duration_ns = cf.duration_ns, waited_ns = cf.waited_ns, outcome = cf.outcome,
code = cf.code, message = cf.message, msn = cf.msn, order_id = cf.order_id, blocked_until = cf.blocked_until
FROM cf WHERE c.id = cf.id AND c.id = ANY (?::bigint[]) AND c.outcome = ?
RETURNING c.id, c.run_id, c.activation_id, c.method, c.sent_at, c.outcome, c.code, c.message, c.duration_ns)`)
		args = append(args, pq.Array(finIDs), cols.sentAt, cols.duration, cols.waited, cols.outcome, cols.code, cols.message,
			cols.msn, cols.orderID, cols.blocked, pq.Array(finIDs), CallInflight)
		events = append(events, `SELECT activation_id AS k, 0 AS sub, id AS seq, sent_at AS at, run_id, activation_id,
?::text AS kind, method AS step, ''::text AS from_state, ''::text AS to_state, outcome, code, message, duration_ns,
''::text AS actor FROM fin WHERE activation_id IS NOT NULL`)
	}
	if len(ins) > 0 {
		cols := callColumns(s, ins)
		b.WriteString(`,
ci AS (SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::timestamptz[], ?::bigint[], ?::bigint[], ?::text[],
?::text[], ?::text[], ?::text[], ?::text[], ?::timestamptz[]) WITH ORDINALITY AS ci (run_id, activation_id, credential, method,
sent_at, duration_ns, waited_ns, outcome, code, message, msn, order_id, blocked_until, ord)),
ins AS (INSERT INTO calls (run_id, activation_id, credential, method, sent_at, duration_ns, waited_ns, outcome, code, message,
msn, order_id, blocked_until)
SELECT run_id, activation_id, credential, method, sent_at, duration_ns, waited_ns, outcome, code, message, msn, order_id,
blocked_until FROM ci ORDER BY ord
RETURNING id, run_id, activation_id, method, sent_at, outcome, code, message, duration_ns)`)
		args = append(args, cols.runID, cols.activationID, cols.credential, cols.method, cols.sentAt, cols.duration, cols.waited,
			cols.outcome, cols.code, cols.message, cols.msn, cols.orderID, cols.blocked)
		events = append(events, `SELECT activation_id AS k, 0 AS sub, id AS seq, sent_at AS at, run_id, activation_id,
?::text AS kind, method AS step, ''::text AS from_state, ''::text AS to_state, outcome, code, message, duration_ns,
''::text AS actor FROM ins WHERE activation_id IS NOT NULL`)
	}
	events = append(events, `SELECT id AS k, 1 AS sub, 0::bigint AS seq, at, run_id, id AS activation_id, ?::text AS kind,
?::text AS step, from_state, ?::text AS to_state, ?::text AS outcome, ''::text AS code, ''::text AS message,
0::bigint AS duration_ns, ''::text AS actor FROM moved`)
	// Each row's call events come before its state event, as move writes them.
	b.WriteString(`,
ev AS (INSERT INTO events (at, run_id, activation_id, kind, step, from_state, to_state, outcome, code, message, duration_ns, actor)
SELECT at, run_id, activation_id, kind, step, from_state, to_state, outcome, code, message, duration_ns, actor FROM (`)
	b.WriteString(strings.Join(events, `
UNION ALL `))
	b.WriteString(`) e ORDER BY k, sub, seq)
SELECT ord, reserved_at FROM moved`)
	if len(fin) > 0 {
		args = append(args, EventCall)
	}
	if len(ins) > 0 {
		args = append(args, EventCall)
	}
	args = append(args, EventState, string(sh.step), string(sh.to), sh.outcome)

	return s.q(b.String()), args, nil
}

// arrayOf encodes one column's values as a PostgreSQL array of type t.
func arrayOf(t string, vs []any) any {
	if t == "bytea" {
		bs := make([][]byte, len(vs))
		for i, v := range vs {
			bs[i], _ = v.([]byte)
		}
		return pq.ByteaArray(bs)
	}
	return pq.GenericArray{A: vs}
}

// callArrays are the columns of calls, each an array argument.
type callArrays struct {
	runID, activationID, credential, method, sentAt, duration, waited, outcome, code, message, msn, orderID, blocked any
}

// callColumns returns cs's columns as arrays, converted as one call's
// arguments are (insertCallArgs, finishCallArgs).
func callColumns(s *Store, cs []Call) callArrays {
	n := len(cs)
	col := func() []any { return make([]any, n) }
	run, act, cred, meth, sent, dur, wait, outc, code, msg, msn, oid, blk := col(), col(), col(), col(), col(), col(), col(),
		col(), col(), col(), col(), col(), col()
	for i, c := range cs {
		run[i], act[i], cred[i], meth[i], sent[i] = c.runID(), c.ActivationID, c.Credential, c.Method, s.t(c.SentAt)
		dur[i], wait[i], outc[i], code[i], msg[i] = int64(c.Duration), int64(c.Waited), c.Outcome, c.Code, c.Message
		msn[i], oid[i], blk[i] = c.MSN, c.OrderID, s.nt(c.BlockedUntil)
	}
	g := func(vs []any) any { return pq.GenericArray{A: vs} }
	return callArrays{g(run), g(act), g(cred), g(meth), g(sent), g(dur), g(wait), g(outc), g(code), g(msg), g(msn), g(oid), g(blk)}
}

// GroupedMoves says how many statements moved more than one row together
// (numbers selected, intents, orders accepted and completed, QR codes stored) and how many rows those moved: a
// benchmark reads the groups' size from it. Zero on SQLite.
func (s *Store) GroupedMoves() (statements, rows int64) {
	add := func(g *moveGroup) {
		if g != nil {
			statements += g.shared.Load()
			rows += g.sharedItems.Load()
		}
	}
	for _, g := range []*moveGroup{s.selectedMoves, s.acceptedMoves, s.qrMoves, s.completedMoves, s.provisionedMoves} {
		add(g)
	}
	s.beginMoves.Range(func(_, g any) bool {
		add(g.(*moveGroup))
		return true
	})
	return statements, rows
}
