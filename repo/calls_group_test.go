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

// Calls started and finished at the same moment (which share statements on
// PostgreSQL) each get their own row: the id StartCall returns is the row
// written for that call, FinishCall completes exactly that row with its own
// call event, and a row finished once is not found again.
func TestConcurrentCallsKeepTheirRows(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		const workers, each = 8, 12
		runID := seed(t, s, "group", workers)
		ids := make([]int64, workers)
		for w := range workers {
			a, err := s.ActivationByRef(ctx, fmt.Sprintf("group-%d", w+1))
			must(t, err)
			ids[w] = a.ID
		}
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					msn := fmt.Sprintf("04%02d%04d", w, i)
					sent := t0.Add(time.Duration(w*each+i) * time.Millisecond)
					id, err := s.StartCall(ctx, repo.Call{RunID: runID, ActivationID: &ids[w], Credential: "c1",
						Method: "selectResource", SentAt: sent, MSN: msn})
					if err != nil {
						errs <- err
						return
					}
					var got string
					if err := s.DB().GetContext(ctx, &got, s.DB().Rebind(`SELECT msn FROM calls WHERE id = ? AND outcome = 'inflight'`), id); err != nil || got != msn {
						errs <- fmt.Errorf("call %s: row %d holds %q (%v)", msn, id, got, err)
						return
					}
					if err := s.FinishCall(ctx, id, repo.Call{Method: "selectResource", SentAt: sent, Duration: time.Millisecond,
						Outcome: "ok", Code: "0", Message: "m" + msn, MSN: msn}); err != nil {
						errs <- err
						return
					}
					if err := s.FinishCall(ctx, id, repo.Call{Method: "selectResource", Outcome: "ok"}); !errors.Is(err, repo.ErrNotFound) {
						errs <- fmt.Errorf("call %s finished twice: %v, want ErrNotFound", msn, err)
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
		if n := count(t, s, `SELECT COUNT(*) FROM calls WHERE outcome = 'ok' AND message = 'm' || msn AND run_id = ?`, runID); n != workers*each {
			t.Errorf("%d calls completed with their own message, want %d", n, workers*each)
		}
		for w, id := range ids {
			evs, err := s.Events(ctx, id)
			must(t, err)
			if len(evs) != each {
				t.Fatalf("activation %d: %d events, want %d", id, len(evs), each)
			}
			for i, e := range evs {
				want := fmt.Sprintf("m04%02d%04d", w, i)
				if e.Kind != repo.EventCall || e.Step != "selectResource" || e.Message != want || e.RunID == nil || *e.RunID != runID {
					t.Fatalf("activation %d event %d: %+v, want call event %q of run %d", id, i, e, want, runID)
				}
			}
		}
	})
}
