package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// Rows moved together (group commit of OrderCompleted and QRReady) are
// written as each would be on its own: the row's columns, its claim
// cleared, its answered calls (an in-flight row completed, a call without
// one inserted whole) with their events ahead of the state event; a row no
// longer claimed is ErrLostClaim, and its calls are written all the same.
func TestRowsMovedTogetherAreWrittenAsAlone(t *testing.T) {
	t.Parallel()
	s := repotest.NewPostgres(t)
	ctx := context.Background()
	runID := seed(t, s, "tog", 4)
	rows := make([]repo.Activation, 4)
	for i := range rows {
		toSubmitted(t, s, t0, runID, fmt.Sprintf("04%02d", i))
	}
	polled := t0.Add(31 * time.Minute)
	got, err := s.ClaimPolls(ctx, polled, polled.Add(30*time.Minute), runID, "cred", 10, lease)
	must(t, err)
	if len(got) != 4 {
		t.Fatalf("ClaimPolls: %d rows, want 4", len(got))
	}
	copy(rows, got)
	answered := func(a repo.Activation, method, msg string) repo.Call {
		id := a.ID
		return repo.Call{RunID: runID, ActivationID: &id, Credential: "cred", Method: method,
			SentAt: polled.Add(time.Second), Duration: 30 * time.Millisecond, Outcome: "ok", Message: msg, MSN: a.MSN}
	}
	inflight := func(c repo.Call) int64 {
		id, err := s.StartCall(ctx, c)
		must(t, err)
		return id
	}
	callsWith := func(msg, outcome string) int {
		return count(t, s, `SELECT COUNT(*) FROM calls WHERE message = ? AND outcome = ?`, msg, outcome)
	}

	// Row 2's claim is taken from it: the stale copy is lost.
	stale := rows[2]
	must(t, s.Unclaim(ctx, &rows[2]))
	oq0 := answered(rows[0], "orderQuery", "oq-0")
	ws := []repo.CompletedWrite{
		{A: &rows[0], ServiceNumber: "SN0", Calls: []repo.AnsweredCall{{ID: inflight(oq0), Call: oq0}}},
		{A: &rows[1], ServiceNumber: "SN1", Calls: []repo.AnsweredCall{{Call: answered(rows[1], "orderQuery", "oq-1")}}},
		{A: &stale, ServiceNumber: "SN2", Calls: []repo.AnsweredCall{{Call: answered(stale, "orderQuery", "oq-2")}}},
	}
	errs, err := s.OrderCompletedTogether(ctx, polled, true, ws)
	must(t, err)
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], repo.ErrLostClaim) {
		t.Fatalf("results %v; want nil, nil, ErrLostClaim", errs)
	}
	// Row 3 alone, through the one-statement path, for comparison.
	must(t, s.OrderCompleted(ctx, &rows[3], "SN3", true, polled, repo.AnsweredCall{Call: answered(rows[3], "orderQuery", "oq-3")}))

	for _, msg := range []string{"oq-0", "oq-1", "oq-2", "oq-3"} {
		if n := callsWith(msg, "ok"); n != 1 {
			t.Errorf("calls with message %s, outcome ok: %d, want 1", msg, n)
		}
	}
	if n := count(t, s, `SELECT COUNT(*) FROM calls WHERE outcome = ?`, repo.CallInflight); n != 0 {
		t.Errorf("%d calls still in flight, want 0", n)
	}
	alone, err := s.Events(ctx, rows[3].ID)
	must(t, err)
	for i, a := range []repo.Activation{rows[0], rows[1]} {
		db, err := s.Activation(ctx, a.ID)
		must(t, err)
		if db.State != repo.StateCompleted || db.ServiceNumber != fmt.Sprint("SN", i) || db.ClaimToken != "" ||
			db.CompletedAt == nil || !db.CompletedAt.Equal(polled) || !db.NextAttemptAt.Equal(polled) || db.Attempts != 0 {
			t.Errorf("row %d in the store: %+v", i, db)
		}
		if a.State != db.State || a.ServiceNumber != db.ServiceNumber || a.ClaimToken != "" || a.ClaimUntil != nil ||
			a.CompletedAt == nil || !a.CompletedAt.Equal(*db.CompletedAt) || !a.NextAttemptAt.Equal(db.NextAttemptAt) ||
			!a.UpdatedAt.Equal(db.UpdatedAt) || a.Attempts != db.Attempts {
			t.Errorf("row %d as the caller holds it differs from the store's:\n%+v\n%+v", i, a, db)
		}
		evs, err := s.Events(ctx, a.ID)
		must(t, err)
		sameEvents(t, fmt.Sprint("row ", i), evs, alone)
		if last := evs[len(evs)-2]; last.Message != fmt.Sprint("oq-", i) {
			t.Errorf("row %d: call event before the state event says %q", i, last.Message)
		}
	}
	lost, err := s.Activation(ctx, stale.ID)
	must(t, err)
	if lost.State != repo.StateSubmitted || lost.ServiceNumber != "" {
		t.Errorf("lost row moved: %+v", lost)
	}
	if evs, err := s.Events(ctx, stale.ID); err != nil || evs[len(evs)-1].Kind != repo.EventCall || evs[len(evs)-1].Message != "oq-2" {
		t.Errorf("lost row's last event %+v (%v); want its call event", evs[len(evs)-1], err)
	}

	// Then the QR codes of rows 0 and 1, together.
	claimed, err := s.ClaimQR(ctx, polled, runID, "cred", 10, lease)
	must(t, err)
	if len(claimed) != 3 {
		t.Fatalf("ClaimQR: %d rows, want 3", len(claimed))
	}
	png := []byte("\x89PNG fake")
	qr := []repo.QRWrite{
		{A: &claimed[0], Code: "LPA:1$a$0", PNG: png, ICCID: "8961000", Calls: []repo.AnsweredCall{{Call: answered(claimed[0], "getEsimDetails", "qr-0")}}},
		{A: &claimed[1], Code: "LPA:1$a$1", PNG: png, ICCID: "8961001"},
	}
	errs, err = s.QRReadyTogether(ctx, polled, qr)
	must(t, err)
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("QR results %v", errs)
	}
	for i, w := range qr {
		db, err := s.Activation(ctx, w.A.ID)
		must(t, err)
		if db.State != repo.StateQRReady || db.ActivationCode != w.Code || db.ICCID != w.ICCID || !bytes.Equal(db.QRPNG, png) || db.ClaimToken != "" {
			t.Errorf("QR row %d in the store: state %s code %q iccid %q png %d bytes claim %q", i, db.State, db.ActivationCode, db.ICCID, len(db.QRPNG), db.ClaimToken)
		}
		if w.A.State != repo.StateQRReady || w.A.ActivationCode != w.Code || !bytes.Equal(w.A.QRPNG, png) || !w.A.UpdatedAt.Equal(db.UpdatedAt) {
			t.Errorf("QR row %d as the caller holds it: %+v", i, *w.A)
		}
		evs, err := s.Events(ctx, w.A.ID)
		must(t, err)
		if e := evs[len(evs)-1]; e.Kind != repo.EventState || e.FromState != repo.StateCompleted || e.ToState != repo.StateQRReady || e.Step != repo.StepQR {
			t.Errorf("QR row %d's last event: %+v", i, e)
		}
	}
	if callsWith("qr-0", "ok") != 1 {
		t.Error("the QR row's getEsimDetails was not written")
	}
}

// sameEvents fails unless a row moved together has the events got that
// the row moved alone has (want), in the same order, alike in all but ids
// and message.
func sameEvents(t *testing.T, row string, got, want []repo.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d events, the row moved alone %d", row, len(got), len(want))
		return
	}
	for j := range got {
		e, w := got[j], want[j]
		if e.Kind != w.Kind || e.Step != w.Step || e.FromState != w.FromState || e.ToState != w.ToState ||
			e.Outcome != w.Outcome || !e.At.Equal(w.At) || (e.RunID == nil) != (w.RunID == nil) || e.Duration != w.Duration {
			t.Errorf("%s event %d: %+v; moved alone: %+v", row, j, e, w)
		}
	}
}

// Many workers recording completed orders at once each get their own
// result, and every row, call and event is written once.
func TestOrdersCompletedAtOnce(t *testing.T) {
	t.Parallel()
	s := repotest.NewPostgres(t)
	ctx := context.Background()
	const n = 24
	runID := seed(t, s, "many", n)
	for i := range n {
		toSubmitted(t, s, t0, runID, fmt.Sprintf("05%02d", i))
	}
	polled := t0.Add(31 * time.Minute)
	got, err := s.ClaimPolls(ctx, polled, polled.Add(30*time.Minute), runID, "cred", n, lease)
	must(t, err)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a := &got[i]
			id := a.ID
			c := repo.Call{RunID: runID, ActivationID: &id, Credential: "cred", Method: "orderQuery", SentAt: polled, Outcome: "ok"}
			errs[i] = s.OrderCompleted(ctx, a, "SN", true, polled, repo.AnsweredCall{Call: c})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
	}
	st, moved := s.GroupedMoves()
	t.Logf("%d rows in %d statements of more than one", moved, st)
	if c := count(t, s, `SELECT COUNT(*) FROM activations WHERE state = ? AND claim_token = ''`, repo.StateCompleted); c != n {
		t.Errorf("%d rows completed and unclaimed, want %d", c, n)
	}
	if c := count(t, s, `SELECT COUNT(*) FROM calls WHERE method = 'orderQuery'`); c != n {
		t.Errorf("%d orderQuery calls, want %d", c, n)
	}
	if c := count(t, s, `SELECT COUNT(*) FROM events WHERE to_state = ?`, repo.StateCompleted); c != n {
		t.Errorf("%d events -> completed, want %d", c, n)
	}
}

// Orders accepted together consume their numbers' reservations and are
// written as an order accepted alone is.
func TestOrdersAcceptedTogether(t *testing.T) {
	t.Parallel()
	s := repotest.NewPostgres(t)
	ctx := context.Background()
	runID, rows := selectedRows(t, s, "acc", 3, "06")
	for i := range rows {
		must(t, s.BeginOrder(ctx, &rows[i], repo.LockGuard{}, false, t0))
	}
	next := t0.Add(30 * time.Minute)
	call := func(a repo.Activation, msg string) []repo.AnsweredCall {
		id := a.ID
		return []repo.AnsweredCall{{Call: repo.Call{RunID: runID, ActivationID: &id, Credential: "cred", Method: "orderCreate",
			SentAt: t0, Outcome: "ok", Message: msg, OrderID: "ORD-" + msg}}}
	}
	errs, err := s.OrderAcceptedTogether(ctx, t0, next, []repo.AcceptedWrite{
		{A: &rows[0], OrderID: "ORD-0", Calls: call(rows[0], "0")},
		{A: &rows[1], OrderID: "ORD-1", Calls: call(rows[1], "1")},
	})
	must(t, err)
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("results %v", errs)
	}
	must(t, s.OrderAccepted(ctx, &rows[2], "ORD-2", t0, next, call(rows[2], "2")...))
	alone, err := s.Events(ctx, rows[2].ID)
	must(t, err)
	for i, a := range rows {
		db, err := s.Activation(ctx, a.ID)
		must(t, err)
		if db.State != repo.StateSubmitted || db.OrderID != fmt.Sprint("ORD-", i) || db.NextPollAt == nil || !db.NextPollAt.Equal(next) || db.ClaimToken != "" {
			t.Errorf("row %d in the store: %+v", i, db)
		}
		if a.State != db.State || a.OrderID != db.OrderID || a.NextPollAt == nil || !a.NextPollAt.Equal(*db.NextPollAt) || !a.UpdatedAt.Equal(db.UpdatedAt) {
			t.Errorf("row %d as the caller holds it differs from the store's:\n%+v\n%+v", i, a, db)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE activation_id = ? AND state = ?`, a.ID, repo.ReservationConsumed); n != 1 {
			t.Errorf("row %d: %d consumed reservations, want 1", i, n)
		}
		evs, err := s.Events(ctx, a.ID)
		must(t, err)
		sameEvents(t, fmt.Sprint("row ", i), evs, alone)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE state = 'assigned'`); n != 0 {
		t.Errorf("%d reservations still assigned", n)
	}
}

// The grouped statement is prepared, so a connection may keep one generic
// plan for it however its tables grow: that plan must find every row by
// key, even when made while the tables were empty and never analysed.
func TestMovedTogetherFindsRowsByKey(t *testing.T) {
	t.Parallel()
	s := repotest.NewPostgres(t)
	plan, err := s.MovesGenericPlan(context.Background())
	must(t, err)
	t.Logf("generic plan:\n%s", plan)
	for _, table := range []string{"activations", "calls", "reservations"} {
		if strings.Contains(plan, "Seq Scan on "+table) {
			t.Errorf("the generic plan reads %s whole:\n%s", table, plan)
		}
	}
}

// Intents written together are guarded by the run lock as one is alone,
// keep the rows' claims, and commit durably although the statement runs on
// the pool whose sessions commit lazily.
func TestIntentsWrittenTogether(t *testing.T) {
	t.Parallel()
	s := repotest.NewPostgres(t)
	ctx := context.Background()
	_, rows := selectedRows(t, s, "int", 6, "07")
	l, err := s.AcquireRunLock(ctx, fmt.Sprintf("intents-%d", time.Now().UnixNano()))
	must(t, err)
	g := l.Guard()
	stale := rows[1]
	must(t, s.Unclaim(ctx, &rows[1]))
	errs, err := s.BeginOrderTogether(ctx, g, t0, []*repo.Activation{&rows[0], &stale})
	must(t, err)
	if errs[0] != nil || !errors.Is(errs[1], repo.ErrLostClaim) {
		t.Fatalf("results %v; want nil, ErrLostClaim", errs)
	}
	must(t, s.BeginOrder(ctx, &rows[2], g, false, t0)) // alone, for comparison
	alone, err := s.Events(ctx, rows[2].ID)
	must(t, err)
	db, err := s.Activation(ctx, rows[0].ID)
	must(t, err)
	a := rows[0]
	if db.State != repo.StateOrdering || db.OrderAttempts != 1 || db.OrderSentAt == nil || !db.OrderSentAt.Equal(t0) ||
		db.ClaimToken == "" || db.ClaimToken != a.ClaimToken {
		t.Errorf("intent in the store: %+v", db)
	}
	if a.State != db.State || a.OrderAttempts != db.OrderAttempts || a.OrderSentAt == nil || !a.OrderSentAt.Equal(*db.OrderSentAt) ||
		!a.UpdatedAt.Equal(db.UpdatedAt) || a.ClaimUntil == nil || !a.ClaimUntil.Equal(*db.ClaimUntil) {
		t.Errorf("intent as the caller holds it differs from the store's:\n%+v\n%+v", a, db)
	}
	evs, err := s.Events(ctx, a.ID)
	must(t, err)
	sameEvents(t, "the intent", evs, alone)
	mode, err := s.IntentCommitMode(ctx, &rows[3], t0)
	must(t, err)
	if mode != "on" {
		t.Errorf("the grouped intent commits with synchronous_commit %q, want on", mode)
	}

	// Once the lock is gone, no intent is written, and each row says so.
	must(t, l.Release(ctx))
	errs, err = s.BeginOrderTogether(ctx, g, t0, []*repo.Activation{&rows[4], &rows[5]})
	must(t, err)
	for i, e := range errs {
		if !errors.Is(e, repo.ErrLocked) {
			t.Errorf("row %d after the lock was released: %v, want ErrLocked", 4+i, e)
		}
	}
	if n := count(t, s, `SELECT COUNT(*) FROM activations WHERE state = ?`, repo.StateOrdering); n != 2 {
		t.Errorf("%d rows ordering, want 2", n)
	}
}

// Numbers selected together take their reservations as MarkSelected does
// alone: the row carries the reservation's reserved_at, the reservation is
// assigned to it, a number it held before goes back free, and a row whose
// reservation was released under it is lost, saying so.
func TestNumbersSelectedTogether(t *testing.T) {
	t.Parallel()
	s := repotest.NewPostgres(t)
	ctx := context.Background()
	runID := seed(t, s, "sel", 4)
	reserved := t0.Add(-time.Hour)
	var rows []repo.Activation
	var rs []repo.Reservation
	for i := range 4 {
		a := claimOne(t, s, t0, runID)
		must(t, s.SaveReservations(ctx, runID, "cred", reserved.Add(time.Duration(i)*time.Minute),
			[]repo.Reservation{{MSN: fmt.Sprintf("08%02d", i), ReservationID: fmt.Sprint("R", i)}}))
		r, err := s.TakeReservation(ctx, runID, &a, t0)
		must(t, err)
		rows, rs = append(rows, a), append(rs, r)
	}
	// Row 0 also holds a second number, taken earlier in its claim.
	must(t, s.SaveReservations(ctx, runID, "cred", reserved, []repo.Reservation{{MSN: "0899", ReservationID: "R99"}}))
	extra, err := s.TakeReservation(ctx, runID, &rows[0], t0)
	must(t, err)
	// Row 2's reservation is released under it: row 2 has lost it.
	if _, err := s.DB().ExecContext(ctx, s.DB().Rebind(`UPDATE reservations SET state = 'released', activation_id = NULL WHERE id = ?`), rs[2].ID); err != nil {
		t.Fatal(err)
	}
	must(t, s.MarkSelected(ctx, &rows[3], rs[3], t0)) // alone, for comparison
	sel := func(a repo.Activation, msg string) []repo.AnsweredCall {
		id := a.ID
		return []repo.AnsweredCall{{Call: repo.Call{RunID: runID, ActivationID: &id, Credential: "cred", Method: "selectResource",
			SentAt: t0, Outcome: "ok", Message: msg, MSN: a.MSN}}}
	}
	errs, err := s.MarkSelectedTogether(ctx, t0, []repo.SelectedWrite{
		{A: &rows[0], R: rs[0], Calls: sel(rows[0], "s0")},
		{A: &rows[1], R: rs[1], Calls: sel(rows[1], "s1")},
		{A: &rows[2], R: rs[2], Calls: sel(rows[2], "s2")},
	})
	must(t, err)
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], repo.ErrLostClaim) || !strings.Contains(errs[2].Error(), "no longer free") {
		t.Fatalf("results %v; want nil, nil, and ErrLostClaim for a reservation no longer free", errs)
	}
	alone, err := s.Events(ctx, rows[3].ID)
	must(t, err)
	for i := range 2 {
		a := rows[i]
		db, err := s.Activation(ctx, a.ID)
		must(t, err)
		want := rs[i].ReservedAt
		if db.State != repo.StateSelected || db.MSN != rs[i].MSN || db.ReservedAt == nil || !db.ReservedAt.Equal(want) || db.ClaimToken == "" {
			t.Errorf("row %d in the store: %+v (reservation %+v)", i, db, rs[i])
		}
		if a.State != db.State || a.MSN != db.MSN || a.ReservedAt == nil || !a.ReservedAt.Equal(*db.ReservedAt) ||
			!a.UpdatedAt.Equal(db.UpdatedAt) || a.ClaimToken != db.ClaimToken {
			t.Errorf("row %d as the caller holds it differs from the store's:\n%+v\n%+v", i, a, db)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE id = ? AND state = 'assigned' AND activation_id = ?`, rs[i].ID, a.ID); n != 1 {
			t.Errorf("row %d's reservation is not assigned to it", i)
		}
		evs, err := s.Events(ctx, a.ID)
		must(t, err)
		last, prev := evs[len(evs)-1], evs[len(evs)-2]
		w := alone[len(alone)-1]
		if last.Kind != w.Kind || last.Step != w.Step || last.FromState != w.FromState || last.ToState != w.ToState ||
			last.Outcome != w.Outcome || prev.Kind != repo.EventCall || prev.Message != fmt.Sprint("s", i) {
			t.Errorf("row %d's last events: %+v then %+v; selected alone: %+v", i, prev, last, w)
		}
	}
	if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE id = ? AND state = 'free' AND activation_id IS NULL`, extra.ID); n != 1 {
		t.Error("the number row 0 held before did not go back free")
	}
	if lost, err := s.Activation(ctx, rows[2].ID); err != nil || lost.State != repo.StatePending {
		t.Errorf("the lost row: %+v, %v; want it pending", lost, err)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM calls WHERE method = 'selectResource'`); n != 3 {
		t.Errorf("%d selectResource calls written, want 3 (the lost row's too)", n)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM reservations WHERE id = ? AND state = 'released'`, rs[2].ID); n != 1 {
		t.Error("the lost row's released reservation changed")
	}
}

// Passes on one credential share one intent group, whatever their
// sessions, so a process that runs for months keeps one group per
// credential; rows of two passes' guards that meet in it are refused
// together, for the group to write them one by one.
func TestIntentGroupPerCredential(t *testing.T) {
	t.Parallel()
	s := repotest.NewPostgres(t)
	ctx := context.Background()
	runID := seed(t, s, "key", 2)
	a := toSelected(t, s, t0, runID, "0901")
	b := toSelected(t, s, t0, runID, "0902")
	same, err := s.IntentGroupsOfOneKey(ctx, &a, &b, t0)
	if !same {
		t.Error("two guards of one lock key have two intent groups (or two keys share one)")
	}
	if err == nil {
		t.Error("rows of two guards moved in one statement")
	}
	if n := count(t, s, `SELECT COUNT(*) FROM activations WHERE state = ?`, repo.StateOrdering); n != 0 {
		t.Errorf("%d intents written by the refused statement", n)
	}
}

// selectedRows seeds n rows and selects a number for each (MSNs msnPrefix
// followed by two digits).
func selectedRows(t *testing.T, s *repo.Store, name string, n int, msnPrefix string) (int64, []repo.Activation) {
	t.Helper()
	runID := seed(t, s, name, n)
	rows := make([]repo.Activation, n)
	for i := range rows {
		rows[i] = toSelected(t, s, t0, runID, fmt.Sprintf("%s%02d", msnPrefix, i))
	}
	return runID, rows
}
