// Package metrics defines esimbatch's Prometheus metrics: the families that
// `batch run` pushes to a Pushgateway after its pass (PUSHGATEWAY_URL) and
// that `batch schedule` serves at METRICS_ADDR, with its /healthz verdict.
// The README's "Metrics and alerts" section lists them with example alert
// rules, and a test keeps the two in step.
//
// Where the numbers come from: the database for the gauges of work in
// progress (activations by state, open orders and late QR codes past 24 h,
// the oldest pending row), read each time the metrics are gathered; a pass's
// own result for the rest (jobs.Result counts, the call log rows of its run,
// its duration and whether it failed), given to ObservePass when it ends.
//
// Per-pass counts are counters of the process: for `batch run`, one pass
// (so each push carries that run's counts: read them as they are, a rate
// over pushes means nothing); for `batch schedule`, every pass since it
// started (rate and increase work as usual).
//
// No label holds a secret: the credential is the Octane user name, and
// labels are only states, phases, count names, methods and call outcomes.
package metrics

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/repo"
)

// The metric families, one name each (README "Metrics and alerts").
const (
	// Activations is a gauge per state (label state), from the database.
	Activations = "esimbatch_activations"
	// OpenOrdersOver24h counts orders still open more than 24 h after
	// they were sent (repo.AttentionAge), from the database.
	OpenOrdersOver24h = "esimbatch_open_orders_over_24h"
	// QRLateOver24h counts completed eSIM services still without their QR
	// code 24 h after completion, from the database.
	QRLateOver24h = "esimbatch_qr_late_over_24h"
	// OldestPendingAge is the age in seconds of the oldest pending row (0:
	// none), from the database.
	OldestPendingAge = "esimbatch_oldest_pending_age_seconds"
	// ReleasesDue counts reserved numbers past RELEASE_AFTER that the
	// release phase has not given back yet, from the database.
	ReleasesDue = "esimbatch_releases_due"

	// Outcomes counts what passes did, per phase and outcome (labels phase,
	// outcome): the counts of each pass's `phase done` log lines, such as
	// submit/ordered, poll/completed, qr/ready, submit/failed; and, under
	// phase "pass", the passes that succeeded (ok) and failed (failed) and
	// counts of no one phase (lost_claims).
	Outcomes = "esimbatch_outcomes_total"
	// OctaneCalls counts Octane calls per method and outcome (ok,
	// rejected, fault, rate_limited, transport; inflight for a call whose
	// end was not recorded): faults are the outcomes other than ok.
	OctaneCalls = "esimbatch_octane_calls_total"
	// RateLimitWait is the time calls waited for the client's rate
	// limiter before sending, per method, in seconds.
	RateLimitWait = "esimbatch_rate_limit_wait_seconds_total"
	// RunDuration is the wall time of the last pass, in seconds.
	RunDuration = "esimbatch_run_duration_seconds"
	// LastRun is when the last pass ended (Unix seconds).
	LastRun = "esimbatch_last_run_timestamp_seconds"
	// LastRunExitCode is 0 when the last pass succeeded (`batch run` exit
	// 0: done, or RUN_DEADLINE with work left) and 1 when it failed.
	LastRunExitCode = "esimbatch_last_run_exit_code"
	// LastSuccess is when the last successful pass ended (Unix seconds). It
	// is exposed only once a pass succeeded, and a failed run does not push
	// it, so the Pushgateway keeps the last success's time.
	LastSuccess = "esimbatch_last_success_timestamp_seconds"
)

// Names lists every metric family this package defines, sorted.
func Names() []string {
	n := []string{Activations, OpenOrdersOver24h, QRLateOver24h, OldestPendingAge, ReleasesDue,
		Outcomes, OctaneCalls, RateLimitWait, RunDuration, LastRun, LastRunExitCode, LastSuccess}
	sort.Strings(n)
	return n
}

// StatusSource is what the database gauges read (*repo.Store satisfies it).
type StatusSource interface {
	Status(ctx context.Context, now, releaseBefore time.Time) (repo.Status, error)
}

// Options configures Metrics.
type Options struct {
	// Store feeds the database gauges; nil leaves them out.
	Store StatusSource
	// Now is the job's clock, the one the store's stamps are compared with
	// (ages, attention lists); nil: time.Now.
	Now func() time.Time
	// Wall is the wall clock for the timestamps Prometheus compares with
	// time() and for the health verdict; nil: time.Now.
	Wall func() time.Time
	// ReleaseAfter is RELEASE_AFTER (releases due); 0: 23h.
	ReleaseAfter time.Duration
	// Labels are constant labels on every metric: `batch schedule` sets
	// credential here; a push puts it in the grouping key instead (the
	// Pushgateway refuses a metric that carries a grouping label).
	Labels prometheus.Labels
	// QueryTimeout bounds the database read of one gathering; 0: 10s.
	QueryTimeout time.Duration
	// Log receives a warning when the database cannot be read; nil: none.
	Log *slog.Logger
}

// Pass is what a pass did, as ObservePass records it.
type Pass struct {
	// Phases the pass ran (a `batch schedule` firing runs one).
	Phases []string
	// Start and End are wall-clock times.
	Start, End time.Time
	// Failed is true when the pass ended in an error: what `batch run`
	// exits 1 for (Octane unreachable, bad credentials, the database, the
	// run lock, an import or report failure, a signal).
	Failed bool
	// Counts are jobs.Result.Counts: "phase.outcome" keys.
	Counts map[string]int
	// Calls are the run's calls from the call log (repo.Store.RunCalls).
	Calls []repo.MethodCalls
}

// Metrics holds the metric families of one process.
type Metrics struct {
	reg  *prometheus.Registry
	opts Options

	outcomes *prometheus.CounterVec
	calls    *prometheus.CounterVec
	wait     *prometheus.CounterVec

	mu          sync.Mutex
	started     time.Time
	last        *Pass                // the pass that ended last; nil: none yet
	lastSuccess time.Time            // zero: no pass succeeded yet
	phases      map[string]PhaseInfo // the last pass of each phase
}

// New returns the metric families, registered on a registry of their own
// (no Go runtime or process collectors: a pushed group should hold only what
// describes the job).
func New(o Options) *Metrics {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Wall == nil {
		o.Wall = time.Now
	}
	if o.ReleaseAfter <= 0 {
		o.ReleaseAfter = 23 * time.Hour
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{reg: prometheus.NewRegistry(), opts: o, started: o.Wall(), phases: map[string]PhaseInfo{}}
	c := o.Labels
	m.outcomes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: Outcomes, ConstLabels: c,
		Help: "What passes did, per phase and outcome (the counts of the phase done log lines)."}, []string{"phase", "outcome"})
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: OctaneCalls, ConstLabels: c,
		Help: "Octane calls per method and outcome (ok, rejected, fault, rate_limited, transport, inflight)."}, []string{"method", "outcome"})
	m.wait = prometheus.NewCounterVec(prometheus.CounterOpts{Name: RateLimitWait, ConstLabels: c,
		Help: "Seconds Octane calls waited for the rate limiter before sending, per method."}, []string{"method"})
	m.reg.MustRegister(m.outcomes, m.calls, m.wait, &lastCollector{m: m,
		duration: prometheus.NewDesc(RunDuration, "Wall time of the last pass, in seconds.", nil, c),
		run:      prometheus.NewDesc(LastRun, "When the last pass ended, in Unix seconds.", nil, c),
		exit:     prometheus.NewDesc(LastRunExitCode, "0 when the last pass succeeded, 1 when it failed.", nil, c),
		success: prometheus.NewDesc(LastSuccess,
			"When the last successful pass ended, in Unix seconds (absent until one succeeded).", nil, c)})
	if o.Store != nil {
		m.reg.MustRegister(newDBCollector(o.Store, o, c))
	}
	// Every per-pass family starts with series at 0, so a push always
	// carries each of them: POST replaces a family only when it is pushed,
	// and a run with no call or no count must not leave the previous run's
	// numbers on the gateway as if they were its own.
	for _, r := range []string{passOK, passFailed} {
		m.outcomes.WithLabelValues(passPhase, r)
	}
	for meth := range octane.DefaultLimits() { // the methods that can wait
		m.calls.WithLabelValues(meth, octane.OutcomeOK)
		m.wait.WithLabelValues(meth)
	}
	return m
}

// Outcomes series of the pass as a whole: passes that succeeded and failed,
// and counts without a phase (lost_claims).
const (
	passPhase  = "pass"
	passOK     = "ok"
	passFailed = "failed"
)

// Gatherer is the registry, for a push or a scrape handler.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// ObservePass records a pass that ran (not one that found the run lock
// taken, which did nothing).
func (m *Metrics) ObservePass(p Pass) {
	for k, n := range p.Counts {
		if n <= 0 {
			continue // counters only go up
		}
		phase, outcome, ok := strings.Cut(k, ".")
		if !ok { // a pass-wide count, such as lost_claims
			phase, outcome = passPhase, k
		}
		m.outcomes.WithLabelValues(phase, outcome).Add(float64(n))
	}
	if p.Failed {
		m.outcomes.WithLabelValues(passPhase, passFailed).Inc()
	} else {
		m.outcomes.WithLabelValues(passPhase, passOK).Inc()
	}
	for _, c := range p.Calls {
		m.calls.WithLabelValues(c.Method, c.Outcome).Add(float64(c.Count))
		if c.Waited > 0 {
			m.wait.WithLabelValues(c.Method).Add(c.Waited.Seconds())
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil || !p.End.Before(m.last.End) {
		last := p
		m.last = &last
	}
	if !p.Failed && p.End.After(m.lastSuccess) {
		m.lastSuccess = p.End
	}
	for _, ph := range p.Phases {
		m.phases[ph] = PhaseInfo{LastPass: p.End, Failed: p.Failed}
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// lastCollector exposes the last pass's gauges once a pass ended, and
// LastSuccess only once one succeeded: before that a scrape shows them absent
// rather than an exit code 0 of a pass that never ran, and a push carries no
// LastSuccess, so a failed first run does not overwrite the time of the last
// success the Pushgateway holds from an earlier process.
type lastCollector struct {
	m                            *Metrics
	duration, run, exit, success *prometheus.Desc
}

func (c *lastCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.duration, c.run, c.exit, c.success} {
		ch <- d
	}
}

func (c *lastCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	last, success := c.m.last, c.m.lastSuccess
	c.m.mu.Unlock()
	if last != nil {
		exit := 0.0
		if last.Failed {
			exit = 1
		}
		ch <- prometheus.MustNewConstMetric(c.duration, prometheus.GaugeValue, last.End.Sub(last.Start).Seconds())
		ch <- prometheus.MustNewConstMetric(c.run, prometheus.GaugeValue, unixSeconds(last.End))
		ch <- prometheus.MustNewConstMetric(c.exit, prometheus.GaugeValue, exit)
	}
	if !success.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.success, prometheus.GaugeValue, unixSeconds(success))
	}
}

// dbCollector reads the database gauges at each gathering.
type dbCollector struct {
	store                              StatusSource
	opts                               Options
	states, open, late, oldest, relDue *prometheus.Desc
}

func newDBCollector(s StatusSource, o Options, c prometheus.Labels) *dbCollector {
	return &dbCollector{store: s, opts: o,
		states: prometheus.NewDesc(Activations, "Activations per lifecycle state, from the database.", []string{"state"}, c),
		open: prometheus.NewDesc(OpenOrdersOver24h,
			"Orders still open more than 24 h after they were sent, from the database.", nil, c),
		late: prometheus.NewDesc(QRLateOver24h,
			"Completed eSIM services still without their QR code 24 h after completion, from the database.", nil, c),
		oldest: prometheus.NewDesc(OldestPendingAge,
			"Age of the oldest pending activation in seconds (0: none), from the database.", nil, c),
		relDue: prometheus.NewDesc(ReleasesDue,
			"Reserved numbers past RELEASE_AFTER not yet given back, from the database.", nil, c),
	}
}

func (d *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{d.states, d.open, d.late, d.oldest, d.relDue} {
		ch <- x
	}
}

// Collect reads the store; when it cannot, it logs a warning and leaves the
// database gauges out (a push then leaves the Pushgateway's last values in
// place, a scrape shows them missing), rather than failing the others.
func (d *dbCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.QueryTimeout)
	defer cancel()
	now := d.opts.Now()
	st, err := d.store.Status(ctx, now, now.Add(-d.opts.ReleaseAfter))
	if err != nil {
		d.opts.Log.Warn("metrics: read the database gauges", "err", err)
		return
	}
	seen := map[repo.State]bool{}
	for _, s := range repo.States() {
		seen[s] = true
		ch <- prometheus.MustNewConstMetric(d.states, prometheus.GaugeValue, float64(st.Counts[s]), string(s))
	}
	for s, n := range st.Counts { // a state this build does not list still shows
		if !seen[s] {
			ch <- prometheus.MustNewConstMetric(d.states, prometheus.GaugeValue, float64(n), string(s))
		}
	}
	ch <- prometheus.MustNewConstMetric(d.open, prometheus.GaugeValue, float64(st.OpenOrders.Count))
	ch <- prometheus.MustNewConstMetric(d.late, prometheus.GaugeValue, float64(st.QRLate.Count))
	age := 0.0
	if st.OldestPending != nil {
		if a := now.Sub(*st.OldestPending); a > 0 {
			age = a.Seconds()
		}
	}
	ch <- prometheus.MustNewConstMetric(d.oldest, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(d.relDue, prometheus.GaugeValue, float64(st.ReleasesDue))
}
