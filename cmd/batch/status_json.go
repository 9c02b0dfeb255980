package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/esimbatch/esimbatch/repo"
)

// statusStates is the order `batch status` lists the states in.
var statusStates = []repo.State{repo.StatePending, repo.StateSelected, repo.StateOrdering, repo.StateSubmitted,
	repo.StateCompleted, repo.StateQRReady, repo.StateProvisioned, repo.StateFailed, repo.StateCancelled}

// statusDoc is `batch status --json`: everything the text shows, and the
// last run of each credential. Times are RFC 3339 UTC; a missing time is
// null.
type statusDoc struct {
	At            time.Time          `json:"at"`
	Counts        map[repo.State]int `json:"counts"`
	OldestPending *time.Time         `json:"oldest_pending"`
	PollsDue      int                `json:"polls_due"`
	NextPoll      *time.Time         `json:"next_poll"`
	ReleasesDue   int                `json:"releases_due"`
	NextRelease   *time.Time         `json:"next_release"`
	OpenOrders    attentionDoc       `json:"open_orders"`
	QRLate        attentionDoc       `json:"qr_late"`
	// Budget is nil when OCTANE_USERNAME is not set.
	Budget *budgetDoc `json:"budget"`
	// Credentials are the rows and numbers of each credential, and the
	// budget of each that called Octane in the last hour.
	Credentials []credentialDoc `json:"credentials"`
	// Refused are the import files refused whole in the last 7 days.
	Refused  refusedDoc `json:"refused_imports"`
	LastRuns []runDoc   `json:"last_runs"`
}

type attentionDoc struct {
	Count int               `json:"count"`
	Rows  []attentionRowDoc `json:"rows"` // the oldest, at most repo.StatusAttentionRows
}

type attentionRowDoc struct {
	SalesRef  string    `json:"sales_ref"`
	MSN       string    `json:"msn"`
	OrderID   string    `json:"order_id"`
	State     string    `json:"state"`
	Since     time.Time `json:"since"`
	Polls     int       `json:"polls"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
}

type budgetDoc struct {
	Credential string          `json:"credential"`
	Methods    []budgetLineDoc `json:"methods"` // every limited method, by name
}

type budgetLineDoc struct {
	Method      string `json:"method"`
	HourUsed    int    `json:"hour_used"`
	HourLimit   int    `json:"hour_limit"`
	MinuteUsed  int    `json:"minute_used"`
	MinuteLimit int    `json:"minute_limit"`
	// NextFreeSlot is when a full window frees its next slot; null when
	// a call can go now.
	NextFreeSlot *time.Time `json:"next_free_slot"`
}

// credentialDoc is one credential's rows, held numbers and budget ("" for
// the rows no credential has claimed yet).
type credentialDoc struct {
	Credential string             `json:"credential"`
	Counts     map[repo.State]int `json:"counts"`
	Held       int                `json:"numbers_held"`
	// Budget is the credential's limited methods this hour; empty when it
	// made no call in the last hour.
	Budget []budgetLineDoc `json:"budget"`
}

// budgetDoc1 is one budget line as JSON.
func budgetDoc1(b budgetLine) budgetLineDoc {
	l := budgetLineDoc{Method: b.Method, HourUsed: b.HourUsed, HourLimit: b.HourLimit,
		MinuteUsed: b.MinuteUsed, MinuteLimit: b.MinuteLim}
	if t := later(b.HourFrees, b.MinuteFrees); !t.IsZero() {
		t = t.UTC()
		l.NextFreeSlot = &t
	}
	return l
}

// runDoc is the last run of one credential.
type runDoc struct {
	Credential string     `json:"credential"`
	RunID      int64      `json:"run_id"`
	Phases     string     `json:"phases"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// Outcome is the run's (ok, deadline, failed, unauthorized,
	// cancelled), or running / died (not finished, lease passed).
	Outcome string `json:"outcome"`
	// ExitCode is what `batch run` exited with for that outcome; null while
	// it runs or when it died.
	ExitCode *int           `json:"exit_code"`
	Counts   map[string]int `json:"counts"`
	Error    string         `json:"error"`
}

func statusJSON(now time.Time, st repo.Status, cred string, budgets map[string][]budgetLine, creds []repo.CredentialStatus, refused repo.RefusedList, runs []repo.Run) statusDoc {
	budget := budgets[cred]
	d := statusDoc{
		At: now, Counts: map[repo.State]int{}, OldestPending: st.OldestPending,
		PollsDue: st.PollsDue, NextPoll: st.NextPoll, ReleasesDue: st.ReleasesDue, NextRelease: st.NextRelease,
		OpenOrders: attentionJSON(st.OpenOrders), QRLate: attentionJSON(st.QRLate), LastRuns: []runDoc{},
	}
	for _, s := range statusStates {
		d.Counts[s] = st.Counts[s]
	}
	if cred != "" {
		d.Budget = &budgetDoc{Credential: cred, Methods: []budgetLineDoc{}}
		for _, b := range budget {
			d.Budget.Methods = append(d.Budget.Methods, budgetDoc1(b))
		}
	}
	d.Refused = refusedJSON(refused)
	d.Credentials = []credentialDoc{}
	for _, c := range creds {
		cd := credentialDoc{Credential: c.Credential, Counts: c.Counts, Held: c.Held}
		for _, b := range budgets[c.Credential] {
			cd.Budget = append(cd.Budget, budgetDoc1(b))
		}
		d.Credentials = append(d.Credentials, cd)
	}
	for _, r := range runs {
		outcome, code := runOutcome(r, now)
		d.LastRuns = append(d.LastRuns, runDoc{Credential: r.Credential, RunID: r.ID, Phases: r.Phases,
			StartedAt: r.StartedAt.UTC(), FinishedAt: utcPtr(r.FinishedAt), Outcome: outcome, ExitCode: code,
			Counts: r.Counts, Error: r.Error})
	}
	return d
}

func attentionJSON(l repo.AttentionList) attentionDoc {
	d := attentionDoc{Count: l.Count, Rows: []attentionRowDoc{}}
	for _, r := range l.Rows {
		d.Rows = append(d.Rows, attentionRowDoc{SalesRef: r.SalesRef, MSN: r.MSN, OrderID: r.OrderID, State: string(r.State),
			Since: r.Since.UTC(), Polls: r.PollCount, Attempts: r.Attempts, LastError: r.LastError})
	}
	return d
}

// runOutcome is a run's outcome as status shows it and the exit code
// `batch run` gave it (README "Operating"): 0 for a completed pass or one
// that reached RUN_DEADLINE, 1 for any other recorded outcome; none while
// it runs, or when it died without recording its end (its lease passed).
func runOutcome(r repo.Run, now time.Time) (string, *int) {
	code := func(c int) *int { return &c }
	switch {
	case r.FinishedAt == nil && r.LeaseUntil != nil && r.LeaseUntil.Before(now):
		return "died", nil
	case r.FinishedAt == nil:
		return "running", nil
	case r.Outcome == "ok" || r.Outcome == "deadline":
		return r.Outcome, code(exitOK)
	default:
		return r.Outcome, code(exitFailed)
	}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// printRuns prints the last run of each credential.
func printRuns(w io.Writer, runs []repo.Run, now time.Time) {
	if len(runs) == 0 {
		fmt.Fprintln(w, "\nlast runs: none yet")
		return
	}
	fmt.Fprintln(w, "\nlast run of each credential:")
	for _, r := range runs {
		outcome, code := runOutcome(r, now)
		exit := "-"
		if code != nil {
			exit = fmt.Sprint(*code)
		}
		fmt.Fprintf(w, "  %s  run %d  started %s  ended %s  outcome %s  exit %s  phases %s\n", field(r.Credential), r.ID,
			r.StartedAt.UTC().Format(time.RFC3339), fmtTime(r.FinishedAt), outcome, exit, field(r.Phases))
		if len(r.Counts) > 0 {
			keys := make([]string, 0, len(r.Counts))
			for k := range r.Counts {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = fmt.Sprintf("%s %d", k, r.Counts[k])
			}
			fmt.Fprintf(w, "    counts: %s\n", strings.Join(parts, ", "))
		}
		if r.Error != "" {
			fmt.Fprintf(w, "    error: %s\n", field(r.Error))
		}
	}
}

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
