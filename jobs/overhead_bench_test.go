//go:build linux

package jobs_test

// Issue 10's benchmarks, part 2: what the job itself costs per activation
// when Octane's limits are off.

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// overheadRows is BenchmarkOverhead's size; BENCH_ROWS overrides it.
const overheadRows = 100_000

// overheadResult is what one BenchmarkOverhead run measured.
type overheadResult struct {
	perSecond float64 // activations taken pending -> qr_ready per wall second
	cpu       float64 // user + system CPU seconds of this process (job and simulator)
	pgCPU     float64 // CPU seconds of the PostgreSQL backends serving the store
	rssMB     float64 // peak resident set of this process
	passes    int
	wall      time.Duration
}

// BenchmarkOverhead takes 100,000 eSIM activations (80 % with a customer
// number) from pending to qr_ready through the real client and PostgreSQL,
// against the simulator with every limit off (client and simulator), order
// latency 1 simulated minute, RESERVE_BATCH 4 and MAX_SUBMIT_PER_RUN 2000 (the
// defaults). Each pass runs every phase (import and report unplugged); the
// business clock is moved 31 minutes between passes, so pass k polls and
// fetches the QR codes of the orders pass k-1 placed while it submits the
// next 2,000. Every call is written to the call log, as in production; the
// limiter is not seeded from it (with no limit there is nothing to seed).
//
// Reported: activations/s (wall), cpu_s (getrusage RUSAGE_SELF, user +
// system: this process, which runs the simulator as well as the job),
// cpu_ms/activation, pg_cpu_s (the store's PostgreSQL backends, read from
// /proc), and peak_rss_MB (getrusage ru_maxrss after the high-water mark is
// reset before the run; the simulator's ledger and orders are in it too).
//
//	go test -run '^$' -bench Overhead -benchtime 1x -timeout 30m ./jobs/
func BenchmarkOverhead(b *testing.B) {
	n := overheadRows
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROWS")); err == nil && v > 0 {
		n = v
	}
	var r overheadResult
	for range b.N {
		r = runOverhead(b, n)
	}
	b.ReportMetric(r.perSecond, "activations/s")
	b.ReportMetric(r.cpu, "cpu_s")
	b.ReportMetric(r.cpu*1000/float64(n), "cpu_ms/activation")
	b.ReportMetric(r.pgCPU, "pg_cpu_s")
	b.ReportMetric(r.rssMB, "peak_rss_MB")
	b.ReportMetric(float64(r.passes), "passes")
}

func runOverhead(b *testing.B, n int) overheadResult {
	b.StopTimer()
	ctx := context.Background()
	store := repotest.NewPostgres(b)
	cred := fmt.Sprintf("overhead-%d", rand.Int64())
	clk := &clock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
	rows := make([]repo.NewActivation, n)
	var customers []int64
	for i := range rows {
		rows[i] = repo.NewActivation{Line: i + 2, SalesRef: fmt.Sprintf("OVH-%07d", i), GivenNames: "Ada",
			Surname: fmt.Sprintf("Overhead%d", i), Email: fmt.Sprintf("ada%d@example.com", i), PlanNo: 1001, SIMType: "esim"}
		if i%5 != 0 {
			c := int64(300_000 + i)
			rows[i].CustNo = &c
			customers = append(customers, c)
		}
	}
	if _, err := store.Import(ctx, repo.ImportFile{Name: "overhead.csv", Hash: cred, DataRows: n}, rows, nil, clk.Now()); err != nil {
		b.Fatal(err)
	}
	rows = nil
	// Limits off on both sides: a non-nil empty table and no default.
	off := map[string]octane.Limit{}
	sim := octanetest.New(octanetest.Config{Username: cred, Password: "secret", Now: clk.Now, OrderLatency: time.Minute,
		Limits: off, MSNs: n + n/10, EsimProfiles: n + n/10, Customers: customers, Seed: 42})
	customers = nil
	srv := httptest.NewServer(sim)
	defer srv.Close()
	client, err := octane.New(srv.URL+"/tiab", srv.URL+"/tiab/api", cred, "secret", octane.WithGroupNo(7),
		octane.WithLimits(off), octane.WithCallRecorder(jobs.CallRecorder(store, cred, nil)))
	if err != nil {
		b.Fatal(err)
	}
	runner := jobs.NewRunner(store, client, jobs.Config{Credential: cred, BatchSize: 50, MaxSubmitPerRun: 2000,
		ReserveBatch: 4, PollInterval: 30 * time.Minute, RunDeadline: 9 * time.Minute}, jobs.WithClock(clk.Now))

	pg0 := backendCPU(b, store)
	resetPeakRSS(b)
	stopRSS := sampleRSS()
	u0 := cpuSeconds()
	load0 := loadAvg()
	b.StartTimer()
	start := time.Now()
	ready, passes := 0, 0
	for ready < n {
		if passes > n/2000+10 {
			b.Fatalf("%d of %d activations qr_ready after %d passes", ready, n, passes)
		}
		res, err := runner.Pass(ctx, nil)
		if err != nil {
			b.Fatalf("pass %d: %v (counts %v)", passes, err, res.Counts)
		}
		passes++
		ready += res.Counts["qr.ready"]
		clk.Advance(31 * time.Minute)
	}
	wall := time.Since(start)
	b.StopTimer()
	cpu := cpuSeconds() - u0
	sampled := stopRSS()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	pg1 := backendCPU(b, store)
	var pg float64
	for pid, t := range pg1 {
		if t0, ok := pg0[pid]; ok {
			pg += t - t0
		} else {
			b.Logf("PostgreSQL backend %d is new since the start: its CPU is counted whole", pid)
			pg += t
		}
	}

	st, err := store.Status(ctx, clk.Now(), clk.Now().Add(-23*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	if st.Counts[repo.StateQRReady] != n {
		b.Fatalf("qr_ready = %d, want %d: %v", st.Counts[repo.StateQRReady], n, st.Counts)
	}
	perMethod := map[string]int{}
	ledger := sim.Ledger()
	for _, e := range ledger {
		perMethod[e.Method]++
	}
	logTableStats(b, store)
	b.Logf("%d activations in %d passes, %.1f s: %d Octane calls (%.2f per activation) %v; peak RSS sampled %.0f MB; load average %s at the start, %s at the end",
		n, passes, wall.Seconds(), len(ledger), float64(len(ledger))/float64(n), perMethod, sampled, load0, loadAvg())
	return overheadResult{
		perSecond: float64(n) / wall.Seconds(),
		cpu:       cpu,
		pgCPU:     pg,
		rssMB:     float64(ru.Maxrss) / 1024, // kilobytes on Linux
		passes:    passes,
		wall:      wall,
	}
}

// cpuSeconds is this process's user + system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// resetPeakRSS resets the process's resident-set high-water mark (what
// ru_maxrss reports) to its current size, so earlier work (the import, a
// benchmark run before) does not count.
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset the peak RSS (%v): peak_rss_MB includes the setup", err)
	}
}

// sampleRSS samples VmRSS every 50 ms until stop, which returns the highest
// value in MB (a check on ru_maxrss).
func sampleRSS() (stop func() float64) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var peak float64
	wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, rssMB())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() float64 { close(done); wg.Wait(); return peak }
}

// rssMB reads VmRSS from /proc/self/status (0 when unreadable).
func rssMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// backendCPU returns the CPU seconds (user + system) so far of each
// PostgreSQL backend in the store's pool, by backend pid: it takes every
// pooled connection at once, asks each for its pid and reads
// /proc/<pid>/stat (the server runs on this machine). A backend it cannot
// read is left out.
func backendCPU(b *testing.B, store *repo.Store) map[int]float64 {
	ctx := context.Background()
	db := store.DB()
	out := map[int]float64{}
	conns := make([]interface{ Close() error }, 0, 4)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range db.Stats().MaxOpenConnections {
		c, err := db.Conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		var pid int
		if err := c.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			b.Fatal(err)
		}
		if s, ok := procCPU(pid); ok {
			out[pid] = s
		}
	}
	return out
}

// procCPU reads utime + stime of pid from /proc/<pid>/stat, in seconds.
func procCPU(pid int) (float64, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the command name (which may hold spaces) start at ") ".
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const ticks = 100 // USER_HZ on Linux
	return (ut + stime) / ticks, true
}

// logTableStats logs, per table of the store's schema, the sequential and
// index scans PostgreSQL made and the rows it read and updated: a table read
// whole per statement shows up at once.
func logTableStats(b *testing.B, store *repo.Store) {
	var rows []struct {
		Table   string `db:"relname"`
		Seq     int64  `db:"seq_scan"`
		SeqRead int64  `db:"seq_tup_read"`
		Idx     int64  `db:"idx_scan"`
		IdxRead int64  `db:"idx_tup_fetch"`
		Ins     int64  `db:"n_tup_ins"`
		Upd     int64  `db:"n_tup_upd"`
		HotUpd  int64  `db:"n_tup_hot_upd"`
	}
	err := store.DB().Select(&rows, `SELECT relname, seq_scan, seq_tup_read, COALESCE(idx_scan, 0) AS idx_scan,
COALESCE(idx_tup_fetch, 0) AS idx_tup_fetch, n_tup_ins, n_tup_upd, n_tup_hot_upd
FROM pg_stat_user_tables WHERE schemaname = current_schema() ORDER BY relname`)
	if err != nil {
		b.Logf("table statistics: %v", err)
		return
	}
	for _, r := range rows {
		b.Logf("table %-16s seq scans %7d (%11d rows read) index scans %8d (%9d rows) inserted %7d updated %7d (hot %7d)",
			r.Table, r.Seq, r.SeqRead, r.Idx, r.IdxRead, r.Ins, r.Upd, r.HotUpd)
	}
}
