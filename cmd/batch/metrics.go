package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/metrics"
)

// pushTimeout bounds a push, inside the CronJob's termination grace.
const pushTimeout = 10 * time.Second

// validateMetrics checks PUSHGATEWAY_URL and METRICS_ADDR; the errors never
// quote the URL, which may carry a password.
func (c *config) validateMetrics() []error {
	var errs []error
	if u := c.PushgatewayURL.Reveal(); strings.TrimSpace(u) != "" {
		if _, err := metrics.ParseGateway(u); err != nil {
			errs = append(errs, fmt.Errorf("PUSHGATEWAY_URL: %w", err))
		}
	}
	if a := strings.TrimSpace(c.MetricsAddr); a != "" {
		_, port, err := net.SplitHostPort(a)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			errs = append(errs, fmt.Errorf("METRICS_ADDR: %q is not host:port (such as :9090 or 127.0.0.1:9090)", a))
		}
	}
	return errs
}

// pushRun pushes the pass's metrics when PUSHGATEWAY_URL is set (README
// "Metrics and alerts"): the pass's counts and calls, its duration and
// exit code, the last-success time when it succeeded, and the database
// gauges, grouped by job and credential. A dry run (which leaves no trace)
// and a run that found the lock taken (which did nothing) push nothing. A
// push that fails is logged and changes nothing else: the run's exit code
// stays the pass's, since the rows' work is done and the next run pushes
// again; the missing push shows as a stale push_time_seconds and, after two
// hours, the no-success alert.
func pushRun(ctx context.Context, cfg *config, log *slog.Logger, w *wired, phases []string, dryRun bool,
	start time.Time, res jobs.Result, passErr error) {
	raw := cfg.PushgatewayURL.Reveal()
	if strings.TrimSpace(raw) == "" || dryRun || res.Skipped {
		return
	}
	gw, err := metrics.ParseGateway(raw)
	if err != nil { // validated with the configuration; never quote it
		log.Warn("metrics not pushed: PUSHGATEWAY_URL", "err", err)
		return
	}
	// The pass may have ended on a signal: the push still goes, briefly.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pushTimeout)
	defer cancel()
	m := metrics.New(metrics.Options{Store: w.store, Now: w.now, ReleaseAfter: cfg.ReleaseAfter, Log: log})
	m.ObservePass(passMetrics(ctx, w, log, phases, start, res, passErr))
	if err := m.Push(ctx, gw, cfg.Octane.Username, pushTimeout); err != nil {
		log.Warn("metrics push failed; the run's exit code is unchanged", "err", err)
		return
	}
	log.Debug("metrics pushed", "pushgateway", gw)
}

// passMetrics is what a pass did, for metrics.ObservePass: its counts and,
// from the call log, its run's calls.
func passMetrics(ctx context.Context, w *wired, log *slog.Logger, phases []string, start time.Time,
	res jobs.Result, passErr error) metrics.Pass {
	p := metrics.Pass{Phases: phases, Start: start, End: time.Now(), Failed: passErr != nil, Counts: res.Counts}
	if res.RunID == 0 {
		return p
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pushTimeout)
	defer cancel()
	calls, err := w.store.RunCalls(cctx, res.RunID)
	if err != nil {
		log.Warn("metrics: read the run's calls", "run_id", res.RunID, "err", err)
		return p
	}
	p.Calls = calls
	return p
}

// scheduleMetrics is `batch schedule`'s metrics endpoint (METRICS_ADDR); a
// nil one (METRICS_ADDR unset) does nothing.
type scheduleMetrics struct {
	m   *metrics.Metrics
	srv *metrics.Server
	w   *wired
	log *slog.Logger
}

// startScheduleMetrics serves /metrics and /healthz on METRICS_ADDR, every
// metric labelled with the credential (Prometheus adds the job). Errors:
// the address cannot be bound (exit 1: the port may free up).
func startScheduleMetrics(cfg *config, log *slog.Logger, w *wired) (*scheduleMetrics, error) {
	addr := strings.TrimSpace(cfg.MetricsAddr)
	if addr == "" {
		return nil, nil
	}
	m := metrics.New(metrics.Options{Store: w.store, Now: w.now, ReleaseAfter: cfg.ReleaseAfter, Log: log,
		Labels: map[string]string{"credential": cfg.Octane.Username}})
	srv, err := m.Listen(addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR: %w", err)
	}
	log.Info("metrics server listening", "addr", srv.Addr().String(), "paths", "/metrics /healthz")
	return &scheduleMetrics{m: m, srv: srv, w: w, log: log}, nil
}

// observe records a firing's pass (a pass that found the lock taken did
// nothing and is not recorded).
func (s *scheduleMetrics) observe(ctx context.Context, phase string, start time.Time, res jobs.Result, err error) {
	if s == nil || res.Skipped {
		return
	}
	s.m.ObservePass(passMetrics(ctx, s.w, s.log, []string{phase}, start, res, err))
}

// close stops the server, giving a scrape in progress a few seconds.
func (s *scheduleMetrics) close() {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Close(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("metrics server stop", "err", err)
	}
}
