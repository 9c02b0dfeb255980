package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// Octane may hand a number we gave back to us again. A number returned after
// a rejected orderCreate (its reservation record still assigned to the failed
// row) must not make the new reservation vanish: the next row gets the number
// and is ordered, and the pass does not stop on a "store failure".
func TestNumberGivenBackAndReservedAgain(t *testing.T) {
	for _, tc := range []struct {
		name    string
		storeOf func(t *testing.T) *repo.Store
	}{
		{"postgres", func(t *testing.T) *repo.Store { return repotest.NewPostgres(t) }},
		{"sqlite", func(t *testing.T) *repo.Store { return repotest.NewSQLite(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := tc.storeOf(t)
			clk := &clock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
			cred := fmt.Sprintf("job-%d", rand.Int64())
			sim := octanetest.New(octanetest.Config{
				Username: cred, Password: "secret", Now: clk.Now, MSNs: 1, Customers: []int64{500},
				MinuteWindow: minuteWin, HourWindow: hourWin, Seed: 42,
			})
			srv := httptest.NewServer(sim)
			t.Cleanup(srv.Close)
			h := &harness{t: t, store: store, sim: sim, url: srv.URL, clock: clk, cred: cred}
			h.config.Credential, h.config.BatchSize, h.config.ReserveBatch, h.config.Workers = cred, 10, 1, 1
			cust := int64(500)
			rows := []repo.NewActivation{
				{Line: 2, SalesRef: "BAD-PLAN", GivenNames: "Ada", Surname: "One", Email: "a@example.com", PlanNo: 9999, CustNo: &cust, SIMType: "esim"},
				{Line: 3, SalesRef: "GOOD", GivenNames: "Bob", Surname: "Two", Email: "b@example.com", PlanNo: 1001, CustNo: &cust, SIMType: "esim"},
			}
			h.refs = []string{"BAD-PLAN", "GOOD"}
			if _, err := store.Import(context.Background(), repo.ImportFile{Name: "t.csv", Hash: "h", DataRows: 2}, rows, nil, clk.Now()); err != nil {
				t.Fatal(err)
			}
			res, err := h.runner(h.client("secret")).Pass(context.Background(), nil)
			if err != nil {
				t.Fatalf("Pass: %v (counts %v)", err, res.Counts)
			}
			acts := h.activations()
			if a := acts["BAD-PLAN"]; a.State != repo.StateFailed || a.LastErrorStep != string(repo.StepOrder) {
				t.Errorf("BAD-PLAN: %s at %q, want failed at orderCreate", a.State, a.LastErrorStep)
			}
			if a := acts["GOOD"]; a.State != repo.StateSubmitted || a.MSN != "0410000000" {
				t.Errorf("GOOD: %s with %q (%s), want submitted with the number given back", a.State, a.MSN, a.LastErrorMessage)
			}
			if n := len(sim.Orders()); n != 1 {
				t.Errorf("%d orders, want 1", n)
			}
		})
	}
}

// failOrders refuses the first n orderCreate requests before any connection
// is made: provably never sent, so the row backs off as selected.
type failOrders struct {
	n    atomic.Int64
	next http.RoundTripper
}

func (f *failOrders) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/UtbOrder") && f.n.Add(-1) >= 0 {
		return nil, errors.New("dial refused")
	}
	return f.next.RoundTrip(req)
}

// An orderCreate that provably never left the process (no connection) is a
// plain transport failure: the row backs off as selected with the attempt
// counted, rather than waiting in ordering for a reconcile it does not need.
func TestUnsentOrderBacksOff(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(1)
	fo := &failOrders{next: http.DefaultTransport}
	fo.n.Store(3) // the client tries a never-sent call 3 times
	r := h.runner(h.client("secret", octane.WithHTTPClient(&http.Client{Transport: fo, Timeout: 10 * time.Second})))
	if _, err := r.Pass(context.Background(), []string{jobs.PhaseSubmit}); err != nil {
		t.Fatal(err)
	}
	a := h.activations()["S-00001"]
	if a.State != repo.StateSelected || a.Attempts != 1 || a.LastErrorStep != string(repo.StepOrder) || a.ClaimToken != "" {
		t.Errorf("row %s, attempts %d, step %q, claim %q; want selected, 1, orderCreate, unclaimed",
			a.State, a.Attempts, a.LastErrorStep, a.ClaimToken)
	}
	if n := len(h.sim.Orders()); n != 0 {
		t.Errorf("%d orders, want 0", n)
	}
}

// A submit-only pass (what `batch schedule` fires every 10 minutes, while
// the hourly release firing may be skipped) must still release numbers past
// RELEASE_AFTER before it orders, never order on them (invariant 3).
func TestSubmitPassReleasesDueNumbersFirst(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	h.load(1)
	h.config.ReserveBatch = 1
	fo := &failOrders{next: http.DefaultTransport}
	fo.n.Store(3) // the client tries a never-sent call 3 times
	r := h.runner(h.client("secret", octane.WithHTTPClient(&http.Client{Transport: fo, Timeout: 10 * time.Second})))
	ctx := context.Background()
	if _, err := r.Pass(ctx, []string{jobs.PhaseSubmit}); err != nil {
		t.Fatal(err)
	}
	first := h.activations()["S-00001"]
	if first.State != repo.StateSelected || first.MSN == "" {
		t.Fatalf("after an unsent orderCreate the row is %s (%q), want selected", first.State, first.MSN)
	}
	h.clock.Advance(23*time.Hour + 30*time.Minute)
	if _, err := r.Pass(ctx, []string{jobs.PhaseSubmit}); err != nil {
		t.Fatal(err)
	}
	if st := h.sim.NumberState(first.MSN); st != octane.NumberAvailable {
		t.Errorf("number %s reserved 23.5 h ago is %s, want released (AVAILABLE)", first.MSN, st)
	}
	a := h.activations()["S-00001"]
	if a.State != repo.StateSubmitted || a.MSN == first.MSN {
		t.Errorf("row %s with %s, want submitted with a fresh number (not %s)", a.State, a.MSN, first.MSN)
	}
	if n := len(h.sim.Orders()); n != 1 {
		t.Errorf("%d orders, want 1", n)
	}
}

// slowReserves holds every reserveResources request for delay and records
// how many were in flight at once.
type slowReserves struct {
	delay         time.Duration
	now, most     atomic.Int64
	calls, others atomic.Int64
	next          http.RoundTripper
}

func (s *slowReserves) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || !strings.HasSuffix(req.URL.Path, "/"+octane.ServicePooledResource) {
		return s.next.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	if !bytes.Contains(body, []byte("reserveResources")) {
		s.others.Add(1)
		return s.next.RoundTrip(req)
	}
	s.calls.Add(1)
	n := s.now.Add(1)
	defer s.now.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	time.Sleep(s.delay)
	return s.next.RoundTrip(req)
}

// Workers that find no stored number reserve side by side: one reserve at
// a time made the reserve's round trips the pace of the whole submit phase.
// They still reserve no more numbers than they use: a reserve starts only
// for a row that has no number coming, so at most one reserve's spares are
// left to give back at the end.
func TestReservesOfWorkersOverlap(t *testing.T) {
	const rows, batch = 60, 4
	h := newHarness(t, octanetest.Faults{})
	h.config.Workers, h.config.BatchSize, h.config.ReserveBatch = 12, rows, batch
	h.load(rows)
	slow := &slowReserves{delay: 40 * time.Millisecond, next: http.DefaultTransport}
	r := h.runner(h.client("secret", octane.WithHTTPClient(&http.Client{Transport: slow, Timeout: 10 * time.Second})))
	res, err := r.Pass(context.Background(), []string{jobs.PhaseSubmit})
	if err != nil {
		t.Fatalf("Pass: %v (counts %v)", err, res.Counts)
	}
	if n := res.Counts["submit.ordered"]; n != rows {
		t.Errorf("%d ordered, want %d (counts %v)", n, rows, res.Counts)
	}
	if m := slow.most.Load(); m < 2 {
		t.Errorf("at most %d reserveResources in flight at once, want reserves side by side", m)
	}
	reserved, left := res.Counts["submit.reserved"], res.Counts["submit.leftovers_released"]
	if reserved-left != rows || left > batch-1 {
		t.Errorf("%d numbers reserved, %d given back as leftovers, for %d rows: want at most %d left over",
			reserved, left, rows, batch-1)
	}
	if c := slow.calls.Load(); c > rows/batch+1 {
		t.Errorf("%d reserveResources calls for %d rows of %d numbers each", c, rows, batch)
	}
	holder := map[string]string{}
	for ref, a := range h.activations() {
		if a.State != repo.StateSubmitted {
			t.Errorf("%s: %s (%s), want submitted", ref, a.State, a.LastErrorMessage)
		}
		if other, ok := holder[a.MSN]; ok {
			t.Errorf("%s and %s both ordered on %s", ref, other, a.MSN)
		}
		holder[a.MSN] = ref
	}
}
