package repo

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// groupMax is the most writes one group flush takes.
const groupMax = 64

// groupTimeout bounds one flush: its callers wait for it whatever their own
// contexts say, since each must learn whether its write committed.
const groupTimeout = 20 * time.Second

// group gathers writes that callers make at the same time into one
// statement and one commit (group commit), while each caller still returns
// only once its own write is committed (or failed). There is no background
// goroutine: the first caller to find the group idle leads, flushing what
// has queued up, and hands the lead to the oldest waiting caller when more
// queued meanwhile. With one caller at a time a write is flushed alone, at
// once: nothing waits for a batch to fill.
type group[T, R any] struct {
	// flush writes items in one statement (one transaction) and returns one
	// result per item, or the error that failed them all.
	flush func(ctx context.Context, items []T) ([]R, error)
	// one writes a single item on its own: the fallback when a shared
	// flush failed, so one bad item does not fail the others.
	one func(ctx context.Context, item T) (R, error)

	mu    sync.Mutex
	queue []*groupCall[T, R]
	busy  bool // a leader is flushing

	// shared and sharedItems count the flushes of more than one item that
	// succeeded, and their items (Store.GroupedMoves).
	shared, sharedItems atomic.Int64
}

type groupCall[T, R any] struct {
	item T
	res  R
	err  error
	lead bool          // woken to lead the next flush, not with a result
	wake chan struct{} // one send: a result or the lead
}

// do writes item with whatever other callers queue meanwhile and returns
// its own result.
func (g *group[T, R]) do(ctx context.Context, item T) (R, error) {
	c := &groupCall[T, R]{item: item, wake: make(chan struct{}, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.busy
	g.busy = true
	g.mu.Unlock()
	if !lead {
		<-c.wake
		if !c.lead {
			return c.res, c.err
		}
	}
	// Leading: c is at the head of the queue (it was queued when the group
	// was idle, or the lead was handed to the head).
	g.mu.Lock()
	n := min(len(g.queue), groupMax)
	batch := g.queue[:n:n]
	g.queue = g.queue[n:]
	g.mu.Unlock()

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), groupTimeout)
	g.run(fctx, batch)
	cancel()

	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		next.lead = true
		next.wake <- struct{}{}
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	for _, b := range batch {
		if b != c {
			b.wake <- struct{}{}
		}
	}
	return c.res, c.err
}

// run flushes batch, one at a time when the shared flush failed.
func (g *group[T, R]) run(ctx context.Context, batch []*groupCall[T, R]) {
	if len(batch) > 1 {
		items := make([]T, len(batch))
		for i, b := range batch {
			items[i] = b.item
		}
		res, err := g.flush(ctx, items)
		if err == nil && len(res) == len(batch) {
			for i, b := range batch {
				b.res = res[i]
			}
			g.shared.Add(1)
			g.sharedItems.Add(int64(len(batch)))
			return
		}
	}
	for _, b := range batch {
		b.res, b.err = g.one(ctx, b.item)
	}
}
