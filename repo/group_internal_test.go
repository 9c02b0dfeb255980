package repo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent callers share flushes, each gets its own result, and one item
// that fails a shared flush fails only itself.
func TestGroupSharesFlushes(t *testing.T) {
	var flushes, ones, maxBatch atomic.Int64
	bad := errors.New("bad item")
	g := &group[int, int]{
		flush: func(_ context.Context, items []int) ([]int, error) {
			flushes.Add(1)
			for {
				m := maxBatch.Load()
				if int64(len(items)) <= m || maxBatch.CompareAndSwap(m, int64(len(items))) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond) // a commit's wait, for callers to queue up behind
			out := make([]int, len(items))
			for i, v := range items {
				if v%50 == 7 {
					return nil, bad
				}
				out[i] = v * 10
			}
			return out, nil
		},
		one: func(_ context.Context, v int) (int, error) {
			ones.Add(1)
			time.Sleep(time.Millisecond)
			if v%50 == 7 {
				return 0, fmt.Errorf("item %d: %w", v, bad)
			}
			return v * 10, nil
		},
	}
	const callers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, callers*each)
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				v := c*each + i
				got, err := g.do(context.Background(), v)
				switch {
				case v%50 == 7 && !errors.Is(err, bad):
					errs <- fmt.Errorf("item %d: err %v, want the bad item's", v, err)
				case v%50 != 7 && (err != nil || got != v*10):
					errs <- fmt.Errorf("item %d: got %d, %v; want %d", v, got, err, v*10)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if maxBatch.Load() < 2 {
		t.Errorf("largest shared flush %d items: concurrent callers never shared one", maxBatch.Load())
	}
	if g.busy || len(g.queue) != 0 {
		t.Errorf("group left busy %v with %d queued", g.busy, len(g.queue))
	}
	t.Logf("%d flushes, %d single writes, largest batch %d, for %d items", flushes.Load(), ones.Load(), maxBatch.Load(), callers*each)
}
