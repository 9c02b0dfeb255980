// Package octanetest is an in-memory Octane behind an http.Handler: SOAP and
// REST as the client in package octane speaks them, number and order state
// machines on its own clock, the documented rate limits, fault injection, a
// ledger of calls and a record of lapsed reservations. The /_sim/ control
// endpoints (ledger, clock, faults, expired) let a black-box test steer it.
package octanetest
