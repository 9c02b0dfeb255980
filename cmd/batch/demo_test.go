package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/reports"
	"github.com/esimbatch/esimbatch/reports/smtptest"
)

// TestDemo runs `batch demo --out DIR` as a user would and reads back what it
// printed: the counts, the workbook (cell by cell) and the .eml (MIME).
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	e, out, stderr := testEnv(map[string]string{})
	// Today (UTC) as the demo sees it: the day it started or, past
	// midnight, the next.
	today := map[string]bool{time.Now().UTC().Format("2006-01-02"): true}
	if err := run(context.Background(), []string{"demo", "--out", dir}, e); err != nil {
		t.Fatalf("demo: %v\n%s", err, stderr)
	}
	today[time.Now().UTC().Format("2006-01-02")] = true
	text := out.String()
	for _, want := range []string{
		"accepted 50, duplicate 0, rejected 2, blank 0",
		"qr_ready     45", "provisioned  1", "failed       4",
		"reported: 50 activations and 2 rejected rows in 1 report(s)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	book := printedPath(t, text, `(?m)^workbook: (.+\.xlsx)$`)
	eml := printedPath(t, text, `(?m)^email:\s+(.+\.eml)$`)
	for _, p := range []string{book, eml} {
		if filepath.Dir(p) != dir {
			t.Errorf("%s is not in the output folder %s", p, dir)
		}
	}

	// The database the demo left behind is the reference for the workbook.
	store, err := repo.Open(context.Background(), filepath.Join(dir, "esimbatch.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	st, err := store.Status(context.Background(), time.Now(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Counts[repo.StateQRReady] != 45 {
		t.Fatalf("database: %d qr_ready, want 45", st.Counts[repo.StateQRReady])
	}

	t.Run("today's date", func(t *testing.T) {
		if m := regexp.MustCompile(`esim-report-\d{6}-(\d{4})(\d{2})(\d{2})T`).FindStringSubmatch(book); m == nil || !today[m[1]+"-"+m[2]+"-"+m[3]] {
			t.Errorf("workbook %s is not dated today (%v)", filepath.Base(book), today)
		}
		f, err := excelize.OpenFile(book)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		raw, err := f.GetCellValue(reports.SheetSummary, "B2", excelize.Options{RawCellValue: true})
		if err != nil {
			t.Fatal(err)
		}
		serial, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			t.Fatalf("Summary B2 (Generated) = %q, not a date", raw)
		}
		gen, _ := excelize.ExcelDateToTime(serial, false)
		if !today[gen.Format("2006-01-02")] {
			t.Errorf("Summary: generated %s, want today (%v)", gen, today)
		}
	})

	// Which rows failed and why, as the Failures sheet says it: every
	// failed row of the database, with its step, reason and what to do.
	t.Run("printed failures", func(t *testing.T) {
		if !strings.Contains(text, "\nfailed: 4\n") {
			t.Errorf("demo output does not count the failures:\n%s", text)
		}
		printed := regexp.MustCompile(`(?m)^  (DEMO-\d{4}) at (\w+): (.+)\n    what to do: (.+)$`).FindAllStringSubmatch(text, -1)
		if len(printed) != st.Counts[repo.StateFailed] {
			t.Fatalf("printed %d failures, database has %d failed:\n%s", len(printed), st.Counts[repo.StateFailed], text)
		}
		for _, p := range printed {
			a, err := store.ActivationByRef(context.Background(), p[1])
			if err != nil {
				t.Fatal(err)
			}
			if a.State != repo.StateFailed || a.LastErrorStep != p[2] {
				t.Errorf("printed %s failed at %s; database: %s at %q", p[1], p[2], a.State, a.LastErrorStep)
			}
			if a.LastErrorMessage == "" || !strings.Contains(p[3], a.LastErrorMessage) {
				t.Errorf("printed reason for %s %q lacks the row's message %q", p[1], p[3], a.LastErrorMessage)
			}
		}
		for _, want := range []string{
			`DEMO-0007 at addCustomer: Octane refused the customer (Octane 400: Invalid plan number "9999")`,
			"DEMO-0033 at simCheck: The physical SIM's serial cannot be used: ",
			"    what to do: Check the plan",
			`  line 52: email "oliver.brown51-at-example.com": not an email address`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("demo output lacks %q:\n%s", want, text)
			}
		}
	})

	t.Run("workbook", func(t *testing.T) {
		f, err := excelize.OpenFile(book)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rows, err := f.GetRows(reports.SheetQR)
		if err != nil {
			t.Fatal(err)
		}
		col := columnIndex(t, rows[0], "Sales reference", "Outcome", "Activation code")
		qrReady, seen := 0, map[string]bool{}
		for i, r := range rows[1:] {
			ref := cellAt(r, col["Sales reference"])
			if seen[ref] {
				t.Errorf("QR row %d: %s listed twice", i+2, ref)
			}
			seen[ref] = true
			a, err := store.ActivationByRef(context.Background(), ref)
			if err != nil {
				t.Fatalf("QR row %d: %q: %v", i+2, ref, err)
			}
			switch a.State {
			case repo.StateQRReady:
				qrReady++
				if got := cellAt(r, col["Activation code"]); got == "" || got != a.ActivationCode {
					t.Errorf("QR row %d (%s): activation code %q, database has %q", i+2, ref, got, a.ActivationCode)
				}
			case repo.StateProvisioned:
			default:
				t.Errorf("QR row %d: %s is %s, not qr_ready or provisioned", i+2, ref, a.State)
			}
		}
		if qrReady != st.Counts[repo.StateQRReady] || len(rows)-1 != qrReady+st.Counts[repo.StateProvisioned] {
			t.Errorf("QR sheet: %d rows, %d qr_ready; database: %v", len(rows)-1, qrReady, st.Counts)
		}

		failures, err := f.GetRows(reports.SheetFailure)
		if err != nil {
			t.Fatal(err)
		}
		if len(failures)-1 != st.Counts[repo.StateFailed] {
			t.Errorf("Failures sheet: %d rows, database %d failed", len(failures)-1, st.Counts[repo.StateFailed])
		}

		rejects, err := f.GetRows(reports.SheetRejects)
		if err != nil {
			t.Fatal(err)
		}
		rc := columnIndex(t, rejects[0], "Line", "Reason", "Raw row")
		want := map[string]string{"52": "email", "53": "plan_no"}
		if len(rejects)-1 != len(want) {
			t.Fatalf("Rejected imports: %d rows, want %d: %q", len(rejects)-1, len(want), rejects)
		}
		for _, r := range rejects[1:] {
			line, reason := cellAt(r, rc["Line"]), cellAt(r, rc["Reason"])
			if w, ok := want[line]; !ok || !strings.Contains(reason, w) {
				t.Errorf("Rejected imports row: line %s reason %q, want lines 52 (email) and 53 (plan_no)", line, reason)
			}
			if !strings.HasPrefix(cellAt(r, rc["Raw row"]), "DEMO-005") {
				t.Errorf("Rejected imports row: raw %q", cellAt(r, rc["Raw row"]))
			}
		}
	})

	t.Run("email", func(t *testing.T) {
		raw, err := os.ReadFile(eml)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := smtptest.Parse(raw) // net/mail + mime/multipart
		if err != nil {
			t.Fatal(err)
		}
		// 45 QR codes: the physical SIM is counted apart, not as a QR code.
		s := msg.Header.Get("Subject")
		if m := regexp.MustCompile(`^eSIM report #1 (\d{4}-\d{2}-\d{2}): 45 QR, 1 physical SIM, 4 failed, 2 rejected$`).FindStringSubmatch(s); m == nil || !today[m[1]] {
			t.Errorf("subject %q, want report #1 of today (%v): 45 QR, 1 physical SIM, 4 failed, 2 rejected", s, today)
		}
		if len(msg.Attachments) != 1 {
			t.Fatalf("%d attachments, want 1", len(msg.Attachments))
		}
		att := msg.Attachments[0]
		if att.FileName != filepath.Base(book) || att.ContentType != reports.XLSXContentType {
			t.Errorf("attachment %q (%s), want %q (%s)", att.FileName, att.ContentType, filepath.Base(book), reports.XLSXContentType)
		}
		onDisk, err := os.ReadFile(book)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(att.Data, onDisk) {
			t.Error("the attached workbook differs from the one on disk")
		}
		f, err := excelize.OpenReader(bytes.NewReader(att.Data))
		if err != nil {
			t.Fatalf("attachment does not open: %v", err)
		}
		f.Close()
	})

	t.Run("same folder twice", func(t *testing.T) {
		e, _, _ := testEnv(map[string]string{})
		err := run(context.Background(), []string{"demo", "--out", dir}, e)
		if exitCode(err) != exitConfig || !strings.Contains(err.Error(), "already holds a demo database") {
			t.Fatalf("second demo in %s: %v (exit %d), want exit 2 naming the database", dir, err, exitCode(err))
		}
	})
}

func printedPath(t *testing.T, out, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output has no line matching %s:\n%s", pattern, out)
	}
	if _, err := os.Stat(m[1]); err != nil {
		t.Fatalf("printed path: %v", err)
	}
	return m[1]
}

// columnIndex maps the wanted header names to their column index.
func columnIndex(t *testing.T, header []string, names ...string) map[string]int {
	t.Helper()
	idx := map[string]int{}
	for i, h := range header {
		idx[h] = i
	}
	out := map[string]int{}
	for _, n := range names {
		i, ok := idx[n]
		if !ok {
			t.Fatalf("header %q lacks %q", header, n)
		}
		out[n] = i
	}
	return out
}

func cellAt(row []string, i int) string {
	if i < len(row) {
		return row[i]
	}
	return ""
}

// BenchmarkDemo times `batch demo` end to end (issue 4 wants it under 30 s
// with nothing installed but Go): go test -run '^$' -bench Demo ./cmd/batch
func BenchmarkDemo(b *testing.B) {
	for b.Loop() {
		e, _, stderr := testEnv(map[string]string{})
		if err := run(context.Background(), []string{"demo", "--out", b.TempDir()}, e); err != nil {
			b.Fatalf("demo: %v\n%s", err, stderr)
		}
	}
}

// The demo's clock starts today (UTC) and its longest run still ends today.
func TestDemoStart(t *testing.T) {
	for _, now := range []time.Time{
		time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 1, 12, 0, 30, 0, time.UTC),
		time.Date(2026, 12, 1, 23, 59, 59, 0, time.UTC),
		time.Date(2026, 12, 2, 8, 0, 0, 0, time.FixedZone("AEDT", 11*3600)), // 21:00 UTC the day before
	} {
		start := demoStart(now)
		end := start.Add(demoMaxPasses * 31 * time.Minute)
		day := now.UTC().Format(time.DateOnly)
		if start.Format(time.DateOnly) != day || end.Format(time.DateOnly) != day {
			t.Errorf("now %s: the demo runs %s to %s, want both on %s", now.UTC(), start, end, day)
		}
		if now.UTC().Hour() >= 12 && end.After(now) {
			t.Errorf("now %s: the demo ends %s, after now", now.UTC(), end)
		}
	}
}
