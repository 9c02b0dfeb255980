package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestImportCommand(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "import.db")
	fresh := filepath.Join(t.TempDir(), "fresh.db")
	day1 := filepath.Join("..", "..", "jobs", "testdata", "import", "day1.csv")
	day2 := filepath.Join("..", "..", "jobs", "testdata", "import", "day2.csv")
	refused := filepath.Join("..", "..", "jobs", "testdata", "import", "refused.csv")
	xlsx := filepath.Join("..", "..", "jobs", "sales", "testdata", "good.xlsx")
	withDB := map[string]string{"DATABASE_URL": dbPath}

	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		want     []string // lines or fragments expected in stdout+stderr
		notWant  []string
	}{
		{name: "migrate first", env: withDB, args: []string{"migrate"}, wantCode: exitOK},
		{name: "no file", env: withDB, args: []string{"import"}, wantCode: exitConfig},
		{name: "bad flag", env: withDB, args: []string{"import", "--nope", day1}, wantCode: exitConfig},
		{name: "no DATABASE_URL", env: map[string]string{}, args: []string{"import", day1}, wantCode: exitConfig},
		{name: "schema behind", env: map[string]string{"DATABASE_URL": fresh}, args: []string{"import", day1},
			wantCode: exitConfig, want: []string{"batch migrate"}},
		{
			name: "rejected rows still exit 0, verbose lists them", env: withDB,
			args:     []string{"import", "--verbose", day1},
			wantCode: exitOK,
			want: []string{
				day1 + ": accepted 3, duplicate 0, rejected 2, blank 1\n",
				day1 + `:6: email "not-an-email": not an email address` + "\n",
				day1 + `:7: sales_ref "D1-1" repeats line 2` + "\n",
			},
		},
		{
			name: "a refused file exits 1 and the others still go in", env: withDB,
			args:     []string{"import", refused, day1, day2},
			wantCode: exitFailed,
			want: []string{
				refused + `: not imported: header on line 1 has no "email" column`,
				day1 + ": accepted 0, duplicate 0, rejected 0, blank 0, already imported\n",
				day2 + ": accepted 1, duplicate 2, rejected 0, blank 0\n",
				"1 of 3 files not imported",
			},
			notWant: []string{":6: email"}, // no --verbose
		},
		{
			name: "named sheet", env: withDB, args: []string{"import", "--sheet", "Other", xlsx},
			wantCode: exitOK, want: []string{xlsx + ": accepted 1, duplicate 0, rejected 0, blank 0\n"},
		},
		{
			name: "missing sheet", env: withDB, args: []string{"import", "--sheet", "Nope", day1, xlsx},
			wantCode: exitFailed, want: []string{xlsx + `: not imported: no sheet "Nope"`, "already imported"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			e := env{
				lookup: func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok },
				stdout: &out, stderr: &out,
			}
			err := run(context.Background(), tc.args, e)
			if got := exitCode(err); got != tc.wantCode {
				t.Fatalf("exit %d (%v), want %d; output:\n%s", got, err, tc.wantCode, out.String())
			}
			text := out.String()
			if err != nil {
				text += err.Error()
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("output lacks %q:\n%s", w, text)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(text, w) {
					t.Errorf("output has %q:\n%s", w, text)
				}
			}
		})
	}
}
