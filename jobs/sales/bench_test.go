package sales

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
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
