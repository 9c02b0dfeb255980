package main

import (
	"bytes"
	"context"
	"path/filepath"
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
