package sales

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"github.com/xuri/excelize/v2"
)

// salesCSV builds an n-row CSV of valid rows (every 10th a physical SIM).
func salesCSV(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString("sales_ref,given_names,surname,email,plan_no,cust_no,sim_type,sim_serial,address_line1,suburb,state,postcode,notes\n")
	for i := range n {
		simType, serial := "esim", ""
		if i%10 == 0 {
			simType, serial = "physical", "89610123456789012347"
		}
		fmt.Fprintf(&buf, "B-%07d,Given %d,Surname,user%d@example.com,12345,%d,%s,%s,%d Long Street,Suburbia,NSW,2000,\"bench row, with comma\"\n",
			i, i, i, 100000+i, simType, serial, i)
	}
	return buf.Bytes()
}

// BenchmarkRead100k reads and validates a 100,000-row CSV (about 14 MB).
// Reported: rows/s, and per read the bytes allocated and the heap in use
// at the end (with the File still referenced).
func BenchmarkRead100k(b *testing.B) {
	const n = 100_000
	data := salesCSV(n)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var peak uint64
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		f, err := Read(bytes.NewReader(data), "bench.csv", Options{})
		if err != nil || len(f.Rows) != n {
			b.Fatalf("Read: %v (%d rows)", err, len(f.Rows))
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		runtime.KeepAlive(f)
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-inuse-MiB")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "alloc-MiB/op")
}

// salesXLSX builds an n-row workbook with the stream writer (plan_no and
// cust_no typed as numbers).
func salesXLSX(b *testing.B, n int) []byte {
	f := excelize.NewFile()
	defer f.Close()
	sw, err := f.NewStreamWriter("Sheet1")
	if err != nil {
		b.Fatal(err)
	}
	header := []any{"sales_ref", "given_names", "surname", "email", "plan_no", "cust_no", "sim_type", "sim_serial", "address_line1", "suburb", "state", "postcode", "notes"}
	if err := sw.SetRow("A1", header); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		cell, _ := excelize.CoordinatesToCellName(1, i+2)
		row := []any{fmt.Sprintf("B-%07d", i), fmt.Sprintf("Given %d", i), "Surname", fmt.Sprintf("user%d@example.com", i),
			12345, 100000 + i, "esim", "", fmt.Sprintf("%d Long Street", i), "Suburbia", "NSW", "2000", "bench row"}
		if err := sw.SetRow(cell, row); err != nil {
			b.Fatal(err)
		}
	}
	if err := sw.Flush(); err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkReadXLSX100k reads and validates a 100,000-row workbook.
func BenchmarkReadXLSX100k(b *testing.B) {
	const n = 100_000
	data := salesXLSX(b, n)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var peak uint64
	b.ResetTimer()
	for b.Loop() {
		f, err := Read(bytes.NewReader(data), "bench.xlsx", Options{})
		if err != nil || len(f.Rows) != n {
			b.Fatalf("Read: %v", err)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		runtime.KeepAlive(f)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-inuse-MiB")
}
