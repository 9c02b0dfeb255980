package sales

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFixture(t *testing.T, name string, opts Options) (*File, error) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return Read(bytes.NewReader(b), name, opts)
}

// checkAccounting asserts that every data entry is exactly one of
// accepted, rejected or blank, and that no line is used twice.
func checkAccounting(t *testing.T, f *File) {
	t.Helper()
	if got := len(f.Rows) + len(f.Rejects) + f.Blank; got != f.DataRows {
		t.Errorf("rows %d + rejects %d + blank %d = %d, want DataRows %d", len(f.Rows), len(f.Rejects), f.Blank, got, f.DataRows)
	}
	lines := map[int]bool{}
	for _, r := range f.Rows {
		if lines[r.Line] {
			t.Errorf("line %d used twice", r.Line)
		}
		lines[r.Line] = true
	}
	for _, r := range f.Rejects {
		if lines[r.Line] {
			t.Errorf("line %d used twice", r.Line)
		}
		lines[r.Line] = true
		if r.Reason == "" {
			t.Errorf("line %d rejected without a reason", r.Line)
		}
	}
}

type wantReject struct {
	line   int
	reason string // substring
}

func TestRead(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		opts      Options
		format    string
		lines     map[string]int // sales_ref -> line of accepted rows
		rejects   []wantReject
		single    bool // each reject has one problem: the fixture tests one reason a line
		blank     int
		dataRows  int
		checkRows func(t *testing.T, rows map[string]Row)
	}{
		{
			name: "good CSV, header variants, unknown column, formula-looking text", file: "good.csv", format: "csv",
			lines:    map[string]int{"S-1001": 2, "S-1002": 3, "S-1003": 4, "S-1004": 5, "S-1005": 6},
			dataRows: 5,
			checkRows: func(t *testing.T, rows map[string]Row) {
				want := Row{Line: 2, SalesRef: "S-1001", GivenNames: "Ada", Surname: "Lovelace", Email: "ada@example.com",
					PlanNo: 12345, SIMType: SIMeSIM, AddressLine1: "1 Analytical St", Suburb: "Marylebone", State: "NSW",
					Postcode: "2000", Notes: "first"}
				if got := rows["S-1001"]; got != want {
					t.Errorf("S-1001 = %+v\nwant %+v", got, want)
				}
				if c := rows["S-1002"].CustNo; c == nil || *c != 88001 {
					t.Errorf("S-1002 cust_no = %v, want 88001", c)
				}
				if r := rows["S-1003"]; r.SIMType != SIMPhysical || r.SIMSerial != "89610123456789012347" {
					t.Errorf("S-1003 sim = %q %q", r.SIMType, r.SIMSerial)
				}
				if r := rows["S-1004"]; r.Email != "edsger@example.nl" || r.Notes != "shortest, path" || r.SIMSerial != "AB12CD34" {
					t.Errorf("S-1004 = %+v", r)
				}
				if r := rows["S-1005"]; r.GivenNames != `=HYPERLINK("http://x")` || r.Surname != "+61400000000" || r.Notes != "@SUM(A1:A2)" {
					t.Errorf("S-1005 formula-looking text changed: %+v", r)
				}
			},
		},
		{
			name: "BOM, semicolons, CRLF", file: "bom_semicolon.csv", format: "csv",
			lines: map[string]int{"S-2001": 2, "S-2002": 3}, dataRows: 2,
			checkRows: func(t *testing.T, rows map[string]Row) {
				if r := rows["S-2001"]; r.Surname != "Smith, Jr" || r.CustNo == nil || *r.CustNo != 123 {
					t.Errorf("S-2001 = %+v", r)
				}
				if r := rows["S-2002"]; r.GivenNames != "Li; Na" || r.CustNo != nil {
					t.Errorf("S-2002 = %+v", r)
				}
			},
		},
		{
			name: "quoted newlines and blank lines keep physical line numbers", file: "quoted_newlines.csv", format: "csv",
			lines: map[string]int{"S-3001": 2, "S-3002": 5, "S-3003": 8, "S-3004": 11},
			blank: 5, dataRows: 9,
			checkRows: func(t *testing.T, rows map[string]Row) {
				if got := rows["S-3003"].Notes; got != "x\ny\nz" {
					t.Errorf("S-3003 notes = %q", got)
				}
			},
		},
		{
			name: "last line without newline", file: "no_final_newline.csv", format: "csv",
			lines: map[string]int{"S-9": 2}, dataRows: 1,
		},
		{
			name: "every rejection reason", file: "rejects.csv", format: "csv", opts: Options{MaxCellBytes: 64},
			lines: map[string]int{"R-14": 15, "R-23": 24, "R-25": 26}, single: true,
			rejects: []wantReject{
				{2, "sales_ref: required"},
				{3, "email: required"},
				{4, `email "not-an-email": not an email address`},
				{5, "not an email address"},
				{6, "the domain has no dot"},
				{7, `plan_no "twelve": not a whole number`},
				{8, `plan_no "0"`},
				{9, `plan_no "12345.0"`},
				{10, `cust_no "12a"`},
				{11, `sim_type "satellite": must be esim or physical`},
				{12, "sim_serial: required for a physical SIM"},
				{13, "Luhn"},
				{14, "scientific notation"},
				{16, `sales_ref "R-14" repeats line 15`},
				{17, "8 values but the header has 7 columns"},
				{18, `not valid CSV: bare "`},
				{19, "given_names: value is 79 bytes, above the 64 bytes cell limit"},
				{21, `plan_no "-3"`},
				{22, "given_names is not valid UTF-8"},
				{23, "given_names contains a NUL"},
				{25, "given_names or surname: required when cust_no is empty"},
				{27, "given_names or surname: required when cust_no is empty"}, // blank after trimming
			},
			blank: 1, dataRows: 26,
		},
		{
			name: "XLSX: numbers as numbers, formula text kept, gaps, duplicates", file: "good.xlsx", format: "xlsx",
			lines: map[string]int{"X-1": 2, "X-2": 3, "X-3": 5},
			rejects: []wantReject{
				{6, "scientific notation"},
				{7, `sales_ref "X-1" repeats line 2`},
			},
			blank: 2, dataRows: 7,
			checkRows: func(t *testing.T, rows map[string]Row) {
				r := rows["X-1"]
				if r.PlanNo != 12345 || r.CustNo == nil || *r.CustNo != 88001 || r.Postcode != "2000" {
					t.Errorf("X-1 typed numbers read as %+v", r)
				}
				r = rows["X-2"]
				if r.GivenNames != `=HYPERLINK("http://evil.example","click")` || r.Surname != "+61400000000" ||
					r.Notes != "@SUM(A1:A9)" || r.PlanNo != 42 || r.Postcode != "0800" {
					t.Errorf("X-2 = %+v", r)
				}
				r = rows["X-3"]
				if r.PlanNo != 12345 || r.CustNo == nil || *r.CustNo != 12345 || r.Notes != "" || r.SIMSerial != "89610123456789012347" {
					t.Errorf("X-3 = %+v (raw 12345.0 and 1.2345E4 must read as 12345; a formula is not evaluated)", r)
				}
			},
		},
		{
			name: "XLSX quiet cases: leading zeros of formatted numbers, customers without a name", file: "quiet.xlsx", format: "xlsx",
			lines: map[string]int{"Q-1": 2, "Q-2": 3, "Q-3": 4, "Q-6": 7, "Q-7": 8, "Q-8": 9, "Q-9": 10, "000042": 11, "Q-11": 12},
			rejects: []wantReject{
				{5, "given_names or surname: required when cust_no is empty"},
				{6, "given_names or surname: required when cust_no is empty"},
			},
			single: true, dataRows: 11,
			checkRows: func(t *testing.T, rows map[string]Row) {
				for _, c := range []struct{ ref, field, got, want string }{
					{"Q-1", "postcode (800 formatted 0000)", rows["Q-1"].Postcode, "0800"},
					{"Q-2", "postcode (text)", rows["Q-2"].Postcode, "0800"},
					{"Q-2", "notes (phone number formatted 00000000000)", rows["Q-2"].Notes, "00412345678"},
					{"Q-3", "sim_serial (123456 formatted 00000000)", rows["Q-3"].SIMSerial, "00123456"},
					{"Q-3", "postcode (2000 formatted 0000)", rows["Q-3"].Postcode, "2000"},
					{"Q-8", "postcode (800 formatted 0.00: not padding)", rows["Q-8"].Postcode, "800"},
					{"Q-9", "postcode (800, General)", rows["Q-9"].Postcode, "800"},
					{"Q-6", "surname", rows["Q-6"].Surname, "Solo"},
					{"Q-11", "postcode (text 800 in a 0000 cell)", rows["Q-11"].Postcode, "800"},
				} {
					if c.got != c.want {
						t.Errorf("%s %s = %q, want %q", c.ref, c.field, c.got, c.want)
					}
				}
				if c := rows["Q-3"].CustNo; c == nil || *c != 88001 {
					t.Errorf("Q-3 cust_no (88001 formatted 00000000) = %v, want 88001", c)
				}
				if c := rows["Q-7"].CustNo; c == nil || *c != 88002 {
					t.Errorf("Q-7 cust_no = %v, want 88002 (a known customer needs no name)", c)
				}
				if p := rows["Q-9"].PlanNo; p != 1001 {
					t.Errorf("Q-9 plan_no (1001 formatted 000000) = %d, want 1001", p)
				}
			},
		},
		{
			name: "XLSX named sheet, header below blank rows", file: "good.xlsx", format: "xlsx", opts: Options{Sheet: "Other"},
			lines: map[string]int{"O-1": 4}, dataRows: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := readFixture(t, tt.file, tt.opts)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			checkAccounting(t, f)
			if f.Format != tt.format || f.Name != tt.file || len(f.Hash) != 64 {
				t.Errorf("format %q name %q hash %q", f.Format, f.Name, f.Hash)
			}
			rows := map[string]Row{}
			for _, r := range f.Rows {
				rows[r.SalesRef] = r
				if want, ok := tt.lines[r.SalesRef]; !ok || want != r.Line {
					t.Errorf("accepted %q at line %d, want line %d (listed: %v)", r.SalesRef, r.Line, want, ok)
				}
			}
			if len(f.Rows) != len(tt.lines) {
				t.Errorf("accepted %d rows, want %d", len(f.Rows), len(tt.lines))
			}
			if len(f.Rejects) != len(tt.rejects) {
				for _, r := range f.Rejects {
					t.Logf("reject %d: %s [%s]", r.Line, r.Reason, r.Raw)
				}
				t.Fatalf("rejected %d rows, want %d", len(f.Rejects), len(tt.rejects))
			}
			for i, w := range tt.rejects {
				got := f.Rejects[i]
				if got.Line != w.line || !strings.Contains(got.Reason, w.reason) {
					t.Errorf("reject %d = line %d %q, want line %d containing %q", i, got.Line, got.Reason, w.line, w.reason)
				}
				if got.Raw == "" {
					t.Errorf("reject line %d has no raw row", got.Line)
				}
				if tt.single && strings.Contains(got.Reason, "; ") {
					t.Errorf("reject line %d has more than the one reason it tests: %q", got.Line, got.Reason)
				}
			}
			if f.Blank != tt.blank || f.DataRows != tt.dataRows {
				t.Errorf("blank %d data rows %d, want %d %d", f.Blank, f.DataRows, tt.blank, tt.dataRows)
			}
			if tt.checkRows != nil {
				tt.checkRows(t, rows)
			}
		})
	}
}

func TestReadRejectRaw(t *testing.T) {
	f, err := readFixture(t, "rejects.csv", Options{MaxCellBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	raws := map[int]string{}
	for _, r := range f.Rejects {
		raws[r.Line] = r.Raw
	}
	for line, want := range map[int]string{
		5:  `R-04,Bob <bob@example.com>,1,,,,Ann`,
		18: `R-17,b"x@example.com,1,,,,`,
		22: "R-21,b@example.com,1,,,,caf\uFFFD",
		23: "R-22,b@example.com,1,,,,nul\uFFFDhere",
	} {
		if raws[line] != want {
			t.Errorf("raw of line %d = %q, want %q", line, raws[line], want)
		}
	}
}

func TestReadRefused(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		content []byte // instead of file
		opts    Options
		want    error
		msg     []string
	}{
		{name: "missing required column", file: "missing_email.csv", want: ErrMissingColumn, msg: []string{"missing_email.csv", `"email"`}},
		{name: "missing column in XLSX", file: "missing_column.xlsx", want: ErrMissingColumn, msg: []string{"missing_column.xlsx", `"plan_no"`}},
		{name: "duplicate column", file: "duplicate_column.csv", want: ErrDuplicateColumn, msg: []string{`"email"`, "E-Mail"}},
		{name: "empty file", file: "empty.csv", want: ErrNoHeader},
		{name: "unterminated quote", file: "unterminated.csv", want: ErrUnreadable, msg: []string{"line 3", "never closed"}},
		{name: "UTF-16", file: "utf16.csv", want: ErrUnreadable, msg: []string{"UTF-16"}},
		{name: "UTF-16LE without BOM", file: "nobom.csv", content: utf16NoBOM("sales_ref,email,plan_no\nA-1,a@example.com,1\n", false),
			want: ErrUnreadable, msg: []string{"UTF-16", "without a byte-order mark"}},
		{name: "UTF-16BE without BOM", file: "nobom.csv", content: utf16NoBOM("sales_ref,email,plan_no\nA-1,a@example.com,1\n", true),
			want: ErrUnreadable, msg: []string{"UTF-16", "without a byte-order mark"}},
		{name: "too large", file: "good.csv", opts: Options{MaxFileBytes: 100}, want: ErrTooLarge, msg: []string{"good.csv", "100 bytes limit"}},
		{name: "missing sheet", file: "good.xlsx", opts: Options{Sheet: "Nope"}, want: ErrUnreadable, msg: []string{`"Nope"`, `"Sales"`}},
		{name: "xlsx extension but not a zip", file: "x.xlsx", content: []byte("sales_ref,email,plan_no\n"), want: ErrUnreadable},
		{name: "broken zip", file: "x.csv", content: []byte("PK\x03\x04garbage"), want: ErrUnreadable},
		{name: "legacy xls", file: "old.xls", content: []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}, want: ErrUnreadable, msg: []string{".xls"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f *File
			var err error
			if tt.content != nil {
				f, err = Read(bytes.NewReader(tt.content), tt.file, tt.opts)
			} else {
				f, err = readFixture(t, tt.file, tt.opts)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Read = %v, %v; want %v", f, err, tt.want)
			}
			for _, m := range tt.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestReadHashIsContentOnly(t *testing.T) {
	b, err := os.ReadFile("testdata/good.csv")
	if err != nil {
		t.Fatal(err)
	}
	f1, err1 := Read(bytes.NewReader(b), "a.csv", Options{})
	f2, err2 := Read(bytes.NewReader(b), "renamed.csv", Options{})
	f3, err3 := Read(bytes.NewReader(append(b, '\n')), "a.csv", Options{})
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if f1.Hash != f2.Hash || f1.Hash == f3.Hash {
		t.Errorf("hashes %s %s %s: same content must hash the same under any name, other content differently", f1.Hash, f2.Hash, f3.Hash)
	}
}

func TestHeaderKey(t *testing.T) {
	for _, h := range []string{"sales_ref", "Sales Ref", " SALES_REF ", "sales-ref", "SalesRef", "\uFEFFsales_ref"} {
		if got := headerKey(h); got != headerKey("sales_ref") {
			t.Errorf("headerKey(%q) = %q", h, got)
		}
	}
}

func TestLuhn(t *testing.T) {
	for s, want := range map[string]bool{
		"89610123456789012347": true, "8961012345678901232": true,
		"89610123456789012348": false, "79927398713": true, "79927398710": false,
	} {
		if got := luhn(s); got != want {
			t.Errorf("luhn(%s) = %v", s, got)
		}
	}
}

// utf16NoBOM encodes ASCII text as UTF-16 with no byte-order mark.
func utf16NoBOM(text string, bigEndian bool) []byte {
	var out []byte
	for _, c := range []byte(text) {
		if bigEndian {
			out = append(out, 0, c)
		} else {
			out = append(out, c, 0)
		}
	}
	return out
}
