package octane

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeNow is a settable clock for the window arithmetic.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeNow) Add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

func TestLimiterWindows(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		limit    Limit
		seed     []time.Duration // calls completed at t0+d
		pending  int
		at       time.Duration
		wantOK   bool
		wantWait time.Duration // when !wantOK; 0 means "until a call completes"
	}{
		{name: "empty", limit: Limit{PerMinute: 2, PerHour: 10}, at: 0, wantOK: true},
		{name: "minute full", limit: Limit{PerMinute: 2, PerHour: 10}, seed: []time.Duration{0, 10 * time.Second}, at: 20 * time.Second,
			wantWait: 41 * time.Second}, // oldest leaves at 0+60s+1s pad
		{name: "minute frees after window plus pad", limit: Limit{PerMinute: 2, PerHour: 10}, seed: []time.Duration{0, 10 * time.Second},
			at: 61*time.Second + time.Millisecond, wantOK: true},
		{name: "exactly at window end still counts (pad)", limit: Limit{PerMinute: 2}, seed: []time.Duration{0, 10 * time.Second},
			at: 60 * time.Second, wantWait: time.Second},
		{name: "hour full though minute is free", limit: Limit{PerMinute: 2, PerHour: 3},
			seed: []time.Duration{0, 5 * time.Minute, 10 * time.Minute}, at: 30 * time.Minute, wantWait: 30*time.Minute + time.Second},
		{name: "in-flight calls hold slots", limit: Limit{PerMinute: 2}, pending: 2, at: 0, wantWait: 0},
		{name: "in-flight and completed", limit: Limit{PerMinute: 2}, pending: 1, seed: []time.Duration{0}, at: 30 * time.Second,
			wantWait: 31 * time.Second},
		{name: "unlimited", limit: Limit{}, seed: []time.Duration{0, 0, 0}, pending: 3, at: 0, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeNow{t: t0}
			l := NewLimiter(LimiterConfig{Limits: map[string]Limit{"m": tt.limit}, Now: clk.Now})
			var seed []time.Time
			for _, d := range tt.seed {
				seed = append(seed, t0.Add(d))
			}
			l.Seed("m", "u", seed)
			key := limiterKey{"m", "u"}
			l.window(key).pending = tt.pending
			wait, ok := l.reserve(key, t0.Add(tt.at))
			if ok != tt.wantOK || (!ok && wait != tt.wantWait) {
				t.Fatalf("reserve = (%v, %v), want (%v, %v)", wait, ok, tt.wantWait, tt.wantOK)
			}
		})
	}
}

func TestLimiterIsPerMethodAndCredential(t *testing.T) {
	l := NewLimiter(LimiterConfig{Limits: map[string]Limit{"a": {PerMinute: 1}, "b": {PerMinute: 1}}})
	ctx := context.Background()
	for _, k := range []limiterKey{{"a", "u1"}, {"a", "u2"}, {"b", "u1"}} {
		s, waited, err := l.Wait(ctx, k.method, k.credential)
		if err != nil || waited > 50*time.Millisecond {
			t.Fatalf("%v: err %v waited %v: keys must not share a budget", k, err, waited)
		}
		s.Done(time.Now())
	}
}

func TestLimiterWaitsAndHonoursContext(t *testing.T) {
	l := NewLimiter(LimiterConfig{Limits: map[string]Limit{"m": {PerMinute: 2}}, Minute: 120 * time.Millisecond, Pad: -1})
	ctx := context.Background()
	start := time.Now()
	for range 2 {
		s, _, err := l.Wait(ctx, "m", "u")
		if err != nil {
			t.Fatal(err)
		}
		s.Done(time.Now())
	}
	s, waited, err := l.Wait(ctx, "m", "u")
	if err != nil {
		t.Fatal(err)
	}
	s.Release()
	if el := time.Since(start); el < 120*time.Millisecond || waited < 100*time.Millisecond {
		t.Fatalf("third call after %v (waited %v), want >= one window", el, waited)
	}

	// Window full again (two completed just now): a context that ends
	// first stops the wait with its error.
	l2 := NewLimiter(LimiterConfig{Limits: map[string]Limit{"m": {PerMinute: 1}}, Minute: time.Hour})
	s, _, err = l2.Wait(ctx, "m", "u")
	if err != nil {
		t.Fatal(err)
	}
	s.Done(time.Now())
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, _, err := l2.Wait(cctx, "m", "u"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

func TestLimiterReleaseAndBlock(t *testing.T) {
	l := NewLimiter(LimiterConfig{Limits: map[string]Limit{"m": {PerMinute: 1}}, Minute: time.Hour})
	ctx := context.Background()
	s, _, err := l.Wait(ctx, "m", "u")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		s2, _, err := l.Wait(ctx, "m", "u")
		if err == nil {
			s2.Release()
		}
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	s.Release() // never sent: the slot comes back at once
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waiter: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a released slot did not wake the waiter")
	}

	l.BlockFor("m", "u", 80*time.Millisecond)
	start := time.Now()
	s3, _, err := l.Wait(ctx, "m", "u")
	if err != nil {
		t.Fatal(err)
	}
	s3.Release()
	if el := time.Since(start); el < 75*time.Millisecond {
		t.Fatalf("blocked method granted after %v", el)
	}
}
