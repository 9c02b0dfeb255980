package reports

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skip2/go-qrcode"
	"github.com/xuri/excelize/v2"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func lpa(i int) string {
	return fmt.Sprintf("LPA:1$smdp.octane.example.com$K2-%04d-ABCD-EFGH-%06d", i, i*7919)
}

// sampleData has the values finance's spreadsheets trip over: formulas as
// text, leading zeros, long digit strings.
func sampleData(t *testing.T) Data {
	t.Helper()
	octanePNG, err := qrcode.Encode(lpa(1), qrcode.High, 300) // differs from what we render
	if err != nil {
		t.Fatal(err)
	}
	sydney := time.FixedZone("AEDT", 11*3600)
	return Data{
		Number: 12, GeneratedAt: t0, PeriodFrom: t0.Add(-24 * time.Hour), PeriodTo: t0,
		QR: []QRRow{
			{SalesRef: `=HYPERLINK("http://evil.example","x")`, Customer: "Ann Lee", Email: "ann@example.com",
				MSN: "0412345678", OrderID: "000123", ICCID: "8961012345678901234", Outcome: "QR ready",
				CompletedAt: t0.Add(-time.Hour).In(sydney), ActivationCode: lpa(1), PNG: octanePNG},
			{SalesRef: "S-2", Customer: "+61 Bob", Email: "bob@example.com", MSN: "0412000002", OrderID: "9",
				Outcome: "QR ready", CompletedAt: t0.Add(-2 * time.Hour), ActivationCode: lpa(2)},
			{SalesRef: "S-3", Customer: "@SUM(A1)", MSN: "0412000003", Outcome: "QR ready",
				CompletedAt: t0, ActivationCode: lpa(3), PNG: []byte("not a png")},
			{SalesRef: "S-4", Customer: "Phys Ical", MSN: "0412000004", Outcome: "Provisioned (physical SIM)",
				CompletedAt: t0},
			{SalesRef: "S-5", Customer: "Wrong Image", MSN: "0412000005", Outcome: "QR ready",
				CompletedAt: t0, ActivationCode: lpa(5), PNG: octanePNG},
		},
		Failures: []FailureRow{
			{SalesRef: "F-1", Customer: "Cat", Email: "cat@example.com", MSN: "0499000001", Step: "orderCreate",
				Code: "E042", Message: "=1+1 plan not allowed", Reason: "Octane refused the request",
				Advice: "Check the plan", Attempts: 3,
				FirstAttempt: t0.Add(-3 * time.Hour), LastAttempt: t0.Add(-time.Hour)},
			{SalesRef: "F-2", Step: "reserveResources", Reason: "No answer from Octane: exhausted",
				Advice: "=re-drive with batch retry", Attempts: 8},
		},
		Rejects: []RejectRow{
			{File: "sales-2026-11-28.csv", Line: 7, Reason: "missing email", Raw: `S-9,Dan,,=cmd|' /C calc'!A0`, ImportedAt: t0},
		},
		Refused: []RefusedFile{
			{File: "=sales.csv", Reason: `header on line 1 has no "email" column`, MovedTo: "rejected", RefusedAt: t0.Add(-time.Minute)},
		},
		Counts: map[string]int{"qr_ready": 3, OutcomeProvisionedPhysical: 1, OutcomeProvisionedEmailed: 0, "failed": 2,
			OutcomeRejected: 1, OutcomeRefused: 1},
		Totals: map[string]int{"qr_ready": 100, OutcomeProvisionedPhysical: 3, OutcomeProvisionedEmailed: 1, "failed": 9,
			OutcomeRejected: 3, OutcomeRefused: 2, "pending": 20, "weird": 1},
		Calls: []CallStat{
			{Method: "orderCreate", Outcome: "ok", Count: 40, Waited: 3 * time.Second},
			{Method: "getEsimDetails", Outcome: "ok", Count: 39, Waited: 1500 * time.Millisecond},
		},
	}
}

func open(t *testing.T, b []byte, password string) *excelize.File {
	t.Helper()
	f, err := excelize.OpenReader(bytes.NewReader(b), excelize.Options{Password: password})
	if err != nil {
		t.Fatalf("open workbook: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func mustBuild(t *testing.T, d Data, opts Options) []byte {
	t.Helper()
	b, err := Build(d, opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return b
}

func row(t *testing.T, f *excelize.File, sheet string, r, n int) []string {
	t.Helper()
	out := make([]string, n)
	for c := range n {
		v, err := f.GetCellValue(sheet, cell(c+1, r))
		if err != nil {
			t.Fatal(err)
		}
		out[c] = v
	}
	return out
}

func TestColumnsGolden(t *testing.T) {
	f := open(t, mustBuild(t, Data{Number: 1, GeneratedAt: t0}, Options{}), "")
	var got strings.Builder
	for _, s := range []struct {
		sheet string
		n     int
	}{{SheetQR, len(QRColumns)}, {SheetFailure, len(FailureColumns)}, {SheetRejects, len(RejectColumns)},
		{SheetAttention, len(AttentionColumns)}} {
		fmt.Fprintf(&got, "%s: %s\n", s.sheet, strings.Join(row(t, f, s.sheet, 1, s.n+1), " | "))
	}
	if sheets := f.GetSheetList(); strings.Join(sheets, ",") != "QR codes,Failures,Rejected imports,Summary,Attention" {
		t.Errorf("sheets = %v", sheets)
	}
	path := filepath.Join("testdata", "columns.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./reports -run TestColumnsGolden -update)", err)
	}
	// The extra column read past the end must be empty: no stray header.
	if got.String() != string(want) {
		t.Errorf("header rows changed: finance's spreadsheets depend on them\ngot:\n%s\nwant:\n%s", got.String(), want)
	}
}

func TestQRSheetValues(t *testing.T) {
	d := sampleData(t)
	f := open(t, mustBuild(t, d, Options{}), "")
	for i, r := range d.QR {
		rn := i + 2
		want := []string{r.SalesRef, r.Customer, r.Email, r.MSN, r.OrderID, r.ICCID, r.Outcome,
			r.CompletedAt.UTC().Format("2006-01-02 15:04:05"), r.ActivationCode, ""}
		got := row(t, f, SheetQR, rn, len(want))
		for c := range want {
			if got[c] != want[c] {
				t.Errorf("QR %s = %q, want %q", cell(c+1, rn), got[c], want[c])
			}
		}
		for c := 1; c <= 9; c++ {
			if c == 8 {
				continue
			}
			ref := cell(c, rn)
			if fo, _ := f.GetCellFormula(SheetQR, ref); fo != "" {
				t.Errorf("QR %s is a formula %q: text must stay text", ref, fo)
			}
			if typ, _ := f.GetCellType(SheetQR, ref); got[c-1] != "" && typ != excelize.CellTypeInlineString && typ != excelize.CellTypeSharedString {
				t.Errorf("QR %s type %v, want a string", ref, typ)
			}
		}
		checkDate(t, f, SheetQR, cell(8, rn), r.CompletedAt)
	}
}

// checkDate asserts ref holds a real Excel date (a number with a date
// format) equal to want in UTC.
func checkDate(t *testing.T, f *excelize.File, sheet, ref string, want time.Time) {
	t.Helper()
	raw, err := f.GetCellValue(sheet, ref, excelize.Options{RawCellValue: true})
	if err != nil {
		t.Fatal(err)
	}
	if want.IsZero() {
		if raw != "" {
			t.Errorf("%s!%s = %q, want blank", sheet, ref, raw)
		}
		return
	}
	serial, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		t.Fatalf("%s!%s = %q: not a number, so not an Excel date", sheet, ref, raw)
	}
	got, _ := excelize.ExcelDateToTime(serial, false)
	if d := got.Sub(want.UTC()); d > time.Second || d < -time.Second {
		t.Errorf("%s!%s = %v, want %v (UTC)", sheet, ref, got, want.UTC())
	}
	id, _ := f.GetCellStyle(sheet, ref)
	st, err := f.GetStyle(id)
	if err != nil || st.CustomNumFmt == nil || *st.CustomNumFmt != dateFormat {
		t.Errorf("%s!%s style has no date format", sheet, ref)
	}
	// Clear of its neighbours: centred in a column wider than the date.
	if err == nil && (st.Alignment == nil || st.Alignment.Horizontal != "center") {
		t.Errorf("%s!%s date is not centred: it runs into the next column's text", sheet, ref)
	}
	col := strings.TrimRight(ref, "0123456789")
	if w, _ := f.GetColWidth(sheet, col); w < float64(len(dateFormat))+3 {
		t.Errorf("%s column %s is %v wide for a %d-character date", sheet, col, w, len(dateFormat))
	}
}

// decodeQR reads the text of a QR code image.
func decodeQR(t *testing.T, png []byte) string {
	t.Helper()
	text, err := DecodeQR(png)
	if err != nil {
		t.Fatalf("QR image: %v", err)
	}
	return text
}

func TestQRImagesDecodeToTheirRow(t *testing.T) {
	d := sampleData(t)
	f := open(t, mustBuild(t, d, Options{}), "")
	tests := []struct {
		name      string
		row       int
		wantImage bool
		octane    bool // the picture must be Octane's PNG byte for byte
	}{
		{"Octane PNG given", 0, true, true},
		{"rendered from the code", 1, true, false},
		{"unreadable Octane PNG: rendered", 2, true, false},
		{"no code, no image", 3, false, false},
		{"Octane PNG of another code: rendered", 4, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := d.QR[tt.row]
			ref := cell(qrImageCol, tt.row+2)
			pics, err := f.GetPictures(SheetQR, ref)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.wantImage {
				if len(pics) != 0 {
					t.Fatalf("%s has %d pictures, want none", ref, len(pics))
				}
				return
			}
			if len(pics) != 1 {
				t.Fatalf("%s has %d pictures, want 1", ref, len(pics))
			}
			if tt.octane != bytes.Equal(pics[0].File, r.PNG) {
				t.Errorf("picture is Octane's PNG = %v, want %v", !tt.octane, tt.octane)
			}
			code, _ := f.GetCellValue(SheetQR, cell(9, tt.row+2))
			if got := decodeQR(t, pics[0].File); got != code || got != r.ActivationCode {
				t.Errorf("QR decodes to %q; row's code %q, input %q", got, code, r.ActivationCode)
			}
		})
	}
}

func TestLayout(t *testing.T) {
	b := mustBuild(t, sampleData(t), Options{})
	f := open(t, b, "")
	for _, sheet := range []string{SheetQR, SheetFailure, SheetRejects} {
		p, err := f.GetPanes(sheet)
		if err != nil || !p.Freeze || p.YSplit != 1 {
			t.Errorf("%s: header not frozen: %+v %v", sheet, p, err)
		}
		for c, h := range map[string][]string{SheetQR: QRColumns, SheetFailure: FailureColumns, SheetRejects: RejectColumns}[sheet] {
			col, _ := excelize.ColumnNumberToName(c + 1)
			w, err := f.GetColWidth(sheet, col)
			if err != nil || w < float64(len(h)) || w > maxColWidth {
				t.Errorf("%s column %s (%s) width %v", sheet, col, h, w)
			}
		}
	}
	for sheet, want := range map[string]string{SheetFailure: "A1:M3", SheetRejects: "A1:F3"} {
		tables, err := f.GetTables(sheet)
		if err != nil || len(tables) != 1 || tables[0].Range != want {
			t.Errorf("%s tables = %+v %v, want one over %s (its autofilter)", sheet, tables, err, want)
		}
	}
	// The QR sheet's autofilter, read from the sheet XML.
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var sheet1 []byte
	for _, zf := range zr.File {
		if zf.Name == "xl/worksheets/sheet1.xml" {
			rc, _ := zf.Open()
			sheet1, _ = io.ReadAll(rc)
			rc.Close()
		}
	}
	if !bytes.Contains(sheet1, []byte(`<autoFilter ref="$A$1:$K$6"`)) {
		t.Errorf("QR sheet has no autofilter over A1:K6")
	}
	if h, _ := f.GetRowHeight(SheetQR, 2); h != qrRowHeight {
		t.Errorf("QR row height %v, want %v", h, qrRowHeight)
	}
}

func TestFailuresAndRejects(t *testing.T) {
	d := sampleData(t)
	f := open(t, mustBuild(t, d, Options{}), "")
	// Octane's code and message, our reason and the advice each in its own
	// column: a failure of ours (F-2) leaves Octane's columns blank.
	wantFailures := [][]string{
		{"F-1", "Cat", "cat@example.com", "0499000001", "orderCreate", "E042", "=1+1 plan not allowed",
			"Octane refused the request", "Check the plan", "3"},
		{"F-2", "", "", "", "reserveResources", "", "", "No answer from Octane: exhausted", "=re-drive with batch retry", "8"},
	}
	for i, r := range d.Failures {
		rn := i + 2
		want := wantFailures[i]
		got := row(t, f, SheetFailure, rn, len(want))
		for c := range want {
			if got[c] != want[c] {
				t.Errorf("Failures %s (%s) = %q, want %q", cell(c+1, rn), FailureColumns[c], got[c], want[c])
			}
			if fo, _ := f.GetCellFormula(SheetFailure, cell(c+1, rn)); fo != "" {
				t.Errorf("Failures %s is a formula %q", cell(c+1, rn), fo)
			}
		}
		checkDate(t, f, SheetFailure, cell(11, rn), r.FirstAttempt)
		checkDate(t, f, SheetFailure, cell(12, rn), r.LastAttempt)
	}
	// The refused file first, with no line and no raw row, then the rows.
	rf := d.Refused[0]
	got := row(t, f, SheetRejects, 2, 4)
	if want := []string{rf.File, "", `File refused (moved to rejected/): header on line 1 has no "email" column`, ""}; strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("Rejected imports refused file = %q, want %q", got, want)
	}
	checkDate(t, f, SheetRejects, "E2", rf.RefusedAt)
	r := d.Rejects[0]
	got = row(t, f, SheetRejects, 3, 4)
	if want := []string{r.File, "7", r.Reason, r.Raw}; strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("Rejected imports row = %q, want %q", got, want)
	}
	for _, ref := range []string{"A2", "D3"} {
		if fo, _ := f.GetCellFormula(SheetRejects, ref); fo != "" {
			t.Errorf("Rejected imports %s became formula %q", ref, fo)
		}
	}
	checkDate(t, f, SheetRejects, "E3", r.ImportedAt)
}

func TestSummary(t *testing.T) {
	d := sampleData(t)
	b := mustBuild(t, d, Options{})
	f := open(t, b, "")
	if v, _ := f.GetCellValue(SheetSummary, "A1"); v != "eSIM activation report #12" {
		t.Errorf("title %q", v)
	}
	checkDate(t, f, SheetSummary, "B3", d.PeriodFrom)
	checkDate(t, f, SheetSummary, "B4", d.PeriodTo)
	if v, _ := f.GetCellValue(SheetSummary, "B7", excelize.Options{RawCellValue: true}); v != "4.5" {
		t.Errorf("rate-limit waits = %q, want 4.5 s (sum of calls)", v)
	}
	// QR codes only for the rows that have one; the provisioned services
	// apart; every outcome with its total to date.
	if v, _ := f.GetCellValue(SheetSummary, "B6"); v != "4 / 2 / 1 / 1" {
		t.Errorf("Summary B6 = %q, want 4 QR codes (S-4 has none) / 2 failures / 1 rejected row / 1 refused file", v)
	}
	wantOutcomes := [][]string{
		{"Outcome", "This report", "To date"},
		{"QR ready", "3", "100"}, {"Provisioned: physical SIM", "1", "3"}, {"Provisioned: QR emailed by Octane", "0", "1"},
		{"Failed", "2", "9"}, {"Rejected on import", "1", "3"}, {"Files refused on import", "1", "2"},
		{"Pending", "", "20"}, {"weird", "", "1"},
		{"", "", ""},
		{"Octane method", "Outcome", "Calls"},
		{"getEsimDetails", "ok", "39"}, {"orderCreate", "ok", "40"},
	}
	for i, want := range wantOutcomes {
		rn := summaryOutcomeHeader + i
		if got := row(t, f, SheetSummary, rn, 3); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("Summary row %d = %q, want %q", rn, got, want)
		}
	}
}

// The chart a finance user reads without the table beside it: titled, both
// axes titled, tick labels dark enough to read, over the five outcomes a
// report delivers (not the lifecycle states, mostly 0, that crowd the axis).
func TestSummaryChart(t *testing.T) {
	b := mustBuild(t, sampleData(t), Options{})
	type text struct {
		T []string `xml:"tx>rich>p>r>t"`
	}
	type val struct {
		Val string `xml:"val,attr"`
	}
	type axis struct {
		Title text `xml:"title"`
		Tick  struct {
			RGB    val `xml:"srgbClr"`
			LumOff val `xml:"schemeClr>lumOff"`
		} `xml:"txPr>p>pPr>defRPr>solidFill"`
	}
	var chart struct {
		Title  text `xml:"chart>title"`
		Series []struct {
			Name string `xml:"tx>strRef>f"`
			Cat  string `xml:"cat>strRef>f"`
			Val  string `xml:"val>numRef>f"`
		} `xml:"chart>plotArea>barChart>ser"`
		VaryColors val  `xml:"chart>plotArea>barChart>varyColors"`
		CatAx      axis `xml:"chart>plotArea>catAx"`
		ValAx      axis `xml:"chart>plotArea>valAx"`
	}
	if err := xml.Unmarshal(zipPart(t, b, "xl/charts/chart1.xml"), &chart); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(chart.Title.T, ""); got != "Activations by outcome" {
		t.Errorf("chart title %q", got)
	}
	if chart.VaryColors.Val == "1" {
		t.Errorf("bars vary colour by category: the legend's two colours would not match")
	}
	for _, ax := range []struct {
		name  string
		axis  axis
		title string
	}{{"category axis", chart.CatAx, "Outcome"}, {"value axis", chart.ValAx, "Activations"}} {
		if got := strings.Join(ax.axis.Title.T, ""); got != ax.title {
			t.Errorf("%s title %q, want %q", ax.name, got, ax.title)
		}
		if ax.axis.Tick.RGB.Val == "" || ax.axis.Tick.LumOff.Val != "" {
			t.Errorf("%s tick labels are a light scheme tint (lumOff %q), want a dark RGB colour", ax.name, ax.axis.Tick.LumOff.Val)
		}
	}
	want := []struct{ name, cat, val string }{
		{"'Summary'!$B$11", "'Summary'!$A$12:$A$16", "'Summary'!$B$12:$B$16"},
		{"'Summary'!$C$11", "'Summary'!$A$12:$A$16", "'Summary'!$C$12:$C$16"},
	}
	if len(chart.Series) != len(want) {
		t.Fatalf("%d series, want %d (this report, to date)", len(chart.Series), len(want))
	}
	for i, w := range want {
		s := chart.Series[i]
		if s.Name != w.name || s.Cat != w.cat || s.Val != w.val {
			t.Errorf("series %d = %s %s %s, want %s %s %s", i, s.Name, s.Cat, s.Val, w.name, w.cat, w.val)
		}
	}
}

func TestEncrypted(t *testing.T) {
	d := sampleData(t)
	b := mustBuild(t, d, Options{Password: "s3cret-pw"})
	if !bytes.HasPrefix(b, []byte{0xD0, 0xCF, 0x11, 0xE0}) {
		t.Fatalf("encrypted workbook does not start with the OLE signature")
	}
	tests := []struct {
		name     string
		password string
		wantErr  bool
	}{
		{"no password", "", true},
		{"wrong password", "guess", true},
		{"right password", "s3cret-pw", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := excelize.OpenReader(bytes.NewReader(b), excelize.Options{Password: tt.password})
			if tt.wantErr {
				if err == nil {
					v, _ := f.GetCellValue(SheetQR, "I2")
					f.Close()
					t.Fatalf("opened without the right password (I2=%q)", v)
				}
				return
			}
			if err != nil {
				t.Fatalf("open with password: %v", err)
			}
			defer f.Close()
			if v, _ := f.GetCellValue(SheetQR, "D2"); v != "0412345678" {
				t.Errorf("D2 = %q", v)
			}
			pics, err := f.GetPictures(SheetQR, "J3")
			if err != nil || len(pics) != 1 {
				t.Fatalf("pictures %d %v", len(pics), err)
			}
			if got := decodeQR(t, pics[0].File); got != d.QR[1].ActivationCode {
				t.Errorf("QR decodes to %q", got)
			}
		})
	}
}

func TestTooManyQRRows(t *testing.T) {
	rows := make([]QRRow, MaxQRRowsPerWorkbook+1)
	for i := range rows {
		rows[i].ActivationCode = "x"
	}
	_, err := Build(Data{QR: rows}, Options{})
	if !errors.Is(err, ErrTooManyQRRows) {
		t.Fatalf("err = %v, want ErrTooManyQRRows", err)
	}
}

func TestEmptyReportBuilds(t *testing.T) {
	f := open(t, mustBuild(t, Data{Number: 3}, Options{}), "")
	if v, _ := f.GetCellValue(SheetSummary, "A12"); v != "QR ready" {
		t.Errorf("A12 = %q, want the qr_ready outcome row", v)
	}
	// Outcome rows 12-17, a blank row, the calls header, then the note.
	if v, _ := f.GetCellValue(SheetSummary, "A19"); v != "Octane method" {
		t.Errorf("A19 = %q, want the calls table header", v)
	}
	if v, _ := f.GetCellValue(SheetSummary, "A20"); v != noCalls {
		t.Errorf("A20 = %q: a period without Octane calls must say so, not leave an empty table", v)
	}
	// Nothing needs attention: counts 0, no note, and the Attention sheet says so.
	for _, ref := range []string{"B8", "B9"} {
		if v, _ := f.GetCellValue(SheetSummary, ref, excelize.Options{RawCellValue: true}); v != "0" {
			t.Errorf("Summary %s = %q, want 0", ref, v)
		}
	}
	if v, _ := f.GetCellValue(SheetSummary, "C8"); v != "" {
		t.Errorf("Summary C8 = %q, want no note for a zero count", v)
	}
	if got := row(t, f, SheetAttention, 3, 1); got[0] != noAttention {
		t.Errorf("Attention A3 = %q, want %q", got[0], noAttention)
	}
	if w, _ := f.GetColWidth(SheetSummary, "A"); w < float64(len(noCalls)) {
		t.Errorf("Summary column A is %v wide: the note is cut", w)
	}
}

// zipPart returns the named part of an (unencrypted) workbook.
func zipPart(t *testing.T, b []byte, name string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, zf := range zr.File {
		if zf.Name == name {
			rc, err := zf.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			data, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
	t.Fatalf("workbook has no part %s", name)
	return nil
}

// sheetDrawing returns the drawing part of the n-th sheet (1-based).
func sheetDrawing(t *testing.T, b []byte, n int) []byte {
	t.Helper()
	var rels struct {
		Rel []struct {
			Target string `xml:"Target,attr"`
			Type   string `xml:"Type,attr"`
		} `xml:"Relationship"`
	}
	if err := xml.Unmarshal(zipPart(t, b, fmt.Sprintf("xl/worksheets/_rels/sheet%d.xml.rels", n)), &rels); err != nil {
		t.Fatal(err)
	}
	for _, r := range rels.Rel {
		if strings.HasSuffix(r.Type, "/drawing") {
			return zipPart(t, b, "xl/"+strings.TrimPrefix(r.Target, "../"))
		}
	}
	t.Fatalf("sheet %d has no drawing", n)
	return nil
}

// A QR image a finance user can scan from the screen: inside its own cell
// (so rows never overlap and sorting keeps image and code together), at a
// scannable size, whether Octane sent a 300 px PNG or we rendered 128 px.
func TestQRImagesSitInTheirCells(t *testing.T) {
	d := sampleData(t)
	b := mustBuild(t, d, Options{})
	f := open(t, b, "")
	var dr struct {
		Anchors []struct {
			Col    int   `xml:"from>col"`
			ColOff int64 `xml:"from>colOff"`
			Row    int   `xml:"from>row"`
			RowOff int64 `xml:"from>rowOff"`
			Ext    struct {
				CX int64 `xml:"cx,attr"`
				CY int64 `xml:"cy,attr"`
			} `xml:"ext"`
		} `xml:"oneCellAnchor"`
	}
	if err := xml.Unmarshal(sheetDrawing(t, b, 1), &dr); err != nil {
		t.Fatal(err)
	}
	const emuPerPx, emuPerPt = 9525, 12700
	if len(dr.Anchors) != 4 { // rows 2, 3, 4 and 6 carry an image
		t.Fatalf("%d images on the QR sheet, want 4", len(dr.Anchors))
	}
	colW, err := f.GetColWidth(SheetQR, "J")
	if err != nil {
		t.Fatal(err)
	}
	cellPx := int64(colW*7 + 5) // Excel's pixels for a width in characters (Calibri 11)
	rows := map[int]bool{}
	for _, a := range dr.Anchors {
		name := fmt.Sprintf("image in row %d", a.Row+1)
		if a.Col != qrImageCol-1 {
			t.Errorf("%s anchored in column %d, want the QR code column %d", name, a.Col, qrImageCol-1)
		}
		if rows[a.Row] {
			t.Errorf("two images in row %d", a.Row+1)
		}
		rows[a.Row] = true
		rowPt, err := f.GetRowHeight(SheetQR, a.Row+1)
		if err != nil {
			t.Fatal(err)
		}
		if a.Ext.CX != a.Ext.CY {
			t.Errorf("%s is %dx%d EMU, want square", name, a.Ext.CX, a.Ext.CY)
		}
		if a.Ext.CY < 100*emuPerPx {
			t.Errorf("%s is %d px high, want at least 100 px to scan", name, a.Ext.CY/emuPerPx)
		}
		if bottom := a.RowOff + a.Ext.CY; bottom > int64(rowPt*emuPerPt) {
			t.Errorf("%s ends %d px down, row is %.0f pt (%d px): it spills into the next row",
				name, bottom/emuPerPx, rowPt, int64(rowPt*emuPerPt)/emuPerPx)
		}
		if right := a.ColOff + a.Ext.CX; right > cellPx*emuPerPx {
			t.Errorf("%s ends %d px right, column is %d px", name, right/emuPerPx, cellPx)
		}
	}
}

// Long messages and raw rows are not cut off at the column's edge: the
// column stops at maxColWidth, the text wraps and the row is tall enough for
// every line.
func TestLongTextWraps(t *testing.T) {
	long := strings.Repeat("Octane said the plan is not allowed for this customer. ", 4) // 220 runes
	raw := strings.Repeat("S-9,Dan,Smith,dan@example.com,1001,,esim,,", 4)               // 168 runes
	d := Data{
		Number: 1, GeneratedAt: t0,
		QR: []QRRow{{SalesRef: "S-1", MSN: "0412000001", Outcome: "QR ready", CompletedAt: t0,
			ActivationCode: "LPA:1$smdp.octane.example.com$" + strings.Repeat("K", 60)}},
		Failures: []FailureRow{
			{SalesRef: "F-1", Step: "orderCreate", Code: "E042", Message: "short", Attempts: 1},
			{SalesRef: "F-2", Step: "orderCreate", Code: "E042", Message: long, Attempts: 2},
		},
		Rejects: []RejectRow{{File: "sales.csv", Line: 9, Reason: "missing email", Raw: raw, ImportedAt: t0}},
	}
	f := open(t, mustBuild(t, d, Options{}), "")
	tests := []struct {
		name      string
		sheet     string
		col       string
		row       int
		want      string
		minHeight float64 // 0: the row's own height is not checked
	}{
		{"failure message", SheetFailure, "G", 3, long, 4 * 15},
		{"raw row", SheetRejects, "D", 2, raw, 3 * 15},
		{"activation code", SheetQR, "I", 2, d.QR[0].ActivationCode, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := tt.col + strconv.Itoa(tt.row)
			if v, _ := f.GetCellValue(tt.sheet, ref); v != tt.want {
				t.Errorf("%s = %q, want the whole text", ref, v)
			}
			w, err := f.GetColWidth(tt.sheet, tt.col)
			if err != nil || w > maxColWidth || w < 20 {
				t.Errorf("column %s width %v (%v), want 20..%v", tt.col, w, err, maxColWidth)
			}
			id, err := f.GetCellStyle(tt.sheet, ref)
			if err != nil {
				t.Fatal(err)
			}
			st, err := f.GetStyle(id)
			if err != nil || st.Alignment == nil || !st.Alignment.WrapText {
				t.Errorf("%s!%s does not wrap: the text is cut off at the column edge", tt.sheet, ref)
			}
			if tt.minHeight > 0 {
				h, err := f.GetRowHeight(tt.sheet, tt.row)
				if err != nil || h < tt.minHeight {
					t.Errorf("row %d height %v pt, want at least %v for every line", tt.row, h, tt.minHeight)
				}
			}
		})
	}
	if h, _ := f.GetRowHeight(SheetFailure, 2); h != 15 {
		t.Errorf("a one-line failure row is %v pt, want 15", h)
	}
}

// Printed, every sheet is landscape and one page wide, and the data sheets
// repeat their header row on every page.
func TestPrintSetup(t *testing.T) {
	f := open(t, mustBuild(t, sampleData(t), Options{}), "")
	titles := map[string]string{}
	for _, dn := range f.GetDefinedName() {
		if dn.Name == "_xlnm.Print_Titles" {
			titles[dn.Scope] = dn.RefersTo
		}
	}
	for _, tt := range []struct {
		sheet  string
		titles string
	}{
		{SheetQR, "'QR codes'!$1:$1"},
		{SheetFailure, "'Failures'!$1:$1"},
		{SheetRejects, "'Rejected imports'!$1:$1"},
		{SheetSummary, ""},
		{SheetAttention, "'Attention'!$1:$1"},
	} {
		t.Run(tt.sheet, func(t *testing.T) {
			pl, err := f.GetPageLayout(tt.sheet)
			if err != nil {
				t.Fatal(err)
			}
			if pl.Orientation == nil || *pl.Orientation != "landscape" {
				t.Errorf("orientation %v, want landscape", pl.Orientation)
			}
			if pl.FitToWidth == nil || *pl.FitToWidth != 1 || pl.FitToHeight == nil || *pl.FitToHeight != 0 {
				t.Errorf("fit to %v wide by %v tall, want 1 by 0 (as many as needed)", pl.FitToWidth, pl.FitToHeight)
			}
			props, err := f.GetSheetProps(tt.sheet)
			if err != nil || props.FitToPage == nil || !*props.FitToPage {
				t.Errorf("fit to page is off (%v): the page layout's fit is ignored", err)
			}
			if titles[tt.sheet] != tt.titles {
				t.Errorf("print titles %q, want %q", titles[tt.sheet], tt.titles)
			}
		})
	}
}
