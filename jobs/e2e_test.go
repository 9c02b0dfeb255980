package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// clock is the simulated business clock shared by the job and the simulator.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Compressed rate-limit windows: the documented limits per 250 ms / 5 s.
const (
	minuteWin = 250 * time.Millisecond
	hourWin   = 5 * time.Second
)

type harness struct {
	t      *testing.T
	store  *repo.Store
	sim    *octanetest.Server
	url    string
	clock  *clock
	cred   string
	refs   []string
	config jobs.Config
}

func newHarness(t *testing.T, faults octanetest.Faults) *harness {
	t.Helper()
	return newHarnessWith(t, faults, nil)
}

// newHarnessWith is newHarness with the simulator's configuration adjusted
// by tune (when not nil).
func newHarnessWith(t *testing.T, faults octanetest.Faults, tune func(*octanetest.Config)) *harness {
	t.Helper()
	store := repotest.NewPostgres(t)
	clk := &clock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
	cred := fmt.Sprintf("job-%d", rand.Int64())
	cfg := octanetest.Config{
		Username: cred, Password: "secret", Now: clk.Now, OrderLatency: 5 * time.Minute,
		MinuteWindow: minuteWin, HourWindow: hourWin, Faults: faults, Seed: 42,
		EsimProfiles: 5000,
	}
	if tune != nil {
		tune(&cfg)
	}
	sim := octanetest.New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &harness{t: t, store: store, sim: sim, url: srv.URL, clock: clk, cred: cred,
		config: jobs.Config{Credential: cred, BatchSize: 50, MaxSubmitPerRun: 1000, ReserveBatch: 5,
			RunDeadline: 2 * time.Minute}}
}

func (h *harness) client(password string, opts ...octane.Option) *octane.Client {
	h.t.Helper()
	base := []octane.Option{octane.WithGroupNo(7), octane.WithWindows(minuteWin, hourWin),
		octane.WithRetries(3, 2*time.Millisecond), octane.WithCallRecorder(jobs.CallRecorder(h.store, h.cred, nil))}
	c, err := octane.New(h.url+"/tiab", h.url+"/tiab/api", h.cred, password, append(base, opts...)...)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) runner(c *octane.Client) *jobs.Runner {
	return jobs.NewRunner(h.store, c, h.config, jobs.WithClock(h.clock.Now))
}

// ordersDue loads n activations, submits them and moves the clock past
// the poll interval: every order is complete and due for its poll.
func (h *harness) ordersDue(n int) {
	h.t.Helper()
	h.load(n)
	if _, err := h.runner(h.client("secret")).Pass(context.Background(), []string{jobs.PhaseSubmit}); err != nil {
		h.t.Fatal(err)
	}
	h.clock.Advance(31 * time.Minute)
}

// load imports n eSIM activations (plan 1001, no customer number).
func (h *harness) load(n int) {
	h.t.Helper()
	rows := make([]repo.NewActivation, n)
	for i := range rows {
		ref := fmt.Sprintf("S-%05d", i+1)
		h.refs = append(h.refs, ref)
		rows[i] = repo.NewActivation{Line: i + 2, SalesRef: ref, GivenNames: "Ada", Surname: fmt.Sprintf("Test%d", i),
			Email: fmt.Sprintf("ada%d@example.com", i), PlanNo: 1001, SIMType: "esim"}
	}
	_, err := h.store.Import(context.Background(), repo.ImportFile{Name: "t.csv", Hash: fmt.Sprint(rand.Int64()), DataRows: n},
		rows, nil, h.clock.Now())
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) activations() map[string]repo.Activation {
	h.t.Helper()
	out := map[string]repo.Activation{}
	for _, ref := range h.refs {
		a, err := h.store.ActivationByRef(context.Background(), ref)
		if err != nil {
			h.t.Fatal(err)
		}
		out[ref] = a
	}
	return out
}

// loseOrderAnswer runs a submit pass on r in which Octane takes every order
// but its answer is lost (and, with rejectLater, Octane rejects the order
// some minutes later, which hands its number back), and returns S-00001,
// which that leaves in ordering.
func (h *harness) loseOrderAnswer(r *jobs.Runner, rejectLater bool) repo.Activation {
	h.t.Helper()
	f := octanetest.Faults{Drop: 1, Methods: []string{octane.MethodOrderCreate}}
	if rejectLater {
		f.AsyncReject = 1
	}
	h.sim.SetFaults(f)
	if _, err := r.Pass(context.Background(), []string{jobs.PhaseSubmit}); err != nil {
		h.t.Fatal(err)
	}
	h.sim.SetFaults(octanetest.Faults{})
	a := h.activations()["S-00001"]
	if a.State != repo.StateOrdering {
		h.t.Fatalf("after a lost answer the row is %s, want ordering", a.State)
	}
	return a
}

// checkPolls asserts no order was queried twice within 30 simulated minutes.
func (h *harness) checkPolls() {
	h.t.Helper()
	last := map[string]time.Time{}
	for _, e := range h.sim.Ledger() {
		// Dropped calls count too: Octane may have processed them, so the
		// client never resends an orderQuery that may have reached it.
		if e.Method != octane.MethodOrderQuery || e.OrderID == "" {
			continue
		}
		if prev, ok := last[e.OrderID]; ok && e.At.Sub(prev) < 30*time.Minute {
			h.t.Errorf("order %s queried at %s and again at %s", e.OrderID, prev, e.At)
		}
		last[e.OrderID] = e.At
	}
}

// checkOneOrder asserts at most one accepted order per activation (counting
// orders whose response was lost), exactly one for each finished one.
func (h *harness) checkOneOrder(acts map[string]repo.Activation) {
	h.t.Helper()
	perRef := map[string]int{}
	for _, o := range h.sim.Orders() {
		perRef[o.Notes]++
		if o.SIMNoPresent {
			h.t.Errorf("order %s for an eSIM carried a simNo", o.ID)
		}
	}
	for ref, a := range acts {
		switch n := perRef[ref]; {
		case n > 1:
			h.t.Errorf("%s: %d accepted orders, want at most 1", ref, n)
			for _, o := range h.sim.Orders() {
				if o.Notes == ref {
					h.t.Logf("  order %s msn %s status %s created %s", o.ID, o.MSN, o.Status, o.CreatedAt.Format(time.TimeOnly))
				}
			}
			evs, _ := h.store.Events(context.Background(), a.ID)
			for _, e := range evs {
				h.t.Logf("  event %+v", e)
			}
		case a.State == repo.StateQRReady && n != 1:
			h.t.Errorf("%s: qr_ready with %d orders", ref, n)
		}
	}
}

func TestHappyPath200(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(200)
	r := h.runner(h.client("secret"))
	ctx := context.Background()
	for pass := 0; pass < 2; pass++ {
		res, err := r.Pass(ctx, nil)
		if err != nil || res.Skipped {
			t.Fatalf("pass %d: %v (skipped %v)", pass, err, res.Skipped)
		}
		h.clock.Advance(31 * time.Minute)
	}
	acts := h.activations()
	for ref, a := range acts {
		if a.State != repo.StateQRReady || a.ActivationCode == "" || a.OrderID == "" {
			t.Fatalf("%s: state %s, order %q, has code %v", ref, a.State, a.OrderID, a.ActivationCode != "")
		}
	}
	if n := len(h.sim.Orders()); n != 200 {
		t.Fatalf("orders = %d, want 200", n)
	}
	h.checkOneOrder(acts)
	h.checkPolls()
	calls := map[string]int{}
	total := 0
	for _, e := range h.sim.Ledger() {
		calls[e.Method]++
		total++
		if e.Outcome != octanetest.OutcomeOK {
			t.Errorf("unexpected %s outcome %s", e.Method, e.Outcome)
		}
	}
	// Minimum per activation: addCustomer, select, orderCreate, one
	// orderQuery, getEsimDetails, plus one reserveResources per 5.
	// And one queryResources per pass: the credential check before the
	// first claim (invariant 7).
	want := map[string]int{octane.MethodAddCustomer: 200, octane.MethodReserveResources: 40,
		octane.MethodSelectResource: 200, octane.MethodOrderCreate: 200, octane.MethodOrderQuery: 200,
		octane.MethodGetEsimDetails: 200, octane.MethodQueryResources: 2}
	for m, n := range want {
		if calls[m] != n {
			t.Errorf("%s calls = %d, want %d", m, calls[m], n)
		}
	}
	if total != 1042 {
		t.Errorf("total calls = %d, want 1042 (5.2 per activation with RESERVE_BATCH=5, 1 per pass): %v", total, calls)
	}
	// The call log holds every call, with the activation for per-row calls.
	recent, err := h.store.RecentCalls(ctx, h.cred, h.clock.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for m, n := range want {
		if len(recent[m]) != n {
			t.Errorf("call log %s = %d, want %d", m, len(recent[m]), n)
		}
	}
}

// Faults everywhere and passes killed at random points: still one order per
// activation, every row terminal with a reason, none failed by transport.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test")
	}
	h := newHarness(t, octanetest.Faults{Transport: 0.05, Drop: 0.05, RateLimit: 0.03, Reject: 0.02, AsyncReject: 0.02})
	h.config.BatchSize = 20
	// A tenth of the tries get no answer, and a call that may have reached
	// Octane is not tried again unless it is a read: five such calls in a
	// row (the default outage) come up by chance in about one run in a
	// hundred of this test's 700-odd tries; twelve in a row in about one
	// run in a billion.
	h.config.OutageAfter = 12
	h.load(120)
	r := h.runner(h.client("secret", octane.WithRateLimitRetries(5)))
	rng := rand.New(rand.NewPCG(1, 2))
	for pass := 0; pass < 40; pass++ {
		if pass == 30 {
			h.sim.SetFaults(octanetest.Faults{}) // drain
		}
		ctx, cancel := context.WithCancel(context.Background())
		if pass < 30 && rng.IntN(2) == 0 {
			time.AfterFunc(time.Duration(rng.IntN(40))*time.Millisecond, cancel)
		}
		_, err := r.Pass(ctx, nil)
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("pass %d: %v", pass, err)
		}
		h.clock.Advance(31 * time.Minute)
		done := true
		for _, a := range h.activations() {
			if !a.State.Terminal() {
				done = false
			}
		}
		if done && pass >= 30 {
			break
		}
	}
	acts := h.activations()
	counts := map[repo.State]int{}
	for ref, a := range acts {
		counts[a.State]++
		switch a.State {
		case repo.StateQRReady:
		case repo.StateFailed:
			if a.LastErrorMessage == "" {
				t.Errorf("%s failed without a reason", ref)
			}
			if a.LastErrorCode == "transport" || a.LastErrorCode == octane.FaultCodeRateLimited {
				t.Errorf("%s failed by a transport or rate-limit error: %s %s", ref, a.LastErrorCode, a.LastErrorMessage)
			}
		default:
			t.Errorf("%s ended in %s", ref, a.State)
		}
	}
	t.Logf("states: %v, orders: %d, calls: %d", counts, len(h.sim.Orders()), len(h.sim.Ledger()))
	// Rejections are a few percent: most rows must get through, or "every
	// row terminal" would hold with every row failed.
	if counts[repo.StateQRReady] < len(acts)/2 {
		t.Errorf("%d of %d rows qr_ready, want most", counts[repo.StateQRReady], len(acts))
	}
	h.checkOneOrder(acts)
	h.checkPolls()
	// Every number we reserved is back or in use, before any 24 h expiry.
	if el := h.clock.Now().Sub(time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)); el >= 24*time.Hour {
		t.Fatalf("test ran %s of simulated time; the 24 h expiry would hide leaks", el)
	}
	for _, e := range h.sim.Ledger() {
		if e.Method != octane.MethodReserveResources || e.Outcome != octanetest.OutcomeOK {
			continue
		}
		for _, msn := range strings.Split(e.MSN, ",") {
			if st := h.sim.NumberState(msn); st != octane.NumberAvailable && st != octane.NumberInUse {
				t.Errorf("number %s left %s", msn, st)
			}
		}
	}
}

// A crashed run's reservations (free numbers of an earlier run) are
// released by the next pass, long before Octane's 24 h expiry.
func TestOrphanReservationsReleased(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	ctx := context.Background()
	c := h.client("secret")
	got, err := c.ReserveResources(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	crashed, err := h.store.StartRun(ctx, h.clock.Now(), h.cred, []string{"submit"}, false)
	if err != nil {
		t.Fatal(err)
	}
	var rs []repo.Reservation
	for _, g := range got {
		rs = append(rs, repo.Reservation{MSN: g.MSN, ReservationID: g.ReservationID})
	}
	if err := h.store.SaveReservations(ctx, crashed, h.cred, h.clock.Now(), rs); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(10 * time.Minute)
	res, err := h.runner(c).Pass(ctx, []string{jobs.PhaseRelease})
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts["release.released"] != 5 {
		t.Errorf("released %d, want 5 (%v)", res.Counts["release.released"], res.Counts)
	}
	for _, g := range got {
		if st := h.sim.NumberState(g.MSN); st != octane.NumberAvailable {
			t.Errorf("%s is %s after release", g.MSN, st)
		}
	}
}

func TestTwoRunsTogether(t *testing.T) {
	h := newHarness(t, octanetest.Faults{Latency: 5 * time.Millisecond})
	h.load(40)
	start := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]jobs.Result, 2)
	errs := make([]error, 2)
	for i := range 2 {
		r := h.runner(h.client("secret"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = r.Pass(context.Background(), nil)
		}()
	}
	close(start)
	wg.Wait()
	skipped := 0
	for i := range 2 {
		if errs[i] != nil {
			t.Errorf("run %d: %v", i, errs[i])
		}
		if results[i].Skipped {
			skipped++
		}
	}
	if skipped != 1 {
		t.Fatalf("skipped runs = %d, want exactly 1", skipped)
	}
	if n := len(h.sim.Orders()); n != 40 {
		t.Errorf("orders = %d, want 40", n)
	}
}

func TestBadCredentialsTouchNothing(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(30)
	before := h.activations()
	_, err := h.runner(h.client("wrong")).Pass(context.Background(), nil)
	if !errors.Is(err, jobs.ErrStopped) || !errors.Is(err, octane.ErrUnauthorized) {
		t.Fatalf("Pass = %v, want ErrStopped and octane.ErrUnauthorized", err)
	}
	h.sameRows(before)
	if n := len(h.sim.Orders()); n != 0 {
		t.Errorf("orders = %d, want 0", n)
	}
}

// Bad credentials on a pass with orders due for a poll: a poll claim spends
// the order's 30-minute slot, so the pass must stop before claiming anything.
func TestBadCredentialsLeavePollsAlone(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.ordersDue(8)
	ctx := context.Background()
	before := h.activations()
	for _, phases := range [][]string{{jobs.PhasePoll}, {jobs.PhaseQR}, nil} {
		_, err := h.runner(h.client("wrong")).Pass(ctx, phases)
		if !errors.Is(err, octane.ErrUnauthorized) {
			t.Fatalf("phases %v: Pass = %v, want octane.ErrUnauthorized", phases, err)
		}
		h.sameRows(before)
	}
	for _, e := range h.sim.Ledger() {
		if e.Method == octane.MethodOrderQuery {
			t.Errorf("orderQuery sent with a bad credential: %+v", e)
		}
	}
}

// sameRows fails the test if any activation differs in any column from before.
func (h *harness) sameRows(before map[string]repo.Activation) {
	h.t.Helper()
	for ref, b := range h.activations() {
		if a := before[ref]; !reflect.DeepEqual(a, b) {
			h.t.Errorf("%s changed:\n before %+v\n after  %+v", ref, a, b)
		}
	}
}

func TestEmptyEsimPoolLeavesRowsPending(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.sim.SetEsimProfiles(0)
	h.load(30)
	res, err := h.runner(h.client("secret")).Pass(context.Background(), nil)
	if err != nil {
		t.Fatalf("Pass: %v", err)
	}
	if !strings.Contains(strings.ToLower(res.SubmitStopped), "not available") {
		t.Errorf("SubmitStopped = %q, want the pool reason", res.SubmitStopped)
	}
	for ref, a := range h.activations() {
		if a.State != repo.StatePending || a.ClaimToken != "" {
			t.Errorf("%s: state %s claim %q, want pending and unclaimed", ref, a.State, a.ClaimToken)
		}
	}
	for _, e := range h.sim.Ledger() {
		if e.Method != octane.MethodReserveResources || e.Outcome != octanetest.OutcomeOK {
			continue
		}
		for _, msn := range strings.Split(e.MSN, ",") {
			if st := h.sim.NumberState(msn); st != octane.NumberAvailable {
				t.Errorf("number %s left %s", msn, st)
			}
		}
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(20)
	before := h.activations()
	h.config.DryRun = true
	res, err := h.runner(h.client("secret", octane.WithReadOnly())).Pass(context.Background(), nil)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	for _, e := range h.sim.Ledger() {
		switch e.Method {
		case octane.MethodQueryResources, octane.MethodOrderQuery, octane.MethodGetEsimDetails:
		default:
			t.Errorf("dry run sent %s", e.Method)
		}
	}
	for ref, a := range h.activations() {
		b := before[ref]
		if a.State != b.State || a.Attempts != b.Attempts || a.ClaimToken != "" || a.CustNo != nil {
			t.Errorf("%s changed in a dry run", ref)
		}
	}
	if res.Counts["submit.claimed"] != 20 {
		t.Errorf("dry run looked at %d rows, want 20", res.Counts["submit.claimed"])
	}
}

// A lost orderCreate answer whose order Octane then rejected hands the number
// back long before a reservation could lapse. Reconcile must not read that
// AVAILABLE as "lapsed" and order again (invariant 1): the row fails with a
// reason ops can act on.
func TestLostOrderThenRejectedIsNotReordered(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(1)
	r := h.runner(h.client("secret"))
	ctx := context.Background()
	h.loseOrderAnswer(r, true)
	for pass := 0; pass < 3; pass++ {
		h.clock.Advance(31 * time.Minute)
		if _, err := r.Pass(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	a := h.activations()["S-00001"]
	if a.State != repo.StateFailed || a.LastErrorStep != string(repo.StepReconcile) || !strings.Contains(a.LastErrorMessage, "check Octane") {
		t.Errorf("row %s step %q: %q, want failed at reconcile with advice", a.State, a.LastErrorStep, a.LastErrorMessage)
	}
	if n := len(h.sim.Orders()); n != 1 {
		t.Errorf("%d orders, want exactly the one Octane rejected", n)
	}
}

// Break 3 of issue 9: after a lost orderCreate answer, a number found
// AVAILABLE more than 24 h later is no proof that no order was placed (a
// rejected order hands its number back too): the row is never ordered again
// and fails for review with advice, whatever its age. Only SELECTED proves
// no order consumed the number.
func TestLostAnswerAfterADayIsReviewedNotReordered(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(1)
	r := h.runner(h.client("secret"))
	ctx := context.Background()
	// The answer is lost after Octane accepted the order; Octane then
	// rejects it, which hands the number back.
	h.loseOrderAnswer(r, true)
	h.clock.Advance(25 * time.Hour) // the job was down for a day
	for pass := 0; pass < 3; pass++ {
		if _, err := r.Pass(ctx, nil); err != nil {
			t.Fatal(err)
		}
		h.clock.Advance(31 * time.Minute)
	}
	a := h.activations()["S-00001"]
	if a.State != repo.StateFailed || a.LastErrorStep != string(repo.StepReconcile) ||
		!strings.Contains(a.LastErrorMessage, "not ordered again") {
		t.Errorf("row %s at %q (%s), want failed at reconcile for review", a.State, a.LastErrorStep, a.LastErrorMessage)
	}
	if n := len(h.sim.Orders()); n != 1 {
		t.Errorf("%d orders, want only the one Octane rejected", n)
	}
}

// Long phases log progress lines with done/total, rate and ETA.
func TestProgressLinesCarryTotals(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(12)
	h.config.ProgressEvery = time.Nanosecond
	h.config.BatchSize = 4
	var buf syncBuf
	r := jobs.NewRunner(h.store, h.client("secret"), h.config, jobs.WithClock(h.clock.Now),
		jobs.WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	if _, err := r.Pass(context.Background(), []string{jobs.PhaseSubmit}); err != nil {
		t.Fatal(err)
	}
	var seen bool
	for _, line := range strings.Split(buf.String(), "\n") {
		if !strings.Contains(line, `"msg":"progress"`) || !strings.Contains(line, `"phase":"submit"`) {
			continue
		}
		seen = true
		if !strings.Contains(line, `"total":12`) || !strings.Contains(line, `"rate_per_s"`) {
			t.Errorf("progress line without total 12 or rate: %s", line)
		}
	}
	if !seen {
		t.Fatalf("no submit progress line in:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), `"eta_s"`) {
		t.Error("no progress line carried an ETA")
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// A failing import (a file that cannot be moved, say) must not hold up the
// orders already waiting: submit still runs, and the pass still reports the
// failure so the platform team sees it.
func TestImportFailureDoesNotBlockSubmit(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(3)
	boom := errors.New("move sales.csv to processed/: permission denied")
	r := jobs.NewRunner(h.store, h.client("secret"), h.config, jobs.WithClock(h.clock.Now),
		jobs.WithImport(func(context.Context, time.Time) (map[string]int, error) { return nil, boom }))
	_, err := r.Pass(context.Background(), []string{jobs.PhaseImport, jobs.PhaseSubmit})
	if !errors.Is(err, boom) {
		t.Fatalf("Pass = %v, want the import error", err)
	}
	for ref, a := range h.activations() {
		if a.State != repo.StateSubmitted {
			t.Errorf("%s is %s, want submitted despite the import failure", ref, a.State)
		}
	}
}
