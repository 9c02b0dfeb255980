package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/repo"
)

// ErrOctaneUnreachable stops a pass after OutageAfter consecutive Octane
// calls got no answer: an outage is the pass's failure (exit 1), not the
// rows'.
var ErrOctaneUnreachable = errors.New("octane unreachable")

// settle is the one place a failed step of row a becomes a store write, a
// counter and a log line: the error table (decide) picks the act, settle
// carries it out. Callers that must do something first (orderCreate gives
// its number back) do it before calling settle.
func (p *pass) settle(ctx context.Context, a *repo.Activation, step repo.Step, err error, u *unclaimer) {
	k := classify(ctx, err)
	do := decide(step, k)
	if do == actRetry && p.outageErr() != nil {
		do = actHandBack // an outage charges no further row
	}
	code, msg := apiCode(err)
	phase := phaseOf(step)
	switch do {
	case actHandBack:
		switch {
		case k == kindCancelled && errors.Is(err, octane.ErrBudgetWait):
			// the method's budget was spent until the pass ended: due
			// work the next pass takes up, not a failure
			p.add(phase+".deferred", 1)
		case k != kindCancelled:
			p.add(phase+".handed_back", 1)
		}
		u.add(a)
	case actStopPass:
		if k == kindLockLost {
			err = fmt.Errorf("run lock lost: %w", err)
		}
		p.setFatal(err)
		u.add(a)
	case actStopSubmit:
		p.stopSubmit(fmt.Sprintf("%s: %s", step, msg))
		u.add(a)
	case actUnknown:
		p.add(phase+".unknown_outcome", 1)
		p.log.Warn("orderCreate outcome unknown; left for reconcile", "activation_id", a.ID, "msn", a.MSN, "err", err)
		u.add(a) // the row stays ordering; the claim goes
	case actFail:
		p.failRow(ctx, a, step, code, msg)
	case actRetry, actWait:
		if p.r.cfg.DryRun {
			u.add(a)
			return
		}
		policy := p.r.cfg.retryPolicy()
		if do == actWait {
			policy = repo.RetryPolicy{NeverFail: true, MaxDelay: p.r.cfg.PollInterval}
		}
		c, cancel := p.wctx(ctx)
		defer cancel()
		failed, berr := p.r.store.Backoff(c, a, step, code, msg, p.r.now(), policy)
		if berr != nil {
			p.storeErr(berr, a, "backoff")
			return
		}
		p.add(phase+".backoff", 1)
		if failed {
			p.add(phase+".failed", 1)
		}
		p.log.Warn("octane call failed; backing off", "activation_id", a.ID, "step", step, "kind", k,
			"attempts", a.Attempts, "gave_up", failed, "err", err)
	}
}

// failRow fails a row (dry run: says it would), counting it in its phase.
func (p *pass) failRow(ctx context.Context, a *repo.Activation, step repo.Step, code, msg string) {
	if p.r.cfg.DryRun {
		p.log.Info("dry run: row would fail", "activation_id", a.ID, "step", step, "code", code, "message", msg)
		return
	}
	c, cancel := p.wctx(ctx)
	defer cancel()
	if err := p.r.store.Fail(c, a, step, code, msg, p.r.now()); err != nil {
		p.storeErr(err, a, "fail")
		return
	}
	p.add(phaseOf(step)+".failed", 1)
	p.log.Info("activation failed", "activation_id", a.ID, "sales_ref", a.SalesRef, "step", step, "code", code, "message", msg)
}

// phaseOf names the phase whose counters a step's outcomes go to.
func phaseOf(step repo.Step) string {
	switch step {
	case repo.StepPoll:
		return PhasePoll
	case repo.StepQR:
		return PhaseQR
	case repo.StepRelease:
		return PhaseRelease
	}
	return PhaseSubmit
}

// outage counts consecutive Octane calls that got no answer. Any answer
// (even a rejection) proves Octane reachable and resets it.
type outage struct {
	mu     sync.Mutex
	after  int
	run    int
	since  time.Time
	err    error
	onStop func(error)
}

func (o *outage) observe(ctx context.Context, method string, err error) {
	if o == nil || o.after <= 0 {
		return
	}
	k := kindCancelled
	if err != nil && ctx.Err() == nil {
		// A call the pass's own end cut short says nothing about Octane,
		// even when its outcome is unknown: every lane's call in flight
		// at RUN_DEADLINE would otherwise look like an outage.
		k = classify(ctx, err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err == nil || (k != kindTransport && k != kindUnknownOutcome && k != kindCancelled):
		o.run = 0
	case k == kindCancelled || k == kindNotRecorded:
		// the pass is stopping, or the call never left: says nothing
		// about Octane
	default:
		if o.run == 0 {
			o.since = time.Now()
		}
		o.run++
		if o.run >= o.after && o.err == nil {
			o.err = fmt.Errorf("%w: %d consecutive calls without an answer since %s (last: %s: %w)",
				ErrOctaneUnreachable, o.run, o.since.UTC().Format(time.RFC3339), method, err)
			if o.onStop != nil {
				o.onStop(o.err)
			}
		}
	}
}

func (p *pass) outageErr() error {
	if p.outage == nil {
		return nil
	}
	p.outage.mu.Lock()
	defer p.outage.mu.Unlock()
	return p.outage.err
}

// watched is the pass's view of the client: every call's result feeds the
// outage counter, so the rule "a few consecutive transport failures stop the
// pass" stands in one place.
type watched struct {
	c Octane
	o *outage
}

func (w watched) AddCustomer(ctx context.Context, c octane.Customer) (int64, error) {
	n, err := w.c.AddCustomer(ctx, c)
	w.o.observe(ctx, octane.MethodAddCustomer, err)
	return n, err
}

func (w watched) QueryResources(ctx context.Context, value string) ([]octane.PooledResource, error) {
	r, err := w.c.QueryResources(ctx, value)
	w.o.observe(ctx, octane.MethodQueryResources, err)
	return r, err
}

func (w watched) ReserveResources(ctx context.Context, n int) ([]octane.Reservation, error) {
	r, err := w.c.ReserveResources(ctx, n)
	w.o.observe(ctx, octane.MethodReserveResources, err)
	return r, err
}

func (w watched) SelectResource(ctx context.Context, msn string) error {
	err := w.c.SelectResource(ctx, msn)
	w.o.observe(ctx, octane.MethodSelectResource, err)
	return err
}

func (w watched) UnreserveResource(ctx context.Context, msn string) error {
	err := w.c.UnreserveResource(ctx, msn)
	w.o.observe(ctx, octane.MethodUnreserveResources, err)
	return err
}

func (w watched) Acquire(ctx context.Context, method string) (*octane.Slot, error) {
	return w.c.Acquire(ctx, method) // no Octane call: says nothing about an outage
}

func (w watched) OrderCreate(ctx context.Context, req octane.OrderRequest) (string, error) {
	id, err := w.c.OrderCreate(ctx, req)
	var ie *octane.IntentError
	if !errors.As(err, &ie) { // a failed intent write says nothing about Octane
		w.o.observe(ctx, octane.MethodOrderCreate, err)
	}
	return id, err
}

func (w watched) OrderQuery(ctx context.Context, orderID string) (octane.OrderStatus, error) {
	st, err := w.c.OrderQuery(ctx, orderID)
	w.o.observe(ctx, octane.MethodOrderQuery, err)
	return st, err
}

func (w watched) GetEsimQR(ctx context.Context, msn string) (octane.EsimQR, error) {
	q, err := w.c.GetEsimQR(ctx, msn)
	w.o.observe(ctx, octane.MethodGetEsimDetails, err)
	return q, err
}

func (w watched) GetSIMDetails(ctx context.Context, msn string) (octane.SIMDetails, error) {
	d, err := w.c.GetSIMDetails(ctx, msn)
	w.o.observe(ctx, octane.MethodGetEsimDetails, err)
	return d, err
}
