package jobs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/jobs/sales"
	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

var importNow = time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)

// counts are the rows the store holds.
type storeCounts struct{ activations, rejects, imports int }

func countRows(t *testing.T, s *repo.Store) storeCounts {
	t.Helper()
	var c storeCounts
	for q, dst := range map[string]*int{
		`SELECT COUNT(*) FROM activations`:    &c.activations,
		`SELECT COUNT(*) FROM import_rejects`: &c.rejects,
		`SELECT COUNT(*) FROM imports`:        &c.imports,
	} {
		if err := s.DB().GetContext(context.Background(), dst, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return c
}

type wantFile struct {
	accepted, duplicate, rejected, blank int
	already                              bool
	refused                              error
}

func checkResult(t *testing.T, got FileResult, want wantFile) {
	t.Helper()
	if want.refused != nil {
		if !errors.Is(got.Err, want.refused) {
			t.Errorf("%s: Err = %v, want %v", got.File, got.Err, want.refused)
		}
		return
	}
	if got.Err != nil {
		t.Fatalf("%s: %v", got.File, got.Err)
	}
	if got.Accepted != want.accepted || got.Duplicate != want.duplicate || got.Rejected != want.rejected ||
		got.Blank != want.blank || got.AlreadyImported != want.already {
		t.Errorf("%s", got.Summary())
		t.Errorf("want accepted %d, duplicate %d, rejected %d, blank %d, already imported %v",
			want.accepted, want.duplicate, want.rejected, want.blank, want.already)
	}
	if !got.AlreadyImported {
		if sum := got.Accepted + got.Duplicate + got.Rejected + got.Blank; sum != got.DataRows {
			t.Errorf("%s: counts add up to %d, data rows %d", got.File, sum, got.DataRows)
		}
		if len(got.Rejects) != got.Rejected {
			t.Errorf("%s: %d rejects listed, %d counted", got.File, len(got.Rejects), got.Rejected)
		}
	}
}

func TestImportFiles(t *testing.T) {
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		im := NewImporter(s, nil, ImportOptions{})
		steps := []struct {
			name  string
			paths []string
			want  []wantFile
			after storeCounts
		}{
			{
				name:  "first file: accepted, rejected within the file, blank",
				paths: []string{"testdata/import/day1.csv"},
				want:  []wantFile{{accepted: 3, rejected: 2, blank: 1}},
				after: storeCounts{activations: 3, rejects: 2, imports: 1},
			},
			{
				name:  "same content under another name creates nothing",
				paths: []string{"testdata/import/day1-copy.csv", "testdata/import/day1.csv"},
				want:  []wantFile{{already: true}, {already: true}},
				after: storeCounts{activations: 3, rejects: 2, imports: 1},
			},
			{
				name:  "duplicates across files change nothing; a refused file does not stop the others",
				paths: []string{"testdata/import/refused.csv", "testdata/import/day2.csv", "testdata/import/missing.csv"},
				want:  []wantFile{{refused: sales.ErrMissingColumn}, {accepted: 1, duplicate: 2}, {refused: os.ErrNotExist}},
				after: storeCounts{activations: 4, rejects: 2, imports: 2},
			},
			{
				name:  "XLSX",
				paths: []string{"sales/testdata/good.xlsx"},
				want:  []wantFile{{accepted: 3, rejected: 2, blank: 2}},
				after: storeCounts{activations: 7, rejects: 4, imports: 3},
			},
		}
		for _, st := range steps {
			t.Run(st.name, func(t *testing.T) {
				res, err := im.ImportFiles(ctx, st.paths, importNow)
				if err != nil {
					t.Fatalf("ImportFiles: %v", err)
				}
				if len(res) != len(st.want) {
					t.Fatalf("%d results, want %d", len(res), len(st.want))
				}
				for i, w := range st.want {
					checkResult(t, res[i], w)
				}
				if got := countRows(t, s); got != st.after {
					t.Errorf("store holds %+v, want %+v", got, st.after)
				}
			})
		}

		// What landed: pending activations due now, rejects with file, line,
		// reason and raw row.
		var a struct {
			State      string `db:"state"`
			PlanNo     int    `db:"plan_no"`
			SourceLine int    `db:"source_line"`
			SIMType    string `db:"sim_type"`
			SIMSerial  string `db:"sim_serial"`
		}
		if err := s.DB().GetContext(ctx, &a, s.DB().Rebind(`SELECT state, plan_no, source_line, sim_type, sim_serial FROM activations WHERE sales_ref = ?`), "D1-3"); err != nil {
			t.Fatal(err)
		}
		if a.State != "pending" || a.PlanNo != 777 || a.SourceLine != 5 || a.SIMType != "physical" || a.SIMSerial != "89610123456789012347" {
			t.Errorf("D1-3 stored as %+v", a)
		}
		var rj []struct {
			File   string `db:"file"`
			Line   int    `db:"line"`
			Reason string `db:"reason"`
			Raw    string `db:"raw"`
		}
		if err := s.DB().SelectContext(ctx, &rj, `SELECT file, line, reason, raw FROM import_rejects WHERE file = 'day1.csv' ORDER BY line`); err != nil {
			t.Fatal(err)
		}
		if len(rj) != 2 || rj[0].Line != 6 || !strings.Contains(rj[0].Reason, "email") || rj[0].Raw != "D1-4,Bad,Email,not-an-email,1,,," ||
			rj[1].Line != 7 || !strings.Contains(rj[1].Reason, "repeats line 2") {
			t.Errorf("day1.csv rejects stored as %+v", rj)
		}
	})
}

func TestFileResultSummary(t *testing.T) {
	tests := []struct {
		name string
		r    FileResult
		want string
	}{
		{"counts", FileResult{File: "a.csv", Accepted: 3, Duplicate: 2, Rejected: 1, Blank: 4}, "a.csv: accepted 3, duplicate 2, rejected 1, blank 4"},
		{"already imported", FileResult{File: "a.csv", AlreadyImported: true}, "a.csv: accepted 0, duplicate 0, rejected 0, blank 0, already imported"},
		{"refused", FileResult{File: "b.csv", Err: errors.New(`b.csv: header on line 1 has no "email" column`)}, `b.csv: not imported: header on line 1 has no "email" column`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Summary(); got != tt.want {
				t.Errorf("Summary() = %q, want %q", got, tt.want)
			}
		})
	}
}

// copyFiles copies testdata/import files into dir under new names.
func copyFiles(t *testing.T, dir string, names map[string]string) {
	t.Helper()
	for dst, src := range names {
		b, err := os.ReadFile(filepath.Join("testdata/import", src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, dst)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// listFiles returns every file under dir, relative, sorted.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestImportDir(t *testing.T) {
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		dir := t.TempDir()
		copyFiles(t, dir, map[string]string{
			"a_day1.csv":           "day1.csv",
			"b_day1_again.csv":     "day1-copy.csv", // same content: skipped by hash, still moved
			"c_day2.CSV":           "day2.csv",
			"d_refused.csv":        "refused.csv",
			"notes.txt":            "day2.csv", // not a sales file
			"~$lock.xlsx":          "day2.csv", // Excel's lock file
			"processed/a_day1.csv": "day2.csv", // an older file of the same name: must survive
		})
		im := NewImporter(s, nil, ImportOptions{})
		res, err := im.ImportDir(ctx, dir, importNow)
		if err != nil {
			t.Fatalf("ImportDir: %v", err)
		}
		var files []string
		for _, r := range res {
			files = append(files, filepath.Base(r.File))
		}
		if want := []string{"a_day1.csv", "b_day1_again.csv", "c_day2.CSV", "d_refused.csv"}; !slices.Equal(files, want) {
			t.Fatalf("handled %q, want %q", files, want)
		}
		checkResult(t, res[0], wantFile{accepted: 3, rejected: 2, blank: 1})
		checkResult(t, res[1], wantFile{already: true})
		checkResult(t, res[2], wantFile{accepted: 1, duplicate: 2})
		checkResult(t, res[3], wantFile{refused: sales.ErrMissingColumn})

		want := []string{
			"notes.txt",
			"processed/a_day1-1.csv", // the clash got a suffix
			"processed/a_day1.csv",
			"processed/b_day1_again.csv",
			"processed/c_day2.CSV",
			"rejected/d_refused.csv",
			"rejected/d_refused.csv.error.txt",
			"~$lock.xlsx",
		}
		if got := listFiles(t, dir); !slices.Equal(got, want) {
			t.Errorf("folder after import:\n got %q\nwant %q", got, want)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "processed/a_day1.csv")); err != nil || !strings.HasPrefix(string(b), "Sales Ref;") {
			t.Errorf("the older processed/a_day1.csv was overwritten (%v)", err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "rejected/d_refused.csv.error.txt")); !strings.Contains(string(b), `"email"`) {
			t.Errorf("error note = %q, want the missing column named", b)
		}
		// Recorded for the report and `batch status`, not only in the note.
		refused, err := s.RefusedImports(ctx, importNow.Add(-time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(refused.Rows) != 1 {
			t.Fatalf("refused files recorded: %+v, want d_refused.csv alone", refused.Rows)
		}
		if r := refused.Rows[0]; r.File != "d_refused.csv" || r.MovedTo != "rejected" || len(r.ContentHash) != 64 ||
			r.Reason != `header on line 1 has no "email" column: missing required column` || !r.RefusedAt.Equal(importNow) {
			t.Errorf("refused file recorded as %+v", r)
		}

		// A second pass finds nothing new.
		res, err = im.ImportDir(ctx, dir, importNow.Add(time.Hour))
		if err != nil || len(res) != 0 {
			t.Errorf("second pass: %v, %+v", err, res)
		}
		if got := countRows(t, s); got != (storeCounts{activations: 4, rejects: 2, imports: 2}) {
			t.Errorf("store holds %+v", got)
		}
		if refused, err := s.RefusedImports(ctx, importNow.Add(-time.Hour), 0); err != nil || refused.Count != 1 {
			t.Errorf("refused files after a second pass: %+v, %v; want still 1", refused, err)
		}
	})
}

// A file refused whole is recorded before it is moved: when the move fails
// the file stays, the next pass refuses it again and it is recorded once.
func TestImportDirRefusedRecordedOnce(t *testing.T) {
	s := repotest.NewSQLite(t)
	ctx := context.Background()
	dir := t.TempDir()
	copyFiles(t, dir, map[string]string{"bad.csv": "refused.csv"})
	// A file where the rejected/ folder should be: the move fails.
	if err := os.WriteFile(filepath.Join(dir, RejectedDir), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	im := NewImporter(s, nil, ImportOptions{})
	if _, err := im.ImportDir(ctx, dir, importNow); err == nil || !strings.Contains(err.Error(), "move") {
		t.Fatalf("ImportDir with rejected/ blocked = %v, want the failed move", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.csv")); err != nil {
		t.Fatalf("bad.csv left the folder although its move failed: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, RejectedDir)); err != nil {
		t.Fatal(err)
	}
	if _, err := im.ImportDir(ctx, dir, importNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := listFiles(t, dir); !slices.Equal(got, []string{"rejected/bad.csv", "rejected/bad.csv.error.txt"}) {
		t.Errorf("folder %q", got)
	}
	refused, err := s.RefusedImports(ctx, importNow.Add(-time.Hour), 0)
	if err != nil || refused.Count != 1 || !refused.Rows[0].RefusedAt.Equal(importNow) {
		t.Fatalf("refused files %+v, %v; want bad.csv once, from the first pass", refused, err)
	}
}

// failingStore is the real store whose Import checks that the file is still
// in the folder while its rows go in, and can be made to fail.
type failingStore struct {
	*repo.Store
	t    *testing.T
	dir  string // the file being imported must still be here during Import
	fail error
}

func (f *failingStore) Import(ctx context.Context, file repo.ImportFile, rows []repo.NewActivation, rejects []repo.ImportReject, now time.Time) (repo.ImportResult, error) {
	if _, err := os.Stat(filepath.Join(f.dir, file.Name)); err != nil {
		f.t.Errorf("file moved before its rows were committed: %v", err)
	}
	if f.fail != nil {
		return repo.ImportResult{}, f.fail
	}
	return f.Store.Import(ctx, file, rows, rejects, now)
}

func TestImportDirMovesOnlyAfterCommit(t *testing.T) {
	s := repotest.NewSQLite(t)
	ctx := context.Background()
	dir := t.TempDir()
	copyFiles(t, dir, map[string]string{"a.csv": "day1.csv", "b.csv": "day2.csv"})
	fs := &failingStore{Store: s, t: t, dir: dir, fail: errors.New("connection reset")}
	im := NewImporter(fs, nil, ImportOptions{})

	// The store fails: nothing moves, the phase reports it, b.csv waits.
	res, err := im.ImportDir(ctx, dir, importNow)
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("ImportDir with a failing store = %v, want the store's error", err)
	}
	if len(res) != 1 || res[0].Err == nil {
		t.Errorf("results %+v, want a.csv with Err and nothing after it", res)
	}
	if got := listFiles(t, dir); !slices.Equal(got, []string{"a.csv", "b.csv"}) {
		t.Errorf("files moved after a failed commit: %q", got)
	}

	// A run that committed but stopped before the move: the next pass skips
	// the file by hash and moves it.
	fs.fail = nil
	if _, err := NewImporter(s, nil, ImportOptions{}).ImportFiles(ctx, []string{filepath.Join(dir, "a.csv")}, importNow); err != nil {
		t.Fatal(err)
	}
	res, err = im.ImportDir(ctx, dir, importNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || !res[0].AlreadyImported || res[1].Accepted != 1 {
		t.Errorf("results %+v", res)
	}
	if got := listFiles(t, dir); !slices.Equal(got, []string{"processed/a.csv", "processed/b.csv"}) {
		t.Errorf("folder %q", got)
	}
	if got := countRows(t, s); got != (storeCounts{activations: 4, rejects: 2, imports: 2}) {
		t.Errorf("store holds %+v", got)
	}
}

func TestDirPhaseCounts(t *testing.T) {
	s := repotest.NewSQLite(t)
	dir := t.TempDir()
	copyFiles(t, dir, map[string]string{"a.csv": "day1.csv", "b.csv": "day1-copy.csv", "c.csv": "refused.csv"})
	counts, err := NewImporter(s, nil, ImportOptions{}).DirPhase(dir)(context.Background(), importNow)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"files": 3, "accepted": 3, "rejected": 2, "blank": 1, "already_imported": 1, "refused": 1}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("counts[%s] = %d, want %d (all: %v)", k, counts[k], v, counts)
		}
	}
}

func TestImportFileTooLarge(t *testing.T) {
	s := repotest.NewSQLite(t)
	dir := t.TempDir()
	copyFiles(t, dir, map[string]string{"big.csv": "day1.csv"})
	im := NewImporter(s, nil, ImportOptions{Options: sales.Options{MaxFileBytes: 100}})
	res, err := im.ImportDir(context.Background(), dir, importNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !errors.Is(res[0].Err, sales.ErrTooLarge) {
		t.Fatalf("results %+v, want ErrTooLarge", res)
	}
	if got := listFiles(t, dir); !slices.Equal(got, []string{"rejected/big.csv", "rejected/big.csv.error.txt"}) {
		t.Errorf("folder %q", got)
	}
}

// TestImportQuietCases imports, into the real store, the input that used to
// go wrong without a word: a customer without a name (accepted, then failed
// at addCustomer) and, in XLSX, number cells whose leading zeros only their
// format showed. The rejects name the file, the line and the fields.
func TestImportQuietCases(t *testing.T) {
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		im := NewImporter(s, nil, ImportOptions{})
		files := []struct {
			path         string
			accepted     int
			rejectLines  []int
			fields       map[string]map[string]string // sales_ref -> column -> stored value
			withoutNames []string                     // accepted without a name: they have a cust_no
		}{
			{
				path: "testdata/import/quiet.csv", accepted: 3, rejectLines: []int{3, 6},
				fields: map[string]map[string]string{
					"QC-1": {"postcode": "0800"},
					"QC-4": {"surname": "Solo", "given_names": ""},
				},
				withoutNames: []string{"QC-3"},
			},
			{
				path: "sales/testdata/quiet.xlsx", accepted: 9, rejectLines: []int{5, 6},
				fields: map[string]map[string]string{
					"Q-1":    {"postcode": "0800"},
					"Q-2":    {"postcode": "0800", "notes": "00412345678"},
					"Q-3":    {"sim_serial": "00123456", "cust_no": "88001"},
					"000042": {"given_names": "Fay"},
				},
				withoutNames: []string{"Q-7"},
			},
		}
		for _, f := range files {
			t.Run(filepath.Ext(f.path), func(t *testing.T) {
				res, err := im.ImportFiles(ctx, []string{f.path}, importNow)
				if err != nil || len(res) != 1 || res[0].Err != nil {
					t.Fatalf("ImportFiles(%s) = %+v, %v", f.path, res, err)
				}
				if r := res[0]; r.Accepted != f.accepted || r.Rejected != len(f.rejectLines) {
					t.Errorf("%s, want accepted %d, rejected %d", r.Summary(), f.accepted, len(f.rejectLines))
				}
				var rj []struct {
					File   string `db:"file"`
					Line   int    `db:"line"`
					Reason string `db:"reason"`
				}
				if err := s.DB().SelectContext(ctx, &rj, s.DB().Rebind(`SELECT file, line, reason FROM import_rejects WHERE file = ? ORDER BY line`),
					filepath.Base(f.path)); err != nil {
					t.Fatal(err)
				}
				if len(rj) != len(f.rejectLines) {
					t.Fatalf("stored rejects %+v, want lines %v", rj, f.rejectLines)
				}
				for i, r := range rj {
					if r.Line != f.rejectLines[i] || !strings.Contains(r.Reason, "given_names or surname") ||
						!strings.Contains(r.Reason, "cust_no is empty") {
						t.Errorf("reject %+v, want line %d naming given_names, surname and cust_no", r, f.rejectLines[i])
					}
				}
				for ref, cols := range f.fields {
					for col, want := range cols {
						var got string
						q := `SELECT COALESCE(CAST(` + col + ` AS TEXT), '') FROM activations WHERE sales_ref = ?`
						if err := s.DB().GetContext(ctx, &got, s.DB().Rebind(q), ref); err != nil {
							t.Fatalf("%s %s: %v", ref, col, err)
						}
						if got != want {
							t.Errorf("%s %s stored as %q, want %q", ref, col, got, want)
						}
					}
				}
				for _, ref := range f.withoutNames {
					var n int
					if err := s.DB().GetContext(ctx, &n, s.DB().Rebind(`SELECT COUNT(*) FROM activations
WHERE sales_ref = ? AND given_names = '' AND surname = '' AND cust_no IS NOT NULL`), ref); err != nil || n != 1 {
						t.Errorf("%s: a known customer without a name was not accepted (%d rows, %v)", ref, n, err)
					}
				}
			})
		}
	})
}
