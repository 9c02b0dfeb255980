package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/repo"
)

// kind is how the job treats an Octane error (contract section 4).
type kind int

const (
	kindTransport      kind = iota // retry later with backoff
	kindUnknownOutcome             // a mutating call may have taken effect: reconcile
	kindRejected                   // business rejection: the row fails with the message
	kindUnauthorized               // stop the whole run, touch no row
	kindUnavailable                // pool empty: stop submitting, rows stay pending
	kindRateLimited                // should have waited in the client: never counts
	kindCancelled                  // the pass is stopping
	kindReadOnly                   // dry run refused a write
)

func classify(ctx context.Context, err error) kind {
	switch {
	case errors.Is(err, octane.ErrUnauthorized):
		return kindUnauthorized
	case errors.Is(err, octane.ErrResourcesUnavailable):
		return kindUnavailable
	case errors.Is(err, octane.ErrRateLimited):
		return kindRateLimited
	case errors.Is(err, octane.ErrWritesDisabled):
		return kindReadOnly
	case errors.Is(err, octane.ErrRejected), errors.Is(err, octane.ErrInvalidRequest):
		return kindRejected
	case octane.OutcomeUnknown(err):
		return kindUnknownOutcome
	case ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return kindCancelled
	default:
		return kindTransport
	}
}

// apiCode returns Octane's error code and message for the row's last error.
func apiCode(err error) (code, msg string) {
	var ae *octane.APIError
	if errors.As(err, &ae) {
		return ae.Code, ae.Message
	}
	return "transport", err.Error()
}

// lost reports (and logs at error level) a guarded write that found the row
// moved by someone else: the row is skipped, never written from a stale read.
func (p *pass) lost(err error, a *repo.Activation, op string) bool {
	if errors.Is(err, repo.ErrLostClaim) {
		p.log.Error("lost claim: row moved under us; skipped", "op", op, "activation_id", a.ID, "sales_ref", a.SalesRef)
		p.add("lost_claims", 1)
		return true
	}
	return false
}

// storeErr wraps a store failure; it stops the pass unless it is a lost claim.
func (p *pass) storeErr(err error, a *repo.Activation, op string) {
	if err == nil || p.lost(err, a, op) {
		return
	}
	p.setFatal(fmt.Errorf("store %s (activation %d): %w", op, a.ID, err))
}
