package repo

import (
	"context"
	"fmt"
	"time"
)

// DueKind names the claim whose due rows Due counts.
type DueKind int

// The claims Due can count for.
const (
	DueSubmit DueKind = iota + 1 // ClaimPending's rows
	DuePoll                      // ClaimPolls' rows
	DueQR                        // ClaimQR's rows
)

// Due counts the rows credential's claim of kind would find due at now,
// claimed or not: the size of a phase, for its progress lines. Each count
// reads only its claim's partial index (and those rows), so it costs what
// the backlog costs, not what the table's history does, unlike Status.
// Errors: the database's, wrapped.
func (s *Store) Due(ctx context.Context, kind DueKind, credential string, now time.Time) (int, error) {
	var where string
	switch kind {
	case DueSubmit:
		where = `state IN ('pending', 'selected') AND next_attempt_at <= ? AND (credential = '' OR credential = ?)`
	case DuePoll:
		where = `state = 'submitted' AND next_poll_at <= ? AND credential = ?`
	case DueQR:
		where = `state = 'completed' AND next_attempt_at <= ? AND credential = ?`
	default:
		return 0, fmt.Errorf("repo: due: unknown kind %d", kind)
	}
	var n int
	if err := s.db.GetContext(ctx, &n, s.q(`SELECT COUNT(*) FROM activations WHERE `+where), s.t(now), credential); err != nil {
		return 0, fmt.Errorf("repo: due: %w", err)
	}
	return n, nil
}

// Waiting counts the activations in each state that is not terminal (of
// every credential), leaving out states with none: what a pass leaves for
// the next. The states are those of the claims' partial indexes, so it
// reads those and not the finished rows of the table's history.
// Errors: the database's, wrapped.
func (s *Store) Waiting(ctx context.Context) (map[State]int, error) {
	var rows []struct {
		State State `db:"state"`
		N     int   `db:"n"`
	}
	err := s.db.SelectContext(ctx, &rows, `SELECT state, COUNT(*) AS n FROM activations
WHERE state IN ('pending', 'selected', 'ordering', 'submitted', 'completed') GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("repo: waiting: %w", err)
	}
	out := map[State]int{}
	for _, r := range rows {
		if r.N > 0 && !r.State.Terminal() {
			out[r.State] = r.N
		}
	}
	return out, nil
}
