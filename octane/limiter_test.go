package octane_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
)

// drive calls reserveResources from workers goroutines until d has passed and
// returns how many calls succeeded.
func drive(c *octane.Client, workers int, d time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	ok := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := c.ReserveResources(ctx, 1); err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return ok
}

func count233(e *env) int {
	n := 0
	for _, l := range e.ledger(octane.MethodReserveResources) {
		if l.Code == octane.FaultCodeRateLimited {
			n++
		}
	}
	return n
}

func TestLimiterKeepsTheSimulatorUnderItsLimits(t *testing.T) {
	t.Parallel()
	const minute, hour = 150 * time.Millisecond, 600 * time.Millisecond
	limits := map[string]octane.Limit{octane.MethodReserveResources: {PerMinute: 5, PerHour: 12}}
	cfg := octanetest.Config{MinuteWindow: minute, HourWindow: hour, Limits: limits}
	tests := []struct {
		name    string
		opts    []octane.Option
		limited bool
	}{
		{"limiter on", []octane.Option{octane.WithLimits(limits)}, true},
		// The control: without the limiter the same drive does hit 233, so
		// the assertion above can fail.
		{"limiter off", []octane.Option{octane.WithLimits(map[string]octane.Limit{})}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, cfg, append(tt.opts, octane.WithWindows(minute, hour))...)
			ok := drive(e.client, 4, 2*hour)
			faults := count233(e)
			if tt.limited {
				if faults != 0 {
					t.Fatalf("%d faults 233 with the limiter on", faults)
				}
				// Two compressed hours allow 24 calls; the padded trailing
				// windows must still reach most of them.
				if ok < 20 {
					t.Errorf("%d calls in two hours, want >= 20 of 24", ok)
				}
				e.checkWire(t, false)
			} else if faults == 0 {
				t.Fatalf("no fault 233 without the limiter: the simulator does not enforce limits, the test proves nothing")
			}
		})
	}
}

func TestLimiterSeededFromEarlierCalls(t *testing.T) {
	t.Parallel()
	const minute = 300 * time.Millisecond
	now := time.Now()
	seed := map[string][]time.Time{octane.MethodReserveResources: {now, now, now, now, now}}
	e := newEnv(t, octanetest.Config{},
		octane.WithLimits(map[string]octane.Limit{octane.MethodReserveResources: {PerMinute: 5}}),
		octane.WithWindows(minute, 10*minute), octane.WithSeed(seed))
	if _, err := e.client.ReserveResources(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	evs := e.callEvents()
	if len(evs) != 1 || evs[0].SentAt.Before(now.Add(minute)) || evs[0].Waited == 0 {
		t.Fatalf("events %+v: the first call must wait for the seeded window", evs)
	}
}

// BenchmarkReserveLimiter drives reserveResources as fast as the limiter
// allows against the simulator for two compressed hours (minute 600 ms, hour
// 6 s, the documented 50/min and 500/h) and reports the fraction of the
// tightest limit reached and the faults 233 the simulator answered.
//
//	go test -run '^$' -bench BenchmarkReserveLimiter -benchtime 1x ./octane/
func BenchmarkReserveLimiter(b *testing.B) {
	const (
		minute = 600 * time.Millisecond
		hour   = 6 * time.Second
		span   = 2 * hour
	)
	lim := octane.DefaultLimits()[octane.MethodReserveResources]
	rate := min(float64(lim.PerMinute)/minute.Seconds(), float64(lim.PerHour)/hour.Seconds()) // calls/s
	var frac, faults float64
	for range b.N {
		sim := octanetest.New(octanetest.Config{MinuteWindow: minute, HourWindow: hour, MSNs: 20000})
		srv := httptestServer(sim)
		c, err := octane.New(srv.URL+"/tiab", srv.URL+"/tiab/api", octanetest.DefaultUsername, octanetest.DefaultPassword,
			octane.WithWindows(minute, hour))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		ok := drive(c, 4, span)
		elapsed := time.Since(start)
		srv.Close()
		n := 0
		for _, l := range sim.Ledger() {
			if l.Code == octane.FaultCodeRateLimited {
				n++
			}
		}
		frac = float64(ok) / (rate * elapsed.Seconds())
		faults = float64(n)
	}
	b.ReportMetric(frac, "limit_fraction")
	b.ReportMetric(faults, "faults_233")
}

func httptestServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }
