package octane

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel kinds. An *APIError answers errors.Is for the one that fits it.
var (
	// ErrRateLimited: Octane answered with SOAP fault 233 (limit exceeded).
	ErrRateLimited = errors.New("octane: rate limit exceeded")
	// ErrUnauthorized: the credential was refused (SOAP login error, REST 401).
	ErrUnauthorized = errors.New("octane: credential refused")
	// ErrResourcesUnavailable: the number or eSIM pool is empty.
	ErrResourcesUnavailable = errors.New("octane: resources are not available")
	// ErrRejected: any other business rejection (non-zero errorCode).
	ErrRejected = errors.New("octane: request rejected")
	// ErrWritesDisabled: a mutating call was refused before any I/O because
	// the client was built read-only (dry run).
	ErrWritesDisabled = errors.New("octane: writes are disabled (dry run)")
	// ErrBudgetWait: the call's context ended while it waited for the rate
	// limiter (the method's budget was spent); the request was never sent.
	// It comes in a *TransportError that did not reach Octane, with the
	// context's error.
	ErrBudgetWait = errors.New("octane: gave up waiting for the rate limiter")
)

// APIError is an answer from Octane that is not a success: a SOAP fault, a
// non-zero errorCode, a REST error body or status.
type APIError struct {
	Method     string // e.g. "orderCreate"
	Code       string // errorCode or faultcode ("233")
	Message    string // errorMessage or faultstring
	HTTPStatus int
	kind       error // one of the sentinels
	fault      bool  // a SOAP fault or an HTTP error status, not an errorCode answer
}

// Error names the method, Octane's code and its message (never a secret).
func (e *APIError) Error() string {
	return fmt.Sprintf("octane %s: code %s: %s", e.Method, e.Code, e.Message)
}

// Is reports whether target is the sentinel kind of this error.
func (e *APIError) Is(target error) bool { return target != nil && target == e.kind }

// TransportError is a call that got no usable Octane answer: a dial or TLS
// failure, a timeout, a reset, an HTTP 5xx without a SOAP body, or a body that
// could not be decoded.
type TransportError struct {
	Method string
	// MayHaveReached is true when the request may have been processed by
	// Octane (it was written to the connection). For orderCreate this means
	// the outcome is unknown and must be reconciled, never retried blind.
	MayHaveReached bool
	Err            error
}

// Error names the method and whether the request may have reached Octane.
func (e *TransportError) Error() string {
	reach := "request not sent"
	if e.MayHaveReached {
		reach = "request may have reached Octane"
	}
	return fmt.Sprintf("octane %s: transport: %s: %v", e.Method, reach, e.Err)
}

// Unwrap returns the underlying network or decoding error.
func (e *TransportError) Unwrap() error { return e.Err }

// OutcomeUnknown reports whether err means a mutating call may have taken
// effect without the caller learning its result.
func OutcomeUnknown(err error) bool {
	var te *TransportError
	return errors.As(err, &te) && te.MayHaveReached
}

// ErrInvalidRequest: the call was refused before any I/O because an argument
// breaks the contract (e.g. numResources outside 1..5, a simNo on an eSIM).
var ErrInvalidRequest = errors.New("octane: invalid request")

// How an answer arrived, for answerError.
var (
	errFault              = errors.New("soap fault")
	errUnauthorizedStatus = errors.New("http 401")
	errRateLimitStatus    = errors.New("http 429")
)

// answerError is the one place that turns an Octane answer that is not a
// success into an *APIError of the right kind. how is errFault for a SOAP
// fault, errUnauthorizedStatus / errRateLimitStatus for those HTTP statuses,
// nil for an errorCode or REST error body.
func answerError(method string, status int, code, message string, how error) *APIError {
	e := &APIError{Method: method, Code: code, Message: message, HTTPStatus: status, fault: how != nil}
	bare := code
	if i := strings.LastIndexByte(bare, ':'); i >= 0 {
		bare = bare[i+1:] // "S:233" or "ns:233" both mean 233
	}
	lower := strings.ToLower(message)
	switch {
	case how == errRateLimitStatus || (how == errFault && bare == FaultCodeRateLimited):
		e.kind = ErrRateLimited
	case how == errUnauthorizedStatus || bare == ErrorCodeLogin || strings.Contains(lower, strings.ToLower(MsgLoginMatch)):
		e.kind = ErrUnauthorized
	case bare == ErrorCodeUnavailable || strings.Contains(lower, strings.ToLower(MsgUnavailableMatch)):
		e.kind = ErrResourcesUnavailable
	default:
		e.kind = ErrRejected
	}
	return e
}

// outcome names how a call ended, for CallEvent.Outcome.
func outcome(err error) string {
	var ae *APIError
	switch {
	case err == nil:
		return OutcomeOK
	case errors.As(err, &ae) && ae.kind == ErrRateLimited:
		return OutcomeRateLimited
	case errors.As(err, &ae) && (ae.fault || ae.kind == ErrUnauthorized):
		return OutcomeFault
	case errors.As(err, &ae):
		return OutcomeRejected
	default:
		return OutcomeTransport
	}
}
