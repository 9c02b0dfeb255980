package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/repo"
)

// cmdStatus is `batch status [--json]`: counts by state, oldest waiting
// row, polls and releases due, the open orders and late QR codes older than
// 24 h (the oldest of each listed), the import files refused lately, the
// rows and numbers of each credential, per credential the Octane budget left
// this hour per limited method, and the last run of each credential. --json
// writes the same as one JSON object.
func cmdStatus(ctx context.Context, args []string, e env) error {
	fs := newFlags(e, "status", "status [--json]",
		"Counts by state, the oldest pending row, polls and releases due, open orders and QR codes late\n"+
			"by more than 24 h, the Octane budget of OCTANE_USERNAME per limited method, and the last run\n"+
			"of each credential (start, end, outcome, exit code, counts). Needs DATABASE_URL.")
	asJSON := fs.Bool("json", false, "write one JSON object instead of text")
	if err := fs.parseNone(args); err != nil {
		return err
	}
	cfg, err := loadConfig(ctx, e.lookup)
	if err != nil {
		return err
	}
	if strings.TrimSpace(cfg.DatabaseURL) == "" {
		return badConfig("DATABASE_URL: required")
	}
	now := time.Now().UTC().Add(cfg.TimeOffset)
	store, err := repo.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer store.Close()
	if err := checkSchema(ctx, store); err != nil {
		return err
	}
	st, err := store.Status(ctx, now, now.Add(-cfg.ReleaseAfter))
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	runs, err := store.LastRuns(ctx)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	// Octane's windows are wall-clock time, not the (possibly offset) job
	// clock; the call log is stamped with the database's wall clock.
	clk := repo.NewDBClock(store, time.Now, 0)
	if err := clk.Sync(ctx); err != nil {
		return fmt.Errorf("database clock: %w", err)
	}
	wall := clk.Wall()
	creds, err := store.StatusByCredential(ctx, wall.Add(-time.Hour))
	if err != nil {
		return fmt.Errorf("status by credential: %w", err)
	}
	// The budget of every credential that called Octane in the last hour,
	// and of this process's own even when it has not.
	var names []string
	for _, c := range creds {
		if c.Credential != "" {
			names = append(names, c.Credential)
		}
	}
	if u := cfg.Octane.Username; u != "" && !slices.Contains(names, u) {
		names = append(names, u)
		sort.Strings(names)
	}
	budgets := map[string][]budgetLine{}
	for _, name := range names {
		calls, err := store.RecentCalls(ctx, name, wall.Add(-time.Hour))
		if err != nil {
			return fmt.Errorf("recent calls: %w", err)
		}
		budgets[name] = budgetOf(calls, octane.DefaultLimits(), wall)
	}
	refused, err := recentRefused(ctx, store, now)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, statusJSON(now, st, cfg.Octane.Username, budgets, creds, refused, runs))
	}
	w := e.stdout
	fmt.Fprintf(w, "at %s\n\nactivations by state:\n", now.Format(time.RFC3339))
	for _, s := range statusStates {
		fmt.Fprintf(w, "  %-12s %d\n", s, st.Counts[s])
	}
	fmt.Fprintf(w, "\noldest pending:  %s\n", fmtTime(st.OldestPending))
	fmt.Fprintf(w, "polls due:       %d (next %s)\n", st.PollsDue, fmtTime(st.NextPoll))
	fmt.Fprintf(w, "releases due:    %d (next %s)\n", st.ReleasesDue, fmtTime(st.NextRelease))
	fmt.Fprintln(w)
	printAttention(w, "open orders older than 24 h", "polls", st.OpenOrders)
	printAttention(w, "QR codes late (over 24 h)", "attempts", st.QRLate)
	printRefused(w, refused)
	fmt.Fprintln(w)
	printCredentials(w, creds)
	if len(names) == 0 {
		fmt.Fprintln(w, "\nbudget: no credential has called Octane in the last hour and OCTANE_USERNAME is not set")
	}
	for _, name := range names {
		fmt.Fprintf(w, "\nOctane budget of %s (documented limits; windows end at the times shown, UTC):\n", field(name))
		printBudget(w, budgets[name])
	}
	printRuns(w, runs, now)
	return nil
}

// credentialStates are the states `batch status` shows per credential.
var credentialStates = []repo.State{repo.StatePending, repo.StateSelected, repo.StateOrdering, repo.StateSubmitted,
	repo.StateCompleted, repo.StateQRReady, repo.StateProvisioned, repo.StateFailed}

// printCredentials prints the rows each credential owns by state and the
// numbers it holds; "(none yet)" is the rows no credential has claimed.
func printCredentials(w io.Writer, creds []repo.CredentialStatus) {
	fmt.Fprintln(w, "rows and numbers per credential:")
	if len(creds) == 0 {
		fmt.Fprintln(w, "  (no rows)")
		return
	}
	width := len("(none yet)")
	for _, c := range creds {
		width = max(width, len(field(c.Credential)))
	}
	fmt.Fprintf(w, "  %-*s", width, "credential")
	for _, st := range credentialStates {
		fmt.Fprintf(w, " %11s", st)
	}
	fmt.Fprintf(w, " %12s\n", "numbers held")
	for _, c := range creds {
		name := field(c.Credential)
		if c.Credential == "" {
			name = "(none yet)"
		}
		fmt.Fprintf(w, "  %-*s", width, name)
		for _, st := range credentialStates {
			fmt.Fprintf(w, " %11d", c.Counts[st])
		}
		fmt.Fprintf(w, " %12d\n", c.Held)
	}
}

// budgetLine is one limited method's budget at a moment.
type budgetLine struct {
	Method                 string
	HourUsed, HourLimit    int
	MinuteUsed, MinuteLim  int
	HourFrees, MinuteFrees time.Time // when the oldest call in a full window leaves it (zero: not full)
}

// budgetOf counts calls (send times, oldest first per method) in the
// trailing hour and minute before now, for every limited method.
func budgetOf(calls map[string][]time.Time, limits map[string]octane.Limit, now time.Time) []budgetLine {
	methods := make([]string, 0, len(limits))
	for m := range limits {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	out := make([]budgetLine, 0, len(methods))
	for _, m := range methods {
		l := limits[m]
		b := budgetLine{Method: m, HourLimit: l.PerHour, MinuteLim: l.PerMinute}
		var inHour, inMinute []time.Time
		for _, t := range calls[m] {
			if t.After(now.Add(-time.Hour)) {
				inHour = append(inHour, t)
				if t.After(now.Add(-time.Minute)) {
					inMinute = append(inMinute, t)
				}
			}
		}
		b.HourUsed, b.MinuteUsed = len(inHour), len(inMinute)
		if l.PerHour > 0 && len(inHour) >= l.PerHour {
			b.HourFrees = inHour[len(inHour)-l.PerHour].Add(time.Hour)
		}
		if l.PerMinute > 0 && len(inMinute) >= l.PerMinute {
			b.MinuteFrees = inMinute[len(inMinute)-l.PerMinute].Add(time.Minute)
		}
		out = append(out, b)
	}
	return out
}

// printBudget prints the budget table with labelled columns.
func printBudget(w io.Writer, lines []budgetLine) {
	fmt.Fprintf(w, "  %-20s %-15s %-15s %s\n", "method", "hour used/limit", "minute used/limit", "next free slot")
	for _, b := range lines {
		next := "now"
		if t := later(b.HourFrees, b.MinuteFrees); !t.IsZero() {
			next = t.UTC().Format(time.TimeOnly)
		}
		fmt.Fprintf(w, "  %-20s %-15s %-17s %s\n", b.Method, fmt.Sprintf("%d/%d", b.HourUsed, b.HourLimit),
			fmt.Sprintf("%d/%d", b.MinuteUsed, b.MinuteLim), next)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// printAttention prints an attention list: the count, then one line per
// listed row (oldest first) and how many more there are. count names the
// number shown per row: polls for an open order, attempts for a QR code.
func printAttention(w io.Writer, title, count string, l repo.AttentionList) {
	fmt.Fprintf(w, "%s: %d\n", title, l.Count)
	for _, r := range l.Rows {
		n := r.Attempts
		if r.State == repo.StateSubmitted {
			n = r.PollCount
		}
		fmt.Fprintf(w, "  %s  %s  msn %s  order %s  %s  %s %d", r.Since.UTC().Format(time.RFC3339),
			field(r.SalesRef), field(r.MSN), field(r.OrderID), r.State, count, n)
		if r.LastError != "" {
			fmt.Fprintf(w, "  last error %q", r.LastError)
		}
		fmt.Fprintln(w)
	}
	if more := l.Count - len(l.Rows); more > 0 && len(l.Rows) > 0 {
		fmt.Fprintf(w, "  ... and %d more\n", more)
	}
}

// field shows a value from a sales file or Octane on one terminal line: "-"
// when empty, quoted when it holds spaces, quotes or control characters.
func field(s string) string {
	if s == "" {
		return "-"
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) || unicode.IsSpace(r) || r == '"' {
			return strconv.Quote(s)
		}
	}
	return s
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
