package repo

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// LeaseTTL is how long a SQLite run lock outlives its holder: the holder
// renews it every LeaseTTL/4 in the background (and at every Check), so a
// live run keeps it however long it takes, and a killed one blocks the next
// run for at most LeaseTTL.
const LeaseTTL = 2 * time.Minute

// RunLock is held by the one active runner of a key (an Octane credential).
// On PostgreSQL it is a session advisory lock on a pinned connection (it dies
// with the connection, so a dead pod never blocks); on SQLite a lease row in
// run_locks that a heartbeat and Check renew. The lease uses the wall clock:
// it guards processes, not business time.
type RunLock struct {
	s    *Store
	name string
	key  int64
	conn *sql.Conn // PostgreSQL
	// connMu serializes statements on conn: passes sharing the lock check
	// it concurrently, and lib/pq interleaves the protocol otherwise.
	connMu sync.Mutex
	pid    int // PostgreSQL: the backend that holds the advisory lock

	holder  string        // SQLite
	ttl     time.Duration // SQLite
	stop    chan struct{} // SQLite: ends the heartbeat
	stopped chan struct{} // SQLite: closed when the heartbeat ended

	mu   sync.Mutex // SQLite: renewals, lost and done
	lost error      // SQLite: the heartbeat found the lease gone
	done bool       // released
}

// AcquireRunLock takes the run lock for key without waiting. Errors:
// ErrLocked (wrapped) when another runner holds it; the database's otherwise.
func (s *Store) AcquireRunLock(ctx context.Context, key string) (*RunLock, error) {
	l := &RunLock{s: s, name: key, key: lockKey(key)}
	if s.dialect == DialectPostgres {
		var conn *sql.Conn
		var ok bool
		var err error
		// A pinned connection is not retried by database/sql: a pooled one
		// that a cancelled statement of an earlier pass left broken
		// answers driver.ErrBadConn, which lib/pq returns only before
		// anything was sent, so a fresh connection is tried instead.
		for try := 0; ; try++ {
			conn, err = s.db.Conn(ctx)
			if err != nil {
				return nil, fmt.Errorf("repo: run lock %q: %w", key, cancelled(ctx, err))
			}
			// Never in a CTE or multi-row query: one call, one lock. The
			// backend's pid comes in the same round trip: a second
			// statement was a second place for a cancellation to land.
			err = conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1), pg_backend_pid()`, l.key).Scan(&ok, &l.pid)
			if !errors.Is(err, driver.ErrBadConn) || try == 2 {
				break
			}
			conn.Close()
		}
		if err != nil {
			conn.Close() // a lock the cancelled statement may have taken dies with the session
			return nil, fmt.Errorf("repo: run lock %q: %w", key, cancelled(ctx, err))
		}
		if !ok {
			conn.Close()
			return nil, fmt.Errorf("repo: run lock %q: %w", key, ErrLocked)
		}
		l.conn = conn
		return l, nil
	}
	l.holder = newToken()
	l.ttl = s.leaseTTL
	if l.ttl <= 0 {
		l.ttl = LeaseTTL
	}
	now := time.Now()
	res, err := s.db.ExecContext(ctx, `INSERT INTO run_locks (name, holder, expires_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE run_locks.expires_at < ?`, key, l.holder, s.t(now.Add(l.ttl)), s.t(now))
	if err != nil {
		return nil, fmt.Errorf("repo: run lock %q: %w", key, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, fmt.Errorf("repo: run lock %q: %w", key, ErrLocked)
	}
	l.stop, l.stopped = make(chan struct{}), make(chan struct{})
	go l.heartbeat()
	return l, nil
}

// cancelled returns err wrapping ctx's error when ctx is done, so that a
// statement cancelled with its context reads as a cancellation (lib/pq
// reports one as 57014, or as driver.ErrBadConn when the cancellation marked
// the connection before the statement was sent) and not as a fault.
func cancelled(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}

// heartbeat renews the SQLite lease every ttl/4 until Release, so a phase
// that runs long between two Checks (a limiter waiting out Octane's hourly
// window) never lets the lease lapse under a live run. A lease found gone
// is recorded for the next Check; a failed renewal (database busy) is tried
// again at the next tick.
func (l *RunLock) heartbeat() {
	defer close(l.stopped)
	t := time.NewTicker(l.ttl / 4)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.ttl/4)
			err := l.renew(ctx)
			cancel()
			if errors.Is(err, ErrLocked) {
				return
			}
		}
	}
}

// renew extends the SQLite lease; ErrLocked (recorded in l.lost) when it is
// no longer ours.
func (l *RunLock) renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	if l.done {
		return fmt.Errorf("repo: run lock %q released: %w", l.name, ErrLocked)
	}
	now := time.Now()
	res, err := l.s.db.ExecContext(ctx, `UPDATE run_locks SET expires_at = ? WHERE name = ? AND holder = ? AND expires_at >= ?`,
		l.s.t(now.Add(l.ttl)), l.name, l.holder, l.s.t(now))
	if err != nil {
		return fmt.Errorf("repo: run lock %q: %w", l.name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		l.lost = fmt.Errorf("repo: run lock %q lease lost: %w", l.name, ErrLocked)
		return l.lost
	}
	return nil
}

// Check confirms the lock is still held: it pings the pinned connection
// (PostgreSQL) or renews the lease (SQLite). Call it at phase boundaries and
// stop when it fails. Errors: ErrLocked when the lease was lost; the
// connection's error when the advisory lock's session is gone.
func (l *RunLock) Check(ctx context.Context) error {
	if l.conn == nil {
		return l.renew(ctx)
	}
	l.mu.Lock()
	done := l.done
	l.mu.Unlock()
	if done {
		return fmt.Errorf("repo: run lock %q released: %w", l.name, ErrLocked)
	}
	var held bool
	l.connMu.Lock()
	defer l.connMu.Unlock()
	// The lock is ours if this very session still holds it.
	err := l.conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1)`,
		l.key).Scan(&held)
	if err != nil {
		return fmt.Errorf("repo: run lock %q: %w", l.name, err)
	}
	if !held {
		return fmt.Errorf("repo: run lock %q no longer held: %w", l.name, ErrLocked)
	}
	return nil
}

// Release gives the lock up (and stops the SQLite heartbeat); it works even
// when ctx is cancelled (shutdown) and a second call does nothing. It is
// serialized with Check on the pinned connection.
func (l *RunLock) Release(ctx context.Context) error {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return nil
	}
	l.done = true
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if l.conn != nil {
		l.connMu.Lock()
		defer l.connMu.Unlock()
		_, err := l.conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, l.key)
		if cerr := l.conn.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("repo: release run lock %q: %w", l.name, err)
		}
		return nil
	}
	close(l.stop)
	<-l.stopped
	if _, err := l.s.db.ExecContext(ctx, `DELETE FROM run_locks WHERE name = ? AND holder = ?`, l.name, l.holder); err != nil {
		return fmt.Errorf("repo: release run lock %q: %w", l.name, err)
	}
	return nil
}

// LockGuard identifies a held run lock to statements that must not run once
// it is gone (the intent write before orderCreate). The zero value guards
// nothing.
type LockGuard struct {
	key    int64
	pid    int    // PostgreSQL: the advisory lock's backend
	name   string // SQLite: the lease row
	holder string
}

// Guard returns the guard of this lock, for Store.BeginOrder.
func (l *RunLock) Guard() LockGuard {
	return LockGuard{key: l.key, pid: l.pid, name: l.name, holder: l.holder}
}

// checkGuard fails with ErrLocked when g's lock is no longer held, inside
// the caller's transaction: on PostgreSQL the advisory lock must still be
// granted to the very backend that took it (a new session, even of the same
// process, does not count); on SQLite the lease row must still be ours and
// unexpired.
func (s *Store) checkGuard(ctx context.Context, q sqlx.QueryerContext, g LockGuard) error {
	if g == (LockGuard{}) {
		return nil
	}
	var held bool
	var err error
	if s.dialect == DialectPostgres {
		err = sqlx.GetContext(ctx, q, &held, `SELECT EXISTS (SELECT 1 FROM pg_locks
WHERE locktype = 'advisory' AND pid = $2 AND granted
AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1)`,
			g.key, g.pid)
	} else {
		err = sqlx.GetContext(ctx, q, &held, `SELECT EXISTS (SELECT 1 FROM run_locks
WHERE name = ? AND holder = ? AND expires_at >= ?)`, g.name, g.holder, s.t(time.Now()))
	}
	if err != nil {
		return fmt.Errorf("check run lock: %w", err)
	}
	if !held {
		return fmt.Errorf("run lock %q no longer held: %w", g.name, ErrLocked)
	}
	return nil
}

// SessionPID returns the PostgreSQL backend that holds the advisory lock (0
// on SQLite): what an operator looks for in pg_stat_activity, and what a
// test terminates to take the lock's session away.
func (l *RunLock) SessionPID() int { return l.pid }
