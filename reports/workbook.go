package reports

import (
	"bytes"
	"fmt"
	"image"
	_ "image/png" // excelize's AddPictureFromBytes decodes the PNG header
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
	"github.com/skip2/go-qrcode"
	"github.com/xuri/excelize/v2"
)

const (
	qrImagePixels = 128  // rendered QR images: about 3 px a module for an LPA string
	qrRowHeight   = 96.0 // points: 128 px at 96 dpi
	qrColWidth    = 18.0 // characters: 131 px in Excel's default font (7 px a digit + 5)
	// qrShownPixels is the side every QR image is shown at, whatever its
	// source size (Octane's may be 256 px or more): large enough to scan
	// from a screen, small enough to sit inside its cell with a margin.
	qrShownPixels = 120
	qrMarginX     = 5 // px: (131 - 120) / 2, centred in the column
	qrMarginY     = 4 // px: (128 - 120) / 2, centred in the row
	maxColWidth   = 60.0
	lineHeight    = 15.0 // points: one line of the default 11 pt font
	maxLines      = 12   // a wrapped row grows to at most this many lines
	dateWidth     = 22.0 // a 19-character date and a margin each side
	dateFormat    = "yyyy-mm-dd hh:mm:ss"
)

// styles holds every style ID of a workbook, created once in newStyles.
type styles struct {
	header, text, integer, date, seconds, title int
}

func newStyles(f *excelize.File) (styles, error) {
	var s styles
	center := &excelize.Alignment{Vertical: "center"}
	format := dateFormat
	defs := []struct {
		id    *int
		style *excelize.Style
	}{
		{&s.header, &excelize.Style{
			Font:      &excelize.Font{Bold: true},
			Fill:      excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"DDEBF7"}},
			Border:    []excelize.Border{{Type: "bottom", Color: "808080", Style: 1}},
			Alignment: center,
		}},
		// "@" (49) keeps a value text even when a user edits the cell.
		// Wrapped: a value longer than its column (capped at maxColWidth)
		// shows in full on several lines instead of being cut off.
		{&s.text, &excelize.Style{NumFmt: 49, Alignment: &excelize.Alignment{Vertical: "center", WrapText: true}}},
		{&s.integer, &excelize.Style{NumFmt: 1, Alignment: center}},
		// Centred: right-aligned (a number's default) a date ran into the
		// left-aligned text of the next column.
		{&s.date, &excelize.Style{CustomNumFmt: &format,
			Alignment: &excelize.Alignment{Horizontal: "center", Vertical: "center"}}},
		{&s.seconds, &excelize.Style{NumFmt: 2, Alignment: center}},
		{&s.title, &excelize.Style{Font: &excelize.Font{Bold: true, Size: 14}}},
	}
	for _, d := range defs {
		id, err := f.NewStyle(d.style)
		if err != nil {
			return s, fmt.Errorf("reports: create style: %w", err)
		}
		*d.id = id
	}
	return s, nil
}

// Build writes the report workbook and returns its bytes: the QR codes,
// Failures, Rejected imports, Summary and Attention sheets. With
// opts.Password the workbook is encrypted. It returns ErrTooManyQRRows when
// more than MaxQRRowsPerWorkbook QR rows carry a code or an image (rows
// without one, e.g. a QR Octane emailed, cost little and are not capped),
// and a wrapped excelize error otherwise.
func Build(d Data, opts Options) ([]byte, error) {
	var buf bytes.Buffer
	if err := Write(&buf, d, opts); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Write is Build writing to w. Errors are those of Build, or w's.
func Write(w io.Writer, d Data, opts Options) error {
	if images := d.QRCodes(); images > MaxQRRowsPerWorkbook {
		return fmt.Errorf("%w: %d rows with a QR code, at most %d", ErrTooManyQRRows, images, MaxQRRowsPerWorkbook)
	}
	f := excelize.NewFile()
	defer f.Close() // removes the stream writers' temp files
	st, err := newStyles(f)
	if err != nil {
		return err
	}
	if err := f.SetSheetName("Sheet1", SheetQR); err != nil {
		return fmt.Errorf("reports: name sheet: %w", err)
	}
	for _, name := range []string{SheetFailure, SheetRejects, SheetSummary, SheetAttention} {
		if _, err := f.NewSheet(name); err != nil {
			return fmt.Errorf("reports: add sheet %q: %w", name, err)
		}
	}
	if err := writeQR(f, st, d.QR); err != nil {
		return err
	}
	if err := writeFailures(f, st, d.Failures); err != nil {
		return err
	}
	if err := writeRejects(f, st, d.Refused, d.Rejects); err != nil {
		return err
	}
	if err := writeSummary(f, st, d); err != nil {
		return err
	}
	if err := writeAttention(f, st, d); err != nil {
		return err
	}
	f.SetActiveSheet(0)
	if _, err := f.WriteTo(w, excelize.Options{Password: opts.Password}); err != nil {
		return fmt.Errorf("reports: write workbook: %w", err)
	}
	return nil
}

// QRCodes counts the QR rows that carry a QR code (an activation code or an
// image): the rows without one are provisioned services whose QR code
// Octane emailed, or physical SIMs, which the subject and the Summary count
// apart.
func (d Data) QRCodes() int {
	n := 0
	for _, r := range d.QR {
		if r.ActivationCode != "" || len(r.PNG) > 0 {
			n++
		}
	}
	return n
}

// cell returns the A1 reference of column col (1-based) in row.
func cell(col, row int) string {
	name, _ := excelize.ColumnNumberToName(col) // col is always 1..16384 here
	return name + strconv.Itoa(row)
}

// utc turns the zero time into nil (a blank cell) and anything else into UTC.
func utc(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// widths tracks the widest value of each column, in characters.
type widths []float64

func newWidths(headers []string) widths {
	w := make(widths, len(headers))
	for i, h := range headers {
		w.fit(i, h)
	}
	return w
}

func (w widths) fit(col int, s string) {
	n := float64(utf8.RuneCountInString(s)) + 2
	if n > maxColWidth {
		n = maxColWidth
	}
	if n > w[col] {
		w[col] = n
	}
}

func (w widths) atLeast(col int, n float64) {
	if n > w[col] {
		w[col] = n
	}
}

func (w widths) apply(f *excelize.File, sheet string) error {
	for i, width := range w {
		name, _ := excelize.ColumnNumberToName(i + 1)
		if err := f.SetColWidth(sheet, name, name, width); err != nil {
			return fmt.Errorf("reports: width of %s!%s: %w", sheet, name, err)
		}
	}
	return nil
}

// printSetup makes a sheet print landscape, one page wide (as many pages
// tall as it needs) and, with header, repeats row 1 on every page. Without
// it the QR codes sheet printed as 46 portrait pages, its columns split
// across pages and no header after the first.
func printSetup(f *excelize.File, sheet string, header bool) error {
	landscape, wide, tall, fit := "landscape", 1, 0, true
	if err := f.SetSheetProps(sheet, &excelize.SheetPropsOptions{FitToPage: &fit}); err != nil {
		return fmt.Errorf("reports: %s print fit: %w", sheet, err)
	}
	if err := f.SetPageLayout(sheet, &excelize.PageLayoutOptions{
		Orientation: &landscape, FitToWidth: &wide, FitToHeight: &tall,
	}); err != nil {
		return fmt.Errorf("reports: %s page layout: %w", sheet, err)
	}
	if !header {
		return nil
	}
	if err := f.SetDefinedName(&excelize.DefinedName{
		Name: "_xlnm.Print_Titles", RefersTo: "'" + sheet + "'!$1:$1", Scope: sheet,
	}); err != nil {
		return fmt.Errorf("reports: %s print titles: %w", sheet, err)
	}
	return nil
}

// qrImageCol is the QR codes sheet's image column (1-based): the one
// before the credential, the sheet's last.
var qrImageCol = len(QRColumns) - 1

var freezeHeader = &excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}

func writeQR(f *excelize.File, st styles, rows []QRRow) error {
	sheet := SheetQR
	w := newWidths(QRColumns)
	for i, h := range QRColumns {
		if err := f.SetCellStr(sheet, cell(i+1, 1), h); err != nil {
			return fmt.Errorf("reports: QR header: %w", err)
		}
	}
	last := len(QRColumns)
	picCol := qrImageCol
	for i, r := range rows {
		row := i + 2
		w.fit(last-1, r.Credential)
		if err := f.SetCellStr(sheet, cell(last, row), r.Credential); err != nil {
			return fmt.Errorf("reports: QR row %d: %w", row, err)
		}
		texts := []string{r.SalesRef, r.Customer, r.Email, r.MSN, r.OrderID, r.ICCID, r.Outcome}
		for c, v := range texts {
			w.fit(c, v)
			if err := f.SetCellStr(sheet, cell(c+1, row), v); err != nil {
				return fmt.Errorf("reports: QR row %d: %w", row, err)
			}
		}
		if err := f.SetCellValue(sheet, cell(8, row), utc(r.CompletedAt)); err != nil {
			return fmt.Errorf("reports: QR row %d: %w", row, err)
		}
		w.fit(8, r.ActivationCode)
		if err := f.SetCellStr(sheet, cell(9, row), r.ActivationCode); err != nil {
			return fmt.Errorf("reports: QR row %d: %w", row, err)
		}
		if err := f.SetRowHeight(sheet, row, qrRowHeight); err != nil {
			return fmt.Errorf("reports: QR row %d: %w", row, err)
		}
		if png, side := qrImage(r); png != nil {
			// An explicit scale, not AutoFit: AutoFit sizes to excelize's own
			// pixel model of the cell (and to the width the column has at
			// that moment), which left 64 px images in the top corner.
			scale := float64(qrShownPixels) / float64(side)
			pic := &excelize.Picture{Extension: ".png", File: png, Format: &excelize.GraphicOptions{
				ScaleX: scale, ScaleY: scale, OffsetX: qrMarginX, OffsetY: qrMarginY,
				Positioning: "oneCell", AltText: "QR code " + r.SalesRef,
			}}
			if err := f.AddPictureFromBytes(sheet, cell(picCol, row), pic); err != nil {
				return fmt.Errorf("reports: QR image row %d: %w", row, err)
			}
		}
	}
	w.atLeast(7, dateWidth)
	w[picCol-1] = qrColWidth
	if err := w.apply(f, sheet); err != nil {
		return err
	}
	end := len(rows) + 1
	if err := f.SetCellStyle(sheet, cell(1, 1), cell(last, 1), st.header); err != nil {
		return fmt.Errorf("reports: QR header style: %w", err)
	}
	if len(rows) > 0 {
		for _, s := range []struct{ from, to, style int }{
			{1, 7, st.text}, {8, 8, st.date}, {9, 9, st.text}, {last, last, st.text},
		} {
			if err := f.SetCellStyle(sheet, cell(s.from, 2), cell(s.to, end), s.style); err != nil {
				return fmt.Errorf("reports: QR styles: %w", err)
			}
		}
	}
	if err := f.SetPanes(sheet, freezeHeader); err != nil {
		return fmt.Errorf("reports: QR panes: %w", err)
	}
	if err := f.AutoFilter(sheet, cell(1, 1)+":"+cell(last, end), nil); err != nil {
		return fmt.Errorf("reports: QR autofilter: %w", err)
	}
	// After the autofilter, which replaces the sheet's properties.
	if err := printSetup(f, sheet, true); err != nil {
		return err
	}
	return nil
}

// qrImage returns the PNG to place in the row and its larger side in pixels:
// Octane's when it is a PNG that decodes to the row's activation code (or
// there is no code to check it against), else one rendered from the code,
// else nil (no code and no usable image: e.g. a physical SIM or a QR Octane
// emailed itself). The image must never disagree with the code beside it:
// that would hand one customer's eSIM to another.
func qrImage(r QRRow) ([]byte, int) {
	if len(r.PNG) > 0 {
		if side, ok := octanePNGMatches(r.PNG, r.ActivationCode); ok {
			return r.PNG, side
		}
	}
	if r.ActivationCode == "" {
		return nil, 0
	}
	png, err := qrcode.Encode(r.ActivationCode, qrcode.Medium, qrImagePixels)
	if err != nil { // longer than a QR code holds: the code stays in its cell as text
		return nil, 0
	}
	return png, qrImagePixels
}

// maxQRPixels bounds the images decoded (a PNG header can claim any size).
const maxQRPixels = 4096 * 4096

// octanePNGMatches reports whether png is a PNG of code (any PNG when code is
// empty) and returns its larger side in pixels.
func octanePNGMatches(png []byte, code string) (int, bool) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(png))
	if err != nil || format != "png" || cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxQRPixels {
		return 0, false
	}
	side := max(cfg.Width, cfg.Height)
	if code == "" {
		return side, true
	}
	text, err := DecodeQR(png)
	return side, err == nil && text == code
}

// DecodeQR reads the text a QR image encodes. Errors: the image does not
// decode, or holds no readable QR code.
func DecodeQR(png []byte) (string, error) {
	img, _, err := image.Decode(bytes.NewReader(png))
	if err != nil {
		return "", fmt.Errorf("reports: decode image: %w", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", fmt.Errorf("reports: QR bitmap: %w", err)
	}
	res, err := zxqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		return "", fmt.Errorf("reports: no readable QR code: %w", err)
	}
	return res.GetText(), nil
}

// streamSheet writes a header and rows to a new, empty sheet with the stream
// writer (rows kept out of memory), freezes the header and adds a table, whose
// autofilter is the only one a streamed sheet can carry. Each note is a line
// of text below the table, after a blank row.
func streamSheet(f *excelize.File, st styles, sheet, table string, headers []string, w widths,
	rows int, row func(i int) []any, notes ...string) error {
	// Before the stream writer: it copies the sheet's properties and page
	// setup from the empty sheet.
	if err := printSetup(f, sheet, true); err != nil {
		return err
	}
	sw, err := f.NewStreamWriter(sheet)
	if err != nil {
		return fmt.Errorf("reports: stream %s: %w", sheet, err)
	}
	for i, width := range w {
		if err := sw.SetColWidth(i+1, i+1, width); err != nil {
			return fmt.Errorf("reports: stream %s width: %w", sheet, err)
		}
	}
	if err := sw.SetPanes(freezeHeader); err != nil {
		return fmt.Errorf("reports: stream %s panes: %w", sheet, err)
	}
	head := make([]any, len(headers))
	for i, h := range headers {
		head[i] = excelize.Cell{StyleID: st.header, Value: h}
	}
	if err := sw.SetRow("A1", head); err != nil {
		return fmt.Errorf("reports: stream %s header: %w", sheet, err)
	}
	for i := 0; i < rows; i++ {
		values := row(i)
		var opts []excelize.RowOpts
		if h := wrappedHeight(values, w); h > 0 {
			opts = append(opts, excelize.RowOpts{Height: h})
		}
		if err := sw.SetRow(cell(1, i+2), values, opts...); err != nil {
			return fmt.Errorf("reports: stream %s row %d: %w", sheet, i+2, err)
		}
	}
	for i, n := range notes {
		// Not the text style: a note is one line that may run past its column.
		if err := sw.SetRow(cell(1, rows+3+i), []any{excelize.Cell{Value: n}}); err != nil {
			return fmt.Errorf("reports: stream %s note: %w", sheet, err)
		}
	}
	if err := sw.AddTable(&excelize.Table{
		Range: cell(1, 1) + ":" + cell(len(headers), rows+1), Name: table, StyleName: "TableStyleLight1",
	}); err != nil {
		return fmt.Errorf("reports: stream %s table: %w", sheet, err)
	}
	if err := sw.Flush(); err != nil {
		return fmt.Errorf("reports: stream %s flush: %w", sheet, err)
	}
	return nil
}

// wrappedHeight returns the height in points a streamed row needs to show its
// longest wrapped text in full, or 0 when every value fits on one line.
// Neither Excel nor excelize sizes a row to wrapped text when the file is
// written, so the height is estimated: a column w characters wide holds
// about w-2 of them a line.
func wrappedHeight(values []any, w widths) float64 {
	lines := 1
	for c, v := range values {
		cv, ok := v.(excelize.Cell)
		if !ok || c >= len(w) {
			continue
		}
		s, ok := cv.Value.(string)
		if !ok {
			continue
		}
		perLine := max(int(w[c])-2, 1)
		n := 0
		for _, part := range strings.Split(s, "\n") {
			n += max((utf8.RuneCountInString(part)+perLine-1)/perLine, 1)
		}
		lines = max(lines, n)
	}
	if lines <= 1 {
		return 0
	}
	return float64(min(lines, maxLines)) * lineHeight
}

func writeFailures(f *excelize.File, st styles, rows []FailureRow) error {
	w := newWidths(FailureColumns)
	for _, r := range rows {
		for c, v := range []string{r.SalesRef, r.Customer, r.Email, r.MSN, r.Step, r.Code, r.Message, r.Reason, r.Advice} {
			w.fit(c, v)
		}
		w.fit(12, r.Credential)
	}
	w.atLeast(10, dateWidth)
	w.atLeast(11, dateWidth)
	return streamSheet(f, st, SheetFailure, "Failures", FailureColumns, w, len(rows), func(i int) []any {
		r := rows[i]
		return []any{
			excelize.Cell{StyleID: st.text, Value: r.SalesRef},
			excelize.Cell{StyleID: st.text, Value: r.Customer},
			excelize.Cell{StyleID: st.text, Value: r.Email},
			excelize.Cell{StyleID: st.text, Value: r.MSN},
			excelize.Cell{StyleID: st.text, Value: r.Step},
			excelize.Cell{StyleID: st.text, Value: r.Code},
			excelize.Cell{StyleID: st.text, Value: r.Message},
			excelize.Cell{StyleID: st.text, Value: r.Reason},
			excelize.Cell{StyleID: st.text, Value: r.Advice},
			excelize.Cell{StyleID: st.integer, Value: r.Attempts},
			excelize.Cell{StyleID: st.date, Value: utc(r.FirstAttempt)},
			excelize.Cell{StyleID: st.date, Value: utc(r.LastAttempt)},
			excelize.Cell{StyleID: st.text, Value: r.Credential},
		}
	})
}

// refusedReason is the Rejected imports sheet's reason for a file refused
// whole: it has no line, and its reason says where the file went.
func refusedReason(r RefusedFile) string {
	if r.MovedTo == "" {
		return "File refused: " + r.Reason
	}
	return "File refused (moved to " + r.MovedTo + "/): " + r.Reason
}

// writeRejects lists the files refused whole (no line, no raw row), then
// the rejected rows.
func writeRejects(f *excelize.File, st styles, refused []RefusedFile, rows []RejectRow) error {
	w := newWidths(RejectColumns)
	for _, r := range refused {
		w.fit(0, r.File)
		w.fit(2, refusedReason(r))
	}
	for _, r := range rows {
		w.fit(0, r.File)
		w.fit(1, strconv.Itoa(r.Line))
		w.fit(2, r.Reason)
		w.fit(3, r.Raw)
		w.fit(5, r.Credential)
	}
	w.atLeast(4, dateWidth)
	return streamSheet(f, st, SheetRejects, "RejectedImports", RejectColumns, w, len(refused)+len(rows), func(i int) []any {
		if i < len(refused) {
			r := refused[i]
			return []any{
				excelize.Cell{StyleID: st.text, Value: r.File},
				excelize.Cell{StyleID: st.integer}, // no line: the whole file
				excelize.Cell{StyleID: st.text, Value: refusedReason(r)},
				excelize.Cell{StyleID: st.text, Value: ""},
				excelize.Cell{StyleID: st.date, Value: utc(r.RefusedAt)},
				excelize.Cell{StyleID: st.text, Value: ""}, // no credential: never worked
			}
		}
		r := rows[i-len(refused)]
		return []any{
			excelize.Cell{StyleID: st.text, Value: r.File},
			excelize.Cell{StyleID: st.integer, Value: r.Line},
			excelize.Cell{StyleID: st.text, Value: r.Reason},
			excelize.Cell{StyleID: st.text, Value: r.Raw},
			excelize.Cell{StyleID: st.date, Value: utc(r.ImportedAt)},
			excelize.Cell{StyleID: st.text, Value: r.Credential},
		}
	})
}

// noCalls fills the Summary's Octane calls table when the period has none.
const noCalls = "No Octane calls recorded in this period"

// Summary layout: the rows below are fixed so the chart can point at them.
const (
	summaryOpenOrders    = 8  // "Open orders older than 24 h | count | note"
	summaryQRLate        = 9  // "QR codes late (over 24 h) | count | note"
	summaryOutcomeHeader = 11 // "Outcome | This report | To date"
)

// The Summary's labels of the attention counts, and of the counts of the
// report's rows.
const (
	labelSheetCounts = "QR codes / failures / rejected rows / refused files"
	labelOpenOrders  = "Open orders older than 24 h"
	labelQRLate      = "QR codes late (over 24 h)"
)

// attentionShown is how many of l's rows the Attention sheet lists.
func attentionShown(l AttentionList) int { return min(len(l.Rows), MaxAttentionRows) }

// attentionNote is the Summary's word beside an attention count: where the
// rows are and, when the list was cut, how many of them.
func attentionNote(l AttentionList) string {
	switch shown := attentionShown(l); {
	case l.Count == 0:
		return ""
	case shown < l.Count:
		return fmt.Sprintf("the oldest %d of %d are on the %s sheet", shown, l.Count, SheetAttention)
	default:
		return "listed on the " + SheetAttention + " sheet"
	}
}

// attentionCapNote is the Attention sheet's line under a cut list, or "".
func attentionCapNote(label string, l AttentionList) string {
	if shown := attentionShown(l); shown < l.Count {
		return fmt.Sprintf("%s: %d, the oldest %d listed", label, l.Count, shown)
	}
	return ""
}

// noAttention is the Attention sheet's note when nothing needs attention.
const noAttention = "No order open for more than 24 h and no QR code late by more than 24 h"

// writeAttention lists the open orders, then the late QR codes, each oldest
// first (the order the store gives) and cut at MaxAttentionRows, with a note
// under the table for each cut list.
func writeAttention(f *excelize.File, st styles, d Data) error {
	type entry struct {
		issue string
		r     AttentionRow
	}
	var rows []entry
	for _, l := range []struct {
		issue string
		list  AttentionList
	}{{"Open order over 24 h", d.OpenOrders}, {"QR code late", d.QRLate}} {
		for _, r := range l.list.Rows[:attentionShown(l.list)] {
			rows = append(rows, entry{l.issue, r})
		}
	}
	w := newWidths(AttentionColumns)
	for _, e := range rows {
		for c, v := range []string{e.issue, e.r.SalesRef, e.r.MSN, e.r.OrderID, e.r.State} {
			w.fit(c, v)
		}
		w.fit(7, e.r.LastError)
		w.fit(8, e.r.Credential)
	}
	w.atLeast(5, dateWidth)
	var notes []string
	for _, n := range []string{attentionCapNote(labelOpenOrders, d.OpenOrders), attentionCapNote(labelQRLate, d.QRLate)} {
		if n != "" {
			notes = append(notes, n)
		}
	}
	if d.OpenOrders.Count == 0 && d.QRLate.Count == 0 {
		notes = append(notes, noAttention)
	}
	return streamSheet(f, st, SheetAttention, "Attention", AttentionColumns, w, len(rows), func(i int) []any {
		e := rows[i]
		return []any{
			excelize.Cell{StyleID: st.text, Value: e.issue},
			excelize.Cell{StyleID: st.text, Value: e.r.SalesRef},
			excelize.Cell{StyleID: st.text, Value: e.r.MSN},
			excelize.Cell{StyleID: st.text, Value: e.r.OrderID},
			excelize.Cell{StyleID: st.text, Value: e.r.State},
			excelize.Cell{StyleID: st.date, Value: utc(e.r.Since)},
			excelize.Cell{StyleID: st.integer, Value: e.r.Count},
			excelize.Cell{StyleID: st.text, Value: e.r.LastError},
			excelize.Cell{StyleID: st.text, Value: e.r.Credential},
		}
	}, notes...)
}

// outcomes lists the outcome keys to show: the fixed order first (the four
// reporting outcomes always, lifecycle states when present), then the rest.
func outcomes(counts, totals map[string]int) []string {
	seen := map[string]bool{}
	var keys []string
	for i, k := range outcomeOrder {
		_, inC := counts[k]
		_, inT := totals[k]
		if i < len(reportOutcomes) || inC || inT {
			keys = append(keys, k)
		}
		seen[k] = true
	}
	var rest []string
	for _, m := range []map[string]int{counts, totals} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				rest = append(rest, k)
			}
		}
	}
	sort.Strings(rest)
	return append(keys, rest...)
}

func writeSummary(f *excelize.File, st styles, d Data) error {
	sheet := SheetSummary
	if err := printSetup(f, sheet, false); err != nil {
		return err
	}
	type kv struct {
		row   int
		label string
		value any
		style int
	}
	waits := d.RateLimitWaits
	if waits == 0 {
		for _, c := range d.Calls {
			waits += c.Waited
		}
	}
	dry := "no"
	if d.DryRun {
		dry = "yes"
	}
	title := fmt.Sprintf("eSIM activation report #%d", d.Number)
	set := func(ref string, v any, style int) error {
		if s, ok := v.(string); ok {
			if err := f.SetCellStr(sheet, ref, s); err != nil {
				return fmt.Errorf("reports: summary %s: %w", ref, err)
			}
		} else if err := f.SetCellValue(sheet, ref, v); err != nil {
			return fmt.Errorf("reports: summary %s: %w", ref, err)
		}
		if err := f.SetCellStyle(sheet, ref, ref, style); err != nil {
			return fmt.Errorf("reports: summary style %s: %w", ref, err)
		}
		return nil
	}
	if err := set("A1", title, st.title); err != nil {
		return err
	}
	for _, e := range []kv{
		{2, "Generated (UTC)", utc(d.GeneratedAt), st.date},
		{3, "Period from (UTC)", utc(d.PeriodFrom), st.date},
		{4, "Period to (UTC)", utc(d.PeriodTo), st.date},
		{5, "Dry run", dry, st.text},
		{6, labelSheetCounts, fmt.Sprintf("%d / %d / %d / %d", d.QRCodes(), len(d.Failures), len(d.Rejects), len(d.Refused)), st.text},
		{7, "Rate-limit waits (s)", waits.Seconds(), st.seconds},
		{summaryOpenOrders, labelOpenOrders, d.OpenOrders.Count, st.integer},
		{summaryQRLate, labelQRLate, d.QRLate.Count, st.integer},
	} {
		if err := set(cell(1, e.row), e.label, st.header); err != nil {
			return err
		}
		if err := set(cell(2, e.row), e.value, e.style); err != nil {
			return err
		}
	}
	notes := map[int]string{summaryOpenOrders: attentionNote(d.OpenOrders), summaryQRLate: attentionNote(d.QRLate)}
	for r, note := range notes {
		if note == "" {
			continue
		}
		if err := set(cell(3, r), note, st.text); err != nil {
			return err
		}
	}
	row := summaryOutcomeHeader
	for c, h := range []string{"Outcome", "This report", "To date"} {
		if err := set(cell(c+1, row), h, st.header); err != nil {
			return err
		}
	}
	keys := outcomes(d.Counts, d.Totals)
	for _, k := range keys {
		row++
		if err := set(cell(1, row), outcomeLabel(k), st.text); err != nil {
			return err
		}
		for c, m := range []map[string]int{d.Counts, d.Totals} {
			var v any = "" // not counted: blank, not a misleading 0
			if n, ok := m[k]; ok {
				v = n
			}
			if err := set(cell(c+2, row), v, st.integer); err != nil {
				return err
			}
		}
	}
	first, lastOutcome := summaryOutcomeHeader+1, row
	row += 2
	for c, h := range []string{"Octane method", "Outcome", "Calls", "Rate-limit wait (s)", ColumnCredential} {
		if err := set(cell(c+1, row), h, st.header); err != nil {
			return err
		}
	}
	calls := append([]CallStat(nil), d.Calls...)
	sort.Slice(calls, func(i, j int) bool {
		if calls[i].Method != calls[j].Method {
			return calls[i].Method < calls[j].Method
		}
		if calls[i].Outcome != calls[j].Outcome {
			return calls[i].Outcome < calls[j].Outcome
		}
		return calls[i].Credential < calls[j].Credential
	})
	w := newWidths([]string{labelSheetCounts, "Rate-limit wait (s)", "This report", "Rate-limit wait (s)", ColumnCredential})
	w.atLeast(1, dateWidth)
	for _, k := range keys {
		w.fit(0, outcomeLabel(k))
	}
	w.fit(0, labelOpenOrders)
	w.fit(0, labelQRLate)
	for _, note := range notes {
		w.fit(2, note)
	}
	for _, c := range calls {
		row++
		w.fit(0, c.Method)
		w.fit(1, c.Outcome)
		w.fit(4, c.Credential)
		for i, v := range []any{c.Method, c.Outcome, c.Count, c.Waited.Seconds(), c.Credential} {
			style := []int{st.text, st.text, st.integer, st.seconds, st.text}[i]
			if err := set(cell(i+1, row), v, style); err != nil {
				return err
			}
		}
	}
	if len(calls) == 0 {
		// Said, not left blank: an empty table reads as a broken report.
		w.fit(0, noCalls)
		if err := set(cell(1, row+1), noCalls, st.text); err != nil {
			return err
		}
	}
	if err := w.apply(f, sheet); err != nil {
		return err
	}
	// The chart shows the rows and activations a report delivers (the rows
	// after them are refused files, and lifecycle states, mostly 0, that
	// crowd the axis).
	lastChart := min(first+len(chartOutcomes)-1, lastOutcome)
	series := func(col string) excelize.ChartSeries {
		return excelize.ChartSeries{
			Name:       fmt.Sprintf("'%s'!$%s$%d", sheet, col, summaryOutcomeHeader),
			Categories: fmt.Sprintf("'%s'!$A$%d:$A$%d", sheet, first, lastChart),
			Values:     fmt.Sprintf("'%s'!$%s$%d:$%s$%d", sheet, col, first, col, lastChart),
		}
	}
	// excelize draws tick labels in 15 % grey, barely visible on screen and
	// lost on a printout: dark grey, like the rest of the sheet.
	axisFont := excelize.Font{Color: "404040", Size: 10}
	axisTitle := func(s string) excelize.ChartTitle {
		return excelize.ChartTitle{Paragraph: []excelize.RichTextRun{{Text: s, Font: &excelize.Font{Color: "404040", Size: 10}}}}
	}
	if err := f.AddChart(sheet, "F2", &excelize.Chart{
		Type:       excelize.Col,
		VaryColors: new(false), // one colour per series, as the legend says
		Series:     []excelize.ChartSeries{series("B"), series("C")},
		Title:      excelize.ChartTitle{Paragraph: []excelize.RichTextRun{{Text: "Activations by outcome"}}},
		Legend:     excelize.ChartLegend{Position: "bottom"},
		XAxis:      excelize.ChartAxis{Font: axisFont, Title: axisTitle("Outcome")},
		YAxis:      excelize.ChartAxis{Font: axisFont, Title: axisTitle("Activations"), MajorGridLines: true},
		Dimension:  excelize.ChartDimension{Width: 560, Height: 320},
		Format:     excelize.GraphicOptions{OffsetX: 10, OffsetY: 10},
	}); err != nil {
		return fmt.Errorf("reports: summary chart: %w", err)
	}
	return nil
}
