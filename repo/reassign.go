package repo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Reassigned is what Reassign did, or would do in a dry run.
type Reassigned struct {
	// Moved counts the rows handed over, by state.
	Moved map[State]int
	// Kept counts the rows left with the old credential that are not
	// finished, by state: they hold a number, an order or a live claim
	// only it can act on.
	Kept map[State]int
}

// movable is the predicate of a row Reassign may hand over: one that holds
// nothing at Octane under its credential (no number assigned, no order
// sent) and that no run is working on. Two ? (the credential, now).
const movable = `credential = ? AND state IN ('pending', 'failed', 'cancelled') AND ` + unclaimed + `
AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.activation_id = activations.id AND r.state = 'assigned')`

// Reassign hands the rows of credential from that hold nothing at Octane to
// credential to, for good (docs/design.md, "Credentials and ownership"): its
// pending rows, and its failed and cancelled ones (so that a `batch retry`
// of them runs under to). A row in selected, ordering, submitted or
// completed stays: its number or order belongs to from, the only user Octane
// lets select, order or unreserve it, so it finishes under from or waits for
// it; a row a run has claimed stays too. Numbers from reserved and holds
// free stay with it as well. Each moved row gets an event with the actor and
// note. dryRun counts without writing. Errors: a bad argument; the
// database's, wrapped.
func (s *Store) Reassign(ctx context.Context, from, to, actor, note string, dryRun bool, now time.Time) (Reassigned, error) {
	res := Reassigned{Moved: map[State]int{}, Kept: map[State]int{}}
	switch {
	case from == "" || to == "":
		return res, errors.New("repo: reassign: both credentials are needed")
	case from == to:
		return res, fmt.Errorf("repo: reassign: %q to itself", from)
	}
	msg := fmt.Sprintf("credential %s -> %s by %s", from, to, actor)
	if note != "" {
		msg += ": " + note
	}
	err := s.InTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.lockReportsShared(ctx, tx); err != nil {
			return err
		}
		var moved []struct {
			ID    int64 `db:"id"`
			State State `db:"state"`
		}
		var err error
		if dryRun {
			err = tx.SelectContext(ctx, &moved, s.q(`SELECT id, state FROM activations WHERE `+movable), from, s.t(now))
		} else {
			err = tx.SelectContext(ctx, &moved, s.q(`UPDATE activations SET credential = ?, updated_at = ? WHERE `+movable+
				` RETURNING id, state`), to, s.t(now), from, s.t(now))
		}
		if err != nil {
			return err
		}
		for _, m := range moved {
			res.Moved[m.State]++
			if dryRun {
				continue
			}
			if err := s.addEvent(ctx, tx, Event{At: now, ActivationID: m.ID, Kind: EventState, Step: StepReassign,
				FromState: m.State, ToState: m.State, Outcome: "reassigned", Message: msg, Actor: actor}); err != nil {
				return err
			}
		}
		var kept []struct {
			State State `db:"state"`
			N     int   `db:"n"`
		}
		if err := tx.SelectContext(ctx, &kept, s.q(`SELECT state, COUNT(*) AS n FROM activations
WHERE credential = ? AND state NOT IN ('qr_ready', 'provisioned') GROUP BY state`), from); err != nil {
			return err
		}
		for _, k := range kept {
			res.Kept[k.State] = k.N
		}
		if dryRun {
			for st, n := range res.Moved { // still counted under from: not moved yet
				if res.Kept[st] -= n; res.Kept[st] <= 0 {
					delete(res.Kept, st)
				}
			}
			return errDryRun
		}
		return nil
	})
	if errors.Is(err, errDryRun) {
		err = nil
	}
	if err != nil {
		return Reassigned{}, fmt.Errorf("repo: reassign %s to %s: %w", from, to, err)
	}
	return res, nil
}

// errDryRun rolls a dry run's transaction back.
var errDryRun = errors.New("dry run")
