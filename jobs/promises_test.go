package jobs_test

// Tests for the promises a pass keeps under production conditions: at the
// rate-limit ceiling, through an outage, after a day's stop, with a lost
// run lock, in a dry run and at the run deadline. Each fails on the code
// before the fix it names.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
	"github.com/esimbatch/esimbatch/repo"
)

// At the ceiling orderCreate waits on the limiter longer than a store write
// may take. The intent is written only once the slot is granted and the
// answer recorded on a fresh deadline, so every accepted order is stored
// and its id is in the call log.
func TestAcceptedOrdersRecordedAtTheCeiling(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(5)
	h.config.WriteTimeout = 300 * time.Millisecond
	// One orderCreate per 700 ms: each order waits longer than a write may.
	limits := octane.DefaultLimits()
	limits[octane.MethodOrderCreate] = octane.Limit{PerMinute: 1}
	c := h.client("secret", octane.WithLimits(limits), octane.WithWindows(700*time.Millisecond, 5*time.Second))
	h.config.Workers = 1
	res, err := h.runner(c).Pass(context.Background(), []string{jobs.PhaseSubmit})
	if err != nil {
		t.Fatalf("pass: %v (counts %v)", err, res.Counts)
	}
	for ref, a := range h.activations() {
		if a.State != repo.StateSubmitted || a.OrderID == "" {
			t.Errorf("%s: %s, order %q; want submitted with its order id", ref, a.State, a.OrderID)
		}
	}
	var missing int
	err = h.store.DB().Get(&missing, h.store.DB().Rebind(`SELECT count(*) FROM calls
WHERE credential = ? AND method = ? AND outcome = ? AND order_id = ''`), h.cred, octane.MethodOrderCreate, octane.OutcomeOK)
	if err != nil {
		t.Fatal(err)
	}
	if missing != 0 {
		t.Errorf("%d accepted orderCreate calls without an order id in the call log", missing)
	}
	if n := len(h.sim.Orders()); n != 5 {
		t.Errorf("%d orders, want 5", n)
	}
}

// A row left ordering whose reservation lapsed while the job was down,
// and whose number someone else has since ordered, reads IN_USE: it must not
// be adopted (that service's QR code is another customer's credential).
func TestInUseAfterLapseIsNotAdopted(t *testing.T) {
	h := newHarnessWith(t, octanetest.Faults{}, func(c *octanetest.Config) { c.MSNs = 8 })
	h.load(1)
	c := h.client("secret")
	r := h.runner(c)
	ctx := context.Background()
	// Our answer is lost; Octane then rejects the order, which frees the number.
	ours := h.loseOrderAnswer(r, true)
	h.clock.Advance(10 * time.Minute) // the rejection lands; the number is AVAILABLE
	if st := h.sim.NumberState(ours.MSN); st != octane.NumberAvailable {
		t.Fatalf("number %s is %s after the rejection, want AVAILABLE", ours.MSN, st)
	}
	// Someone else takes the number and orders it.
	otherOrder := orderNumber(t, c, ours.MSN)
	h.clock.Advance(25 * time.Hour) // the job was down for a day
	for pass := 0; pass < 3; pass++ {
		if _, err := r.Pass(ctx, nil); err != nil {
			t.Fatal(err)
		}
		h.clock.Advance(31 * time.Minute)
	}
	a := h.activations()["S-00001"]
	if a.State != repo.StateFailed || a.LastErrorStep != string(repo.StepReconcile) || a.ActivationCode != "" {
		t.Fatalf("row %s at %q with code %v (%s); want failed at reconcile with no QR code",
			a.State, a.LastErrorStep, a.ActivationCode != "", a.LastErrorMessage)
	}
	for _, o := range h.sim.Orders() {
		if o.Notes == "S-00001" && o.Status != octane.StatusRejected && o.ID != otherOrder {
			t.Errorf("a second order %s for S-00001", o.ID)
		}
	}
}

// orderNumber reserves numbers until it holds msn, orders it for another
// customer and gives the rest back; it returns the order id.
func orderNumber(t *testing.T, c *octane.Client, msn string) string {
	t.Helper()
	ctx := context.Background()
	var spare []string
	defer func() {
		for _, m := range spare {
			_ = c.UnreserveResource(ctx, m)
		}
	}()
	for range 40 {
		got, err := c.ReserveResources(ctx, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range got {
			if g.MSN != msn {
				spare = append(spare, g.MSN)
				continue
			}
			if err := c.SelectResource(ctx, msn); err != nil {
				t.Fatal(err)
			}
			custNo, err := c.AddCustomer(ctx, octane.Customer{Type: "R", GivenNames: "Someone", Surname: "Else",
				Email: "else@example.com", PlanNo: 1001, Address: octane.Address{CountryCode: "AU"}})
			if err != nil {
				t.Fatal(err)
			}
			id, err := c.OrderCreate(ctx, octane.OrderRequest{CustNo: custNo, PlanNo: 1001, MSN: msn, IsEsim: true,
				LineName: "Someone Else", NotificationEmail: "else@example.com", OrderNotes: "OTHER"})
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
	}
	t.Fatalf("could not reserve %s", msn)
	return ""
}

// capturingLocker hands out the store's run locks and remembers the last.
type capturingLocker struct {
	store *repo.Store
	mu    sync.Mutex
	last  *repo.RunLock
}

func (c *capturingLocker) lock(ctx context.Context, key string) (jobs.Lock, error) {
	l, err := c.store.AcquireRunLock(ctx, key)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.last = l
	c.mu.Unlock()
	return l, nil
}

// When the run lock's session dies mid-batch, the run must not order on:
// the next intent write fails and the pass stops.
func TestLostRunLockSessionStopsOrdering(t *testing.T) {
	h := newHarness(t, octanetest.Faults{Latency: 30 * time.Millisecond, Methods: []string{octane.MethodOrderCreate}})
	h.load(40)
	h.config.BatchSize = 40
	h.config.Workers = 2
	cl := &capturingLocker{store: h.store}
	var ordered atomic.Int32
	var once sync.Once
	var killedAt atomic.Int32
	c := h.client("secret", octane.WithCallHook(func(ctx context.Context, ev octane.CallEvent) {
		if ev.Method != octane.MethodOrderCreate || ev.Outcome != octane.OutcomeOK {
			return
		}
		if ordered.Add(1) == 5 {
			once.Do(func() {
				cl.mu.Lock()
				pid := cl.last.SessionPID()
				cl.mu.Unlock()
				if _, err := h.store.DB().Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
					t.Errorf("terminate the lock's backend: %v", err)
				}
				killedAt.Store(ordered.Load())
			})
		}
	}))
	r := jobs.NewRunner(h.store, c, h.config, jobs.WithClock(h.clock.Now), jobs.WithLocker(cl.lock))
	_, err := r.Pass(context.Background(), []string{jobs.PhaseSubmit})
	if !errors.Is(err, jobs.ErrStopped) || !errors.Is(err, repo.ErrLocked) {
		t.Errorf("pass after losing its lock: %v, want ErrStopped wrapping ErrLocked", err)
	}
	// At most the calls already past their intent (one per worker) finish.
	if extra := int(ordered.Load()) - int(killedAt.Load()); extra > h.config.Workers {
		t.Errorf("%d orders placed after the lock's session died, want at most %d (in flight)", extra, h.config.Workers)
	}
}

// An Octane outage is the pass's failure: after a few calls without an
// answer the pass stops with ErrOctaneUnreachable, charges no further row,
// and no row fails however long the outage lasts (attempts must span two
// days).
func TestOutageStopsThePassAndFailsNoRow(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(60)
	ctx := context.Background()
	h.config.MaxSubmitPerRun = 50
	if _, err := h.runner(h.client("secret")).Pass(ctx, []string{jobs.PhaseSubmit}); err != nil {
		t.Fatal(err)
	}
	h.config.MaxSubmitPerRun = 1000
	r := h.runner(h.client("secret")) // 50 submitted, 10 pending: every pass has work
	h.sim.SetFaults(octanetest.Faults{Transport: 1})
	// A three-hour outage, a pass every 10 minutes.
	for pass := 0; pass < 18; pass++ {
		h.clock.Advance(10 * time.Minute)
		_, err := r.Pass(ctx, nil)
		if !errors.Is(err, jobs.ErrOctaneUnreachable) {
			t.Fatalf("pass %d in the outage: %v, want ErrOctaneUnreachable", pass, err)
		}
	}
	charged := 0
	for ref, a := range h.activations() {
		if a.State == repo.StateFailed {
			t.Errorf("%s failed in an outage: %s %s", ref, a.LastErrorStep, a.LastErrorMessage)
		}
		charged += a.Attempts
	}
	if charged > 18*5 {
		t.Errorf("%d attempts charged over 18 passes, want at most 5 a pass", charged)
	}
	h.sim.SetFaults(octanetest.Faults{})
	for pass := 0; pass < 6; pass++ {
		h.clock.Advance(31 * time.Minute)
		if _, err := r.Pass(ctx, nil); err != nil {
			t.Fatalf("pass %d after the outage: %v", pass, err)
		}
	}
	for ref, a := range h.activations() {
		if a.State != repo.StateQRReady {
			t.Errorf("%s: %s after the outage (%s), want qr_ready", ref, a.State, a.LastErrorMessage)
		}
	}
	h.checkOneOrder(h.activations())
	h.checkPolls()
}

// A completed service is never failed because its QR code cannot be
// fetched yet, however long getEsimDetails refuses.
func TestCompletedServiceNeverFailsForItsQR(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(3)
	h.config.OutageAfter = -1 // every pass reaches the QR phase
	r := h.runner(h.client("secret"))
	ctx := context.Background()
	if _, err := r.Pass(ctx, []string{jobs.PhaseSubmit}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(31 * time.Minute)
	h.sim.SetFaults(octanetest.Faults{Transport: 1, Methods: []string{octane.MethodGetEsimDetails}})
	for pass := 0; pass < 120; pass++ { // 60 hours
		if _, err := r.Pass(ctx, []string{jobs.PhasePoll, jobs.PhaseQR}); err != nil {
			t.Fatal(err)
		}
		h.clock.Advance(30 * time.Minute)
	}
	for ref, a := range h.activations() {
		if a.State != repo.StateCompleted {
			t.Errorf("%s: %s (%s) after 60 h without getEsimDetails, want completed", ref, a.State, a.LastErrorMessage)
		}
	}
	h.sim.SetFaults(octanetest.Faults{})
	h.clock.Advance(31 * time.Minute)
	if _, err := r.Pass(ctx, []string{jobs.PhaseQR}); err != nil {
		t.Fatal(err)
	}
	for ref, a := range h.activations() {
		if a.State != repo.StateQRReady {
			t.Errorf("%s: %s once getEsimDetails answers, want qr_ready", ref, a.State)
		}
	}
}

// A dry run changes no activation column (not even a claim stamp) and
// leaves no runs or calls row.
func TestDryRunChangesNoColumn(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(30)
	ctx := context.Background()
	// Some rows further along: ordering with an unknown outcome, submitted.
	h.sim.FailNext(octane.MethodOrderCreate, octanetest.FaultDrop, 2)
	h.config.MaxSubmitPerRun = 10
	if _, err := h.runner(h.client("secret")).Pass(ctx, []string{jobs.PhaseSubmit}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(31 * time.Minute)
	count := func(table string) int {
		var n int
		if err := h.store.DB().Get(&n, `SELECT count(*) FROM `+table); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := h.activations()
	runs, calls, events := count("runs"), count("calls"), count("events")
	h.config.DryRun = true
	h.config.MaxSubmitPerRun = 1000
	res, err := h.runner(h.client("secret", octane.WithReadOnly())).Pass(ctx, nil)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	h.sameRows(before)
	if r, c, e := count("runs"), count("calls"), count("events"); r != runs || c != calls || e != events {
		t.Errorf("dry run left rows: runs %d -> %d, calls %d -> %d, events %d -> %d", runs, r, calls, c, events, e)
	}
	if res.Counts["submit.claimed"] != 20 {
		t.Errorf("dry run looked at %d pending rows, want 20", res.Counts["submit.claimed"])
	}
}

// A pass that reaches its deadline with work left is a normal pass: no
// error, DeadlineReached set, and what is left counted.
func TestDeadlineIsANormalPass(t *testing.T) {
	h := newHarness(t, octanetest.Faults{Latency: 40 * time.Millisecond})
	h.load(200)
	h.config.RunDeadline = 1500 * time.Millisecond
	res, err := h.runner(h.client("secret")).Pass(context.Background(), nil)
	if err != nil {
		t.Fatalf("pass at its deadline: %v, want no error", err)
	}
	if !res.DeadlineReached || res.Cancelled {
		t.Fatalf("DeadlineReached %v, Cancelled %v; want true, false", res.DeadlineReached, res.Cancelled)
	}
	left := 0
	for _, n := range res.Left {
		left += n
	}
	if left == 0 {
		t.Errorf("Left = %v, want the rows still waiting", res.Left)
	}
	runs, err := h.store.Runs(context.Background(), 1)
	if err != nil || len(runs) != 1 || runs[0].Outcome != "deadline" {
		t.Errorf("run record %+v (%v), want outcome deadline", runs, err)
	}
}

// loadMore imports n more eSIM activations with references prefix-N.
func (h *harness) loadMore(prefix string, n int) {
	h.t.Helper()
	rows := make([]repo.NewActivation, n)
	for i := range rows {
		ref := fmt.Sprintf("%s-%05d", prefix, i+1)
		h.refs = append(h.refs, ref)
		rows[i] = repo.NewActivation{Line: i + 2, SalesRef: ref, GivenNames: "Bo", Surname: fmt.Sprintf("Log%d", i),
			Email: fmt.Sprintf("bo%d@example.com", i), PlanNo: 1001, SIMType: "esim"}
	}
	if _, err := h.store.Import(context.Background(), repo.ImportFile{Name: prefix + ".csv", Hash: prefix, DataRows: n},
		rows, nil, h.clock.Now()); err != nil {
		h.t.Fatal(err)
	}
}

// Issue 10: a backlog bigger than one pass can submit does not hold up the
// polls and QR fetches that are due: they happen in the same pass, which
// ends at its deadline as a normal pass.
func TestBacklogDoesNotStarvePollsAndQR(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(40)
	ctx := context.Background()
	h.config.MaxSubmitPerRun = 20
	r := h.runner(h.client("secret"))
	if _, err := r.Pass(ctx, []string{jobs.PhaseSubmit}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(31 * time.Minute)
	if _, err := r.Pass(ctx, []string{jobs.PhasePoll}); err != nil { // 20 completed, due for QR
		t.Fatal(err)
	}
	if _, err := r.Pass(ctx, []string{jobs.PhaseSubmit}); err != nil { // 20 more submitted
		t.Fatal(err)
	}
	h.clock.Advance(31 * time.Minute) // their polls are due
	h.loadMore("BACKLOG", 300)

	// orderCreate at one a second: the backlog outlasts the pass.
	limits := octane.DefaultLimits()
	limits[octane.MethodOrderCreate] = octane.Limit{PerMinute: 1}
	c := h.client("secret", octane.WithLimits(limits), octane.WithWindows(time.Second, time.Hour))
	h.config.MaxSubmitPerRun = 1000
	// Long enough for 20 polls and 20 QR fetches on a loaded CI machine
	// under -race (4 s was not), short enough for the backlog to outlast it.
	const deadline = 15 * time.Second
	h.config.RunDeadline = deadline
	res, err := h.runner(c).Pass(ctx, nil)
	if err != nil {
		t.Fatalf("backlog pass: %v", err)
	}
	if !res.DeadlineReached {
		t.Errorf("the backlog pass did not reach its deadline (counts %v)", res.Counts)
	}
	if res.Counts["poll.completed"] != 20 || res.Counts["qr.ready"] < 20 {
		t.Errorf("poll.completed %d, qr.ready %d in the backlog pass; want 20 and at least 20 (counts %v)",
			res.Counts["poll.completed"], res.Counts["qr.ready"], res.Counts)
	}
	if n := res.Counts["submit.ordered"]; n == 0 || n > int(deadline/time.Second)+1 {
		t.Errorf("submit.ordered %d, want some, at most one a second (the budget)", n)
	}
	selected := 0
	for _, a := range h.activations() {
		if a.State == repo.StateSelected {
			selected++
		}
	}
	// Budget-first, a row reserves and selects only once its orderCreate
	// slot is granted, one a second here: the deadline can cut at most the
	// one row between its select and its orderCreate (it resumes at
	// orderCreate next pass). Reserving ahead of the budget would leave
	// every worker's row waiting in selected.
	if selected > 1 {
		t.Errorf("%d rows left holding a number in selected: numbers are reserved only when orderCreate can go", selected)
	}
}

// Two passes of one Runner with different phases run side by side (as
// `batch schedule` fires them) instead of one skipping for the lock.
func TestPassesOfOneRunnerShareTheLock(t *testing.T) {
	h := newHarness(t, octanetest.Faults{Latency: 20 * time.Millisecond})
	h.load(20)
	r := h.runner(h.client("secret"))
	var wg sync.WaitGroup
	results := make([]jobs.Result, 2)
	errs := make([]error, 2)
	for i, phases := range [][]string{{jobs.PhaseSubmit}, {jobs.PhasePoll, jobs.PhaseQR}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = r.Pass(context.Background(), phases)
		}()
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil || results[i].Skipped {
			t.Errorf("pass %d: err %v, skipped %v; want both to run", i, errs[i], results[i].Skipped)
		}
	}
	// The lock was given back: another process can take it now.
	l, err := h.store.AcquireRunLock(context.Background(), h.cred)
	if err != nil {
		t.Fatalf("run lock after both passes: %v", err)
	}
	l.Release(context.Background())
}

// Issue 10: when orderQuery's budget keeps the poll lane busy up to the
// pass's deadline, the services it completes get their QR codes in the same
// pass, while it polls, not one pass (10 minutes) later.
func TestQRFetchedWhilePollsRunToTheDeadline(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.ordersDue(60)
	ctx := context.Background()

	// orderQuery at about eight a second: 60 polls outlast the pass.
	limits := octane.DefaultLimits()
	limits[octane.MethodOrderQuery] = octane.Limit{PerMinute: 4}
	c := h.client("secret", octane.WithLimits(limits), octane.WithWindows(500*time.Millisecond, time.Hour))
	h.config.RunDeadline = 4 * time.Second
	res, err := h.runner(c).Pass(ctx, nil)
	if err != nil {
		t.Fatalf("pass: %v", err)
	}
	if !res.DeadlineReached {
		t.Fatalf("the poll lane ended before the deadline (counts %v): nothing to show", res.Counts)
	}
	completed, ready := res.Counts["poll.completed"], res.Counts["qr.ready"]
	if completed == 0 || completed >= 60 {
		t.Fatalf("poll.completed %d, want some of the 60 (counts %v)", completed, res.Counts)
	}
	// The fetch follows the polls a second behind: only the last
	// completions may wait for the next pass.
	if ready < completed/2 {
		t.Errorf("qr.ready %d of %d services completed in the pass, want most (counts %v)", ready, completed, res.Counts)
	}
}

// At the ceiling a pass ends with due polls still waiting for orderQuery's
// spent hourly budget. They were never sent and nothing failed: the phase
// counts them as deferred, and no "octane call" warning is logged for
// them (577 such lines a night at three credentials' ceiling).
func TestPollsWaitingForASpentBudgetAreDeferred(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.ordersDue(12)
	ctx := context.Background()

	const budget = 4
	limits := octane.DefaultLimits()
	limits[octane.MethodOrderQuery] = octane.Limit{PerHour: budget}
	var logs syncBuf
	c := h.client("secret", octane.WithLimits(limits), octane.WithWindows(time.Minute, time.Hour),
		octane.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	// Room for the 4 polls the budget allows on a loaded CI machine under
	// -race; the other 8 wait for the hour whatever the deadline.
	h.config.RunDeadline = 5 * time.Second
	res, err := h.runner(c).Pass(ctx, []string{jobs.PhasePoll})
	if err != nil || !res.DeadlineReached {
		t.Fatalf("poll pass: %v, deadline reached %v (counts %v); want a pass ended by its deadline", err, res.DeadlineReached, res.Counts)
	}
	if got := res.Counts["poll.completed"]; got != budget {
		t.Errorf("poll.completed %d, want the budget's %d (counts %v)", got, budget, res.Counts)
	}
	if got := res.Counts["poll.errors"]; got != 0 {
		t.Errorf("poll.errors %d, want 0: waiting for the budget is no error (counts %v)", got, res.Counts)
	}
	if got := res.Counts["poll.deferred"]; got != 12-budget {
		t.Errorf("poll.deferred %d, want the %d polls left waiting for the budget (counts %v)", got, 12-budget, res.Counts)
	}
	if out := logs.String(); strings.Contains(out, "octane call") {
		t.Errorf("warnings for calls that were never sent:\n%s", out)
	}
	// Deferred, not charged: the rows are due again, with no attempt spent.
	for ref, a := range h.activations() {
		if a.Attempts != 0 {
			t.Errorf("%s (%s): %d attempts charged for waiting on the budget", ref, a.State, a.Attempts)
		}
	}
}

// A QR fetch already sent when the deadline strikes is answered and its
// code stored: Octane answered it once, and a fetch thrown away at the
// deadline is the same call again next pass (BenchmarkBudget counted 28
// such calls over 18 passes).
func TestQRFetchSentBeforeTheDeadlineIsStored(t *testing.T) {
	h := newHarness(t, octanetest.Faults{Latency: 1500 * time.Millisecond, Methods: []string{octane.MethodGetEsimDetails}})
	h.load(8)
	ctx := context.Background()
	r := h.runner(h.client("secret"))
	if _, err := r.Pass(ctx, []string{jobs.PhaseSubmit}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(31 * time.Minute)
	if res, err := r.Pass(ctx, []string{jobs.PhasePoll}); err != nil || res.Counts["poll.completed"] != 8 {
		t.Fatalf("poll pass: %v, counts %v; want 8 completed", err, res.Counts)
	}
	h.config.Workers = 8
	h.config.RunDeadline = time.Second // every fetch is out when it strikes
	res, err := h.runner(h.client("secret")).Pass(ctx, []string{jobs.PhaseQR})
	if err != nil || !res.DeadlineReached {
		t.Fatalf("QR pass: %v, deadline reached %v (counts %v); want a normal pass cut by its deadline", err, res.DeadlineReached, res.Counts)
	}
	answered := 0
	for _, e := range h.sim.Ledger() {
		if e.Method == octane.MethodGetEsimDetails {
			answered++
		}
	}
	stored := 0
	for _, a := range h.activations() {
		if a.State == repo.StateQRReady && a.ActivationCode != "" {
			stored++
		}
	}
	if answered == 0 {
		t.Fatal("no getEsimDetails reached the simulator: nothing tested")
	}
	if stored != answered {
		t.Errorf("%d getEsimDetails calls reached Octane, %d QR codes stored: the answers cut by the deadline are asked for again", answered, stored)
	}
}

// downAtSaveStore is the real store whose StoreReservations fails, as when
// PostgreSQL restarts between Octane's answer and the write.
type downAtSaveStore struct {
	*repo.Store
	fails atomic.Int32
}

func (d *downAtSaveStore) StoreReservations(ctx context.Context, runID int64, credential string, at time.Time, rs []repo.Reservation) ([]repo.Reservation, error) {
	d.fails.Add(1)
	return nil, errors.New("driver: bad connection")
}

// Numbers Octane reserved that the store could not record are given back at
// once: nothing else knows them, so no release phase could stop them
// lapsing at 24 h (promise 3; found by the black-box suite, seed 21, with
// PostgreSQL restarted under a pass).
func TestReservedNumbersTheStoreLostAreGivenBack(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(10)
	h.config.ReserveBatch = 4
	store := &downAtSaveStore{Store: h.store}
	r := jobs.NewRunner(store, h.client("secret"), h.config, jobs.WithClock(h.clock.Now))
	_, err := r.Pass(context.Background(), []string{jobs.PhaseSubmit})
	if !errors.Is(err, jobs.ErrStopped) {
		t.Fatalf("pass: %v, want it stopped by the store error", err)
	}
	if store.fails.Load() == 0 {
		t.Fatal("StoreReservations never called: the test tested nothing")
	}
	var reserved []string
	for _, e := range h.sim.Ledger() {
		if e.Method == octane.MethodReserveResources && e.Outcome == octanetest.OutcomeOK {
			reserved = append(reserved, strings.Split(e.MSN, ",")...)
		}
	}
	if len(reserved) == 0 {
		t.Fatal("no number reserved")
	}
	for _, msn := range reserved {
		if st := h.sim.NumberState(msn); st != "AVAILABLE" {
			t.Errorf("number %s reserved by Octane, never stored, is %s on the simulator: it would lapse at 24 h", msn, st)
		}
	}
	var n int
	if err := h.store.DB().Get(&n, `SELECT COUNT(*) FROM reservations`); err != nil || n != 0 {
		t.Errorf("%d reservations stored (%v), want none: the store was down", n, err)
	}
}

// Calls in flight when RUN_DEADLINE strikes are cut short, their outcome
// unknown; they are the pass ending, not an outage: the pass is a normal
// one (exit 0), however many lanes had a call out.
func TestCallsCutByTheDeadlineAreNoOutage(t *testing.T) {
	// Longer than the deadline plus the 2 s a sent read may finish in.
	h := newHarness(t, octanetest.Faults{Latency: 5 * time.Second, Methods: []string{octane.MethodOrderQuery}})
	h.ordersDue(30)
	ctx := context.Background()
	h.config.Workers = 8
	h.config.RunDeadline = time.Second
	res, err := h.runner(h.client("secret")).Pass(ctx, []string{jobs.PhasePoll})
	if err != nil {
		t.Fatalf("pass: %v (counts %v), want a normal pass cut by its deadline", err, res.Counts)
	}
	if !res.DeadlineReached {
		t.Fatalf("deadline not reached (counts %v): nothing tested", res.Counts)
	}
	if n := res.Counts["poll.claimed"]; n < 5 {
		t.Fatalf("%d polls in flight at the deadline, want at least the outage threshold (5)", n)
	}
}

// An order adopted by reconcile (its orderCreate answer was lost) is
// completed by a getEsimDetails at its first poll slot, and that one call's
// QR code is stored: the row goes submitted -> completed -> qr_ready in one
// write, not completed first and then a second fetch by the QR phase.
func TestAdoptedOrderFetchesItsQROnce(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(1)
	r := h.runner(h.client("secret"))
	ctx := context.Background()
	a := h.loseOrderAnswer(r, false)
	h.clock.Advance(10 * time.Minute) // the order completes on Octane
	for pass := 0; pass < 2; pass++ {
		if _, err := r.Pass(ctx, nil); err != nil {
			t.Fatal(err)
		}
		h.clock.Advance(31 * time.Minute)
	}
	a = h.activations()["S-00001"]
	if a.State != repo.StateQRReady || !a.Adopted || a.ActivationCode == "" {
		t.Fatalf("adopted row %s (adopted %v, code %v), want qr_ready with its code", a.State, a.Adopted, a.ActivationCode != "")
	}
	fetches := 0
	for _, e := range h.sim.Ledger() {
		if e.Method == octane.MethodGetEsimDetails && e.MSN == a.MSN {
			fetches++
		}
	}
	if fetches != 1 {
		t.Errorf("%d getEsimDetails calls for the adopted number %s, want 1", fetches, a.MSN)
	}
}

// An adopted order (its orderCreate answer lost, its number IN_USE when
// reconciled) that Octane then rejects never becomes a service: with no
// order id, getEsimDetails would say "not found" forever. Once the number
// is no longer IN_USE the row fails for review, and nothing is ordered again.
func TestAdoptedOrderRejectedLaterFailsForReview(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(1)
	r := h.runner(h.client("secret"))
	ctx := context.Background()
	h.loseOrderAnswer(r, true)
	if _, err := r.Pass(ctx, []string{jobs.PhaseSubmit}); err != nil { // reconcile while the order is open
		t.Fatal(err)
	}
	a := h.activations()["S-00001"]
	if a.State != repo.StateSubmitted || !a.Adopted {
		t.Fatalf("after reconcile the row is %s (adopted %v), want an adopted submitted row", a.State, a.Adopted)
	}
	for pass := 0; pass < 3; pass++ {
		h.clock.Advance(31 * time.Minute) // the rejection lands
		if _, err := r.Pass(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	a = h.activations()["S-00001"]
	if a.State != repo.StateFailed || a.LastErrorStep != string(repo.StepReconcile) || a.LastErrorCode != "review" ||
		!strings.Contains(a.LastErrorMessage, "probably rejected") {
		t.Fatalf("row %s at %q code %q: %q; want failed for review at reconcile", a.State, a.LastErrorStep, a.LastErrorCode, a.LastErrorMessage)
	}
	if n := len(h.sim.Orders()); n != 1 {
		t.Errorf("%d orders, want only the one Octane rejected", n)
	}
}
