// Package e2e is the black-box suite of esimbatch: it builds the batch
// binary once and drives it only through its command line, its environment
// and its exit codes, the way a CronJob would, against `batch sim` (also the
// built binary, as a child process), a private PostgreSQL instance it
// starts, stops and restarts itself, and an in-process SMTP server.
//
// The scenario imports generated sales files (`batch import` and
// IMPORT_DIR), then runs many `batch run` passes while both clocks move
// forward (BATCH_TIME_OFFSET for the job, POST /_sim/clock for the
// simulator), and meanwhile SIGKILLs passes at random moments, starts three
// passes at once, restarts PostgreSQL under a running pass, takes Octane
// down and up again, stops the job for more than a day, refuses a report
// email, cuts passes short with RUN_DEADLINE and injects random simulator
// faults. It ends with clean passes until every activation is terminal, and
// a day of hourly idle passes, then checks the promises of docs/design.md
// (quoted as "promise N" in failures) from the outside: the simulator's
// ledger and lapsed reservations, the database tables and the delivered
// mail (each workbook reopened, its QR codes sheet read cell by cell, every
// QR image decoded).
//
// batch's rate limiter counts on real windows (a minute, an hour) and has
// no setting to shorten them, so the simulator keeps its real windows too
// and Octane's per-minute budget (100 orderCreate, 100 orderQuery, 50
// reserveResources) sets the pace of the scenario.
//
// The short form (about 150 activations, about 3 minutes) runs with the
// rest of `go test ./...` (E2E=0 or -short skips it); the full form (1000
// activations, more faults) runs with E2E_FULL=1 or
// `go test ./e2e -e2e.full -timeout 60m`. The test logs its
// seed; E2E_SEED=N (or -e2e.seed N) replays the same plan of faults (the
// timing of child processes still varies). Child output is kept under the
// test's temporary folder, or under E2E_KEEP when set. E2E_PG_RESTARTS=N
// restarts PostgreSQL under up to N passes instead of the form's count.
//
// The suite runs on Linux only: as root it runs PostgreSQL as the postgres
// user, and its children die with it (Pdeathsig) if go test's -timeout
// kills it. Without initdb and pg_ctl it skips, saying so; under CI=true it
// fails instead.
//
// The package has no non-test code beyond this comment.
package e2e
