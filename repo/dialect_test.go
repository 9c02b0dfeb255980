package repo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/esimbatch/esimbatch/repo"
)

func TestDialectOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, url, dialect, addr string
	}{
		{"postgres url", "postgres://u:pw@db/x?sslmode=disable", repo.DialectPostgres, "postgres://u:pw@db/x?sslmode=disable"},
		{"postgresql url", "postgresql://db/x", repo.DialectPostgres, "postgresql://db/x"},
		{"keyword string", "host=db dbname=x user=u password=pw", repo.DialectPostgres, "host=db dbname=x user=u password=pw"},
		{"keyword string, dbname first", " dbname=x host=db", repo.DialectPostgres, "dbname=x host=db"},
		{"sqlite prefix", "sqlite:/var/lib/batch/state", repo.DialectSQLite, "/var/lib/batch/state"},
		{"file prefix", "file:/var/lib/batch.db?mode=rwc", repo.DialectSQLite, "file:/var/lib/batch.db?mode=rwc"},
		{"db path", "/var/lib/batch.db", repo.DialectSQLite, "/var/lib/batch.db"},
		{"sqlite path", "state.sqlite", repo.DialectSQLite, "state.sqlite"},
		{"sqlite3 path", "rel/state.SQLITE3", repo.DialectSQLite, "rel/state.SQLITE3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, addr, err := repo.DialectOf(tc.url)
			if err != nil || d != tc.dialect || addr != tc.addr {
				t.Fatalf("DialectOf(%q) = %q, %q, %v; want %q, %q", tc.url, d, addr, err, tc.dialect, tc.addr)
			}
		})
	}
	for _, bad := range []string{"mysql://u:secretpw@db/x", "db.example.com", "/var/lib/batch", "sqlite:", "https://x/y.db", "pw=secretpw"} {
		t.Run("bad "+bad, func(t *testing.T) {
			_, _, err := repo.DialectOf(bad)
			if !errors.Is(err, repo.ErrBadURL) {
				t.Fatalf("DialectOf(%q) = %v, want ErrBadURL", bad, err)
			}
			if strings.Contains(err.Error(), "secretpw") {
				t.Fatalf("the error quotes the URL's password: %v", err)
			}
		})
	}
}

// A typo never becomes a SQLite file named after it.
func TestOpenCreatesNoFileForABadURL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, url := range []string{filepath.Join(dir, "state"), filepath.Join(dir, "postgres:db"), "mysql://u:pw@db/x"} {
		if _, err := repo.Open(context.Background(), url); !errors.Is(err, repo.ErrBadURL) {
			t.Errorf("Open(%q) = %v, want ErrBadURL", url, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("files created for bad URLs: %v", entries)
	}
}
