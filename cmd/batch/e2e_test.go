package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
	"github.com/esimbatch/esimbatch/reports"
	"github.com/esimbatch/esimbatch/reports/smtptest"
)

// simLedgerEntry is one row of GET /_sim/ledger.
type simLedgerEntry struct {
	At         time.Time `json:"at"`
	Method     string    `json:"method"`
	Outcome    string    `json:"outcome"`
	MSN        string    `json:"msn"`
	OrderID    string    `json:"order_id"`
	Credential string    `json:"credential"`
	Code       string    `json:"code"`
}

// startBatchSim runs `batch sim` in-process on a free loopback port with the
// given credential and returns its base URL (http://127.0.0.1:PORT). The
// simulator stops when the test ends.
func startBatchSim(t *testing.T, user, password string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lines := make(chan string, 1)
	out := &lineWriter{line: lines}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"sim", "--addr", "127.0.0.1:0"}, args...),
			fakeEnv(map[string]string{"OCTANE_USERNAME": user, "OCTANE_PASSWORD": password}, out))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("batch sim: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("batch sim did not stop")
		}
	})
	select {
	case line := <-lines:
		m := regexp.MustCompile(`OCTANE_SOAP_URL=(\S+)/tiab OCTANE_REST_URL=(\S+)/tiab/api`).FindStringSubmatch(line)
		if m == nil || m[1] != m[2] {
			t.Fatalf("batch sim printed %q", line)
		}
		return m[1]
	case err := <-done:
		t.Fatalf("batch sim ended early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("batch sim printed no URL")
	}
	return ""
}

func simLedger(t *testing.T, base, credential string) []simLedgerEntry {
	t.Helper()
	resp, err := http.Get(base + "/_sim/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all []simLedgerEntry
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatalf("ledger: %v", err)
	}
	var out []simLedgerEntry
	for _, e := range all {
		if e.Credential == credential {
			out = append(out, e)
		}
	}
	return out
}

func simAdvance(t *testing.T, base string, d time.Duration) {
	t.Helper()
	resp, err := http.Post(base+"/_sim/clock", "application/json", strings.NewReader(`{"advance":"`+d.String()+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("advance the sim clock: HTTP %d", resp.StatusCode)
	}
}

// batchCmd runs one batch command in-process and returns its exit code and
// output.
func batchCmd(vars map[string]string, args ...string) (int, string, string, error) {
	e, out, errb := testEnv(vars)
	err := run(context.Background(), args, e)
	return exitCode(err), out.String(), errb.String(), err
}

var stateLine = regexp.MustCompile(`(?m)^  ([a-z_]+) +(\d+)$`)

// statusCounts runs `batch status` and reads its counts by state.
func statusCounts(t *testing.T, vars map[string]string) map[string]int {
	t.Helper()
	code, out, stderr, err := batchCmd(vars, "status")
	if code != exitOK {
		t.Fatalf("batch status: exit %d (%v)\n%s", code, err, stderr)
	}
	counts := map[string]int{}
	for _, m := range stateLine.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[2])
		counts[m[1]] = n
	}
	if len(counts) != len(repo.States()) {
		t.Fatalf("batch status lists %d states, want %d:\n%s", len(counts), len(repo.States()), out)
	}
	return counts
}

// rowSnapshot is what "no row changed" compares.
type rowSnapshot struct {
	State                  repo.State
	MSN, OrderID, Claim    string
	CustNo                 int64
	Attempts               int
	NextAttempt            time.Time
	ErrStep, ErrCode, ErrM string
}

func snapshotRows(t *testing.T, store *repo.Store, refs []string) map[string]rowSnapshot {
	t.Helper()
	out := map[string]rowSnapshot{}
	for _, ref := range refs {
		a, err := store.ActivationByRef(context.Background(), ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		s := rowSnapshot{State: a.State, MSN: a.MSN, OrderID: a.OrderID, Claim: a.ClaimToken, Attempts: a.Attempts,
			NextAttempt: a.NextAttemptAt.UTC(), ErrStep: a.LastErrorStep, ErrCode: a.LastErrorCode, ErrM: a.LastErrorMessage}
		if a.CustNo != nil {
			s.CustNo = *a.CustNo
		}
		out[ref] = s
	}
	return out
}

var mutating = map[string]bool{"addCustomer": true, "reserveResources": true, "selectResource": true,
	"unreserveResource": true, "unreserveResources": true, "orderCreate": true}

// TestEndToEndAgainstBatchSim drives the commands as a CronJob would: `batch
// sim` as Octane, a fresh PostgreSQL schema, `batch migrate`, `batch import`,
// an IMPORT_DIR, a real SMTP server, then `batch run` again and again while
// the simulator's clock and BATCH_TIME_OFFSET move 31 minutes between runs.
func TestEndToEndAgainstBatchSim(t *testing.T) {
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	cred := "e2e-" + hex.EncodeToString(rb[:])
	base := startBatchSim(t, cred, "s3cret-pw", "--order-latency", "45m", "--minute-window", "10s", "--hour-window", "1m")
	mail := smtptest.Start(t)
	dbURL := repotest.PostgresURL(t)
	inbox, reportDir := t.TempDir(), t.TempDir()
	vars := map[string]string{
		"DATABASE_URL": dbURL, "OCTANE_SOAP_URL": base + "/tiab", "OCTANE_REST_URL": base + "/tiab/api",
		"OCTANE_USERNAME": cred, "OCTANE_PASSWORD": "s3cret-pw", "OCTANE_GROUP_NO": "7", "LOG_FORMAT": "text",
		"IMPORT_DIR": inbox, "REPORT_DIR": reportDir,
		"SMTP_HOST": mail.Host, "SMTP_PORT": strconv.Itoa(mail.Port), "SMTP_FROM": "esimbatch@example.com",
		"REPORT_TO": "finance@example.com,ops@example.com",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range vars {
			m[a] = b
		}
		m[k] = v
		return m
	}

	// An unmigrated database is bad configuration: exit 2, saying what to do.
	for _, cmd := range []string{"run", "status"} {
		code, _, _, err := batchCmd(vars, cmd)
		if code != exitConfig || err == nil || !strings.Contains(err.Error(), "batch migrate") {
			t.Fatalf("batch %s on an unmigrated database: exit %d (%v), want 2 saying to run `batch migrate`", cmd, code, err)
		}
	}
	if n := len(simLedger(t, base, cred)); n != 0 {
		t.Fatalf("%d Octane calls before the schema existed", n)
	}
	if code, out, stderr, err := batchCmd(vars, "migrate"); code != exitOK {
		t.Fatalf("batch migrate: exit %d (%v)\n%s%s", code, err, out, stderr)
	}

	day1 := filepath.Join("testdata", "e2e", "day1.csv")
	code, out, stderr, err := batchCmd(vars, "import", day1)
	if code != exitOK || !strings.Contains(out, day1+": accepted 5, duplicate 0, rejected 1, blank 0") {
		t.Fatalf("batch import: exit %d (%v)\n%s%s", code, err, out, stderr)
	}
	store, err := repo.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	day1Refs := []string{"E2E-001", "E2E-002", "E2E-003", "E2E-004", "E2E-005"}

	// Bad credentials: exit 1, no row changed, the password nowhere in the log.
	before := snapshotRows(t, store, day1Refs)
	code, _, stderr, err = batchCmd(with("OCTANE_PASSWORD", "wrong-pw"), "run")
	if code != exitFailed {
		t.Fatalf("batch run with a bad password: exit %d (%v), want 1\n%s", code, err, stderr)
	}
	if strings.Contains(stderr, "wrong-pw") || strings.Contains(stderr, "s3cret-pw") {
		t.Error("a password appears in the log")
	}
	if after := snapshotRows(t, store, day1Refs); !equalSnapshots(before, after) {
		t.Errorf("rows changed by a refused run:\nbefore %+v\nafter  %+v", before, after)
	}
	refused := simLedger(t, base, cred)
	if len(refused) == 0 || refused[len(refused)-1].Outcome != "fault" {
		t.Fatalf("the refused run's calls: %+v, want it stopped on a refused login", refused)
	}
	for _, e := range refused {
		if e.Outcome == "ok" {
			t.Errorf("a call with a bad password succeeded: %+v", e)
		}
	}

	// The second day's file waits in IMPORT_DIR for the run's import phase.
	day2, err := os.ReadFile(filepath.Join("testdata", "e2e", "day2.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inbox, "day2.csv"), day2, 0o644); err != nil {
		t.Fatal(err)
	}

	// A dry run reads and logs, and changes nothing: no mutating call, the
	// rows still pending, the inbox file where it was.
	mark := len(simLedger(t, base, cred))
	code, out, stderr, err = batchCmd(vars, "run", "--dry-run")
	if code != exitOK || !strings.Contains(out, "dry run") {
		t.Fatalf("batch run --dry-run: exit %d (%v)\n%s%s", code, err, out, stderr)
	}
	for _, e := range simLedger(t, base, cred)[mark:] {
		if mutating[e.Method] {
			t.Errorf("dry run called %s", e.Method)
		}
	}
	if after := snapshotRows(t, store, day1Refs); !equalSnapshots(before, after) {
		t.Errorf("rows changed by a dry run")
	}
	if _, err := os.Stat(filepath.Join(inbox, "day2.csv")); err != nil {
		t.Errorf("dry run moved the inbox file: %v", err)
	}
	if c := statusCounts(t, vars); c["pending"] != 5 {
		t.Fatalf("after the dry run: %v, want 5 pending", c)
	}

	// Passes 31 minutes apart on both clocks until nothing is open.
	var offset time.Duration
	var counts map[string]int
	passes := 0
	for ; passes < 6; passes++ {
		// Each slot fires twice, as a CronJob sometimes does: the second run
		// finds nothing due (no poll within 30 minutes, no second order).
		v := with("BATCH_TIME_OFFSET", offset.String())
		for range 2 {
			code, out, stderr, err := batchCmd(v, "run")
			if code != exitOK {
				t.Fatalf("pass %d: exit %d (%v)\n%s%s", passes+1, code, err, out, stderr)
			}
		}
		counts = statusCounts(t, v)
		open := 0
		for _, s := range repo.States() {
			if !s.Terminal() {
				open += counts[string(s)]
			}
		}
		if open == 0 {
			break
		}
		simAdvance(t, base, 31*time.Minute)
		offset += 31 * time.Minute
	}
	if counts["qr_ready"] != 6 || counts["failed"] != 1 {
		t.Fatalf("after %d passes: %v, want 6 qr_ready and 1 failed", passes+1, counts)
	}
	if _, err := os.Stat(filepath.Join(inbox, "processed", "day2.csv")); err != nil {
		t.Errorf("the inbox file was not moved to processed/: %v", err)
	}

	// The ledger: one accepted order per activation, each on its own number,
	// no order queried twice within 30 minutes, one QR fetch per order.
	ledger := simLedger(t, base, cred)
	orders, msns := 0, map[string]bool{}
	queries := map[string][]time.Time{}
	qr := 0
	for _, e := range ledger {
		switch {
		case e.Method == "orderCreate" && e.Outcome == "ok":
			orders++
			if msns[e.MSN] {
				t.Errorf("two orders for MSN %s", e.MSN)
			}
			msns[e.MSN] = true
		case e.Method == "orderQuery":
			queries[e.OrderID] = append(queries[e.OrderID], e.At)
		case e.Method == "getEsimDetails" && e.Outcome == "ok":
			qr++
		}
	}
	polls := 0
	for _, ts := range queries {
		polls += len(ts)
	}
	if polls < 2*len(queries) {
		t.Errorf("%d polls for %d orders: the order latency should need two each", polls, len(queries))
	}
	if orders != 6 || len(queries) != 6 || qr != 6 {
		t.Errorf("ledger: %d orders, %d orders queried, %d QR fetches; want 6 each", orders, len(queries), qr)
	}
	for id, ts := range queries {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		for i := 1; i < len(ts); i++ {
			if gap := ts[i].Sub(ts[i-1]); gap < 30*time.Minute {
				t.Errorf("order %s queried twice %s apart", id, gap)
			}
		}
	}

	// Every terminal row and the one rejected sales row in exactly one
	// delivered email, each workbook also kept under REPORT_DIR.
	msgs := mail.Messages()
	if len(msgs) == 0 {
		t.Fatal("no report email arrived")
	}
	inReports := map[string]int{}
	rejects := 0
	for _, m := range msgs {
		p, err := smtptest.Parse(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.To) != 2 || len(p.Attachments) != 1 {
			t.Fatalf("email to %v with %d attachments", m.To, len(p.Attachments))
		}
		att := p.Attachments[0]
		kept, err := os.ReadFile(filepath.Join(reportDir, att.FileName))
		if err != nil || !bytes.Equal(kept, att.Data) {
			t.Errorf("%s: not kept under REPORT_DIR as mailed (%v)", att.FileName, err)
		}
		f, err := excelize.OpenReader(bytes.NewReader(att.Data))
		if err != nil {
			t.Fatalf("%s: %v", att.FileName, err)
		}
		for _, sheet := range []string{reports.SheetQR, reports.SheetFailure} {
			rows, err := f.GetRows(sheet)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows[1:] {
				inReports[r[0]]++
			}
		}
		rj, err := f.GetRows(reports.SheetRejects)
		if err != nil {
			t.Fatal(err)
		}
		rejects += len(rj) - 1
		f.Close()
	}
	for _, ref := range []string{"E2E-001", "E2E-002", "E2E-003", "E2E-004", "E2E-005", "E2E-007", "E2E-008"} {
		if inReports[ref] != 1 {
			t.Errorf("%s is in %d delivered reports, want 1", ref, inReports[ref])
		}
	}
	if len(inReports) != 7 || rejects != 1 {
		t.Errorf("reports hold %d activations and %d rejects, want 7 and 1: %v", len(inReports), rejects, inReports)
	}

	// One more run with nothing left: no Octane write, no email.
	mark, sent := len(ledger), len(msgs)
	if code, _, stderr, err := batchCmd(with("BATCH_TIME_OFFSET", offset.String()), "run"); code != exitOK {
		t.Fatalf("idle pass: exit %d (%v)\n%s", code, err, stderr)
	}
	for _, e := range simLedger(t, base, cred)[mark:] {
		if mutating[e.Method] || e.Method == "orderQuery" {
			t.Errorf("idle pass called %s", e.Method)
		}
	}
	if n := len(mail.Messages()); n != sent {
		t.Errorf("idle pass sent %d emails", n-sent)
	}
	t.Logf("%d passes, %d Octane calls, %d emails", passes+1, len(ledger), len(msgs))
}

func equalSnapshots(a, b map[string]rowSnapshot) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
