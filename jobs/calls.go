package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/repo"
)

// CallStore is what CallRecorder writes to (*repo.Store satisfies it).
type CallStore interface {
	// StartCall writes a call about to be sent and returns its row id.
	StartCall(ctx context.Context, c repo.Call) (int64, error)
	// FinishCall completes that row with how the call ended.
	FinishCall(ctx context.Context, id int64, c repo.Call) error
	// DropCall deletes that row: the request never left the process.
	DropCall(ctx context.Context, id int64) error
	// RecordCall writes a call that ended and has no row yet.
	RecordCall(ctx context.Context, c repo.Call) error
	// WriteAnswered writes answered calls that no transition took, each
	// as FinishCall or RecordCall.
	WriteAnswered(ctx context.Context, calls ...repo.AnsweredCall) error
}

// RecorderOption configures CallRecorder.
type RecorderOption func(*recorder)

// WithDBOffset makes the recorder stamp the call log on the database's
// clock: offset returns the database's clock minus this process's wall clock
// (repo.DBClock.Offset), the clock the Octane client stamps its events with.
// Without it the stamps are the process's own wall clock.
func WithDBOffset(offset func() time.Duration) RecorderOption {
	return func(r *recorder) { r.offset = offset }
}

// CallRecorder returns the hook for octane.WithCallHook: it writes every
// Octane call to the store's call log with the run id and the activation id
// the jobs package put in the call's context. A call of a method with a
// documented limit (octane.Budgeted) is written before it is sent (outcome
// repo.CallInflight, so a process killed with the request out still leaves
// it counted for the next one's limiter) and completed when it ended; a call
// of any other method is written once, when it ended; a call that provably never left the process (a dial failure) is
// deleted again, and one given up before sending is never written. Install
// it with octane.WithCallRecorder, before the Runner is built: the hook only
// needs the store, so there is no cycle. When the write before sending
// fails, the hook returns the error and the client does not send the call
// (a call no other process can count would overrun the shared budget); a
// failed write after the call is logged and dropped (the call happened, and
// its in-flight row still counts it). A dry run must not install it: it
// writes.
func CallRecorder(rec CallStore, credential string, log *slog.Logger, opts ...RecorderOption) func(context.Context, octane.CallEvent) error {
	r := &recorder{rec: rec, credential: credential, log: log, open: map[uint64]int64{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for _, o := range opts {
		o(r)
	}
	return r.hook
}

type recorder struct {
	rec        CallStore
	credential string
	log        *slog.Logger
	offset     func() time.Duration

	mu   sync.Mutex
	open map[uint64]int64 // CallSending event ID -> in-flight row
}

func (r *recorder) hook(ctx context.Context, ev octane.CallEvent) error {
	if dry, _ := ctx.Value(keyDryRun).(bool); dry {
		return nil // a dry run's pass writes nothing, whichever client it was given
	}
	c := r.call(ctx, ev)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ev.Phase == octane.CallSending {
		if !octane.Budgeted(ev.Method) {
			// No budget for a record in flight to protect: the call is
			// written once, when it ends (below, as a CallDone without
			// its CallSending), which saves a write and a commit per
			// call. A process killed with it out leaves no record of it.
			return nil
		}
		id, err := r.rec.StartCall(wctx, c)
		if err != nil {
			// Not on record, so not sent: the client says so to the caller.
			r.log.Error("record octane call before sending; not sent", "method", ev.Method, "run_id", c.RunID, "err", err)
			return fmt.Errorf("record %s call: %w", ev.Method, err)
		}
		r.mu.Lock()
		r.open[ev.ID] = id
		r.mu.Unlock()
		return nil
	}
	r.mu.Lock()
	id, started := r.open[ev.ID]
	delete(r.open, ev.ID)
	r.mu.Unlock()
	if ev.Sent && ev.Outcome == octane.OutcomeOK && c.BlockedUntil.IsZero() {
		if ans, ok := ctx.Value(keyAnswers).(*answers); ok {
			// Octane answered: the transition that records the answer
			// writes the call with it, or ans.flush does.
			ans.park(r.rec, repo.AnsweredCall{ID: id, Call: c})
			return nil
		}
	}
	var err error
	switch {
	case !ev.Sent && started:
		// Never left the process: not an Octane call, nothing for
		// Octane's counters. The row's own last error says what happened.
		err = r.rec.DropCall(wctx, id)
	case !ev.Sent:
		return nil // given up before sending: never written
	case started:
		err = r.rec.FinishCall(wctx, id, c)
	default:
		err = r.rec.RecordCall(wctx, c) // a CallDone without its CallSending
	}
	if err != nil {
		// A row left in flight still counts against the budget, at its
		// send time: the safe side.
		r.log.Error("record octane call", "method", ev.Method, "run_id", c.RunID, "err", err)
	}
	return nil
}

func (r *recorder) call(ctx context.Context, ev octane.CallEvent) repo.Call {
	var off time.Duration
	if r.offset != nil {
		off = r.offset()
	}
	c := repo.Call{
		Credential: r.credential,
		Method:     ev.Method,
		SentAt:     ev.SentAt.Add(off),
		Duration:   ev.Duration,
		Waited:     ev.Waited,
		Outcome:    ev.Outcome,
		Code:       ev.Code,
		Message:    ev.Message,
		MSN:        ev.MSN,
		OrderID:    ev.OrderID,
	}
	if !ev.BlockedUntil.IsZero() {
		c.BlockedUntil = ev.BlockedUntil.Add(off)
	}
	if id, ok := ctx.Value(keyRun).(int64); ok {
		c.RunID = id
	}
	if id, ok := ctx.Value(keyActivation).(int64); ok {
		c.ActivationID = &id
	}
	return c
}

// CallBudgetLog is what SeedLimiter reads (*repo.Store satisfies it).
type CallBudgetLog interface {
	CallBudget(ctx context.Context, credential string, since, now time.Time) (repo.CallBudget, error)
}

// LimiterSeeder is what SeedLimiter seeds (*octane.Client satisfies it).
type LimiterSeeder interface {
	Reseed(calls map[string][]time.Time, blockedUntil map[string]time.Time)
}

// seedSpan is how far back the seed reads: Octane's longest window plus
// more than the limiter's pad.
const seedSpan = time.Hour + time.Minute

// SeedLimiter returns a pass-start function (WithPassStart) that gives the
// client's limiter the credential's calls of the last hour from the call log
// (every process's, this one's and those in flight or killed included) in
// place of what it knew, and the fault-233 blocks still ahead. Under the run
// lock no other process spends the credential until the pass ends, so the
// pass starts from the whole budget's true state. offset is the database's
// clock minus this process's wall clock (repo.DBClock.Offset; nil: zero), as
// given to the recorder's WithDBOffset. Errors: the store's, wrapped: the
// pass then stops before it spends anything.
func SeedLimiter(log CallBudgetLog, client LimiterSeeder, credential string, offset func() time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		var off time.Duration
		if offset != nil {
			off = offset()
		}
		now := time.Now().Add(off) // Octane counts on wall time, not the business clock
		b, err := log.CallBudget(ctx, credential, now.Add(-seedSpan), now)
		if err != nil {
			return fmt.Errorf("seed the rate limiter from the call log: %w", err)
		}
		calls := make(map[string][]time.Time, len(b.Calls))
		for m, ts := range b.Calls {
			local := make([]time.Time, len(ts))
			for i, t := range ts {
				local[i] = t.Add(-off)
			}
			calls[m] = local
		}
		blocks := make(map[string]time.Time, len(b.BlockedUntil))
		for m, t := range b.BlockedUntil {
			blocks[m] = t.Add(-off)
		}
		client.Reseed(calls, blocks)
		return nil
	}
}

// answers holds the answered calls of one step of one row (withAnswers)
// until the store transition that records their answer takes them
// (repo.AnsweredCall: one statement for both), so that an answered call
// costs no write of its own. The recorder parks a call in the answers of
// its context only when Octane answered it without a fault; every other
// call is written at once, as before. What no transition takes, flush
// writes; a step whose answer leads to another write (a rejection, a
// back-off) flushes first, so the call event stays ahead of it.
type answers struct {
	log   *slog.Logger
	mu    sync.Mutex
	calls []parkedCall
}

// parkedCall is an answered call and the call log it belongs to.
type parkedCall struct {
	rec  CallStore
	call repo.AnsweredCall
}

// withAnswers returns ctx carrying a fresh answers for the step's calls.
// The caller hands ans.take() to the transition that records the answer
// and defers ans.flush for every other way out.
func withAnswers(ctx context.Context, log *slog.Logger) (context.Context, *answers) {
	ans := &answers{log: log}
	return context.WithValue(ctx, keyAnswers, ans), ans
}

func (a *answers) park(rec CallStore, c repo.AnsweredCall) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, parkedCall{rec, c})
}

// take hands the parked calls to a store transition, which writes them
// whatever becomes of it (repo.AnsweredCall), and forgets them.
func (a *answers) take() []repo.AnsweredCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]repo.AnsweredCall, len(a.calls))
	for i, p := range a.calls {
		out[i] = p.call
	}
	a.calls = nil
	return out
}

// flush writes the parked calls no transition took, each as the recorder
// would have at the call's end.
func (a *answers) flush(ctx context.Context) {
	a.mu.Lock()
	calls := a.calls
	a.calls = nil
	a.mu.Unlock()
	if len(calls) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, p := range calls {
		if err := p.rec.WriteAnswered(wctx, p.call); err != nil && a.log != nil {
			// As the recorder: a row left in flight still counts.
			a.log.Error("record octane call", "method", p.call.Call.Method, "run_id", p.call.Call.RunID, "err", err)
		}
	}
}
