package repo_test

import (
	"context"
	"testing"

	"github.com/esimbatch/esimbatch/repo/repotest"
)

// A pooled connection that died while idle (its backend ended, as a
// cancelled statement of an earlier pass or a server restart can leave it)
// does not fail the next pass's run lock: a pinned connection is not
// retried by database/sql, so the store tries a fresh one.
func TestRunLockSurvivesADeadPooledConnection(t *testing.T) {
	t.Parallel()
	s := repotest.NewPostgres(t)
	other := repotest.NewPostgres(t)
	ctx := context.Background()
	db := s.DB()
	db.SetMaxIdleConns(1)
	db.SetMaxOpenConns(1)
	var pid int
	must(t, db.GetContext(ctx, &pid, `SELECT pg_backend_pid()`))
	var ended bool
	must(t, other.DB().GetContext(ctx, &ended, `SELECT pg_terminate_backend($1, 5000)`, pid))
	if !ended {
		t.Fatal("backend did not end")
	}
	l, err := s.AcquireRunLock(ctx, "badconn")
	if err != nil {
		t.Fatalf("run lock on a pool whose idle connection died: %v", err)
	}
	must(t, l.Release(ctx))
}
