package reports

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/skip2/go-qrcode"
)

// peakHeap samples HeapAlloc every 5 ms until stop is called and returns the
// highest value seen, in MB.
func peakHeap() (stop func() float64) {
	var (
		mu   sync.Mutex
		peak uint64
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mu.Lock()
		peak = max(peak, ms.HeapAlloc)
		mu.Unlock()
	}
	runtime.GC()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	return func() float64 {
		sample()
		close(done)
		wg.Wait()
		return float64(peak) / (1 << 20)
	}
}

func benchBuild(b *testing.B, d Data, opts Options) {
	b.ReportAllocs()
	var size int
	var peak float64
	var took time.Duration
	n := 0
	for b.Loop() {
		stop := peakHeap()
		start := time.Now()
		out, err := Build(d, opts)
		if err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
		n++
		peak = max(peak, stop())
		size = len(out)
	}
	b.ReportMetric(took.Seconds()/float64(n), "build-s")
	b.ReportMetric(peak, "peak-heap-MB")
	b.ReportMetric(float64(size)/(1<<20), "file-MB")
}

// BenchmarkQR5000 builds a workbook of MaxQRRowsPerWorkbook QR rows, each
// with its image: Octane's PNG (verified against the code) or rendered from
// the code, with and without a password.
//
//	go test -run '^$' -bench 'QR5000|Failures100k' -benchtime 1x ./reports/
func BenchmarkQR5000(b *testing.B) {
	rows := make([]QRRow, MaxQRRowsPerWorkbook)
	octane := make([][]byte, len(rows))
	for i := range rows {
		rows[i] = QRRow{SalesRef: fmt.Sprintf("S%06d", i), Customer: "Ann Lee", Email: "ann@example.com",
			MSN: fmt.Sprintf("04%08d", i), OrderID: fmt.Sprint(100000 + i), ICCID: "8961012345678901234",
			Outcome: "QR ready", CompletedAt: t0, ActivationCode: lpa(i)}
	}
	for _, bc := range []struct {
		name     string
		png      bool
		password string
	}{
		{"rendered", false, ""},
		{"octane-png", true, ""},
		{"rendered-encrypted", false, "pw"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := Data{Number: 1, GeneratedAt: t0, QR: append([]QRRow(nil), rows...)}
			if bc.png {
				for i := range d.QR {
					if octane[i] == nil {
						png, err := qrcode.Encode(d.QR[i].ActivationCode, qrcode.Medium, 256)
						if err != nil {
							b.Fatal(err)
						}
						octane[i] = png
					}
					d.QR[i].PNG = octane[i]
				}
			}
			benchBuild(b, d, Options{Password: bc.password})
		})
	}
}

// BenchmarkFailures100k builds a workbook of 100,000 failure rows (streamed).
func BenchmarkFailures100k(b *testing.B) {
	rows := make([]FailureRow, 100_000)
	for i := range rows {
		rows[i] = FailureRow{SalesRef: fmt.Sprintf("S%06d", i), Customer: "Ann Lee", Email: "ann@example.com",
			MSN: fmt.Sprintf("04%08d", i), Step: "orderCreate", Code: "E042",
			Message: "plan not allowed for this customer", Attempts: 3,
			FirstAttempt: t0.Add(-time.Hour), LastAttempt: t0}
	}
	benchBuild(b, Data{Number: 1, GeneratedAt: t0, Failures: rows}, Options{})
}
