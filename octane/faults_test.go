package octane_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
)

func TestTransportFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		method string
		kind   string
		n      int
		call   func(t *testing.T, e *env) error
		// wantReached: nil error expected when false and wantErr false.
		wantErr     bool
		wantReached bool
		ledger      string // outcomes the sim recorded for method, in order
		check       func(t *testing.T, e *env)
	}{
		{name: "reserve retried after a drop before processing", method: octane.MethodReserveResources, kind: octanetest.FaultTransport, n: 2,
			call: func(t *testing.T, e *env) error {
				_, err := e.client.ReserveResources(context.Background(), 1)
				return err
			},
			ledger: "dropped,dropped,ok"},
		{name: "reserve retried after a lost answer", method: octane.MethodReserveResources, kind: octanetest.FaultDrop, n: 1,
			call: func(t *testing.T, e *env) error {
				_, err := e.client.ReserveResources(context.Background(), 1)
				return err
			},
			ledger: "dropped,ok"},
		{name: "reserve gives up after the tries", method: octane.MethodReserveResources, kind: octanetest.FaultTransport, n: 5,
			call: func(t *testing.T, e *env) error {
				_, err := e.client.ReserveResources(context.Background(), 1)
				return err
			},
			wantErr: true, wantReached: true, ledger: "dropped,dropped,dropped"},
		{name: "select retried after a lost answer", method: octane.MethodSelectResource, kind: octanetest.FaultDrop, n: 1,
			call: func(t *testing.T, e *env) error {
				res, err := e.client.ReserveResources(context.Background(), 1)
				if err != nil {
					t.Fatal(err)
				}
				return e.client.SelectResource(context.Background(), res[0].MSN)
			},
			ledger: "dropped,ok"},
		// Octane counts a query it processed even when the answer is lost;
		// a resend would query the order twice within 30 minutes.
		{name: "orderQuery not resent after a lost answer", method: octane.MethodOrderQuery, kind: octanetest.FaultDrop, n: 1,
			call: func(t *testing.T, e *env) error {
				id := order(t, e)
				_, err := e.client.OrderQuery(context.Background(), id)
				return err
			},
			wantErr: true, wantReached: true, ledger: "dropped"},
		{name: "getEsimDetails retried", method: octane.MethodGetEsimDetails, kind: octanetest.FaultTransport, n: 1,
			call: func(t *testing.T, e *env) error {
				order(t, e)
				e.sim.Advance(time.Hour)
				_, err := e.client.GetEsimQR(context.Background(), e.sim.Orders()[0].MSN)
				return err
			},
			ledger: "dropped,ok"},
		{name: "orderCreate lost answer is not resent", method: octane.MethodOrderCreate, kind: octanetest.FaultDrop, n: 1,
			call:   func(t *testing.T, e *env) error { order(t, e); return nil }, // order() asserts the error itself
			ledger: "dropped",
			check: func(t *testing.T, e *env) {
				o := e.sim.Orders()
				if len(o) != 1 || e.sim.NumberState(o[0].MSN) != octane.NumberInUse {
					t.Fatalf("the order was processed once; sim orders %+v", o)
				}
			}},
		{name: "orderCreate dropped before processing is not resent either", method: octane.MethodOrderCreate, kind: octanetest.FaultTransport, n: 1,
			call:   func(t *testing.T, e *env) error { order(t, e); return nil },
			ledger: "dropped",
			check: func(t *testing.T, e *env) {
				if o := e.sim.Orders(); len(o) != 0 {
					t.Fatalf("sim orders %+v", o)
				}
				// Reconciliation: the number is still SELECTED, resubmit is safe.
				msn := e.ledger(octane.MethodSelectResource)[0].MSN
				got, err := e.client.QueryResources(context.Background(), msn)
				if err != nil || got[0].InternalStatus != octane.NumberSelected {
					t.Fatalf("QueryResources(%s) = %+v, %v", msn, got, err)
				}
			}},
		{name: "addCustomer lost answer is not resent", method: octane.MethodAddCustomer, kind: octanetest.FaultDrop, n: 1,
			call: func(t *testing.T, e *env) error {
				_, err := e.client.AddCustomer(context.Background(), customer)
				return err
			},
			wantErr: true, wantReached: true, ledger: "dropped"},
		{name: "233 waits for the window and retries", method: octane.MethodReserveResources, kind: octanetest.FaultRateLimit, n: 1,
			call: func(t *testing.T, e *env) error {
				_, err := e.client.ReserveResources(context.Background(), 1)
				return err
			},
			ledger: "fault,ok",
			check: func(t *testing.T, e *env) {
				evs := e.callEvents()
				if len(evs) != 2 || evs[0].Outcome != octane.OutcomeRateLimited || evs[0].Code != "233" || evs[1].Outcome != octane.OutcomeOK {
					t.Fatalf("events %+v", evs)
				}
				if evs[1].Waited < 90*time.Millisecond {
					t.Errorf("retry after 233 waited %v, want about one minute window (100ms)", evs[1].Waited)
				}
			}},
		{name: "233 on orderCreate is retried (not processed)", method: octane.MethodOrderCreate, kind: octanetest.FaultRateLimit, n: 1,
			call:   func(t *testing.T, e *env) error { order(t, e); return nil },
			ledger: "fault,ok"},
		{name: "233 on REST (429) is retried", method: octane.MethodAddCustomer, kind: octanetest.FaultRateLimit, n: 1,
			call: func(t *testing.T, e *env) error {
				_, err := e.client.AddCustomer(context.Background(), customer)
				return err
			},
			ledger: "fault,ok"},
		{name: "233 past the retries is ErrRateLimited", method: octane.MethodOrderQuery, kind: octanetest.FaultRateLimit, n: 4,
			call: func(t *testing.T, e *env) error {
				_, err := e.client.OrderQuery(context.Background(), "1")
				if !errors.Is(err, octane.ErrRateLimited) {
					t.Errorf("err = %v, want ErrRateLimited", err)
				}
				return err
			},
			wantErr: true, ledger: "fault,fault,fault"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, octanetest.Config{Customers: []int64{9}},
				octane.WithWindows(100*time.Millisecond, 400*time.Millisecond), octane.WithRateLimitRetries(2))
			e.sim.FailNext(tt.method, tt.kind, tt.n)
			err := tt.call(t, e)
			switch {
			case !tt.wantErr && err != nil:
				t.Fatalf("err = %v", err)
			case tt.wantErr && err == nil:
				t.Fatal("want an error")
			case tt.wantErr && tt.wantReached:
				var te *octane.TransportError
				if !errors.As(err, &te) || !te.MayHaveReached || !octane.OutcomeUnknown(err) {
					t.Fatalf("err = %v, want *TransportError that may have reached", err)
				}
			}
			if got := outcomes(e.ledger(tt.method)); got != tt.ledger {
				t.Errorf("sim ledger for %s = %s, want %s", tt.method, got, tt.ledger)
			}
			if tt.check != nil {
				tt.check(t, e)
			}
			e.checkWire(t, true)
			e.checkNoSecrets(t)
		})
	}
}

// order reserves, selects and orders one eSIM for customer 9. If the sim was
// told to lose the orderCreate, it checks the error says the outcome is
// unknown and returns "".
func order(t *testing.T, e *env) string {
	t.Helper()
	msn := selected(t, e.client)
	id, err := e.client.OrderCreate(context.Background(), octane.OrderRequest{CustNo: 9, PlanNo: 1001, MSN: msn, IsEsim: true})
	lost := false
	for _, l := range e.ledger(octane.MethodOrderCreate) {
		lost = lost || l.Outcome == octanetest.OutcomeDropped
	}
	if lost {
		var te *octane.TransportError
		if !errors.As(err, &te) || !te.MayHaveReached || te.Method != octane.MethodOrderCreate {
			t.Fatalf("lost orderCreate: err = %v, want *TransportError that may have reached", err)
		}
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestTransportNeverSent(t *testing.T) {
	t.Parallel()
	// A port nothing listens on: the dial fails, the request provably never left.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var events []octane.CallEvent
	c, err := octane.New("http://"+addr+"/tiab", "http://"+addr+"/tiab/api", testUser, testPassword,
		octane.WithRetries(3, time.Millisecond),
		octane.WithCallHook(func(_ context.Context, ev octane.CallEvent) {
			if ev.Phase == octane.CallDone {
				events = append(events, ev)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.OrderCreate(context.Background(), octane.OrderRequest{CustNo: 9, PlanNo: 1001, MSN: "0410000000", IsEsim: true})
	var te *octane.TransportError
	if !errors.As(err, &te) || te.MayHaveReached || octane.OutcomeUnknown(err) {
		t.Fatalf("err = %v, want *TransportError that never reached", err)
	}
	// Never sent, so even orderCreate may be tried again.
	if len(events) != 3 {
		t.Fatalf("%d tries, want 3 (safe to repeat a request that never left)", len(events))
	}
	for _, ev := range events {
		if ev.Sent || !ev.SentAt.IsZero() || ev.Outcome != octane.OutcomeTransport {
			t.Errorf("event %+v", ev)
		}
	}

	// A context already cancelled stops before the limiter grants a slot.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	events = nil
	_, err = c.ReserveResources(ctx, 1)
	if !errors.As(err, &te) || te.MayHaveReached || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want a never-sent *TransportError wrapping context.Canceled", err)
	}
	if len(events) != 1 || events[0].Sent {
		t.Fatalf("give-up events %+v", events)
	}
}

func TestTransportAfterSend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		timeout time.Duration
	}{
		{"502 without SOAP body", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "<html>Bad Gateway</html>", http.StatusBadGateway)
		}, 0},
		{"200 with HTML", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("<html>maintenance</html>"))
		}, 0},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(500 * time.Millisecond):
			case <-r.Context().Done():
			}
		}, 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				tt.handler(w, r)
			}))
			defer srv.Close()
			opts := []octane.Option{octane.WithRetries(3, time.Millisecond)}
			if tt.timeout > 0 {
				opts = append(opts, octane.WithHTTPClient(&http.Client{Timeout: tt.timeout}))
			}
			c, err := octane.New(srv.URL+"/tiab", srv.URL+"/tiab/api", testUser, testPassword, opts...)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.OrderCreate(context.Background(), octane.OrderRequest{CustNo: 9, PlanNo: 1001, MSN: "0410000000", IsEsim: true})
			if !octane.OutcomeUnknown(err) {
				t.Fatalf("orderCreate err = %v, want outcome unknown", err)
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("orderCreate sent %d times, want once", n)
			}
			calls.Store(0)
			if _, err := c.OrderQuery(context.Background(), "1"); !octane.OutcomeUnknown(err) {
				t.Fatalf("orderQuery err = %v", err)
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("orderQuery sent %d times, want once (30-minute courtesy)", n)
			}
			calls.Store(0)
			if _, err := c.QueryResources(context.Background(), "0410000000"); !octane.OutcomeUnknown(err) {
				t.Fatalf("queryResources err = %v", err)
			}
			if n := calls.Load(); n != 3 {
				t.Fatalf("queryResources tried %d times, want 3", n)
			}
		})
	}
}

// A cancelled caller (SIGTERM, run deadline) must not turn a sent mutating
// call into an unknown outcome: the numbers Octane reserved must reach us.
func TestSentWriteFinishesAfterCancel(t *testing.T) {
	e := newEnv(t, octanetest.Config{Faults: octanetest.Faults{Latency: 300 * time.Millisecond, Methods: []string{octane.MethodReserveResources}}})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	got, err := e.client.ReserveResources(ctx, 2)
	if err != nil {
		t.Fatalf("reserve cancelled mid-flight: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("reserved %d numbers, want 2", len(got))
	}
	for _, r := range got {
		if st := e.sim.NumberState(r.MSN); st != octane.NumberReserved {
			t.Errorf("%s is %s, want RESERVED", r.MSN, st)
		}
	}
	// A read is abandoned at once: nothing to lose.
	ctx, cancel = context.WithCancel(context.Background())
	e.sim.SetFaults(octanetest.Faults{Latency: 3 * time.Second})
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if _, err := e.client.QueryResources(ctx, got[0].MSN); err == nil {
		t.Fatal("query survived its cancelled context")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancelled query took %s: it waited for the answer", d)
	}
	// A call not yet sent when the context is cancelled is not sent at all.
	if _, err := e.client.ReserveResources(ctx, 1); err == nil || octane.OutcomeUnknown(err) {
		t.Errorf("reserve on a cancelled context: %v, want a not-sent error", err)
	}
}
