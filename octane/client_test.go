package octane_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
)

const (
	testUser     = "wholesaler"
	testPassword = "s3cret-Pa55"
	testGroup    = 77
)

// env is one simulator on loopback and a real client talking to it.
type env struct {
	sim    *octanetest.Server
	srv    *httptest.Server
	client *octane.Client
	logs   *syncBuffer
	mu     sync.Mutex
	events []octane.CallEvent
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newEnv starts a simulator with cfg (credential and group filled in) and a
// client with quick retries plus opts.
func newEnv(t *testing.T, cfg octanetest.Config, opts ...octane.Option) *env {
	t.Helper()
	if cfg.Username == "" {
		cfg.Username, cfg.Password = testUser, testPassword
	}
	if cfg.GroupNo == 0 {
		cfg.GroupNo = testGroup
	}
	e := &env{sim: octanetest.New(cfg), logs: &syncBuffer{}}
	e.srv = httptest.NewServer(e.sim)
	t.Cleanup(e.srv.Close)
	e.client = e.newClient(t, testPassword, opts...)
	return e
}

func (e *env) newClient(t *testing.T, password string, opts ...octane.Option) *octane.Client {
	t.Helper()
	base := []octane.Option{
		octane.WithGroupNo(testGroup),
		octane.WithRetries(3, 5*time.Millisecond),
		octane.WithLogger(slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		octane.WithCallHook(func(_ context.Context, ev octane.CallEvent) {
			if ev.Phase == octane.CallSending {
				return // these tests look at how tries ended
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			e.events = append(e.events, ev)
		}),
	}
	c, err := octane.New(e.srv.URL+"/tiab", e.srv.URL+"/tiab/api", testUser, password, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) callEvents() []octane.CallEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]octane.CallEvent(nil), e.events...)
}

// ledger returns the simulator's entries for method (all when "").
func (e *env) ledger(method string) []octanetest.LedgerEntry {
	var out []octanetest.LedgerEntry
	for _, l := range e.sim.Ledger() {
		if method == "" || l.Method == method {
			out = append(out, l)
		}
	}
	return out
}

func outcomes(ls []octanetest.LedgerEntry) string {
	var s []string
	for _, l := range ls {
		s = append(s, l.Outcome)
	}
	return strings.Join(s, ",")
}

// checkWire fails the test when any SOAP request the simulator saw lacked a
// login, any order carried simNo for an eSIM, or a limit was exceeded.
func (e *env) checkWire(t *testing.T, allow233 bool) {
	t.Helper()
	for _, l := range e.sim.Ledger() {
		rest := l.Method == octane.MethodAddCustomer || l.Method == octane.MethodGetEsimDetails
		if !rest && !l.LoginPresent && l.Outcome != octanetest.OutcomeDropped {
			t.Errorf("%s request without login: %+v", l.Method, l)
		}
		if !allow233 && l.Code == octane.FaultCodeRateLimited {
			t.Errorf("fault 233 reached the ledger: %+v", l)
		}
	}
	for _, o := range e.sim.Orders() {
		if o.IsEsim && o.SIMNoPresent {
			t.Errorf("eSIM order %s carried a simNo element", o.ID)
		}
		if !o.LoginPresent {
			t.Errorf("order %s without login", o.ID)
		}
	}
}

// checkNoSecrets fails when the logs or call events hold a secret or QR payload.
func (e *env) checkNoSecrets(t *testing.T, secrets ...string) {
	t.Helper()
	logs := e.logs.String()
	evs := fmt.Sprintf("%+v", e.callEvents())
	secrets = append(secrets, testPassword, base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPassword)), "Authorization")
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if strings.Contains(logs, s) {
			t.Errorf("log output holds a secret %.12q...", s)
		}
		if strings.Contains(evs, s) {
			t.Errorf("call events hold a secret %.12q...", s)
		}
	}
}

var customer = octane.Customer{
	GivenNames: "Ann", Surname: "Lee", DOB: "1990-02-03",
	Address: octane.Address{Line1: "1 Main St", Suburb: "Sydney", State: "NSW", Postcode: "2000", CountryCode: "AU"},
	Email:   "ann@example.com", Mobile: "0400000000", PlanNo: 1001,
}

// selected reserves and selects one number.
func selected(t *testing.T, c *octane.Client) string {
	t.Helper()
	ctx := context.Background()
	res, err := c.ReserveResources(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SelectResource(ctx, res[0].MSN); err != nil {
		t.Fatal(err)
	}
	return res[0].MSN
}

func TestEsimFlowEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, octanetest.Config{})
	ctx := context.Background()
	c := e.client

	custNo, err := c.AddCustomer(ctx, customer)
	if err != nil || custNo <= 0 {
		t.Fatalf("AddCustomer = %d, %v", custNo, err)
	}
	res, err := c.ReserveResources(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("reserved %d numbers, want 3", len(res))
	}
	for _, r := range res {
		if len(r.MSN) != 10 || !strings.HasPrefix(r.MSN, "04") || r.ReservationID == "" {
			t.Errorf("reservation %+v", r)
		}
		if st := e.sim.NumberState(r.MSN); st != octane.NumberReserved {
			t.Errorf("%s is %s after reserve", r.MSN, st)
		}
	}
	msn := res[0].MSN
	if err := c.SelectResource(ctx, msn); err != nil {
		t.Fatal(err)
	}
	got, err := c.QueryResources(ctx, msn)
	if err != nil || len(got) != 1 || got[0].InternalStatus != octane.NumberSelected || got[0].Value != msn {
		t.Fatalf("QueryResources = %+v, %v", got, err)
	}
	for _, r := range res[1:] {
		if err := c.UnreserveResource(ctx, r.MSN); err != nil {
			t.Fatal(err)
		}
		if st := e.sim.NumberState(r.MSN); st != octane.NumberAvailable {
			t.Errorf("%s is %s after unreserve", r.MSN, st)
		}
	}

	orderID, err := c.OrderCreate(ctx, octane.OrderRequest{
		CustNo: custNo, LineName: "Ann Lee", PlanNo: 1001, MSN: msn, IsEsim: true,
		NotificationEmail: "ann@example.com", OrderNotes: "act-42",
	})
	if err != nil || orderID == "" {
		t.Fatalf("OrderCreate = %q, %v", orderID, err)
	}
	st, err := c.OrderQuery(ctx, orderID)
	if err != nil || st.Status != octane.StatusOpen || st.OrderID != orderID {
		t.Fatalf("OrderQuery = %+v, %v", st, err)
	}
	if _, err := c.GetEsimQR(ctx, msn); !errors.Is(err, octane.ErrRejected) {
		t.Fatalf("GetEsimQR before completion: err = %v, want ErrRejected", err)
	}
	e.sim.Advance(6 * time.Minute)
	st, err = c.OrderQuery(ctx, orderID)
	if err != nil || st.Status != octane.StatusComplete || st.ServiceNumber != msn {
		t.Fatalf("OrderQuery after latency = %+v, %v", st, err)
	}
	qr, err := c.GetEsimQR(ctx, st.ServiceNumber)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(qr.ActivationCode, "LPA:1$") || !bytes.HasPrefix(qr.QRCode, []byte("\x89PNG")) || qr.MSN != msn || len(qr.Raw) == 0 {
		t.Errorf("GetEsimQR = %+v", qr.LogValue())
	}
	det, err := c.GetSIMDetails(ctx, msn)
	if err != nil || det.ProfileState != "RELEASED" || det.ICCID == "" {
		t.Errorf("GetSIMDetails = %+v, %v", det, err)
	}

	orders := e.sim.Orders()
	if len(orders) != 1 {
		t.Fatalf("sim has %d orders", len(orders))
	}
	o := orders[0]
	if o.CustNo != custNo || o.PlanNo != 1001 || o.MSN != msn || !o.IsEsim || o.Notes != "act-42" || o.Email != "ann@example.com" || o.LineName != "Ann Lee" {
		t.Errorf("order as the sim saw it: %+v", o)
	}
	e.checkWire(t, false)
	e.checkNoSecrets(t, qr.ActivationCode, base64.StdEncoding.EncodeToString(qr.QRCode)[:40])

	// One hook event per request, all OK here but the early QR fetch.
	evs := e.callEvents()
	if len(evs) != len(e.ledger("")) {
		t.Errorf("%d call events for %d requests", len(evs), len(e.ledger("")))
	}
	for _, ev := range evs {
		if !ev.Sent || ev.SentAt.IsZero() || ev.Method == "" {
			t.Errorf("event %+v", ev)
		}
		if ev.Method == octane.MethodReserveResources && strings.Count(ev.MSN, ",") != 2 {
			t.Errorf("reserve event names %q, want the 3 numbers", ev.MSN)
		}
	}
}

func TestPhysicalSIMOrderCarriesSimNo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, octanetest.Config{PhysicalSIMs: []string{"8961000000000000001"}, Customers: []int64{5}})
	ctx := context.Background()
	got, err := e.client.QueryResources(ctx, "8961000000000000001")
	if err != nil || len(got) != 1 || got[0].InternalStatus != octane.NumberAvailable || got[0].ProviderStatus != "r" {
		t.Fatalf("QueryResources(serial) = %+v, %v", got, err)
	}
	msn := selected(t, e.client)
	if _, err := e.client.OrderCreate(ctx, octane.OrderRequest{CustNo: 5, PlanNo: 1002, MSN: msn, SIMNo: "8961000000000000001"}); err != nil {
		t.Fatal(err)
	}
	o := e.sim.Orders()[0]
	if !o.SIMNoPresent || o.SIMNo != "8961000000000000001" || o.IsEsim {
		t.Errorf("order %+v", o)
	}
	e.checkWire(t, false)
}

func TestValidationAndReadOnlyBeforeIO(t *testing.T) {
	t.Parallel()
	e := newEnv(t, octanetest.Config{})
	ro := e.newClient(t, testPassword, octane.WithReadOnly())
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"reserve 0", func() error { _, err := e.client.ReserveResources(ctx, 0); return err }, octane.ErrInvalidRequest},
		{"reserve 6", func() error { _, err := e.client.ReserveResources(ctx, 6); return err }, octane.ErrInvalidRequest},
		{"eSIM with simNo", func() error {
			_, err := e.client.OrderCreate(ctx, octane.OrderRequest{CustNo: 1, PlanNo: 1001, MSN: "0410000000", IsEsim: true, SIMNo: "1"})
			return err
		}, octane.ErrInvalidRequest},
		{"physical without simNo", func() error {
			_, err := e.client.OrderCreate(ctx, octane.OrderRequest{CustNo: 1, PlanNo: 1001, MSN: "0410000000"})
			return err
		}, octane.ErrInvalidRequest},
		{"read-only reserve", func() error { _, err := ro.ReserveResources(ctx, 1); return err }, octane.ErrWritesDisabled},
		{"read-only select", func() error { return ro.SelectResource(ctx, "0410000000") }, octane.ErrWritesDisabled},
		{"read-only unreserve", func() error { return ro.UnreserveResource(ctx, "0410000000") }, octane.ErrWritesDisabled},
		{"read-only orderCreate", func() error {
			_, err := ro.OrderCreate(ctx, octane.OrderRequest{CustNo: 1, PlanNo: 1001, MSN: "0410000000", IsEsim: true})
			return err
		}, octane.ErrWritesDisabled},
		{"read-only addCustomer", func() error { _, err := ro.AddCustomer(ctx, customer); return err }, octane.ErrWritesDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if l := e.ledger(""); len(l) != 0 {
		t.Fatalf("refused calls reached the simulator: %+v", l)
	}
	// Reads still work read-only.
	if _, err := ro.QueryResources(ctx, "0410000000"); err != nil {
		t.Fatal(err)
	}
}

func TestAnswerErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     octanetest.Config
		badCred bool
		setup   func(t *testing.T, e *env)
		call    func(t *testing.T, c *octane.Client, e *env) error
		want    error
		status  int    // HTTPStatus of the *APIError, when non-zero
		calls   int    // requests the sim saw (no retries of answers)
		outcome string // CallEvent outcome
	}{
		{name: "bad credential SOAP", badCred: true,
			call: func(t *testing.T, c *octane.Client, _ *env) error {
				ctx := context.Background()
				_, err := c.ReserveResources(ctx, 1)
				return err
			},
			want: octane.ErrUnauthorized, status: 200, calls: 1, outcome: octane.OutcomeFault},
		{name: "bad credential REST addCustomer", badCred: true,
			call: func(t *testing.T, c *octane.Client, _ *env) error {
				ctx := context.Background()
				_, err := c.AddCustomer(ctx, customer)
				return err
			},
			want: octane.ErrUnauthorized, status: 401, calls: 1, outcome: octane.OutcomeFault},
		{name: "bad credential REST getEsimDetails", badCred: true,
			call: func(t *testing.T, c *octane.Client, _ *env) error {
				ctx := context.Background()
				_, err := c.GetEsimQR(ctx, "0410000000")
				return err
			},
			want: octane.ErrUnauthorized, status: 401, calls: 1, outcome: octane.OutcomeFault},
		{name: "number pool empty", cfg: octanetest.Config{MSNs: 1},
			setup: func(t *testing.T, e *env) { selected(t, e.client) },
			call: func(t *testing.T, c *octane.Client, _ *env) error {
				ctx := context.Background()
				_, err := c.ReserveResources(ctx, 1)
				return err
			},
			want: octane.ErrResourcesUnavailable, status: 200, calls: 3, outcome: octane.OutcomeRejected},
		{name: "eSIM pool empty", cfg: octanetest.Config{Customers: []int64{9}},
			setup: func(t *testing.T, e *env) { e.sim.SetEsimProfiles(0) },
			call: func(t *testing.T, c *octane.Client, _ *env) error {
				ctx := context.Background()

				_, err := c.OrderCreate(ctx, octane.OrderRequest{CustNo: 9, PlanNo: 1001, MSN: selected(t, c), IsEsim: true})
				return err
			},
			want: octane.ErrResourcesUnavailable, calls: 3, outcome: octane.OutcomeRejected},
		{name: "invalid plan rejected", cfg: octanetest.Config{Customers: []int64{9}},
			call: func(t *testing.T, c *octane.Client, _ *env) error {
				ctx := context.Background()

				_, err := c.OrderCreate(ctx, octane.OrderRequest{CustNo: 9, PlanNo: 4242, MSN: selected(t, c), IsEsim: true})
				return err
			},
			want: octane.ErrRejected, calls: 3, outcome: octane.OutcomeRejected},
		{name: "injected rejection", cfg: octanetest.Config{Customers: []int64{9}},
			setup: func(t *testing.T, e *env) { e.sim.FailNext(octane.MethodOrderCreate, octanetest.FaultReject, 1) },
			call: func(t *testing.T, c *octane.Client, _ *env) error {
				ctx := context.Background()

				_, err := c.OrderCreate(ctx, octane.OrderRequest{CustNo: 9, PlanNo: 1001, MSN: selected(t, c), IsEsim: true})
				return err
			},
			want: octane.ErrRejected, calls: 3, outcome: octane.OutcomeRejected},
		{name: "select a number not reserved",
			call: func(t *testing.T, c *octane.Client, _ *env) error {
				ctx := context.Background()
				return c.SelectResource(ctx, "0410000009")
			},
			want: octane.ErrRejected, calls: 1, outcome: octane.OutcomeRejected},
		{name: "REST rejection (bad plan)",
			call: func(t *testing.T, c *octane.Client, _ *env) error {
				ctx := context.Background()

				cu := customer
				cu.PlanNo = 1
				_, err := c.AddCustomer(ctx, cu)
				return err
			},
			want: octane.ErrRejected, status: 400, calls: 1, outcome: octane.OutcomeRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tt.cfg)
			c := e.client
			if tt.badCred {
				c = e.newClient(t, "wrong")
			}
			if tt.setup != nil {
				tt.setup(t, e)
			}
			err := tt.call(t, c, e)
			var ae *octane.APIError
			if !errors.As(err, &ae) || !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want *APIError %v", err, tt.want)
			}
			if ae.Message == "" || ae.Code == "" {
				t.Errorf("APIError without code or message: %+v", ae)
			}
			if tt.status != 0 && ae.HTTPStatus != tt.status {
				t.Errorf("HTTPStatus = %d, want %d", ae.HTTPStatus, tt.status)
			}
			if n := len(e.ledger("")); n != tt.calls {
				t.Errorf("sim saw %d requests, want %d: answers are never retried", n, tt.calls)
			}
			evs := e.callEvents()
			if last := evs[len(evs)-1]; last.Outcome != tt.outcome || last.Code != ae.Code {
				t.Errorf("last event %+v, want outcome %s code %s", last, tt.outcome, ae.Code)
			}
			e.checkWire(t, false)
			e.checkNoSecrets(t, "wrong")
		})
	}
}

// TestOrderCreateBeforeSend: the intent hook runs after the limiter grant
// (so an intent is never stamped while the call still waits for its slot)
// and before the request leaves; a failing hook sends nothing.
func TestOrderCreateBeforeSend(t *testing.T) {
	t.Parallel()
	e := newEnv(t, octanetest.Config{Customers: []int64{9}})
	ctx := context.Background()

	msn := selected(t, e.client)
	hookErr := errors.New("store down")
	_, err := e.client.OrderCreate(ctx, octane.OrderRequest{CustNo: 9, PlanNo: 1001, MSN: msn, IsEsim: true,
		BeforeSend: func() error { return hookErr }})
	var ie *octane.IntentError
	if !errors.As(err, &ie) || !errors.Is(err, hookErr) || octane.OutcomeUnknown(err) {
		t.Fatalf("err = %v, want *IntentError wrapping the hook's error, outcome known", err)
	}
	if n := len(e.ledger(octane.MethodOrderCreate)); n != 0 {
		t.Fatalf("simulator saw %d orderCreate calls after a failed hook, want 0", n)
	}

	calls := 0
	id, err := e.client.OrderCreate(ctx, octane.OrderRequest{CustNo: 9, PlanNo: 1001, MSN: msn, IsEsim: true,
		BeforeSend: func() error {
			calls++
			if n := len(e.ledger(octane.MethodOrderCreate)); n != 0 {
				t.Errorf("hook ran after %d orderCreate calls reached the simulator, want before", n)
			}
			return nil
		}})
	if err != nil || id == "" {
		t.Fatalf("OrderCreate = %q, %v", id, err)
	}
	if calls != 1 {
		t.Fatalf("hook ran %d times, want 1", calls)
	}
	if n := len(e.ledger(octane.MethodOrderCreate)); n != 1 {
		t.Fatalf("simulator saw %d orderCreate calls, want 1", n)
	}
}

// TestAcquireGrantsAheadOfTheCall: a slot granted by Acquire counts against
// the budget while held, the call that carries it does not wait again, and
// a slot given back frees its place.
func TestAcquireGrantsAheadOfTheCall(t *testing.T) {
	t.Parallel()
	limits := octane.DefaultLimits()
	limits[octane.MethodOrderCreate] = octane.Limit{PerMinute: 1}
	e := newEnv(t, octanetest.Config{Customers: []int64{9}}, octane.WithLimits(limits),
		octane.WithWindows(time.Hour, 2*time.Hour))
	ctx := context.Background()
	slot, err := e.client.Acquire(ctx, octane.MethodOrderCreate)
	if err != nil {
		t.Fatal(err)
	}
	// The budget (1) is held by the slot: a second grant cannot come.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if _, err := e.client.Acquire(short, octane.MethodOrderCreate); err == nil {
		t.Fatal("a second slot was granted while the only one is held")
	}
	cancel()
	slot.Release()
	slot, err = e.client.Acquire(ctx, octane.MethodOrderCreate)
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	msn := selected(t, e.client)
	done := make(chan error, 1)
	go func() {
		_, err := e.client.OrderCreate(ctx, octane.OrderRequest{CustNo: 9, PlanNo: 1001, MSN: msn, IsEsim: true, Slot: slot})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OrderCreate with a granted slot waited on the limiter")
	}
}

// TestCallRecorderRefusal: a recorder that cannot record a call of a
// rate-limited method before it is sent stops it: nothing reaches Octane,
// the error names the method and is an *IntentError with a known outcome,
// and the limiter slot is given back (the next call within a one-call
// budget goes at once). A call without a limit goes anyway.
func TestCallRecorderRefusal(t *testing.T) {
	t.Parallel()
	refuse := true
	e := newEnv(t, octanetest.Config{Customers: []int64{9}},
		octane.WithLimits(map[string]octane.Limit{octane.MethodQueryResources: {PerMinute: 1}}),
		octane.WithCallRecorder(func(_ context.Context, ev octane.CallEvent) error {
			if ev.Phase == octane.CallSending && refuse {
				return errors.New("store down")
			}
			return nil
		}))
	ctx := context.Background()
	_, err := e.client.QueryResources(ctx, "0410000000")
	var ie *octane.IntentError
	if !errors.As(err, &ie) || ie.Method != octane.MethodQueryResources || octane.OutcomeUnknown(err) ||
		!strings.Contains(err.Error(), "queryResources: not sent") {
		t.Fatalf("err = %v, want *IntentError for queryResources, outcome known", err)
	}
	if n := len(e.ledger("")); n != 0 {
		t.Fatalf("simulator saw %d calls from a refused record, want 0", n)
	}
	// selectResource has no limit here: nothing to overrun, so it goes.
	msn := selected(t, e.client) // reserve (unlimited here) and select, refused records and all
	if n := len(e.ledger(octane.MethodSelectResource)); n != 1 || msn == "" {
		t.Fatalf("simulator saw %d selectResource calls, want the 1 sent despite its refused record", n)
	}
	refuse = false
	c, cancel := context.WithTimeout(ctx, 5*time.Second) // the minute window would outlast it
	defer cancel()
	if _, err := e.client.QueryResources(c, "0410000000"); err != nil {
		t.Fatalf("the call after a refused record: %v (its slot was not given back?)", err)
	}
}

// TestSentReadFinishesAfterCancel: an orderQuery or getEsimDetails already
// sent when its context ends is answered and returned (Octane counted it,
// and a discarded answer costs the same call again next pass), within the
// read grace; nothing is sent, or sent again, once the context has ended.
func TestSentReadFinishesAfterCancel(t *testing.T) {
	t.Parallel()
	const latency = 600 * time.Millisecond
	e := newEnv(t, octanetest.Config{Customers: []int64{9}, Faults: octanetest.Faults{
		Latency: latency, Methods: []string{octane.MethodOrderQuery, octane.MethodGetEsimDetails}}})
	id := order(t, e)
	msn := e.sim.Orders()[0].MSN
	e.sim.Advance(time.Hour)

	cancelledMidCall := func() context.Context {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(latency/6, cancel)
		return ctx
	}
	st, err := e.client.OrderQuery(cancelledMidCall(), id)
	if err != nil || st.Status != octane.StatusComplete {
		t.Fatalf("orderQuery cancelled in flight = %+v, %v; want its answer", st, err)
	}
	qr, err := e.client.GetEsimQR(cancelledMidCall(), msn)
	if err != nil || qr.ActivationCode == "" {
		t.Fatalf("getEsimDetails cancelled in flight: err = %v, code present %t; want its answer", err, qr.ActivationCode != "")
	}

	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.client.GetEsimQR(done, msn); err == nil {
		t.Fatal("getEsimDetails on an ended context succeeded")
	}
	if _, err := e.client.OrderQuery(done, id); err == nil {
		t.Fatal("orderQuery on an ended context succeeded")
	}
	if n, m := len(e.ledger(octane.MethodOrderQuery)), len(e.ledger(octane.MethodGetEsimDetails)); n != 1 || m != 1 {
		t.Fatalf("simulator saw %d orderQuery and %d getEsimDetails calls, want 1 each", n, m)
	}

	// The grace runs from the cancellation, not the send: a read slower
	// than it answers while its context lives...
	short := e.newClient(t, testPassword, octane.WithInflightGrace(latency/6))
	if _, err := short.GetEsimQR(context.Background(), msn); err != nil {
		t.Fatalf("a read slower than the grace, never cancelled: %v", err)
	}
	// ...and gives up, unrepeated, once the grace after the cancellation is over.
	start := time.Now()
	if _, err := short.GetEsimQR(cancelledMidCall(), msn); err == nil {
		t.Fatal("a read slower than the grace still answered after its cancellation")
	}
	if took := time.Since(start); took >= latency {
		t.Errorf("the read ran %s, its whole latency, past a %s grace", took, latency/6)
	}
	time.Sleep(latency) // the simulator records the abandoned call once it has slept
	if m := len(e.ledger(octane.MethodGetEsimDetails)); m != 3 {
		t.Fatalf("simulator saw %d getEsimDetails calls, want 3 (the abandoned one not retried)", m)
	}
}
