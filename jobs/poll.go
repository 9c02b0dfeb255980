package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/repo"
)

// release unreserves numbers held too long (or orphaned by a crashed run)
// and puts their activations back to pending.
func (p *pass) release(ctx context.Context) error {
	now := p.r.now()
	seen := map[int64]bool{}
	for !p.halted(ctx) && p.holdsLock(ctx) {
		rs, err := p.r.store.DueReleases(ctx, now, now.Add(-p.r.cfg.ReleaseAfter), p.runID, p.r.cfg.Credential, 500)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("due releases: %w", err)
		}
		var fresh []repo.Reservation
		for _, r := range rs {
			if !seen[r.ID] {
				seen[r.ID] = true
				fresh = append(fresh, r)
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		prog := p.newProgress(PhaseRelease, len(fresh))
		for _, r := range fresh {
			if p.halted(ctx) {
				return nil
			}
			p.releaseOne(ctx, r)
			prog.tick(1)
		}
	}
	return nil
}

func (p *pass) releaseOne(ctx context.Context, r repo.Reservation) {
	if p.r.cfg.DryRun {
		p.log.Info("dry run: would release number", "msn", r.MSN, "reserved_at", r.ReservedAt)
		p.add("release.would_release", 1)
		return
	}
	if r.ActivationID != nil {
		ctx = withActivation(ctx, *r.ActivationID)
	}
	// A refusal is recorded released only when the number is provably no
	// longer held for us (unreserve); one still held stays ours.
	if err := p.unreserve(ctx, r.MSN, &r.ReservedAt); err != nil {
		k := classify(ctx, err)
		switch decide(repo.StepRelease, k) {
		case actStopPass:
			p.setFatal(err)
			return
		case actFail:
			p.add("release.refused", 1)
		default:
			p.add("release.errors", 1)
		}
		p.log.Warn("unreserve failed; retried next pass", "msn", r.MSN, "kind", k, "err", err)
		return
	}
	c, cancel := p.wctx(ctx)
	defer cancel()
	if err := p.r.store.ReleaseReservation(c, p.r.cfg.Credential, r, p.r.now()); err != nil {
		p.log.Error("record released number", "msn", r.MSN, "err", err)
		p.add("release.errors", 1)
		return
	}
	p.add("release.released", 1)
}

// poll asks Octane about submitted orders whose poll slot has come. The claim
// stamps the next slot, so a crash never causes an early second query.
func (p *pass) poll(ctx context.Context) error {
	cfg := p.r.cfg
	if cfg.DryRun {
		// A poll claim spends the order's slot (a write): a dry run skips orderQuery.
		p.log.Info("dry run: orderQuery skipped")
		return nil
	}
	prog := p.newProgress(PhasePoll, p.workload(ctx, PhasePoll, 0))
	u := &unclaimer{}
	defer p.flush(ctx, u)
	err := p.drain(ctx, u, claimLoop{
		count: "poll.claimed", prog: prog,
		claim: func(ctx context.Context, n int) ([]repo.Activation, error) {
			now := p.r.now()
			return p.r.store.ClaimPolls(ctx, now, now.Add(cfg.PollInterval), p.runID, cfg.Credential, n, cfg.Lease)
		},
		work: func(ctx context.Context, a *repo.Activation) { p.pollOne(ctx, a, u) },
	})
	if err != nil {
		return fmt.Errorf("claim polls: %w", err)
	}
	return nil
}

func (p *pass) pollOne(ctx context.Context, a *repo.Activation, u *unclaimer) {
	if p.halted(ctx) {
		u.add(a)
		return
	}
	if a.OrderID == "" {
		p.pollAdopted(ctx, a, u)
		return
	}
	// The claim spent the slot: whatever the answer, the next query of
	// this order comes after the interval (settle hands the row back).
	callCtx, ans := withAnswers(ctx, p.log)
	defer ans.flush(ctx)
	st, err := p.oc.OrderQuery(callCtx, a.OrderID)
	if err != nil {
		if !errors.Is(err, octane.ErrBudgetWait) { // that one settle counts as deferred
			p.add("poll.errors", 1)
		}
		p.settle(ctx, a, repo.StepPoll, err, u)
		return
	}
	if st.Status != octane.StatusComplete {
		ans.flush(ctx) // its call event ahead of whatever the answer leads to
	}
	c, cancel := p.wctx(ctx)
	defer cancel()
	now := p.r.now()
	switch st.Status {
	case octane.StatusComplete:
		sn := st.ServiceNumber
		if sn == "" {
			sn = a.MSN
		}
		if err := p.r.store.OrderCompleted(c, a, sn, p.awaitQR(a), now, ans.take()...); err != nil {
			p.storeErr(err, a, "order completed")
			return
		}
		p.add("poll.completed", 1)
		if p.awaitQR(a) {
			select { // the QR fetch beside the polls takes it (qrFollowing)
			case p.completed <- struct{}{}:
			default:
			}
		}
	case octane.StatusRejected, octane.StatusCancelled:
		msg := st.ErrorMessage
		if msg == "" {
			msg = "order " + st.Status
		}
		p.failRow(ctx, a, repo.StepPoll, st.Status, msg)
	case octane.StatusOpen, octane.StatusInProgress:
		p.add("poll.open", 1)
		u.add(a)
	default:
		if _, dup := p.r.unknownStatus.LoadOrStore(st.Status, true); !dup {
			p.log.Warn("unknown order status; kept polling", "status", st.Status, "order_id", a.OrderID)
		}
		p.add("poll.unknown_status", 1)
		u.add(a)
	}
}

// awaitQR says whether a completed row still needs its QR fetched.
func (p *pass) awaitQR(a *repo.Activation) bool {
	return a.SIMType != "physical" && !a.QRByEmail
}

// pollAdopted checks an order adopted by reconcile (no order id) by its
// number, through the same error table as every other step: an answer
// that is not there yet waits for the next slot.
func (p *pass) pollAdopted(ctx context.Context, a *repo.Activation, u *unclaimer) {
	var (
		q   octane.EsimQR
		err error
	)
	if a.SIMType == "physical" {
		// No order id to follow and no call that reports a physical SIM's
		// service: IN_USE within our reservation already proved the order
		// ours, so the row is provisioned at its first poll slot.
	} else {
		q, err = p.oc.GetEsimQR(ctx, a.MSN)
		if err == nil && q.ActivationCode == "" && len(q.QRCode) == 0 {
			err = fmt.Errorf("getEsimDetails for %s: answer has neither activation code nor QR image: %w", a.MSN, octane.ErrRejected)
		}
	}
	if err != nil {
		if classify(ctx, err) == kindRejected && p.adoptedEnded(ctx, a) {
			return
		}
		p.add("poll.open", 1)
		p.settle(ctx, a, repo.StepPoll, err, u)
		return
	}
	c, cancel := p.wctx(ctx)
	defer cancel()
	now := p.r.now()
	if !p.awaitQR(a) {
		if err := p.r.store.OrderCompleted(c, a, a.MSN, false, now); err != nil {
			p.storeErr(err, a, "adopted order completed")
			return
		}
		p.add("poll.completed", 1)
		return
	}
	// The answer is the QR code itself: stored in the same write, or the
	// QR phase would claim the completed row and fetch it again.
	if err := p.r.store.CompletedWithQR(c, a, a.MSN, q.ActivationCode, q.QRCode, q.ICCID, now); err != nil {
		p.storeErr(err, a, "adopted order completed")
		return
	}
	p.add("poll.completed", 1)
	p.add("qr.ready", 1)
}

// adoptedEnded checks, when an adopted order's number has no service yet,
// whether the order still holds the number: an open order keeps it IN_USE,
// and one that was rejected or cancelled hands it back (AVAILABLE). Then the
// order will never become a service, and, with no order id to ask, the row
// would wait forever: it fails for review instead, like reconcile's other
// verdicts, and reports whether it did. Later, someone else may take the
// number, and its service is not ours. A failed lookup decides nothing.
func (p *pass) adoptedEnded(ctx context.Context, a *repo.Activation) bool {
	res, err := p.oc.QueryResources(ctx, a.MSN)
	if err != nil {
		return false
	}
	status := numberStatus(res, a.MSN)
	if status == octane.NumberInUse {
		return false
	}
	if status == "" {
		status = "unknown"
	}
	p.log.Info("adopted order ended without a service", "activation_id", a.ID, "msn", a.MSN, "number_state", status)
	p.failRow(ctx, a, repo.StepReconcile, codeReview, fmt.Sprintf("the orderCreate answer was lost and the order was adopted, "+
		"but number %s has no service and is now %s: the order was probably rejected or cancelled; check Octane for an order "+
		"with notes %q before re-driving with `batch retry --force`", a.MSN, status, a.SalesRef))
	return true
}

// qrFollowGap is how long the QR fetch beside the polls lets completions
// gather before it claims them, so that one claim takes what the poll
// workers completed meanwhile instead of one row each.
const qrFollowGap = time.Second

// qrFollowing is the idle step of the QR fetch that runs beside the poll
// lane (claimLoop.idle): once no completed service is left to fetch, it
// waits until this pass's polls complete another (and qrFollowGap more), or
// until the poll lane has ended, which allows one last claim for what it
// completed since the previous one.
func (p *pass) qrFollowing() func(ctx context.Context) bool {
	last := false
	return func(ctx context.Context) bool {
		if last {
			return false
		}
		select {
		case <-p.completed:
		case <-p.pollDone:
			last = true
			return true
		case <-ctx.Done():
			return false
		}
		t := time.NewTimer(qrFollowGap)
		defer t.Stop()
		select {
		case <-t.C:
		case <-p.pollDone:
			last = true
		case <-ctx.Done():
			return false
		}
		return true
	}
}

// qr fetches the activation code and QR image of completed eSIM services.
// With followPolls it keeps fetching, as this pass's polls complete
// services, until the poll lane has ended (qrFollowing).
func (p *pass) qr(ctx context.Context, followPolls bool) error {
	cfg := p.r.cfg
	if cfg.DryRun {
		// Storing a QR is a write and a claim is one too: a dry run fetches none.
		p.log.Info("dry run: QR fetch skipped")
		return nil
	}
	u := &unclaimer{}
	defer p.flush(ctx, u)
	prog := p.newProgress(PhaseQR, p.workload(ctx, PhaseQR, 0))
	l := claimLoop{
		prog: prog,
		claim: func(ctx context.Context, n int) ([]repo.Activation, error) {
			return p.r.store.ClaimQR(ctx, p.r.now(), p.runID, cfg.Credential, n, cfg.Lease)
		},
		work: func(ctx context.Context, a *repo.Activation) { p.qrOne(ctx, a, u) },
	}
	if followPolls {
		l.idle = p.qrFollowing()
	}
	err := p.drain(ctx, u, l)
	if err != nil {
		return fmt.Errorf("claim qr: %w", err)
	}
	return nil
}

func (p *pass) qrOne(ctx context.Context, a *repo.Activation, u *unclaimer) {
	if p.halted(ctx) {
		u.add(a)
		return
	}
	msn := a.ServiceNumber
	if msn == "" {
		msn = a.MSN
	}
	callCtx, ans := withAnswers(ctx, p.log)
	defer ans.flush(ctx)
	q, err := p.oc.GetEsimQR(callCtx, msn)
	if err == nil && q.ActivationCode == "" && len(q.QRCode) == 0 {
		err = fmt.Errorf("getEsimDetails for %s: answer has neither activation code nor QR image: %w", msn, octane.ErrRejected)
	}
	if err != nil {
		ans.flush(ctx) // an empty answer: its call event ahead of the back-off
		// Never a failure: the service is live and only lacks its QR
		// (the table says wait); after 24 h the report lists it.
		p.settle(ctx, a, repo.StepQR, err, u)
		return
	}
	c, cancel := p.wctx(ctx)
	defer cancel()
	if err := p.r.store.QRReady(c, a, q.ActivationCode, q.QRCode, q.ICCID, p.r.now(), ans.take()...); err != nil {
		p.storeErr(err, a, "qr ready")
		return
	}
	p.add("qr.ready", 1)
}
