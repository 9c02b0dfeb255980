package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// callEnv is a simulator on loopback for one credential, with compressed
// windows, and the store of the dialect under test.
type callEnv struct {
	t      *testing.T
	store  *repo.Store
	sim    *octanetest.Server
	url    string
	cred   string
	limits map[string]octane.Limit
	minute time.Duration
	hour   time.Duration
}

func newCallEnv(t *testing.T, s *repo.Store, minute, hour time.Duration, limits map[string]octane.Limit) *callEnv {
	t.Helper()
	cred := fmt.Sprintf("calls-%d", rand.Int64())
	sim := octanetest.New(octanetest.Config{Username: cred, Password: "secret", MinuteWindow: minute, HourWindow: hour,
		Limits: limits, Customers: []int64{5}, OrderLatency: 2 * time.Hour})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &callEnv{t: t, store: s, sim: sim, url: srv.URL, cred: cred, limits: limits, minute: minute, hour: hour}
}

// client is a real client on the simulator; hook nil records through
// jobs.CallRecorder.
func (e *callEnv) client(hook func(context.Context, octane.CallEvent) error, opts ...octane.Option) *octane.Client {
	e.t.Helper()
	if hook == nil {
		hook = jobs.CallRecorder(e.store, e.cred, nil)
	}
	base := []octane.Option{octane.WithGroupNo(7), octane.WithWindows(e.minute, e.hour), octane.WithLimits(e.limits),
		octane.WithRetries(3, time.Millisecond), octane.WithCallRecorder(hook)}
	c, err := octane.New(e.url+"/tiab", e.url+"/tiab/api", e.cred, "secret", append(base, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *callEnv) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.store.DB().GetContext(context.Background(), &n, e.store.DB().Rebind(query), args...); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *callEnv) faults233() int {
	n := 0
	for _, l := range e.sim.Ledger() {
		if l.Outcome == octanetest.OutcomeFault && l.Code == octane.FaultCodeRateLimited {
			n++
		}
	}
	return n
}

// events collects a client's CallDone events (and passes every event on).
type events struct {
	mu   sync.Mutex
	done []octane.CallEvent
	next func(context.Context, octane.CallEvent) error
}

func (ev *events) hook(ctx context.Context, e octane.CallEvent) error {
	if e.Phase == octane.CallDone {
		ev.mu.Lock()
		ev.done = append(ev.done, e)
		ev.mu.Unlock()
	}
	if ev.next != nil {
		return ev.next(ctx, e)
	}
	return nil
}

func (ev *events) last(t *testing.T) octane.CallEvent {
	t.Helper()
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.done) == 0 {
		t.Fatal("no call ended")
	}
	return ev.done[len(ev.done)-1]
}

// A process killed with its calls out: the hook's write before sending
// happened, the one after never did. The next process, seeded from the call
// log, still counts those calls and waits for the window instead of
// spending a budget Octane already counted (the simulator would answer 233).
func TestCallRecordedBeforeSendingSurvivesAKill(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		e := newCallEnv(t, s, 400*time.Millisecond, 10*time.Second,
			map[string]octane.Limit{octane.MethodReserveResources: {PerMinute: 2}})
		record := jobs.CallRecorder(s, e.cred, nil)
		var mu sync.Mutex
		var firstSent time.Time
		killed := e.client(func(ctx context.Context, ev octane.CallEvent) error {
			if ev.Phase != octane.CallSending {
				return nil // the process died before the call ended
			}
			mu.Lock()
			if firstSent.IsZero() {
				firstSent = ev.SentAt
			}
			mu.Unlock()
			return record(ctx, ev)
		})
		for range 2 {
			if _, err := killed.ReserveResources(ctx, 1); err != nil {
				t.Fatal(err)
			}
		}
		if n := e.count(`SELECT COUNT(*) FROM calls WHERE credential = ? AND outcome = ?`, e.cred, repo.CallInflight); n != 2 {
			t.Fatalf("%d in-flight rows, want the 2 calls written before sending", n)
		}

		evs := &events{next: jobs.CallRecorder(s, e.cred, nil)}
		next := e.client(evs.hook)
		if err := jobs.SeedLimiter(s, next, e.cred, nil)(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := next.ReserveResources(ctx, 1); err != nil {
			t.Fatal(err)
		}
		got := evs.last(t)
		if earliest := firstSent.Add(e.minute); got.SentAt.Before(earliest) {
			t.Errorf("the next process sent at %s, before the killed calls left the window (%s)",
				got.SentAt.Format(time.StampMicro), earliest.Format(time.StampMicro))
		}
		if n := e.faults233(); n != 0 {
			t.Errorf("%d faults 233", n)
		}
	})
}

// countingStore is the real store, counting the recorder's writes.
type countingStore struct {
	*repo.Store
	starts, drops atomic.Int32
}

func (c *countingStore) StartCall(ctx context.Context, call repo.Call) (int64, error) {
	c.starts.Add(1)
	return c.Store.StartCall(ctx, call)
}

func (c *countingStore) DropCall(ctx context.Context, id int64) error {
	c.drops.Add(1)
	return c.Store.DropCall(ctx, id)
}

// A call that never left the process (nothing listens) is written before
// the try and deleted after it: no call in the log, nothing counted.
func TestCallThatNeverLeftIsNotCounted(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cs := &countingStore{Store: s}
		c, err := octane.New("http://"+addr+"/tiab", "http://"+addr+"/tiab/api", "nobody", "pw",
			octane.WithRetries(3, time.Millisecond), octane.WithCallRecorder(jobs.CallRecorder(cs, "nobody", nil)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.OrderCreate(ctx, octane.OrderRequest{CustNo: 9, PlanNo: 1001, MSN: "0410000000", IsEsim: true})
		var te *octane.TransportError
		if !errors.As(err, &te) || te.MayHaveReached {
			t.Fatalf("err = %v, want a transport error that never reached", err)
		}
		if st, dr := cs.starts.Load(), cs.drops.Load(); st != 3 || dr != 3 {
			t.Fatalf("%d written before sending, %d deleted; want 3 and 3 (one per try)", st, dr)
		}
		var n int
		if err := s.DB().GetContext(ctx, &n, `SELECT COUNT(*) FROM calls`); err != nil || n != 0 {
			t.Fatalf("%d calls in the log (%v), want none", n, err)
		}
		b, err := s.CallBudget(ctx, "nobody", time.Now().Add(-time.Hour), time.Now())
		if err != nil || len(b.Calls) != 0 {
			t.Fatalf("budget %v (%v), want nothing spent", b.Calls, err)
		}
	})
}

// A fault 233 blocks its method past the process that met it: the block is
// in the call log and a fresh client seeded from the log waits it out.
func TestBlockFrom233OutlivesTheProcess(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		e := newCallEnv(t, s, 500*time.Millisecond, 10*time.Second, octane.DefaultLimits())
		e.sim.FailNext(octane.MethodReserveResources, octanetest.FaultRateLimit, 1)
		first := &events{next: jobs.CallRecorder(s, e.cred, nil)}
		dying := e.client(first.hook, octane.WithRateLimitRetries(0))
		if _, err := dying.ReserveResources(ctx, 1); !errors.Is(err, octane.ErrRateLimited) {
			t.Fatalf("err = %v, want the 233 back (no retry)", err)
		}
		until := first.last(t).BlockedUntil
		if d := time.Until(until); d < 400*time.Millisecond {
			t.Fatalf("the 233 blocks until %s (%v from now), want about a minute window", until, d)
		}
		if n := e.count(`SELECT COUNT(*) FROM calls WHERE credential = ? AND code = '233' AND blocked_until IS NOT NULL`, e.cred); n != 1 {
			t.Fatalf("%d calls rows carry the block, want 1", n)
		}

		evs := &events{next: jobs.CallRecorder(s, e.cred, nil)}
		fresh := e.client(evs.hook)
		if err := jobs.SeedLimiter(s, fresh, e.cred, nil)(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := fresh.ReserveResources(ctx, 1); err != nil {
			t.Fatal(err)
		}
		// The log keeps microseconds: allow their truncation.
		if got := evs.last(t); got.SentAt.Before(until.Add(-time.Millisecond)) {
			t.Errorf("the fresh client sent at %s, inside the persisted block (until %s)",
				got.SentAt.Format(time.StampMicro), until.Format(time.StampMicro))
		}
	})
}

// The call log row of an accepted orderCreate carries the order id Octane
// answered, so an accepted order is never lost even if the row's own write
// fails.
func TestOrderCreateCallLogHasTheOrderID(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		e := newCallEnv(t, s, time.Minute, time.Hour, octane.DefaultLimits())
		c := e.client(nil)
		res, err := c.ReserveResources(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SelectResource(ctx, res[0].MSN); err != nil {
			t.Fatal(err)
		}
		id, err := c.OrderCreate(ctx, octane.OrderRequest{CustNo: 5, PlanNo: 1001, MSN: res[0].MSN, IsEsim: true})
		if err != nil || id == "" {
			t.Fatalf("OrderCreate = %q, %v", id, err)
		}
		var row struct {
			OrderID string `db:"order_id"`
			MSN     string `db:"msn"`
			Outcome string `db:"outcome"`
		}
		if err := s.DB().GetContext(ctx, &row, s.DB().Rebind(`SELECT order_id, msn, outcome FROM calls WHERE credential = ? AND method = ?`),
			e.cred, octane.MethodOrderCreate); err != nil {
			t.Fatal(err)
		}
		if row.OrderID != id || row.MSN != res[0].MSN || row.Outcome != octane.OutcomeOK {
			t.Fatalf("orderCreate call row %+v, want order %s, msn %s, ok", row, id, res[0].MSN)
		}
	})
}

// Two runners on one database whose machines' clocks are 10 minutes apart
// poll by the database's clock: after the correct one polled an order, the
// fast one, 21 business minutes later by its own settings, must not poll it
// again (it would if it trusted its clock: 31 minutes); 31 minutes later it
// does.
func TestRunnersOnOneDatabaseShareItsClock(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		e := newCallEnv(t, s, time.Minute, time.Hour, octane.DefaultLimits())
		cfg := jobs.Config{Credential: e.cred, BatchSize: 10, ReserveBatch: 1, RunDeadline: time.Minute}
		runner := func(local func() time.Time, shift time.Duration) *jobs.Runner {
			clk := repo.NewDBClock(s, local, shift)
			return jobs.NewRunner(s, e.client(nil), cfg, jobs.WithClock(clk.Now), jobs.WithPassStart(clk.Sync))
		}
		correct := time.Now
		fast := func() time.Time { return time.Now().Add(10 * time.Minute) }
		_, err := s.Import(ctx, repo.ImportFile{Name: "clock.csv", Hash: e.cred, DataRows: 1},
			[]repo.NewActivation{{Line: 2, SalesRef: "CLK-1", GivenNames: "Ada", Surname: "Clock", Email: "c@example.com", PlanNo: 1001, SIMType: "esim"}}, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		pass := func(name string, r *jobs.Runner, phase string) jobs.Result {
			t.Helper()
			res, err := r.Pass(ctx, []string{phase})
			if err != nil || res.Skipped {
				t.Fatalf("%s: %v (skipped %v)", name, err, res.Skipped)
			}
			return res
		}
		if res := pass("submit", runner(correct, 0), jobs.PhaseSubmit); res.Counts["submit.ordered"] != 1 {
			a, _ := s.ActivationByRef(ctx, "CLK-1")
			t.Fatalf("submit: %v; %s %s %s", res.Counts, a.LastErrorStep, a.LastErrorCode, a.LastErrorMessage)
		}
		a, err := s.ActivationByRef(ctx, "CLK-1")
		if err != nil || a.OrderID == "" {
			t.Fatalf("activation %+v, %v", a, err)
		}
		queries := func() int {
			n := 0
			for _, l := range e.sim.Ledger() {
				if l.Method == octane.MethodOrderQuery && l.OrderID == a.OrderID {
					n++
				}
			}
			return n
		}
		const polledAt = 31 * time.Minute // the first poll is due 30 minutes after the order
		pass("correct poll", runner(correct, polledAt), jobs.PhasePoll)
		if n := queries(); n != 1 {
			t.Fatalf("the correct runner queried the order %d times, want 1", n)
		}
		pass("fast poll +21m", runner(fast, polledAt+21*time.Minute), jobs.PhasePoll)
		if n := queries(); n != 1 {
			t.Fatalf("the fast runner queried the order 21 minutes after the correct one: %d orderQuery, want 1", n)
		}
		pass("fast poll +31m", runner(fast, polledAt+31*time.Minute), jobs.PhasePoll)
		if n := queries(); n != 2 {
			t.Fatalf("31 minutes later: %d orderQuery, want 2", n)
		}
	})
}

// refusingStore is the real store whose call-log writes before sending
// fail once ok of them have succeeded (a database going away mid-pass).
type refusingStore struct {
	*repo.Store
	ok     int32
	starts atomic.Int32
}

func (r *refusingStore) StartCall(ctx context.Context, call repo.Call) (int64, error) {
	if r.starts.Add(1) > r.ok {
		return 0, errors.New("the database system is shutting down (test)")
	}
	return r.Store.StartCall(ctx, call)
}

// A call of a rate-limited method that cannot be put on record before it
// is sent is not sent: other processes seed their limiter from the call
// log, so an unrecorded call would spend budget no one else sees (at the
// ceiling, a fault 233). The pass stops (the store is failing), charging no
// row. Calls without a limit still go, and are recorded when they end.
func TestCallNotRecordedIsNotSent(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(4)
	rs := &refusingStore{Store: h.store, ok: 3}
	c, err := octane.New(h.url+"/tiab", h.url+"/tiab/api", h.cred, "secret", octane.WithGroupNo(7),
		octane.WithWindows(minuteWin, hourWin), octane.WithCallRecorder(jobs.CallRecorder(rs, h.cred, nil)))
	if err != nil {
		t.Fatal(err)
	}
	h.config.Workers = 1
	res, err := h.runner(c).Pass(context.Background(), nil)
	if !errors.Is(err, jobs.ErrStopped) || !strings.Contains(err.Error(), "not recorded") {
		t.Fatalf("pass: %v (counts %v); want it stopped on a call not recorded", err, res.Counts)
	}
	limited := octane.DefaultLimits()
	sent := map[string]int{}
	for _, e := range h.sim.Ledger() {
		if _, ok := limited[e.Method]; ok {
			sent[e.Method]++
		}
	}
	var rows []struct {
		Method string `db:"method"`
		N      int    `db:"n"`
	}
	if err := h.store.DB().Select(&rows, h.store.DB().Rebind(`SELECT method, count(*) AS n FROM calls
WHERE credential = ? GROUP BY method`), h.cred); err != nil {
		t.Fatal(err)
	}
	logged := map[string]int{}
	for _, r := range rows {
		if _, ok := limited[r.Method]; ok {
			logged[r.Method] = r.N
		}
	}
	if fmt.Sprint(sent) != fmt.Sprint(logged) {
		t.Errorf("rate-limited calls the simulator saw %v, in the call log %v: want the same", sent, logged)
	}
	if rs.starts.Load() <= 3 {
		t.Fatalf("only %d records were tried: the test did not refuse any", rs.starts.Load())
	}
	for ref, a := range h.activations() {
		if a.State == repo.StateFailed || a.Attempts != 0 {
			t.Errorf("%s: %s after %d attempts; a call never sent charges no row", ref, a.State, a.Attempts)
		}
	}
}

// Only a call of a method with a documented limit is written before it is
// sent: that record is what other processes' limiters count. A call of any
// other method is written once, when it ended, with its outcome: one write
// and one commit fewer per call, and never an in-flight row.
func TestOnlyBudgetedCallsAreWrittenBeforeSending(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		e := newCallEnv(t, s, time.Minute, time.Hour, octane.DefaultLimits())
		cs := &countingStore{Store: s}
		c := e.client(jobs.CallRecorder(cs, e.cred, nil))
		got, err := c.ReserveResources(ctx, 1)
		if err != nil || len(got) != 1 {
			t.Fatalf("reserve: %v %v", got, err)
		}
		if n := cs.starts.Load(); n != 1 {
			t.Fatalf("reserveResources: %d writes before sending, want 1", n)
		}
		if err := c.SelectResource(ctx, got[0].MSN); err != nil {
			t.Fatal(err)
		}
		if _, err := c.QueryResources(ctx, got[0].MSN); err != nil {
			t.Fatal(err)
		}
		if n := cs.starts.Load(); n != 1 {
			t.Errorf("%d writes before sending after selectResource and queryResources, want still 1", n)
		}
		for _, m := range []string{octane.MethodReserveResources, octane.MethodSelectResource, octane.MethodQueryResources} {
			if n := e.count(`SELECT COUNT(*) FROM calls WHERE credential = ? AND method = ? AND outcome = 'ok'`, e.cred, m); n != 1 {
				t.Errorf("%s: %d rows completed ok, want 1", m, n)
			}
		}
		if n := e.count(`SELECT COUNT(*) FROM calls WHERE credential = ? AND outcome = ?`, e.cred, repo.CallInflight); n != 0 {
			t.Errorf("%d calls left in flight, want none", n)
		}
	})
}
