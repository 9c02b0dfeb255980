package repo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// A file refused whole is recorded once, goes into exactly one report (a
// report of nothing but a refused file is still a report), and is marked
// reported with it; `batch status` reads it back newest first.
func TestRefusedImportsReportedOnce(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		bad := repo.RefusedImport{File: "bad.csv", ContentHash: "h1", Reason: `header on line 1 has no "email" column`, MovedTo: "rejected"}
		isNew, err := s.RecordRefusedImport(ctx, bad, t0)
		must(t, err)
		if !isNew {
			t.Fatal("first record of bad.csv: not new")
		}
		// The same file again (its move failed, say): recorded once.
		again := bad
		again.MovedTo = ""
		if isNew, err = s.RecordRefusedImport(ctx, again, t0.Add(time.Minute)); err != nil || isNew {
			t.Fatalf("same name and content again: new %v, %v; want recorded once", isNew, err)
		}
		// The same name with other content, and a file too large to hash.
		for i, f := range []repo.RefusedImport{
			{File: "bad.csv", ContentHash: "h2", Reason: "UTF-16 text"},
			{File: "huge.xlsx", Reason: "larger than the 50 MiB limit"},
		} {
			if isNew, err := s.RecordRefusedImport(ctx, f, t0.Add(time.Duration(i+2)*time.Minute)); err != nil || !isNew {
				t.Fatalf("%+v: new %v, %v", f, isNew, err)
			}
		}
		if n := count(t, s, `SELECT COUNT(*) FROM refused_imports`); n != 3 {
			t.Fatalf("%d refused files stored, want 3", n)
		}

		l, err := s.RefusedImports(ctx, t0.Add(time.Minute), 1)
		must(t, err)
		if l.Count != 2 || len(l.Rows) != 1 || l.Rows[0].File != "huge.xlsx" || !l.Rows[0].RefusedAt.Equal(t0.Add(3*time.Minute)) {
			t.Fatalf("RefusedImports(since t0+1m, 1) = %+v, want 2 counted and huge.xlsx, the newest", l)
		}
		all, err := s.RefusedImports(ctx, t0, 0)
		must(t, err)
		if all.Count != 3 || len(all.Rows) != 3 || all.Rows[2].MovedTo != "rejected" || all.Rows[2].ReportedAt != nil {
			t.Fatalf("RefusedImports(t0, all) = %+v", all)
		}

		now := t0.Add(time.Hour)
		r1, err := s.NewReport(ctx, now, 10)
		must(t, err)
		if r1.Refused != 3 || r1.Activations != 0 || r1.Rejects != 0 {
			t.Fatalf("report = %+v, want the 3 refused files alone", r1)
		}
		c, err := s.ReportContent(ctx, r1.ID)
		must(t, err)
		if len(c.Refused) != 3 || c.Refused[0].File != "bad.csv" || c.Refused[0].Reason != bad.Reason || c.ToDate.Refused != 3 {
			t.Fatalf("report content: refused %+v, to date %+v", c.Refused, c.ToDate)
		}
		if _, err := s.NewReport(ctx, now.Add(time.Minute), 10); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("second NewReport = %v, want ErrNotFound: each refused file is in one report", err)
		}
		must(t, s.MarkReportDelivered(ctx, r1.ID, now))
		if n := count(t, s, `SELECT COUNT(*) FROM refused_imports WHERE reported_at IS NOT NULL`); n != 3 {
			t.Fatalf("%d refused files marked reported, want 3", n)
		}
		// A file refused after the report goes in the next one, alone.
		_, err = s.RecordRefusedImport(ctx, repo.RefusedImport{File: "late.csv", ContentHash: "h3", Reason: "empty file"}, now.Add(time.Minute))
		must(t, err)
		r2, err := s.NewReport(ctx, now.Add(2*time.Minute), 10)
		must(t, err)
		if c, err = s.ReportContent(ctx, r2.ID); err != nil || len(c.Refused) != 1 || c.Refused[0].File != "late.csv" || c.ToDate.Refused != 4 {
			t.Fatalf("second report: %+v, %v", c.Refused, err)
		}
	})
}

// ToDate counts the provisioned services apart (physical SIMs, eSIMs whose
// QR Octane emailed) and every import reject to date, whatever report they
// went in.
func TestReportToDate(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		rows := []repo.NewActivation{
			{Line: 2, SalesRef: "td-phys", Surname: "P", Email: "p@example.com", PlanNo: 7, SIMType: "physical", SIMSerial: "S1"},
			{Line: 3, SalesRef: "td-mail", Surname: "M", Email: "m@example.com", PlanNo: 7},
			{Line: 4, SalesRef: "td-mail2", Surname: "M", Email: "m@example.com", PlanNo: 7},
			{Line: 5, SalesRef: "td-open", Surname: "O", Email: "o@example.com", PlanNo: 7},
		}
		rejects := []repo.ImportReject{{Line: 6, Reason: "email: required"}, {Line: 7, Reason: "plan_no: required"}}
		_, err := s.Import(ctx, repo.ImportFile{Name: "td.csv", Hash: "td", DataRows: 6}, rows, rejects, t0)
		must(t, err)
		runID := run(t, s)
		for i, ref := range []string{"td-phys", "td-mail", "td-mail2"} {
			a := selectRef(t, s, t0, runID, ref, "050"+ref[3:])
			must(t, s.BeginOrder(ctx, &a, repo.LockGuard{}, ref != "td-phys", t0))
			must(t, s.OrderAccepted(ctx, &a, "ORD-"+ref, t0, t0.Add(time.Duration(i)*time.Second)))
		}
		polls, err := s.ClaimPolls(ctx, t0.Add(time.Minute), t0.Add(31*time.Minute), runID, "cred", 10, lease)
		must(t, err)
		if len(polls) != 3 {
			t.Fatalf("%d polls, want 3", len(polls))
		}
		for i := range polls {
			must(t, s.OrderCompleted(ctx, &polls[i], polls[i].MSN, false, t0.Add(time.Minute)))
		}
		r, err := s.NewReport(ctx, t0.Add(time.Hour), 10)
		must(t, err)
		c, err := s.ReportContent(ctx, r.ID)
		must(t, err)
		want := repo.ToDate{ProvisionedPhysical: 1, ProvisionedEmailed: 2, Rejects: 2}
		if c.ToDate != want || c.Totals[repo.StateProvisioned] != 3 {
			t.Fatalf("to date %+v (provisioned %d), want %+v", c.ToDate, c.Totals[repo.StateProvisioned], want)
		}
	})
}
