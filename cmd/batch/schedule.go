package main

import (
	"context"
	"errors"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
)

// stopGrace is how long `batch schedule` waits for running firings after
// SIGTERM (an in-flight orderCreate gets 30 s to finish).
const stopGrace = 45 * time.Second

// cmdSchedule is `batch schedule`: the phases on their cron schedules (UTC)
// until SIGTERM. Schedules come from SCHEDULE_<PHASE>; an invalid one exits 2.
func cmdSchedule(ctx context.Context, args []string, e env) error {
	fs := newFlags(e, "schedule", "schedule",
		"Runs the phases on their cron schedules (SCHEDULE_*, UTC, 5 fields) until SIGTERM.")
	if err := fs.parseNone(args); err != nil {
		return err
	}
	cfg, err := loadConfig(ctx, e.lookup)
	if err != nil {
		return err
	}
	if err := jobs.ValidateSchedules(cfg.schedules()); err != nil {
		return badConfig("%w", err)
	}
	if err := cfg.requireOctane(); err != nil {
		return err
	}
	log := newLogger(cfg, e.stderr)
	log.Info("batch schedule", "config", cfg, "schedules", cfg.schedules())
	w, err := wire(ctx, cfg, log, false, nil)
	if err != nil {
		return err
	}
	defer w.store.Close()
	sm, err := startScheduleMetrics(cfg, log, w)
	if err != nil {
		return err
	}
	defer sm.close()
	s, err := jobs.NewScheduler(cfg.schedules(), cfg.RunDeadline, stopGrace, log, func(ctx context.Context, phase string) {
		start := time.Now()
		res, err := w.runner.Pass(ctx, []string{phase})
		sm.observe(ctx, phase, start, res, err)
		switch {
		case res.Skipped:
		case errors.Is(err, jobs.ErrStopped):
			log.Error("pass stopped", "phase", phase, "err", err)
		case err != nil:
			log.Warn("pass ended early", "phase", phase, "err", err)
		}
	})
	if err != nil {
		return badConfig("%w", err)
	}
	return s.Run(ctx)
}
