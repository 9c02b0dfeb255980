package reports

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
)

// attentionData is sampleData with open orders and late QR codes whose text
// finance's spreadsheets must keep as text.
func attentionData(t *testing.T) Data {
	t.Helper()
	d := sampleData(t)
	d.OpenOrders = AttentionList{Count: 2, Rows: []AttentionRow{
		{SalesRef: `=HYPERLINK("http://evil.example","x")`, MSN: "0412000010", OrderID: "000777", State: "submitted",
			Since: t0.Add(-72 * time.Hour), Count: 144, LastError: "=1+1 orderQuery: timeout"},
		{SalesRef: "S-11", MSN: "0412000011", State: "submitted", Since: t0.Add(-25 * time.Hour), Count: 48},
	}}
	d.QRLate = AttentionList{Count: 1, Rows: []AttentionRow{
		{SalesRef: "+61 late", MSN: "0412000012", OrderID: "000778", State: "completed",
			Since: t0.Add(-30 * time.Hour), Count: 3, LastError: "@getEsimDetails: no QR code yet"},
	}}
	return d
}

func TestSummaryAttentionCounts(t *testing.T) {
	f := open(t, mustBuild(t, attentionData(t), Options{}), "")
	for _, c := range []struct {
		row          int
		label, count string
		note         string
	}{
		{8, "Open orders older than 24 h", "2", "listed on the Attention sheet"},
		{9, "QR codes late (over 24 h)", "1", "listed on the Attention sheet"},
	} {
		got := row(t, f, SheetSummary, c.row, 3)
		if got[0] != c.label || got[2] != c.note {
			t.Errorf("Summary row %d = %q, want %q, count, %q", c.row, got, c.label, c.note)
		}
		ref := cell(2, c.row)
		if raw, _ := f.GetCellValue(SheetSummary, ref, excelize.Options{RawCellValue: true}); raw != c.count {
			t.Errorf("Summary %s = %q, want the count %s", ref, raw, c.count)
		}
		if typ, _ := f.GetCellType(SheetSummary, ref); typ != excelize.CellTypeNumber && typ != excelize.CellTypeUnset {
			t.Errorf("Summary %s type %v, want a number", ref, typ)
		}
	}
	// The outcome table follows, where the chart points.
	if got := row(t, f, SheetSummary, summaryOutcomeHeader, 3); got[0] != "Outcome" || got[1] != "This report" {
		t.Errorf("Summary row %d = %q, want the outcome header", summaryOutcomeHeader, got)
	}
	if w, _ := f.GetColWidth(SheetSummary, "A"); w < float64(len(labelOpenOrders)) {
		t.Errorf("Summary column A is %v wide: %q is cut", w, labelOpenOrders)
	}
}

func TestAttentionSheet(t *testing.T) {
	d := attentionData(t)
	f := open(t, mustBuild(t, d, Options{}), "")
	type want struct {
		issue string
		r     AttentionRow
	}
	rows := []want{
		{"Open order over 24 h", d.OpenOrders.Rows[0]},
		{"Open order over 24 h", d.OpenOrders.Rows[1]},
		{"QR code late", d.QRLate.Rows[0]},
	}
	for i, w := range rows {
		rn := i + 2
		exp := []string{w.issue, w.r.SalesRef, w.r.MSN, w.r.OrderID, w.r.State,
			w.r.Since.UTC().Format("2006-01-02 15:04:05"), strconv.Itoa(w.r.Count), w.r.LastError}
		got := row(t, f, SheetAttention, rn, len(exp))
		for c := range exp {
			if got[c] != exp[c] {
				t.Errorf("Attention %s = %q, want %q", cell(c+1, rn), got[c], exp[c])
			}
		}
		for _, c := range []int{1, 2, 3, 4, 5, 8} {
			ref := cell(c, rn)
			if fo, _ := f.GetCellFormula(SheetAttention, ref); fo != "" {
				t.Errorf("Attention %s is a formula %q: text must stay text", ref, fo)
			}
			if typ, _ := f.GetCellType(SheetAttention, ref); got[c-1] != "" && typ != excelize.CellTypeInlineString && typ != excelize.CellTypeSharedString {
				t.Errorf("Attention %s type %v, want a string", ref, typ)
			}
		}
		checkDate(t, f, SheetAttention, cell(6, rn), w.r.Since)
		if raw, _ := f.GetCellValue(SheetAttention, cell(7, rn), excelize.Options{RawCellValue: true}); raw != strconv.Itoa(w.r.Count) {
			t.Errorf("Attention %s = %q, want the number %d", cell(7, rn), raw, w.r.Count)
		}
	}
	// Nothing below the table: no cut list, so no note.
	if got := row(t, f, SheetAttention, 5, len(AttentionColumns)); fmt.Sprint(got) != fmt.Sprint(make([]string, len(AttentionColumns))) {
		t.Errorf("Attention row 5 = %q, want empty", got)
	}
	if v, _ := f.GetCellValue(SheetAttention, "A7"); v != "" {
		t.Errorf("Attention A7 = %q, want no note", v)
	}
	p, err := f.GetPanes(SheetAttention)
	if err != nil || !p.Freeze || p.YSplit != 1 {
		t.Errorf("Attention header not frozen: %+v %v", p, err)
	}
	tables, err := f.GetTables(SheetAttention)
	if err != nil || len(tables) != 1 || tables[0].Range != "A1:I4" {
		t.Errorf("Attention tables = %+v %v, want one over A1:I4 (its autofilter)", tables, err)
	}
}

// More rows than MaxAttentionRows: the oldest MaxAttentionRows are listed,
// and both the Summary and a line under the table say how many there are.
func TestAttentionCapped(t *testing.T) {
	d := Data{Number: 4, GeneratedAt: t0}
	d.OpenOrders.Count = 812
	for i := range MaxAttentionRows + 1 { // one more than the sheet takes
		d.OpenOrders.Rows = append(d.OpenOrders.Rows, AttentionRow{SalesRef: fmt.Sprintf("O-%03d", i), MSN: "04",
			State: "submitted", Since: t0.Add(-72*time.Hour + time.Duration(i)*time.Minute), Count: i})
	}
	d.QRLate = AttentionList{Count: 1, Rows: []AttentionRow{{SalesRef: "Q-1", State: "completed", Since: t0.Add(-25 * time.Hour)}}}
	f := open(t, mustBuild(t, d, Options{}), "")
	if v, _ := f.GetCellValue(SheetSummary, "C8"); v != "the oldest 500 of 812 are on the Attention sheet" {
		t.Errorf("Summary C8 = %q, want the cut said", v)
	}
	if v, _ := f.GetCellValue(SheetSummary, "B8", excelize.Options{RawCellValue: true}); v != "812" {
		t.Errorf("Summary B8 = %q, want the full count 812", v)
	}
	last := MaxAttentionRows + 1 // the sheet row of the last open order
	for _, c := range []struct {
		row  int
		want string
	}{{2, "O-000"}, {last, fmt.Sprintf("O-%03d", MaxAttentionRows-1)}, {last + 1, "Q-1"}, {last + 2, ""}} {
		if v, _ := f.GetCellValue(SheetAttention, cell(2, c.row)); v != c.want {
			t.Errorf("Attention B%d = %q, want %q", c.row, v, c.want)
		}
	}
	if v, _ := f.GetCellValue(SheetAttention, cell(1, last+3)); v != "Open orders older than 24 h: 812, the oldest 500 listed" {
		t.Errorf("Attention A%d = %q, want the cut noted under the table", last+3, v)
	}
	tables, err := f.GetTables(SheetAttention)
	if err != nil || len(tables) != 1 || tables[0].Range != fmt.Sprintf("A1:I%d", last+1) {
		t.Errorf("Attention tables = %+v %v, want one over A1:I%d", tables, err, last+1)
	}
}
