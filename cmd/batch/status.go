package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/repo"
)

// cmdStatus is `batch status`: counts by state, oldest waiting row, polls
// and releases due, the open orders and late QR codes older than 24 h (the
// oldest of each listed), and the Octane budget left this hour per method.
func cmdStatus(ctx context.Context, args []string, e env) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	if err := fs.Parse(args); err != nil {
		return configError{err}
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
	w := e.stdout
	fmt.Fprintf(w, "at %s\n\nactivations by state:\n", now.Format(time.RFC3339))
	for _, s := range []repo.State{repo.StatePending, repo.StateSelected, repo.StateOrdering, repo.StateSubmitted,
		repo.StateCompleted, repo.StateQRReady, repo.StateProvisioned, repo.StateFailed} {
		fmt.Fprintf(w, "  %-12s %d\n", s, st.Counts[s])
	}
	fmt.Fprintf(w, "\noldest pending:  %s\n", fmtTime(st.OldestPending))
	fmt.Fprintf(w, "polls due:       %d (next %s)\n", st.PollsDue, fmtTime(st.NextPoll))
	fmt.Fprintf(w, "releases due:    %d (next %s)\n", st.ReleasesDue, fmtTime(st.NextRelease))
	fmt.Fprintln(w)
	printAttention(w, "open orders older than 24 h", "polls", st.OpenOrders)
	printAttention(w, "QR codes late (over 24 h)", "attempts", st.QRLate)
	if cfg.Octane.Username == "" {
		fmt.Fprintln(w, "\nbudget: OCTANE_USERNAME not set")
		return nil
	}
	// Octane's windows are wall-clock time, not the (possibly offset) job clock.
	wall := time.Now()
	calls, err := store.RecentCalls(ctx, cfg.Octane.Username, wall.Add(-time.Hour))
	if err != nil {
		return fmt.Errorf("recent calls: %w", err)
	}
	fmt.Fprintf(w, "\nbudget left for %s (last hour / last minute):\n", cfg.Octane.Username)
	limits := octane.DefaultLimits()
	methods := make([]string, 0, len(limits))
	for m := range limits {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	for _, m := range methods {
		hour, minute := 0, 0
		for _, t := range calls[m] {
			hour++
			if !t.Before(wall.Add(-time.Minute)) {
				minute++
			}
		}
		l := limits[m]
		fmt.Fprintf(w, "  %-20s %5d/%-5d %4d/%-4d\n", m, max(0, l.PerHour-hour), l.PerHour, max(0, l.PerMinute-minute), l.PerMinute)
	}
	return nil
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
