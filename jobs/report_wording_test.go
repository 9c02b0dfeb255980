package jobs_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
	"github.com/esimbatch/esimbatch/reports"
	"github.com/esimbatch/esimbatch/reports/smtptest"
)

// seedEnds imports rows tag-1.. and drives them through the real store:
// each kind of end in ends ("qr", "physical", "emailed", or a failure as
// "fail:STEP:CODE:MESSAGE"), plus rejects rejected rows and refused files.
func seedEnds(t *testing.T, s *repo.Store, tag string, at time.Time, ends []string, rejects, refused int) {
	t.Helper()
	ctx := context.Background()
	var rows []repo.NewActivation
	for i, e := range ends {
		r := repo.NewActivation{Line: i + 2, SalesRef: fmt.Sprintf("%s-%d", tag, i+1), GivenNames: "Ann",
			Surname: "Lee", Email: "ann@example.com", PlanNo: 1001}
		if e == "physical" {
			r.SIMType, r.SIMSerial = "physical", "PSIM"+strconv.Itoa(i)
		}
		rows = append(rows, r)
	}
	var rj []repo.ImportReject
	for i := range rejects {
		rj = append(rj, repo.ImportReject{Line: 100 + i, Reason: "email: required", Raw: "x"})
	}
	if _, err := s.Import(ctx, repo.ImportFile{Name: tag + ".csv", Hash: tag, DataRows: len(rows) + rejects}, rows, rj, at); err != nil {
		t.Fatal(err)
	}
	for i := range refused {
		if _, err := s.RecordRefusedImport(ctx, repo.RefusedImport{File: fmt.Sprintf("%s-bad-%d.csv", tag, i), ContentHash: tag + strconv.Itoa(i),
			Reason: `header on line 1 has no "email" column: missing required column`, MovedTo: "rejected"}, at); err != nil {
			t.Fatal(err)
		}
	}
	runID, err := s.StartRun(ctx, at, "test", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	claimed, err := s.ClaimPending(ctx, at, runID, "test", len(rows), time.Hour)
	if err != nil || len(claimed) != len(rows) {
		t.Fatalf("claimed %d of %d: %v", len(claimed), len(rows), err)
	}
	byRef := map[string]string{}
	for i, r := range rows {
		byRef[r.SalesRef] = ends[i]
	}
	for i := range claimed {
		a := &claimed[i]
		end := byRef[a.SalesRef]
		if strings.HasPrefix(end, "fail:") {
			parts := strings.SplitN(end, ":", 4)
			if err := s.Fail(ctx, a, repo.Step(parts[1]), parts[2], parts[3], at); err != nil {
				t.Fatal(err)
			}
			continue
		}
		msn := fmt.Sprintf("04%08d", a.ID)
		if err := s.SaveReservations(ctx, runID, "test", at, []repo.Reservation{{MSN: msn}}); err != nil {
			t.Fatal(err)
		}
		r, err := s.TakeReservation(ctx, runID, a, at)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MarkSelected(ctx, a, r, at); err != nil {
			t.Fatal(err)
		}
		if err := s.BeginOrder(ctx, a, repo.LockGuard{}, end == "emailed", at); err != nil {
			t.Fatal(err)
		}
		if err := s.OrderAccepted(ctx, a, "ORD"+msn, at, at); err != nil {
			t.Fatal(err)
		}
	}
	polls, err := s.ClaimPolls(ctx, at, at.Add(30*time.Minute), runID, "test", len(rows), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i := range polls {
		a := &polls[i]
		end := byRef[a.SalesRef]
		if err := s.OrderCompleted(ctx, a, a.MSN, end == "qr", at); err != nil {
			t.Fatal(err)
		}
	}
	ready, err := s.ClaimQR(ctx, at, runID, "test", len(rows), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ready {
		if err := s.QRReady(ctx, &ready[i], reportLPA(ready[i].SalesRef), nil, "", at); err != nil {
			t.Fatal(err)
		}
	}
}

// The report's wording, read back from the delivered workbook cell by cell:
// the subject and the Summary count QR codes only for rows that have one,
// the provisioned services apart; every Summary outcome has its total to
// date; the Failures sheet keeps Octane's code and message apart from our
// reason, with what to do; a refused file is on the Rejected imports sheet.
func TestReportWording(t *testing.T) {
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		srv := smtptest.Start(t)
		r := smtpReporter(t, s, srv, t.TempDir(), 0)

		// An earlier report, so that "to date" is more than "this report".
		seedEnds(t, s, "A", reportT0, []string{"qr", "physical", "fail:orderCreate:E042:plan 9999 not allowed"}, 1, 0)
		if res, err := r.Run(ctx, reportT0.Add(time.Hour)); err != nil || res.Reports != 1 {
			t.Fatalf("first report: %+v, %v", res, err)
		}
		seedEnds(t, s, "B", reportT0.Add(2*time.Hour), []string{
			"qr", "qr", "physical", "emailed",
			"fail:orderCreate:E042:plan 9999 not allowed",
			"fail:reserveResources:transport:octane reserveResources: transport: connection reset",
			"fail:reconcile:review:number AVAILABLE 2 h after its reservation: an order may have been accepted and rejected",
		}, 2, 1)
		res, err := r.Run(ctx, reportT0.Add(3*time.Hour))
		if err != nil || res.Reports != 1 || res.Refused != 1 {
			t.Fatalf("second report: %+v, %v", res, err)
		}
		msgs := srv.Messages()
		if len(msgs) != 2 {
			t.Fatalf("%d messages, want 2", len(msgs))
		}
		m := openReportMail(t, msgs[1].Data, "")
		wantSubject := "eSIM report #2 2026-11-28: 2 QR, 1 physical SIM, 1 QR emailed by Octane, 3 failed, 2 rejected, 1 file refused"
		if got := m.parsed.Header.Get("Subject"); got != wantSubject {
			t.Errorf("subject %q\n   want %q", got, wantSubject)
		}
		f := m.book

		t.Run("Summary", func(t *testing.T) {
			if v, _ := f.GetCellValue(reports.SheetSummary, "B6"); v != "2 / 3 / 2 / 1" {
				t.Errorf("B6 = %q, want 2 QR codes / 3 failures / 2 rejected rows / 1 refused file", v)
			}
			got := map[string][2]string{}
			for rn := 12; rn < 30; rn++ {
				label, _ := f.GetCellValue(reports.SheetSummary, fmt.Sprintf("A%d", rn))
				if label == "" {
					break
				}
				this, _ := f.GetCellValue(reports.SheetSummary, fmt.Sprintf("B%d", rn))
				toDate, _ := f.GetCellValue(reports.SheetSummary, fmt.Sprintf("C%d", rn))
				got[label] = [2]string{this, toDate}
				if toDate == "" {
					t.Errorf("Summary row %d (%s) has no total to date", rn, label)
				}
			}
			for label, want := range map[string][2]string{
				"QR ready": {"2", "3"}, "Provisioned: physical SIM": {"1", "2"}, "Provisioned: QR emailed by Octane": {"1", "1"},
				"Failed": {"3", "4"}, "Rejected on import": {"2", "3"}, "Files refused on import": {"1", "1"},
			} {
				if got[label] != want {
					t.Errorf("Summary %q = this report %q, to date %q; want %q, %q", label, got[label][0], got[label][1], want[0], want[1])
				}
			}
			if _, ok := got["Provisioned"]; ok {
				t.Errorf("Summary still has an undivided Provisioned row: %v", got)
			}
		})

		t.Run("Failures", func(t *testing.T) {
			rows, err := f.GetRows(reports.SheetFailure)
			if err != nil {
				t.Fatal(err)
			}
			col := map[string]int{}
			for i, h := range rows[0] {
				col[h] = i
			}
			want := map[string][4]string{ // sales ref -> Octane code, Octane message, our reason, what to do (start)
				"B-5": {"E042", "plan 9999 not allowed", "Octane refused the order", "Check the plan"},
				"B-6": {"", "", "No answer from Octane: octane reserveResources: transport: connection reset", "Check that Octane is reachable"},
				"B-7": {"", "", "An order may exist for this number: number AVAILABLE 2 h after its reservation: an order may have been accepted and rejected", "Ask Octane"},
			}
			if len(rows)-1 != len(want) {
				t.Fatalf("Failures sheet has %d rows, want %d: %q", len(rows)-1, len(want), rows)
			}
			for _, r := range rows[1:] {
				ref := cellAt(r, col["Sales reference"])
				w, ok := want[ref]
				if !ok {
					t.Errorf("unexpected failure row %q", r)
					continue
				}
				got := [4]string{cellAt(r, col["Octane error code"]), cellAt(r, col["Octane message"]), cellAt(r, col["Our reason"]), cellAt(r, col["What to do"])}
				if got[0] != w[0] || got[1] != w[1] || got[2] != w[2] || len(got[3]) < len(w[3]) || got[3][:len(w[3])] != w[3] {
					t.Errorf("%s: code %q, Octane message %q, reason %q, what to do %q\nwant %q", ref, got[0], got[1], got[2], got[3], w)
				}
			}
		})

		t.Run("Rejected imports", func(t *testing.T) {
			rows, err := f.GetRows(reports.SheetRejects)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 4 {
				t.Fatalf("Rejected imports has %d rows, want the header, 1 refused file and 2 rows: %q", len(rows), rows)
			}
			if got := rows[1]; cellAt(got, 0) != "B-bad-0.csv" || cellAt(got, 1) != "" ||
				cellAt(got, 2) != `File refused (moved to rejected/): header on line 1 has no "email" column: missing required column` {
				t.Errorf("refused file row %q", got)
			}
		})
	})
}

func cellAt(row []string, i int) string {
	if i >= 0 && i < len(row) {
		return row[i]
	}
	return ""
}
