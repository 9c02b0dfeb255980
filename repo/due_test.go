package repo_test

import (
	"context"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// Due counts what each claim would find due for a credential, and Waiting
// what is not finished, per state: here 5 pending rows, 1 of them backing
// off, 2 submitted with polls due at different times, 1 completed waiting
// for its QR code and 1 failed.
func TestDueAndWaiting(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		runID := seed(t, s, "due", 10)
		for _, msn := range []string{"0410000001", "0410000002", "0410000003"} {
			toSubmitted(t, s, t0, runID, msn)
		}
		// toSubmitted leaves polls due at t0 + 30m; the second's is moved later.
		exec(t, s, `UPDATE activations SET next_poll_at = ? WHERE msn = '0410000002'`, s.DBTime(t0.Add(2*time.Hour)))
		exec(t, s, `UPDATE activations SET state = 'completed', next_attempt_at = ? WHERE msn = '0410000003'`, s.DBTime(t0))
		exec(t, s, `UPDATE activations SET state = 'failed' WHERE sales_ref = 'due-10'`)
		exec(t, s, `UPDATE activations SET next_attempt_at = ? WHERE sales_ref = 'due-9'`, s.DBTime(t0.Add(time.Hour)))
		// The claims of the 3 rows made them cred's; the pending rows are nobody's yet.
		now := t0.Add(31 * time.Minute)
		for _, tc := range []struct {
			kind repo.DueKind
			cred string
			want int
		}{
			{repo.DueSubmit, "cred", 5}, {repo.DueSubmit, "other", 5},
			{repo.DuePoll, "cred", 1}, {repo.DuePoll, "other", 0},
			{repo.DueQR, "cred", 1}, {repo.DueQR, "other", 0},
		} {
			n, err := s.Due(ctx, tc.kind, tc.cred, now)
			must(t, err)
			if n != tc.want {
				t.Errorf("Due(%d, %s) = %d, want %d", tc.kind, tc.cred, n, tc.want)
			}
		}
		w, err := s.Waiting(ctx)
		must(t, err)
		want := map[repo.State]int{repo.StatePending: 6, repo.StateSubmitted: 2, repo.StateCompleted: 1}
		if len(w) != len(want) || w[repo.StatePending] != 6 || w[repo.StateSubmitted] != 2 || w[repo.StateCompleted] != 1 {
			t.Errorf("Waiting = %v, want %v", w, want)
		}
		if _, err := s.Due(ctx, repo.DueKind(99), "cred", now); err == nil {
			t.Error("Due of an unknown kind: no error")
		}
	})
}

// exec runs a statement with ? placeholders on s, failing t on an error.
func exec(t *testing.T, s *repo.Store, query string, args ...any) {
	t.Helper()
	if _, err := s.DB().ExecContext(context.Background(), s.DB().Rebind(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
