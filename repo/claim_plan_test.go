package repo_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// A claim reads its partial index from the front, however stale the
// planner's statistics are. Here ANALYZE saw 1 % of the rows pending (as
// after a night's work, before the next import); then they all are.
// Planned on those statistics alone, a claim of 50 read every pending row
// and sorted them (here a sequential scan; in BenchmarkOverhead a bitmap
// scan of the whole index, 12 ms a claim at 20,000 rows): the cost grew with
// the backlog, per claim.
func TestClaimReadsItsIndexInOrderWithStaleStatistics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Random reads priced high tip a plan made on these statistics to the
	// bitmap scan and sort at a few thousand rows (in BenchmarkOverhead's
	// bloated table it took 20,000 at the default costs).
	url := repotest.PostgresURL(t) + "&random_page_cost=1000"
	s, err := repo.Open(ctx, url)
	must(t, err)
	t.Cleanup(func() { s.Close() })
	must(t, s.Migrate(ctx))
	runID := seed(t, s, "plan", 3000)
	for _, q := range []string{
		`UPDATE activations SET state = 'submitted' WHERE id % 100 <> 0`,
		`ANALYZE activations`,
		`UPDATE activations SET state = 'pending'`,
	} {
		if _, err := s.DB().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	plan, err := s.ClaimPendingPlan(ctx, t0.Add(time.Minute), runID, "cred", 50, lease)
	must(t, err)
	if !strings.Contains(plan, "Index Scan using activations_submit") || strings.Contains(plan, "Sort") || strings.Contains(plan, "Bitmap") {
		t.Errorf("the claim is planned as\n%s\nwant an index scan of activations_submit in its order, no sort", plan)
	}
	got, err := s.ClaimPending(ctx, t0.Add(time.Minute), runID, "cred", 50, lease)
	must(t, err)
	if len(got) != 50 || got[0].SalesRef != "plan-1" || got[49].SalesRef != "plan-50" {
		t.Errorf("claimed %d rows, first %q, want plan-1 to plan-50", len(got), got[0].SalesRef)
	}
}
