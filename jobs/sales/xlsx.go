package sales

import (
	"bytes"
	"fmt"

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

	haveHeader := false
	// Rows.Next visits every row number in order, absent rows included, so
	// the n-th call is row n.
	for n := 1; rows.Next(); n++ {
		cells, err := rows.Columns(excelize.Options{RawCellValue: true})
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
