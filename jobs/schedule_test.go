package jobs

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestValidateSchedules(t *testing.T) {
	tests := []struct {
		name    string
		specs   map[string]string
		wantErr bool
	}{
		{"defaults", DefaultSchedules, false},
		{"five fields", map[string]string{PhaseSubmit: "*/10 * * * *"}, false},
		{"six fields refused", map[string]string{PhaseSubmit: "0 */10 * * * *"}, true},
		{"garbage", map[string]string{PhasePoll: "every ten minutes"}, true},
		{"unknown phase", map[string]string{"launch": "* * * * *"}, true},
		{"descriptor", map[string]string{PhaseReport: "@hourly"}, false},
		{"empty", map[string]string{PhaseQR: ""}, true},
		{"TZ without a schedule (cron #554 panics)", map[string]string{PhaseSubmit: "TZ=0"}, true},
		{"CRON_TZ without a schedule", map[string]string{PhaseSubmit: "CRON_TZ=UTC"}, true},
		{"CRON_TZ overriding UTC", map[string]string{PhasePoll: "CRON_TZ=Australia/Sydney */5 * * * *"}, true},
		{"TZ overriding UTC", map[string]string{PhasePoll: "TZ=UTC */5 * * * *"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateSchedules(tt.specs)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ValidateSchedules(%v) = %v, want error %v", tt.specs, err, tt.wantErr)
			}
		})
	}
}

// A firing that panics must not stop later firings (NOTES 6: with Recover
// outside SkipIfStillRunning, v3.0.1 skips forever after one panic).
func TestSchedulerSurvivesPanic(t *testing.T) {
	var runs atomic.Int32
	s, err := NewScheduler(map[string]string{PhasePoll: "@every 1s"}, 5*time.Second, 2*time.Second, nil,
		func(ctx context.Context, phase string) {
			if runs.Add(1) == 1 {
				panic("first firing blows up")
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.After(10 * time.Second)
	for runs.Load() < 3 {
		select {
		case <-deadline:
			t.Fatalf("only %d firings in 10s after a panic; later firings must still run", runs.Load())
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
}

// Stopping waits for a running firing, which sees its context cancelled.
func TestSchedulerGracefulStop(t *testing.T) {
	started := make(chan struct{}, 1)
	var sawCancel atomic.Bool
	s, err := NewScheduler(map[string]string{PhaseSubmit: "@every 1s"}, time.Minute, 5*time.Second, nil,
		func(ctx context.Context, phase string) {
			select {
			case started <- struct{}{}:
			default:
			}
			<-ctx.Done()
			sawCancel.Store(true)
		})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("no firing within 5s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !sawCancel.Load() {
		t.Fatal("the running firing did not see its context cancelled before Run returned")
	}
}

// A stop (SIGTERM) while a firing ignores its cancelled context returns once
// the grace period is over, with an error, instead of blocking forever on
// cron's Stop().Done().
func TestSchedulerStopIsBoundedByGrace(t *testing.T) {
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	const grace = 300 * time.Millisecond
	s, err := NewScheduler(map[string]string{PhaseSubmit: "@every 1s"}, time.Minute, grace, nil,
		func(ctx context.Context, phase string) {
			select {
			case started <- struct{}{}:
			default:
			}
			<-release // a stuck call that does not watch ctx
		})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("no firing within 5s")
	}
	stop := time.Now()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run = nil although the firing was still running after the grace period")
		}
		if el := time.Since(stop); el < grace || el > grace+2*time.Second {
			t.Fatalf("Run returned after %s, want about the grace period %s", el, grace)
		}
	case <-time.After(grace + 5*time.Second):
		t.Fatal("Run blocked past the grace period")
	}
}

// Every phase firing every second runs every second: a long submit firing
// neither drops nor delays the other phases' firings, and its own next
// firing waits for it instead of being dropped.
func TestSchedulerRunsEveryPhaseEveryFiring(t *testing.T) {
	specs := map[string]string{}
	for _, ph := range AllPhases {
		specs[ph] = "@every 1s"
	}
	var mu sync.Mutex
	runs := map[string]int{}
	s, err := NewScheduler(specs, 0, 5*time.Second, nil, func(ctx context.Context, phase string) {
		mu.Lock()
		runs[phase]++
		mu.Unlock()
		if phase == PhaseSubmit {
			select { // a backlog: longer than the interval
			case <-time.After(2500 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	time.Sleep(5500 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ph := range AllPhases {
		want := 4 // about 5 firings in 5.5 s
		if ph == PhaseSubmit {
			want = 2 // 2.5 s each, firings queued behind it
		}
		if runs[ph] < want {
			t.Errorf("%s ran %d times in 5.5 s, want at least %d (runs %v)", ph, runs[ph], want, runs)
		}
	}
}
