package jobs_test

// Issue 10's benchmarks, part 1: the whole job against Octane's documented
// budget, with every window and the business clock compressed 60 times.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// Budget benchmark shape: every duration of production divided by the
// compression (60, or BENCH_SCALE) on the wall clock (Octane's windows, the
// pass schedule, the run deadline), and a business clock that runs that many
// times faster than the wall clock (order latency, poll interval, claims,
// leases).
const (
	budgetScale    = 60
	budgetRows     = 5000
	budgetNoCustEv = 5  // one row in five has no customer number (80 % carry one)
	budgetPasses   = 18 // three hours of passes every 10 minutes; BENCH_PASSES overrides
	budgetLatency  = 5 * time.Minute
	budgetPoll     = 30 * time.Minute
)

// budgetShape is the wall-clock side of a compression.
type budgetShape struct {
	scale                         int
	minute, hour, every, deadline time.Duration
	passes                        int
}

// budgetShapeFromEnv is the shape for budgetScale and budgetPasses, or
// BENCH_SCALE and BENCH_PASSES when set (a slower compression shows what the
// job's own speed costs; fewer passes make a profile run).
func budgetShapeFromEnv() budgetShape {
	scale, passes := budgetScale, budgetPasses
	if v, err := strconv.Atoi(os.Getenv("BENCH_SCALE")); err == nil && v > 0 {
		scale = v
	}
	if v, err := strconv.Atoi(os.Getenv("BENCH_PASSES")); err == nil && v > 0 {
		passes = v
	}
	d := func(x time.Duration) time.Duration { return x / time.Duration(scale) }
	return budgetShape{scale: scale, minute: d(time.Minute), hour: d(time.Hour), every: d(10 * time.Minute),
		deadline: d(9 * time.Minute), passes: passes}
}

// scaledClock is a business clock that starts at base and runs scale times
// faster than the wall clock: simulated time = base + scale x real elapsed.
// The job (jobs.WithClock) and the simulator (octanetest.Config.Now) share
// it.
type scaledClock struct {
	base  time.Time
	real0 time.Time
	scale time.Duration
}

func newScaledClock(scale int) *scaledClock {
	return &scaledClock{base: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), real0: time.Now(), scale: time.Duration(scale)}
}

// Now is the business time.
func (c *scaledClock) Now() time.Time { return c.base.Add(time.Since(c.real0) * c.scale) }

// logTap is a slog handler that keeps what the benchmarks diagnose with:
// warnings and errors counted by message, and every "phase done" line's
// phase and duration.
type logTap struct {
	mu     *sync.Mutex
	warns  map[string]int
	phases []phaseLine
}

type phaseLine struct {
	phase string
	ms    int64
}

func newLogTap() *logTap { return &logTap{mu: &sync.Mutex{}, warns: map[string]int{}} }

func (l *logTap) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelInfo }

func (l *logTap) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Level >= slog.LevelWarn {
		key := r.Message
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "method", "outcome", "phase":
				key += " " + a.Key + "=" + a.Value.String()
			case "message", "err":
				if m := a.Value.String(); m != "" {
					key += " " + a.Key + "=" + m[:min(len(m), 60)]
				}
			}
			return true
		})
		l.warns[key]++
	}
	if r.Message == "phase done" || r.Message == "phase failed" {
		var pl phaseLine
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "phase":
				pl.phase = a.Value.String()
			case "duration_ms":
				pl.ms = a.Value.Int64()
			}
			return true
		})
		l.phases = append(l.phases, pl)
	}
	return nil
}

func (l *logTap) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logTap) WithGroup(string) slog.Handler      { return l }

// takePhases returns the phase lines logged since the last call.
func (l *logTap) takePhases() []phaseLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.phases
	l.phases = nil
	return out
}

func (l *logTap) warnings() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.warns))
	for k, v := range l.warns {
		out[k] = v
	}
	return out
}

// budgetResult is what one BenchmarkBudget run measured.
type budgetResult struct {
	ceilingFraction float64 // orders in the hours with work left, over the ceiling
	ordersPerHour   float64 // the same hours' orders, per hour
	qrPerHour       float64 // QR codes stored, per hour of the run
	p50, p95, max   float64 // accepted order to QR stored, simulated minutes
	callsPerAct     float64 // Octane calls charged to each activation that reached qr_ready
	minCalls        float64 // the minimum: 4 + 1/RESERVE_BATCH + share without cust_no
	extraPerPass    float64 // calls above the fewest for the work done, per pass
	faults233       int
}

// BenchmarkBudget runs the job (real client, simulator enforcing
// octane.DefaultLimits, PostgreSQL) on 5,000 pending eSIM activations, 80 %
// of them with a customer number, for three hours with everything
// compressed 60 times: Octane's minute is 1 s and its hour 60 s on both the
// simulator and the client's limiter, the business clock runs 60 times
// faster than the wall clock (order latency 5 simulated minutes, polls every
// 30, claims and leases), and a pass with every phase starts every 10 s (10
// compressed minutes) with RUN_DEADLINE 9 s. The passes are wired as `batch
// run` wires them: every call in the call log, the limiter seeded from it at
// each pass start, an import phase on an empty folder and a report phase
// writing .eml files. It reports, per RESERVE_BATCH:
//
//   - ceiling_fraction: orders per hour, in the hours that ended with rows
//     still to submit, over min(2000, 500 x RESERVE_BATCH);
//   - orders/h (those hours) and qr/h (QR codes stored per hour of the run);
//   - order_to_qr_p50_min, _p95_min and _max_min: from the accepted
//     orderCreate to the QR code stored, in simulated minutes (state events);
//   - calls/activation: the simulator's ledger entries charged to the
//     activations that reached qr_ready (by number and order; a
//     reserveResources call in shares among the numbers it returned;
//     addCustomer to the row whose customer it made), against
//     min_calls/activation, 4 + 1/RESERVE_BATCH + the share of those rows
//     without a customer number; extra_calls/pass: every ledger entry above
//     the fewest calls that take each row as far as it got, per pass;
//   - faults_233: ledger entries with code 233.
//
// Per pass and per hour figures, the limiter waits and the warnings are
// logged (use -v: a benchmark's log is cut to ten lines otherwise). It takes
// about 3.2 minutes per sub-benchmark. BENCH_SCALE sets another compression
// (20: an hour of 3 minutes, the run 9 minutes, where the job's own speed is
// no longer what bounds it) and BENCH_PASSES a shorter run (for profiles).
//
//	go test -run '^$' -bench Budget -benchtime 1x -timeout 30m -v ./jobs/
func BenchmarkBudget(b *testing.B) {
	for _, rb := range []int{1, 4} {
		b.Run(fmt.Sprintf("reserve=%d", rb), func(b *testing.B) {
			var r budgetResult
			for range b.N {
				r = runBudget(b, rb)
			}
			b.ReportMetric(r.ceilingFraction, "ceiling_fraction")
			b.ReportMetric(r.ordersPerHour, "orders/h")
			b.ReportMetric(r.qrPerHour, "qr/h")
			b.ReportMetric(r.p50, "order_to_qr_p50_min")
			b.ReportMetric(r.p95, "order_to_qr_p95_min")
			b.ReportMetric(r.max, "order_to_qr_max_min")
			b.ReportMetric(r.callsPerAct, "calls/activation")
			b.ReportMetric(r.minCalls, "min_calls/activation")
			b.ReportMetric(r.extraPerPass, "extra_calls/pass")
			b.ReportMetric(float64(r.faults233), "faults_233")
		})
	}
}

// budgetRef is the sales reference of row i; rows with i%budgetNoCustEv == 0
// have no customer number.
func budgetRef(i int) string { return fmt.Sprintf("BUD-%05d", i) }

func budgetRefIndex(ref string) int {
	i, _ := strconv.Atoi(strings.TrimPrefix(ref, "BUD-"))
	return i
}

func runBudget(b *testing.B, reserveBatch int) budgetResult {
	b.StopTimer()
	shape := budgetShapeFromEnv()
	passes := shape.passes
	ctx := context.Background()
	store := repotest.NewPostgres(b)
	cred := fmt.Sprintf("budget-%d", rand.Int64())
	clk := newScaledClock(shape.scale)

	rows := make([]repo.NewActivation, budgetRows)
	var customers []int64
	for i := range rows {
		rows[i] = repo.NewActivation{Line: i + 2, SalesRef: budgetRef(i), GivenNames: "Ada", Surname: fmt.Sprintf("Budget%d", i),
			Email: fmt.Sprintf("ada%d@example.com", i), PlanNo: 1001, SIMType: "esim"}
		if i%budgetNoCustEv != 0 {
			c := int64(300_000 + i)
			rows[i].CustNo = &c
			customers = append(customers, c)
		}
	}
	sim := octanetest.New(octanetest.Config{
		Username: cred, Password: "secret", Now: clk.Now, OrderLatency: budgetLatency,
		MinuteWindow: shape.minute, HourWindow: shape.hour, Limits: octane.DefaultLimits(),
		MSNs: 4 * budgetRows, EsimProfiles: 2 * budgetRows, Customers: customers, Seed: 42,
	})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	if _, err := store.Import(ctx, repo.ImportFile{Name: "budget.csv", Hash: cred, DataRows: budgetRows}, rows, nil, clk.Now()); err != nil {
		b.Fatal(err)
	}

	tap := newLogTap()
	log := slog.New(tap)
	client, err := octane.New(srv.URL+"/tiab", srv.URL+"/tiab/api", cred, "secret",
		octane.WithGroupNo(7), octane.WithWindows(shape.minute, shape.hour), octane.WithLogger(log),
		octane.WithCallRecorder(jobs.CallRecorder(store, cred, log)))
	if err != nil {
		b.Fatal(err)
	}
	cfg := jobs.Config{
		Credential: cred, BatchSize: 50, MaxSubmitPerRun: 2000, ReserveBatch: reserveBatch,
		PollInterval: budgetPoll, RunDeadline: shape.deadline,
		// Leases are stamped on the business clock: RUN_DEADLINE + 1m there.
		Lease: 10 * time.Minute,
	}
	runner := jobs.NewRunner(store, client, cfg, jobs.WithClock(clk.Now), jobs.WithLogger(log),
		jobs.WithPassStart(jobs.SeedLimiter(store, client, cred, nil)),
		jobs.WithImport(jobs.NewImporter(store, log, jobs.ImportOptions{}).DirPhase(b.TempDir())),
		jobs.WithReport(jobs.NewReporter(store, log, jobs.ReportOptions{Dir: b.TempDir()}).Phase))

	b.Logf("compression %dx: minute %v, hour %v, a pass every %v, RUN_DEADLINE %v, %d passes; load average %s",
		shape.scale, shape.minute, shape.hour, shape.every, shape.deadline, passes, loadAvg())
	b.StartTimer()
	wall0, t0 := time.Now(), clk.Now()
	var passLog []string
	for k := range passes {
		due := wall0.Add(time.Duration(k) * shape.every)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		late := time.Since(due)
		ps := time.Now()
		res, err := runner.Pass(ctx, nil)
		if err != nil || res.Skipped {
			b.Fatalf("pass %d: %v (skipped %v, counts %v)", k, err, res.Skipped, res.Counts)
		}
		var phases []string
		for _, pl := range tap.takePhases() {
			phases = append(phases, fmt.Sprintf("%s=%.1fs", pl.phase, float64(pl.ms)/1000))
		}
		passLog = append(passLog, fmt.Sprintf("pass %2d late %4dms took %5.2fs deadline=%-5v ordered %4d reserved %4d polled %4d completed %4d qr %4d reported %4d | %s",
			k, late.Milliseconds(), time.Since(ps).Seconds(), res.DeadlineReached, res.Counts["submit.ordered"],
			res.Counts["submit.reserved"], res.Counts["poll.claimed"], res.Counts["poll.completed"], res.Counts["qr.ready"],
			res.Counts["report.reported_activations"], strings.Join(phases, " ")))
	}
	if d := time.Until(wall0.Add(time.Duration(passes) * shape.every)); d > 0 {
		time.Sleep(d)
	}
	b.StopTimer()
	passLog = append(passLog, "load average at the end "+loadAvg())
	// The figures first: a benchmark's log is cut to ten lines without -v.
	res := budgetFigures(b, store, sim, cred, reserveBatch, passes, t0, tap)
	for _, l := range passLog {
		b.Log(l)
	}
	return res
}

// budgetFigures reads the run's figures from the simulator's ledger and the
// store's event log.
func budgetFigures(b *testing.B, store *repo.Store, sim *octanetest.Server, cred string, reserveBatch, passes int,
	t0 time.Time, tap *logTap) budgetResult {
	ctx := context.Background()
	hours := max(passes/6, 1) // six passes an hour
	ceiling := float64(min(2000, 500*reserveBatch))
	var res budgetResult

	// Orders per hour from the ledger (business clock: hour h is
	// [t0+h, t0+h+1h)), and every call per method.
	ledger := sim.Ledger()
	orders := make([]int, hours+1)
	reserves := make([]int, hours+1)
	perMethod := map[string]int{}
	for _, e := range ledger {
		perMethod[e.Method+"/"+e.Outcome]++
		if e.Code == octane.FaultCodeRateLimited {
			res.faults233++
		}
		if e.Outcome != octanetest.OutcomeOK {
			continue
		}
		h := min(max(int(e.At.Sub(t0)/time.Hour), 0), hours)
		switch e.Method {
		case octane.MethodOrderCreate:
			orders[h]++
		case octane.MethodReserveResources:
			reserves[h]++
		}
	}
	// The hours that ended with rows still to submit are the ones the
	// budget, not the backlog, bounded.
	cum, satOrders, satHours := 0, 0, 0
	for h := range hours {
		cum += orders[h]
		if cum < budgetRows {
			satOrders += orders[h]
			satHours++
		}
	}
	if satHours > 0 {
		res.ordersPerHour = float64(satOrders) / float64(satHours)
		res.ceilingFraction = res.ordersPerHour / ceiling
	}

	// Order -> QR from the state events (business clock).
	var spans []struct {
		ActivationID int64     `db:"activation_id"`
		Accepted     time.Time `db:"accepted"`
		Completed    time.Time `db:"completed"`
		Ready        time.Time `db:"ready"`
	}
	err := store.DB().SelectContext(ctx, &spans, `SELECT o.activation_id, o.at AS accepted, c.at AS completed, q.at AS ready
FROM events o
JOIN events c ON c.activation_id = o.activation_id AND c.kind = 'state' AND c.to_state = 'completed'
JOIN events q ON q.activation_id = o.activation_id AND q.kind = 'state' AND q.to_state = 'qr_ready'
WHERE o.kind = 'state' AND o.step = 'orderCreate' AND o.outcome = 'accepted'`)
	if err != nil {
		b.Fatal(err)
	}
	total := make([]float64, 0, len(spans))
	toDone := make([]float64, 0, len(spans))
	toQR := make([]float64, 0, len(spans))
	qrs := make([]int, hours+1)
	for _, s := range spans {
		total = append(total, s.Ready.Sub(s.Accepted).Minutes())
		toDone = append(toDone, s.Completed.Sub(s.Accepted).Minutes())
		toQR = append(toQR, s.Ready.Sub(s.Completed).Minutes())
		qrs[min(max(int(s.Ready.Sub(t0)/time.Hour), 0), hours)]++
	}
	res.p50, res.p95, res.max = quantile(total, 0.5), quantile(total, 0.95), quantile(total, 1)
	res.qrPerHour = float64(len(spans)) / float64(hours)

	// Calls per activation. Each ledger entry is charged to the activation
	// holding its number (a reserveResources call in equal shares to the
	// numbers it returned), addCustomer to the row whose customer it made;
	// the rest (credential probes, numbers given back) is overhead.
	var acts []struct {
		Ref    string     `db:"sales_ref"`
		State  repo.State `db:"state"`
		MSN    string     `db:"msn"`
		CustNo *int64     `db:"cust_no"`
	}
	if err := store.DB().SelectContext(ctx, &acts, `SELECT sales_ref, state, msn, cust_no FROM activations`); err != nil {
		b.Fatal(err)
	}
	perMSN := map[string]float64{}
	addCustomer := 0
	for _, e := range ledger {
		switch {
		case e.Method == octane.MethodAddCustomer:
			addCustomer++
		case e.Method == octane.MethodReserveResources && e.Outcome == octanetest.OutcomeOK:
			msns := strings.Split(e.MSN, ",")
			for _, m := range msns {
				perMSN[m] += 1 / float64(len(msns))
			}
		default:
			perMSN[e.MSN]++ // "" and the credential probe's number: no activation's
		}
	}
	states := map[repo.State]int{}
	var ready, readyNoCust, created int
	var readyCalls, ideal float64
	reserveShare := 1 / float64(reserveBatch)
	for _, a := range acts {
		states[a.State]++
		made := a.CustNo != nil && budgetRefIndex(a.Ref)%budgetNoCustEv == 0 // the job created it
		var c float64
		if made {
			created++
			c = 1
		}
		// The fewest calls that take a row as far as its state.
		switch a.State {
		case repo.StateSelected:
			c += reserveShare + 1
		case repo.StateOrdering, repo.StateSubmitted:
			c += reserveShare + 2
		case repo.StateCompleted:
			c += reserveShare + 3
		case repo.StateQRReady:
			c += reserveShare + 4
		}
		ideal += c
		if a.State == repo.StateQRReady {
			ready++
			readyCalls += perMSN[a.MSN]
			if made {
				readyNoCust++
				readyCalls++
			}
		}
	}
	calls := len(ledger)
	if ready > 0 {
		res.minCalls = 4 + reserveShare + float64(readyNoCust)/float64(ready)
		res.callsPerAct = readyCalls / float64(ready)
	}
	res.extraPerPass = (float64(calls) - ideal) / float64(passes)

	// Where the limiter made calls wait (the call log).
	var waits []struct {
		Method string  `db:"method"`
		N      int     `db:"n"`
		Waited float64 `db:"waited"`
	}
	if err := store.DB().SelectContext(ctx, &waits, `SELECT method, count(*) AS n, COALESCE(SUM(waited_ns), 0)/1e9 AS waited
FROM calls WHERE credential = $1 GROUP BY method ORDER BY method`, cred); err != nil {
		b.Fatal(err)
	}

	b.Logf("RESERVE_BATCH=%d: orders per hour %v, reserveResources per hour %v, QR per hour %v (ceiling %.0f/h, %d hours with work left)",
		reserveBatch, orders[:hours], reserves[:hours], qrs[:hours], ceiling, satHours)
	b.Logf("order->QR minutes: p50 %.1f p95 %.1f max %.1f | order->complete p50 %.1f p95 %.1f | complete->QR p50 %.1f p95 %.1f (n=%d)",
		res.p50, res.p95, res.max, quantile(toDone, 0.5), quantile(toDone, 0.95), quantile(toQR, 0.5), quantile(toQR, 0.95), len(spans))
	b.Logf("states at the end: %v; qr_ready %d (%d without cust_no); customers created %d with %d addCustomer calls; calls above the fewest for the work done: %.0f",
		states, ready, readyNoCust, created, addCustomer, float64(calls)-ideal)
	keys := make([]string, 0, len(perMethod))
	for k := range perMethod {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, perMethod[k]))
	}
	b.Logf("ledger: %d calls: %s", calls, strings.Join(parts, ", "))
	for _, w := range waits {
		b.Logf("call log %-18s %5d calls, limiter wait %8.1f s in all", w.Method, w.N, w.Waited)
	}
	if w := tap.warnings(); len(w) > 0 {
		b.Logf("warnings and errors logged: %v", w)
	}
	return res
}

// quantile returns the q-quantile of xs (nearest rank; 0 for none).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// loadAvg is the machine's load averages (/proc/loadavg), "?" when unknown:
// the benchmarks share the machine with PostgreSQL and whatever else runs.
func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
