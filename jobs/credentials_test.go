package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// fleet is several credentials of one Octane account working one
// PostgreSQL database, as one CronJob per credential does: each credential
// has its own store (its own connections, its own run lock), client and
// runner; the simulator and the business clock are shared.
type fleet struct {
	*harness
	creds   []string
	stores  map[string]*repo.Store
	runners map[string]*jobs.Runner
}

// badPassword lists, by index, the credentials whose client presents a
// wrong password.
func newFleet(t *testing.T, n int, faults octanetest.Faults, badPassword map[int]bool) *fleet {
	t.Helper()
	url := repotest.PostgresURL(t)
	clk := &clock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
	id := rand.Int64()
	f := &fleet{stores: map[string]*repo.Store{}, runners: map[string]*jobs.Runner{}}
	users := map[string]string{}
	for i := range n {
		c := fmt.Sprintf("cred%d-%d", i+1, id)
		f.creds = append(f.creds, c)
		users[c] = "pw-" + c
	}
	sim := octanetest.New(octanetest.Config{
		Credentials: users, Now: clk.Now, OrderLatency: 5 * time.Minute,
		MinuteWindow: minuteWin, HourWindow: hourWin, Faults: faults, Seed: 42, EsimProfiles: 5000,
	})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	for i, c := range f.creds {
		s, err := repo.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if i == 0 {
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
		}
		f.stores[c] = s
		pw := users[c]
		if badPassword[i] {
			pw = "wrong"
		}
		client, err := octane.New(srv.URL+"/tiab", srv.URL+"/tiab/api", c, pw, octane.WithGroupNo(7),
			octane.WithWindows(minuteWin, hourWin), octane.WithRetries(3, 2*time.Millisecond),
			octane.WithCallRecorder(jobs.CallRecorder(s, c, nil)))
		if err != nil {
			t.Fatal(err)
		}
		cfg := jobs.Config{Credential: c, BatchSize: 10, MaxSubmitPerRun: 1000, ReserveBatch: 5, RunDeadline: 2 * time.Minute}
		f.runners[c] = jobs.NewRunner(s, client, cfg, jobs.WithClock(clk.Now),
			jobs.WithPassStart(jobs.SeedLimiter(s, client, c, nil)))
	}
	f.harness = &harness{t: t, store: f.stores[f.creds[0]], sim: sim, url: srv.URL, clock: clk}
	return f
}

// round runs one full pass of every credential at once and returns each
// pass's error.
func (f *fleet) round() map[string]error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := map[string]error{}
	start := make(chan struct{})
	for _, c := range f.creds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := f.runners[c].Pass(context.Background(), nil)
			if err == nil && res.Skipped {
				err = errors.New("skipped: another run held the lock")
			}
			mu.Lock()
			errs[c] = err
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// runUntilDone runs rounds, 31 simulated minutes apart, until every row is
// terminal or rounds are used up. Every pass of a credential not in failing
// must succeed; every pass of one in failing must fail.
func (f *fleet) runUntilDone(rounds int, failing map[string]bool) {
	f.t.Helper()
	for k := range rounds {
		for c, err := range f.round() {
			switch {
			case failing[c] && !errors.Is(err, octane.ErrUnauthorized):
				f.t.Fatalf("round %d: %s's pass = %v, want octane.ErrUnauthorized", k, c, err)
			case !failing[c] && err != nil:
				f.t.Fatalf("round %d: %s's pass: %v", k, c, err)
			}
		}
		f.clock.Advance(31 * time.Minute)
		done := true
		for _, a := range f.activations() {
			done = done && a.State.Terminal()
		}
		if done {
			return
		}
	}
}

// checkOwners asserts the ownership promises from Octane's side (the
// simulator's ledger) and the job's (the call log): no call for a row under
// any credential but its owner's, and no number of one credential
// selected, released or ordered by another.
func (f *fleet) checkOwners(acts map[string]repo.Activation) {
	t := f.t
	t.Helper()
	byMSN := map[string]repo.Activation{}
	for _, a := range acts {
		if a.MSN != "" {
			byMSN[a.MSN] = a
		}
	}
	refOfOrder := map[string]string{}
	for _, o := range f.sim.Orders() {
		refOfOrder[o.ID] = o.Notes
	}
	reservedBy := map[string]string{} // the number's holder, replayed from the ledger
	bad := 0
	for _, e := range f.sim.Ledger() {
		switch e.Method {
		case octane.MethodReserveResources:
			if e.Outcome == octanetest.OutcomeOK || e.Outcome == octanetest.OutcomeDropped {
				for _, m := range splitMSNs(e.MSN) {
					reservedBy[m] = e.Credential
				}
			}
			continue
		case octane.MethodSelectResource, octane.MethodUnreserveResources, octane.MethodOrderCreate:
			if holder, ok := reservedBy[e.MSN]; ok && holder != e.Credential {
				t.Errorf("%s of %s (reserved by %s) under %s: %+v", e.Method, e.MSN, holder, e.Credential, e)
				bad++
			}
		}
		var owner repo.Activation
		var ok bool
		switch e.Method {
		case octane.MethodOrderCreate, octane.MethodGetEsimDetails:
			owner, ok = byMSN[e.MSN]
		case octane.MethodOrderQuery:
			owner, ok = acts[refOfOrder[e.OrderID]]
		}
		if ok && owner.Credential != e.Credential {
			t.Errorf("%s for %s (owner %s) under %s", e.Method, owner.SalesRef, owner.Credential, e.Credential)
			bad++
		}
		if bad > 10 {
			t.Fatal("too many ownership violations")
		}
	}
	// Every call the job logged for a row went through the row's owner
	// (addCustomer, reserveResources and selectResource included).
	var wrong []struct {
		Ref    string `db:"sales_ref"`
		Method string `db:"method"`
		Caller string `db:"caller"`
		Owner  string `db:"owner"`
	}
	if err := f.store.DB().Select(&wrong, `SELECT a.sales_ref, c.method, c.credential AS caller, a.credential AS owner
FROM calls c JOIN activations a ON a.id = c.activation_id WHERE c.credential <> a.credential`); err != nil {
		t.Fatal(err)
	}
	for _, w := range wrong {
		t.Errorf("call log: %s for %s (owner %s) under %s", w.Method, w.Ref, w.Owner, w.Caller)
	}
}

func splitMSNs(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// Two and three credentials run at once on one database, with lost answers
// and dropped connections: every row ends with its QR code, ordered once,
// and every call for a row, and every use of a number, went through the
// credential that owns it.
func TestCredentialsShareOneDatabase(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d credentials", n), func(t *testing.T) {
			f := newFleet(t, n, octanetest.Faults{Drop: 0.02, Transport: 0.02, Latency: time.Millisecond}, nil)
			f.load(90)
			f.runUntilDone(8, nil)
			acts := f.activations()
			owned := map[string]int{}
			for ref, a := range acts {
				if a.State != repo.StateQRReady || a.ActivationCode == "" {
					t.Errorf("%s: state %s (step %s: %s), has code %v", ref, a.State, a.LastErrorStep, a.LastErrorMessage, a.ActivationCode != "")
				}
				owned[a.Credential]++
			}
			for _, c := range f.creds {
				if owned[c] == 0 {
					t.Errorf("%s owns no row: %v", c, owned)
				}
			}
			if owned[""] != 0 {
				t.Errorf("%d rows finished without an owner", owned[""])
			}
			f.checkOneOrder(acts)
			f.checkPolls()
			f.checkOwners(acts)
			t.Logf("rows per credential: %v", owned)
		})
	}
}

// One credential's bad password stops only that credential's passes,
// before they claim anything; the other credentials take every row and
// finish it.
func TestBadPasswordStopsOnlyItsCredential(t *testing.T) {
	f := newFleet(t, 3, octanetest.Faults{}, map[int]bool{1: true})
	bad := f.creds[1]
	f.load(40)
	f.runUntilDone(4, map[string]bool{bad: true})
	acts := f.activations()
	for ref, a := range acts {
		if a.State != repo.StateQRReady || a.Credential == bad || a.Credential == "" {
			t.Errorf("%s: state %s, owner %q", ref, a.State, a.Credential)
		}
	}
	for _, e := range f.sim.Ledger() {
		if e.Credential == bad && e.Method != octane.MethodQueryResources {
			t.Errorf("call under the refused credential: %+v", e)
		}
	}
	f.checkOneOrder(acts)
	f.checkOwners(acts)
}

// The bug of issue 11: with a crashed run of credential A holding free
// numbers and a selected row, credential B's release phase treated A's
// numbers as orphans, Octane refused B's unreserve and the refusal was
// recorded as released. Now B never touches them, and A releases them.
func TestOtherCredentialsReleaseLeavesNumbersAlone(t *testing.T) {
	f := newFleet(t, 2, octanetest.Faults{}, nil)
	a, b := f.creds[0], f.creds[1]
	ctx := context.Background()
	f.load(3)
	// A works one row to selected, then its pass is cut before ordering:
	// its run ends with four free numbers and the selected one.
	sa := f.stores[a]
	runA, err := sa.StartRun(ctx, f.clock.Now(), a, []string{"submit"}, false)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := sa.ClaimPending(ctx, f.clock.Now(), runA, a, 1, time.Minute)
	if err != nil || len(rows) != 1 {
		t.Fatalf("claim: %v %v", rows, err)
	}
	ca, err := octane.New(f.url+"/tiab", f.url+"/tiab/api", a, "pw-"+a, octane.WithWindows(minuteWin, hourWin))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ca.ReserveResources(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	var rs []repo.Reservation
	for _, g := range got {
		rs = append(rs, repo.Reservation{MSN: g.MSN, ReservationID: g.ReservationID})
	}
	if err := sa.SaveReservations(ctx, runA, a, f.clock.Now(), rs); err != nil {
		t.Fatal(err)
	}
	r, err := sa.TakeReservation(ctx, runA, &rows[0], f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.SelectResource(ctx, r.MSN); err != nil {
		t.Fatal(err)
	}
	if err := sa.MarkSelected(ctx, &rows[0], r, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := sa.FinishRun(ctx, runA, f.clock.Now(), "cancelled", nil, ""); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(23*time.Hour + time.Minute) // the selected number is past RELEASE_AFTER

	res, err := f.runners[b].Pass(ctx, []string{jobs.PhaseRelease})
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Counts["release.released"] + res.Counts["release.refused"]; n != 0 {
		t.Fatalf("B's release phase worked %d of A's numbers (%v)", n, res.Counts)
	}
	for _, e := range f.sim.Ledger() {
		if e.Credential == b && e.Method == octane.MethodUnreserveResources {
			t.Fatalf("B sent unreserveResources for %s", e.MSN)
		}
	}
	for _, g := range got {
		if st := f.sim.NumberState(g.MSN); st == octane.NumberAvailable {
			t.Fatalf("%s AVAILABLE after B's release phase", g.MSN)
		}
	}

	res, err = f.runners[a].Pass(ctx, []string{jobs.PhaseRelease})
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts["release.released"] != 5 {
		t.Fatalf("A released %d, want its 5 numbers (%v)", res.Counts["release.released"], res.Counts)
	}
	for _, g := range got {
		if st := f.sim.NumberState(g.MSN); st != octane.NumberAvailable {
			t.Errorf("%s is %s after A's release", g.MSN, st)
		}
	}
	back, err := sa.Activation(ctx, rows[0].ID)
	if err != nil || back.State != repo.StatePending || back.Credential != a {
		t.Fatalf("A's selected row after the release: %+v %v", back, err)
	}
}

// A refused unreserve is never recorded as released while Octane still
// holds the number for someone: the number stays ours in the database, and
// is recorded released only once queryResources finds it AVAILABLE.
func TestRefusedUnreserveStaysHeld(t *testing.T) {
	f := newFleet(t, 2, octanetest.Faults{}, nil)
	a, b := f.creds[0], f.creds[1]
	ctx := context.Background()
	cb, err := octane.New(f.url+"/tiab", f.url+"/tiab/api", b, "pw-"+b, octane.WithWindows(minuteWin, hourWin))
	if err != nil {
		t.Fatal(err)
	}
	got, err := cb.ReserveResources(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	msn := got[0].MSN
	// The database says A's crashed run holds the number B holds in
	// Octane (a record gone stale, or written before ownership existed).
	sa := f.stores[a]
	crashed, err := sa.StartRun(ctx, f.clock.Now(), a, []string{"submit"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := sa.SaveReservations(ctx, crashed, a, f.clock.Now(), []repo.Reservation{{MSN: msn}}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(10 * time.Minute)
	held := func() int {
		var n int
		if err := sa.DB().Get(&n, sa.DB().Rebind(`SELECT COUNT(*) FROM reservations WHERE msn = ? AND state = 'free'`), msn); err != nil {
			t.Fatal(err)
		}
		return n
	}
	res, err := f.runners[a].Pass(ctx, []string{jobs.PhaseRelease})
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts["release.refused"] != 1 || res.Counts["release.released"] != 0 || held() != 1 {
		t.Fatalf("refused unreserve of a number B holds: counts %v, still held %d; want refused 1, held", res.Counts, held())
	}
	if st := f.sim.NumberState(msn); st != octane.NumberReserved {
		t.Fatalf("%s is %s, want still RESERVED by B", msn, st)
	}
	// B gives it back; A's next release is refused again, but the number
	// is AVAILABLE now, so A's stale hold is recorded released.
	if err := cb.UnreserveResource(ctx, msn); err != nil {
		t.Fatal(err)
	}
	res, err = f.runners[a].Pass(ctx, []string{jobs.PhaseRelease})
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts["release.released"] != 1 || held() != 0 {
		t.Fatalf("after B gave it back: counts %v, still held %d; want released 1", res.Counts, held())
	}
}
