package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
)

// `batch status` lists the files the import refused whole in the last seven
// days, newest first, at most 10, saying whether a report listed them yet.
func TestStatusListsRefusedImports(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			url := d.url(t)
			s, _ := opsStore(t, url) // migrated; closed at the end of the test
			now := time.Now().UTC().Truncate(time.Second)
			record := func(name string, at time.Time) {
				t.Helper()
				if _, err := s.RecordRefusedImport(ctx, repo.RefusedImport{File: name, ContentHash: name,
					Reason: `header on line 1 has no "email" column: missing required column`, MovedTo: "rejected"}, at); err != nil {
					t.Fatal(err)
				}
			}
			record("old.csv", now.Add(-8*24*time.Hour)) // past the window
			for i := range 11 {
				record(fmt.Sprintf("bad-%02d.csv", i), now.Add(-time.Duration(11-i)*time.Hour))
			}
			// bad-00 .. bad-10: bad-10 is the newest. A report lists the first.
			rep, err := s.NewReport(ctx, now.Add(-30*time.Minute), 10)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.MarkReportDelivered(ctx, rep.ID, now.Add(-30*time.Minute)); err != nil {
				t.Fatal(err)
			}
			record("new file.xlsx", now.Add(-time.Minute))

			e, out, stderr := testEnv(map[string]string{"DATABASE_URL": url})
			if err := run(ctx, []string{"status"}, e); err != nil {
				t.Fatalf("status: %v\n%s", err, stderr)
			}
			text := out.String()
			for _, want := range []string{
				"import files refused in the last 7 days: 12\n",
				fmt.Sprintf(`  %s  "new file.xlsx"  moved to rejected/, not yet reported  "header on line 1 has no \"email\" column: missing required column"`,
					now.Add(-time.Minute).Format(time.RFC3339)),
				fmt.Sprintf("  %s  bad-10.csv  moved to rejected/, reported  ", now.Add(-time.Hour).Format(time.RFC3339)),
				"  ... and 2 more\n",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("status lacks %q:\n%s", want, text)
				}
			}
			for _, absent := range []string{"old.csv", "bad-00.csv", "bad-01.csv"} {
				if strings.Contains(text, absent) {
					t.Errorf("status lists %s (too old, or past the 10 newest):\n%s", absent, text)
				}
			}

			// --json carries the same list.
			e, out, stderr = testEnv(map[string]string{"DATABASE_URL": url})
			if err := run(ctx, []string{"status", "--json"}, e); err != nil {
				t.Fatalf("status --json: %v\n%s", err, stderr)
			}
			var doc struct {
				Refused struct {
					Count int `json:"count"`
					Files []struct {
						File       string     `json:"file"`
						MovedTo    string     `json:"moved_to"`
						ReportedAt *time.Time `json:"reported_at"`
					} `json:"files"`
				} `json:"refused_imports"`
			}
			if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
				t.Fatalf("status --json: %v\n%s", err, out)
			}
			if r := doc.Refused; r.Count != 12 || len(r.Files) != 10 || r.Files[0].File != "new file.xlsx" ||
				r.Files[0].MovedTo != "rejected" || r.Files[0].ReportedAt != nil || r.Files[1].File != "bad-10.csv" || r.Files[1].ReportedAt == nil {
				t.Errorf("status --json refused_imports = %+v, want 12 counted, the newest 10 listed, new file.xlsx first and unreported", r)
			}
		})
	}
}
