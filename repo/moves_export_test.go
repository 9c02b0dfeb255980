package repo

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// QRWrite is one row of QRReadyTogether.
type QRWrite struct {
	A     *Activation
	Code  string
	PNG   []byte
	ICCID string
	Calls []AnsweredCall
}

// QRReadyTogether stores the QR codes of ws in one grouped statement, as
// QRReady does for writes that arrive together, and returns each row's
// result.
func (s *Store) QRReadyTogether(ctx context.Context, now time.Time, ws []QRWrite) ([]error, error) {
	ms := make([]*groupedMove, len(ws))
	for i, w := range ws {
		ms[i] = s.qrMove(w.A, w.Code, w.PNG, w.ICCID, now, w.Calls)
	}
	return s.movesTogether(ctx, qrReadyShape, ms)
}

// CompletedWrite is one row of OrderCompletedTogether.
type CompletedWrite struct {
	A             *Activation
	ServiceNumber string
	Calls         []AnsweredCall
}

// OrderCompletedTogether records the completed orders of ws in one grouped
// statement, as OrderCompleted does for writes that arrive together.
func (s *Store) OrderCompletedTogether(ctx context.Context, now time.Time, awaitQR bool, ws []CompletedWrite) ([]error, error) {
	sh := provisionedShape
	if awaitQR {
		sh = completedShape
	}
	ms := make([]*groupedMove, len(ws))
	for i, w := range ws {
		ms[i] = s.completedMove(w.A, w.ServiceNumber, awaitQR, now, w.Calls)
	}
	return s.movesTogether(ctx, sh, ms)
}

// AcceptedWrite is one row of OrderAcceptedTogether.
type AcceptedWrite struct {
	A       *Activation
	OrderID string
	Calls   []AnsweredCall
}

// OrderAcceptedTogether records the accepted orders of ws in one grouped
// statement, as OrderAccepted does for writes that arrive together.
func (s *Store) OrderAcceptedTogether(ctx context.Context, now, nextPoll time.Time, ws []AcceptedWrite) ([]error, error) {
	ms := make([]*groupedMove, len(ws))
	for i, w := range ws {
		ms[i] = s.acceptedMove(w.A, w.OrderID, now, nextPoll, w.Calls)
	}
	return s.movesTogether(ctx, acceptedShape, ms)
}

// MovesGenericPlan is the generic plan (the one a prepared statement may
// keep for the connection's life) of two grouped statements, as this
// store's tables now stand, planned by a session of the pool that runs
// them: two orders accepted together, each with an answered call with an
// in-flight row and one without, and two numbers selected together.
func (s *Store) MovesGenericPlan(ctx context.Context) (string, error) {
	id := int64(1)
	c := Call{ActivationID: &id, Credential: "plan", Method: "orderCreate", Outcome: "ok"}
	pending := func(id int64) *Activation {
		return &Activation{ID: id, State: StatePending, ClaimToken: "x", Credential: "plan"}
	}
	statements := []struct {
		sh *moveShape
		ms []*groupedMove
	}{
		{acceptedShape, []*groupedMove{
			s.acceptedMove(&Activation{ID: 1, State: StateOrdering, ClaimToken: "x"}, "O1", time.Now(), time.Now(),
				[]AnsweredCall{{ID: 1, Call: c}, {Call: c}}),
			s.acceptedMove(&Activation{ID: 2, State: StateOrdering, ClaimToken: "x"}, "O2", time.Now(), time.Now(),
				[]AnsweredCall{{ID: 2, Call: c}, {Call: c}}),
		}},
		{selectedShape, []*groupedMove{
			s.selectedMove(pending(1), Reservation{ID: 1, MSN: "1"}, time.Now(), nil),
			s.selectedMove(pending(2), Reservation{ID: 2, MSN: "2"}, time.Now(), nil),
		}},
	}
	var plans []string
	for i, st := range statements {
		plan, err := s.genericPlan(ctx, fmt.Sprintf("moves_plan_%d", i), st.sh, st.ms)
		if err != nil {
			return "", err
		}
		plans = append(plans, plan)
	}
	return strings.Join(plans, "\n"), nil
}

// movesTx opens a transaction on the lazy pool, where grouped statements
// run, and returns it with the statement that moves ms (rows of sh).
func (s *Store) movesTx(ctx context.Context, sh *moveShape, ms []*groupedMove) (*sqlx.Tx, string, []any, error) {
	query, args, err := s.movesStatement(sh, ms)
	if err != nil {
		return nil, "", nil, err
	}
	tx, err := s.lazyPool().BeginTxx(ctx, nil)
	return tx, query, args, err
}

func (s *Store) genericPlan(ctx context.Context, name string, sh *moveShape, ms []*groupedMove) (string, error) {
	tx, query, args, err := s.movesTx(ctx, sh, ms)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SET LOCAL plan_cache_mode = force_generic_plan`); err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, `PREPARE `+name+` AS `+query); err != nil {
		return "", err
	}
	// EXECUTE takes its parameters as literals.
	params := make([]string, len(args))
	for i, a := range args {
		if v, ok := a.(driver.Valuer); ok {
			if a, err = v.Value(); err != nil {
				return "", err
			}
		}
		switch v := a.(type) {
		case nil:
			params[i] = "NULL"
		case string:
			params[i] = pq.QuoteLiteral(v)
		case []byte:
			params[i] = pq.QuoteLiteral(string(v))
		case time.Time:
			params[i] = pq.QuoteLiteral(v.Format(time.RFC3339Nano))
		default:
			params[i] = pq.QuoteLiteral(fmt.Sprint(v))
		}
	}
	var plan []string
	if err := tx.SelectContext(ctx, &plan, `EXPLAIN EXECUTE `+name+` (`+strings.Join(params, ", ")+`)`); err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, `DEALLOCATE `+name); err != nil {
		return "", err
	}
	return strings.Join(plan, "\n"), nil
}

// BeginOrderTogether writes the intents of as in one grouped statement
// under guard g, as BeginOrder does for intents written at the same time.
func (s *Store) BeginOrderTogether(ctx context.Context, g LockGuard, now time.Time, as []*Activation) ([]error, error) {
	ms := make([]*groupedMove, len(as))
	for i, a := range as {
		ms[i] = s.beginMove(a, g, false, now)
	}
	return s.movesTogether(ctx, beginShape, ms)
}

// IntentCommitMode runs the grouped intent statement for a in a transaction
// of the lazy pool, and returns synchronous_commit as that transaction sees
// it after the statement (its commit's mode), then rolls back.
func (s *Store) IntentCommitMode(ctx context.Context, a *Activation, now time.Time) (string, error) {
	tx, query, args, err := s.movesTx(ctx, beginShape, []*groupedMove{s.beginMove(a, LockGuard{}, false, now)})
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	var moved []struct {
		Ord        int64      `db:"ord"`
		ReservedAt *time.Time `db:"reserved_at"`
	}
	if err := tx.SelectContext(ctx, &moved, query, args...); err != nil {
		return "", err
	}
	if len(moved) != 1 {
		return "", fmt.Errorf("%d rows moved, want 1", len(moved))
	}
	var mode string
	err = tx.GetContext(ctx, &mode, `SHOW synchronous_commit`)
	return mode, err
}

// SelectedWrite is one row of MarkSelectedTogether.
type SelectedWrite struct {
	A     *Activation
	R     Reservation
	Calls []AnsweredCall
}

// MarkSelectedTogether selects the numbers of ws in one grouped statement,
// as MarkSelected does for rows selected at the same time.
func (s *Store) MarkSelectedTogether(ctx context.Context, now time.Time, ws []SelectedWrite) ([]error, error) {
	ms := make([]*groupedMove, len(ws))
	for i, w := range ws {
		ms[i] = s.selectedMove(w.A, w.R, now, w.Calls)
	}
	return s.movesTogether(ctx, selectedShape, ms)
}

// IntentGroupsOfOneKey says whether two guards of one lock key (two
// sessions: two passes) share BeginOrder's group, and returns what the
// shared statement answers when rows of both meet in it.
func (s *Store) IntentGroupsOfOneKey(ctx context.Context, a, b *Activation, now time.Time) (bool, error) {
	g1, g2 := LockGuard{key: 77, pid: 1}, LockGuard{key: 77, pid: 2}
	same := s.beginGroup(g1) == s.beginGroup(g2) && s.beginGroup(g1) != s.beginGroup(LockGuard{key: 78, pid: 1})
	_, err := s.movesTogether(ctx, beginShape, []*groupedMove{s.beginMove(a, g1, false, now), s.beginMove(b, g2, false, now)})
	return same, err
}
