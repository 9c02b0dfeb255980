package octane

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// LimiterConfig configures a Limiter.
type LimiterConfig struct {
	// Limits per method. Methods not listed use Default.
	Limits map[string]Limit
	// Default applies to methods not in Limits; the zero Limit is unlimited.
	Default Limit
	// Minute and Hour are the window lengths (1m and 1h when zero), so tests
	// and benchmarks can compress an hour.
	Minute, Hour time.Duration
	// Pad lengthens every window to cover the skew between the time we send
	// a call and the time Octane counts it. Zero means Minute/60 (1 s for
	// real windows); a negative value means no pad.
	Pad time.Duration
	// Now is the wall clock (time.Now when nil). Octane counts on wall time,
	// so this is only replaced in tests of the window arithmetic.
	Now func() time.Time
}

// Limiter keeps one credential's calls under Octane's per-method limits.
//
// Each (method, credential) pair holds both its per-minute and per-hour
// limit as trailing windows: at most N calls in any window of length W+pad.
// That also satisfies fixed windows of any alignment (Octane's window type is
// undocumented) and still reaches the full budget in steady state.
//
// A call holds its slot from the moment it is granted; when it completes its
// time becomes the completion time, an upper bound of when Octane counted it,
// so a slow response can never make the next window start early. It is safe
// for concurrent use.
type Limiter struct {
	mu      sync.Mutex
	limits  map[string]Limit
	def     Limit
	minute  time.Duration
	hour    time.Duration
	pad     time.Duration
	now     func() time.Time
	keys    map[limiterKey]*window
	changed chan struct{} // closed and replaced whenever a slot frees up
}

type limiterKey struct{ method, credential string }

type window struct {
	times        []time.Time // completed (or seeded) calls, ascending
	pending      int         // granted calls not yet completed
	blockedUntil time.Time   // set after a fault 233
}

// NewLimiter returns a limiter for cfg.
func NewLimiter(cfg LimiterConfig) *Limiter {
	l := &Limiter{
		limits:  cfg.Limits,
		def:     cfg.Default,
		minute:  cfg.Minute,
		hour:    cfg.Hour,
		pad:     cfg.Pad,
		now:     cfg.Now,
		keys:    make(map[limiterKey]*window),
		changed: make(chan struct{}),
	}
	if l.minute <= 0 {
		l.minute = time.Minute
	}
	if l.hour <= 0 {
		l.hour = time.Hour
	}
	switch {
	case l.pad == 0:
		l.pad = l.minute / 60
	case l.pad < 0:
		l.pad = 0
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// Windows returns the window lengths and the pad in use.
func (l *Limiter) Windows() (minute, hour, pad time.Duration) { return l.minute, l.hour, l.pad }

// LimitFor returns the limit that applies to method.
func (l *Limiter) LimitFor(method string) Limit {
	if lim, ok := l.limits[method]; ok {
		return lim
	}
	return l.def
}

// Slot is a granted call. Exactly one of Done or Release must be called.
type Slot struct {
	l    *Limiter
	key  limiterKey
	once sync.Once
}

// Done records that the call completed (or may have reached Octane) at at.
func (s *Slot) Done(at time.Time) {
	s.once.Do(func() { s.l.finish(s.key, at, true) })
}

// Release gives the slot back: the request provably never left.
func (s *Slot) Release() {
	s.once.Do(func() { s.l.finish(s.key, time.Time{}, false) })
}

// Seed records calls already sent on the credential (send times, e.g. from
// the call log of an earlier run), so a restart does not spend the budget
// twice.
func (l *Limiter) Seed(method, credential string, sent []time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.window(limiterKey{method, credential})
	for _, t := range sent {
		w.insert(t)
	}
}

// Replace makes calls (per method, when Octane may have counted each one)
// the whole history of credential's calls: whatever was seeded or recorded
// before is dropped, for methods absent from calls too. It is meant for the
// call log's view of the credential, which holds this process's own calls
// as well as other processes', so adding it to what the limiter already
// knows would count this process's calls twice. Calls in flight keep their
// slots and blocks set by BlockFor stay.
func (l *Limiter) Replace(credential string, calls map[string][]time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, w := range l.keys {
		if k.credential == credential {
			w.times = w.times[:0]
		}
	}
	for method, sent := range calls {
		w := l.window(limiterKey{method, credential})
		w.times = append(w.times, sent...)
		slices.SortFunc(w.times, func(a, b time.Time) int { return a.Compare(b) })
	}
	// Waiters re-evaluate: the new history may free slots or hold more.
	close(l.changed)
	l.changed = make(chan struct{})
}

// BlockFor stops granting method for credential during d from now: after a
// fault 233 the method waits until Octane's window has surely reset.
func (l *Limiter) BlockFor(method, credential string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.window(limiterKey{method, credential})
	if until := l.now().Add(d); until.After(w.blockedUntil) {
		w.blockedUntil = until
	}
}

// Wait blocks until a call of method on credential fits both windows, or ctx
// ends (the error then wraps ctx.Err()). It returns the granted slot and the
// time spent waiting.
func (l *Limiter) Wait(ctx context.Context, method, credential string) (*Slot, time.Duration, error) {
	key := limiterKey{method, credential}
	start := l.now()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return nil, l.now().Sub(start), fmt.Errorf("limiter %s: %w", method, err)
		}
		l.mu.Lock()
		wait, ok := l.reserve(key, l.now())
		changed := l.changed
		l.mu.Unlock()
		if ok {
			return &Slot{l: l, key: key}, l.now().Sub(start), nil
		}
		var tc <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return nil, l.now().Sub(start), fmt.Errorf("limiter %s: %w", method, ctx.Err())
		case <-changed:
		case <-tc:
		}
		if timer != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// reserve grants a slot at now when both windows and any block allow it.
// Otherwise it returns how long to wait; a zero wait with ok false means
// "until an in-flight call completes". l.mu is held.
func (l *Limiter) reserve(key limiterKey, now time.Time) (wait time.Duration, ok bool) {
	lim := l.LimitFor(key.method)
	w := l.window(key)
	if lim.PerMinute <= 0 && lim.PerHour <= 0 && !w.blockedUntil.After(now) {
		return 0, true // unlimited: nothing to count
	}
	longest := l.minute
	if lim.PerHour > 0 && l.hour > longest {
		longest = l.hour
	}
	w.prune(now.Add(-(longest + l.pad)))

	var needChange bool
	if w.blockedUntil.After(now) {
		wait = w.blockedUntil.Sub(now)
	}
	for _, win := range [...]struct {
		n   int
		len time.Duration
	}{{lim.PerMinute, l.minute}, {lim.PerHour, l.hour}} {
		if win.n <= 0 {
			continue
		}
		cut := now.Add(-(win.len + l.pad))
		// First completed call still inside this window.
		i := sort.Search(len(w.times), func(i int) bool { return w.times[i].After(cut) })
		inWindow := len(w.times) - i
		count := w.pending + inWindow
		if count < win.n {
			continue
		}
		k := count - win.n + 1 // completed calls that must leave the window
		if k > inWindow {
			needChange = true
			continue
		}
		if d := w.times[i+k-1].Add(win.len + l.pad).Sub(now); d > wait {
			wait = d
		}
	}
	if wait <= 0 && needChange {
		return 0, false
	}
	if wait > 0 {
		return wait, false
	}
	w.pending++
	return 0, true
}

func (l *Limiter) finish(key limiterKey, at time.Time, counted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.window(key)
	if lim := l.LimitFor(key.method); lim.PerMinute > 0 || lim.PerHour > 0 {
		// Unlimited methods were never counted as pending nor need times.
		if w.pending > 0 {
			w.pending--
		}
		if counted {
			w.insert(at)
		}
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *Limiter) window(key limiterKey) *window {
	w, ok := l.keys[key]
	if !ok {
		w = &window{}
		l.keys[key] = w
	}
	return w
}

// insert keeps times ascending; completions arrive almost in order, so the
// search from the end is short.
func (w *window) insert(t time.Time) {
	i := len(w.times)
	for i > 0 && w.times[i-1].After(t) {
		i--
	}
	w.times = append(w.times, time.Time{})
	copy(w.times[i+1:], w.times[i:])
	w.times[i] = t
}

// prune drops calls at or before cut, which no window can still see.
func (w *window) prune(cut time.Time) {
	i := sort.Search(len(w.times), func(i int) bool { return w.times[i].After(cut) })
	if i > 0 {
		w.times = append(w.times[:0], w.times[i:]...)
	}
}
