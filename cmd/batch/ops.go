package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/esimbatch/esimbatch/repo"
)

// The operators' commands on single activations: batch show, batch retry,
// batch cancel (README "Operating"). Each takes REFs: a sales reference,
// an order id or an MSN. Exit 0 when every REF was done, 1 when one was
// not found or refused (the others are still done), 2 for bad usage.

// openStore decodes the configuration and opens DATABASE_URL with a current
// schema, for the commands that need only the database.
func openStore(ctx context.Context, e env) (*config, *repo.Store, error) {
	cfg, err := loadConfig(ctx, e.lookup)
	if err != nil {
		return nil, nil, err
	}
	if strings.TrimSpace(cfg.DatabaseURL) == "" {
		return nil, nil, badConfig("DATABASE_URL: required")
	}
	store, err := repo.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("open store: %w", err)
	}
	if err := checkSchema(ctx, store); err != nil {
		store.Close()
		return nil, nil, err
	}
	return cfg, store, nil
}

// operatorStore is what an operator command that changes rows needs: who
// runs it (--by, else $USER), the store and the job's clock. The caller
// closes the store.
func operatorStore(ctx context.Context, e env, by string) (string, *repo.Store, time.Time, error) {
	actor, err := actorOf(e, by)
	if err != nil {
		return "", nil, time.Time{}, err
	}
	cfg, store, err := openStore(ctx, e)
	if err != nil {
		return "", nil, time.Time{}, err
	}
	now, err := jobNow(ctx, cfg, store)
	if err != nil {
		store.Close()
		return "", nil, time.Time{}, err
	}
	return actor, store, now, nil
}

// jobNow is the job's clock (the database's plus BATCH_TIME_OFFSET), the
// one claims are stamped with: an operator's write compares with them.
func jobNow(ctx context.Context, cfg *config, store *repo.Store) (time.Time, error) {
	clk := repo.NewDBClock(store, time.Now, cfg.TimeOffset)
	if err := clk.Sync(ctx); err != nil {
		return time.Time{}, fmt.Errorf("database clock: %w", err)
	}
	return clk.Now(), nil
}

// actorOf is who an operator action is recorded as: --by, else $USER, else
// $LOGNAME. Errors: configError when none is set.
func actorOf(e env, by string) (string, error) {
	if s := strings.TrimSpace(by); s != "" {
		return s, nil
	}
	for _, k := range []string{"USER", "LOGNAME"} {
		if v, ok := e.lookup(k); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", badConfig("--by: say who you are (neither $USER nor $LOGNAME is set); every retry and cancel records it")
}

// errRefs is the error of a command that left some REFs undone (exit 1).
func errRefs(cmd string, undone, total int) error {
	return fmt.Errorf("%s: %d of %d activations not done (see above)", cmd, undone, total)
}

// findRef resolves ref, printing why on w when it cannot.
func findRef(ctx context.Context, store *repo.Store, w io.Writer, ref string) (repo.Activation, bool, error) {
	a, err := store.FindActivation(ctx, ref)
	switch {
	case err == nil:
		return a, true, nil
	case errors.Is(err, repo.ErrNotFound):
		fmt.Fprintf(w, "%s: not found (no sales reference, order id or MSN)\n", text(ref))
		return a, false, nil
	case errors.Is(err, repo.ErrAmbiguous):
		fmt.Fprintf(w, "%s: %s\n", text(ref), strings.TrimPrefix(err.Error(), repo.ErrAmbiguous.Error()+": "))
		return a, false, nil
	default:
		return a, false, err
	}
}

// text shows a value from a sales file or Octane on a terminal: "-" when
// empty, quoted (escapes visible) when it holds a control character.
func text(s string) string {
	if s == "" {
		return "-"
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// cmdRetry is `batch retry`: failed (or cancelled) activations back to
// pending with a fresh attempt budget, where no order can exist for them
// (repo.RetryCheck); the others only with --force, after the operator has
// checked Octane, and only when named one by one.
func cmdRetry(ctx context.Context, args []string, e env) error {
	fs := newFlags(e, "retry", "retry [--note TEXT] [--by NAME] [--force] [--dry-run] REF...\n"+
		"       batch retry --failed [--step STEP] [--since TIME] [--note TEXT] [--by NAME] [--dry-run]",
		"Puts failed activations back to pending (a fresh attempt budget, due now; the next report shows\n"+
			"how they end). Safe where no order can exist: failed before or at orderCreate, or Octane\n"+
			"rejected or cancelled the order. Refused, saying why, where an order may exist (a reconcile\n"+
			"verdict, an accepted order): check Octane for an order carrying the sales reference in its\n"+
			"notes, then name the REF with --force. A cancelled activation can be retried too. REF is a\n"+
			"sales reference, an order id or an MSN. Every retry is an event with who (--by, else $USER)\n"+
			"and why (--note). Exit 1 when an activation was not found or refused.")
	failed := fs.Bool("failed", false, "retry every failed activation (with --step and --since: those only)")
	step := fs.String("step", "", "with --failed: only those that failed at STEP ("+stepList()+")")
	since := fs.String("since", "", "with --failed: only those that failed at or after TIME (RFC 3339, YYYY-MM-DD, or a duration back from now such as 24h)")
	force := fs.Bool("force", false, "retry even where an order may exist, after checking Octane (named REFs only)")
	note := fs.String("note", "", "why, recorded with the retry (required with --force)")
	by := fs.String("by", "", "who, recorded with the retry (default $USER)")
	dryRun := fs.Bool("dry-run", false, "say what would be retried or refused; change nothing")
	refs, err := fs.parse(args)
	if err != nil {
		return err
	}
	usageErr := func(format string, a ...any) error {
		fs.printUsage(e.stderr)
		return badConfig("retry: "+format, a...)
	}
	switch {
	case *failed && len(refs) > 0:
		return usageErr("give REFs or --failed, not both")
	case !*failed && len(refs) == 0:
		return usageErr("give REFs or --failed")
	case !*failed && (*step != "" || *since != ""):
		return usageErr("--step and --since go with --failed")
	case *force && *failed:
		return usageErr("--force needs the REFs named one by one: check each in Octane first")
	case *force && strings.TrimSpace(*note) == "":
		return usageErr("--force needs --note saying what you checked in Octane")
	}
	var stepFilter repo.Step
	if *step != "" {
		if stepFilter = repo.Step(*step); !knownStep(stepFilter) {
			return usageErr("--step: %q is not a step; one of %s", *step, stepList())
		}
	}
	actor, store, now, err := operatorStore(ctx, e, *by)
	if err != nil {
		return err
	}
	defer store.Close()
	var sinceT time.Time
	if *since != "" {
		if sinceT, err = parseSince(*since, now); err != nil {
			return usageErr("--since: %v", err)
		}
	}

	w := e.stdout
	var rows []repo.Activation
	undone := 0
	if *failed {
		if rows, err = store.FailedActivations(ctx, stepFilter, sinceT); err != nil {
			return fmt.Errorf("retry: %w", err)
		}
		if len(rows) == 0 {
			fmt.Fprintln(w, "no failed activation matches")
			return nil
		}
	} else {
		for _, ref := range refs {
			a, ok, err := findRef(ctx, store, w, ref)
			if err != nil {
				return fmt.Errorf("retry: %w", err)
			}
			if !ok {
				undone++
				continue
			}
			rows = append(rows, a)
		}
	}
	retried := 0
	for _, a := range rows {
		was := describeFailure(a)
		if *dryRun {
			if err := repo.RetryCheck(a); err != nil && !(*force && needsCheck(err)) {
				printRefusal(w, err, "retry")
				undone++
				continue
			}
			fmt.Fprintf(w, "%s: would retry (%s)\n", text(a.SalesRef), was)
			retried++
			continue
		}
		_, err := store.Retry(ctx, a, actor, *note, *force, now)
		if errors.Is(err, repo.ErrRefused) {
			printRefusal(w, err, "retry")
			undone++
			continue
		}
		if err != nil {
			return fmt.Errorf("retry: %w", err)
		}
		retried++
		fmt.Fprintf(w, "%s: retried (%s): pending again, due now\n", text(a.SalesRef), was)
	}
	verb := "retried"
	if *dryRun {
		verb = "would retry"
	}
	fmt.Fprintf(w, "%s %d, not done %d\n", verb, retried, undone)
	if undone > 0 {
		return errRefs("retry", undone, undone+retried)
	}
	return nil
}

// describeFailure says where a row stopped, for the retry line.
func describeFailure(a repo.Activation) string {
	if a.State == repo.StateCancelled {
		return "was cancelled"
	}
	if a.State != repo.StateFailed {
		return "is " + string(a.State)
	}
	s := "was failed at " + text(a.LastErrorStep)
	if a.LastErrorCode != "" {
		s += " " + text(a.LastErrorCode)
	}
	return s
}

func needsCheck(err error) bool {
	var r *repo.Refusal
	return errors.As(err, &r) && r.NeedsCheck
}

// printRefusal prints a refusal and, when an order may exist, what to do.
func printRefusal(w io.Writer, err error, cmd string) {
	var r *repo.Refusal
	if !errors.As(err, &r) {
		fmt.Fprintf(w, "%v\n", err)
		return
	}
	fmt.Fprintf(w, "%s: refused: %s\n", text(r.SalesRef), text(r.Reason))
	if r.NeedsCheck && cmd == "retry" {
		fmt.Fprintf(w, "  check Octane for an order whose notes carry sales reference %s; if there is none:\n"+
			"  batch retry --force --note \"checked Octane: no order\" %s\n", text(r.SalesRef), text(r.SalesRef))
	}
}

func knownStep(st repo.Step) bool {
	for _, s := range repo.Steps() {
		if s == st {
			return true
		}
	}
	return false
}

func stepList() string {
	var names []string
	for _, s := range repo.Steps() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

// parseSince reads --since: RFC 3339, a date (midnight UTC), or a Go
// duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-01-31T10:00:00Z), a date (2026-01-31) or a duration back from now (24h)", s)
}

// cmdCancel is `batch cancel`: pending or selected activations become
// cancelled, never ordered; a number one holds goes back to Octane at the
// next release phase (once the run that reserved it is over). Past
// orderCreate, or while a run works on the row, it is refused.
func cmdCancel(ctx context.Context, args []string, e env) error {
	fs := newFlags(e, "cancel", "cancel [--note TEXT] [--by NAME] REF...",
		"Cancels pending or selected activations: they are never ordered, and appear once in the next\n"+
			"report (Summary \"Cancelled\", and a Failures row at step cancel). A number a selected one holds\n"+
			"is given back to Octane by the next release phase. Refused, saying why, once its orderCreate\n"+
			"was sent (ordering or later), when it has ended, or while a run is working on it. REF is a\n"+
			"sales reference, an order id or an MSN. Exit 1 when an activation was not found or refused.")
	note := fs.String("note", "", "why, recorded with the cancel and shown in the report")
	by := fs.String("by", "", "who, recorded with the cancel (default $USER)")
	refs, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		fs.printUsage(e.stderr)
		return badConfig("cancel: give the REFs to cancel")
	}
	actor, store, now, err := operatorStore(ctx, e, *by)
	if err != nil {
		return err
	}
	defer store.Close()
	w := e.stdout
	done, undone := 0, 0
	for _, ref := range refs {
		a, ok, err := findRef(ctx, store, w, ref)
		if err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
		if !ok {
			undone++
			continue
		}
		_, err = store.Cancel(ctx, a, actor, *note, now)
		if errors.Is(err, repo.ErrRefused) {
			printRefusal(w, err, "cancel")
			undone++
			continue
		}
		if err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
		done++
		if a.MSN != "" {
			fmt.Fprintf(w, "%s: cancelled (was %s on number %s, which the next release phase gives back)\n", text(a.SalesRef), a.State, text(a.MSN))
		} else {
			fmt.Fprintf(w, "%s: cancelled (was %s)\n", text(a.SalesRef), a.State)
		}
	}
	fmt.Fprintf(w, "cancelled %d, not done %d\n", done, undone)
	if undone > 0 {
		return errRefs("cancel", undone, len(refs))
	}
	return nil
}
