package jobs_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
)

// panickyOctane is the real client whose OrderCreate panics on its first
// call, as a bug in a worker would.
type panickyOctane struct {
	*octane.Client
	calls atomic.Int32
}

func (p *panickyOctane) OrderCreate(ctx context.Context, req octane.OrderRequest) (string, error) {
	if p.calls.Add(1) == 1 {
		panic("bug in orderCreate")
	}
	return p.Client.OrderCreate(ctx, req)
}

// A panic in a phase, or in one of its worker goroutines (which no
// cron.Recover can catch: it would kill the process), is recovered by the
// pass: the pass stops with ErrStopped wrapping ErrPanic, the run is
// recorded as failed, the run lock is released, and the next pass runs.
func TestPanicInAPhaseIsRecordedAndReleasesTheLock(t *testing.T) {
	for _, tc := range []struct {
		name   string
		phases []string
		setup  func(h *harness, c *octane.Client) (jobs.Octane, []jobs.Option)
	}{
		{"in a submit worker", []string{jobs.PhaseSubmit},
			func(h *harness, c *octane.Client) (jobs.Octane, []jobs.Option) {
				return &panickyOctane{Client: c}, nil
			}},
		{"in the report phase", []string{jobs.PhaseReport},
			func(h *harness, c *octane.Client) (jobs.Octane, []jobs.Option) {
				return c, []jobs.Option{jobs.WithReport(func(context.Context, time.Time) (map[string]int, error) {
					panic("bug in the report phase")
				})}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, octanetest.Faults{})
			h.load(3)
			h.config.Workers = 1
			client, opts := tc.setup(h, h.client("secret"))
			r := jobs.NewRunner(h.store, client, h.config, append(opts, jobs.WithClock(h.clock.Now))...)
			res, err := r.Pass(context.Background(), tc.phases)
			if !errors.Is(err, jobs.ErrStopped) || !errors.Is(err, jobs.ErrPanic) {
				t.Fatalf("Pass = %v, want ErrStopped wrapping ErrPanic", err)
			}
			runs, err := h.store.Runs(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) != 1 || runs[0].ID != res.RunID || runs[0].FinishedAt == nil || runs[0].Outcome != "failed" ||
				!strings.Contains(runs[0].Error, "panic") {
				t.Fatalf("run record = %+v, want finished, outcome failed, error naming the panic", runs)
			}
			// The lock was released: the next pass is not skipped.
			res2, err := r.Pass(context.Background(), []string{jobs.PhasePoll})
			if err != nil || res2.Skipped {
				t.Fatalf("next pass = %+v, %v; want it to run", res2, err)
			}
		})
	}
}
