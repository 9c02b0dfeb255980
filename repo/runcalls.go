package repo

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// RunCalls counts the Octane calls run runID made, by method and outcome,
// with the rate-limit wait they spent: the call log the Octane client's call
// hook wrote during the run (README "Metrics and alerts"). A call still in
// flight counts under outcome CallInflight. Rows come ordered by method then
// outcome; none for a run that made no call. Errors: the database's, wrapped.
func (s *Store) RunCalls(ctx context.Context, runID int64) ([]MethodCalls, error) {
	var rows []struct {
		Method  string `db:"method"`
		Outcome string `db:"outcome"`
		Count   int    `db:"n"`
		Waited  int64  `db:"waited"`
	}
	err := s.db.SelectContext(ctx, &rows, s.q(`SELECT method, outcome, COUNT(*) AS n, COALESCE(SUM(waited_ns), 0) AS waited
FROM calls WHERE run_id = ? GROUP BY method, outcome`), runID)
	if err != nil {
		return nil, fmt.Errorf("repo: calls of run %d: %w", runID, err)
	}
	out := make([]MethodCalls, 0, len(rows))
	for _, r := range rows {
		out = append(out, MethodCalls{Method: r.Method, Outcome: r.Outcome, Count: r.Count, Waited: time.Duration(r.Waited)})
	}
	slices.SortFunc(out, func(a, b MethodCalls) int {
		if c := strings.Compare(a.Method, b.Method); c != 0 {
			return c
		}
		return strings.Compare(a.Outcome, b.Outcome)
	})
	return out, nil
}
