package repo_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// BenchmarkLifecycle claims and advances BENCH_ROWS (default 100,000) rows
// through pending -> selected -> ordering -> submitted -> completed ->
// qr_ready on PostgreSQL, in claim batches of 100 with 4 workers (the pool
// size), and reports rows/s. The import is not timed.
//
//	go test -run '^$' -bench Lifecycle -benchtime 1x ./repo/
func BenchmarkLifecycle(b *testing.B) {
	rows := 100_000
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROWS")); err == nil && v > 0 {
		rows = v
	}
	const batch, workers = 100, 4
	ctx := context.Background()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := repotest.NewPostgres(b)
		for off := 0; off < rows; off += 5000 {
			chunk := make([]repo.NewActivation, 0, 5000)
			for j := off; j < min(off+5000, rows); j++ {
				chunk = append(chunk, repo.NewActivation{Line: j + 2, SalesRef: fmt.Sprintf("B%07d", j), Email: "b@x", PlanNo: 1})
			}
			if _, err := s.Import(ctx, repo.ImportFile{Name: "bench.csv", Hash: fmt.Sprint("bench", off)}, chunk, nil, t0); err != nil {
				b.Fatal(err)
			}
		}
		runID, err := s.StartRun(ctx, t0, "bench", nil, false)
		if err != nil {
			b.Fatal(err)
		}
		var msn atomic.Int64
		b.StartTimer()
		start := time.Now()

		// parallel runs fn on workers until a claim comes back empty.
		parallel := func(claim func() ([]repo.Activation, error), fn func(a *repo.Activation) error) {
			var wg sync.WaitGroup
			var failed atomic.Value
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for failed.Load() == nil {
						got, err := claim()
						if err != nil {
							failed.Store(err)
							return
						}
						if len(got) == 0 {
							return
						}
						for k := range got {
							if err := fn(&got[k]); err != nil {
								failed.Store(err)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
		}

		now := t0
		parallel(func() ([]repo.Activation, error) {
			got, err := s.ClaimPending(ctx, now, runID, "bench", batch, time.Hour)
			if err != nil || len(got) == 0 {
				return got, err
			}
			res := make([]repo.Reservation, len(got))
			for k := range res {
				res[k].MSN = fmt.Sprintf("04%08d", msn.Add(1))
			}
			return got, s.SaveReservations(ctx, runID, "bench", now, res)
		}, func(a *repo.Activation) error {
			r, err := s.TakeReservation(ctx, runID, a, now)
			if err != nil {
				return err
			}
			if err := s.MarkSelected(ctx, a, r, now); err != nil {
				return err
			}
			if err := s.BeginOrder(ctx, a, repo.LockGuard{}, false, now); err != nil {
				return err
			}
			return s.OrderAccepted(ctx, a, "O"+r.MSN, now, now.Add(30*time.Minute))
		})
		poll := t0.Add(30 * time.Minute)
		parallel(func() ([]repo.Activation, error) {
			return s.ClaimPolls(ctx, poll, poll.Add(30*time.Minute), runID, "bench", batch, time.Hour)
		}, func(a *repo.Activation) error { return s.OrderCompleted(ctx, a, a.MSN, true, poll) })
		parallel(func() ([]repo.Activation, error) {
			return s.ClaimQR(ctx, poll, runID, "bench", batch, time.Hour)
		}, func(a *repo.Activation) error { return s.QRReady(ctx, a, "LPA:1$x$y", nil, "8961", poll) })

		total += time.Since(start)
		b.StopTimer()
		st, err := s.Status(ctx, poll, t0)
		if err != nil {
			b.Fatal(err)
		}
		if st.Counts[repo.StateQRReady] != rows {
			b.Fatalf("qr_ready = %d, want %d: %v", st.Counts[repo.StateQRReady], rows, st.Counts)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(rows*b.N)/total.Seconds(), "rows/s")
}
