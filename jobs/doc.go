// Package jobs runs the phases of a pass (import, release, submit, poll, qr,
// report) over the store and the Octane client, and the cron schedule that
// fires them. It declares the few methods it needs from the store and the
// client as small interfaces of its own.
package jobs
