// Package octanetest is an in-memory Octane behind an http.Handler: SOAP and
// REST as in octane-contract.md, number and order state machines on its own
// clock, the documented rate limits, fault injection and a ledger of calls.
package octanetest
