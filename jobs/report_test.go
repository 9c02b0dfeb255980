package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skip2/go-qrcode"
	"github.com/xuri/excelize/v2"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
	"github.com/esimbatch/esimbatch/reports"
	"github.com/esimbatch/esimbatch/reports/smtptest"
)

var reportT0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func reportLPA(ref string) string { return "LPA:1$smdp.octane.example.com$" + ref + "-MATCHING-ID" }

// seedReportRows takes rows through the real store to the end states:
// qr qr_ready rows (every other with an Octane PNG), failed failed rows, and
// rejects import rejects. It returns the QR rows' activation codes by sales ref.
func seedReportRows(t *testing.T, s *repo.Store, tag string, qr, failed, rejects int) map[string]string {
	t.Helper()
	ctx := context.Background()
	var rows []repo.NewActivation
	for i := range qr + failed {
		rows = append(rows, repo.NewActivation{Line: i + 2, SalesRef: fmt.Sprintf("%s-%03d", tag, i),
			GivenNames: "Ann", Surname: fmt.Sprintf("Lee%d", i), Email: "ann@example.com", PlanNo: 1})
	}
	var rj []repo.ImportReject
	for i := range rejects {
		rj = append(rj, repo.ImportReject{Line: 1000 + i, Reason: "missing email", Raw: fmt.Sprintf(`=HYPERLINK("x"),%d`, i)})
	}
	if _, err := s.Import(ctx, repo.ImportFile{Name: tag + ".csv", Hash: tag, DataRows: len(rows) + rejects}, rows, rj, reportT0); err != nil {
		t.Fatal(err)
	}
	runID, err := s.StartRun(ctx, reportT0, "test", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	claimed, err := s.ClaimPending(ctx, reportT0, runID, "test", len(rows), time.Hour)
	if err != nil || len(claimed) != len(rows) {
		t.Fatalf("claimed %d of %d: %v", len(claimed), len(rows), err)
	}
	codes := map[string]string{}
	for i := range claimed {
		a := &claimed[i]
		if i < failed {
			if err := s.Fail(ctx, a, "orderCreate", "E042", "=1+1 plan not allowed", reportT0); err != nil {
				t.Fatal(err)
			}
			continue
		}
		msn := fmt.Sprintf("04%08d", a.ID)
		if err := s.SaveReservations(ctx, runID, "test", reportT0, []repo.Reservation{{MSN: msn}}); err != nil {
			t.Fatal(err)
		}
		r, err := s.TakeReservation(ctx, runID, a, reportT0)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MarkSelected(ctx, a, r, reportT0); err != nil {
			t.Fatal(err)
		}
		if err := s.BeginOrder(ctx, a, repo.LockGuard{}, false, reportT0); err != nil {
			t.Fatal(err)
		}
		if err := s.OrderAccepted(ctx, a, "000"+msn, reportT0, reportT0); err != nil {
			t.Fatal(err)
		}
	}
	polls, err := s.ClaimPolls(ctx, reportT0, reportT0.Add(30*time.Minute), runID, "test", len(rows), time.Hour)
	if err != nil || len(polls) != qr {
		t.Fatalf("polls %d of %d: %v", len(polls), qr, err)
	}
	for i := range polls {
		if err := s.OrderCompleted(ctx, &polls[i], polls[i].MSN, true, reportT0); err != nil {
			t.Fatal(err)
		}
	}
	ready, err := s.ClaimQR(ctx, reportT0, runID, "test", len(rows), time.Hour)
	if err != nil || len(ready) != qr {
		t.Fatalf("qr claims %d of %d: %v", len(ready), qr, err)
	}
	for i := range ready {
		a := &ready[i]
		code := reportLPA(a.SalesRef)
		var png []byte
		if i%2 == 0 {
			if png, err = qrcode.Encode(code, qrcode.High, 200); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.QRReady(ctx, a, code, png, "8961012345678901234", reportT0); err != nil {
			t.Fatal(err)
		}
		codes[a.SalesRef] = code
	}
	return codes
}

// reportMail is a delivered report taken apart.
type reportMail struct {
	parsed smtptest.Parsed
	book   *excelize.File
}

func openReportMail(t *testing.T, data []byte, password string) reportMail {
	t.Helper()
	p, err := smtptest.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Attachments) != 1 || p.Attachments[0].ContentType != reports.XLSXContentType {
		t.Fatalf("attachments %d", len(p.Attachments))
	}
	f, err := excelize.OpenReader(bytes.NewReader(p.Attachments[0].Data), excelize.Options{Password: password})
	if err != nil {
		t.Fatalf("attachment does not reopen: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return reportMail{parsed: p, book: f}
}

// qrRefs checks every QR row's image decodes to the row's code and the code
// is the one the store holds, and returns the rows' sales refs.
func (m reportMail) qrRefs(t *testing.T, codes map[string]string) []string {
	t.Helper()
	rows, err := m.book.GetRows(reports.SheetQR)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for i, r := range rows[1:] {
		ref, code := r[0], r[8]
		if code != codes[ref] {
			t.Errorf("%s: code %q, store has %q", ref, code, codes[ref])
		}
		pics, err := m.book.GetPictures(reports.SheetQR, fmt.Sprintf("J%d", i+2))
		if err != nil || len(pics) != 1 {
			t.Fatalf("%s: %d pictures: %v", ref, len(pics), err)
		}
		if got := reportDecodeQR(t, pics[0].File); got != code {
			t.Errorf("%s: image decodes to %q, row has %q", ref, got, code)
		}
		refs = append(refs, ref)
	}
	return refs
}

func reportDecodeQR(t *testing.T, png []byte) string {
	t.Helper()
	text, err := reports.DecodeQR(png)
	if err != nil {
		t.Fatalf("QR image: %v", err)
	}
	return text
}

func smtpReporter(t *testing.T, s interface {
	PendingReport(context.Context) (repo.Report, error)
	NewReport(context.Context, time.Time, int) (repo.Report, error)
	SetReportMessage(context.Context, int64, string, string) error
	ReportContentAt(context.Context, int64, time.Time) (repo.ReportContent, error)
	MarkReportDelivered(context.Context, int64, time.Time) error
	Attention(context.Context, time.Time, int) (repo.Attention, error)
}, srv *smtptest.Server, dir string, maxQR int) *jobs.Reporter {
	return jobs.NewReporter(s, nil, jobs.ReportOptions{
		Dir: dir, SMTP: &reports.SMTPConfig{Host: srv.Host, Port: srv.Port},
		From: "esimbatch@example.com", To: []string{"finance@example.com"}, MaxQRRows: maxQR,
	})
}

func TestReportDeliveredOnce(t *testing.T) {
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		codes := seedReportRows(t, s, "S", 5, 2, 1)
		runs, err := s.Runs(ctx, 1)
		if err != nil || len(runs) != 1 {
			t.Fatalf("runs %v %v", runs, err)
		}
		if err := s.RecordCall(ctx, repo.Call{RunID: runs[0].ID, Credential: "test", Method: octane.MethodOrderCreate,
			SentAt: reportT0, Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
		srv := smtptest.Start(t)
		dir := t.TempDir()
		r := smtpReporter(t, s, srv, dir, 0)
		res, err := r.Run(ctx, reportT0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if res.Reports != 1 || res.Activations != 7 || res.Rejects != 1 || len(res.Files) != 1 {
			t.Fatalf("result %+v", res)
		}
		if _, err := os.Stat(res.Files[0]); err != nil || filepath.Dir(res.Files[0]) != dir {
			t.Errorf("workbook %q not kept under REPORT_DIR: %v", res.Files[0], err)
		}
		msgs := srv.Messages()
		if len(msgs) != 1 {
			t.Fatalf("server got %d messages", len(msgs))
		}
		m := openReportMail(t, msgs[0].Data, "")
		if s := m.parsed.Header.Get("Subject"); s != "eSIM report #1 2026-11-28: 5 QR, 2 failed, 1 rejected" {
			t.Errorf("Subject %q", s)
		}
		if refs := m.qrRefs(t, codes); len(refs) != 5 {
			t.Errorf("QR rows %v", refs)
		}
		fails, _ := m.book.GetRows(reports.SheetFailure)
		if len(fails) != 3 || fails[1][4] != "orderCreate" || fails[1][6] != "=1+1 plan not allowed" {
			t.Errorf("Failures sheet %q", fails)
		}
		if v, _ := m.book.GetCellValue(reports.SheetRejects, "D2"); v != `=HYPERLINK("x"),0` {
			t.Errorf("reject raw row %q", v)
		}
		// The credential that owns each row is the last column of every
		// sheet (a rejected line has none); the Summary's calls carry theirs.
		for _, sheet := range []string{reports.SheetQR, reports.SheetFailure, reports.SheetRejects} {
			rows, _ := m.book.GetRows(sheet)
			want := "test"
			if sheet == reports.SheetRejects {
				want = ""
			}
			for i, row := range rows {
				got := ""
				if len(row) >= 11 || (sheet == reports.SheetRejects && len(row) >= 6) {
					got = row[len(row)-1]
				}
				if i == 0 {
					if got != reports.ColumnCredential {
						t.Errorf("%s header %q: last column %q, want %q", sheet, row, got, reports.ColumnCredential)
					}
				} else if got != want {
					t.Errorf("%s row %d %q: credential %q, want %q", sheet, i+1, row, got, want)
				}
			}
		}
		summary, _ := m.book.GetRows(reports.SheetSummary)
		foundCalls := false
		for i, row := range summary {
			if len(row) > 0 && row[0] == "Octane method" {
				foundCalls = len(row) == 5 && row[4] == reports.ColumnCredential && i+1 < len(summary) &&
					len(summary[i+1]) == 5 && summary[i+1][0] == octane.MethodOrderCreate && summary[i+1][4] == "test"
				if !foundCalls {
					t.Errorf("Summary calls table %q / %q, want a Credential column holding test", row, summary[min(i+1, len(summary)-1)])
				}
			}
		}
		if !foundCalls {
			t.Errorf("Summary has no calls table: %q", summary)
		}
		// Everything is reported: the next run sends nothing.
		res, err = r.Run(ctx, reportT0.Add(2*time.Hour))
		if err != nil || res.Reports != 0 || len(srv.Messages()) != 1 {
			t.Fatalf("second run %+v %v, messages %d", res, err, len(srv.Messages()))
		}
		if _, err := s.PendingReport(ctx); !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("pending report after delivery: %v", err)
		}
	})
}

func TestReportRefusedThenResentOnce(t *testing.T) {
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		codes := seedReportRows(t, s, "R", 3, 1, 0)
		srv := smtptest.Start(t)
		srv.Refuse(554, "5.7.1 message refused")
		r := smtpReporter(t, s, srv, t.TempDir(), 0)
		res, err := r.Run(ctx, reportT0.Add(time.Hour))
		if !errors.Is(err, reports.ErrDelivery) || res.Reports != 0 {
			t.Fatalf("refused run: %+v %v, want ErrDelivery", res, err)
		}
		// Nothing is marked: the report waits, its content and Message-ID fixed.
		pending, err := s.PendingReport(ctx)
		if err != nil || pending.Number != 1 || pending.MessageID == "" || pending.DeliveredAt != nil {
			t.Fatalf("pending %+v %v", pending, err)
		}
		if _, err := s.NewReport(ctx, reportT0.Add(time.Hour), 0); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("rows of the refused report went into a new one: %v", err)
		}

		srv.Accept()
		res, err = r.Run(ctx, reportT0.Add(2*time.Hour))
		if err != nil || res.Reports != 1 || res.Activations != 4 {
			t.Fatalf("second run %+v %v", res, err)
		}
		msgs := srv.Messages()
		if len(msgs) != 1 {
			t.Fatalf("accepted %d messages, want 1", len(msgs))
		}
		m := openReportMail(t, msgs[0].Data, "")
		if id := m.parsed.Header.Get("Message-Id"); id != "<"+pending.MessageID+">" {
			t.Errorf("Message-ID %q, recorded %q", id, pending.MessageID)
		}
		if n := m.parsed.Header.Get(reports.HeaderReport); n != "1" {
			t.Errorf("report header %q", n)
		}
		if refs := m.qrRefs(t, codes); len(refs) != 3 {
			t.Errorf("QR rows %v", refs)
		}
		res, err = r.Run(ctx, reportT0.Add(3*time.Hour))
		if err != nil || res.Reports != 0 || len(srv.Messages()) != 1 {
			t.Fatalf("third run %+v %v: sent again", res, err)
		}
	})
}

// crashingStore is the real store whose first MarkReportDelivered fails, as
// if the process died after the server accepted the message.
type crashingStore struct {
	*repo.Store
	crashed bool
}

func (c *crashingStore) MarkReportDelivered(ctx context.Context, id int64, at time.Time) error {
	if !c.crashed {
		c.crashed = true
		return errors.New("process killed")
	}
	return c.Store.MarkReportDelivered(ctx, id, at)
}

func TestReportCrashAfterAcceptanceResendsSameReport(t *testing.T) {
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		codes := seedReportRows(t, s, "C", 2, 1, 1)
		srv := smtptest.Start(t)
		dir := t.TempDir()
		if _, err := smtpReporter(t, &crashingStore{Store: s}, srv, dir, 0).Run(ctx, reportT0.Add(time.Hour)); err == nil {
			t.Fatal("crash not reported")
		}
		// A new process: the real store.
		res, err := smtpReporter(t, s, srv, dir, 0).Run(ctx, reportT0.Add(2*time.Hour))
		if err != nil || res.Reports != 1 || res.Resent != 1 {
			t.Fatalf("restart %+v %v", res, err)
		}
		msgs := srv.Messages()
		if len(msgs) != 2 {
			t.Fatalf("%d messages, want the original and one resend", len(msgs))
		}
		first, again := openReportMail(t, msgs[0].Data, ""), openReportMail(t, msgs[1].Data, "")
		for _, h := range []string{"Message-Id", reports.HeaderReport} {
			if a, b := first.parsed.Header.Get(h), again.parsed.Header.Get(h); a != b || a == "" {
				t.Errorf("%s: %q then %q, want the same", h, a, b)
			}
		}
		if first.parsed.Header.Get(reports.HeaderResend) != "" || again.parsed.Header.Get(reports.HeaderResend) != "true" {
			t.Errorf("resend header %q then %q", first.parsed.Header.Get(reports.HeaderResend), again.parsed.Header.Get(reports.HeaderResend))
		}
		if !strings.HasSuffix(again.parsed.Header.Get("Subject"), "(resent)") {
			t.Errorf("resend subject %q", again.parsed.Header.Get("Subject"))
		}
		a, b := first.qrRefs(t, codes), again.qrRefs(t, codes)
		if strings.Join(a, ",") != strings.Join(b, ",") || len(a) != 2 {
			t.Errorf("resend rows %v, first %v", b, a)
		}
		if res, err := smtpReporter(t, s, srv, dir, 0).Run(ctx, reportT0.Add(3*time.Hour)); err != nil || res.Reports != 0 {
			t.Fatalf("third run %+v %v", res, err)
		}
	})
}

func TestReportSplitByMaxQRRows(t *testing.T) {
	s := repotest.NewSQLite(t)
	ctx := context.Background()
	codes := seedReportRows(t, s, "M", 7, 1, 0)
	srv := smtptest.Start(t)
	res, err := smtpReporter(t, s, srv, t.TempDir(), 3).Run(ctx, reportT0.Add(time.Hour))
	if err != nil || res.Reports != 3 || res.Activations != 8 {
		t.Fatalf("result %+v %v", res, err)
	}
	seen := map[string]int{}
	for i, msg := range srv.Messages() {
		m := openReportMail(t, msg.Data, "")
		if n := m.parsed.Header.Get(reports.HeaderReport); n != fmt.Sprint(i+1) {
			t.Errorf("message %d is report %q", i, n)
		}
		refs := m.qrRefs(t, codes)
		if len(refs) > 3 {
			t.Errorf("report %d has %d QR rows, cap 3", i+1, len(refs))
		}
		for _, r := range refs {
			seen[r]++
		}
	}
	for ref := range codes {
		if seen[ref] != 1 {
			t.Errorf("%s in %d reports, want exactly 1", ref, seen[ref])
		}
	}
}

func TestReportEMLEncrypted(t *testing.T) {
	s := repotest.NewSQLite(t)
	ctx := context.Background()
	codes := seedReportRows(t, s, "E", 2, 0, 0)
	dir := t.TempDir()
	r := jobs.NewReporter(s, nil, jobs.ReportOptions{Dir: dir, Password: "pw-out-of-band"})
	res, err := r.Run(ctx, reportT0.Add(time.Hour))
	if err != nil || res.Reports != 1 || len(res.Files) != 2 {
		t.Fatalf("result %+v %v", res, err)
	}
	xlsx, eml := res.Files[0], res.Files[1]
	if filepath.Ext(xlsx) != ".xlsx" || filepath.Ext(eml) != ".eml" || filepath.Dir(eml) != dir {
		t.Fatalf("files %v", res.Files)
	}
	if _, err := excelize.OpenFile(xlsx); err == nil {
		t.Errorf("workbook opens without the password")
	}
	data, err := os.ReadFile(eml)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("pw-out-of-band")) {
		t.Errorf("the password travels in the email")
	}
	m := openReportMail(t, data, "pw-out-of-band")
	if refs := m.qrRefs(t, codes); len(refs) != 2 {
		t.Errorf("QR rows %v", refs)
	}
	if _, err := s.NewReport(ctx, reportT0.Add(2*time.Hour), 0); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf(".eml written but rows still unreported: %v", err)
	}
}

func TestReportNothingToSend(t *testing.T) {
	tests := []struct {
		name      string
		sendEmpty bool
		wantFiles int
	}{
		{"skipped by default", false, 0},
		{"sent when configured", true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := repotest.NewSQLite(t)
			dir := t.TempDir()
			r := jobs.NewReporter(s, nil, jobs.ReportOptions{Dir: dir, SendEmpty: tt.sendEmpty})
			res, err := r.Run(context.Background(), reportT0)
			if err != nil || res.Reports != 0 || len(res.Files) != tt.wantFiles {
				t.Fatalf("result %+v %v", res, err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != tt.wantFiles {
				t.Errorf("dir holds %d files, want %d", len(entries), tt.wantFiles)
			}
		})
	}
}

// seedStuck adds rows that are not terminal and wait: open orders (submitted,
// order sent at reportT0) and one completed eSIM waiting for its QR code
// (completed at reportT0+30m), all through the real store.
func seedStuck(t *testing.T, s *repo.Store, tag string, open int) {
	t.Helper()
	ctx := context.Background()
	var rows []repo.NewActivation
	for i := range open + 1 {
		rows = append(rows, repo.NewActivation{Line: i + 2, SalesRef: fmt.Sprintf("%s-%d", tag, i+1), Email: "x@example.com", PlanNo: 1})
	}
	if _, err := s.Import(ctx, repo.ImportFile{Name: tag + ".csv", Hash: tag, DataRows: len(rows)}, rows, nil, reportT0); err != nil {
		t.Fatal(err)
	}
	runID, err := s.StartRun(ctx, reportT0, "test", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	claimed, err := s.ClaimPending(ctx, reportT0, runID, "test", len(rows), time.Hour)
	if err != nil || len(claimed) != len(rows) {
		t.Fatalf("claimed %d of %d: %v", len(claimed), len(rows), err)
	}
	for i := range claimed {
		a := &claimed[i]
		msn := fmt.Sprintf("05%08d", a.ID)
		if err := s.SaveReservations(ctx, runID, "test", reportT0, []repo.Reservation{{MSN: msn}}); err != nil {
			t.Fatal(err)
		}
		r, err := s.TakeReservation(ctx, runID, a, reportT0)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MarkSelected(ctx, a, r, reportT0); err != nil {
			t.Fatal(err)
		}
		if err := s.BeginOrder(ctx, a, repo.LockGuard{}, false, reportT0); err != nil {
			t.Fatal(err)
		}
		if err := s.OrderAccepted(ctx, a, "ORD-"+msn, reportT0, reportT0.Add(30*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	polls, err := s.ClaimPolls(ctx, reportT0.Add(30*time.Minute), reportT0.Add(time.Hour), runID, "test", len(rows), time.Hour)
	if err != nil || len(polls) != len(rows) {
		t.Fatalf("polls %d of %d: %v", len(polls), len(rows), err)
	}
	for i := range polls {
		a := &polls[i]
		if a.SalesRef == rows[len(rows)-1].SalesRef {
			if err := s.OrderCompleted(ctx, a, a.MSN, true, reportT0.Add(30*time.Minute)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := s.Unclaim(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
}

// attentionRows reads the Attention sheet's data rows (reference, MSN,
// order id, state, since, polls/attempts), checking each since is a real
// Excel date.
func attentionRows(t *testing.T, f *excelize.File) [][]string {
	t.Helper()
	rows, err := f.GetRows(reports.SheetAttention)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for i, r := range rows[1:] {
		if len(r) < 7 || r[0] == "" || strings.HasPrefix(r[0], "No order") {
			continue
		}
		raw, err := f.GetCellValue(reports.SheetAttention, fmt.Sprintf("F%d", i+2), excelize.Options{RawCellValue: true})
		if err != nil {
			t.Fatal(err)
		}
		serial, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			t.Errorf("Attention F%d = %q: not an Excel date", i+2, raw)
		}
		since, _ := excelize.ExcelDateToTime(serial, false)
		out = append(out, []string{r[0], r[1], r[2], r[3], r[4], since.Round(time.Second).Format(time.RFC3339), r[6]})
	}
	return out
}

// summaryCount reads a Summary count cell as a number.
func summaryCount(t *testing.T, f *excelize.File, ref string) int {
	t.Helper()
	raw, err := f.GetCellValue(reports.SheetSummary, ref, excelize.Options{RawCellValue: true})
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(raw)
	if err != nil {
		t.Fatalf("Summary %s = %q, not a count", ref, raw)
	}
	return n
}

// Open orders and late QR codes are in every report while they last (the
// "nothing new" one too), counted on the Summary and listed on the Attention
// sheet, and never taken into a report: they stay in their state, unreported.
func TestReportListsAttention(t *testing.T) {
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		seedReportRows(t, s, "T", 1, 1, 0)
		seedStuck(t, s, "W", 2)
		srv := smtptest.Start(t)
		r := jobs.NewReporter(s, nil, jobs.ReportOptions{
			Dir: t.TempDir(), SMTP: &reports.SMTPConfig{Host: srv.Host, Port: srv.Port},
			From: "esimbatch@example.com", To: []string{"ops@example.com"}, SendEmpty: true,
		})
		// 24h15m after the orders, 23h45m after the completion.
		res, err := r.Run(ctx, reportT0.Add(24*time.Hour+15*time.Minute))
		if err != nil || res.Reports != 1 || res.Activations != 2 {
			t.Fatalf("first run %+v %v, want one report of the 2 terminal rows", res, err)
		}
		ord := func(ref string) (msn, order string) {
			a, err := s.ActivationByRef(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			return a.MSN, a.OrderID
		}
		m1, o1 := ord("W-1")
		m2, o2 := ord("W-2")
		m3, o3 := ord("W-3")
		sent := reportT0.Format(time.RFC3339)
		want := [][]string{
			{"Open order over 24 h", "W-1", m1, o1, "submitted", sent, "1"},
			{"Open order over 24 h", "W-2", m2, o2, "submitted", sent, "1"},
		}
		msgs := srv.Messages()
		if len(msgs) != 1 {
			t.Fatalf("%d messages, want 1", len(msgs))
		}
		book := openReportMail(t, msgs[0].Data, "").book
		if n := summaryCount(t, book, "B8"); n != 2 {
			t.Errorf("first report: open orders %d, want 2", n)
		}
		if n := summaryCount(t, book, "B9"); n != 0 {
			t.Errorf("first report: QR codes late %d, want 0 (completed 23h45m ago)", n)
		}
		if got := attentionRows(t, book); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("first report's Attention rows\n got %q\nwant %q", got, want)
		}
		for i := 2; i <= 3; i++ {
			if v, _ := book.GetCellValue(reports.SheetAttention, fmt.Sprintf("I%d", i)); v != "test" {
				t.Errorf("Attention I%d credential %q, want test", i, v)
			}
		}
		for _, ref := range []string{"W-1", "W-2", "W-3"} {
			a, err := s.ActivationByRef(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if a.ReportedAt != nil || a.State.Terminal() {
				t.Errorf("%s: state %s, reported %v: a listed row must stay as it is", ref, a.State, a.ReportedAt)
			}
		}

		// 25 h: nothing new to report, so the "nothing new" email, which
		// lists them again, now with the late QR code.
		res, err = r.Run(ctx, reportT0.Add(25*time.Hour))
		if err != nil || res.Reports != 0 {
			t.Fatalf("second run %+v %v", res, err)
		}
		msgs = srv.Messages()
		if len(msgs) != 2 {
			t.Fatalf("%d messages, want the report and the empty one", len(msgs))
		}
		book = openReportMail(t, msgs[1].Data, "").book
		if a, b := summaryCount(t, book, "B8"), summaryCount(t, book, "B9"); a != 2 || b != 1 {
			t.Errorf("empty report: open orders %d, QR codes late %d; want 2, 1", a, b)
		}
		want = append(want, []string{"QR code late", "W-3", m3, o3, "completed", reportT0.Add(30 * time.Minute).Format(time.RFC3339), "0"})
		if got := attentionRows(t, book); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("empty report's Attention rows\n got %q\nwant %q", got, want)
		}
	})
}
