package repo_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// concurrentCalls seeds workers activations (refs prefix-1..) and has
// workers goroutines make each calls at once, one activation each:
// call makes call i of worker w, described by slot. It fails t on the first
// error, and returns the run and the activations' ids.
func concurrentCalls(t *testing.T, s *repo.Store, prefix string, workers, each int, call func(slot callSlot) error) (int64, []int64) {
	t.Helper()
	runID := seed(t, s, prefix, workers)
	ids := make([]int64, workers)
	for w := range workers {
		a, err := s.ActivationByRef(context.Background(), fmt.Sprintf("%s-%d", prefix, w+1))
		must(t, err)
		ids[w] = a.ID
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				msn := fmt.Sprintf("04%02d%04d", w, i)
				slot := callSlot{i: i, msn: msn, sent: t0.Add(time.Duration(w*each+i) * time.Millisecond), activation: &ids[w], run: runID}
				if err := call(slot); err != nil {
					errs <- fmt.Errorf("call %s: %w", msn, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return runID, ids
}

// callSlot is one call concurrentCalls has a worker make: the i-th of its
// activation, with its MSN and send time, in run run.
type callSlot struct {
	i          int
	msn        string
	sent       time.Time
	activation *int64
	run        int64
}

// checkCallEvents checks that each activation of ids has each call events
// of method, with the messages concurrentCalls' callers gave them
// ("m" + msn), in the order they were made, and of run runID.
func checkCallEvents(t *testing.T, s *repo.Store, ids []int64, each int, method string, runID int64) {
	t.Helper()
	for w, id := range ids {
		evs, err := s.Events(context.Background(), id)
		must(t, err)
		var calls []repo.Event
		for _, e := range evs {
			if e.Kind == repo.EventCall {
				calls = append(calls, e)
			}
		}
		if len(calls) != each || len(evs) != each {
			t.Fatalf("activation %d: %d events, %d of them call events, want %d call events only", id, len(evs), len(calls), each)
		}
		for i, e := range calls {
			want := fmt.Sprintf("m04%02d%04d", w, i)
			if e.Step != repo.Step(method) || e.Message != want || e.RunID == nil || *e.RunID != runID {
				t.Fatalf("activation %d call event %d: %+v, want %s %q of run %d", id, i, e, method, want, runID)
			}
		}
	}
}

// Calls started and finished at the same moment (which share statements on
// PostgreSQL) each get their own row: the id StartCall returns is the row
// written for that call, FinishCall completes exactly that row with its own
// call event, and a row finished once is not found again.
func TestConcurrentCallsKeepTheirRows(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		const workers, each = 8, 12
		runID, ids := concurrentCalls(t, s, "group", workers, each, func(c callSlot) error {
			msn, sent := c.msn, c.sent
			id, err := s.StartCall(ctx, repo.Call{RunID: c.run, ActivationID: c.activation, Credential: "c1",
				Method: "selectResource", SentAt: sent, MSN: msn})
			if err != nil {
				return err
			}
			var got string
			if err := s.DB().GetContext(ctx, &got, s.DB().Rebind(`SELECT msn FROM calls WHERE id = ? AND outcome = 'inflight'`), id); err != nil || got != msn {
				return fmt.Errorf("row %d holds %q (%v)", id, got, err)
			}
			if err := s.FinishCall(ctx, id, repo.Call{Method: "selectResource", SentAt: sent, Duration: time.Millisecond,
				Outcome: "ok", Code: "0", Message: "m" + msn, MSN: msn}); err != nil {
				return err
			}
			if err := s.FinishCall(ctx, id, repo.Call{Method: "selectResource", Outcome: "ok"}); !errors.Is(err, repo.ErrNotFound) {
				return fmt.Errorf("finished twice: %v, want ErrNotFound", err)
			}
			return nil
		})
		if n := count(t, s, `SELECT COUNT(*) FROM calls WHERE outcome = 'ok' AND message = 'm' || msn AND run_id = ?`, runID); n != workers*each {
			t.Errorf("%d calls completed with their own message, want %d", n, workers*each)
		}
		checkCallEvents(t, s, ids, each, "selectResource", runID)
	})
}
