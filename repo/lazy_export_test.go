package repo

import (
	"context"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// CommitModes returns synchronous_commit as a session of the ordinary pool
// and one of the lazy pool see it.
func (s *Store) CommitModes(ctx context.Context) (ordinary, lazy string, err error) {
	if err = s.db.GetContext(ctx, &ordinary, `SHOW synchronous_commit`); err != nil {
		return "", "", err
	}
	err = s.lazyPool().GetContext(ctx, &lazy, `SHOW synchronous_commit`)
	return ordinary, lazy, err
}

// FinishesLazily reports whether completing cs in one statement goes to the
// lazy pool.
func (s *Store) FinishesLazily(cs ...Call) bool {
	return s.lazy != nil && s.finishPool(cs...) == s.lazy
}

// ClaimPendingPlan is the plan PostgreSQL makes for ClaimPending's
// statement, planned as a claim plans it, without running it.
func (s *Store) ClaimPendingPlan(ctx context.Context, now time.Time, runID int64, credential string, limit int, lease time.Duration) (string, error) {
	query, args := s.pickUpdate("activations", `claim_token = ?, claim_until = ?, run_id = ?, updated_at = ?, credential = ?`,
		[]any{"plan", s.t(now.Add(lease)), runID, s.t(now), credential},
		pendingDue, []any{s.t(now), s.t(now), credential}, `next_attempt_at, id`, limit, activationCols)
	var plan []string
	err := s.claimTx(ctx, func(tx *sqlx.Tx) error {
		return tx.SelectContext(ctx, &plan, `EXPLAIN `+query, args...)
	})
	return strings.Join(plan, "\n"), err
}
