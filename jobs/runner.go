package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/repo"
)

// Phase names, in the order a pass runs them.
const (
	PhaseImport  = "import"
	PhaseRelease = "release"
	PhaseSubmit  = "submit"
	PhasePoll    = "poll"
	PhaseQR      = "qr"
	PhaseReport  = "report"
)

// AllPhases is every phase in pass order.
var AllPhases = []string{PhaseImport, PhaseRelease, PhaseSubmit, PhasePoll, PhaseQR, PhaseReport}

// ParsePhases parses a comma-separated phase list ("" = all) and returns it
// in pass order; an unknown name is an error.
func ParsePhases(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return append([]string(nil), AllPhases...), nil
	}
	want := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		ok := false
		for _, k := range AllPhases {
			if k == p {
				ok = true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown phase %q (want some of %s)", p, strings.Join(AllPhases, ","))
		}
		want[p] = true
	}
	var out []string
	for _, k := range AllPhases {
		if want[k] {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no phase given")
	}
	return out, nil
}

// Config is the throttling and timing of a pass.
type Config struct {
	// Credential is the Octane user name: the run-lock key and the call-log key.
	Credential string
	// BatchSize rows are claimed at a time; MaxSubmitPerRun caps a pass.
	BatchSize, MaxSubmitPerRun int
	// ReserveBatch numbers are asked for per reserveResources call (1..5).
	ReserveBatch int
	// QRByEmail sets isQRcode: Octane emails the QR, we fetch none.
	QRByEmail bool
	// PollInterval (>= 30m) between two orderQuery calls for one order.
	PollInterval time.Duration
	// ReleaseAfter: age at which an unused reservation is released (< 24h).
	ReleaseAfter time.Duration
	// RunDeadline bounds a whole pass (0: none).
	RunDeadline time.Duration
	// Lease is how long a claim stays ours (default RunDeadline + 1m, min 5m).
	Lease time.Duration
	// Workers run a batch's activations concurrently, per phase (default
	// 32). A row's work is a chain of short store writes and Octane calls,
	// each waiting on a round trip, so the workers overlap those waits; with
	// Octane's limits on they wait on the limiter instead, which costs
	// nothing. Measured by BenchmarkOverhead (limits off): 4 workers took
	// 134 activations/s and 16 took 169 at 10,000 rows; later, at 100,000
	// rows, 16 took 289 and 32 took 321 (48 and 64 were no faster).
	Workers int
	// MaxAttempts transport failures before a row fails (default 8), and
	// only once they span RetrySpan (default 48h): an outage of hours or a
	// day never fails live work.
	MaxAttempts int
	RetrySpan   time.Duration
	// OutageAfter consecutive Octane calls without an answer stop the pass
	// (exit 1) and charge no further row (default 5; negative: never).
	OutageAfter int
	// DryRun: reads and selections only; no mutating Octane call, no row change.
	DryRun bool
	// WriteTimeout bounds each store write that records an outcome
	// (default 15s).
	WriteTimeout time.Duration
	// ProgressEvery is the wall-time gap between progress lines (default 10s).
	ProgressEvery time.Duration
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 50
	}
	if c.ReserveBatch < 1 {
		c.ReserveBatch = 1
	}
	if c.ReserveBatch > 5 {
		c.ReserveBatch = 5
	}
	if c.PollInterval < 30*time.Minute {
		c.PollInterval = 30 * time.Minute
	}
	if c.ReleaseAfter <= 0 || c.ReleaseAfter >= 24*time.Hour {
		c.ReleaseAfter = 23 * time.Hour
	}
	if c.Lease <= 0 {
		c.Lease = c.RunDeadline + time.Minute
		if c.Lease < 5*time.Minute {
			c.Lease = 5 * time.Minute
		}
	}
	if c.Workers <= 0 {
		c.Workers = 32
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 8
	}
	if c.RetrySpan <= 0 {
		c.RetrySpan = 48 * time.Hour
	}
	if c.OutageAfter == 0 {
		c.OutageAfter = 5
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 15 * time.Second
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 10 * time.Second
	}
}

// retryPolicy is when a row's transport failures end in failure.
func (c *Config) retryPolicy() repo.RetryPolicy {
	return repo.RetryPolicy{MaxAttempts: c.MaxAttempts, MinSpan: c.RetrySpan}
}

// Runner runs passes. It is safe to call Pass from several goroutines:
// passes of one Runner share its run lock (they run side by side, as
// `batch schedule` fires them), and the run lock keeps other processes on
// the credential out.
type Runner struct {
	store  Store
	client Octane
	lock   Locker
	cfg    Config
	now    func() time.Time
	log    *slog.Logger

	importFn, reportFn PhaseFunc
	passStart          []func(ctx context.Context) error

	unknownStatus sync.Map // order status values already logged once

	// shared is the run lock shared by passes of this Runner that overlap
	// (`batch schedule` firing different phases at once): the first takes
	// it, the last gives it back.
	shared struct {
		mu   sync.Mutex
		n    int
		lock Lock
	}
}

// acquire takes the run lock, or joins the one a running pass of this
// Runner holds.
func (r *Runner) acquire(ctx context.Context) (Lock, error) {
	r.shared.mu.Lock()
	defer r.shared.mu.Unlock()
	if r.shared.n > 0 {
		r.shared.n++
		return r.shared.lock, nil
	}
	l, err := r.lock(ctx, r.cfg.Credential)
	if err != nil {
		return nil, err
	}
	r.shared.lock, r.shared.n = l, 1
	return l, nil
}

// unshare leaves the shared lock; the last pass releases it.
func (r *Runner) unshare(ctx context.Context) {
	r.shared.mu.Lock()
	defer r.shared.mu.Unlock()
	r.shared.n--
	if r.shared.n > 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.shared.lock.Release(rctx); err != nil {
		r.log.Error("release run lock", "err", err)
	}
	r.shared.lock = nil
}

// Option configures a Runner.
type Option func(*Runner)

// WithClock injects the clock (time.Now otherwise).
func WithClock(now func() time.Time) Option { return func(r *Runner) { r.now = now } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(r *Runner) { r.log = l } }

// WithLocker replaces the run lock (the store's AcquireRunLock otherwise).
func WithLocker(l Locker) Option { return func(r *Runner) { r.lock = l } }

// WithImport plugs in the import phase.
func WithImport(f PhaseFunc) Option { return func(r *Runner) { r.importFn = f } }

// WithReport plugs in the report phase.
func WithReport(f PhaseFunc) Option { return func(r *Runner) { r.reportFn = f } }

// WithPassStart adds a function run at the start of every pass, once the run
// lock is held and before anything is claimed (seeding the limiter from the
// call log, syncing the clock with the database). An error stops the pass
// (ErrStopped) before it touches a row.
func WithPassStart(f func(ctx context.Context) error) Option {
	return func(r *Runner) { r.passStart = append(r.passStart, f) }
}

// NewRunner returns a Runner over the store and the client. When the store
// has AcquireRunLock (as *repo.Store does) it provides the run lock. The
// client should be built with CallRecorder as its call hook, and with
// octane.WithReadOnly when cfg.DryRun is set.
func NewRunner(store Store, client Octane, cfg Config, opts ...Option) *Runner {
	cfg.defaults()
	r := &Runner{store: store, client: client, cfg: cfg, now: time.Now, log: slog.New(slog.DiscardHandler)}
	if rl, ok := store.(repoLocker); ok {
		r.lock = func(ctx context.Context, key string) (Lock, error) {
			l, err := rl.AcquireRunLock(ctx, key)
			if err != nil {
				return nil, err
			}
			return l, nil
		}
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Result is what a pass did.
type Result struct {
	RunID int64
	// Skipped is true when another run held the lock: nothing was done.
	Skipped bool
	// Counts per "phase.metric".
	Counts map[string]int
	// SubmitStopped says why submitting stopped early ("" if it did not).
	SubmitStopped string
	// Cancelled is true when the caller's context ended the pass early.
	Cancelled bool
	// DeadlineReached is true when the pass ran out of RunDeadline with
	// work left: a normal pass (no error), the next one picks up.
	DeadlineReached bool
	// Left counts the rows still waiting per state when the pass ended
	// (filled when the deadline was reached).
	Left map[repo.State]int
}

// errDeadline is the cause of a pass context that ran out of RunDeadline.
var errDeadline = errors.New("run deadline reached")

// ErrStopped wraps the cause of a pass that stopped on an infrastructure or
// credential failure (octane.ErrUnauthorized, a store error): exit 1.
var ErrStopped = errors.New("pass stopped")

// pass is the state of one Pass.
type pass struct {
	r      *Runner
	runID  int64
	log    *slog.Logger
	oc     Octane  // the client, watched for outages
	outage *outage // consecutive calls without an answer

	mu            sync.Mutex
	counts        map[string]int
	fatal         error  // stops the whole pass (unauthorized, store failure)
	submitStopped string // stops submitting (pool exhausted)

	// poolMu guards the run's reserved numbers (takeNumber): pool holds the
	// ones stored that no worker has been given yet, oldest first,
	// reserving the reserves in flight.
	poolMu    sync.Mutex
	pool      []repo.Reservation
	reserving []*reserveCall

	lock Lock // the run lock; checked before every phase and every claim

	releaseRan bool // the release phase ran in this pass (submit skips its own)

	credOnce sync.Once // the credential check before the first claim

	checkMu sync.Mutex // serializes run-lock checks of concurrent lanes

	pollDone  <-chan struct{} // closed when the poll lane has ended (or there is none)
	completed chan struct{}   // signalled (never blocking) when a poll completed a service awaiting its QR
}

// lockChecker is a run lock that can confirm it is still held (*repo.RunLock:
// it pings the advisory lock's session or renews the SQLite lease).
type lockChecker interface {
	Check(ctx context.Context) error
}

// holdsLock confirms the run lock before new work is claimed. A lock lost
// mid-run (a killed session, a lease past its TTL) lets a second runner in,
// and two runners on one credential can order one activation twice: the pass
// stops instead (exit 1). It is called from the pass's own goroutine only.
func (p *pass) holdsLock(ctx context.Context) bool {
	lc, ok := p.lock.(lockChecker)
	if !ok {
		if p.fatalErr() != nil || ctx.Err() != nil {
			return false
		}
		p.renew(ctx)
		return p.fatalErr() == nil
	}
	if ctx.Err() != nil || p.fatalErr() != nil {
		return false
	}
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p.checkMu.Lock() // lanes check concurrently; one pinned connection
	err := lc.Check(c)
	p.checkMu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			p.setFatal(fmt.Errorf("run lock lost: %w", err))
		}
		return false
	}
	p.renew(c)
	return true
}

// renew extends the run's lease, under which its free numbers are its own.
func (p *pass) renew(ctx context.Context) {
	if p.runID == 0 {
		return
	}
	if err := p.r.store.RenewRun(ctx, p.runID, p.r.now().Add(p.r.cfg.Lease)); err != nil && ctx.Err() == nil {
		p.setFatal(fmt.Errorf("renew run lease: %w", err))
	}
}

func (p *pass) add(key string, n int) {
	p.mu.Lock()
	p.counts[key] += n
	p.mu.Unlock()
}

func (p *pass) setFatal(err error) {
	p.mu.Lock()
	if p.fatal == nil {
		p.fatal = err
	}
	p.mu.Unlock()
}

func (p *pass) fatalErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fatal
}

func (p *pass) stopSubmit(reason string) {
	p.mu.Lock()
	if p.submitStopped == "" {
		p.submitStopped = reason
	}
	p.mu.Unlock()
}

func (p *pass) submitStop() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.submitStopped
}

// Pass runs one pass of the given phases (all when empty), in pass order,
// under the run lock. Another run holding the lock is not an error: Result
// has Skipped set. The error wraps ErrStopped and its cause for a credential
// refusal (octane.ErrUnauthorized) or a store failure; failed rows are not
// errors. On context cancellation the pass stops claiming, lets an in-flight
// orderCreate finish, records outcomes, releases its claims, and returns
// the context's error.
func (r *Runner) Pass(ctx context.Context, phases []string) (Result, error) {
	if len(phases) == 0 {
		phases = AllPhases
	}
	res := Result{Counts: map[string]int{}}
	if r.lock == nil {
		return res, fmt.Errorf("%w: no run lock configured", ErrStopped)
	}
	lock, err := r.acquire(ctx)
	if errors.Is(err, repo.ErrLocked) {
		r.log.Info("another run holds the lock; nothing to do", "credential", r.cfg.Credential)
		res.Skipped = true
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("%w: acquire run lock: %w", ErrStopped, err)
	}
	defer r.unshare(ctx)

	for _, f := range r.passStart {
		if err := f(ctx); err != nil {
			return res, fmt.Errorf("%w: pass start: %w", ErrStopped, err)
		}
	}
	parent := ctx
	if r.cfg.RunDeadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.cfg.RunDeadline, errDeadline)
		defer cancel()
	}
	start := r.now()
	wstart := time.Now()
	var runID int64
	if !r.cfg.DryRun { // a dry run leaves no trace, not even a runs row
		runID, err = r.store.StartRun(ctx, start, r.cfg.Credential, phases, r.cfg.DryRun)
		if err != nil {
			return res, fmt.Errorf("%w: start run: %w", ErrStopped, err)
		}
		if err := r.store.RenewRun(ctx, runID, start.Add(r.cfg.Lease)); err != nil {
			return res, fmt.Errorf("%w: start run: %w", ErrStopped, err)
		}
	}
	res.RunID = runID
	p := &pass{r: r, runID: runID, counts: res.Counts, log: r.log.With("run_id", runID), lock: lock,
		completed: make(chan struct{}, 1)}
	p.outage = &outage{after: r.cfg.OutageAfter, onStop: p.setFatal}
	p.oc = watched{c: r.client, o: p.outage}
	if r.cfg.DryRun {
		p.log = p.log.With("dry_run", true)
	}
	ctx = withRun(ctx, runID)
	if r.cfg.DryRun {
		ctx = withDryRun(ctx)
	}
	p.log.Info("pass start", "phases", strings.Join(phases, ","), "credential", r.cfg.Credential)

	var passErr error
	var sideMu sync.Mutex
	var sideErrs []error // import and report failures: the pass goes on
	// run runs the phases of one lane in order.
	pollDone := make(chan struct{})
	p.pollDone = pollDone
	run := func(lane []string) {
		for _, ph := range lane {
			if ctx.Err() != nil || p.fatalErr() != nil || !p.holdsLock(ctx) {
				return
			}
			if err := p.runPhase(ctx, ph); err != nil {
				if ph == PhaseImport || ph == PhaseReport {
					// A sales file that cannot be moved or a mail server
					// that refuses must not hold up orders and polls: the
					// other phases still run, and the pass still fails.
					sideMu.Lock()
					sideErrs = append(sideErrs, err)
					sideMu.Unlock()
					continue
				}
				p.setFatal(err)
			}
		}
	}
	first, lanes := passLanes(phases)
	run(first)
	if !slices.Contains(phases, PhasePoll) {
		close(pollDone)
	}
	var wg sync.WaitGroup
	for _, lane := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if lane[0] == PhasePoll {
				defer close(pollDone)
			}
			defer func() {
				if v := recover(); v != nil { // runPhase recovers; this is the lane's own code
					p.setFatal(p.recovered("lane "+strings.Join(lane, ","), v))
				}
			}()
			run(lane)
		}()
	}
	wg.Wait()
	res.SubmitStopped = p.submitStop()
	outcome := "ok"
	errMsg := ""
	switch {
	case p.fatalErr() == nil && len(sideErrs) > 0 && ctx.Err() == nil:
		err := errors.Join(sideErrs...)
		passErr = fmt.Errorf("%w: %w", ErrStopped, err)
		outcome, errMsg = "failed", err.Error()
	case p.fatalErr() != nil:
		passErr = fmt.Errorf("%w: %w", ErrStopped, p.fatalErr())
		outcome, errMsg = "failed", p.fatalErr().Error()
		if errors.Is(p.fatalErr(), octane.ErrUnauthorized) {
			outcome = "unauthorized"
		}
	case ctx.Err() != nil && parent.Err() == nil && errors.Is(context.Cause(ctx), errDeadline):
		// Out of time with work left: a normal pass; the next one picks up.
		res.DeadlineReached = true
		outcome = "deadline"
	case ctx.Err() != nil:
		res.Cancelled = true
		passErr = ctx.Err()
		outcome, errMsg = "cancelled", ctx.Err().Error()
	}
	if res.SubmitStopped != "" && errMsg == "" {
		errMsg = "submit stopped: " + res.SubmitStopped
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	p.mu.Lock()
	counts := make(map[string]int, len(p.counts))
	for k, v := range p.counts {
		counts[k] = v
	}
	p.mu.Unlock()
	res.Counts = counts
	if !r.cfg.DryRun {
		if err := r.store.FinishRun(wctx, runID, r.now(), outcome, counts, errMsg); err != nil {
			p.log.Error("finish run", "err", err)
			if passErr == nil {
				passErr = fmt.Errorf("%w: finish run: %w", ErrStopped, err)
			}
		}
	}
	lvl := slog.LevelInfo
	if passErr != nil {
		lvl = slog.LevelError
	}
	attrs := []any{"outcome", outcome, "duration_ms", time.Since(wstart).Milliseconds(),
		"submit_stopped", res.SubmitStopped, "err", errMsg}
	if res.DeadlineReached {
		res.Left = p.left(wctx)
		left := 0
		for st, n := range res.Left {
			attrs = append(attrs, "left_"+string(st), n)
			left += n
		}
		attrs = append(attrs, "left", left)
	}
	p.log.Log(wctx, lvl, "pass end", attrs...)
	return res, passErr
}

// left counts the rows still waiting for a later pass, per state.
func (p *pass) left(ctx context.Context) map[repo.State]int {
	out, err := p.r.store.Waiting(ctx)
	if err != nil {
		p.log.Warn("count work left", "err", err)
		return nil
	}
	return out
}

// qrFollowingPolls in a lane is the QR fetch that runs beside the poll lane
// until it ends (pass.qrFollowing).
const qrFollowingPolls = "qr following polls"

// passLanes splits a pass's phases: import and release run first, in
// order (release must precede submit, and import feeds it); then submit,
// poll and qr+report run side by side, because each spends its own Octane
// method's budget: a backlog being submitted never holds up polls, QR
// fetches or the report. The report follows the QR fetch, so it carries
// the QR codes fetched so far; then the QR fetch runs again beside the
// polls, for the services this pass's polls complete, as they complete: a
// poll lane that spends its whole deadline on orderQuery's budget does not
// hold their QR codes back to the next pass.
func passLanes(phases []string) (first []string, lanes [][]string) {
	var qrReport []string
	hasPoll, hasQR := false, false
	for _, ph := range phases {
		switch ph {
		case PhaseImport, PhaseRelease:
			first = append(first, ph)
		case PhaseQR, PhaseReport:
			qrReport = append(qrReport, ph)
			hasQR = hasQR || ph == PhaseQR
		default:
			hasPoll = hasPoll || ph == PhasePoll
			lanes = append(lanes, []string{ph})
		}
	}
	if hasPoll && hasQR {
		qrReport = append(qrReport, qrFollowingPolls)
	}
	if len(qrReport) > 0 {
		lanes = append(lanes, qrReport)
	}
	return first, lanes
}

// ErrPanic wraps a panic recovered in a phase or one of its workers: the
// pass stops (ErrStopped), is recorded as failed and releases its run lock;
// under `batch schedule` later firings still run.
var ErrPanic = errors.New("panic")

// recovered turns a recovered panic value into an error wrapping ErrPanic
// and logs it with the stack (which holds no argument values).
func (p *pass) recovered(where string, v any) error {
	err := fmt.Errorf("%w in %s: %v", ErrPanic, where, v)
	p.log.Error("recovered panic", "where", where, "err", err, "stack", string(debug.Stack()))
	return err
}

func (p *pass) runPhase(ctx context.Context, step string) (err error) {
	ph := step
	if step == qrFollowingPolls {
		ph = PhaseQR // one phase for the logs and counters
	}
	t0 := time.Now()
	before := p.snapshot(ph)
	defer func() {
		// A bug in a phase must not leave the run unrecorded: Pass records
		// it as failed, and its deferred Release frees the run lock.
		if v := recover(); v != nil {
			err = p.recovered("phase "+ph, v)
			p.setFatal(err)
		}
	}()
	switch step {
	case PhaseImport:
		err = p.plugged(ctx, ph, p.r.importFn)
	case PhaseRelease:
		err = p.release(ctx)
		p.releaseRan = true
	case PhaseSubmit:
		err = p.submit(ctx)
	case PhasePoll:
		err = p.poll(ctx)
	case PhaseQR:
		err = p.qr(ctx, false)
	case qrFollowingPolls:
		err = p.qr(ctx, true)
	case PhaseReport:
		err = p.plugged(ctx, ph, p.r.reportFn)
	}
	attrs := []any{"phase", ph, "duration_ms", time.Since(t0).Milliseconds()}
	for k, v := range p.snapshot(ph) {
		attrs = append(attrs, strings.TrimPrefix(k, ph+"."), v-before[k])
	}
	if ph == PhaseSubmit {
		if s := p.submitStop(); s != "" {
			attrs = append(attrs, "stopped", s)
		}
	}
	if err != nil {
		p.log.Error("phase failed", append(attrs, "err", err)...)
		return err
	}
	p.log.Info("phase done", attrs...)
	return nil
}

func (p *pass) snapshot(ph string) map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.counts {
		if strings.HasPrefix(k, ph+".") {
			out[k] = v
		}
	}
	return out
}

func (p *pass) plugged(ctx context.Context, ph string, f PhaseFunc) error {
	if f == nil {
		p.add(ph+".skipped", 1)
		return nil
	}
	if p.r.cfg.DryRun {
		p.log.Info("dry run: would run phase", "phase", ph)
		p.add(ph+".skipped", 1)
		return nil
	}
	counts, err := f(ctx, p.r.now())
	for k, v := range counts {
		p.add(ph+"."+k, v)
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: %w", ph, err)
	}
	return nil
}

// progress logs done/total, rate and ETA at most every ProgressEvery.
type progress struct {
	p         *pass
	phase     string
	total     int
	start     time.Time
	last      time.Time
	mu        sync.Mutex
	done      int
	everyWall time.Duration
}

// workload estimates how many rows a phase will handle, for progress lines:
// the rows its claim finds due now for the pass's credential (submit:
// capped at limit). It is an estimate (rows other runs hold count too); 0
// when the store cannot say.
func (p *pass) workload(ctx context.Context, phase string, limit int) int {
	kind := map[string]repo.DueKind{PhaseSubmit: repo.DueSubmit, PhasePoll: repo.DuePoll, PhaseQR: repo.DueQR}[phase]
	if kind == 0 {
		return 0
	}
	n, err := p.r.store.Due(ctx, kind, p.r.cfg.Credential, p.r.now())
	if err != nil {
		p.log.Debug("phase size unknown", "phase", phase, "err", err)
		return 0
	}
	if limit > 0 && n > limit {
		n = limit
	}
	return n
}

func (p *pass) newProgress(phase string, total int) *progress {
	now := time.Now()
	return &progress{p: p, phase: phase, total: total, start: now, last: now, everyWall: p.r.cfg.ProgressEvery}
}

func (g *progress) tick(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.done += n
	now := time.Now()
	if now.Sub(g.last) < g.everyWall {
		return
	}
	g.last = now
	el := now.Sub(g.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(g.done) / el
	}
	attrs := []any{"phase", g.phase, "done", g.done, "rate_per_s", fmt.Sprintf("%.2f", rate)}
	if g.total > 0 {
		attrs = append(attrs, "total", g.total)
	}
	if rate > 0 && g.total > g.done {
		attrs = append(attrs, "eta_s", int(float64(g.total-g.done)/rate))
	}
	g.p.log.Info("progress", attrs...)
}

// wctx is a context for store writes that must happen even when the pass is
// being cancelled (recording an outcome, releasing a claim). Take it right
// before the write: a deadline taken before an Octane call can run out while
// the call waits for its limiter slot.
func (p *pass) wctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), p.r.cfg.WriteTimeout)
}
