package repo

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// openSQLite opens (and migrates) a SQLite store on path with a short lease.
func openSQLite(t *testing.T, path string, ttl time.Duration) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	s.leaseTTL = ttl
	return s
}

// A live SQLite holder keeps its lease however long it goes without a Check
// (a phase waiting out Octane's hourly window): the heartbeat renews it, so a
// second process cannot take the lock. Released, it is free at once.
func TestSQLiteLeaseOutlivesItsTTLWhileHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ttl = 400 * time.Millisecond
	path := filepath.Join(t.TempDir(), "lock.db")
	a := openSQLite(t, path, ttl)
	b := openSQLite(t, path, ttl)

	l, err := a.AcquireRunLock(ctx, "cred")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * ttl) // no Check meanwhile
	if other, err := b.AcquireRunLock(ctx, "cred"); !errors.Is(err, ErrLocked) {
		if other != nil {
			other.Release(ctx)
		}
		t.Fatalf("second process took the lock %s after the first's last Check: %v; want ErrLocked", 3*ttl, err)
	}
	if err := l.Check(ctx); err != nil {
		t.Fatalf("Check of the live holder: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l2, err := b.AcquireRunLock(ctx, "cred")
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A holder whose lease was taken over (it was suspended past the TTL) finds
// out at its next Check.
func TestSQLiteLeaseLostIsReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lock.db")
	a := openSQLite(t, path, time.Hour)
	l, err := a.AcquireRunLock(ctx, "cred")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	// Another process took the lease over after it expired.
	if _, err := a.db.ExecContext(ctx, `UPDATE run_locks SET holder = 'someone-else' WHERE name = 'cred'`); err != nil {
		t.Fatal(err)
	}
	if err := l.Check(ctx); !errors.Is(err, ErrLocked) {
		t.Fatalf("Check after a takeover = %v, want ErrLocked", err)
	}
}
