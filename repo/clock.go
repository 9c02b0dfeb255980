package repo

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// clockSamples is how many round trips a Sync makes; the shortest one
// measures the offset best.
const clockSamples = 3

// DBClock is the job's clock taken from the database's, so that every stamp
// two processes compare (claims, poll slots, leases, the call log) comes
// from one clock however far apart the machines' clocks are. Sync measures
// the offset between the local clock and the database's; Now is the local
// clock plus that offset plus a fixed shift (BATCH_TIME_OFFSET). It is safe
// for concurrent use.
type DBClock struct {
	s     *Store
	local func() time.Time
	shift time.Duration

	mu     sync.Mutex
	offset time.Duration // database minus local
	rtt    time.Duration // of the sample the offset came from
	synced time.Time     // local time of the last Sync, zero before
}

// NewDBClock returns a clock over the store's database. local is the
// machine's clock (time.Now when nil); shift moves the business clock Now
// returns (not Wall). Until the first Sync the offset is zero.
func NewDBClock(s *Store, local func() time.Time, shift time.Duration) *DBClock {
	if local == nil {
		local = time.Now
	}
	return &DBClock{s: s, local: local, shift: shift}
}

// Sync measures the offset to the database's clock: PostgreSQL's now(); on
// SQLite, whose clock is the machine's, strftime('now'), which still
// corrects a local clock that is not the machine's. Each sample takes the
// midpoint of the round trip as the moment the database read its clock; the
// sample with the shortest round trip wins. Errors: the database's, wrapped;
// the offset measured before is kept.
func (c *DBClock) Sync(ctx context.Context) error {
	var best, bestRTT time.Duration
	for i := range clockSamples {
		t0 := c.local()
		db, err := c.s.dbNow(ctx)
		t1 := c.local()
		if err != nil {
			return fmt.Errorf("repo: database clock: %w", err)
		}
		rtt := t1.Sub(t0)
		if i == 0 || rtt < bestRTT {
			best, bestRTT = db.Sub(t0.Add(rtt/2)), rtt
		}
	}
	c.mu.Lock()
	c.offset, c.rtt, c.synced = best, bestRTT, c.local()
	c.mu.Unlock()
	return nil
}

// dbNow reads the database's clock.
func (s *Store) dbNow(ctx context.Context) (time.Time, error) {
	if s.dialect == DialectPostgres {
		var t time.Time
		// In autocommit now() is the start of this statement.
		if err := s.db.QueryRowContext(ctx, `SELECT now()`).Scan(&t); err != nil {
			return time.Time{}, err
		}
		return t.UTC(), nil
	}
	var v any
	if err := s.db.QueryRowContext(ctx, `SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')`).Scan(&v); err != nil {
		return time.Time{}, err
	}
	var t time.Time
	switch x := v.(type) {
	case time.Time: // the driver parses time-like text (_texttotime)
		t = x.UTC()
	case string:
		p, err := time.Parse("2006-01-02 15:04:05.999", x)
		if err != nil {
			return time.Time{}, fmt.Errorf("parse strftime('now'): %w", err)
		}
		t = p
	default:
		return time.Time{}, fmt.Errorf("strftime('now') returned %T", v)
	}
	return t.Add(500 * time.Microsecond), nil // strftime truncates: the middle of its millisecond
}

// Now is the business clock: the database's time (local plus the measured
// offset) plus the shift, in UTC. It is what the jobs take as their clock.
func (c *DBClock) Now() time.Time { return c.Wall().Add(c.shift) }

// Wall is the database's time without the shift, in UTC: what Octane's
// windows and the call log run on.
func (c *DBClock) Wall() time.Time { return c.local().Add(c.Offset()).UTC() }

// Offset is the database's clock minus the local one, as last measured.
func (c *DBClock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// LastSync returns the local time of the last successful Sync (zero before
// the first) and the round trip its offset was measured over.
func (c *DBClock) LastSync() (at time.Time, rtt time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.synced, c.rtt
}
