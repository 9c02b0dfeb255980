package repo

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Event kinds.
const (
	EventCall  = "call"  // an Octane call made for the activation
	EventState = "state" // a state change (or a same-state update such as a back-off)
)

// Event is one row of an activation's append-only log. Step is the phase step
// or the Octane method. It never holds a secret or a QR payload.
type Event struct {
	ID           int64         `db:"id"`
	At           time.Time     `db:"at"`
	RunID        *int64        `db:"run_id"`
	ActivationID int64         `db:"activation_id"`
	Kind         string        `db:"kind"`
	Step         Step          `db:"step"`
	FromState    State         `db:"from_state"`
	ToState      State         `db:"to_state"`
	Outcome      string        `db:"outcome"`
	Code         string        `db:"code"`
	Message      string        `db:"message"`
	Duration     time.Duration `db:"duration_ns"`
	// Actor is who made the change when it was not the job: the operator
	// of a batch retry or batch cancel (Message says why).
	Actor string `db:"actor"`
}

// addEvent appends e inside q.
func (s *Store) addEvent(ctx context.Context, q sqlx.ExecerContext, e Event) error {
	_, err := q.ExecContext(ctx, s.q(`INSERT INTO events
(at, run_id, activation_id, kind, step, from_state, to_state, outcome, code, message, duration_ns, actor)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		s.t(e.At), e.RunID, e.ActivationID, e.Kind, string(e.Step), string(e.FromState), string(e.ToState),
		e.Outcome, e.Code, e.Message, int64(e.Duration), e.Actor)
	if err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	return nil
}

// Events returns an activation's log, oldest first (empty when none).
func (s *Store) Events(ctx context.Context, activationID int64) ([]Event, error) {
	var out []Event
	err := s.db.SelectContext(ctx, &out, s.q(`SELECT id, at, run_id, activation_id, kind, step, from_state, to_state,
outcome, code, message, duration_ns, actor FROM events WHERE activation_id = ? ORDER BY id`), activationID)
	if err != nil {
		return nil, fmt.Errorf("repo: events of activation %d: %w", activationID, err)
	}
	return out, nil
}

// StartRun records the start of a run and returns its id. Errors: wrapping
// ctx.Err() when ctx ended during the insert (a cancelled pass, not a
// database failure); the database's otherwise.
func (s *Store) StartRun(ctx context.Context, at time.Time, credential string, phases []string, dryRun bool) (int64, error) {
	var id int64
	err := s.db.GetContext(ctx, &id, s.q(`INSERT INTO runs (started_at, credential, phases, dry_run)
VALUES (?, ?, ?, ?) RETURNING id`), s.t(at), credential, strings.Join(phases, ","), dryRun)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			// lib/pq answers a query cancelled by its context with the
			// server's "canceling statement due to user request", which
			// says nothing of the context.
			return 0, fmt.Errorf("repo: start run: %w: %w", cerr, err)
		}
		return 0, fmt.Errorf("repo: start run: %w", err)
	}
	return id, nil
}

// RenewRun extends run runID's lease to until: while it lasts, the run's
// free numbers are its own and no other run releases them as orphans.
// Errors: ErrNotFound for an unknown run.
func (s *Store) RenewRun(ctx context.Context, runID int64, until time.Time) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE runs SET lease_until = ? WHERE id = ?`), s.t(until), runID)
	if err != nil {
		return fmt.Errorf("repo: renew run %d: %w", runID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("repo: renew run %d: %w", runID, ErrNotFound)
	}
	return nil
}

// FinishRun records a run's end, outcome, per-phase counts and error text.
// Errors: ErrNotFound for an unknown run.
func (s *Store) FinishRun(ctx context.Context, runID int64, at time.Time, outcome string, counts map[string]int, errMsg string) error {
	if counts == nil {
		counts = map[string]int{}
	}
	js, err := json.Marshal(counts)
	if err != nil {
		return fmt.Errorf("repo: finish run %d: %w", runID, err)
	}
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE runs SET finished_at = ?, outcome = ?, counts = ?, error = ?
WHERE id = ?`), s.t(at), outcome, string(js), errMsg, runID)
	if err != nil {
		return fmt.Errorf("repo: finish run %d: %w", runID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("repo: finish run %d: %w", runID, ErrNotFound)
	}
	return nil
}

// Run is a row of runs. A run not finished whose LeaseUntil (renewed at
// every claim batch) has passed died without recording its end.
type Run struct {
	ID         int64          `db:"id"`
	StartedAt  time.Time      `db:"started_at"`
	FinishedAt *time.Time     `db:"finished_at"`
	Credential string         `db:"credential"`
	Phases     string         `db:"phases"`
	DryRun     bool           `db:"dry_run"`
	Outcome    string         `db:"outcome"`
	CountsJSON string         `db:"counts"`
	Error      string         `db:"error"`
	Counts     map[string]int `db:"-"`
	LeaseUntil *time.Time     `db:"lease_until"`
}

// decodeCounts fills Counts from CountsJSON.
func (r *Run) decodeCounts() error {
	r.Counts = map[string]int{}
	if err := json.Unmarshal([]byte(r.CountsJSON), &r.Counts); err != nil {
		return fmt.Errorf("repo: run %d counts: %w", r.ID, err)
	}
	return nil
}

// Runs returns the latest runs, newest first, at most limit.
func (s *Store) Runs(ctx context.Context, limit int) ([]Run, error) {
	var out []Run
	err := s.db.SelectContext(ctx, &out, s.q(`SELECT id, started_at, finished_at, credential, phases, dry_run,
outcome, counts, error FROM runs ORDER BY id DESC LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("repo: runs: %w", err)
	}
	for i := range out {
		if err := out[i].decodeCounts(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CallInflight is the outcome of a call written before it was sent
// (StartCall) and not completed yet: in flight, or its process died with it.
// It counts against the budget like any call that may have reached Octane.
const CallInflight = "inflight"

// Call is one Octane call as sent (faults and lost responses included).
// Message must hold no secret or QR payload. Times are on the database's
// clock (see DBClock), so that the calls of processes whose clocks differ
// line up.
type Call struct {
	RunID        int64
	ActivationID *int64
	Credential   string
	Method       string
	SentAt       time.Time
	Duration     time.Duration
	Waited       time.Duration // time spent waiting for the rate limiter
	Outcome      string
	Code         string
	Message      string
	MSN          string
	OrderID      string
	// BlockedUntil, after a fault 233, is until when the method is not to
	// be called on the credential (zero: no block).
	BlockedUntil time.Time
}

// nt converts an optional time argument: NULL when zero.
func (s *Store) nt(x time.Time) any {
	if x.IsZero() {
		return nil
	}
	return s.t(x)
}

// RecordCall appends c, a call that has ended, to the call log and, when it
// is for an activation, a call event to that activation's log, in one
// transaction; on PostgreSQL in one statement, shared with the calls
// recorded at the same moment (group.go), and committed lazily (lazyPool)
// when Octane answered it. Errors: the database's, wrapped.
func (s *Store) RecordCall(ctx context.Context, c Call) error {
	var err error
	if s.recordCalls != nil {
		_, err = s.recordCalls.do(ctx, c)
	} else {
		err = s.InTx(ctx, func(tx *sqlx.Tx) error {
			_, err := s.writeCallTx(ctx, tx, 0, c)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("repo: record call %s: %w", c.Method, err)
	}
	return nil
}

// recordCallsTogether is RecordCall for cs in one PostgreSQL statement: the
// calls inserted and the call events of those for an activation appended,
// in cs's order.
func (s *Store) recordCallsTogether(ctx context.Context, cs []Call) ([]struct{}, error) {
	var b strings.Builder
	b.WriteString(`WITH v (ord, run_id, activation_id, credential, method, sent_at, duration_ns, waited_ns, outcome, code, message,
msn, order_id, blocked_until) AS (VALUES `)
	args := make([]any, 0, 14*len(cs)+1)
	for i, c := range cs {
		if i == 0 {
			b.WriteString(`(?::int, ?::bigint, ?::bigint, ?::text, ?::text, ?::timestamptz, ?::bigint, ?::bigint, ?::text, ?::text,
?::text, ?::text, ?::text, ?::timestamptz)`)
		} else {
			b.WriteString(`, (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		}
		args = append(args, i, c.runID(), c.ActivationID, c.Credential, c.Method, s.t(c.SentAt), int64(c.Duration),
			int64(c.Waited), c.Outcome, c.Code, c.Message, c.MSN, c.OrderID, s.nt(c.BlockedUntil))
	}
	b.WriteString(`),
ins AS (INSERT INTO calls (run_id, activation_id, credential, method, sent_at, duration_ns, waited_ns, outcome, code, message,
msn, order_id, blocked_until)
SELECT run_id, activation_id, credential, method, sent_at, duration_ns, waited_ns, outcome, code, message, msn, order_id,
blocked_until FROM v ORDER BY ord),
ev AS (INSERT INTO events (at, run_id, activation_id, kind, step, from_state, to_state, outcome, code, message, duration_ns, actor)
SELECT sent_at, run_id, activation_id, ?, method, '', '', outcome, code, message, duration_ns, '' FROM v
WHERE activation_id IS NOT NULL ORDER BY ord)
SELECT COUNT(*) FROM v`)
	args = append(args, EventCall)
	var n int
	if err := s.finishPool(cs...).getPrepared(ctx, &n, s.q(b.String()), args...); err != nil {
		return nil, err
	}
	return make([]struct{}, len(cs)), nil
}

// recordCall is recordCallsTogether for one call (group's fallback).
func (s *Store) recordCall(ctx context.Context, c Call) (struct{}, error) {
	_, err := s.recordCallsTogether(ctx, []Call{c})
	return struct{}{}, err
}

func (s *Store) callEvent(ctx context.Context, tx *sqlx.Tx, c Call, runID *int64) error {
	if c.ActivationID == nil {
		return nil
	}
	err := s.addEvent(ctx, tx, Event{At: c.SentAt, RunID: runID, ActivationID: *c.ActivationID, Kind: EventCall,
		Step: Step(c.Method), Outcome: c.Outcome, Code: c.Code, Message: c.Message, Duration: c.Duration})
	if err != nil {
		return fmt.Errorf("repo: record call %s: %w", c.Method, err)
	}
	return nil
}

// StartCall writes c to the call log as in flight (outcome CallInflight,
// whatever c.Outcome says) before the request is sent, and returns the row's
// id for FinishCall or DropCall. Until then the row counts against the
// budget at c.SentAt, so a process killed with the request out still leaves
// it counted. It returns once the row is committed; on PostgreSQL the calls
// started at the same moment share one INSERT and one commit (group.go).
// Errors: the database's, wrapped.
func (s *Store) StartCall(ctx context.Context, c Call) (int64, error) {
	var id int64
	var err error
	if s.startCalls != nil {
		id, err = s.startCalls.do(ctx, c)
	} else {
		id, err = s.startCall(ctx, c)
	}
	if err != nil {
		return 0, fmt.Errorf("repo: start call %s: %w", c.Method, err)
	}
	return id, nil
}

// startCallColumns are the columns StartCall writes, and startCallArgs
// their values for c.
const startCallColumns = `run_id, activation_id, credential, method, sent_at, waited_ns, outcome, msn, order_id`

func (s *Store) startCallArgs(c Call) []any {
	return []any{c.runID(), c.ActivationID, c.Credential, c.Method, s.t(c.SentAt), int64(c.Waited), CallInflight, c.MSN, c.OrderID}
}

func (s *Store) startCall(ctx context.Context, c Call) (int64, error) {
	var id int64
	query := s.q(`INSERT INTO calls (` + startCallColumns + `)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`)
	var err error
	if s.dialect == DialectPostgres {
		err = s.getPrepared(ctx, &id, query, s.startCallArgs(c)...)
	} else {
		err = s.db.GetContext(ctx, &id, query, s.startCallArgs(c)...)
	}
	return id, err
}

// startCallsTogether inserts cs in one statement and returns their ids in
// cs's order. The ids come from the table's sequence as the rows are
// inserted, in VALUES order, so sorted they are in cs's order whatever
// order RETURNING gives them in.
func (s *Store) startCallsTogether(ctx context.Context, cs []Call) ([]int64, error) {
	var b strings.Builder
	b.WriteString(`INSERT INTO calls (` + startCallColumns + `) VALUES `)
	args := make([]any, 0, 9*len(cs))
	for i, c := range cs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`(?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		args = append(args, s.startCallArgs(c)...)
	}
	b.WriteString(` RETURNING id`)
	var ids []int64
	if err := s.selectPrepared(ctx, &ids, s.q(b.String()), args...); err != nil {
		return nil, err
	}
	if len(ids) != len(cs) {
		return nil, fmt.Errorf("inserted %d calls, got %d ids", len(cs), len(ids))
	}
	slices.Sort(ids)
	return ids, nil
}

// FinishCall completes the in-flight call id with how it ended (c's send
// time, duration, wait, outcome, code, message, numbers, order id and
// block) and, when it is for an activation, appends the call event, in one
// transaction; on PostgreSQL in one statement, shared with the calls
// finished at the same moment (group.go). Errors: ErrNotFound when id is
// not an in-flight call; the database's otherwise.
func (s *Store) FinishCall(ctx context.Context, id int64, c Call) error {
	var found bool
	var err error
	if s.finishCalls != nil {
		found, err = s.finishCalls.do(ctx, finishedCall{id, c})
	} else {
		found, err = s.finishCall(ctx, finishedCall{id, c})
	}
	if err != nil {
		return fmt.Errorf("repo: finish call %d (%s): %w", id, c.Method, err)
	}
	if !found {
		return fmt.Errorf("repo: finish call %d (%s): %w", id, c.Method, ErrNotFound)
	}
	return nil
}

// finishPool is the pool that completes (or records whole) the calls cs
// in one statement: the lazy one (lazyPool) when Octane answered every one
// of them, since a completion lost in a server crash leaves the call in
// flight, which counts against the budget as a completed call does. A call
// that failed, and above all one that met a fault 233 with the block other
// processes must keep to, is written with an ordinary commit, and so is
// every call that shares its statement.
func (s *Store) finishPool(cs ...Call) *pool {
	for _, c := range cs {
		if c.Outcome != "ok" || !c.BlockedUntil.IsZero() { // "ok": octane.OutcomeOK
			return s.db
		}
	}
	return s.lazyPool()
}

// finishedCall is one FinishCall: the in-flight row and how it ended.
type finishedCall struct {
	id int64
	c  Call
}

// finishCall completes one call and reports whether id was in flight.
func (s *Store) finishCall(ctx context.Context, f finishedCall) (bool, error) {
	c := f.c
	if s.dialect == DialectPostgres {
		// One statement, prepared: found by its key, which even a plan made
		// while the table was small keeps to.
		var n int
		err := s.finishPool(c).getPrepared(ctx, &n, s.q(`WITH done AS (`+finishCallUpdate+`),
ev AS (INSERT INTO events (at, run_id, activation_id, kind, step, from_state, to_state, outcome, code, message, duration_ns, actor)
SELECT ?, run_id, activation_id, ?, ?, '', '', ?, ?, ?, ?, '' FROM done WHERE activation_id IS NOT NULL)
SELECT COUNT(*) FROM done`),
			append(s.finishCallArgs(f.id, c), s.t(c.SentAt), EventCall, c.Method, c.Outcome, c.Code, c.Message, int64(c.Duration))...)
		return n > 0, err
	}
	var found bool
	err := s.InTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		found, err = s.writeCallTx(ctx, tx, f.id, c)
		return err
	})
	return found && err == nil, err
}

// finishCallsTogether completes fs in one PostgreSQL statement, with their
// call events (in fs's order), and reports for each whether its row was in
// flight. An id twice in fs is refused: its second completion must find
// the row completed, as it would one at a time.
func (s *Store) finishCallsTogether(ctx context.Context, fs []finishedCall) ([]bool, error) {
	var b strings.Builder
	b.WriteString(`WITH v (ord, id, sent_at, duration_ns, waited_ns, outcome, code, message, msn, order_id, blocked_until, method) AS (VALUES `)
	args := make([]any, 0, 12*len(fs)+2)
	seen := make(map[int64]bool, len(fs))
	for i, f := range fs {
		if seen[f.id] {
			return nil, fmt.Errorf("call %d finished twice in one batch", f.id)
		}
		seen[f.id] = true
		if i == 0 {
			b.WriteString(`(?::int, ?::bigint, ?::timestamptz, ?::bigint, ?::bigint, ?::text, ?::text, ?::text, ?::text, ?::text, ?::timestamptz, ?::text)`)
		} else {
			b.WriteString(`, (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		}
		c := f.c
		args = append(args, i, f.id, s.t(c.SentAt), int64(c.Duration), int64(c.Waited), c.Outcome, c.Code, c.Message,
			c.MSN, c.OrderID, s.nt(c.BlockedUntil), c.Method)
	}
	b.WriteString(`),
done AS (UPDATE calls c SET sent_at = v.sent_at, duration_ns = v.duration_ns, waited_ns = v.waited_ns, outcome = v.outcome,
code = v.code, message = v.message, msn = v.msn, order_id = v.order_id, blocked_until = v.blocked_until
FROM v WHERE c.id = v.id AND c.id = ANY (?::bigint[]) AND c.outcome = ? RETURNING c.id, c.run_id, c.activation_id),
ev AS (INSERT INTO events (at, run_id, activation_id, kind, step, from_state, to_state, outcome, code, message, duration_ns, actor)
SELECT v.sent_at, d.run_id, d.activation_id, ?, v.method, '', '', v.outcome, v.code, v.message, v.duration_ns, ''
FROM done d JOIN v ON v.id = d.id WHERE d.activation_id IS NOT NULL ORDER BY v.ord)
SELECT id FROM done`)
	// The id list lets the planner find the rows by key; joined with v
	// alone it may read the table whole.
	want := make([]int64, len(fs))
	for i, f := range fs {
		want[i] = f.id
	}
	args = append(args, pq.Array(want), CallInflight, EventCall)
	// Not prepared: a generic plan made while the table was small joins v
	// to it by reading it whole, however large it grows since.
	cs := make([]Call, len(fs))
	for i, f := range fs {
		cs[i] = f.c
	}
	var ids []int64
	if err := s.finishPool(cs...).SelectContext(ctx, &ids, s.q(b.String()), args...); err != nil {
		return nil, err
	}
	done := make(map[int64]bool, len(ids))
	for _, id := range ids {
		done[id] = true
	}
	out := make([]bool, len(fs))
	for i, f := range fs {
		out[i] = done[f.id]
	}
	return out, nil
}

// DropCall deletes the in-flight call id: its request provably never left
// the process (a dial failure), so it is no Octane call and must not count
// against the budget. Errors: ErrNotFound when id is not an in-flight call;
// the database's otherwise.
func (s *Store) DropCall(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM calls WHERE id = ? AND outcome = ?`), id, CallInflight)
	if err != nil {
		return fmt.Errorf("repo: drop call %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("repo: drop call %d: %w", id, ErrNotFound)
	}
	return nil
}

// RecentCalls returns the send times of credential's calls since since, per
// method, oldest first (calls in flight included). Errors: the database's,
// wrapped.
func (s *Store) RecentCalls(ctx context.Context, credential string, since time.Time) (map[string][]time.Time, error) {
	var rows []struct {
		Method string    `db:"method"`
		SentAt time.Time `db:"sent_at"`
	}
	err := s.db.SelectContext(ctx, &rows, s.q(`SELECT method, sent_at FROM calls
WHERE credential = ? AND sent_at >= ? ORDER BY sent_at, id`), credential, s.t(since))
	if err != nil {
		return nil, fmt.Errorf("repo: recent calls: %w", err)
	}
	out := map[string][]time.Time{}
	for _, r := range rows {
		out[r.Method] = append(out[r.Method], r.SentAt.UTC())
	}
	return out, nil
}

// CallBudget is what the call log says a credential has spent: the rate
// limiter's seed.
type CallBudget struct {
	// Calls holds, per method and oldest first, when Octane may have counted
	// each call: its end for a call that ended, its send time for one still
	// in flight (or whose process died with it).
	Calls map[string][]time.Time
	// BlockedUntil holds, per method, the latest end of a fault 233's block
	// that is still ahead.
	BlockedUntil map[string]time.Time
}

// CallBudget returns credential's calls sent since since and the fault-233
// blocks that end after now (both on the database's clock, as the log is).
// Errors: the database's, wrapped.
func (s *Store) CallBudget(ctx context.Context, credential string, since, now time.Time) (CallBudget, error) {
	out := CallBudget{Calls: map[string][]time.Time{}, BlockedUntil: map[string]time.Time{}}
	var rows []struct {
		Method   string    `db:"method"`
		SentAt   time.Time `db:"sent_at"`
		Duration int64     `db:"duration_ns"`
		Outcome  string    `db:"outcome"`
	}
	err := s.db.SelectContext(ctx, &rows, s.q(`SELECT method, sent_at, duration_ns, outcome FROM calls
WHERE credential = ? AND sent_at >= ? ORDER BY sent_at, id`), credential, s.t(since))
	if err != nil {
		return out, fmt.Errorf("repo: call budget: %w", err)
	}
	for _, r := range rows {
		at := r.SentAt.UTC()
		if r.Outcome != CallInflight {
			at = at.Add(time.Duration(r.Duration))
		}
		out.Calls[r.Method] = append(out.Calls[r.Method], at)
	}
	for _, ts := range out.Calls {
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	}
	var blocks []struct {
		Method string   `db:"method"`
		Until  nullTime `db:"until"`
	}
	err = s.db.SelectContext(ctx, &blocks, s.q(`SELECT method, MAX(blocked_until) AS until FROM calls
WHERE credential = ? AND blocked_until > ? GROUP BY method`), credential, s.t(now))
	if err != nil {
		return out, fmt.Errorf("repo: call budget blocks: %w", err)
	}
	for _, b := range blocks {
		if b.Until.T != nil {
			out.BlockedUntil[b.Method] = *b.Until.T
		}
	}
	return out, nil
}

// MethodCalls counts calls of one method and outcome by one credential,
// with the rate-limit wait they spent.
type MethodCalls struct {
	Method     string
	Outcome    string
	Count      int
	Waited     time.Duration
	Credential string
}

// CallStats counts the calls made by runs that started in (from, to], by
// method, outcome and credential, ordered by method, outcome, credential. A report's period ends
// at the time of the run that builds it, so that run's calls are in it and
// not in the next report's (whose period starts there).
func (s *Store) CallStats(ctx context.Context, from, to time.Time) ([]MethodCalls, error) {
	return s.callStats(ctx, s.db, from, to)
}

func (s *Store) callStats(ctx context.Context, q sqlx.QueryerContext, from, to time.Time) ([]MethodCalls, error) {
	var rows []struct {
		Method     string `db:"method"`
		Outcome    string `db:"outcome"`
		Count      int    `db:"n"`
		Waited     int64  `db:"waited"`
		Credential string `db:"credential"`
	}
	// By run, not by send time: a run's start follows the job's clock, as a
	// report's period does; send times are wall clock (Octane's counters).
	err := sqlx.SelectContext(ctx, q, &rows, s.q(`SELECT c.method, c.outcome, COUNT(*) AS n, COALESCE(SUM(c.waited_ns), 0) AS waited,
c.credential FROM calls c JOIN runs r ON r.id = c.run_id
WHERE r.started_at > ? AND r.started_at <= ? GROUP BY c.method, c.outcome, c.credential`), s.t(from), s.t(to))
	if err != nil {
		return nil, fmt.Errorf("repo: call stats: %w", err)
	}
	out := make([]MethodCalls, 0, len(rows))
	for _, r := range rows {
		out = append(out, MethodCalls{Method: r.Method, Outcome: r.Outcome, Count: r.Count, Waited: time.Duration(r.Waited),
			Credential: r.Credential})
	}
	slices.SortFunc(out, func(a, b MethodCalls) int {
		if c := strings.Compare(a.Method, b.Method); c != 0 {
			return c
		}
		if c := strings.Compare(a.Outcome, b.Outcome); c != 0 {
			return c
		}
		return strings.Compare(a.Credential, b.Credential)
	})
	return out, nil
}
