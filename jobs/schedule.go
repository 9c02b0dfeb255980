package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// DefaultSchedules are the 5-field UTC cron specs per phase used when the
// environment sets none. They are staggered, so no two phases fire in the
// same minute: submit at :00, :10 ...; import at :01, :16, :31, :46; poll at
// :02, :07 ...; qr at :04, :09 ...; report at :05; release at :18. (Phases
// that do fire together run side by side anyway.)
var DefaultSchedules = map[string]string{
	PhaseImport:  "1-59/15 * * * *",
	PhaseRelease: "18 * * * *",
	PhaseSubmit:  "*/10 * * * *",
	PhasePoll:    "2-59/5 * * * *",
	PhaseQR:      "4-59/5 * * * *",
	PhaseReport:  "5 * * * *",
}

// ValidateSchedules parses every spec with cron.ParseStandard (5 fields, or
// a descriptor such as @hourly; no TZ= or CRON_TZ= prefix: UTC only) and
// returns an error naming the first bad phase or spec. It never panics.
func ValidateSchedules(specs map[string]string) error {
	names := make([]string, 0, len(specs))
	for ph := range specs {
		names = append(names, ph)
	}
	sort.Strings(names)
	for _, ph := range names {
		if _, err := ParsePhases(ph); err != nil {
			return err
		}
		if err := parseSpec(specs[ph]); err != nil {
			return fmt.Errorf("schedule for %s %q: %w", ph, specs[ph], err)
		}
	}
	return nil
}

// parseSpec checks one spec with cron.ParseStandard. A TZ= or CRON_TZ=
// prefix is refused: schedules are UTC only, and v3.0.1 panics on some of
// them ("TZ=0", robfig/cron #554); any other panic of the parser becomes an
// error too, since the spec comes from the environment.
func parseSpec(spec string) (err error) {
	if t := strings.TrimSpace(spec); strings.HasPrefix(t, "TZ=") || strings.HasPrefix(t, "CRON_TZ=") {
		return errors.New("time zone prefixes are not supported: schedules are UTC")
	}
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("unparsable: %v", v)
		}
	}()
	_, err = cron.ParseStandard(spec)
	return err
}

// cronLogger adapts slog to cron.Logger: cron's chatty Info goes to Debug,
// except skips, which an operator wants to see.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) {
	if msg == "delay" {
		l.log.Info("cron: firing waited for the same phase's previous one", kv...)
		return
	}
	l.log.Debug("cron: "+msg, kv...)
}

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "err", err)...)
}

// Scheduler fires passes of single phases on cron schedules (UTC).
type Scheduler struct {
	c      *cron.Cron
	log    *slog.Logger
	root   context.Context
	cancel context.CancelFunc
	grace  time.Duration
}

// NewScheduler builds a scheduler that calls fire(ctx, phase) for each phase
// on its spec; each firing gets a context from the scheduler's root, bounded
// by deadline (0: none). Specs are validated (ValidateSchedules). Firings
// of different phases run side by side (a Runner's passes share its run
// lock); a firing that finds its own phase's previous firing still running
// waits for it and then runs: no firing is dropped. A panic in a firing is
// recovered and logged, and later firings still run.
func NewScheduler(specs map[string]string, deadline, grace time.Duration, log *slog.Logger,
	fire func(ctx context.Context, phase string)) (*Scheduler, error) {
	if err := ValidateSchedules(specs); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl := cronLogger{log}
	// DelayIfStillRunning, per entry: a firing waits only for its own
	// phase. It unlocks in a defer, and Recover inside it keeps a panic
	// from reaching cron.
	c := cron.New(cron.WithLocation(time.UTC), cron.WithLogger(cl),
		cron.WithChain(cron.DelayIfStillRunning(cl), cron.Recover(cl)))
	root, cancel := context.WithCancel(context.Background())
	s := &Scheduler{c: c, log: log, root: root, cancel: cancel, grace: grace}
	for ph, spec := range specs {
		_, err := c.AddFunc(spec, func() {
			if root.Err() != nil {
				return
			}
			ctx := root
			if deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(root, deadline)
				defer cancel()
			}
			fire(ctx, ph)
		})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("schedule %s: %w", ph, err)
		}
	}
	return s, nil
}

// Run starts the schedule and blocks until ctx ends; then it cancels running
// firings and waits for them up to the grace period (never longer: a firing
// that ignores its context is left behind). It returns nil when every
// firing ended in time, or an error when the grace period ran out.
func (s *Scheduler) Run(ctx context.Context) error {
	s.c.Start()
	s.log.Info("schedule started", "entries", len(s.c.Entries()))
	<-ctx.Done()
	s.cancel()
	stopped := s.c.Stop()
	t := time.NewTimer(s.grace)
	defer t.Stop()
	select {
	case <-stopped.Done():
		s.log.Info("schedule stopped")
		return nil
	case <-t.C:
		return fmt.Errorf("schedule: running firings did not stop within %s", s.grace)
	}
}
