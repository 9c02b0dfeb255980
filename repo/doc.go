// Package repo is the store: activations and their lifecycle, the event and
// call logs, runs, imports and report deliveries, on PostgreSQL (production)
// or SQLite (the embedded default). The activation table is the queue: rows
// are claimed in one short statement and every later write is guarded by the
// expected state and the claim token.
package repo
