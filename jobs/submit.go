package jobs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/repo"
)

// orderCreateGrace bounds an in-flight orderCreate that is allowed to finish
// after the pass was cancelled (its outcome must be recorded).
const orderCreateGrace = 30 * time.Second

// unclaimer collects rows whose claim is released at the end of a phase, so
// a phase never claims the same row twice (dry run, stopped submitting).
type unclaimer struct {
	mu   sync.Mutex
	rows []*repo.Activation
}

func (u *unclaimer) add(a *repo.Activation) {
	u.mu.Lock()
	u.rows = append(u.rows, a)
	u.mu.Unlock()
}

func (p *pass) flush(ctx context.Context, u *unclaimer) {
	u.mu.Lock()
	rows := u.rows
	u.rows = nil
	u.mu.Unlock()
	if p.r.cfg.DryRun {
		return // peeked, never claimed
	}
	for _, a := range rows {
		c, cancel := p.wctx(ctx)
		err := p.r.store.Unclaim(c, a)
		cancel()
		if err != nil && !p.lost(err, a, "unclaim") {
			p.log.Error("unclaim", "activation_id", a.ID, "err", err)
		}
	}
}

// runBatch runs fn over rows on the worker pool.
func (p *pass) runBatch(ctx context.Context, rows []repo.Activation, prog *progress, fn func(context.Context, *repo.Activation)) {
	ch := make(chan *repo.Activation)
	var wg sync.WaitGroup
	workers := min(p.r.cfg.Workers, len(rows))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range ch {
				p.safely(ctx, a, fn)
				if prog != nil {
					prog.tick(1)
				}
			}
		}()
	}
	for i := range rows {
		ch <- &rows[i]
	}
	close(ch)
	wg.Wait()
}

// safely runs fn for one row and turns a panic into a fatal pass error: a
// worker goroutine's panic would otherwise kill the process, which no
// cron.Recover catches. The row keeps its claim (it may be mid-order), so
// only a later run, after the lease, reconciles it.
func (p *pass) safely(ctx context.Context, a *repo.Activation, fn func(context.Context, *repo.Activation)) {
	defer func() {
		if v := recover(); v != nil {
			p.setFatal(p.recovered(fmt.Sprintf("activation %d", a.ID), v))
		}
	}()
	fn(withActivation(ctx, a.ID), a)
}

// claimLoop describes one phase's claim loop for drain.
type claimLoop struct {
	count string      // counter of claimed rows ("" for none)
	limit int         // rows to claim at most (0: no limit)
	more  func() bool // checked before each batch (nil: always)
	prog  *progress   // ticked per row worked (nil: none)
	claim func(ctx context.Context, n int) ([]repo.Activation, error)
	work  func(ctx context.Context, a *repo.Activation)
	// idle, when set, is called when a claim finds nothing new: true
	// claims again (it waited for more work), false ends the loop.
	idle func(ctx context.Context) bool
}

// drain is the claim loop every claiming phase shares: while the pass is
// healthy, holds its lock and has a proven credential, claim a batch, hand
// back unclaimed the rows already tried in this pass (a row whose back-off
// is due again would otherwise loop), and work the rest concurrently. It
// returns the claim error, nil when the context ended the loop.
func (p *pass) drain(ctx context.Context, u *unclaimer, l claimLoop) error {
	limit := l.limit
	if limit <= 0 {
		limit = math.MaxInt
	}
	seen := map[int64]bool{}
	for claimed := 0; claimed < limit; {
		if p.halted(ctx) || (l.more != nil && !l.more()) || !p.holdsLock(ctx) || !p.credentialProven(ctx) {
			return nil
		}
		rows, err := l.claim(ctx, min(p.r.cfg.BatchSize, limit-claimed))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		fresh := rows[:0]
		for _, a := range rows {
			if seen[a.ID] {
				u.add(&a)
				continue
			}
			seen[a.ID] = true
			fresh = append(fresh, a)
		}
		if len(fresh) == 0 {
			if l.idle != nil && l.idle(ctx) {
				continue
			}
			return nil
		}
		claimed += len(fresh)
		if l.count != "" {
			p.add(l.count, len(fresh))
		}
		p.runBatch(ctx, fresh, l.prog, l.work)
	}
	return nil
}

// claimer returns claim, or in a dry run a peek at the rows claim would take
// (a dry run changes no column, not even a claim stamp), moving on by id.
func (p *pass) claimer(kind repo.PeekKind, claim func(ctx context.Context, n int) ([]repo.Activation, error)) func(ctx context.Context, n int) ([]repo.Activation, error) {
	if !p.r.cfg.DryRun {
		return claim
	}
	var after int64
	return func(ctx context.Context, n int) ([]repo.Activation, error) {
		rows, err := p.r.store.Peek(ctx, kind, p.r.cfg.Credential, p.r.now(), after, n)
		if len(rows) > 0 {
			after = rows[len(rows)-1].ID
		}
		return rows, err
	}
}

// credentialProbe is the value of the one queryResources call that proves
// the credential before a pass claims its first row. Any answer but a
// refused login will do, so a number-shaped value nobody holds is enough;
// queryResources has no documented rate limit.
const credentialProbe = "0400000000"

// credentialProven makes that call once per pass. A claim stamps rows (a
// poll claim spends the order's 30-minute slot), so bad credentials must
// stop the pass before the first claim: invariant 7, no row touched.
// Other errors (Octane down) are left to the calls that follow.
func (p *pass) credentialProven(ctx context.Context) bool {
	p.credOnce.Do(func() {
		_, err := p.oc.QueryResources(ctx, credentialProbe)
		if err != nil && classify(ctx, err) == kindUnauthorized {
			p.setFatal(err)
		}
	})
	return p.fatalErr() == nil
}

// halted reports whether the pass must not start new work.
func (p *pass) halted(ctx context.Context) bool {
	return ctx.Err() != nil || p.fatalErr() != nil
}

// submit reconciles unknown orders, then claims and submits due rows.
func (p *pass) submit(ctx context.Context) error {
	u := &unclaimer{}
	defer p.flush(ctx, u)
	defer p.releaseLeftovers(ctx)

	if !p.releaseRan {
		// Under `batch schedule` the release phase has its own (hourly)
		// firing, and a firing is skipped while another phase runs: a busy
		// submit schedule could skip it past the 24 h lapse (invariant 3).
		// So a submit pass first releases what is due, as a full pass does,
		// and never orders on a number past RELEASE_AFTER.
		if err := p.release(ctx); err != nil {
			return err
		}
	}
	p.reconcile(ctx, u)
	if p.halted(ctx) {
		return nil
	}

	cfg := p.r.cfg
	limit := cfg.MaxSubmitPerRun // 0: no cap
	prog := p.newProgress(PhaseSubmit, p.workload(ctx, PhaseSubmit, limit))
	err := p.drain(ctx, u, claimLoop{
		count: "submit.claimed", limit: limit, prog: prog,
		more: func() bool { return p.submitStop() == "" },
		claim: p.claimer(repo.PeekPending, func(ctx context.Context, n int) ([]repo.Activation, error) {
			return p.r.store.ClaimPending(ctx, p.r.now(), p.runID, cfg.Credential, n, cfg.Lease)
		}),
		work: func(ctx context.Context, a *repo.Activation) { p.submitOne(ctx, a, u) },
	})
	if err != nil {
		return fmt.Errorf("claim pending: %w", err)
	}
	if s := p.submitStop(); s != "" {
		p.log.Warn("submitting stopped for this run; rows stay pending", "reason", s)
	}
	return nil
}

// submitOne takes one claimed row as far as an accepted order.
func (p *pass) submitOne(ctx context.Context, a *repo.Activation, u *unclaimer) {
	if p.halted(ctx) || p.submitStop() != "" {
		u.add(a)
		return
	}
	var slot *octane.Slot
	if !p.r.cfg.DryRun {
		// Budget first: the row's orderCreate slot is granted before a
		// number is reserved for it, so no number is held and no row waits
		// in selected because orderCreate's window is full.
		var err error
		if slot, err = p.oc.Acquire(ctx, octane.MethodOrderCreate); err != nil {
			u.add(a) // the pass is stopping
			return
		}
		defer slot.Release() // a no-op once orderCreate used it
	}
	var fresh *repo.Reservation
	if a.State == repo.StatePending {
		r, ok := p.prepare(ctx, a, u)
		if !ok {
			return
		}
		fresh = &r
	}
	if a.State != repo.StateSelected && !p.r.cfg.DryRun {
		p.log.Error("claimed row in unexpected state; skipped", "activation_id", a.ID, "state", a.State)
		u.add(a)
		return
	}
	if p.halted(ctx) || p.submitStop() != "" {
		if fresh != nil && p.submitStop() != "" {
			// Submitting stopped between select and order: give the number
			// back so the row waits as pending, not holding a number.
			p.unselect(ctx, a, *fresh)
			return
		}
		u.add(a)
		return
	}
	p.order(ctx, a, slot, u)
}

// unselect frees a's claim, unreserves its number and records the release
// (the row goes back to pending). On failure the row stays selected and the
// release phase retries later.
func (p *pass) unselect(ctx context.Context, a *repo.Activation, r repo.Reservation) {
	c, cancel := p.wctx(ctx)
	defer cancel()
	if err := p.r.store.Unclaim(c, a); err != nil {
		p.storeErr(err, a, "unclaim")
		return
	}
	if !p.giveBack(ctx, a.MSN, a.ReservedAt) {
		return
	}
	if err := p.r.store.ReleaseReservation(c, p.r.cfg.Credential, r, p.r.now()); err != nil {
		p.log.Error("release reservation", "msn", r.MSN, "err", err)
		return
	}
	p.add("submit.unselected", 1)
}

// prepare creates the customer, checks a physical SIM, reserves and
// selects a number: pending -> selected. It returns false when the row is
// done for this pass.
func (p *pass) prepare(ctx context.Context, a *repo.Activation, u *unclaimer) (repo.Reservation, bool) {
	var none repo.Reservation
	dry := p.r.cfg.DryRun
	if a.CustNo == nil {
		if dry {
			p.log.Info("dry run: would add customer", "activation_id", a.ID, "sales_ref", a.SalesRef)
		} else {
			custNo, err := p.oc.AddCustomer(ctx, customerOf(a))
			if err != nil {
				p.settle(ctx, a, repo.StepCustomer, err, u)
				return none, false
			}
			c, cancel := p.wctx(ctx)
			err = p.r.store.SetCustomer(c, a, custNo, p.r.now())
			cancel()
			if err != nil {
				p.storeErr(err, a, "set customer")
				return none, false
			}
			p.add("submit.customers", 1)
		}
	}
	if a.SIMType == "physical" {
		if p.halted(ctx) {
			u.add(a)
			return none, false
		}
		res, err := p.oc.QueryResources(ctx, a.SIMSerial)
		if err != nil {
			p.settle(ctx, a, repo.StepSIMCheck, err, u)
			return none, false
		}
		if reason := simProblem(a.SIMSerial, res); reason != "" {
			p.failRow(ctx, a, repo.StepSIMCheck, codeInvalidSIM, reason)
			return none, false
		}
	}
	if dry {
		p.log.Info("dry run: would reserve and select a number, then orderCreate", "activation_id", a.ID,
			"sales_ref", a.SalesRef, "sim_type", a.SIMType, "plan_no", a.PlanNo)
		u.add(a)
		return none, false
	}
	if p.halted(ctx) || p.submitStop() != "" {
		u.add(a)
		return none, false
	}
	r, err := p.takeNumber(ctx)
	if err != nil {
		if p.isStoreErr(err) {
			p.storeErr(err, a, "take reservation")
			return none, false
		}
		p.settle(ctx, a, repo.StepReserve, err, u)
		return none, false
	}
	callCtx, ans := withAnswers(ctx, p.log)
	defer ans.flush(ctx)
	if err := p.oc.SelectResource(callCtx, r.MSN); err != nil {
		p.dropNumber(ctx, r)
		p.settle(ctx, a, repo.StepSelect, err, u)
		return none, false
	}
	c, cancel := p.wctx(ctx)
	defer cancel()
	if err := p.r.store.MarkSelected(c, a, r, p.r.now(), ans.take()...); err != nil {
		p.storeErr(err, a, "mark selected")
		return none, false
	}
	return r, true
}

// storeError marks an error as the store's, not Octane's.
type storeError struct{ err error }

func (e storeError) Error() string { return e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

func (p *pass) isStoreErr(err error) bool {
	var se storeError
	return errors.As(err, &se)
}

// takeNumber hands out one of the run's reserved numbers, reserving
// RESERVE_BATCH more (and storing them before any is used) when none is left.
// The number is the row's alone from here on: the run's stored numbers nobody
// was given live in p.pool, and MarkSelected assigns it in the store.
//
// poolMu guards only the pool, never a call: a worker takes a stored number
// nobody was given, or the spare number of a reserve another worker has in
// flight, and waits for that reserve to store it; only a worker that finds
// neither reserves. So reserves of different workers overlap (one at a time
// made each reserve's round trips the whole submit phase's pace), yet a
// reserve starts only for a row that has no number coming: the numbers not
// spoken for never exceed one reserve's spares, as when one worker reserved
// at a time.
func (p *pass) takeNumber(ctx context.Context) (repo.Reservation, error) {
	for {
		p.poolMu.Lock()
		if len(p.pool) > 0 {
			r := p.pool[0] // oldest first
			p.pool = p.pool[1:]
			p.poolMu.Unlock()
			return r, nil
		}
		if rc := p.spareReserve(); rc != nil {
			rc.spare--
			p.poolMu.Unlock()
			select {
			case <-rc.done:
				// Its numbers are in the pool, or it failed: go round.
				continue
			case <-ctx.Done():
				return repo.Reservation{}, ctx.Err()
			}
		}
		rc := &reserveCall{done: make(chan struct{}), spare: p.r.cfg.ReserveBatch - 1}
		p.reserving = append(p.reserving, rc)
		p.poolMu.Unlock()
		return p.reserveAndTake(ctx, rc)
	}
}

// reserveCall is one reserve in flight.
type reserveCall struct {
	done  chan struct{} // closed once its numbers are in the pool (or it failed)
	spare int           // its numbers beyond the reserver's own not yet promised
}

// spareReserve returns a reserve in flight with a number not yet promised
// (nil when none), under poolMu.
func (p *pass) spareReserve() *reserveCall {
	for _, rc := range p.reserving {
		if rc.spare > 0 {
			return rc
		}
	}
	return nil
}

// reserved ends rc: its spare numbers join the pool and the workers waiting
// on rc go round.
func (p *pass) reserved(rc *reserveCall, spare []repo.Reservation) {
	p.poolMu.Lock()
	p.pool = append(p.pool, spare...)
	for i, x := range p.reserving {
		if x == rc {
			p.reserving = append(p.reserving[:i], p.reserving[i+1:]...)
			break
		}
	}
	p.poolMu.Unlock()
	close(rc.done)
}

// reserveAndTake reserves RESERVE_BATCH numbers, stores them before any is
// used, and keeps the first; the rest join the pool when rc ends.
func (p *pass) reserveAndTake(ctx context.Context, rc *reserveCall) (repo.Reservation, error) {
	var r repo.Reservation
	var spare []repo.Reservation
	defer func() { p.reserved(rc, spare) }()
	if p.submitStop() != "" || p.halted(ctx) {
		return r, context.Canceled
	}
	sent := p.r.now()
	got, err := p.oc.ReserveResources(ctx, p.r.cfg.ReserveBatch)
	if err != nil {
		return r, err
	}
	// A fresh deadline: the call may have waited long on the limiter, and
	// the numbers Octane just reserved must be stored.
	c, cancel := p.wctx(ctx)
	defer cancel()
	rs := make([]repo.Reservation, 0, len(got))
	for _, g := range got {
		rs = append(rs, repo.Reservation{MSN: g.MSN, ReservationID: g.ReservationID})
	}
	stored, err := p.r.store.StoreReservations(c, p.runID, p.r.cfg.Credential, sent, rs)
	if err != nil {
		// Numbers the store does not know of would be held until Octane
		// lets them lapse at 24 h, which no release phase can prevent:
		// give them back now (docs/design.md, promise 3).
		p.returnUnsaved(ctx, rs, sent, err)
		return r, storeError{fmt.Errorf("save reservations: %w", err)}
	}
	p.add("submit.reserved", len(rs))
	if len(stored) == 0 {
		// Every number is still held for a live row of ours: Octane answered
		// with numbers it should not have.
		return r, storeError{fmt.Errorf("save reservations: none of %d numbers stored: %w", len(rs), repo.ErrNotFound)}
	}
	spare = stored[1:]
	return stored[0], nil
}

// returnUnsaved unreserves numbers Octane reserved for us that could not
// be stored. A number that cannot be given back either is logged by MSN
// (not a secret) for an operator to release, since nothing else knows it.
func (p *pass) returnUnsaved(ctx context.Context, rs []repo.Reservation, reservedAt time.Time, saveErr error) {
	var kept []string
	for _, r := range rs {
		if !p.giveBack(ctx, r.MSN, &reservedAt) {
			kept = append(kept, r.MSN)
			continue
		}
		p.add("submit.unsaved_returned", 1)
	}
	if len(kept) > 0 {
		p.log.Error("reserved numbers neither stored nor given back: unreserve them on Octane before they lapse",
			"msns", strings.Join(kept, ","), "store_err", saveErr)
	}
}

// dropNumber gives a number back to Octane after a failed select; when that
// fails too (or Octane refuses it while the number is still held) the number
// stays recorded and a later release phase retries.
func (p *pass) dropNumber(ctx context.Context, r repo.Reservation) {
	c, cancel := afterEnd(ctx, giveBackGrace)
	defer cancel()
	if err := p.unreserve(c, r.MSN, &r.ReservedAt); err != nil {
		p.log.Warn("unreserve after failed select", "msn", r.MSN, "err", err)
		return
	}
	if err := p.r.store.ReleaseReservation(c, p.r.cfg.Credential, r, p.r.now()); err != nil {
		p.log.Error("release reservation", "msn", r.MSN, "err", err)
	}
}

// order sends orderCreate once: selected -> ordering (the intent, written
// only once the limiter has granted the call) -> submitted.
func (p *pass) order(ctx context.Context, a *repo.Activation, slot *octane.Slot, u *unclaimer) {
	cfg := p.r.cfg
	req := octane.OrderRequest{
		CustNo:            deref(a.CustNo),
		LineName:          strings.TrimSpace(a.GivenNames + " " + a.Surname),
		PlanNo:            a.PlanNo,
		MSN:               a.MSN,
		IsEsim:            a.SIMType != "physical",
		IsQRCode:          cfg.QRByEmail,
		NotificationEmail: a.Email,
		OrderNotes:        a.SalesRef,
		Slot:              slot,
	}
	if !req.IsEsim {
		req.SIMNo = a.SIMSerial
	}
	if cfg.DryRun {
		p.log.Info("dry run: would orderCreate", "activation_id", a.ID, "sales_ref", a.SalesRef, "msn", a.MSN, "plan_no", a.PlanNo)
		return
	}
	guard := guardOf(p.lock)
	// The intent is written between the limiter's grant and the send: a
	// row is never stamped `ordering` while its call still waits for a
	// slot, and a pass whose run lock is gone writes no intent at all. The
	// client finishes a sent orderCreate even if ctx is cancelled.
	req.BeforeSend = func() error {
		c, cancel := p.wctx(ctx)
		defer cancel()
		return p.r.store.BeginOrder(c, a, guard, cfg.QRByEmail, p.r.now())
	}
	callCtx, ans := withAnswers(ctx, p.log)
	defer ans.flush(ctx)
	orderID, err := p.oc.OrderCreate(callCtx, req)
	c, cancel := p.wctx(ctx) // a fresh deadline: the call may have waited long
	defer cancel()
	now := p.r.now()
	if err == nil {
		if err := p.r.store.OrderAccepted(c, a, orderID, now, now.Add(cfg.PollInterval), ans.take()...); err != nil {
			// the order id is in the call log; reconcile adopts the row if needed
			p.log.Error("record accepted order", "activation_id", a.ID, "order_id", orderID, "err", err)
			p.storeErr(err, a, "order accepted")
			return
		}
		p.add("submit.ordered", 1)
		return
	}
	var ie *octane.IntentError
	if errors.As(err, &ie) && ie.Method != "" {
		// The intent is written but the call's record was not, so
		// nothing was sent: the row waits in ordering, where reconcile
		// finds its number SELECTED and orders it again.
		p.settle(ctx, a, repo.StepOrder, err, u)
		return
	}
	if errors.As(err, &ie) {
		// Nothing was sent; the row is still selected and claimed.
		if p.lost(ie.Err, a, "begin order") {
			return
		}
		if errors.Is(ie.Err, repo.ErrLocked) {
			p.settle(ctx, a, repo.StepOrder, ie.Err, u)
			return
		}
		p.storeErr(ie.Err, a, "begin order")
		return
	}
	if a.State != repo.StateOrdering {
		// The limiter wait gave up (the pass is stopping): not sent, no intent.
		p.settle(ctx, a, repo.StepOrder, err, u)
		return
	}
	switch decide(repo.StepOrder, classify(ctx, err)) {
	case actFail:
		// Octane refused the order: no order consumed the number.
		p.giveBack(ctx, a.MSN, a.ReservedAt)
		p.settle(ctx, a, repo.StepOrder, err, u)
	case actStopSubmit:
		_, msg := apiCode(err)
		p.stopSubmit("orderCreate: " + msg)
		if p.giveBack(ctx, a.MSN, a.ReservedAt) {
			if err := p.r.store.BackToPending(c, a, repo.StepOrder, "unavailable", now); err != nil {
				p.storeErr(err, a, "back to pending")
			}
			return
		}
		u.add(a) // left ordering: reconcile reads the number's state
	default:
		// Provably not sent: back off (ordering -> selected). Unknown
		// outcome, refused credential, 233 after waiting, cancelled: the
		// row stays ordering and reconcile settles it.
		p.settle(ctx, a, repo.StepOrder, err, u)
	}
}

// guardOf returns the run lock's guard for the intent write (the zero
// guard for a lock that has none).
func guardOf(l Lock) repo.LockGuard {
	if g, ok := l.(interface{ Guard() repo.LockGuard }); ok {
		return g.Guard()
	}
	return repo.LockGuard{}
}

// giveBack unreserves a number no order consumed, reserved at reservedAt;
// it reports whether the number may be recorded released (see unreserve).
func (p *pass) giveBack(ctx context.Context, msn string, reservedAt *time.Time) bool {
	c, cancel := afterEnd(ctx, giveBackGrace)
	defer cancel()
	if err := p.unreserve(c, msn, reservedAt); err != nil {
		p.log.Warn("unreserve", "msn", msn, "err", err)
		return false
	}
	return true
}

// unreserve gives msn, reserved at reservedAt (nil: unknown), back to
// Octane. It returns nil when the number may be recorded released: Octane
// unreserved it, or refused to and the number is provably no longer held
// for us, because our reservation is past Octane's 24 h lifetime or
// queryResources finds it AVAILABLE (an earlier unreserve whose answer was
// lost). A refusal while the number is still RESERVED, SELECTED or IN_USE
// (another credential holds it, or it is not in the state we recorded) is
// returned as the rejection it is: recording such a number released would
// hide a live reservation until it lapsed, the bug of issue 11. The number
// stays recorded as held, and the release phase asks again. Other errors
// are the unreserve's or the query's.
func (p *pass) unreserve(ctx context.Context, msn string, reservedAt *time.Time) error {
	err := p.oc.UnreserveResource(ctx, msn)
	if err == nil || classify(ctx, err) != kindRejected {
		return err
	}
	if reservedAt != nil && p.r.now().Sub(*reservedAt) >= octane.ReservationLifetime {
		return nil // lapsed: Octane has released it itself
	}
	res, qerr := p.oc.QueryResources(ctx, msn)
	if qerr != nil {
		return fmt.Errorf("unreserve %s refused (%w); its state is unknown: %w", msn, err, qerr)
	}
	state := numberStatus(res, msn)
	if state == octane.NumberAvailable {
		return nil // nobody holds it: an earlier unreserve of ours went through
	}
	if state == "" {
		state = "unknown"
	}
	return fmt.Errorf("unreserve %s refused while the number is %s, so it is still held: kept as ours until it is released or lapses: %w",
		msn, state, err)
}

// numberStatus is the internal status queryResources gave for msn (the only
// row when there is one), "" when the answer has none.
func numberStatus(res []octane.PooledResource, msn string) string {
	status := ""
	for _, r := range res {
		if r.Value == msn || len(res) == 1 {
			status = r.InternalStatus
		}
	}
	return status
}

// giveBackGrace is how long unreserving numbers may go on once the pass's
// context ended: a number not given back now stays recorded and the release
// phase gives it back later, so a pass never overruns its deadline waiting
// (e.g. on a limiter blocked by a 233) to give numbers back.
const giveBackGrace = 5 * time.Second

// afterEnd returns a context that outlives ctx by grace (and at most 20 s
// in all beyond its start when ctx never ends).
func afterEnd(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(c, func() { t.Stop() })
	})
	return c, func() { stop(); cancel() }
}

// releaseLeftovers unreserves the run's numbers no activation took.
func (p *pass) releaseLeftovers(ctx context.Context) {
	if p.r.cfg.DryRun {
		return
	}
	c, cancel := afterEnd(ctx, giveBackGrace)
	defer cancel()
	free, err := p.r.store.FreeReservations(c, p.runID)
	if err != nil {
		p.log.Error("list leftover reservations", "err", err)
		return
	}
	for _, r := range free {
		if err := p.unreserve(c, r.MSN, &r.ReservedAt); err != nil {
			p.log.Warn("unreserve leftover; the release phase retries", "msn", r.MSN, "err", err)
			continue
		}
		if err := p.r.store.ReleaseReservation(c, p.r.cfg.Credential, r, p.r.now()); err != nil {
			p.log.Error("release leftover reservation", "msn", r.MSN, "err", err)
			continue
		}
		p.add("submit.leftovers_released", 1)
	}
}

// reconcile settles rows whose orderCreate outcome is unknown (contract 5).
func (p *pass) reconcile(ctx context.Context, u *unclaimer) {
	err := p.drain(ctx, u, claimLoop{
		claim: p.claimer(repo.PeekUnknownOrders, func(ctx context.Context, n int) ([]repo.Activation, error) {
			return p.r.store.ClaimUnknownOrders(ctx, p.r.now(), p.runID, p.r.cfg.Credential, n, p.r.cfg.Lease)
		}),
		work: func(ctx context.Context, a *repo.Activation) { p.reconcileOne(ctx, a, u) },
	})
	if err != nil && ctx.Err() == nil {
		p.setFatal(fmt.Errorf("claim unknown orders: %w", err))
	}
}

func (p *pass) reconcileOne(ctx context.Context, a *repo.Activation, u *unclaimer) {
	if p.halted(ctx) {
		u.add(a)
		return
	}
	res, err := p.oc.QueryResources(ctx, a.MSN)
	if err != nil {
		p.settle(ctx, a, repo.StepReconcile, err, u)
		return
	}
	status := numberStatus(res, a.MSN)
	now := p.r.now()
	verdict, why := numberVerdict(a, status, now)
	p.log.Info("reconcile", "activation_id", a.ID, "msn", a.MSN, "number_state", status, "verdict", verdict)
	if p.r.cfg.DryRun {
		return
	}
	c, cancel := p.wctx(ctx)
	defer cancel()
	switch verdict {
	case verdictResubmit:
		if err := p.r.store.ReconcileResubmit(c, a, now); err != nil {
			p.storeErr(err, a, "reconcile resubmit")
			return
		}
		p.add("submit.reconciled_resubmit", 1)
		u.add(a) // free the claim; the claim loop picks the row up as selected
	case verdictAdopt:
		if err := p.r.store.ReconcileAdopt(c, a, now, now); err != nil {
			p.storeErr(err, a, "reconcile adopt")
			return
		}
		p.add("submit.reconciled_adopted", 1)
	default:
		p.failRow(ctx, a, repo.StepReconcile, codeReview, why)
	}
}

// verdicts of reconcile on a number's state.
const (
	verdictResubmit = "resubmit"
	verdictAdopt    = "adopt"
	verdictReview   = "review"
)

// adoptMargin keeps adoption clear of the 24 h lapse: reserved_at is our
// send time, Octane's own stamp is a little later, and clocks differ.
const adoptMargin = 30 * time.Minute

// numberVerdict is the reconcile table: what the state of a's number proves
// once an orderCreate for it may have been accepted.
//
//   - SELECTED: no order consumed the number: resubmit it.
//   - IN_USE while our reservation cannot have lapsed (under 24 h, less a
//     margin, since reserveResources): the order is ours: adopt it.
//   - IN_USE later: the number may have lapsed and been ordered by someone
//     else, so its service and QR code may be another customer's: review.
//   - anything else (AVAILABLE, RESERVED, unknown): an order may have
//     consumed the number and ended (a rejected order hands it back), or the
//     reservation lapsed; ordering again could make a second order: review.
func numberVerdict(a *repo.Activation, status string, now time.Time) (verdict, why string) {
	switch status {
	case octane.NumberSelected:
		return verdictResubmit, ""
	case octane.NumberInUse:
		if a.ReservedAt != nil && now.Sub(*a.ReservedAt) < octane.ReservationLifetime-adoptMargin {
			return verdictAdopt, ""
		}
		age := "unknown"
		if a.ReservedAt != nil {
			age = now.Sub(*a.ReservedAt).Round(time.Minute).String()
		}
		return verdictReview, fmt.Sprintf("the orderCreate answer was lost and number %s is IN_USE, but our reservation (age %s) may have lapsed before the order, so the service may be another customer's; not adopted: find the order with notes %q in Octane, then adopt it by hand or retry with --force",
			a.MSN, age, a.SalesRef)
	}
	state := status
	if state == "" {
		state = "unknown"
	}
	return verdictReview, fmt.Sprintf("the orderCreate answer was lost and number %s is now %s, not SELECTED: an order may have been accepted and then rejected or cancelled (which frees the number), or the reservation lapsed; not ordered again, to avoid a second order: check Octane for an order with notes %q before resubmitting",
		a.MSN, state, a.SalesRef)
}

func customerOf(a *repo.Activation) octane.Customer {
	return octane.Customer{
		Type:       "R",
		GivenNames: a.GivenNames,
		Surname:    a.Surname,
		Address: octane.Address{Line1: a.AddressLine1, Suburb: a.Suburb, State: a.AddrState,
			Postcode: a.Postcode, CountryCode: "AU"},
		Email:  a.Email,
		PlanNo: a.PlanNo,
	}
}

// simProblem says why a physical SIM serial cannot be used ("" if it can).
func simProblem(serial string, res []octane.PooledResource) string {
	for _, r := range res {
		if r.Value != serial && len(res) > 1 {
			continue
		}
		if r.InternalStatus == octane.NumberAvailable && strings.EqualFold(r.ProviderStatus, "r") {
			return ""
		}
		return fmt.Sprintf("SIM %s is not usable: status %s, provider status %q", serial, r.InternalStatus, r.ProviderStatus)
	}
	return fmt.Sprintf("SIM %s is unknown to Octane", serial)
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
