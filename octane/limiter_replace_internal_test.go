package octane

import (
	"context"
	"testing"
	"time"
)

// Replace swaps the credential's history for the call log's view, which
// already holds this process's calls: nothing is counted twice, a method the
// log no longer shows is emptied, calls in flight keep their slots, blocks
// stay, and other credentials are untouched.
func TestLimiterReplaceSwapsHistory(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)
	clk := &fakeNow{t: t0}
	l := NewLimiter(LimiterConfig{Limits: map[string]Limit{"a": {PerMinute: 3}, "b": {PerMinute: 3}}, Now: clk.Now})
	l.Seed("a", "u", []time.Time{t0, t0, t0})
	l.Seed("b", "u", []time.Time{t0, t0, t0})
	l.Seed("a", "other", []time.Time{t0, t0, t0})
	l.window(limiterKey{"a", "u"}).pending = 1
	l.BlockFor("b", "u", 10*time.Second)

	// The log holds the same three calls of a (its view, not more) and none
	// of b; out of order on purpose.
	l.Replace("u", map[string][]time.Time{"a": {t0.Add(2 * time.Second), t0, t0.Add(time.Second)}})

	wa := l.window(limiterKey{"a", "u"})
	if len(wa.times) != 3 || !wa.times[0].Equal(t0) || !wa.times[2].Equal(t0.Add(2*time.Second)) {
		t.Fatalf("a history %v, want the log's 3 calls ascending (replaced, not added)", wa.times)
	}
	if wa.pending != 1 {
		t.Fatalf("pending = %d, want the call in flight kept", wa.pending)
	}
	if wb := l.window(limiterKey{"b", "u"}); len(wb.times) != 0 || !wb.blockedUntil.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("b: history %v, block %s; want emptied and still blocked", wb.times, wb.blockedUntil)
	}
	if wo := l.window(limiterKey{"a", "other"}); len(wo.times) != 3 {
		t.Fatalf("another credential's history changed: %v", wo.times)
	}
	// 3 logged + 1 in flight on a 3/min limit: two logged calls must leave,
	// the second at t0+1s+61s.
	if wait, ok := l.reserve(limiterKey{"a", "u"}, t0.Add(30*time.Second)); ok || wait != 32*time.Second {
		t.Fatalf("reserve = (%v, %v), want to wait 32s", wait, ok)
	}
}

// A waiter sleeping on the old history wakes when Replace frees its slot.
func TestLimiterReplaceWakesWaiters(t *testing.T) {
	l := NewLimiter(LimiterConfig{Limits: map[string]Limit{"m": {PerMinute: 1}}, Minute: time.Hour})
	l.Seed("m", "u", []time.Time{time.Now()})
	done := make(chan error, 1)
	go func() {
		s, _, err := l.Wait(context.Background(), "m", "u")
		if err == nil {
			s.Release()
		}
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	l.Replace("u", nil)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the waiter did not see the replaced history")
	}
}
