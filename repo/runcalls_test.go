package repo_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// RunCalls counts one run's calls by method and outcome with their waits,
// and nothing of another run's.
func TestRunCalls(t *testing.T) {
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		mine, other := run(t, s), run(t, s)
		for _, c := range []repo.Call{
			{RunID: mine, Method: "orderCreate", Outcome: "ok", Waited: time.Second},
			{RunID: mine, Method: "orderCreate", Outcome: "ok", Waited: 2 * time.Second},
			{RunID: mine, Method: "orderCreate", Outcome: "rejected"},
			{RunID: mine, Method: "orderQuery", Outcome: "transport", Waited: 500 * time.Millisecond},
			{RunID: other, Method: "orderCreate", Outcome: "ok", Waited: time.Hour},
			{Method: "orderQuery", Outcome: "ok"}, // no run
		} {
			c.Credential, c.SentAt = "cred", t0
			must(t, s.RecordCall(ctx, c))
		}
		if _, err := s.StartCall(ctx, repo.Call{RunID: mine, Credential: "cred", Method: "getEsimDetails", SentAt: t0}); err != nil {
			t.Fatal(err)
		}
		got, err := s.RunCalls(ctx, mine)
		must(t, err)
		want := []repo.MethodCalls{
			{Method: "getEsimDetails", Outcome: repo.CallInflight, Count: 1},
			{Method: "orderCreate", Outcome: "ok", Count: 2, Waited: 3 * time.Second},
			{Method: "orderCreate", Outcome: "rejected", Count: 1},
			{Method: "orderQuery", Outcome: "transport", Count: 1, Waited: 500 * time.Millisecond},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("RunCalls = %+v\nwant %+v", got, want)
		}
		none, err := s.RunCalls(ctx, mine+other+100)
		must(t, err)
		if len(none) != 0 {
			t.Errorf("a run with no calls: %+v", none)
		}
	})
}
