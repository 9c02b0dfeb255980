//go:build linux

package jobs_test

// Issue 10's benchmarks, part 2: what the job itself costs per activation
// when Octane's limits are off.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
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
	cpu       float64 // user + system CPU seconds of this process: the job
	simCPU    float64 // CPU seconds of the simulator's process
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
// The simulator runs in a process of its own (this test binary again, see
// TestMain), so this process is the job and what it measures is the job's:
// activations/s (wall), job_cpu_s (getrusage RUSAGE_SELF, user + system),
// job_cpu_ms/activation, job_peak_rss_MB (ru_maxrss after the high-water
// mark is reset before the run). pg_cpu_ms/activation is PostgreSQL's
// server processes (read from /proc; one started during the run counts
// whole, one ended during it is missed), sim_cpu_ms/activation the
// simulator's process. All three share the machine, so the wall rate is
// theirs together. BENCH_ROWS sets the size, BENCH_WORKERS the workers per
// phase (default the job's), BENCH_LOG=1 logs the passes on stderr,
// BENCH_SIM_CPUPROFILE=FILE writes the simulator's CPU profile (the job's
// is go test's -cpuprofile).
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
	b.ReportMetric(r.cpu, "job_cpu_s")
	b.ReportMetric(r.cpu*1000/float64(n), "job_cpu_ms/activation")
	b.ReportMetric(r.pgCPU*1000/float64(n), "pg_cpu_ms/activation")
	b.ReportMetric(r.simCPU*1000/float64(n), "sim_cpu_ms/activation")
	b.ReportMetric(r.rssMB, "job_peak_rss_MB")
	b.ReportMetric(float64(r.passes), "passes")
}

func runOverhead(b *testing.B, n int) overheadResult {
	b.StopTimer()
	ctx := context.Background()
	store := repotest.NewPostgres(b)
	cred := fmt.Sprintf("overhead-%d", rand.Int64())
	clk := &clock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
	rows := make([]repo.NewActivation, n)
	for i := range rows {
		rows[i] = repo.NewActivation{Line: i + 2, SalesRef: fmt.Sprintf("OVH-%07d", i), GivenNames: "Ada",
			Surname: fmt.Sprintf("Overhead%d", i), Email: fmt.Sprintf("ada%d@example.com", i), PlanNo: 1001, SIMType: "esim"}
		if c, ok := overheadCustomer(i); ok {
			rows[i].CustNo = &c
		}
	}
	if _, err := store.Import(ctx, repo.ImportFile{Name: "overhead.csv", Hash: cred, DataRows: n}, rows, nil, clk.Now()); err != nil {
		b.Fatal(err)
	}
	rows = nil
	// Limits off on both sides: a non-nil empty table and no default.
	off := map[string]octane.Limit{}
	sim := startOverheadSim(b, n, cred)
	defer sim.stop()
	client, err := octane.New(sim.url+"/tiab", sim.url+"/tiab/api", cred, "secret", octane.WithGroupNo(7),
		octane.WithLimits(off), octane.WithCallRecorder(jobs.CallRecorder(store, cred, nil)))
	if err != nil {
		b.Fatal(err)
	}
	workers, _ := strconv.Atoi(os.Getenv("BENCH_WORKERS")) // 0: the default
	opts := []jobs.Option{jobs.WithClock(clk.Now)}
	if os.Getenv("BENCH_LOG") != "" { // the passes' info lines (phase durations) on stderr
		opts = append(opts, jobs.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	}
	runner := jobs.NewRunner(store, client, jobs.Config{Credential: cred, BatchSize: 50, MaxSubmitPerRun: 2000, Workers: workers,
		ReserveBatch: 4, PollInterval: 30 * time.Minute, RunDeadline: 9 * time.Minute}, opts...)

	pg0 := postgresCPU(b)
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
		sim.advance(b, 31*time.Minute)
	}
	wall := time.Since(start)
	b.StopTimer()
	cpu := cpuSeconds() - u0
	sampled := stopRSS()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	pg1 := postgresCPU(b)
	var pg float64
	byKind := map[string]float64{}
	for pid, p1 := range pg1 {
		t := p1.cpu
		if p0, ok := pg0[pid]; ok {
			t -= p0.cpu
		}
		pg += t
		byKind[p1.kind] += t
	}
	b.Logf("PostgreSQL CPU s by process: %v", byKind)

	st, err := store.Status(ctx, clk.Now(), clk.Now().Add(-23*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	if st.Counts[repo.StateQRReady] != n {
		b.Fatalf("qr_ready = %d, want %d: %v", st.Counts[repo.StateQRReady], n, st.Counts)
	}
	simRes := sim.stop()
	logTableStats(b, store)
	if st, rows := store.GroupedMoves(); st > 0 {
		b.Logf("transitions moved together: %d statements, %d rows (%.1f a statement)", st, rows, float64(rows)/float64(st))
	}
	b.Logf("%d activations in %d passes, %.1f s: %d Octane calls (%.2f per activation) %v; job peak RSS sampled %.0f MB; simulator %.1f CPU s, peak RSS %.0f MB; load average %s at the start, %s at the end",
		n, passes, wall.Seconds(), simRes.calls, float64(simRes.calls)/float64(n), simRes.perMethod, sampled, simRes.cpu, simRes.rssMB, load0, loadAvg())
	return overheadResult{
		perSecond: float64(n) / wall.Seconds(),
		cpu:       cpu,
		pgCPU:     pg,
		simCPU:    simRes.cpu,
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

// postgresCPU returns the CPU seconds (user + system) so far of every
// PostgreSQL server process on this machine (the server runs here), by pid:
// the backends of both of the store's pools, and the WAL writer and
// checkpointer, which flush what lazy commits leave in the WAL buffers. A
// process it cannot read is left out.
func postgresCPU(b *testing.B) map[int]pgProc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	out := map[int]pgProc{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		if s, ok := procCPU(pid); ok {
			out[pid] = pgProc{cpu: s, kind: pgKind(pid)}
		}
	}
	return out
}

// pgProc is one PostgreSQL server process: CPU seconds so far and its kind.
type pgProc struct {
	cpu  float64
	kind string
}

// pgKind names a server process from its title ("postgres: 15/main:
// walwriter"): "backend" for a client's session, else the title's first
// word after the cluster's name (walwriter, checkpointer, autovacuum, ...).
func pgKind(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "unknown"
	}
	title := strings.TrimRight(string(raw), "\x00")
	_, rest, ok := strings.Cut(title, ": ")
	if !ok {
		return "postmaster"
	}
	if _, r, ok := strings.Cut(rest, ": "); ok {
		rest = r
	}
	word, _, _ := strings.Cut(rest, " ")
	switch word {
	case "walwriter", "checkpointer", "background", "autovacuum", "logical", "archiver", "stats", "startup", "walsender":
		return word
	}
	return "backend"
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
	var idx []struct {
		Index string `db:"indexrelname"`
		Scans int64  `db:"idx_scan"`
		Read  int64  `db:"idx_tup_read"`
	}
	if err := store.DB().Select(&idx, `SELECT indexrelname, idx_scan, idx_tup_read FROM pg_stat_user_indexes
WHERE schemaname = current_schema() AND idx_scan > 0 ORDER BY idx_tup_read DESC LIMIT 8`); err == nil {
		for _, r := range idx {
			b.Logf("index %-28s scans %8d, index entries read %9d", r.Index, r.Scans, r.Read)
		}
	}
	for _, r := range rows {
		b.Logf("table %-16s seq scans %7d (%11d rows read) index scans %8d (%9d rows) inserted %7d updated %7d (hot %7d)",
			r.Table, r.Seq, r.SeqRead, r.Idx, r.IdxRead, r.Ins, r.Upd, r.HotUpd)
	}
}

// overheadCustomer is row i's customer number: 80 % of the rows have one,
// which the simulator knows from the start; the rest need addCustomer.
func overheadCustomer(i int) (int64, bool) {
	return int64(300_000 + i), i%5 != 0
}

// overheadSimEnv, set to "ROWS CREDENTIAL", makes the test binary serve
// BenchmarkOverhead's simulator instead of running tests (see TestMain).
const overheadSimEnv = "ESIMBATCH_OVERHEAD_SIM"

// TestMain serves BenchmarkOverhead's simulator when the benchmark starts
// the test binary again with overheadSimEnv set, and otherwise runs the
// tests. The simulator runs in its own process so that the benchmark's
// CPU time and peak RSS are the job's alone.
func TestMain(m *testing.M) {
	if v := os.Getenv(overheadSimEnv); v != "" {
		os.Exit(serveOverheadSim(v))
	}
	os.Exit(m.Run())
}

// serveOverheadSim serves the simulator on a loopback port, which it prints
// as "listening ADDR", until its standard input closes; then it prints its
// calls per method ("calls METHOD N") and its own CPU seconds and peak RSS
// ("usage CPU_S RSS_MB"), and returns the exit code.
func serveOverheadSim(spec string) int {
	rowsText, cred, _ := strings.Cut(spec, " ")
	n, err := strconv.Atoi(rowsText)
	if err != nil || n <= 0 || cred == "" {
		fmt.Fprintf(os.Stderr, "%s=%q: want ROWS CREDENTIAL\n", overheadSimEnv, spec)
		return 2
	}
	var customers []int64
	for i := range n {
		if c, ok := overheadCustomer(i); ok {
			customers = append(customers, c)
		}
	}
	sim := octanetest.New(octanetest.Config{Username: cred, Password: "secret", OrderLatency: time.Minute,
		Limits: map[string]octane.Limit{}, MSNs: n + n/10, EsimProfiles: n + n/10, Customers: customers, Seed: 42})
	customers = nil
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if path := os.Getenv("BENCH_SIM_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	go http.Serve(ln, sim) //nolint:errcheck // ends with the process
	fmt.Printf("listening %s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin) //nolint:errcheck // EOF or an error: either way the benchmark is done
	perMethod := map[string]int{}
	for _, e := range sim.Ledger() {
		perMethod[e.Method]++
	}
	for m, c := range perMethod {
		fmt.Printf("calls %s %d\n", m, c)
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru) //nolint:errcheck // zero on failure
	fmt.Printf("usage %f %f\n", cpuSeconds(), float64(ru.Maxrss)/1024)
	return 0
}

// overheadSim is the simulator's process as BenchmarkOverhead drives it.
type overheadSim struct {
	url   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	done  *overheadSimResult
}

// overheadSimResult is what the simulator's process reported at its end.
type overheadSimResult struct {
	calls     int
	perMethod map[string]int
	cpu       float64 // CPU seconds
	rssMB     float64 // peak RSS
}

// startOverheadSim starts the test binary as the simulator for n rows of
// credential cred and waits for its address.
func startOverheadSim(b *testing.B, n int, cred string) *overheadSim {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %s", overheadSimEnv, n, cred))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start the simulator's process: %v", err)
	}
	s := &overheadSim{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	if !s.out.Scan() {
		s.cmd.Process.Kill()
		b.Fatalf("the simulator's process printed no address: %v", s.cmd.Wait())
	}
	addr, ok := strings.CutPrefix(s.out.Text(), "listening ")
	if !ok {
		s.cmd.Process.Kill()
		b.Fatalf("the simulator's process said %q, want listening ADDR", s.out.Text())
	}
	s.url = "http://" + addr
	return s
}

// advance moves the simulator's business clock forward by d.
func (s *overheadSim) advance(b *testing.B, d time.Duration) {
	resp, err := http.Post(s.url+"/_sim/clock", "application/json", strings.NewReader(fmt.Sprintf(`{"advance":%q}`, d)))
	if err != nil {
		b.Fatalf("advance the simulator's clock: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("advance the simulator's clock: %s", resp.Status)
	}
}

// stop ends the simulator's process (once) and returns its report.
func (s *overheadSim) stop() overheadSimResult {
	if s.done != nil {
		return *s.done
	}
	s.done = &overheadSimResult{perMethod: map[string]int{}}
	s.stdin.Close()
	for s.out.Scan() {
		f := strings.Fields(s.out.Text())
		switch {
		case len(f) == 3 && f[0] == "calls":
			c, _ := strconv.Atoi(f[2])
			s.done.perMethod[f[1]] = c
			s.done.calls += c
		case len(f) == 3 && f[0] == "usage":
			s.done.cpu, _ = strconv.ParseFloat(f[1], 64)
			s.done.rssMB, _ = strconv.ParseFloat(f[2], 64)
		}
	}
	s.cmd.Wait() //nolint:errcheck // its report is what matters
	return *s.done
}
