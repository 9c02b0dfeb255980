package jobs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// BenchmarkImport100k imports a 100,000-row CSV end to end (read, validate,
// one store transaction) into a fresh store per iteration, on each dialect.
// Reported: rows/s and the peak heap in use during the import.
func BenchmarkImport100k(b *testing.B) {
	const n = 100_000
	path := filepath.Join(b.TempDir(), "sales.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintln(f, "sales_ref,given_names,surname,email,plan_no,cust_no,sim_type,sim_serial,address_line1,suburb,state,postcode,notes")
	for i := range n {
		fmt.Fprintf(f, "B-%07d,Given %d,Surname,user%d@example.com,12345,,esim,,%d Long Street,Suburbia,NSW,2000,bench\n", i, i, i, i)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	for _, d := range repotest.Dialects() {
		b.Run(d.Name, func(b *testing.B) {
			b.ReportAllocs()
			var peak uint64
			var elapsed time.Duration
			for b.Loop() {
				b.StopTimer()
				s := d.New(b)
				im := NewImporter(s, nil, ImportOptions{})
				stop := sampleHeap(&peak)
				b.StartTimer()
				t0 := time.Now()
				res, err := im.ImportFiles(context.Background(), []string{path}, importNow)
				elapsed += time.Since(t0)
				b.StopTimer()
				stop()
				if err != nil || len(res) != 1 || res[0].Accepted != n {
					b.Fatalf("import: %v %+v", err, res)
				}
				closeStore(b, s)
				b.StartTimer()
			}
			b.ReportMetric(float64(n)*float64(b.N)/elapsed.Seconds(), "rows/s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		})
	}
}

func closeStore(b *testing.B, s *repo.Store) {
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// sampleHeap records the highest HeapInuse until stop is called.
func sampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			*peak = max(*peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}
