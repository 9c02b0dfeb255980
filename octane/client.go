package octane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limit is a per-method budget.
type Limit struct {
	PerMinute int // 0: no per-minute limit
	PerHour   int // 0: no per-hour limit
}

// DefaultLimits returns the documented limits (contract section 2) for the
// methods the job calls.
func DefaultLimits() map[string]Limit {
	return map[string]Limit{
		MethodReserveResources: {PerMinute: 50, PerHour: 500},
		MethodOrderCreate:      {PerMinute: 100, PerHour: 2000},
		MethodOrderQuery:       {PerMinute: 100, PerHour: 2000},
	}
}

// Budgeted reports whether the contract gives method a rate limit (it is in
// DefaultLimits): the calls whose records seed other processes' limiters.
func Budgeted(method string) bool {
	switch method {
	case MethodReserveResources, MethodOrderCreate, MethodOrderQuery:
		return true
	}
	return false
}

// idleConnsPerHost is how many kept-alive connections to Octane the client
// keeps for reuse. The job calls Octane from up to 32 workers (its default)
// in each of three phases at once; with net/http's default of 2, every call beyond two
// concurrent ones dialled (and, over TLS, shook hands) anew.
const idleConnsPerHost = 128

// newTransport is net/http's default transport (proxy from the
// environment, TLS verification on, HTTP/2 when offered) keeping
// idleConnsPerHost idle connections.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = idleConnsPerHost
	t.MaxIdleConnsPerHost = idleConnsPerHost
	return t
}

// Client talks to one Octane environment with one credential. It is safe for
// concurrent use.
type Client struct {
	soapURL, restURL   string
	username, password string
	groupNo            int
	http               *http.Client
	log                *slog.Logger
	limits             map[string]Limit
	limitsSet          bool
	defaultLimit       Limit
	minuteWindow       time.Duration
	hourWindow         time.Duration
	pad                time.Duration
	seed               map[string][]time.Time
	hook               func(context.Context, CallEvent) error
	readOnly           bool
	limiter            *Limiter
	attempts           int           // tries of a call on transport errors, when repeating is safe
	backoff            time.Duration // first pause between those tries; doubles
	rateLimitRetries   int           // retries of a call answered with fault 233
	inflightGrace      time.Duration // how long a sent mutating call may finish after its ctx is cancelled
	unknownStatus      sync.Map      // order statuses already logged as unknown
}

// Option configures a Client.
type Option func(*Client)

// WithGroupNo sets the wholesaler group number used in REST paths.
func WithGroupNo(n int) Option { return func(c *Client) { c.groupNo = n } }

// WithHTTPClient replaces the default HTTP client (30 s timeout, TLS verified,
// idleConnsPerHost connections kept alive).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithLogger sets the logger; the client never logs a secret or QR payload.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithLimits replaces the per-method limits (DefaultLimits otherwise). An
// empty map turns the limiter off for every method without a default limit.
func WithLimits(l map[string]Limit) Option {
	return func(c *Client) { c.limits, c.limitsSet = l, true }
}

// WithDefaultLimit sets the limit of methods not in the limits table (zero,
// unlimited, otherwise).
func WithDefaultLimit(l Limit) Option { return func(c *Client) { c.defaultLimit = l } }

// WithWindows sets the limiter's window lengths (1m and 1h otherwise), so a
// benchmark or test can compress an hour.
func WithWindows(minute, hour time.Duration) Option {
	return func(c *Client) { c.minuteWindow, c.hourWindow = minute, hour }
}

// WithLimiterPad sets how much longer than Octane's windows the limiter's
// windows are, to cover the skew between send and count time. The default is
// a sixtieth of the minute window (1 s for real windows); negative means none.
func WithLimiterPad(d time.Duration) Option { return func(c *Client) { c.pad = d } }

// WithSeed tells the limiter about calls already sent in the current windows
// (per method, send times), e.g. from the call log of an earlier run.
func WithSeed(calls map[string][]time.Time) Option { return func(c *Client) { c.seed = calls } }

// WithCallHook sets f, called with the context of the call twice per try:
// with Phase CallSending just before the request leaves and with Phase
// CallDone when it ended, both events with the same ID; and once, CallDone
// with Sent false, for a call given up before it passed the limiter. A
// CallDone event with Sent false after a CallSending one means the request
// provably never left the process (dial failure). f runs on the calling
// goroutine, so a CallSending write is done before the request is sent.
func WithCallHook(f func(context.Context, CallEvent)) Option {
	return func(c *Client) {
		c.hook = func(ctx context.Context, ev CallEvent) error { f(ctx, ev); return nil }
	}
}

// WithCallRecorder is WithCallHook for a hook that must record a call before
// it is sent. When f returns an error for the CallSending event of a method
// under a rate limit, the request does not leave, the limiter slot is given
// back and the call returns an *IntentError naming the method (no CallDone
// event follows): the budget of other processes is seeded from the record,
// and a process that cannot write (its database restarting) would spend
// budget no one else sees. A method without a limit is sent anyway (giving
// back a number must not wait for the database). Errors f returns for
// CallDone events are ignored.
func WithCallRecorder(f func(context.Context, CallEvent) error) Option {
	return func(c *Client) { c.hook = f }
}

// WithReadOnly refuses every mutating call (addCustomer, reserve, select,
// unreserve, orderCreate) with ErrWritesDisabled before any I/O.
func WithReadOnly() Option { return func(c *Client) { c.readOnly = true } }

// WithRetries sets how many times a call that is safe to repeat is tried on
// transport errors (3 by default) and the first pause between tries (100 ms
// by default, doubling).
func WithRetries(attempts int, backoff time.Duration) Option {
	return func(c *Client) { c.attempts, c.backoff = attempts, backoff }
}

// WithInflightGrace sets how long a mutating call (addCustomer, reserve,
// select, unreserve, orderCreate) that has passed the limiter may run on
// after its context is cancelled (20 s by default, inside the CronJob's
// termination grace). Abandoning a sent call mid-flight would turn a known
// outcome (numbers reserved, order accepted) into an unknown one. A sent
// orderQuery or getEsimDetails QR fetch runs on for the lesser of d and
// 2 s (readGrace): Octane has counted it, and its answer is stored.
func WithInflightGrace(d time.Duration) Option { return func(c *Client) { c.inflightGrace = d } }

// WithRateLimitRetries sets how many times a call answered with fault 233 is
// retried after waiting for Octane's window to reset (3 by default).
func WithRateLimitRetries(n int) Option { return func(c *Client) { c.rateLimitRetries = n } }

// New returns a client for the SOAP base URL (".../tiab") and REST base URL
// (".../tiab/api"). It fails when a URL is not absolute http(s) or the user
// name is empty.
func New(soapURL, restURL, username, password string, opts ...Option) (*Client, error) {
	c := &Client{
		soapURL:          strings.TrimRight(soapURL, "/"),
		restURL:          strings.TrimRight(restURL, "/"),
		username:         username,
		password:         password,
		attempts:         3,
		backoff:          100 * time.Millisecond,
		rateLimitRetries: 3,
		inflightGrace:    20 * time.Second,
	}
	for _, o := range opts {
		o(c)
	}
	for _, u := range []struct{ name, v string }{{"SOAP URL", c.soapURL}, {"REST URL", c.restURL}} {
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("octane: %s %q is not an absolute http(s) URL", u.name, u.v)
		}
	}
	if username == "" {
		return nil, errors.New("octane: empty user name")
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second, Transport: newTransport()}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if !c.limitsSet {
		c.limits = DefaultLimits()
	}
	if c.attempts < 1 {
		c.attempts = 1
	}
	c.limiter = NewLimiter(LimiterConfig{
		Limits: c.limits, Default: c.defaultLimit,
		Minute: c.minuteWindow, Hour: c.hourWindow, Pad: c.pad,
	})
	c.minuteWindow, c.hourWindow, c.pad = c.limiter.Windows()
	for method, times := range c.seed {
		c.limiter.Seed(method, username, times)
	}
	return c, nil
}

// Reseed replaces what the limiter knows of this credential's spent budget
// with calls: per method, when Octane may have counted each call, on this
// process's wall clock. It is meant for the call log's view at the start of
// a pass, which holds the calls of every process on the credential, this
// one's included (so it replaces rather than adds). Calls in flight keep
// their slots. Each method in blockedUntil whose time is still ahead is not
// called before then: a fault 233 met by another process, or by an earlier
// run, blocks this one too.
func (c *Client) Reseed(calls map[string][]time.Time, blockedUntil map[string]time.Time) {
	c.limiter.Replace(c.username, calls)
	now := time.Now()
	for method, until := range blockedUntil {
		if d := until.Sub(now); d > 0 {
			c.limiter.BlockFor(method, c.username, d)
		}
	}
}

// attempt is what one try of a call learned about its request.
type attempt struct {
	reached atomic.Bool // a connection was obtained: bytes may have been written
}

// maxBody caps an answer; a QR PNG in base64 is a few kilobytes.
const maxBody = 8 << 20

// send performs one HTTP exchange and reads the whole answer. Its error says
// nothing reached the server only when at.reached is false.
func (c *Client) send(req *http.Request, at *attempt) (int, []byte, error) {
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { at.reached.Store(true) }}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read answer: %w", err)
	}
	if len(body) > maxBody {
		return resp.StatusCode, nil, fmt.Errorf("answer larger than %d bytes", maxBody)
	}
	return resp.StatusCode, body, nil
}

// spec says how a call may be repeated.
type spec struct {
	method string
	write  bool // refused by WithReadOnly
	// safe: repeating after the request may have reached Octane is harmless.
	// When false (orderCreate, addCustomer) a call is only repeated when it
	// provably never left, or Octane answered 233 (not processed).
	safe bool
	// finish marks a read whose answer the caller stores (orderQuery,
	// getEsimDetails): a try already sent when the context ends runs on for
	// at most readGrace, since Octane counts it whether or not the answer
	// is read, and a discarded answer costs the same call again next pass.
	finish  bool
	msn     string
	orderID string
	// beforeSend runs once, after the first limiter grant and before the
	// first try (OrderRequest.BeforeSend).
	beforeSend func() error
	// slot is a limiter slot granted ahead of the call (OrderRequest.Slot).
	slot *Slot
}

// call is the one place where calls are limited, repeated, logged and
// reported to the hook. do performs one try.
func (c *Client) call(ctx context.Context, s *spec, do func(context.Context, *attempt) error) error {
	if s.write && c.readOnly {
		return fmt.Errorf("octane %s: %w", s.method, ErrWritesDisabled)
	}
	transportTries, rateLimited := 0, 0
	for {
		var slot *Slot
		var waited time.Duration
		var err error
		if s.slot != nil { // granted ahead (Client.Acquire), used by the first try
			slot, s.slot = s.slot, nil
		} else {
			slot, waited, err = c.limiter.Wait(ctx, s.method, c.username)
		}
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrBudgetWait, err)
			c.report(ctx, s, CallEvent{ID: rand.Uint64(), Phase: CallDone, Waited: waited, Outcome: OutcomeTransport,
				Message: ErrBudgetWait.Error()}, err)
			return &TransportError{Method: s.method, MayHaveReached: false, Err: err}
		}
		if s.beforeSend != nil {
			f := s.beforeSend
			s.beforeSend = nil
			if err := f(); err != nil {
				slot.Release()
				return &IntentError{Err: err}
			}
		}
		// On record before it leaves: a process killed while the request
		// is out still leaves the call counted for the next one.
		id := rand.Uint64()
		if err := c.report(ctx, s, CallEvent{ID: id, Phase: CallSending, SentAt: time.Now(), Waited: waited}, nil); err != nil {
			if lim := c.limiter.LimitFor(s.method); lim.PerMinute > 0 || lim.PerHour > 0 {
				slot.Release()
				return &IntentError{Method: s.method, Err: err}
			}
			// No budget for others to overrun: the call goes (the
			// recorder has its CallDone event to record it then).
		}
		at := &attempt{}
		start := time.Now()
		err = c.try(ctx, s, at, do)
		end := time.Now()
		ev := CallEvent{ID: id, Phase: CallDone, Duration: end.Sub(start), Waited: waited, Outcome: outcome(err), Sent: at.reached.Load()}
		if ev.Sent {
			ev.SentAt = start
			slot.Done(end) // the latest Octane can have counted it
		} else {
			slot.Release()
		}
		var ae *APIError
		limited := errors.As(err, &ae) && errors.Is(ae, ErrRateLimited)
		var block time.Duration
		if limited {
			rateLimited++
			// Someone else spends this credential, or windows are skewed.
			// Octane's minute window has surely reset after one window
			// length; a second fault in a row means the hour is spent. The
			// block holds even when the call gives up, and the event carries
			// it so the next process on the credential honours it too.
			block = c.minuteWindow + c.pad
			if rateLimited > 1 {
				block = c.hourWindow + c.pad
			}
			c.limiter.BlockFor(s.method, c.username, block)
			ev.BlockedUntil = time.Now().Add(block)
		}
		c.report(ctx, s, ev, err)
		if err == nil {
			return nil
		}

		if limited {
			if rateLimited > c.rateLimitRetries {
				return err
			}
			c.log.LogAttrs(ctx, slog.LevelWarn, "octane rate limited, waiting for the window",
				slog.String("method", s.method), slog.Duration("wait", block))
			continue
		}

		var te *TransportError
		if !errors.As(err, &te) || ctx.Err() != nil {
			return err
		}
		if te.MayHaveReached && !s.safe {
			return err // outcome unknown: reconcile, never resend blind
		}
		transportTries++
		if transportTries >= c.attempts {
			return err
		}
		pause := c.backoff << (transportTries - 1)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// readGrace is how long a read marked finish (spec.finish) may run on
// after its context ended; never longer than the in-flight grace.
const readGrace = 2 * time.Second

// try runs one attempt. A mutating call runs on a context detached from
// the caller's cancellation (bounded by the in-flight grace): once the
// limiter let it go it is sent and its answer read, so a SIGTERM or a
// deadline does not lose numbers Octane reserved or an order it accepted.
// A read marked finish gets the shorter readGrace the same way. The caller
// still sees its own cancellation on the next call: no try starts, and none
// is repeated, once ctx has ended.
func (c *Client) try(ctx context.Context, s *spec, at *attempt, do func(context.Context, *attempt) error) error {
	grace := c.inflightGrace
	if !s.write {
		grace = 0
		if s.finish {
			grace = min(c.inflightGrace, readGrace)
		}
	}
	if grace <= 0 || ctx.Err() != nil {
		return do(ctx, at)
	}
	if s.write {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		defer cancel()
		return do(dctx, at)
	}
	// A read is as slow as Octane is while ctx lives (the HTTP client's
	// timeout bounds it) and ends grace after ctx does.
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(dctx, func() { t.Stop() })
	})
	defer stop()
	return do(dctx, at)
}

// report logs one try's end and hands each event to the hook. It never logs
// a secret: the event carries no credential, activation code or QR payload.
// For a CallSending event it returns the hook's error: the call must not
// be sent.
func (c *Client) report(ctx context.Context, s *spec, ev CallEvent, err error) error {
	ev.Method, ev.MSN, ev.OrderID = s.method, s.msn, s.orderID
	if ev.Phase == CallSending {
		if c.hook != nil {
			return c.hook(ctx, ev)
		}
		return nil
	}
	var ae *APIError
	if errors.As(err, &ae) {
		ev.Code, ev.Message = ae.Code, ae.Message
	} else if err != nil && ev.Message == "" {
		ev.Message = err.Error()
	}
	level := slog.LevelDebug
	if ev.Outcome != OutcomeOK && !errors.Is(err, ErrBudgetWait) {
		// A call given up in the limiter was never sent and nothing
		// failed: the caller stopped waiting for a spent budget (at the
		// ceiling, every pass ends with some), so it stays at debug.
		level = slog.LevelWarn
	}
	c.log.LogAttrs(ctx, level, "octane call",
		slog.String("method", ev.Method), slog.String("outcome", ev.Outcome),
		slog.Bool("sent", ev.Sent), slog.Duration("duration", ev.Duration), slog.Duration("waited", ev.Waited),
		slog.String("code", ev.Code), slog.String("message", ev.Message),
		slog.String("msn", ev.MSN), slog.String("order_id", ev.OrderID))
	if c.hook != nil {
		_ = c.hook(ctx, ev) // the call has ended: nothing left to stop
	}
	return nil
}

func invalid(method, format string, args ...any) error {
	return fmt.Errorf("octane %s: %w: %s", method, ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// Acquire waits until a call of method fits the credential's budget and
// grants its slot ahead of the call, so that the work a call needs first
// (reserving and selecting a number for orderCreate) is done only when the
// call can go at once. Pass the slot in OrderRequest.Slot, or give it back
// with Slot.Release when the call will not be made. Errors: the context's,
// wrapped, when it ended first.
func (c *Client) Acquire(ctx context.Context, method string) (*Slot, error) {
	slot, _, err := c.limiter.Wait(ctx, method, c.username)
	if err != nil {
		return nil, fmt.Errorf("octane %s: %w", method, err)
	}
	return slot, nil
}

// QueryResources looks up a SIM serial or an MSN. Errors: *APIError (kinds
// ErrUnauthorized, ErrRejected, ...), *TransportError after the retries.
func (c *Client) QueryResources(ctx context.Context, value string) ([]PooledResource, error) {
	if value == "" {
		return nil, invalid(MethodQueryResources, "empty query value")
	}
	var out []PooledResource
	err := c.call(ctx, &spec{method: MethodQueryResources, safe: true, msn: value}, func(ctx context.Context, at *attempt) error {
		var ret queryResourcesReturn
		if err := c.doSOAP(ctx, svcPooledResource, MethodQueryResources, queryResourcesRequest{QueryValue: value}, &ret, at); err != nil {
			return err
		}
		out = make([]PooledResource, 0, len(ret.Resources))
		for _, r := range ret.Resources {
			out = append(out, PooledResource{
				Value: strings.TrimSpace(r.Value), Type: strings.TrimSpace(r.Type),
				InternalStatus: strings.TrimSpace(r.InternalStatus), ProviderStatus: strings.TrimSpace(r.ProviderStatus),
			})
		}
		return nil
	})
	return out, err
}

// ReserveResources reserves n (1..5) new mobile numbers. Errors:
// ErrInvalidRequest or ErrWritesDisabled before any I/O; *APIError
// (ErrResourcesUnavailable when the pool is empty, also when Octane answers
// success without numbers); *TransportError after the retries.
func (c *Client) ReserveResources(ctx context.Context, n int) ([]Reservation, error) {
	if n < 1 || n > 5 {
		return nil, invalid(MethodReserveResources, "numResources %d outside 1..5", n)
	}
	var out []Reservation
	s := &spec{method: MethodReserveResources, write: true, safe: true}
	err := c.call(ctx, s, func(ctx context.Context, at *attempt) error {
		var ret reserveResourcesReturn
		req := reserveResourcesRequest{ResourceType: ResourceTypeMSN, NumResources: n}
		if err := c.doSOAP(ctx, svcPooledResource, MethodReserveResources, req, &ret, at); err != nil {
			return err
		}
		out = make([]Reservation, 0, len(ret.Reserved))
		msns := make([]string, 0, len(ret.Reserved))
		for _, r := range ret.Reserved {
			if msn := strings.TrimSpace(r.Value); msn != "" {
				out = append(out, Reservation{ReservationID: strings.TrimSpace(r.ReservationID), MSN: msn})
				msns = append(msns, msn)
			}
		}
		s.msn = strings.Join(msns, ",") // the call event names what was reserved
		if len(out) == 0 {
			e := answerError(MethodReserveResources, http.StatusOK, "0", "answer holds no reserved number", nil)
			e.kind = ErrResourcesUnavailable
			return e
		}
		return nil
	})
	return out, err
}

// SelectResource selects a number this credential reserved. Errors:
// ErrWritesDisabled, ErrInvalidRequest, *APIError, *TransportError.
func (c *Client) SelectResource(ctx context.Context, msn string) error {
	if msn == "" {
		return invalid(MethodSelectResource, "empty msn")
	}
	return c.call(ctx, &spec{method: MethodSelectResource, write: true, safe: true, msn: msn}, func(ctx context.Context, at *attempt) error {
		var ret statusOnlyReturn
		return c.doSOAP(ctx, svcPooledResource, MethodSelectResource,
			selectResourceRequest{Resource: msn, ResourceType: ResourceTypeMSN}, &ret, at)
	})
}

// UnreserveResource releases a reserved or selected number no order
// consumed. Errors: ErrWritesDisabled, ErrInvalidRequest, *APIError,
// *TransportError.
func (c *Client) UnreserveResource(ctx context.Context, msn string) error {
	if msn == "" {
		return invalid(MethodUnreserveResources, "empty msn")
	}
	return c.call(ctx, &spec{method: MethodUnreserveResources, write: true, safe: true, msn: msn}, func(ctx context.Context, at *attempt) error {
		var ret statusOnlyReturn
		return c.doSOAP(ctx, svcPooledResource, MethodUnreserveResources,
			unreserveResourcesRequest{ResourceType: ResourceTypeMSN, Resource: msn}, &ret, at)
	})
}

// Fixed values of a new-MSN mobile order (contract 3.6).
const (
	orderTypeService    = "SRVC_ORD"
	orderActionNewMSN   = "ADD_WME_NEW"
	lineTypeResidential = "R"
)

// OrderCreate submits a new-MSN mobile service order and returns its id. It is
// never retried once the request may have been sent: such a failure is a
// *TransportError with MayHaveReached set (OutcomeUnknown reports it), and the
// caller reconciles with QueryResources on the MSN. Errors: ErrWritesDisabled,
// ErrInvalidRequest (no custNo, plan or MSN; a simNo on an eSIM or none on a
// physical SIM), *APIError (ErrRejected, ErrResourcesUnavailable, ...).
func (c *Client) OrderCreate(ctx context.Context, req OrderRequest) (string, error) {
	if req.Slot != nil {
		defer req.Slot.Release() // a no-op once the call used it
	}
	switch {
	case req.CustNo <= 0:
		return "", invalid(MethodOrderCreate, "custNo %d", req.CustNo)
	case req.PlanNo <= 0:
		return "", invalid(MethodOrderCreate, "planNo %d", req.PlanNo)
	case req.MSN == "":
		return "", invalid(MethodOrderCreate, "empty msn")
	case req.IsEsim && req.SIMNo != "":
		return "", invalid(MethodOrderCreate, "simNo given for an eSIM")
	case !req.IsEsim && req.SIMNo == "":
		return "", invalid(MethodOrderCreate, "no simNo for a physical SIM")
	}
	payload := orderCreateRequest{
		CustNo: req.CustNo, OrderType: orderTypeService, OrderAction: orderActionNewMSN,
		Item: wmeItem{
			LineType: lineTypeResidential, LineName: req.LineName, PlanNo: req.PlanNo, MSN: req.MSN,
			SIMNo: req.SIMNo, IsEsim: req.IsEsim, IsQRCode: req.IsQRCode,
			NotificationEmail: req.NotificationEmail, OrderNotes: req.OrderNotes,
		},
	}
	var orderID string
	if req.Slot != nil && (req.Slot.l != c.limiter || req.Slot.key.method != MethodOrderCreate) {
		return "", invalid(MethodOrderCreate, "slot granted for another method or client")
	}
	s := &spec{method: MethodOrderCreate, write: true, msn: req.MSN, beforeSend: req.BeforeSend, slot: req.Slot}
	err := c.call(ctx, s, func(ctx context.Context, at *attempt) error {
		var ret orderCreateReturn
		if err := c.doSOAP(ctx, svcOrder, MethodOrderCreate, payload, &ret, at); err != nil {
			return err
		}
		orderID = strings.TrimSpace(ret.OrderID)
		s.orderID = orderID // the call log keeps an accepted order's id
		if orderID == "" {
			return &TransportError{Method: MethodOrderCreate, MayHaveReached: true, Err: errors.New("accepted answer without orderId")}
		}
		return nil
	})
	return orderID, err
}

// OrderQuery returns an order's status. A status the client does not know is
// returned as is (callers treat it as non-terminal) and logged once. Errors:
// ErrInvalidRequest, *APIError, *TransportError after the retries.
func (c *Client) OrderQuery(ctx context.Context, orderID string) (OrderStatus, error) {
	if orderID == "" {
		return OrderStatus{}, invalid(MethodOrderQuery, "empty orderId")
	}
	var out OrderStatus
	// Not safe to resend once it may have reached Octane: a processed query
	// counts against the one-query-per-30-minutes courtesy (invariant 2).
	err := c.call(ctx, &spec{method: MethodOrderQuery, safe: false, finish: true, orderID: orderID}, func(ctx context.Context, at *attempt) error {
		var ret orderQueryReturn
		if err := c.doSOAP(ctx, svcOrder, MethodOrderQuery, orderQueryRequest{OrderID: orderID}, &ret, at); err != nil {
			return err
		}
		o := ret.Order
		out = OrderStatus{
			OrderID: strings.TrimSpace(o.OrderID), Status: strings.TrimSpace(o.Status),
			InternalStatus: strings.TrimSpace(o.InternalStatus), ServiceNumber: strings.TrimSpace(o.ServiceNumber),
			ErrorMessage: strings.TrimSpace(o.ErrorMessage),
		}
		if out.Status == "" {
			return &TransportError{Method: MethodOrderQuery, MayHaveReached: true, Err: errors.New("answer without order status")}
		}
		if out.OrderID == "" {
			out.OrderID = orderID
		}
		return nil
	})
	if err == nil {
		switch out.Status {
		case StatusOpen, StatusInProgress, StatusComplete, StatusRejected, StatusCancelled:
		default:
			if _, seen := c.unknownStatus.LoadOrStore(out.Status, true); !seen {
				c.log.LogAttrs(ctx, slog.LevelWarn, "octane order status unknown, treated as not final",
					slog.String("status", out.Status), slog.String("order_id", orderID))
			}
		}
	}
	return out, err
}
