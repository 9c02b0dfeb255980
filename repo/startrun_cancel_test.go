package repo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
)

// A pass cancelled while StartRun waits on the database gets an error that
// says so (context.Canceled), not only lib/pq's "canceling statement due to
// user request", so callers tell a shutdown from a database failure.
func TestStartRunCancelledSaysSo(t *testing.T) {
	t.Parallel()
	for _, d := range dialectURLs {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			a, b := openTwo(t, d.url)
			ctx := context.Background()
			// b holds a write on runs, so a's insert waits.
			tx, err := b.DB().BeginTxx(ctx, nil)
			must(t, err)
			defer tx.Rollback()
			_, err = tx.ExecContext(ctx, b.DB().Rebind(`INSERT INTO runs (started_at, credential) VALUES (?, ?)`),
				t0.UTC().Format("2006-01-02 15:04:05.000000"), "holder")
			must(t, err)
			if a.Dialect() == repo.DialectPostgres {
				_, err = tx.ExecContext(ctx, `LOCK TABLE runs IN EXCLUSIVE MODE`)
				must(t, err)
			}
			cctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(100*time.Millisecond, cancel)
			_, err = a.StartRun(cctx, t0, "cred", []string{"poll"}, false)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("StartRun cancelled while waiting: %v, want it to wrap context.Canceled", err)
			}
		})
	}
}
