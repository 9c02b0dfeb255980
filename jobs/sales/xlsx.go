package sales

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/xuri/excelize/v2"
)

// readXLSX reads the first sheet (or Options.Sheet) of a workbook into b,
// streaming rows with raw (unformatted) values. Formulas are never
// evaluated: a text cell "=HYPERLINK(...)" stays that text, and a real
// formula cell gives its cached value.
func readXLSX(content []byte, b *builder) (err error) {
	// excelize parses untrusted zip and XML; a panic in it must refuse the
	// file, not crash the run.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed workbook (%v): %w", p, ErrUnreadable)
		}
	}()
	limit := b.opts.MaxFileBytes * 20 // zip bomb guard: XML compresses ~10x
	wb, err := excelize.OpenReader(bytes.NewReader(content), excelize.Options{
		RawCellValue:      true,
		UnzipSizeLimit:    limit,
		UnzipXMLSizeLimit: min(limit, 16<<20),
	})
	if err != nil {
		return fmt.Errorf("not a readable XLSX workbook: %w: %w", ErrUnreadable, err)
	}
	defer wb.Close()

	sheets := wb.GetSheetList()
	sheet := b.opts.Sheet
	switch {
	case sheet == "" && len(sheets) == 0:
		return fmt.Errorf("workbook has no sheets: %w", ErrUnreadable)
	case sheet == "":
		sheet = sheets[0]
	default:
		found := false
		for _, s := range sheets {
			found = found || s == sheet
		}
		if !found {
			return fmt.Errorf("no sheet %q (sheets: %q): %w", sheet, sheets, ErrUnreadable)
		}
	}
	rows, err := wb.Rows(sheet)
	if err != nil {
		return fmt.Errorf("sheet %q: %w: %w", sheet, ErrUnreadable, err)
	}
	defer rows.Close()
	// shown walks the same rows as Excel shows them (number formats
	// applied), only when some format can show leading zeros: a second pass
	// over the sheet's XML that most workbooks do not need.
	var shown *excelize.Rows
	if hasZeroPadFormat(wb) {
		if shown, err = wb.Rows(sheet); err != nil {
			return fmt.Errorf("sheet %q: %w: %w", sheet, ErrUnreadable, err)
		}
		defer shown.Close()
	}

	haveHeader := false
	// Rows.Next visits every row number in order, absent rows included, so
	// the n-th call is row n.
	for n := 1; rows.Next(); n++ {
		cells, err := rows.Columns(excelize.Options{RawCellValue: true})
		if shown != nil && shown.Next() {
			if display, derr := shown.Columns(excelize.Options{RawCellValue: false}); derr == nil {
				keepLeadingZeros(cells, display)
			}
		}
		if !haveHeader {
			if err != nil {
				return fmt.Errorf("sheet %q row %d: %w: %w", sheet, n, ErrUnreadable, err)
			}
			if isBlank(cells) {
				continue // rows above the header are not data
			}
			if err := b.setHeader(cells, n); err != nil {
				return fmt.Errorf("sheet %q: %w", sheet, err)
			}
			haveHeader = true
			continue
		}
		if err != nil {
			b.reject(n, fmt.Sprintf("unreadable row: %v", err), joinCSV(cells))
			continue
		}
		b.record(n, cells)
	}
	if err := rows.Error(); err != nil {
		return fmt.Errorf("sheet %q: %w: %w", sheet, ErrUnreadable, err)
	}
	if !haveHeader {
		return fmt.Errorf("sheet %q is empty: %w", sheet, ErrNoHeader)
	}
	return nil
}

// maxStyles bounds the scan of a workbook's cell styles (Excel's own limit
// is 64,000).
const maxStyles = 65536

// hasZeroPadFormat reports whether any cell style of wb has a custom number
// format that pads numbers with zeros ("0000" for a postcode, "00000000000"
// for a phone number): only then can a number cell show digits its stored
// value lacks.
func hasZeroPadFormat(wb *excelize.File) bool {
	for i := range maxStyles {
		st, err := wb.GetStyle(i)
		if err != nil {
			return false // past the last style
		}
		if st.CustomNumFmt != nil && strings.Contains(*st.CustomNumFmt, "00") {
			return true
		}
	}
	return false
}

// keepLeadingZeros replaces a stored number by the text Excel shows for it
// when the two differ only by leading zeros: a postcode typed as 0800 in a
// cell formatted "0000" is stored as 800 and shown, and meant, as "0800".
// Every other difference (decimals, thousands separators, dates, a number in
// General format) keeps the stored value, so what plan_no and cust_no parse
// and what the other checks see is unchanged. Text cells are equal in both.
func keepLeadingZeros(raw, display []string) {
	for i := range min(len(raw), len(display)) {
		r, d := raw[i], display[i]
		if len(d) <= len(r) || !allDigits(r) || !allDigits(d) {
			continue
		}
		if strings.TrimLeft(d, "0") == strings.TrimLeft(r, "0") {
			raw[i] = d
		}
	}
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
