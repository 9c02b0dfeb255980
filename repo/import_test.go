package repo_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// salesRows returns n valid rows with refs prefix-0 .. prefix-(n-1) on lines
// 2 .. n+1; every third has a customer number, every fourth is physical.
func salesRows(prefix string, n int) []repo.NewActivation {
	rows := make([]repo.NewActivation, n)
	for i := range rows {
		rows[i] = salesRow(prefix, i, i+2)
	}
	return rows
}

func salesRow(prefix string, i, line int) repo.NewActivation {
	r := repo.NewActivation{Line: line, SalesRef: fmt.Sprintf("%s-%d", prefix, i), GivenNames: fmt.Sprintf("G%d", i),
		Surname: "S", Email: fmt.Sprintf("line%d@x", line), AddressLine1: fmt.Sprintf("%d Long St", i), Suburb: "Sub",
		AddrState: "NSW", Postcode: "2000", Notes: "n", PlanNo: 100 + i}
	if i%3 == 0 {
		c := int64(i)
		r.CustNo = &c
	}
	if i%4 == 0 {
		r.SIMType, r.SIMSerial = "physical", fmt.Sprintf("8961%d", i)
	}
	return r
}

// TestImportChunks checks exact accepted and duplicate counts when a file
// repeats refs of an earlier file and of its own earlier rows, across and
// within chunk boundaries, and that every column lands where it belongs.
func TestImportChunks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		n     int
		chunk int // 0: Import's default
	}{
		{"one row per statement", 400, 1},
		{"chunks of 7", 2500, 7},
		{"chunks of 100", 2500, 100},
		{"default chunk", 2500, 0},
		{"chunk above the parameter limit", 2500, 1 << 20},
	}
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		for ti, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				imp := func(f repo.ImportFile, rows []repo.NewActivation, rejects []repo.ImportReject) repo.ImportResult {
					t.Helper()
					var res repo.ImportResult
					var err error
					if tc.chunk == 0 {
						res, err = s.Import(ctx, f, rows, rejects, t0)
					} else {
						res, err = s.ImportChunked(ctx, f, rows, rejects, t0, tc.chunk)
					}
					must(t, err)
					return res
				}
				prefix := fmt.Sprintf("C%d", ti)
				// An earlier file holds every fifth ref, with other data.
				var earlier []repo.NewActivation
				for i := 0; i < tc.n; i += 5 {
					r := salesRow(prefix, i, 1000+i)
					r.Email = "earlier@x"
					earlier = append(earlier, r)
				}
				first := imp(repo.ImportFile{Name: prefix + "-a.csv", Hash: prefix + "-a"}, earlier, nil)
				if first.Accepted != len(earlier) || first.Duplicate != 0 {
					t.Fatalf("earlier file = %+v, want %d accepted", first, len(earlier))
				}

				// This file: every ref once, every 50th repeated at once
				// (straddling some boundaries), then every 13th again at
				// the end (in later chunks than the first).
				var rows []repo.NewActivation
				for i := 0; i < tc.n; i++ {
					rows = append(rows, salesRow(prefix, i, len(rows)+2))
					if i%50 == 49 {
						r := salesRow(prefix, i, len(rows)+2)
						r.Email = "again@x"
						rows = append(rows, r)
					}
				}
				for i := 0; i < tc.n; i += 13 {
					r := salesRow(prefix, i, len(rows)+2)
					r.Email = "again@x"
					rows = append(rows, r)
				}
				var rejects []repo.ImportReject
				for i := 0; i < tc.n/10; i++ {
					rejects = append(rejects, repo.ImportReject{Line: 10_000 + i, Reason: fmt.Sprintf("reason %d", i), Raw: fmt.Sprintf("raw,%d", i)})
				}
				f := repo.ImportFile{Name: prefix + "-b.csv", Hash: prefix + "-b", DataRows: len(rows) + len(rejects), Blank: 3}
				got := imp(f, rows, rejects)
				wantAcc := tc.n - len(earlier)
				want := repo.ImportResult{ImportID: got.ImportID, Accepted: wantAcc, Duplicate: len(rows) - wantAcc, Rejected: len(rejects), Blank: 3}
				if got != want {
					t.Fatalf("Import = %+v, want %+v", got, want)
				}
				like := prefix + "-%"
				if n := count(t, s, `SELECT COUNT(*) FROM activations WHERE sales_ref LIKE ?`, like); n != tc.n {
					t.Fatalf("activations %s = %d, want %d", like, n, tc.n)
				}
				if n := count(t, s, `SELECT COUNT(*) FROM activations WHERE sales_ref LIKE ? AND import_id = ?`, like, got.ImportID); n != wantAcc {
					t.Fatalf("activations of this import = %d, want %d", n, wantAcc)
				}
				if n := count(t, s, `SELECT COUNT(*) FROM activations WHERE email = 'again@x'`); n != 0 {
					t.Fatalf("%d duplicates changed a row", n)
				}
				if n := count(t, s, `SELECT COUNT(*) FROM imports WHERE id = ? AND accepted = ? AND duplicate = ? AND rejected = ? AND data_rows = ? AND blank = 3`,
					got.ImportID, want.Accepted, want.Duplicate, want.Rejected, f.DataRows); n != 1 {
					t.Fatalf("imports row does not hold the counts %+v", want)
				}
				if n := count(t, s, `SELECT COUNT(*) FROM import_rejects WHERE import_id = ? AND file = ?`, got.ImportID, f.Name); n != len(rejects) {
					t.Fatalf("rejects stored = %d, want %d", n, len(rejects))
				}
				last := rejects[len(rejects)-1]
				if n := count(t, s, `SELECT COUNT(*) FROM import_rejects WHERE import_id = ? AND file = ? AND line = ? AND reason = ? AND raw = ? AND reported_at IS NULL`,
					got.ImportID, f.Name, last.Line, last.Reason, last.Raw); n != 1 {
					t.Fatalf("reject %+v not stored as given", last)
				}

				// A row from the last chunk, checked column by column.
				i := tc.n - 3 // for every n above: not a multiple of 3, 4, 5 or 13
				w := salesRow(prefix, i, 0)
				a, err := s.ActivationByRef(ctx, w.SalesRef)
				must(t, err)
				wantLine := i + 2 + i/50
				if a.GivenNames != w.GivenNames || a.Surname != w.Surname || a.Email != fmt.Sprintf("line%d@x", wantLine) ||
					a.AddressLine1 != w.AddressLine1 || a.Suburb != w.Suburb || a.AddrState != w.AddrState ||
					a.Postcode != w.Postcode || a.Notes != w.Notes || a.PlanNo != w.PlanNo || a.SIMType != "esim" ||
					a.SIMSerial != "" || a.CustNo != nil || a.State != repo.StatePending || !a.NextAttemptAt.Equal(t0) ||
					!a.CreatedAt.Equal(t0) || !a.UpdatedAt.Equal(t0) || a.ImportID == nil || *a.ImportID != got.ImportID ||
					a.SourceLine != wantLine {
					t.Fatalf("row %s = %+v", w.SalesRef, a)
				}
				// A physical row with a customer number, and one from the earlier file.
				p, err := s.ActivationByRef(ctx, salesRow(prefix, 12, 0).SalesRef)
				must(t, err)
				if p.SIMType != "physical" || p.SIMSerial != "896112" || p.CustNo == nil || *p.CustNo != 12 || p.PlanNo != 112 {
					t.Fatalf("physical row = %+v", p)
				}
				e, err := s.ActivationByRef(ctx, salesRow(prefix, 10, 0).SalesRef)
				must(t, err)
				if e.Email != "earlier@x" || e.ImportID == nil || *e.ImportID != first.ImportID || e.SourceLine != 1010 {
					t.Fatalf("row of the earlier file changed: %+v", e)
				}
			})
		}
	})
}

// TestImportAlreadyImported: the same content under another name, with
// other rows, writes nothing.
func TestImportAlreadyImported(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		first, err := s.ImportChunked(ctx, repo.ImportFile{Name: "a.csv", Hash: "h"}, salesRows("A", 50), []repo.ImportReject{{Line: 99, Reason: "r"}}, t0, 7)
		must(t, err)
		again, err := s.ImportChunked(ctx, repo.ImportFile{Name: "renamed.csv", Hash: "h"}, salesRows("B", 50),
			[]repo.ImportReject{{Line: 98, Reason: "r"}}, t0.Add(time.Hour), 7)
		must(t, err)
		if want := (repo.ImportResult{ImportID: first.ImportID, AlreadyImported: true}); again != want {
			t.Fatalf("second import = %+v, want %+v", again, want)
		}
		for query, want := range map[string]int{
			`SELECT COUNT(*) FROM activations`:    50,
			`SELECT COUNT(*) FROM import_rejects`: 1,
			`SELECT COUNT(*) FROM imports`:        1,
		} {
			if n := count(t, s, query); n != want {
				t.Errorf("%s = %d, want %d", query, n, want)
			}
		}
	})
}

// TestImportRollsBackWholeFile: a row the database refuses (a CHECK
// constraint) in the last chunk undoes the earlier chunks, the rejects and
// the hash, so the corrected file imports afterwards.
func TestImportRollsBackWholeFile(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		rows := salesRows("R", 2500)
		rows[2450].SIMType = "satellite" // line 2452, chunk lines 2402-2501
		rejects := []repo.ImportReject{{Line: 3000, Reason: "email: required", Raw: "x"}}
		f := repo.ImportFile{Name: "bad.csv", Hash: "bad", DataRows: 2501}
		_, err := s.ImportChunked(ctx, f, rows, rejects, t0, 100)
		if err == nil {
			t.Fatal("Import with a refused row succeeded")
		}
		if !strings.Contains(err.Error(), "lines 2402-2501") || !strings.Contains(err.Error(), "bad.csv") {
			t.Errorf("error %q does not name the file and the failing lines", err)
		}
		for _, table := range []string{"activations", "import_rejects", "imports"} {
			if n := count(t, s, `SELECT COUNT(*) FROM `+table); n != 0 {
				t.Errorf("%s after a failed import: %d rows, want 0", table, n)
			}
		}
		if ok, err := s.ImportedHash(ctx, f.Hash); err != nil || ok {
			t.Fatalf("ImportedHash after a failed import = %v, %v; want false", ok, err)
		}
		rows[2450].SIMType = "esim"
		res, err := s.ImportChunked(ctx, f, rows, rejects, t0, 100)
		must(t, err)
		if res.Accepted != 2500 || res.Rejected != 1 || res.AlreadyImported {
			t.Fatalf("corrected import = %+v", res)
		}
	})
}

// dialectURLs opens a database twice, as two processes would.
var dialectURLs = []struct {
	name string
	url  func(testing.TB) string
}{
	{repo.DialectPostgres, repotest.PostgresURL},
	{repo.DialectSQLite, repotest.SQLiteURL},
}

func openTwo(t *testing.T, url func(testing.TB) string) (*repo.Store, *repo.Store) {
	t.Helper()
	u := url(t)
	var out [2]*repo.Store
	for i := range out {
		s, err := repo.Open(context.Background(), u)
		must(t, err)
		t.Cleanup(func() { s.Close() })
		out[i] = s
	}
	must(t, out[0].Migrate(context.Background()))
	return out[0], out[1]
}

// TestImportConcurrentSameFile: two stores (two processes) importing the
// same content at once import it exactly once; the other gets
// AlreadyImported. When the first rolls back, the waiting one imports it.
func TestImportConcurrentSameFile(t *testing.T) {
	t.Parallel()
	const n = 3000
	for _, d := range dialectURLs {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()

			t.Run("race", func(t *testing.T) {
				a, b := openTwo(t, d.url)
				rows := salesRows("X", n)
				var wg sync.WaitGroup
				var res [2]repo.ImportResult
				var errs [2]error
				start := make(chan struct{})
				for i, s := range []*repo.Store{a, b} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						res[i], errs[i] = s.ImportChunked(ctx, repo.ImportFile{Name: fmt.Sprintf("p%d.csv", i), Hash: "same"}, rows, nil, t0, 100)
					}()
				}
				close(start)
				wg.Wait()
				must(t, errs[0])
				must(t, errs[1])
				if res[0].AlreadyImported == res[1].AlreadyImported || res[0].ImportID != res[1].ImportID {
					t.Fatalf("results %+v and %+v: want one import and one AlreadyImported of it", res[0], res[1])
				}
				if got := res[0].Accepted + res[1].Accepted; got != n {
					t.Fatalf("accepted %d in total, want %d", got, n)
				}
				if c := count(t, a, `SELECT COUNT(*) FROM imports`); c != 1 {
					t.Fatalf("imports = %d, want 1", c)
				}
			})

			for _, commit := range []bool{true, false} {
				t.Run(fmt.Sprintf("other holds the hash, commit=%v", commit), func(t *testing.T) {
					a, b := openTwo(t, d.url)
					// a is mid-import: the hash row is written, not committed.
					tx, err := a.DB().BeginTxx(ctx, nil)
					must(t, err)
					_, err = tx.ExecContext(ctx, a.DB().Rebind(`INSERT INTO imports (file_name, content_hash, imported_at) VALUES (?, ?, ?)`),
						"a.csv", "held", t0.UTC().Format("2006-01-02 15:04:05.000000"))
					must(t, err)
					done := make(chan struct{})
					var res repo.ImportResult
					go func() {
						defer close(done)
						res, err = b.ImportChunked(ctx, repo.ImportFile{Name: "b.csv", Hash: "held"}, salesRows("H", 10), nil, t0, 3)
					}()
					select {
					case <-done:
						t.Fatalf("import did not wait for the other import of its hash: %+v, %v", res, err)
					case <-time.After(300 * time.Millisecond):
					}
					if commit {
						must(t, tx.Commit())
					} else {
						must(t, tx.Rollback())
					}
					<-done
					must(t, err)
					if res.AlreadyImported != commit || (!commit && res.Accepted != 10) {
						t.Fatalf("after the other import's commit=%v: %+v", commit, res)
					}
					wantActs := map[bool]int{true: 0, false: 10}[commit]
					if c := count(t, a, `SELECT COUNT(*) FROM activations`); c != wantActs {
						t.Fatalf("activations = %d, want %d", c, wantActs)
					}
				})
			}
		})
	}
}

// TestImportAwkwardText: values that mean something in SQL or in a
// PostgreSQL array literal come back exactly as given.
func TestImportAwkwardText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
	}{
		{"empty", ""},
		{"NULL as text", "NULL"},
		{"quotes", `say "hi" and 'bye'`},
		{"backslashes", `C:\path\"x\\`},
		{"braces and commas", "{a,b},{c}"},
		{"newline and tab", "line1\nline2\tend\r\n"},
		{"leading and trailing spaces", "  padded  "},
		{"unicode", "Zoë – 東京 🙂"},
		{"formula", "=HYPERLINK(\"http://x\",\"y\")"},
		{"placeholders", "? $1 ?1 :a"},
	}
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		var rows []repo.NewActivation
		var rejects []repo.ImportReject
		for i, tc := range tests {
			rows = append(rows, repo.NewActivation{Line: i + 2, SalesRef: "W-" + tc.value, GivenNames: tc.value, Notes: tc.value, Email: "w@x", PlanNo: 1})
			rejects = append(rejects, repo.ImportReject{Line: i + 2, Reason: tc.value, Raw: tc.value})
		}
		res, err := s.ImportChunked(ctx, repo.ImportFile{Name: "w.csv", Hash: "w"}, rows, rejects, t0, 4)
		must(t, err)
		if res.Accepted != len(tests) || res.Rejected != len(tests) {
			t.Fatalf("Import = %+v", res)
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				a, err := s.ActivationByRef(ctx, "W-"+tc.value)
				must(t, err)
				if a.GivenNames != tc.value || a.Notes != tc.value || a.SourceLine != i+2 {
					t.Errorf("row: given_names %q, notes %q, line %d", a.GivenNames, a.Notes, a.SourceLine)
				}
				var got struct {
					Reason string `db:"reason"`
					Raw    string `db:"raw"`
				}
				must(t, s.DB().GetContext(ctx, &got, s.DB().Rebind(`SELECT reason, raw FROM import_rejects WHERE line = ?`), i+2))
				if got.Reason != tc.value || got.Raw != tc.value {
					t.Errorf("reject: reason %q, raw %q", got.Reason, got.Raw)
				}
			})
		}
	})
}
