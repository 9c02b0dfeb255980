package main

import (
	"context"
	"strings"
	"testing"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// `batch run` and `batch status` refuse a database whose schema is behind
// (never migrated) or ahead (migrated by a newer binary: a goose version this
// one does not know) with exit 2, on both dialects; `batch migrate` brings a
// behind one up to date and then both start.
func TestSchemaMismatchExits2(t *testing.T) {
	for _, d := range []struct {
		name string
		url  func(testing.TB) string
	}{
		{"postgres", repotest.PostgresURL},
		{"sqlite", repotest.SQLiteURL},
	} {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			url := d.url(t)
			vars := map[string]string{
				"DATABASE_URL": url, "OCTANE_SOAP_URL": "http://127.0.0.1:1/tiab", "OCTANE_REST_URL": "http://127.0.0.1:1/tiab/api",
				"OCTANE_USERNAME": "u", "OCTANE_PASSWORD": "p", "OCTANE_GROUP_NO": "1",
			}
			expect := func(stage string, args []string, want int, wantText string) {
				t.Helper()
				e, _, stderr := testEnv(vars)
				err := run(ctx, args, e)
				if got := exitCode(err); got != want {
					t.Fatalf("%s: batch %s exit %d (%v), want %d; stderr:\n%s", stage, args[0], got, err, want, stderr)
				}
				if wantText != "" && (err == nil || !strings.Contains(err.Error(), wantText)) {
					t.Fatalf("%s: batch %s error %v, want it to say %q", stage, args[0], err, wantText)
				}
			}
			expect("behind", []string{"status"}, exitConfig, "batch migrate")
			expect("behind", []string{"run", "--phases", "poll"}, exitConfig, "batch migrate")
			expect("migrate", []string{"migrate"}, exitOK, "")
			expect("migrate again", []string{"migrate"}, exitOK, "")
			expect("current", []string{"status"}, exitOK, "")

			s, err := repo.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.DB().ExecContext(ctx, s.DB().Rebind(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, ?)`), 99, true); err != nil {
				t.Fatal(err)
			}
			expect("ahead", []string{"status"}, exitConfig, "newer")
			expect("ahead", []string{"run", "--phases", "poll"}, exitConfig, "newer")
		})
	}
}
