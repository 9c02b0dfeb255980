package repo

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Reservation states.
const (
	ReservationFree     = "free"     // held by a run, not yet given to an activation
	ReservationAssigned = "assigned" // given to ActivationID
	ReservationConsumed = "consumed" // its order was accepted
	ReservationReleased = "released" // unreserved (or lapsed)
)

// Reservation is a number we hold in Octane. On input (SaveReservations)
// only MSN and ReservationID matter.
type Reservation struct {
	ID            int64     `db:"id"`
	MSN           string    `db:"msn"`
	ReservationID string    `db:"reservation_id"`
	RunID         int64     `db:"run_id"`
	ReservedAt    time.Time `db:"reserved_at"`
	State         string    `db:"state"`
	ActivationID  *int64    `db:"activation_id"`
	UpdatedAt     time.Time `db:"updated_at"`
	// Credential is the Octane user name that reserved the number: only it
	// can select, order or unreserve it.
	Credential string `db:"credential"`
}

const reservationColumns = `id, msn, reservation_id, run_id, reserved_at, state, activation_id, updated_at, credential`

func reservationCols(prefix string) string {
	return prefix + "id, " + prefix + "msn, " + prefix + "reservation_id, " + prefix + "run_id, " +
		prefix + "reserved_at, " + prefix + "state, " + prefix + "activation_id, " + prefix + "updated_at, " +
		prefix + "credential"
}

// SaveReservations stores the numbers one reserveResources call by
// credential returned, all free and credential's, reserved_at = sentAt (the
// request's send time), before any is used. Octane reserving a number again
// proves every older hold on it is gone, whichever credential it was:
// a hold that is free or assigned to a failed or cancelled activation (its
// number given back after a rejected order, or never ordered) is marked released and the new reservation
// stored. A number still held for a live activation is left with its holder.
func (s *Store) SaveReservations(ctx context.Context, runID int64, credential string, sentAt time.Time, msns []Reservation) error {
	_, err := s.StoreReservations(ctx, runID, credential, sentAt, msns)
	return err
}

// StoreReservations is SaveReservations returning the reservations it
// stored, free, in the order of msns (a number left with a live holder is
// not among them), so the run can hand them to its rows without reading
// them back.
func (s *Store) StoreReservations(ctx context.Context, runID int64, credential string, sentAt time.Time, msns []Reservation) ([]Reservation, error) {
	if len(msns) == 0 {
		return nil, nil
	}
	// One statement for the older holds and one for the new rows, each MSN
	// once (a number twice in one answer is one reservation).
	seen := make(map[string]bool, len(msns))
	var in strings.Builder
	var values strings.Builder
	inArgs := []any{s.t(sentAt)}
	var valueArgs []any
	for _, r := range msns {
		if seen[r.MSN] {
			continue
		}
		seen[r.MSN] = true
		if len(inArgs) > 1 {
			in.WriteString(", ")
			values.WriteString(", ")
		}
		in.WriteString("?")
		inArgs = append(inArgs, r.MSN)
		values.WriteString("(?, ?, ?, ?, 'free', ?, ?)")
		valueArgs = append(valueArgs, r.MSN, r.ReservationID, runID, s.t(sentAt), s.t(sentAt), credential)
	}
	var stored []Reservation
	err := s.InTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`UPDATE reservations SET state = 'released', updated_at = ?
WHERE msn IN (`+in.String()+`) AND (state = 'free' OR (state = 'assigned'
  AND activation_id IN (SELECT id FROM activations WHERE state IN ('failed', 'cancelled'))))`), inArgs...)
		if err != nil {
			return fmt.Errorf("repo: save reservations: %w", err)
		}
		stored = stored[:0]
		err = tx.SelectContext(ctx, &stored, s.q(`INSERT INTO reservations (msn, reservation_id, run_id, reserved_at, state, updated_at, credential)
VALUES `+values.String()+` ON CONFLICT (msn) WHERE state IN ('free', 'assigned') DO NOTHING
RETURNING `+reservationColumns), valueArgs...)
		if err != nil {
			return fmt.Errorf("repo: save reservations: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Ids grow in insertion order: the order of msns.
	slices.SortFunc(stored, func(a, b Reservation) int { return cmp.Compare(a.ID, b.ID) })
	return stored, nil
}

// TakeReservation assigns one of the run's free numbers (oldest first) held
// by a's credential to the claimed pending activation a and returns it;
// MarkSelected confirms it. Errors: ErrNotFound when the run holds no free
// number of a's credential, ErrLostClaim when a is no longer pending under
// its claim.
//
// A pass does not need it: it keeps the numbers it stored in memory
// (StoreReservations) and MarkSelected assigns the one a row selected.
func (s *Store) TakeReservation(ctx context.Context, runID int64, a *Activation, now time.Time) (Reservation, error) {
	var r Reservation
	if s.dialect == DialectPostgres {
		return s.takeReservationPG(ctx, runID, a, now)
	}
	err := s.InTx(ctx, func(tx *sqlx.Tx) error {
		var owner string
		err := tx.GetContext(ctx, &owner, s.q(`SELECT credential FROM activations WHERE id = ? AND state = 'pending' AND claim_token = ?`),
			a.ID, a.ClaimToken)
		if errors.Is(err, sql.ErrNoRows) || a.ClaimToken == "" {
			return fmt.Errorf("repo: take reservation for activation %d: %w", a.ID, ErrLostClaim)
		}
		if err != nil {
			return fmt.Errorf("repo: take reservation: %w", err)
		}
		query, args := s.pickUpdate("reservations", `state = 'assigned', activation_id = ?, updated_at = ?`,
			[]any{a.ID, s.t(now)}, `run_id = ? AND credential = ? AND state = 'free'`, []any{runID, owner}, `reserved_at, id`, 1, reservationCols)
		if err := tx.GetContext(ctx, &r, query, args...); err != nil {
			return fmt.Errorf("repo: take reservation for activation %d: %w", a.ID, notFound(err))
		}
		return nil
	})
	return r, err
}

// takeReservationPG is TakeReservation in one PostgreSQL statement: the
// claim's check and the pick of a free number of the row's owner together;
// only when it finds none does a second read say whether the claim was lost.
func (s *Store) takeReservationPG(ctx context.Context, runID int64, a *Activation, now time.Time) (Reservation, error) {
	var r Reservation
	if a.ClaimToken == "" {
		return r, fmt.Errorf("repo: take reservation for activation %d: %w", a.ID, ErrLostClaim)
	}
	err := s.getPrepared(ctx, &r, s.q(`WITH owner AS (SELECT credential FROM activations
WHERE id = ? AND state = 'pending' AND claim_token = ?),
c AS (SELECT id FROM reservations WHERE run_id = ? AND credential = (SELECT credential FROM owner) AND state = 'free'
ORDER BY reserved_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
UPDATE reservations AS t SET state = 'assigned', activation_id = ?, updated_at = ? FROM c WHERE t.id = c.id
RETURNING `+reservationCols("t.")), a.ID, a.ClaimToken, runID, a.ID, s.t(now))
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("repo: take reservation for activation %d: %w", a.ID, err)
	}
	var claimed bool
	if err := s.db.GetContext(ctx, &claimed, s.q(`SELECT EXISTS (SELECT 1 FROM activations
WHERE id = ? AND state = 'pending' AND claim_token = ?)`), a.ID, a.ClaimToken); err != nil {
		return r, fmt.Errorf("repo: take reservation: %w", err)
	}
	if !claimed {
		return r, fmt.Errorf("repo: take reservation for activation %d: %w", a.ID, ErrLostClaim)
	}
	return r, fmt.Errorf("repo: take reservation for activation %d: %w", a.ID, ErrNotFound)
}

// FreeReservations returns the run's numbers not given to any activation,
// oldest first (empty when none).
func (s *Store) FreeReservations(ctx context.Context, runID int64) ([]Reservation, error) {
	var out []Reservation
	err := s.db.SelectContext(ctx, &out, s.q(`SELECT `+reservationColumns+` FROM reservations
WHERE run_id = ? AND state = 'free' ORDER BY reserved_at, id`), runID)
	if err != nil {
		return nil, fmt.Errorf("repo: free reservations: %w", err)
	}
	return out, nil
}

// runOver is true when the run that reserved r has ended (finished, its
// lease passed or never set, or the run is unknown): only then are its free
// numbers orphans. A run whose lock was lost is still live until its lease
// passes, and its numbers may be about to be selected. One ? (now).
const runOver = `NOT EXISTS (SELECT 1 FROM runs ru WHERE ru.id = r.run_id AND ru.finished_at IS NULL
  AND ru.lease_until >= ?)`

// DueReleases returns up to limit of credential's numbers the release phase
// must unreserve, oldest first: free ones reserved at or before olderThan or
// left by an earlier run of credential (a crash); ones assigned to an
// unclaimed selected activation and reserved at or before olderThan; ones
// assigned to an unclaimed pending, failed or
// cancelled activation (never used) that
// are that old or from an earlier run. Numbers of ordering, submitted or
// later rows are never returned, nor any number another credential holds:
// only the user that reserved a number can unreserve it, and another
// credential's live run is no orphan of ours.
func (s *Store) DueReleases(ctx context.Context, now, olderThan time.Time, runID int64, credential string, limit int) ([]Reservation, error) {
	var out []Reservation
	err := s.db.SelectContext(ctx, &out, s.q(`SELECT `+reservationCols("r.")+`
FROM reservations r LEFT JOIN activations a ON a.id = r.activation_id
WHERE r.state IN ('free', 'assigned') AND r.credential = ? AND (
     (r.state = 'free' AND (r.reserved_at <= ? OR (r.run_id <> ? AND `+runOver+`)))
  OR (r.state = 'assigned' AND a.state = 'selected' AND r.reserved_at <= ?
      AND (a.claim_until IS NULL OR a.claim_until < ?))
  OR (r.state = 'assigned' AND a.state IN ('pending', 'failed', 'cancelled') AND (r.reserved_at <= ? OR (r.run_id <> ? AND `+runOver+`))
      AND (a.claim_until IS NULL OR a.claim_until < ?)))
ORDER BY r.reserved_at, r.id LIMIT ?`),
		credential, s.t(olderThan), runID, s.t(now), s.t(olderThan), s.t(now), s.t(olderThan), runID, s.t(now), s.t(now), limit)
	if err != nil {
		return nil, fmt.Errorf("repo: due releases: %w", err)
	}
	return out, nil
}

// ReleaseReservation records that credential unreserved r: r -> released
// and, if its activation is still selected with this number and unclaimed,
// that activation -> pending (msn and reserved_at cleared, due now), with an
// event. Errors: ErrLostClaim when r is no longer held (already released or
// consumed), its activation has reached ordering or beyond, or r is not
// credential's (a credential never releases another's number).
func (s *Store) ReleaseReservation(ctx context.Context, credential string, r Reservation, now time.Time) error {
	return s.InTx(ctx, func(tx *sqlx.Tx) error {
		var held Reservation
		// DueReleases' read predicate, repeated (River #1302): a number
		// whose activation moved on to ordering or beyond since it was read
		// is being (or was) ordered, and must never be marked released.
		err := tx.GetContext(ctx, &held, s.q(`UPDATE reservations SET state = 'released', updated_at = ?
WHERE id = ? AND credential = ? AND (state = 'free' OR (state = 'assigned' AND (activation_id IS NULL
  OR activation_id IN (SELECT id FROM activations WHERE state IN ('pending', 'selected', 'failed', 'cancelled')))))
RETURNING `+reservationColumns), s.t(now), r.ID, credential)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("repo: release reservation %d (%s): %w", r.ID, r.MSN, ErrLostClaim)
		}
		if err != nil {
			return fmt.Errorf("repo: release reservation %d: %w", r.ID, err)
		}
		if held.ActivationID == nil {
			return nil
		}
		var a Activation
		err = tx.GetContext(ctx, &a, s.q(`UPDATE activations SET state = 'pending', msn = '', reserved_at = NULL,
next_attempt_at = ?, updated_at = ?
WHERE id = ? AND state = 'selected' AND msn = ? AND credential = ? AND (claim_until IS NULL OR claim_until < ?)
RETURNING `+activationColumns), s.t(now), s.t(now), *held.ActivationID, held.MSN, credential, s.t(now))
		if errors.Is(err, sql.ErrNoRows) {
			return nil // the activation has moved on (or never used this number)
		}
		if err != nil {
			return fmt.Errorf("repo: release reservation %d: %w", r.ID, err)
		}
		err = s.addEvent(ctx, tx, Event{At: now, RunID: a.RunID, ActivationID: a.ID, Kind: EventState,
			Step: StepRelease, FromState: StateSelected, ToState: StatePending, Outcome: "released"})
		if err != nil {
			return fmt.Errorf("repo: release reservation %d: %w", r.ID, err)
		}
		return nil
	})
}
