package sales

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/xuri/excelize/v2"
)

var update = flag.Bool("update", false, "rewrite the generated XLSX fixtures in testdata/")

// rawNumber is a number cell whose stored text is given as is (as another
// writer might store 12345 as "12345.0").
type rawNumber string

// formula is a real formula cell (no cached value).
type formula string

// sheetRows is a sheet's content: row number -> cells from column A.
type sheetRows struct {
	name string
	rows map[int][]any
}

// buildXLSX writes sheets (the first is the workbook's first sheet).
func buildXLSX(sheets ...sheetRows) ([]byte, error) {
	f := excelize.NewFile()
	defer f.Close()
	for i, sh := range sheets {
		if i == 0 {
			if err := f.SetSheetName("Sheet1", sh.name); err != nil {
				return nil, err
			}
		} else if _, err := f.NewSheet(sh.name); err != nil {
			return nil, err
		}
		for r, cells := range sh.rows {
			for c, v := range cells {
				cell, err := excelize.CoordinatesToCellName(c+1, r)
				if err != nil {
					return nil, err
				}
				switch v := v.(type) {
				case nil:
					continue
				case rawNumber:
					err = f.SetCellDefault(sh.name, cell, string(v))
				case formula:
					err = f.SetCellFormula(sh.name, cell, string(v))
				case string:
					err = f.SetCellStr(sh.name, cell, v) // text stays text, "=..." included
				default:
					err = f.SetCellValue(sh.name, cell, v)
				}
				if err != nil {
					return nil, fmt.Errorf("%s!%s: %w", sh.name, cell, err)
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var salesHeader = []any{"Sales Ref", "given_names", "Surname", "EMAIL", "plan_no", "cust_no", "sim_type", "sim_serial", "postcode", "notes"}

// xlsxFixtures are the committed XLSX fixtures, reviewable here rather than
// as bytes.
var xlsxFixtures = map[string][]sheetRows{
	"good.xlsx": {
		{name: "Sales", rows: map[int][]any{
			1: salesHeader,
			2: {"X-1", "Ada", "Lovelace", "ada@example.com", 12345, 88001, nil, nil, 2000, "typed numbers"},
			3: {"X-2", "=HYPERLINK(\"http://evil.example\",\"click\")", "+61400000000", "x2@example.com", 42.0, nil, "esim", nil, "0800", "@SUM(A1:A9)"},
			// row 4 absent: a blank row
			5: {"X-3", "Grace", "Hopper", "grace@example.org", rawNumber("12345.0"), rawNumber("1.2345E4"), "physical", "89610123456789012347", nil, formula("1+1")},
			6: {"X-4", "Sci", "Notation", "sci@example.org", 7, nil, "physical", rawNumber("8.9610123456789E+18"), nil, nil}, // as Excel stores a 20-digit number,
			7: {"X-1", "Dup", "Licate", "dup@example.org", 7, nil, nil, nil, nil, nil},
			8: {nil, "  ", nil},
		}},
		{name: "Other", rows: map[int][]any{
			3: {"sales_ref", "email", "plan_no"},
			4: {"O-1", "o@example.com", 3},
		}},
	},
	"missing_column.xlsx": {
		{name: "Sheet1", rows: map[int][]any{
			1: {"sales_ref", "email", "plan"},
			2: {"M-1", "m@example.com", 1},
		}},
	},
}

// TestGenerateXLSX keeps the committed XLSX fixtures in step with
// xlsxFixtures: with -update it rewrites them; otherwise it checks they exist.
func TestGenerateXLSX(t *testing.T) {
	for name, sheets := range xlsxFixtures {
		path := filepath.Join("testdata", name)
		if !*update {
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s missing: run go test ./jobs/sales -run TestGenerateXLSX -update", path)
			}
			continue
		}
		b, err := buildXLSX(sheets...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
