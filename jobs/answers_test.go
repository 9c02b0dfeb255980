package jobs_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
	"github.com/esimbatch/esimbatch/repo"
)

// methodWrites is the real store, counting the recorder's writes after a
// call (FinishCall, RecordCall, WriteAnswered) per method.
type methodWrites struct {
	*repo.Store
	mu     sync.Mutex
	writes map[string]int
}

func (m *methodWrites) count(method string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes[method]++
}

func (m *methodWrites) FinishCall(ctx context.Context, id int64, c repo.Call) error {
	m.count(c.Method)
	return m.Store.FinishCall(ctx, id, c)
}

func (m *methodWrites) RecordCall(ctx context.Context, c repo.Call) error {
	m.count(c.Method)
	return m.Store.RecordCall(ctx, c)
}

func (m *methodWrites) WriteAnswered(ctx context.Context, calls ...repo.AnsweredCall) error {
	for _, c := range calls {
		m.count(c.Call.Method)
	}
	return m.Store.WriteAnswered(ctx, calls...)
}

// An answered call of a row's step costs no write of its own: selectResource,
// orderCreate, orderQuery and getEsimDetails are written by the transition
// that records their answer, in its statement. The call log and every
// row's events are as complete as before, each call event ahead of the
// state change it led to.
func TestAnsweredCallsAreWrittenWithTheirTransitions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, octanetest.Faults{})
	h.load(30)
	mw := &methodWrites{Store: h.store, writes: map[string]int{}}
	c := h.client("secret", octane.WithCallRecorder(jobs.CallRecorder(mw, h.cred, nil)))
	r := h.runner(c)
	ctx := context.Background()
	for pass := 0; pass < 2; pass++ {
		if res, err := r.Pass(ctx, nil); err != nil || res.Skipped {
			t.Fatalf("pass %d: %v (skipped %v)", pass, err, res.Skipped)
		}
		h.clock.Advance(31 * time.Minute)
	}
	for _, m := range []string{octane.MethodSelectResource, octane.MethodOrderCreate, octane.MethodOrderQuery,
		octane.MethodGetEsimDetails} {
		if n := mw.writes[m]; n != 0 {
			t.Errorf("%s: %d writes of their own after the call, want 0 (written with the transition)", m, n)
		}
	}
	// The others still are: reserveResources completes its in-flight row,
	// addCustomer is recorded whole.
	if mw.writes[octane.MethodReserveResources] == 0 || mw.writes[octane.MethodAddCustomer] != 30 {
		t.Errorf("writes after the call = %v, want reserveResources' and 30 addCustomer", mw.writes)
	}
	var inflight, logged int
	if err := h.store.DB().Get(&inflight, `SELECT COUNT(*) FROM calls WHERE credential = $1 AND outcome = $2`,
		h.cred, repo.CallInflight); err != nil {
		t.Fatal(err)
	}
	if inflight != 0 {
		t.Errorf("%d calls left in flight", inflight)
	}
	if err := h.store.DB().Get(&logged, `SELECT COUNT(*) FROM calls WHERE credential = $1 AND outcome = 'ok'`,
		h.cred); err != nil {
		t.Fatal(err)
	}
	if want := len(h.sim.Ledger()); logged != want {
		t.Errorf("call log has %d calls answered ok, the simulator %d", logged, want)
	}
	// Each row: every step's call event, then the state change it led to.
	led := map[repo.State]string{repo.StateSelected: octane.MethodSelectResource,
		repo.StateSubmitted: octane.MethodOrderCreate, repo.StateCompleted: octane.MethodOrderQuery,
		repo.StateQRReady: octane.MethodGetEsimDetails}
	for ref, a := range h.activations() {
		if a.State != repo.StateQRReady {
			t.Fatalf("%s: %s, want qr_ready", ref, a.State)
		}
		evs, err := h.store.Events(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for i, ev := range evs {
			m, ok := led[ev.ToState]
			if ev.Kind != repo.EventState || !ok {
				continue
			}
			seen++
			if i == 0 || evs[i-1].Kind != repo.EventCall || string(evs[i-1].Step) != m || evs[i-1].Outcome != "ok" {
				t.Errorf("%s: event %d (-> %s) is not preceded by its %s call event: %+v", ref, i, ev.ToState, m, evs)
				break
			}
			if evs[i-1].RunID == nil || ev.RunID == nil || *evs[i-1].RunID != *ev.RunID {
				t.Errorf("%s: %s call event and its state change carry different runs", ref, m)
			}
		}
		if seen != len(led) {
			t.Errorf("%s: %d of the %d answered steps in the log: %+v", ref, seen, len(led), evs)
		}
	}
}

// An answered call whose answer leads to another write than its own
// transition (orderQuery finding the order rejected) is written first: the
// activation's log reads the call, then the failure.
func TestAnswerLeadingElsewhereKeepsItsCallEventFirst(t *testing.T) {
	t.Parallel()
	h := newHarness(t, octanetest.Faults{AsyncReject: 1})
	h.load(5)
	r := h.runner(h.client("secret"))
	ctx := context.Background()
	for pass := 0; pass < 2; pass++ {
		if res, err := r.Pass(ctx, nil); err != nil || res.Skipped {
			t.Fatalf("pass %d: %v (skipped %v)", pass, err, res.Skipped)
		}
		h.clock.Advance(31 * time.Minute)
	}
	for ref, a := range h.activations() {
		if a.State != repo.StateFailed || a.LastErrorStep != string(repo.StepPoll) {
			t.Fatalf("%s: %s at step %q, want failed at the poll", ref, a.State, a.LastErrorStep)
		}
		evs, err := h.store.Events(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		n := len(evs)
		if n < 2 || evs[n-1].ToState != repo.StateFailed || evs[n-2].Kind != repo.EventCall ||
			string(evs[n-2].Step) != octane.MethodOrderQuery {
			t.Errorf("%s: log ends %+v; want orderQuery's call event, then -> failed", ref, evs[max(0, n-2):])
		}
	}
}
