package repo_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// The database's clock corrects a local clock that is 10 minutes fast: the
// offset is measured as -10 minutes, Now is the true time plus the shift.
func TestDBClockCorrectsALocalClock(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		fast := func() time.Time { return time.Now().Add(10 * time.Minute) }
		c := repo.NewDBClock(s, fast, 21*time.Minute)
		if at, _ := c.LastSync(); !at.IsZero() {
			t.Fatalf("synced at %s before Sync", at)
		}
		if d := c.Now().Sub(time.Now()); d < 31*time.Minute-time.Second {
			t.Fatalf("before Sync Now is local + shift: %v ahead, want 31m", d)
		}
		must(t, c.Sync(context.Background()))
		near := func(what string, d, want time.Duration) {
			t.Helper()
			if diff := d - want; diff > 100*time.Millisecond || diff < -100*time.Millisecond {
				t.Errorf("%s = %v, want %v", what, d, want)
			}
		}
		near("offset", c.Offset(), -10*time.Minute)
		near("Now - true time", c.Now().Sub(time.Now()), 21*time.Minute)
		near("Wall - true time", c.Wall().Sub(time.Now()), 0)
		if at, rtt := c.LastSync(); at.IsZero() || rtt < 0 || rtt > 5*time.Second {
			t.Errorf("LastSync = %s, %v", at, rtt)
		}
		if c.Now().Location() != time.UTC {
			t.Errorf("Now in %v, want UTC", c.Now().Location())
		}
	})
}

// The offset is read at the middle of the round trip with the shortest
// round trip of the samples: a local clock that jumps between readings
// (round trips of 4 s, 2 s and 3 s) gives the second sample's midpoint.
func TestDBClockTakesTheMidpointOfTheShortestRoundTrip(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		var mu sync.Mutex
		jumps := []time.Duration{0, 4 * time.Second, 10 * time.Second, 12 * time.Second, 20 * time.Second, 23 * time.Second, 30 * time.Second}
		local := func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			d := jumps[0]
			if len(jumps) > 1 {
				jumps = jumps[1:]
			}
			return time.Now().Add(d)
		}
		c := repo.NewDBClock(s, local, 0)
		must(t, c.Sync(context.Background()))
		// Second sample: sent at +10 s, answered at +12 s, so the database
		// read its clock at +11 s on the local clock.
		if off := c.Offset(); off < -11*time.Second-100*time.Millisecond || off > -11*time.Second+100*time.Millisecond {
			t.Fatalf("offset = %v, want -11s", off)
		}
		if _, rtt := c.LastSync(); rtt < 2*time.Second || rtt > 2*time.Second+100*time.Millisecond {
			t.Fatalf("rtt = %v, want the 2s sample", rtt)
		}
	})
}
