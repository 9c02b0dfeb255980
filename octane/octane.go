// Package octane is the client for Telcoinabox's Octane wholesale API: the
// legacy SOAP services (UtbPooledResource, UtbOrder) and the REST API
// (customers, eSIM details), as the README's "Provisional Octane shapes" and docs/design.md describe.
//
// Every call takes a context, goes through a per-method client-side limiter
// that keeps the credential under Octane's documented per-minute and per-hour
// limits, and returns typed errors: *APIError answers errors.Is for
// ErrRateLimited, ErrUnauthorized, ErrResourcesUnavailable and ErrRejected;
// *TransportError says whether the request may have reached Octane.
//
// Shapes the public documentation does not show are marked provisional in the
// contract; they all live in provisional.go so they can be corrected against
// the real WSDL without touching callers.
package octane

import (
	"context"
	"log/slog"
	"time"
)

// Method names, as Octane names them. Limits, the ledger and the call log are
// keyed by these.
const (
	MethodAddCustomer        = "addCustomer"
	MethodQueryResources     = "queryResources"
	MethodReserveResources   = "reserveResources"
	MethodSelectResource     = "selectResource"
	MethodUnreserveResources = "unreserveResources"
	MethodOrderCreate        = "orderCreate"
	MethodOrderQuery         = "orderQuery"
	MethodGetEsimDetails     = "getEsimDetails"
)

// ReservationLifetime is how long Octane holds a reserved number that no
// order consumed before it returns to AVAILABLE (contract 3.3).
const ReservationLifetime = 24 * time.Hour

// Customer is the body of addCustomer (contract 3.1).
type Customer struct {
	Type       string // "R" residential (default) or "B" business
	GivenNames string
	Surname    string
	Company    string
	DOB        string // YYYY-MM-DD, optional
	Address    Address
	Email      string
	Mobile     string
	PlanNo     int
}

// Address of a customer.
type Address struct {
	Line1, Suburb, State, Postcode, CountryCode string
}

// PooledResource is one result row of queryResources.
type PooledResource struct {
	Value          string // SIM serial or MSN
	Type           string
	InternalStatus string // AVAILABLE, RESERVED, SELECTED, IN_USE, ...
	ProviderStatus string // "r" for a usable physical SIM
}

// Reservation is one number returned by reserveResources.
type Reservation struct {
	ReservationID string
	MSN           string
}

// OrderRequest is the wmeNewReqItem of orderCreate (contract 3.6).
type OrderRequest struct {
	CustNo            int64
	LineName          string
	PlanNo            int
	MSN               string
	SIMNo             string // physical SIM only; must be empty for eSIM
	IsEsim            bool
	IsQRCode          bool
	NotificationEmail string
	OrderNotes        string

	// BeforeSend, when set, is called once, after the rate limiter granted
	// the call and before the request leaves the process: the caller writes
	// its intent there, so an intent is never stamped and then left waiting
	// on the limiter. When it returns an error nothing is sent, the slot is
	// given back and OrderCreate returns an *IntentError wrapping it.
	BeforeSend func() error `json:"-"`

	// Slot, when set, is an orderCreate slot granted ahead by
	// Client.Acquire: the first try uses it instead of waiting.
	Slot *Slot `json:"-"`
}

// IntentError says a call was provably not sent because what had to be
// written before it could not be: OrderRequest.BeforeSend failed (Method
// empty: the orderCreate intent), or the recorder set by WithCallRecorder
// failed to record the call (Method names the call). The call's limiter
// slot was given back.
type IntentError struct {
	Method string // the call whose record failed; empty for BeforeSend
	Err    error
}

// Error says what could not be written and that nothing was sent.
func (e *IntentError) Error() string {
	if e.Method == "" {
		return "octane orderCreate: not sent: intent not written: " + e.Err.Error()
	}
	return "octane " + e.Method + ": not sent: call not recorded: " + e.Err.Error()
}

// Unwrap returns the write's error.
func (e *IntentError) Unwrap() error { return e.Err }

// OrderStatus is the orderQueryResponse of orderQuery.
type OrderStatus struct {
	OrderID        string
	Status         string
	InternalStatus string
	ServiceNumber  string
	ErrorMessage   string
}

// EsimQR is the answer of getEsimDetails with requestType "QR Code". Either
// ActivationCode or QRCode may be empty, never both.
type EsimQR struct {
	MSN            string
	ICCID          string
	ActivationCode string // LPA:1$smdp$matching-id; a credential: never log it
	QRCode         []byte // PNG bytes, decoded from base64; never log them
	Raw            []byte // the response body as received
}

// LogValue keeps the activation code and image out of logs (invariant 8).
func (q EsimQR) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("msn", q.MSN),
		slog.Bool("has_activation_code", q.ActivationCode != ""),
		slog.Int("qr_bytes", len(q.QRCode)),
	)
}

// SIMDetails is the answer of getEsimDetails with requestType "SIM Details".
type SIMDetails struct {
	MSN          string
	ICCID        string
	ProfileState string // RELEASED, LINKED, AVAILABLE, ERROR
}

// CallEvent describes one call the client made (or gave up on), for the call
// log that seeds the limiter of later runs and feeds reports. It never holds
// a secret or a QR payload.
//
// Every try that passed the limiter is reported twice, with the same ID:
// once with Phase CallSending just before the request leaves (so the call is
// on record even if the process dies before it ends), once with Phase
// CallDone when it ended. A call given up before that (the limiter wait
// ended) is reported once, CallDone with Sent false.
type CallEvent struct {
	ID       uint64 // one try: the CallSending and CallDone events share it
	Phase    string // CallSending or CallDone
	Method   string
	SentAt   time.Time // when the request left (CallSending: is about to); zero if it never did
	Duration time.Duration
	Waited   time.Duration // time spent waiting on the limiter before sending
	Outcome  string        // CallDone: OutcomeOK, OutcomeRejected, OutcomeFault, OutcomeRateLimited, OutcomeTransport
	Code     string        // Octane errorCode or faultcode, if any
	Message  string
	// Sent (CallDone) says the request may have reached Octane; false after
	// a CallSending event means it provably never left (dial failure), so
	// it is no Octane call.
	Sent    bool
	MSN     string // for reserveResources, the numbers reserved, comma-separated
	OrderID string // orderQuery's order, and the id an orderCreate was accepted with
	// BlockedUntil (after a fault 233) is the wall-clock time until which
	// the client sends no call of Method on this credential; other
	// processes on the credential should wait for it too.
	BlockedUntil time.Time
}

// CallEvent phases.
const (
	CallSending = "sending" // the request is about to leave
	CallDone    = "done"    // the try ended (or was given up before sending)
)

// Call outcomes recorded in CallEvent.Outcome.
const (
	OutcomeOK          = "ok"
	OutcomeRejected    = "rejected"
	OutcomeFault       = "fault"
	OutcomeRateLimited = "rate_limited"
	OutcomeTransport   = "transport"
)

// The Client methods are declared here so callers can see the whole surface
// in one place; they are implemented in client.go.
var _ interface {
	AddCustomer(ctx context.Context, c Customer) (custNo int64, err error)
	QueryResources(ctx context.Context, value string) ([]PooledResource, error)
	ReserveResources(ctx context.Context, n int) ([]Reservation, error)
	SelectResource(ctx context.Context, msn string) error
	UnreserveResource(ctx context.Context, msn string) error
	OrderCreate(ctx context.Context, req OrderRequest) (orderID string, err error)
	OrderQuery(ctx context.Context, orderID string) (OrderStatus, error)
	GetEsimQR(ctx context.Context, msn string) (EsimQR, error)
	GetSIMDetails(ctx context.Context, msn string) (SIMDetails, error)
} = (*Client)(nil)
