package octane_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
)

// phaseLog records every hook event with how many calls the simulator had
// answered at that moment.
type phaseLog struct {
	mu     sync.Mutex
	sim    *octanetest.Server
	events []octane.CallEvent
	seen   []int // len(sim.Ledger()) when the event came
}

func (p *phaseLog) hook(_ context.Context, ev octane.CallEvent) {
	n := len(p.sim.Ledger())
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, ev)
	p.seen = append(p.seen, n)
}

// Every try is reported before its request leaves (the simulator has not
// seen it yet) and again when it ended, with one ID; an accepted order's
// CallDone carries its id; a 233 carries the block it set.
func TestCallHookReportsEachTryBeforeItLeaves(t *testing.T) {
	t.Parallel()
	p := &phaseLog{}
	e := newEnv(t, octanetest.Config{Customers: []int64{9}, MinuteWindow: 200 * time.Millisecond},
		octane.WithWindows(200*time.Millisecond, 10*time.Second), octane.WithCallHook(p.hook))
	p.sim = e.sim
	e.sim.FailNext(octane.MethodReserveResources, octanetest.FaultRateLimit, 1)
	ctx := context.Background()
	msn := selected(t, e.client) // reserve (233, then ok), select
	id, err := e.client.OrderCreate(ctx, octane.OrderRequest{CustNo: 9, PlanNo: 1001, MSN: msn, IsEsim: true})
	if err != nil {
		t.Fatal(err)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	wantMethods := []string{octane.MethodReserveResources, octane.MethodReserveResources, octane.MethodSelectResource, octane.MethodOrderCreate}
	if len(p.events) != 2*len(wantMethods) {
		t.Fatalf("%d events, want a CallSending and a CallDone for each of %d tries: %+v", len(p.events), len(wantMethods), p.events)
	}
	for i, m := range wantMethods {
		s, d := p.events[2*i], p.events[2*i+1]
		if s.Phase != octane.CallSending || d.Phase != octane.CallDone || s.ID != d.ID || s.ID == 0 || s.Method != m || d.Method != m {
			t.Fatalf("try %d: events %+v then %+v, want %s sending then done with one ID", i, s, d, m)
		}
		if p.seen[2*i] != i || p.seen[2*i+1] != i+1 {
			t.Errorf("try %d (%s): the simulator had %d calls when it was announced and %d when it ended, want %d and %d",
				i, m, p.seen[2*i], p.seen[2*i+1], i, i+1)
		}
		if s.SentAt.IsZero() || d.SentAt.Before(s.SentAt) || !d.Sent {
			t.Errorf("try %d: sending at %s, sent at %s (sent %v)", i, s.SentAt, d.SentAt, d.Sent)
		}
		if i > 0 && p.events[2*i-1].ID == s.ID {
			t.Errorf("try %d reuses the ID of the one before", i)
		}
	}
	limited := p.events[1]
	if limited.Code != octane.FaultCodeRateLimited {
		t.Fatalf("first reserve %+v, want the injected 233", limited)
	}
	if d := limited.BlockedUntil.Sub(limited.SentAt); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("the 233 blocks %v after it was sent, want about the minute window", d)
	}
	if ok := p.events[3]; !ok.BlockedUntil.IsZero() {
		t.Errorf("an ok call carries a block: %+v", ok)
	}
	if got := p.events[7]; got.OrderID != id || got.MSN != msn {
		t.Errorf("orderCreate's CallDone names order %q msn %q, want %q %q", got.OrderID, got.MSN, id, msn)
	}
}

// Reseed replaces the limiter's history (this process's own calls are in the
// call log it came from) and applies blocks that are still ahead.
func TestClientReseed(t *testing.T) {
	t.Parallel()
	const minute = 300 * time.Millisecond
	e := newEnv(t, octanetest.Config{MinuteWindow: minute},
		octane.WithLimits(map[string]octane.Limit{octane.MethodReserveResources: {PerMinute: 1}}),
		octane.WithWindows(minute, 10*minute))
	ctx := context.Background()
	reserve := func() octane.CallEvent {
		t.Helper()
		if _, err := e.client.ReserveResources(ctx, 1); err != nil {
			t.Fatal(err)
		}
		evs := e.callEvents()
		return evs[len(evs)-1]
	}
	now := time.Now()
	e.client.Reseed(map[string][]time.Time{octane.MethodReserveResources: {now}}, nil)
	if ev := reserve(); ev.SentAt.Before(now.Add(minute)) {
		t.Fatalf("sent %v after a seeded call, want a full window", ev.SentAt.Sub(now))
	}
	// The log's view without that call (say it was older): the limiter
	// forgets its own record of it and sends at once.
	e.client.Reseed(nil, nil)
	if ev := reserve(); ev.Waited > minute/3 {
		t.Fatalf("waited %v after a reseed with nothing spent", ev.Waited)
	}
	e.client.Reseed(nil, map[string]time.Time{octane.MethodReserveResources: time.Now().Add(-time.Second)})
	until := time.Now().Add(minute)
	e.client.Reseed(nil, map[string]time.Time{octane.MethodReserveResources: until})
	if ev := reserve(); ev.SentAt.Before(until) {
		t.Fatalf("sent %v before the seeded block ended", until.Sub(ev.SentAt))
	}
	if f := e.ledger(octane.MethodReserveResources); len(f) != 3 || outcomes(f) != "ok,ok,ok" {
		t.Fatalf("ledger %s", outcomes(f))
	}
}
