// Package repotest gives tests a fresh, isolated store: on PostgreSQL a new
// schema per test (dropped at cleanup), on SQLite a new file in t.TempDir().
//
// PostgreSQL is found through TEST_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable). When it is
// unreachable the test is skipped, naming TEST_DATABASE_URL, except under
// CI=true, where it fails.
package repotest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/lib/pq" // "postgres" driver

	"github.com/esimbatch/esimbatch/repo"
)

// DefaultURL is used when TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresURL creates an empty schema test_<random> and returns a URL whose
// connections use it (search_path). The schema is dropped at cleanup.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		base = DefaultURL
	}
	admin, err := sql.Open("postgres", base)
	if err != nil {
		unreachable(t, base, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		unreachable(t, base, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		admin.Close()
		t.Fatalf("repotest: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("repotest: drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("repotest: TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema) // lib/pq sends unknown keys as run-time parameters
	u.RawQuery = q.Encode()
	return u.String()
}

func unreachable(t testing.TB, base string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("repotest: PostgreSQL at TEST_DATABASE_URL (%s) is unreachable under CI=true: %v", redactURL(base), err)
	}
	t.Skipf("repotest: PostgreSQL at TEST_DATABASE_URL (%s) is unreachable, skipping: %v", redactURL(base), err)
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

// SQLiteURL returns the path of a new SQLite database file in t.TempDir().
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "esimbatch.db")
}

// NewPostgres returns a migrated store on a fresh PostgreSQL schema, closed
// at cleanup.
func NewPostgres(t testing.TB) *repo.Store { t.Helper(); return open(t, PostgresURL(t)) }

// NewSQLite returns a migrated store on a fresh SQLite file, closed at cleanup.
func NewSQLite(t testing.TB) *repo.Store { t.Helper(); return open(t, SQLiteURL(t)) }

func open(t testing.TB, url string) *repo.Store {
	t.Helper()
	ctx := context.Background()
	s, err := repo.Open(ctx, url)
	if err != nil {
		t.Fatalf("repotest: open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("repotest: migrate: %v", err)
	}
	return s
}

// Dialects names the dialects Each runs, with their constructors.
func Dialects() []struct {
	Name string
	New  func(testing.TB) *repo.Store
} {
	return []struct {
		Name string
		New  func(testing.TB) *repo.Store
	}{
		{repo.DialectPostgres, NewPostgres},
		{repo.DialectSQLite, NewSQLite},
	}
}

// Each runs fn as a subtest per dialect (postgres, sqlite), each with its
// own fresh migrated store. A skipped PostgreSQL skips only its subtest.
func Each(t *testing.T, fn func(t *testing.T, s *repo.Store)) {
	t.Helper()
	for _, d := range Dialects() {
		t.Run(d.Name, func(t *testing.T) {
			fn(t, d.New(t))
		})
	}
}
