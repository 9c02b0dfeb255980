package octane

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// STUB: the signatures below are the agreed surface; the bodies are filled in
// by the client work (issue 2).

var errNotImplemented = errors.New("octane: not implemented yet")

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

// Client talks to one Octane environment with one credential. It is safe for
// concurrent use.
type Client struct {
	soapURL, restURL   string
	username, password string
	groupNo            int
	http               *http.Client
	log                *slog.Logger
	limits             map[string]Limit
	minuteWindow       time.Duration
	hourWindow         time.Duration
	seed               map[string][]time.Time
	hook               func(context.Context, CallEvent)
	readOnly           bool
}

// Option configures a Client.
type Option func(*Client)

// WithGroupNo sets the wholesaler group number used in REST paths.
func WithGroupNo(n int) Option { return func(c *Client) { c.groupNo = n } }

// WithHTTPClient replaces the default HTTP client (30 s timeout, TLS verified).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithLogger sets the logger; the client never logs a secret or QR payload.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithLimits replaces the per-method limits (DefaultLimits otherwise).
func WithLimits(l map[string]Limit) Option { return func(c *Client) { c.limits = l } }

// WithWindows sets the limiter's window lengths (1m and 1h otherwise), so a
// benchmark or test can compress an hour.
func WithWindows(minute, hour time.Duration) Option {
	return func(c *Client) { c.minuteWindow, c.hourWindow = minute, hour }
}

// WithSeed tells the limiter about calls already sent in the current windows
// (per method, send times), e.g. from the call log of an earlier run.
func WithSeed(calls map[string][]time.Time) Option { return func(c *Client) { c.seed = calls } }

// WithCallHook is called once per request sent (and once per call given up
// before sending), with the context of the call.
func WithCallHook(f func(context.Context, CallEvent)) Option { return func(c *Client) { c.hook = f } }

// WithReadOnly refuses every mutating call (addCustomer, reserve, select,
// unreserve, orderCreate) with ErrWritesDisabled before any I/O.
func WithReadOnly() Option { return func(c *Client) { c.readOnly = true } }

// New returns a client for the SOAP base URL (".../tiab") and REST base URL
// (".../tiab/api").
func New(soapURL, restURL, username, password string, opts ...Option) (*Client, error) {
	c := &Client{soapURL: soapURL, restURL: restURL, username: username, password: password}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// AddCustomer creates a customer (REST) and returns its customer number.
func (c *Client) AddCustomer(ctx context.Context, cu Customer) (int64, error) {
	return 0, errNotImplemented
}

// QueryResources looks up a SIM serial or an MSN.
func (c *Client) QueryResources(ctx context.Context, value string) ([]PooledResource, error) {
	return nil, errNotImplemented
}

// ReserveResources reserves n (1..5) new mobile numbers.
func (c *Client) ReserveResources(ctx context.Context, n int) ([]Reservation, error) {
	return nil, errNotImplemented
}

// SelectResource selects a number this credential reserved.
func (c *Client) SelectResource(ctx context.Context, msn string) error { return errNotImplemented }

// UnreserveResource releases a reserved or selected number no order consumed.
func (c *Client) UnreserveResource(ctx context.Context, msn string) error { return errNotImplemented }

// OrderCreate submits a new-MSN mobile service order. It is never retried
// once the request may have been sent: such a failure is a *TransportError
// with MayHaveReached set.
func (c *Client) OrderCreate(ctx context.Context, req OrderRequest) (string, error) {
	return "", errNotImplemented
}

// OrderQuery returns an order's status.
func (c *Client) OrderQuery(ctx context.Context, orderID string) (OrderStatus, error) {
	return OrderStatus{}, errNotImplemented
}

// GetEsimQR fetches the activation code and QR image of a completed eSIM service.
func (c *Client) GetEsimQR(ctx context.Context, msn string) (EsimQR, error) {
	return EsimQR{}, errNotImplemented
}

// GetSIMDetails fetches the eSIM profile state of a service.
func (c *Client) GetSIMDetails(ctx context.Context, msn string) (SIMDetails, error) {
	return SIMDetails{}, errNotImplemented
}
