// Command batch is esimbatch: a scheduled batch reconciler that turns sales
// imports into live eSIM services on Octane and reports the outcome in Excel.
//
//	batch run [--phases ...] [--dry-run]   one pass, then exit (Kubernetes CronJob)
//	batch schedule                         the phases on cron schedules
//	batch import FILE...                   load sales files
//	batch migrate                          apply the schema
//	batch status [--json]                  counts, due work, budget left, last runs
//	batch show [--json] REF                one activation: fields, events, calls
//	batch retry REF... | --failed          failed activations back to pending
//	batch cancel REF...                    stop activations before their order
//	batch config                           the effective configuration
//	batch demo [--out DIR]                 everything embedded, on a simulated clock
//	batch sim [--addr HOST:PORT]           the Octane simulator, standalone
//
// Every command answers --help (exit 0) and refuses unknown flags and
// unexpected arguments (exit 2).
//
// main only wires: configuration, logger, store, client, jobs; it maps errors
// to exit codes (0 done, 1 infrastructure or credential failure, 2 bad
// configuration) and is the only caller of os.Exit.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes (docs/design.md, README "Commands").
const (
	exitOK     = 0
	exitFailed = 1
	exitConfig = 2
)

// configError marks an error as bad configuration (exit 2).
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

// badConfig wraps err so that main exits 2.
func badConfig(format string, args ...any) error {
	return configError{fmt.Errorf(format, args...)}
}

// env is the process environment, injectable for tests.
type env struct {
	lookup func(string) (string, bool)
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, e env) error
}

func commands() []command {
	return []command{
		{"run", "one pass of the phases, then exit", cmdRun},
		{"schedule", "run the phases on their cron schedules", cmdSchedule},
		{"import", "load sales files (CSV, XLSX)", cmdImport},
		{"migrate", "apply the database schema", cmdMigrate},
		{"status", "counts by state, due work, budget left, last runs", cmdStatus},
		{"show", "one activation: its fields, events and Octane calls", cmdShow},
		{"retry", "put failed activations back to pending", cmdRetry},
		{"cancel", "stop pending or selected activations before their order", cmdCancel},
		{"reassign", "hand a credential's unstarted rows to another credential", cmdReassign},
		{"config", "the effective configuration and what each command misses", cmdConfig},
		{"demo", "the whole pipeline embedded, on a simulated clock", cmdDemo},
		{"sim", "serve the Octane simulator", cmdSim},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:], env{lookup: os.LookupEnv, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	code := exitCode(err)
	if err != nil && !errors.Is(err, errUsageShown) {
		fmt.Fprintln(os.Stderr, "batch:", err)
	}
	os.Exit(code)
}

var errUsageShown = errors.New("usage shown")

// run dispatches to a command; the whole program can run in a test.
// `batch help CMD` is `batch CMD --help`.
func run(ctx context.Context, args []string, e env) error {
	if len(args) == 0 {
		usage(e.stderr)
		return configError{errUsageShown}
	}
	if args[0] == "help" && len(args) > 1 {
		args = []string{args[1], "--help"}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(e.stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], e)
			if errors.Is(err, errHelpShown) {
				return nil
			}
			return err
		}
	}
	usage(e.stderr)
	return badConfig("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: batch COMMAND [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nbatch COMMAND --help describes a command; configuration is read from the environment")
	fmt.Fprintln(w, "(batch config shows it; see README.md). Exit codes: 0 done, 1 failed or refused, 2 bad usage or configuration.")
}

func exitCode(err error) int {
	var ce configError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ce):
		return exitConfig
	default:
		return exitFailed
	}
}
