package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
	migrations "github.com/esimbatch/esimbatch/sql"
)

// dialects are the stores every operator command is tested on.
var dialects = []struct {
	name string
	url  func(testing.TB) string
}{
	{"postgres", repotest.PostgresURL},
	{"sqlite", repotest.SQLiteURL},
}

// opsStore is a migrated store at url and the environment of a command
// against it (an operator named ops).
func opsStore(t *testing.T, url string) (*repo.Store, map[string]string) {
	t.Helper()
	s, err := repo.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, map[string]string{"DATABASE_URL": url, "USER": "ops", "LOG_FORMAT": "text"}
}

// opsSeed imports refs at at, in a new run it returns.
func opsSeed(t *testing.T, s *repo.Store, at time.Time, refs ...string) int64 {
	t.Helper()
	ctx := context.Background()
	rows := make([]repo.NewActivation, len(refs))
	for i, r := range refs {
		rows[i] = repo.NewActivation{Line: i + 2, SalesRef: r, GivenNames: "Ann", Surname: "Lee", Email: "ann@example.com", PlanNo: 1001}
	}
	if _, err := s.Import(ctx, repo.ImportFile{Name: "ops.csv", Hash: strings.Join(refs, ","), DataRows: len(rows)}, rows, nil, at); err != nil {
		t.Fatal(err)
	}
	runID, err := s.StartRun(ctx, at, "cred", []string{"submit"}, false)
	if err != nil {
		t.Fatal(err)
	}
	return runID
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// claimOnly claims the due rows and keeps ref's claim, unclaiming the others.
func claimOnly(t *testing.T, s *repo.Store, now time.Time, runID int64, ref string) repo.Activation {
	t.Helper()
	ctx := context.Background()
	got, err := s.ClaimPending(ctx, now, runID, "cred", 100, time.Hour)
	mustOK(t, err)
	var out *repo.Activation
	for i := range got {
		if got[i].SalesRef == ref {
			out = &got[i]
			continue
		}
		mustOK(t, s.Unclaim(ctx, &got[i]))
	}
	if out == nil {
		t.Fatalf("%s is not claimable", ref)
	}
	return *out
}

func selectOnly(t *testing.T, s *repo.Store, now time.Time, runID int64, ref, msn string) repo.Activation {
	t.Helper()
	ctx := context.Background()
	a := claimOnly(t, s, now, runID, ref)
	mustOK(t, s.SaveReservations(ctx, runID, "cred", now, []repo.Reservation{{MSN: msn}}))
	r, err := s.TakeReservation(ctx, runID, &a, now)
	mustOK(t, err)
	mustOK(t, s.MarkSelected(ctx, &a, r, now))
	return a
}

func state(t *testing.T, s *repo.Store, ref string) repo.Activation {
	t.Helper()
	a, err := s.ActivationByRef(context.Background(), ref)
	mustOK(t, err)
	return a
}

// Every command answers --help (and -h, and batch help CMD) on stdout with
// exit 0 and touches nothing; an unknown flag or an unexpected argument is
// exit 2.
func TestHelpAndArguments(t *testing.T) {
	none := map[string]string{} // no DATABASE_URL: a command that went on would fail
	for _, c := range commands() {
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}} {
			code, out, stderr, err := batchCmd(none, args...)
			if code != exitOK || !strings.HasPrefix(out, "usage: batch "+c.name) {
				t.Errorf("batch %s: exit %d (%v), stdout %q, stderr %q; want exit 0 and the usage", strings.Join(args, " "), code, err, out, stderr)
			}
		}
		if code, _, stderr, err := batchCmd(none, c.name, "--no-such-flag"); code != exitConfig || !strings.Contains(stderr, "usage: batch "+c.name) {
			t.Errorf("batch %s --no-such-flag: exit %d (%v), want 2 with the usage on stderr", c.name, code, err)
		}
	}
	for _, args := range [][]string{
		{"run", "extra"}, {"schedule", "now"}, {"migrate", "up"}, {"status", "all"}, {"config", "x"},
		{"demo", "x"}, {"sim", "x"}, {"show"}, {"show", "A", "B"}, {"retry"}, {"cancel"}, {"import"},
		{"run", "--phases", "poll", "extra"},
	} {
		code, _, _, err := batchCmd(none, args...)
		if code != exitConfig {
			t.Errorf("batch %s: exit %d (%v), want 2", strings.Join(args, " "), code, err)
		}
	}
	if code, out, _, _ := batchCmd(none, "--help"); code != exitOK || !strings.Contains(out, "retry") || !strings.Contains(out, "Exit codes") {
		t.Errorf("batch --help: exit %d, %q", code, out)
	}
	if code, _, _, _ := batchCmd(none); code != exitConfig {
		t.Errorf("batch with no command: exit %d, want 2", code)
	}
}

// The highest migration version this binary carries.
func latestVersion(t *testing.T, dialect string) (int, []string) {
	t.Helper()
	fsys, err := migrations.FS(dialect)
	mustOK(t, err)
	names, err := fs.Glob(fsys, "*.sql")
	mustOK(t, err)
	sort.Strings(names)
	var v int
	fmt.Sscanf(names[len(names)-1], "%05d", &v)
	return v, names
}

// batch migrate lists each version it applied, then says the schema is
// already at the latest one.
func TestMigrateSaysVersions(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			vars := map[string]string{"DATABASE_URL": d.url(t)}
			code, out, stderr, err := batchCmd(vars, "migrate")
			if code != exitOK {
				t.Fatalf("migrate: exit %d (%v)\n%s", code, err, stderr)
			}
			latest, names := latestVersion(t, d.name)
			for _, n := range names {
				if !regexp.MustCompile(`(?m)^applied ` + n[:5] + ` ` + regexp.QuoteMeta(n) + ` \(`).MatchString(out) {
					t.Errorf("migrate output lacks %s:\n%s", n, out)
				}
			}
			if !strings.Contains(out, fmt.Sprintf("schema at version %d", latest)) {
				t.Errorf("migrate output lacks the version:\n%s", out)
			}
			code, out, _, err = batchCmd(vars, "migrate")
			if want := fmt.Sprintf("already at version %d (%s): nothing to apply\n", latest, d.name); code != exitOK || out != want {
				t.Fatalf("migrate again: exit %d (%v), %q, want %q", code, err, out, want)
			}
		})
	}
}

const secretCode = "LPA:1$smdp.example.com$SECRET-MATCHING-ID"

func TestShowCommand(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			s, vars := opsStore(t, d.url(t))
			now := time.Now().UTC().Truncate(time.Second)
			runID := opsSeed(t, s, now.Add(-2*time.Hour), "SH-1", "SH-2", "SH-3")
			a := selectOnly(t, s, now.Add(-2*time.Hour), runID, "SH-1", "0411000001")
			mustOK(t, s.BeginOrder(ctx, &a, repo.LockGuard{}, false, now.Add(-2*time.Hour)))
			aid := a.ID
			mustOK(t, s.RecordCall(ctx, repo.Call{RunID: runID, ActivationID: &aid, Credential: "cred", Method: octane.MethodOrderCreate,
				SentAt: now.Add(-2 * time.Hour), Duration: 120 * time.Millisecond, Waited: 2 * time.Second, Outcome: "ok",
				MSN: "0411000001", OrderID: "ORD-77"}))
			mustOK(t, s.OrderAccepted(ctx, &a, "ORD-77", now.Add(-2*time.Hour), now.Add(-90*time.Minute)))
			polls, err := s.ClaimPolls(ctx, now.Add(-90*time.Minute), now, runID, "cred", 10, time.Hour)
			mustOK(t, err)
			mustOK(t, s.OrderCompleted(ctx, &polls[0], "svc-1", true, now.Add(-90*time.Minute)))
			qr, err := s.ClaimQR(ctx, now.Add(-90*time.Minute), runID, "cred", 1, time.Hour)
			mustOK(t, err)
			mustOK(t, s.RecordCall(ctx, repo.Call{RunID: runID, ActivationID: &aid, Credential: "cred", Method: octane.MethodGetEsimDetails,
				SentAt: now.Add(-80 * time.Minute), Duration: time.Second, Outcome: "ok", MSN: "0411000001",
				Message: "echoed " + secretCode}))
			mustOK(t, s.QRReady(ctx, &qr[0], secretCode, []byte("\x89PNG fake image"), "8961000000000000001", now.Add(-80*time.Minute)))
			// SH-2 failed on the same number once SH-1 let go of it: an
			// MSN can name two rows.
			b := selectOnly(t, s, now.Add(-time.Hour), runID, "SH-2", "0411000002")
			mustOK(t, s.Fail(ctx, &b, repo.StepOrder, "E12", "plan \x1b[31mnot allowed", now.Add(-time.Hour)))
			_, err = s.DB().ExecContext(ctx, s.DB().Rebind(`UPDATE activations SET msn = ? WHERE sales_ref = 'SH-2'`), "0411000001")
			mustOK(t, err)

			for _, ref := range []string{"SH-1", "ORD-77"} {
				code, out, stderr, err := batchCmd(vars, "show", ref)
				if code != exitOK {
					t.Fatalf("show %s: exit %d (%v)\n%s", ref, code, err, stderr)
				}
				for _, want := range []string{"SH-1  state qr_ready", "ORD-77", "0411000001", "activation code:  *** (stored; never shown)",
					"QR image:         *** (15 bytes stored; never shown)", "8961000000000000001", "customer:         Ann Lee"} {
					if !strings.Contains(out, want) {
						t.Errorf("show %s lacks %q:\n%s", ref, want, out)
					}
				}
				if strings.Contains(out, "SECRET-MATCHING-ID") || strings.Contains(out, "PNG fake") {
					t.Fatalf("show %s printed the activation code or the QR image:\n%s", ref, out)
				}
				// Events then calls, each oldest first.
				order := []string{"selectResource", "orderCreate   ", "orderQuery", "getEsimDetails", "Octane calls",
					"orderCreate      ok        120ms (waited 2000ms)", "getEsimDetails   ok", "echoed ***", "report"}
				at := -1
				for _, w := range order {
					i := strings.Index(out[max(at, 0):], w)
					if i < 0 {
						t.Fatalf("show %s: %q missing after offset %d:\n%s", ref, w, at, out)
					}
					at = max(at, 0) + i
				}
			}
			code, out, stderr, err := batchCmd(vars, "show", "--json", "SH-1")
			if code != exitOK {
				t.Fatalf("show --json: exit %d (%v)\n%s", code, err, stderr)
			}
			if strings.Contains(out, "SECRET-MATCHING-ID") {
				t.Fatal("show --json printed the activation code")
			}
			var doc showDoc
			mustOK(t, json.Unmarshal([]byte(out), &doc))
			if doc.Activation.SalesRef != "SH-1" || doc.Activation.State != "qr_ready" || doc.Activation.ActivationCode != "***" ||
				doc.Activation.QRImageBytes != 15 || doc.Activation.OrderID != "ORD-77" || doc.Activation.ServiceNumber != "svc-1" {
				t.Errorf("show --json activation: %+v", doc.Activation)
			}
			var steps []string
			for i, ev := range doc.Events {
				steps = append(steps, ev.Step+":"+ev.Outcome)
				if i > 0 && ev.At.Before(doc.Events[i-1].At) {
					t.Errorf("events not oldest first: %v", doc.Events)
				}
			}
			if got := strings.Join(steps, " "); got != "selectResource:ok orderCreate:intent orderCreate:accepted orderQuery:complete getEsimDetails:ok" {
				t.Errorf("events %s", got)
			}
			if len(doc.Calls) != 2 || doc.Calls[0].Method != octane.MethodOrderCreate || doc.Calls[0].WaitedMS != 2000 ||
				doc.Calls[1].Message != "echoed ***" {
				t.Errorf("calls %+v", doc.Calls)
			}

			// A sales file's control characters never reach the terminal raw.
			_, out, _, _ = batchCmd(vars, "show", "SH-2")
			if strings.Contains(out, "\x1b") || !strings.Contains(out, `"plan \x1b[31mnot allowed"`) {
				t.Errorf("show SH-2 wrote a raw escape or lost the message:\n%s", out)
			}
			// The MSN is on two rows: ambiguous; unknown: not found. Exit 1.
			code, _, stderr, _ = batchCmd(vars, "show", "0411000001")
			if code != exitFailed || !strings.Contains(stderr, "SH-1, SH-2") {
				t.Errorf("show of an MSN on two rows: exit %d, stderr %q", code, stderr)
			}
			code, _, stderr, _ = batchCmd(vars, "show", "NOPE")
			if code != exitFailed || !strings.Contains(stderr, "NOPE: not found") {
				t.Errorf("show NOPE: exit %d, stderr %q", code, stderr)
			}
		})
	}
}

func TestRetryCommand(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			s, vars := opsStore(t, d.url(t))
			now := time.Now().UTC()
			runID := opsSeed(t, s, now.Add(-3*time.Hour), "R-1", "R-2", "R-3", "R-4", "R-5")
			r1 := claimOnly(t, s, now.Add(-3*time.Hour), runID, "R-1")
			mustOK(t, s.Fail(ctx, &r1, repo.StepReserve, "E5", "no numbers for plan", now.Add(-3*time.Hour)))
			r2 := selectOnly(t, s, now.Add(-3*time.Hour), runID, "R-2", "0411000002")
			mustOK(t, s.BeginOrder(ctx, &r2, repo.LockGuard{}, false, now.Add(-3*time.Hour)))
			mustOK(t, s.Fail(ctx, &r2, repo.StepReconcile, "review", "number AVAILABLE after orderCreate: check Octane", now.Add(-3*time.Hour)))
			r3 := selectOnly(t, s, now.Add(-time.Hour), runID, "R-3", "0411000003")
			mustOK(t, s.BeginOrder(ctx, &r3, repo.LockGuard{}, false, now.Add(-time.Hour)))
			mustOK(t, s.OrderAccepted(ctx, &r3, "ORD-3", now.Add(-time.Hour), now.Add(-time.Hour)))
			polls, err := s.ClaimPolls(ctx, now.Add(-time.Hour), now, runID, "cred", 10, time.Hour)
			mustOK(t, err)
			mustOK(t, s.Fail(ctx, &polls[0], repo.StepPoll, "REJECTED", "order REJECTED", now.Add(-time.Hour)))
			r5 := claimOnly(t, s, now.Add(-time.Hour), runID, "R-5")
			mustOK(t, s.Fail(ctx, &r5, repo.StepCustomer, "E9", "bad address", now.Add(-time.Hour)))

			expect := func(args []string, wantCode int, wants ...string) string {
				t.Helper()
				code, out, stderr, err := batchCmd(vars, args...)
				if code != wantCode {
					t.Fatalf("batch %s: exit %d (%v), want %d\n%s%s", strings.Join(args, " "), code, err, wantCode, out, stderr)
				}
				for _, w := range wants {
					if !strings.Contains(out+stderr, w) {
						t.Errorf("batch %s: output lacks %q:\n%s%s", strings.Join(args, " "), w, out, stderr)
					}
				}
				return out
			}
			// Bad usage: exit 2, nothing changed.
			for _, args := range [][]string{
				{"retry", "--failed", "R-1"}, {"retry", "--step", "reconcile", "R-1"}, {"retry", "--force", "R-2"},
				{"retry", "--force", "--failed", "--note", "x"}, {"retry", "--failed", "--step", "launch"},
				{"retry", "--failed", "--since", "last tuesday"},
			} {
				expect(args, exitConfig)
			}
			noUser := map[string]string{"DATABASE_URL": vars["DATABASE_URL"]}
			if code, _, _, err := batchCmd(noUser, "retry", "R-1"); code != exitConfig || !strings.Contains(err.Error(), "--by") {
				t.Errorf("retry without a user: exit %d (%v), want 2 asking for --by", code, err)
			}
			expect([]string{"retry", "--dry-run", "R-1", "R-2"}, exitFailed, "R-1: would retry", "R-2: refused")
			if state(t, s, "R-1").State != repo.StateFailed {
				t.Fatal("--dry-run retried")
			}

			out := expect([]string{"retry", "R-1", "R-2", "R-4", "NOPE", "--note", "numbers added"}, exitFailed,
				"R-1: retried (was failed at reserveResources E5): pending again",
				"R-2: refused: failed at reconcile: an order may exist (number AVAILABLE after orderCreate: check Octane)",
				"batch retry --force --note", "R-4: refused: is pending, not failed", "NOPE: not found", "retried 1, not done 3")
			_ = out
			if a := state(t, s, "R-1"); a.State != repo.StatePending || a.Attempts != 0 || a.Retries != 1 {
				t.Errorf("R-1 after retry: %s attempts %d retries %d", a.State, a.Attempts, a.Retries)
			}
			if a := state(t, s, "R-2"); a.State != repo.StateFailed || a.Retries != 0 {
				t.Errorf("R-2 refused but now %s", a.State)
			}
			evs, err := s.Events(ctx, r1.ID)
			mustOK(t, err)
			if last := evs[len(evs)-1]; last.Step != repo.StepRetry || last.Actor != "ops" || last.Message != "numbers added" {
				t.Errorf("retry event %+v", last)
			}

			expect([]string{"retry", "--force", "--by", "bob", "--note", "checked Octane: no order for R-2", "R-2"}, exitOK, "R-2: retried")
			evs, err = s.Events(ctx, r2.ID)
			mustOK(t, err)
			if last := evs[len(evs)-1]; last.Outcome != "forced" || last.Actor != "bob" || !strings.Contains(last.Message, "checked Octane") {
				t.Errorf("forced retry event %+v", last)
			}

			// --failed with filters: the rejected order only, then the rest.
			expect([]string{"retry", "--failed", "--since", "2099-01-01"}, exitOK, "no failed activation matches")
			expect([]string{"retry", "--failed", "--step", "orderQuery", "--since", "2h"}, exitOK, "R-3: retried (was failed at orderQuery REJECTED)", "retried 1, not done 0")
			if a := state(t, s, "R-3"); a.State != repo.StatePending || a.OrderID != "" || a.MSN != "" {
				t.Errorf("R-3 after retry: %+v", a)
			}
			if state(t, s, "R-5").State != repo.StateFailed {
				t.Error("--step orderQuery retried an addCustomer failure")
			}
			expect([]string{"retry", "--failed"}, exitOK, "R-5: retried", "retried 1, not done 0")
		})
	}
}

// opsSim serves a simulator for the store's credential and returns the
// environment of `batch run` against it.
func opsSim(t *testing.T, vars map[string]string) map[string]string {
	t.Helper()
	cred := "cred" // the credential the rows of opsRows are claimed and reserved under
	sim := octanetest.New(octanetest.Config{Username: cred, Password: "pw", OrderLatency: time.Minute})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	out := map[string]string{"OCTANE_SOAP_URL": srv.URL + "/tiab", "OCTANE_REST_URL": srv.URL + "/tiab/api",
		"OCTANE_USERNAME": cred, "OCTANE_PASSWORD": "pw", "OCTANE_GROUP_NO": "3", "REPORT_DIR": t.TempDir()}
	for k, v := range vars {
		out[k] = v
	}
	return out
}

func workbooks(t *testing.T, dir string) []string {
	t.Helper()
	got, err := filepath.Glob(filepath.Join(dir, "*.xlsx"))
	mustOK(t, err)
	sort.Strings(got)
	return got
}

func TestCancelCommand(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			s, dbVars := opsStore(t, d.url(t))
			vars := opsSim(t, dbVars)
			now := time.Now().UTC()
			runID := opsSeed(t, s, now.Add(-time.Hour), "C-1", "C-2", "C-3", "C-4", "C-5")
			sel := selectOnly(t, s, now.Add(-time.Hour), runID, "C-2", "0410000002")
			mustOK(t, s.Unclaim(ctx, &sel))
			sub := selectOnly(t, s, now.Add(-time.Hour), runID, "C-3", "0411000003")
			mustOK(t, s.BeginOrder(ctx, &sub, repo.LockGuard{}, false, now.Add(-time.Hour)))
			mustOK(t, s.OrderAccepted(ctx, &sub, "ORD-C3", now.Add(-time.Hour), now.Add(time.Hour)))
			mustOK(t, s.FinishRun(ctx, runID, now.Add(-30*time.Minute), "ok", nil, ""))
			// C-4 is being worked on by a live run right now.
			live, err := s.StartRun(ctx, now, "cred", []string{"submit"}, false)
			mustOK(t, err)
			claimOnly(t, s, now, live, "C-4")

			if code, _, _, _ := batchCmd(vars, "cancel"); code != exitConfig {
				t.Errorf("cancel with no REF: exit %d, want 2", code)
			}
			code, out, stderr, err := batchCmd(vars, "cancel", "--note", "customer withdrew", "C-1", "0410000002", "C-3", "C-4")
			if code != exitFailed {
				t.Fatalf("cancel: exit %d (%v), want 1 (two refused)\n%s%s", code, err, out, stderr)
			}
			for _, want := range []string{
				"C-1: cancelled (was pending)",
				"C-2: cancelled (was selected on number 0410000002, which the next release phase gives back)",
				"C-3: refused: order ORD-C3 was accepted (state submitted)",
				"C-4: refused: a run " + fmt.Sprint(live) + " is working on it",
				"cancelled 2, not done 2",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("cancel output lacks %q:\n%s", want, out)
				}
			}
			for ref, want := range map[string]repo.State{"C-1": repo.StateCancelled, "C-2": repo.StateCancelled,
				"C-3": repo.StateSubmitted, "C-4": repo.StatePending, "C-5": repo.StatePending} {
				if got := state(t, s, ref).State; got != want {
					t.Errorf("%s is %s, want %s", ref, got, want)
				}
			}
			if c4 := state(t, s, "C-4"); c4.ClaimToken == "" {
				t.Error("the refused cancel took C-4's claim")
			}
			mustOK(t, s.FinishRun(ctx, live, now, "ok", nil, ""))

			// The next pass gives C-2's number back and reports both
			// cancelled rows, once.
			code, out, stderr, err = batchCmd(vars, "run", "--phases", "release,report")
			if code != exitOK {
				t.Fatalf("run: exit %d (%v)\n%s%s", code, err, out, stderr)
			}
			var resState string
			mustOK(t, s.DB().GetContext(ctx, &resState, s.DB().Rebind(`SELECT state FROM reservations WHERE msn = ?`), "0410000002"))
			if resState != repo.ReservationReleased {
				t.Errorf("C-2's number is %s after the release phase, want released", resState)
			}
			if state(t, s, "C-2").State != repo.StateCancelled {
				t.Error("the release phase moved the cancelled row")
			}
			books := workbooks(t, vars["REPORT_DIR"])
			if len(books) != 1 {
				t.Fatalf("workbooks %v, want 1", books)
			}
			f, err := excelize.OpenFile(books[0])
			mustOK(t, err)
			defer f.Close()
			rows, err := f.GetRows("Failures")
			mustOK(t, err)
			var cancelled []string
			for _, r := range rows[1:] {
				if len(r) > 6 && r[4] == "cancel" {
					cancelled = append(cancelled, r[0]+"|"+r[6])
				}
			}
			if got := strings.Join(cancelled, ","); got != "C-1|cancelled by ops: customer withdrew,C-2|cancelled by ops: customer withdrew" {
				t.Errorf("Failures sheet cancel rows: %q", got)
			}
			summary, err := f.GetRows("Summary")
			mustOK(t, err)
			found := false
			for _, r := range summary {
				if len(r) >= 3 && r[0] == "Cancelled" {
					found = true
					if r[1] != "2" || r[2] != "2" {
						t.Errorf("Summary Cancelled row %v, want 2 this report, 2 to date", r)
					}
				}
			}
			if !found {
				t.Errorf("Summary has no Cancelled row: %v", summary)
			}
			code, _, stderr, err = batchCmd(vars, "run", "--phases", "report")
			if code != exitOK {
				t.Fatalf("second report: exit %d (%v)\n%s", code, err, stderr)
			}
			if books := workbooks(t, vars["REPORT_DIR"]); len(books) != 1 {
				t.Errorf("a second report was made: %v (cancelled rows are reported once)", books)
			}
		})
	}
}

// batch cancel racing a claim (another process's): each row is won by one
// side only.
func TestCancelCommandRacesClaim(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			s, vars := opsStore(t, d.url(t))
			now := time.Now().UTC()
			refs := make([]string, 30)
			for i := range refs {
				refs[i] = fmt.Sprintf("CR-%02d", i+1)
			}
			runID := opsSeed(t, s, now.Add(-time.Minute), refs...)
			claimed := map[int64]bool{}
			var wg sync.WaitGroup
			var out string
			wg.Add(2)
			go func() {
				defer wg.Done()
				rev := append([]string(nil), refs...)
				sort.Sort(sort.Reverse(sort.StringSlice(rev)))
				_, out, _, _ = batchCmd(vars, append([]string{"cancel"}, rev...)...)
			}()
			go func() {
				defer wg.Done()
				// Start once the command is cancelling (from the newest
				// row; claims take the oldest): they meet in the middle.
				for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
					var n int
					if err := s.DB().GetContext(ctx, &n, `SELECT COUNT(*) FROM activations WHERE state = 'cancelled'`); err != nil {
						t.Error(err)
						return
					}
					if n > 0 {
						break
					}
				}
				for range refs {
					got, err := s.ClaimPending(ctx, time.Now().UTC(), runID, "cred", 1, time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					claimed[got[0].ID] = true
				}
			}()
			wg.Wait()
			t.Logf("%d of %d claimed, the rest cancelled", len(claimed), len(refs))
			for _, ref := range refs {
				a := state(t, s, ref)
				said := regexp.MustCompile(`(?m)^` + ref + `: (cancelled|refused)`).FindStringSubmatch(out)
				switch {
				case a.State == repo.StateCancelled && (claimed[a.ID] || said == nil || said[1] != "cancelled"):
					t.Errorf("%s cancelled, claimed %v, said %v", ref, claimed[a.ID], said)
				case a.State == repo.StatePending && (!claimed[a.ID] || said == nil || said[1] != "refused"):
					t.Errorf("%s pending, claimed %v, said %v", ref, claimed[a.ID], said)
				case a.State != repo.StateCancelled && a.State != repo.StatePending:
					t.Errorf("%s is %s", ref, a.State)
				}
			}
		})
	}
}

func TestStatusJSON(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			s, vars := opsStore(t, d.url(t))
			now := time.Now().UTC()
			seedStatus(t, s, now)
			vars["OCTANE_USERNAME"] = "cred-a"
			// cred-a: an older failed run, then one that completed; cred-b:
			// one running, cred-c: one that died (lease passed).
			old, err := s.StartRun(ctx, now.Add(-3*time.Hour), "cred-a", []string{"submit"}, false)
			mustOK(t, err)
			mustOK(t, s.FinishRun(ctx, old, now.Add(-3*time.Hour), "failed", nil, "octane unreachable"))
			okRun, err := s.StartRun(ctx, now.Add(-time.Hour), "cred-a", []string{"import", "submit"}, false)
			mustOK(t, err)
			mustOK(t, s.FinishRun(ctx, okRun, now.Add(-time.Hour+time.Minute), "ok", map[string]int{"submit.ordered": 4}, ""))
			running, err := s.StartRun(ctx, now.Add(-time.Minute), "cred-b", []string{"poll"}, false)
			mustOK(t, err)
			mustOK(t, s.RenewRun(ctx, running, now.Add(time.Hour)))
			died, err := s.StartRun(ctx, now.Add(-2*time.Hour), "cred-c", []string{"poll"}, false)
			mustOK(t, err)
			mustOK(t, s.RenewRun(ctx, died, now.Add(-time.Hour)))
			mustOK(t, s.RecordCall(ctx, repo.Call{RunID: okRun, Credential: "cred-a", Method: octane.MethodOrderCreate,
				SentAt: time.Now().UTC().Add(-10 * time.Second), Outcome: "ok"}))

			code, out, stderr, err := batchCmd(vars, "status", "--json")
			if code != exitOK {
				t.Fatalf("status --json: exit %d (%v)\n%s", code, err, stderr)
			}
			var doc statusDoc
			mustOK(t, json.Unmarshal([]byte(out), &doc))
			want := map[repo.State]int{"pending": 3, "selected": 1, "ordering": 1, "submitted": 2, "completed": 1,
				"qr_ready": 1, "provisioned": 1, "failed": 1, "cancelled": 0}
			if fmt.Sprint(doc.Counts) != fmt.Sprint(want) {
				t.Errorf("counts %v, want %v", doc.Counts, want)
			}
			if doc.PollsDue != 1 || doc.ReleasesDue != 1 || doc.OldestPending == nil || doc.NextPoll == nil || doc.NextRelease == nil {
				t.Errorf("due work: %+v", doc)
			}
			if doc.Budget == nil || doc.Budget.Credential != "cred-a" || len(doc.Budget.Methods) != len(octane.DefaultLimits()) {
				t.Fatalf("budget %+v", doc.Budget)
			}
			for _, m := range doc.Budget.Methods {
				l := octane.DefaultLimits()[m.Method]
				if m.HourLimit != l.PerHour || m.MinuteLimit != l.PerMinute {
					t.Errorf("budget %s: %+v, limits %+v", m.Method, m, l)
				}
				if used := map[bool]int{true: 1, false: 0}[m.Method == octane.MethodOrderCreate]; m.HourUsed != used || m.MinuteUsed != used {
					t.Errorf("budget %s used %d/%d, want %d", m.Method, m.HourUsed, m.MinuteUsed, used)
				}
			}
			runs := map[string]runDoc{}
			for _, r := range doc.LastRuns {
				runs[r.Credential] = r
			}
			exit := func(r runDoc) string {
				if r.ExitCode == nil {
					return "null"
				}
				return fmt.Sprint(*r.ExitCode)
			}
			for cred, w := range map[string]struct {
				id            int64
				outcome, exit string
			}{"cred": {0, "running", "null"}, "cred-a": {okRun, "ok", "0"}, "cred-b": {running, "running", "null"}, "cred-c": {died, "died", "null"}} {
				r, ok := runs[cred]
				if !ok || r.Outcome != w.outcome || exit(r) != w.exit || (w.id != 0 && r.RunID != w.id) {
					t.Errorf("last run of %s: %+v (exit %s), want run %d %s exit %s", cred, r, exit(r), w.id, w.outcome, w.exit)
				}
			}
			if r := runs["cred-a"]; r.Counts["submit.ordered"] != 4 || r.FinishedAt == nil || r.Phases != "import,submit" {
				t.Errorf("cred-a's last run %+v", r)
			}

			// The text shows the same, and the budget table's labels.
			code, text, _, _ := batchCmd(vars, "status")
			if code != exitOK {
				t.Fatalf("status: exit %d", code)
			}
			for _, w := range []string{"cancelled    0", "method", "hour used/limit", "minute used/limit", "next free slot",
				"last run of each credential:", fmt.Sprintf("cred-a  run %d", okRun), "outcome ok  exit 0", "counts: submit.ordered 4",
				"outcome died  exit -", "outcome running  exit -"} {
				if !strings.Contains(text, w) {
					t.Errorf("status lacks %q:\n%s", w, text)
				}
			}
			for m := range octane.DefaultLimits() {
				if !regexp.MustCompile(`(?m)^  ` + m + ` +\d+/\d+ +\d+/\d+ `).MatchString(text) {
					t.Errorf("budget table lacks a row for %s:\n%s", m, text)
				}
			}
		})
	}
}

func TestConfigCommand(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "c.db")
	base := map[string]string{
		"DATABASE_URL": "postgres://app:hunter2@db.internal/esim", "OCTANE_SOAP_URL": "https://octane.example/tiab",
		"OCTANE_USERNAME": "wholesale", "OCTANE_PASSWORD": "s3cret-octane", "SMTP_PASSWORD": "mail-pw-9",
		"REPORT_PASSWORD": "book-pw-7", "BATCH_SIZE": "20",
	}
	code, out, stderr, err := batchCmd(base, "config")
	if code != exitOK {
		t.Fatalf("config: exit %d (%v)\n%s", code, err, stderr)
	}
	for _, secret := range []string{"hunter2", "s3cret-octane", "mail-pw-9", "book-pw-7"} {
		if strings.Contains(out+stderr, secret) {
			t.Fatalf("config printed the secret %q:\n%s", secret, out)
		}
	}
	for _, re := range []string{
		`(?m)^  DATABASE_URL +set +postgres://\*\*\*@db.internal/esim$`,
		`(?m)^  OCTANE_PASSWORD +set +\*\*\*$`,
		`(?m)^  SMTP_PASSWORD +set +\*\*\*$`,
		`(?m)^  BATCH_SIZE +set +20$`,
		`(?m)^  POLL_INTERVAL +default +30m0s$`,
		`(?m)^  IMPORT_DIR +unset +-$`,
		`(?m)^  run +OCTANE_REST_URL: required; OCTANE_GROUP_NO: 0 must be a positive wholesaler group number$`,
		`(?m)^  status +ready$`,
		`(?m)^  demo +ready$`,
		`(?m)^wrong values:\n  none$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("config output does not match %s:\n%s", re, out)
		}
	}
	code, out, _, _ = batchCmd(map[string]string{"DATABASE_URL": dbPath}, "config", "--json")
	var doc configDoc
	if code != exitOK || json.Unmarshal([]byte(out), &doc) != nil {
		t.Fatalf("config --json: exit %d, %q", code, out)
	}
	if len(doc.Missing["migrate"]) != 0 || len(doc.Missing["run"]) == 0 || len(doc.Problems) != 0 || len(doc.Variables) < 20 {
		t.Errorf("config --json: %+v", doc)
	}
	code, out, _, _ = batchCmd(map[string]string{}, "config")
	if code != exitOK || !regexp.MustCompile(`(?m)^  retry +DATABASE_URL: required$`).MatchString(out) {
		t.Errorf("config without DATABASE_URL: exit %d\n%s", code, out)
	}

	// A wrong value: listed, exit 2; one that does not decode: exit 2 naming it.
	bad := map[string]string{"POLL_INTERVAL": "5m", "OCTANE_PASSWORD": "s3cret-octane"}
	code, out, _, _ = batchCmd(bad, "config")
	if code != exitConfig || !strings.Contains(out, "POLL_INTERVAL: 5m0s is below the 30m minimum") || strings.Contains(out, "s3cret") {
		t.Errorf("config with a wrong value: exit %d\n%s", code, out)
	}
	code, _, _, err = batchCmd(map[string]string{"BATCH_SIZE": "many"}, "config")
	if code != exitConfig || err == nil || !strings.Contains(err.Error(), "BATCH_SIZE") {
		t.Errorf("config with BATCH_SIZE=many: exit %d (%v)", code, err)
	}
	_ = os.Remove(dbPath)
}
