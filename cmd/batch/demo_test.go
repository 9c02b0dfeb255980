package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
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
	if err := run(context.Background(), []string{"demo", "--out", dir}, e); err != nil {
		t.Fatalf("demo: %v\n%s", err, stderr)
	}
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
		if s := msg.Header.Get("Subject"); !strings.Contains(s, "45 QR") && !strings.Contains(s, "46 QR") {
			t.Errorf("subject %q does not count the QR codes", s)
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
