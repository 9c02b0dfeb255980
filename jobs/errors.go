package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/repo"
)

// kind is how an Octane error reads (the left column of the error table).
type kind int

const (
	kindTransport      kind = iota // no answer; the request provably never left, or was safe to repeat
	kindUnknownOutcome             // a call that is not safe to repeat may have taken effect
	kindRejected                   // business rejection: errorCode and message
	kindUnauthorized               // the credential was refused
	kindUnavailable                // the number or eSIM pool is empty
	kindRateLimited                // fault 233 after the client's own waits and retries
	kindCancelled                  // the pass is stopping
	kindReadOnly                   // a dry run refused a write
	kindLockLost                   // the run lock is gone: another runner may hold the credential
	kindNotRecorded                // the call's record could not be written, so it was not sent: the store is failing
)

func (k kind) String() string {
	return [...]string{"transport", "unknown_outcome", "rejected", "unauthorized", "unavailable",
		"rate_limited", "cancelled", "read_only", "lock_lost", "not_recorded"}[k]
}

func classify(ctx context.Context, err error) kind {
	switch {
	case errors.Is(err, repo.ErrLocked):
		return kindLockLost
	case notRecorded(err):
		return kindNotRecorded
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

// act is what happens to a row after a step failed (the right column).
type act int

const (
	// actHandBack releases the claim and changes nothing else: no attempt
	// is charged (the row was not at fault, or the pass is stopping).
	actHandBack act = iota
	// actRetry backs the row off and charges an attempt; the row fails only
	// when its attempts span RetrySpan (days, not hours).
	actRetry
	// actFail fails the row with Octane's code and message.
	actFail
	// actUnknown leaves an orderCreate whose outcome is unknown in
	// `ordering` for reconcile: it is never resent blind.
	actUnknown
	// actStopPass stops the whole pass (exit 1) and touches no further row.
	actStopPass
	// actStopSubmit stops submitting for this pass; the row stays pending.
	actStopSubmit
	// actWait tries again later and never fails the row: a live service
	// whose QR code cannot be fetched yet.
	actWait
)

func (a act) String() string {
	return [...]string{"hand_back", "retry", "fail", "unknown", "stop_pass", "stop_submit", "wait"}[a]
}

// errorTable is the Octane error table, once: how each kind of error is
// handled. docs/design.md ("Outcomes") states the same table in words.
var errorTable = map[kind]act{
	kindTransport:      actRetry,      // back off; an outage stops the pass first (see outage)
	kindUnknownOutcome: actRetry,      // a call safe to repeat: back off and do it again
	kindRejected:       actFail,       // the row fails with Octane's message
	kindUnauthorized:   actStopPass,   // bad credentials stop the run, touch no row
	kindUnavailable:    actStopSubmit, // pool empty: stop submitting, rows stay pending
	kindRateLimited:    actHandBack,   // the limiter waits; never a row's failure
	kindCancelled:      actHandBack,   // the pass is stopping
	kindReadOnly:       actHandBack,   // dry run
	kindLockLost:       actStopPass,   // another runner may hold the credential
	kindNotRecorded:    actStopPass,   // the database is failing: nothing more can go on record
}

// notRecorded says whether err is a call the client did not send because
// its call-log record failed (CallRecorder).
func notRecorded(err error) bool {
	var ie *octane.IntentError
	return errors.As(err, &ie) && ie.Method != ""
}

// stepTable holds the steps that read an error differently from errorTable.
var stepTable = map[repo.Step]map[kind]act{
	// orderCreate is never resent once it may have reached Octane.
	repo.StepOrder: {kindUnknownOutcome: actUnknown},
	// A poll's slot is spent by its claim: whatever goes wrong, the order
	// is asked again at its next slot, and the row never fails for it.
	repo.StepPoll: {kindTransport: actHandBack, kindUnknownOutcome: actHandBack, kindRejected: actHandBack,
		kindUnavailable: actHandBack},
	// A completed service never fails for want of its QR code: "not ready
	// yet" is a rejection, and an outage a transport error; both wait.
	repo.StepQR: {kindTransport: actWait, kindUnknownOutcome: actWait, kindRejected: actWait, kindUnavailable: actWait},
	// Reconcile reads a number's state; until it can, the row waits in
	// `ordering` (handed back, never failed by a transport error).
	repo.StepReconcile: {kindTransport: actHandBack, kindUnknownOutcome: actHandBack, kindRejected: actHandBack,
		kindUnavailable: actHandBack},
}

// decide looks up the act for an error at a step.
func decide(step repo.Step, k kind) act {
	if m, ok := stepTable[step]; ok {
		if a, ok := m[k]; ok {
			return a
		}
	}
	return errorTable[k]
}

// Codes of our own in last_error_code, beside Octane's (failureTable reads
// them for the Failures sheet; submit.go writes the last two).
const (
	codeTransport  = "transport"   // no answer from Octane
	codeNotSent    = "not_sent"    // the request never left: refused by the client, or never written
	codeInvalidSIM = "invalid_sim" // the physical SIM's serial is not usable (simCheck)
	codeReview     = "review"      // reconcile found a number state that needs a person
)

// apiCode returns Octane's error code and message for the row's last error;
// a failure that never got an answer from Octane is codeTransport, one whose
// request never left the process (including one the client refused to send)
// is codeNotSent.
func apiCode(err error) (code, msg string) {
	var ae *octane.APIError
	if errors.As(err, &ae) {
		return ae.Code, ae.Message
	}
	if errors.Is(err, octane.ErrInvalidRequest) {
		return codeNotSent, err.Error()
	}
	var te *octane.TransportError
	if errors.As(err, &te) && !te.MayHaveReached {
		return codeNotSent, err.Error()
	}
	return codeTransport, err.Error()
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

// failureTable is how a failed row reads on the report's Failures sheet, per
// kind of failure: our reason and what an operator does about it. It stands
// beside the error table because it reads the same codes: a row whose code
// is one of ours (the first entries) failed on something we found, and its
// message is ours; any other code is Octane's, read per step. The first
// entry that matches a row's code and step applies; an empty code matches
// any of Octane's codes, an empty step any step.
var failureTable = []struct {
	code   string
	step   repo.Step
	reason string
	advice string
}{
	{codeTransport, repo.StepCustomer, "No answer from Octane to addCustomer: the customer may have been created",
		"Look the customer up in Octane (name and email) before re-driving with `batch retry`, which creates it again"},
	{codeTransport, "", "No answer from Octane",
		"Check that Octane is reachable (the run's log names the error), then re-drive with `batch retry`"},
	{codeNotSent, "", "Never sent to Octane",
		"Fix what the reason names (the sale's data, or the configuration), then re-drive with `batch retry`"},
	{codeInvalidSIM, "", "The physical SIM's serial cannot be used",
		"Check the serial against the SIM stock, correct the sale and import it again under a new sales reference"},
	{codeReview, "", "An order may exist for this number",
		"Ask Octane: look the MSN up (the order notes carry the sales reference); re-drive with `batch retry --force` only if Octane has no order"},

	{"", repo.StepOrder, "Octane refused the order",
		"Check the plan: plan_no must be a plan the wholesaler group sells (Octane's message says why); correct the sale, or re-drive with `batch retry` once the plan is available"},
	{"", repo.StepPoll, "Octane rejected or cancelled the order after accepting it",
		"Ask Octane why (quote the MSN and the sales reference), then re-drive with `batch retry`: no order is left and the number is free"},
	{"", repo.StepCustomer, "Octane refused the customer",
		"Check the plan and the customer's name, address and email in the sale (Octane's message says which): correct the sale and import it again under a new sales reference, or re-drive with `batch retry` once Octane accepts the plan"},
	{"", repo.StepSIMCheck, "Octane refused the SIM serial",
		"Check the serial against the SIM stock, correct the sale and import it again under a new sales reference"},
	{"", "", "Octane refused the request",
		"Ask Octane what the error code means, then re-drive with `batch retry`"},
}

// ourCodes are the codes failureTable reads as ours.
var ourCodes = map[string]bool{codeTransport: true, codeNotSent: true, codeInvalidSIM: true, codeReview: true}

// describeFailure splits a failed row's step, code and message into the
// Failures sheet's columns: Octane's code and message (empty when the
// failure is ours), our reason (with our message when it is ours) and what
// to do.
func describeFailure(step, code, msg string) (octaneCode, octaneMsg, reason, advice string) {
	ours := ourCodes[code]
	for _, f := range failureTable {
		if (f.code == code || (f.code == "" && !ours)) && (f.step == "" || string(f.step) == step) {
			reason, advice = f.reason, f.advice
			break
		}
	}
	if ours {
		if msg != "" {
			reason += ": " + msg
		}
		return "", "", reason, advice
	}
	return code, msg, reason, advice
}
