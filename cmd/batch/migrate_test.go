package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/esimbatch/esimbatch/repo"
)

func TestMigrateCommand(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "m.db")
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
	}{
		{"no DATABASE_URL", map[string]string{}, nil, exitConfig},
		{"blank DATABASE_URL", map[string]string{"DATABASE_URL": "  "}, nil, exitConfig},
		{"stray argument", map[string]string{"DATABASE_URL": dbPath}, []string{"now"}, exitConfig},
		{"applies", map[string]string{"DATABASE_URL": dbPath}, nil, exitOK},
		{"again is a no-op", map[string]string{"DATABASE_URL": dbPath}, nil, exitOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			e := env{
				lookup: func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok },
				stdout: &out, stderr: &out,
			}
			err := run(context.Background(), append([]string{"migrate"}, tc.args...), e)
			if got := exitCode(err); got != tc.wantCode {
				t.Fatalf("exit %d (%v), want %d", got, err, tc.wantCode)
			}
		})
	}
	s, err := repo.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CheckSchema(context.Background()); err != nil {
		t.Fatalf("after batch migrate, CheckSchema = %v", err)
	}
}

// A DATABASE_URL that names no store exits 2 naming the variable, never
// quotes the URL (it may hold a password) and creates no file.
func TestBadDatabaseURLIsConfiguration(t *testing.T) {
	dir := t.TempDir()
	for _, url := range []string{"mysql://u:hunter2@db/x", filepath.Join(dir, "state"), "db.example.com"} {
		for _, cmd := range []string{"migrate", "status", "run"} {
			var out bytes.Buffer
			vars := map[string]string{"DATABASE_URL": url, "OCTANE_SOAP_URL": "http://127.0.0.1:1/tiab",
				"OCTANE_REST_URL": "http://127.0.0.1:1/tiab/api", "OCTANE_USERNAME": "u", "OCTANE_PASSWORD": "p", "OCTANE_GROUP_NO": "7"}
			e := env{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, stdout: &out, stderr: &out}
			err := run(context.Background(), []string{cmd}, e)
			if got := exitCode(err); got != exitConfig || !strings.Contains(err.Error(), "DATABASE_URL") {
				t.Errorf("%s with DATABASE_URL %q: exit %d (%v), want 2 naming DATABASE_URL", cmd, url, got, err)
			}
			if err != nil && strings.Contains(err.Error()+out.String(), "hunter2") {
				t.Errorf("%s: the password reached the output", cmd)
			}
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("files created: %v", entries)
	}
}
