package octane

import (
	"errors"
	"fmt"
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
)

// APIError is an answer from Octane that is not a success: a SOAP fault, a
// non-zero errorCode, a REST error body or status.
type APIError struct {
	Method     string // e.g. "orderCreate"
	Code       string // errorCode or faultcode ("233")
	Message    string // errorMessage or faultstring
	HTTPStatus int
	kind       error // one of the sentinels
}

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

func (e *TransportError) Error() string {
	reach := "request not sent"
	if e.MayHaveReached {
		reach = "request may have reached Octane"
	}
	return fmt.Sprintf("octane %s: transport: %s: %v", e.Method, reach, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// OutcomeUnknown reports whether err means a mutating call may have taken
// effect without the caller learning its result.
func OutcomeUnknown(err error) bool {
	var te *TransportError
	return errors.As(err, &te) && te.MayHaveReached
}
