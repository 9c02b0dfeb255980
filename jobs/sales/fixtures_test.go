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

// numFmt is a number cell shown with a custom number format, as Excel
// stores a postcode typed 0800 into a cell formatted "0000": the value 800
// and the format.
type numFmt struct {
	value  any
	format string
}

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
				case numFmt:
					err = setFormatted(f, sh.name, cell, v)
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

// setFormatted writes v.value into cell with its custom number format.
func setFormatted(f *excelize.File, sheet, cell string, v numFmt) error {
	format := v.format
	style, err := f.NewStyle(&excelize.Style{CustomNumFmt: &format})
	if err != nil {
		return err
	}
	if err := f.SetCellValue(sheet, cell, v.value); err != nil {
		return err
	}
	return f.SetCellStyle(sheet, cell, cell, style)
}

var salesHeader = []any{"Sales Ref", "given_names", "Surname", "EMAIL", "plan_no", "cust_no", "sim_type", "sim_serial", "postcode", "notes"}

var quietHeader = []any{"sales_ref", "given_names", "surname", "email", "plan_no", "cust_no", "sim_type", "sim_serial", "postcode", "notes"}

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
			3: {"sales_ref", "email", "plan_no", "surname"},
			4: {"O-1", "o@example.com", 3, "Other"},
		}},
	},
	// quiet.xlsx holds the input that used to go wrong without a word:
	// leading zeros lost from number cells, a customer without a name.
	"quiet.xlsx": {
		{name: "Sales", rows: map[int][]any{
			1: quietHeader,
			// A postcode typed 0800 into a "0000" cell: stored as 800.
			2: {"Q-1", "Ann", "Lee", "q1@example.com", 1001, nil, nil, nil, numFmt{800, "0000"}, nil},
			// The same postcode as text, and a phone number in an
			// 11-digit format.
			3: {"Q-2", "Bo", "Ng", "q2@example.com", 1001, nil, nil, nil, "0800", numFmt{412345678, "00000000000"}},
			// A customer number and a physical SIM serial with leading zeros.
			4: {"Q-3", "Cy", "Ho", "q3@example.com", 1001, numFmt{88001, "00000000"}, "physical", numFmt{123456, "00000000"}, numFmt{2000, "0000"}, nil},
			// No name and no customer number: addCustomer could not create
			// the customer, so the row is refused here.
			5: {"Q-4", nil, nil, "q4@example.com", 1001, nil, nil, nil, "6000", nil},
			6: {"Q-5", "  ", " ", "q5@example.com", 1001, nil, nil, nil, "6000", nil},
			// A surname alone is a name; a known customer needs none.
			7: {"Q-6", nil, "Solo", "q6@example.com", 1001, nil, nil, nil, "6000", nil},
			8: {"Q-7", nil, nil, "q7@example.com", 1001, 88002, nil, nil, "6000", nil},
			// Formats that are not zero padding keep the stored number: a
			// postcode with decimals, a number in General format.
			9:  {"Q-8", "Di", "Wu", "q8@example.com", 1001, nil, nil, nil, numFmt{800, "0.00"}, nil},
			10: {"Q-9", "Ed", "Ko", "q9@example.com", numFmt{1001, "000000"}, nil, nil, nil, 800, nil},
			// A sales reference typed as a number in a "000000" cell.
			11: {numFmt{42, "000000"}, "Fay", "Oh", "q10@example.com", 1001, nil, nil, nil, "6000", nil},
			// Text in a "0000" cell: Excel shows the text as typed.
			12: {"Q-11", "Gil", "Ma", "q11@example.com", 1001, nil, nil, nil, numFmt{"800", "0000"}, nil},
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
