//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"image"
	_ "image/png" // QR images in the workbooks
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
	"github.com/skip2/go-qrcode"
	"github.com/xuri/excelize/v2"

	"github.com/esimbatch/esimbatch/reports/smtptest"
)

// act is one activations row.
type act struct {
	id                        int64
	ref, state, msn, orderID  string
	code, step, ecode, emsg   string
	simType                   string
	plan, attempts            int
	reported, adopted         bool
	reportNumber              int64
	reportMessageID           string
	reportDelivered, inReport bool
}

func terminal(state string) bool {
	return state == "qr_ready" || state == "provisioned" || state == "failed"
}

// checker holds what the invariants are checked against.
type checker struct {
	h        *harness
	t        *testing.T
	sales    map[string]sale
	order    []string // sales refs in file order
	files    []salesFile
	recs     []*passRec
	ledger   []ledgerEntry
	acts     map[string]*act
	byID     map[int64]*act
	owners   map[string]map[int64]bool // MSN -> activations that held or ordered it
	msnsOf   map[int64][]string
	orders   map[string]ledgerEntry // accepted orderCreate by order id
	known    map[string]bool        // MSNs in our reservations table
	budget   map[string]int         // evidence printed per kind of violation
	failures map[string]int         // violations per kind
	stats    []string
	simNow   time.Time
	mailAll  []smtptest.Message

	undecodable int // QR images gozxing cannot read that are their code's symbol
	stormFrom   int // passes [stormFrom, stormTo) ran with spurious 233s
	stormTo     int
	minKills    int       // SIGKILLs that must land mid-pass
	stopFrom    time.Time // simulator time the 25 h stop began
	sweepFrom   int       // index in recs of the first idle sweep pass
}

func newChecker(h *harness, sales []sale, files []salesFile, recs []*passRec) *checker {
	c := &checker{h: h, t: h.t, sales: map[string]sale{}, files: files, recs: recs, acts: map[string]*act{},
		byID: map[int64]*act{}, owners: map[string]map[int64]bool{}, msnsOf: map[int64][]string{},
		orders: map[string]ledgerEntry{}, known: map[string]bool{}, budget: map[string]int{}, failures: map[string]int{}}
	for _, s := range sales {
		c.sales[s.ref] = s
		c.order = append(c.order, s.ref)
	}
	return c
}

func (c *checker) run() {
	c.load()
	c.checkExits()
	c.checkStates()
	c.checkOrders()
	c.checkPolls()
	c.checkExpiries()
	c.checkReports()
	c.checkRuns()
	c.checkBudget()
	c.checkSweep()
	kinds := make([]string, 0, len(c.failures))
	for k := range c.failures {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		if n := c.failures[k]; n > 10 {
			c.t.Errorf("%d violations of the kind %q in all (the first 10 are above)", n, k)
		}
	}
	c.t.Logf("summary:\n  %s", strings.Join(c.stats, "\n  "))
}

// fail reports a violation; past ten of one kind they are only counted,
// and run() reports the count.
func (c *checker) fail(kind, format string, args ...any) {
	c.t.Helper()
	c.failures[kind]++
	if c.failures[kind] <= 10 {
		c.t.Errorf(format, args...)
	}
}

func (c *checker) stat(format string, args ...any) {
	c.stats = append(c.stats, fmt.Sprintf(format, args...))
}

// load reads the ledger and the database.
func (c *checker) load() {
	t := c.t
	c.ledger = nil
	for _, e := range c.h.ledger() {
		if e.Credential == cred || e.Credential == "" {
			c.ledger = append(c.ledger, e)
		}
	}
	c.simNow = c.h.simNow()
	c.mailAll = c.h.mail.Messages()
	rows, err := c.h.db.Query(`SELECT a.id, a.sales_ref, a.state, a.msn, a.order_id, a.activation_code, a.last_error_step,
  a.last_error_code, a.last_error_message, a.sim_type, a.plan_no, a.attempts, a.reported_at IS NOT NULL, a.adopted,
  COALESCE(r.number, 0), COALESCE(r.message_id, ''), COALESCE(r.delivered_at IS NOT NULL, false), r.id IS NOT NULL
FROM activations a LEFT JOIN report_items ri ON ri.activation_id = a.id LEFT JOIN reports r ON r.id = ri.report_id`)
	if err != nil {
		t.Fatalf("read activations: %v", err)
	}
	for rows.Next() {
		a := &act{}
		if err := rows.Scan(&a.id, &a.ref, &a.state, &a.msn, &a.orderID, &a.code, &a.step, &a.ecode, &a.emsg, &a.simType,
			&a.plan, &a.attempts, &a.reported, &a.adopted, &a.reportNumber, &a.reportMessageID, &a.reportDelivered, &a.inReport); err != nil {
			t.Fatal(err)
		}
		if c.acts[a.ref] != nil {
			t.Errorf("%s is in two reports (report_items)", a.ref)
		}
		c.acts[a.ref] = a
		c.byID[a.id] = a
		c.own(a.msn, a.id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	// Which activation a number belongs to: the ledger's orders carry no
	// sales reference, so it comes from our side: the orderCreate calls
	// logged with their activation, the reservations handed to one, the
	// number on the row.
	rows, err = c.h.db.Query(`SELECT msn, activation_id FROM calls WHERE method = 'orderCreate' AND activation_id IS NOT NULL AND msn <> ''
UNION SELECT msn, activation_id FROM reservations WHERE activation_id IS NOT NULL`)
	if err != nil {
		t.Fatalf("read calls and reservations: %v", err)
	}
	for rows.Next() {
		var msn string
		var id int64
		if err := rows.Scan(&msn, &id); err != nil {
			t.Fatal(err)
		}
		c.own(msn, id)
	}
	rows.Close()
	rows, err = c.h.db.Query(`SELECT DISTINCT msn FROM reservations`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var msn string
		_ = rows.Scan(&msn)
		c.known[msn] = true
	}
	rows.Close()
	for _, e := range c.ledger {
		if e.Method == "orderCreate" && e.OrderID != "" && (e.Outcome == "ok" || e.Outcome == "dropped") {
			c.orders[e.OrderID] = e
		}
	}
	calls := map[string]int{}
	for _, e := range c.ledger {
		calls[e.Method+" "+e.Outcome]++
	}
	keys := make([]string, 0, len(calls))
	for k := range calls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, calls[k]))
	}
	c.stat("ledger: %d calls: %s", len(c.ledger), strings.Join(parts, ", "))
}

func (c *checker) own(msn string, id int64) {
	if msn == "" {
		return
	}
	if c.owners[msn] == nil {
		c.owners[msn] = map[int64]bool{}
	}
	if !c.owners[msn][id] {
		c.owners[msn][id] = true
		c.msnsOf[id] = append(c.msnsOf[id], msn)
	}
}

// evidence is what to debug an activation with: its row, its events, its
// logged calls and the simulator's ledger for its numbers. At most five
// activations per kind of violation get it.
func (c *checker) evidence(kind string, a *act) string {
	if a == nil {
		return ""
	}
	c.budget[kind]++
	if c.budget[kind] > 5 {
		if c.budget[kind] == 6 {
			return "\n  (further evidence of this kind left out)"
		}
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n  activation %d %s: state %s, msn %q, order %q, adopted %v, attempts %d, last error %s/%s %q, reported %v",
		a.id, a.ref, a.state, a.msn, a.orderID, a.adopted, a.attempts, a.step, a.ecode, a.emsg, a.reported)
	rows, err := c.h.db.Query(`SELECT at, COALESCE(run_id, 0), kind, step, from_state, to_state, outcome, code, message
FROM events WHERE activation_id = $1 ORDER BY id`, a.id)
	if err == nil {
		for rows.Next() {
			var at time.Time
			var run int64
			var kind, step, from, to, outcome, code, msg string
			if rows.Scan(&at, &run, &kind, &step, &from, &to, &outcome, &code, &msg) == nil {
				fmt.Fprintf(&b, "\n    event %s run %d %s %s %s->%s %s %s %q", at.UTC().Format(time.DateTime), run, kind, step, from, to, outcome, code, msg)
			}
		}
		rows.Close()
	}
	rows, err = c.h.db.Query(`SELECT sent_at, COALESCE(run_id, 0), method, outcome, code, msn, order_id FROM calls WHERE activation_id = $1 ORDER BY id`, a.id)
	if err == nil {
		for rows.Next() {
			var at time.Time
			var run int64
			var method, outcome, code, msn, order string
			if rows.Scan(&at, &run, &method, &outcome, &code, &msn, &order) == nil {
				fmt.Fprintf(&b, "\n    call %s run %d %s %s %s msn %s order %s", at.UTC().Format(time.DateTime), run, method, outcome, code, msn, order)
			}
		}
		rows.Close()
	}
	for _, msn := range c.msnsOf[a.id] {
		for _, e := range c.ledger {
			if e.MSN == msn || strings.Contains(","+e.MSN+",", ","+msn+",") {
				fmt.Fprintf(&b, "\n    sim %s %s %s %s msn %s order %s", e.At.UTC().Format(time.DateTime), e.Method, e.Outcome, e.Code, e.MSN, e.OrderID)
			}
		}
	}
	return b.String()
}

// transportFaults counts the calls that found Octane unreachable while p ran.
func (c *checker) transportFaults(p *proc) int {
	from, to := p.start.Add(-time.Second), p.end.Add(time.Second)
	n := c.h.proxy.faultsBetween(from, to)
	sf, st := from.Add(p.offset), to.Add(p.offset)
	for _, e := range c.ledger {
		if e.Outcome == "dropped" && e.Code == "transport" && !e.At.Before(sf) && !e.At.After(st) {
			n++
		}
	}
	return n
}

// checkExits holds every pass to the documented exit codes: 0 for a
// completed pass, one that reached its deadline, or one that found the
// lock held; 1 for an infrastructure failure (Octane unreachable,
// PostgreSQL down, the mail server refusing); never 2; a SIGKILLed pass
// has no code.
func (c *checker) checkExits() {
	landed, skips, deadlines, triples := 0, 0, 0, 0
	for _, r := range c.recs {
		for _, p := range r.procs {
			if strings.Contains(p.stdout(), "another run holds the lock") {
				skips++
				if r.kind == "triple" {
					triples++
				}
			}
			if dl, err := time.ParseDuration(p.deadline); err == nil && r.kind == "deadline" && p.signal == "" &&
				(p.end.Sub(p.start) >= dl || strings.Contains(p.stdout(), "RUN_DEADLINE")) {
				deadlines++
			}
			if p.killed && p.signal != "" {
				landed++
			}
			c.checkExit(r, p)
		}
	}
	c.stat("passes: %d processes; %d SIGKILLs landed mid-pass; %d runs found the lock held (%d in triples); %d passes cut by RUN_DEADLINE",
		c.count(), landed, skips, triples, deadlines)
	if landed < c.minKills {
		c.t.Errorf("only %d SIGKILLs landed mid-pass, the scenario wants at least %d", landed, c.minKills)
	}
	var all []*proc
	for _, r := range c.recs {
		all = append(all, r.procs...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].end.Sub(all[i].start) > all[j].end.Sub(all[j].start) })
	var slow []string
	for _, p := range all[:min(5, len(all))] {
		slow = append(slow, fmt.Sprintf("%s %.1fs", p.name, p.end.Sub(p.start).Seconds()))
	}
	c.stat("slowest passes: %s", strings.Join(slow, ", "))
	if triples == 0 {
		c.t.Logf("note: no run of a triple found the lock held; the triples did not overlap")
	}
}

func (c *checker) count() int {
	n := 0
	for _, r := range c.recs {
		n += len(r.procs)
	}
	return n
}

func (c *checker) checkExit(r *passRec, p *proc) {
	bad := func(why string) {
		c.fail("exit: "+why[:min(len(why), 40)], "pass %d (%s): %s\n  %s\n  stdout: %s\n  stderr tail:\n%s", r.idx, r.kind, why, p,
			strings.ReplaceAll(strings.TrimSpace(p.stdout()), "\n", " | "), indent(tail(p.errPath, 25)))
	}
	held := strings.Contains(p.stdout(), "another run holds the lock")
	if held && p.code == 0 {
		return // found the lock held: exit 0, nothing done
	}
	tf := c.transportFaults(p)
	f := p.failure()
	lf := strings.ToLower(f)
	dl, _ := time.ParseDuration(p.deadline)
	took := p.end.Sub(p.start)
	reached := dl > 0 && took >= dl
	if dl > 0 && took > dl+inflightGrace && p.signal == "" {
		bad(fmt.Sprintf("ran %s with RUN_DEADLINE %s: past the deadline a pass only lets a sent call finish (%s)", took.Round(100*time.Millisecond), dl, inflightGrace))
	}
	switch {
	case p.timedOut:
		bad("did not end within the harness's timeout")
	case p.signal != "":
		if !p.killed {
			bad("ended by a signal the scenario did not send")
		}
	case p.code == 2:
		bad("exit 2 (bad configuration) in a well-configured scenario")
	case p.code == 0:
		if r.outage && tf >= 10 {
			bad(fmt.Sprintf("exit 0 although Octane was unreachable (%d calls could not reach it): an unreachable Octane is the pass's failure, exit 1 (promise 10)", tf))
		}
	case p.code == 1:
		switch {
		case !r.pgFrom.IsZero() && !p.end.Before(r.pgFrom):
			// PostgreSQL went away under the pass.
		case (r.outage || tf > 0) && strings.Contains(lf, "octane"):
			// Octane unreachable.
		case r.smtpRefused && (strings.Contains(lf, "report") || strings.Contains(lf, "smtp") || strings.Contains(lf, "mail")):
			// The mail server refused the report.
		case reached && strings.Contains(lf, "deadline exceeded"):
			bad("exit 1 for a pass that reached its RUN_DEADLINE (" + p.deadline + "): a pass that reaches its deadline with work left is a normal pass, exit 0 (promise 9)")
		default:
			bad("exit 1 with no infrastructure failure to explain it: " + f)
		}
	default:
		bad(fmt.Sprintf("exit %d: not a documented exit code", p.code))
	}
}

// inflightGrace is how long past RUN_DEADLINE a pass may run: the README's
// 20 s for a sent Octane call to finish, and some slack to record the run.
const inflightGrace = 25 * time.Second

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// failureExplained says whether a failed row failed for a reason the
// scenario caused on purpose.
func failureExplained(s sale, a *act) (bool, string) {
	switch {
	case a.ecode == "transport" || a.ecode == "233" || strings.Contains(strings.ToLower(a.emsg), "rate limit"):
		return false, "failed by a transport fault or a rate-limit 233: those back off and never fail a row (promises 5, 10)"
	case s.kind == "badplan" && strings.Contains(a.emsg, "Invalid plan"):
		return true, ""
	case strings.HasPrefix(a.emsg, "Simulated rejection"):
		return true, "" // reject and asyncreject faults
	case a.step == "reconcile":
		// README, known limitations: a lost orderCreate answer whose order
		// cannot be proved ours or absent fails for review, never reorders.
		return true, ""
	}
	return false, "failed for a reason no injected fault explains"
}

// checkStates: every activation terminal, each kind of sale in the states
// it may end in, every failure explained.
func (c *checker) checkStates() {
	counts := map[string]int{}
	lost, ok := 0, 0
	for _, ref := range c.order {
		s := c.sales[ref]
		a := c.acts[ref]
		if a == nil {
			c.fail("state", "%s: the sale never became an activation (promise 6)", ref)
			continue
		}
		counts[a.state]++
		if !terminal(a.state) {
			c.fail("state", "%s: still %s after the drain%s", ref, a.state, c.evidence("open", a))
			continue
		}
		switch {
		case s.kind == "badplan" && a.state != "failed":
			c.fail("state", "%s: plan 9999 is refused by Octane, yet the row is %s%s", ref, a.state, c.evidence("badplan", a))
		case s.kind == "physical" && a.state == "qr_ready":
			c.fail("state", "%s: a physical SIM ended qr_ready%s", ref, c.evidence("physical", a))
		case s.kind != "physical" && a.state == "provisioned":
			c.fail("state", "%s: an eSIM ended provisioned though QR_BY_EMAIL is off%s", ref, c.evidence("esim", a))
		}
		if a.state == "failed" {
			if explained, why := failureExplained(s, a); !explained {
				c.fail("failure: "+why, "%s: %s: step %q code %q message %q%s", ref, why, a.step, a.ecode, a.emsg, c.evidence("failure-"+why[:12], a))
			}
			if a.step == "reconcile" {
				lost++
			}
		} else {
			ok++
			if a.state == "qr_ready" && a.code == "" {
				c.fail("state", "%s: qr_ready without an activation code%s", ref, c.evidence("nocode", a))
			}
		}
	}
	if len(c.acts) != len(c.sales) {
		c.t.Errorf("%d activations in the database for %d sales rows (rejected lines must not become activations)", len(c.acts), len(c.sales))
	}
	good := 0
	for _, s := range c.sales {
		if s.kind != "badplan" {
			good++
		}
	}
	if ok < good*3/4 {
		c.t.Errorf("only %d of %d valid sales ended live: a few percent of faults cannot explain that", ok, good)
	}
	c.stat("states: %v (%d failed for review after a lost orderCreate answer)", counts, lost)
}

// checkOrders: at most one accepted orderCreate per activation (lost
// answers included), exactly one for a live one (promise 1).
func (c *checker) checkOrders() {
	per := map[int64][]ledgerEntry{}
	ids := make([]string, 0, len(c.orders))
	for id := range c.orders {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		o := c.orders[id]
		own := c.owners[o.MSN]
		switch len(own) {
		case 0:
			c.fail("orders", "order %s on %s (%s %s): an order Octane accepted that no activation knows of", id, o.MSN, o.Outcome, o.At.UTC().Format(time.DateTime))
		case 1:
		default:
			var refs []string
			var ev string
			for aid := range own {
				refs = append(refs, c.byID[aid].ref)
				ev += c.evidence("shared-msn", c.byID[aid])
			}
			sort.Strings(refs)
			c.fail("orders", "number %s (order %s) was held or ordered by %d activations: %v%s", o.MSN, id, len(own), refs, ev)
		}
		for aid := range own {
			per[aid] = append(per[aid], o)
		}
	}
	for _, ref := range c.order {
		a := c.acts[ref]
		if a == nil {
			continue
		}
		os := per[a.id]
		switch {
		case len(os) > 1:
			var desc []string
			for _, o := range os {
				desc = append(desc, fmt.Sprintf("%s on %s at %s (%s)", o.OrderID, o.MSN, o.At.UTC().Format(time.DateTime), o.Outcome))
			}
			c.fail("orders", "%s: %d accepted orderCreate calls, want at most 1 (promise 1): %s%s", ref, len(os), strings.Join(desc, "; "), c.evidence("two-orders", a))
		case len(os) == 0 && (a.state == "qr_ready" || a.state == "provisioned"):
			c.fail("orders", "%s: %s without an accepted order on the simulator%s", ref, a.state, c.evidence("no-order", a))
		}
	}
	c.stat("orders: %d accepted by the simulator", len(c.orders))
}

// checkPolls: no order queried twice within 30 simulator minutes, dropped
// (processed) queries included (promise 2).
func (c *checker) checkPolls() {
	at := map[string][]time.Time{}
	for _, e := range c.ledger {
		if e.Method == "orderQuery" && e.OrderID != "" {
			at[e.OrderID] = append(at[e.OrderID], e.At)
		}
	}
	polls := 0
	for id, ts := range at {
		polls += len(ts)
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		for i := 1; i < len(ts); i++ {
			if gap := ts[i].Sub(ts[i-1]); gap < 30*time.Minute {
				var a *act
				if o, ok := c.orders[id]; ok {
					for aid := range c.owners[o.MSN] {
						a = c.byID[aid]
					}
				}
				c.fail("polls", "order %s queried at %s and again %s later (promise 2: 30 minutes)%s%s", id,
					ts[i-1].UTC().Format(time.DateTime), gap.Round(time.Second), c.evidence("poll", a),
					c.pollWitness(id, ts[i-1], ts[i]))
			}
		}
	}
	c.stat("polls: %d orderQuery calls over %d orders", polls, len(at))
}

// pollWitness names the passes that ran at each of two queries of an
// order and every log line of theirs that names the order.
func (c *checker) pollWitness(orderID string, at ...time.Time) string {
	if c.budget["poll-witness"]++; c.budget["poll-witness"] > 3 {
		return ""
	}
	var b strings.Builder
	runOf := regexp.MustCompile(`run_id=(\d+)`)
	for _, r := range c.recs {
		for _, p := range r.procs {
			s, e := p.start.Add(p.offset), p.end.Add(p.offset)
			if e.Before(at[0].Add(-10*time.Second)) || s.After(at[len(at)-1].Add(10*time.Second)) {
				continue
			}
			run := "-"
			if m := runOf.FindStringSubmatch(p.stderr()); m != nil {
				run = m[1]
			}
			fmt.Fprintf(&b, "\n  nearby: pass %d (%s) run %s, simulator %s..%s, %s", r.idx, r.kind, run,
				s.UTC().Format("15:04:05.000"), e.UTC().Format("15:04:05.000"), p)
		}
	}
	if rows, err := c.h.db.Query(`SELECT id, started_at, COALESCE(finished_at, started_at), COALESCE(outcome, '') FROM runs ORDER BY id`); err == nil {
		for rows.Next() {
			var id int64
			var st, fin time.Time
			var outcome string
			if rows.Scan(&id, &st, &fin, &outcome) == nil && !fin.Before(at[0].Add(-time.Hour)) && !st.After(at[len(at)-1].Add(time.Hour)) {
				fmt.Fprintf(&b, "\n  run %d: %s..%s %s", id, st.UTC().Format("15:04:05.000"), fin.UTC().Format("15:04:05.000"), outcome)
			}
		}
		rows.Close()
	}
	// What the job wrote about the order: its calls and its row's events.
	if rows, err := c.h.db.Query(`SELECT COALESCE(run_id, 0), method, outcome, sent_at FROM calls WHERE order_id = $1 ORDER BY id`, orderID); err == nil {
		for rows.Next() {
			var run int64
			var method, outcome string
			var sent time.Time
			if rows.Scan(&run, &method, &outcome, &sent) == nil {
				fmt.Fprintf(&b, "\n  call: run %d %s %s sent %s", run, method, outcome, sent.UTC().Format("15:04:05.000"))
			}
		}
		rows.Close()
	}
	if rows, err := c.h.db.Query(`SELECT e.at, COALESCE(e.run_id, 0), e.step, e.from_state, e.to_state, e.outcome
FROM events e JOIN activations a ON a.id = e.activation_id WHERE a.order_id = $1 ORDER BY e.id`, orderID); err == nil {
		for rows.Next() {
			var at time.Time
			var run int64
			var step, from, to, outcome string
			if rows.Scan(&at, &run, &step, &from, &to, &outcome) == nil {
				fmt.Fprintf(&b, "\n  event: %s run %d %s %s -> %s %s", at.UTC().Format("15:04:05.000"), run, step, from, to, outcome)
			}
		}
		rows.Close()
	}
	for _, t := range at {
		fmt.Fprintf(&b, "\n  query at %s (simulator):", t.UTC().Format("15:04:05.000"))
		for _, r := range c.recs {
			for _, p := range r.procs {
				if t.Before(p.start.Add(p.offset).Add(-time.Second)) || t.After(p.end.Add(p.offset).Add(time.Second)) {
					continue
				}
				fmt.Fprintf(&b, "\n    during pass %d (%s) %s", r.idx, r.kind, p)
				for _, l := range strings.Split(p.stderr(), "\n") {
					if strings.Contains(l, orderID) {
						fmt.Fprintf(&b, "\n      %s", l)
					}
				}
			}
		}
	}
	return b.String()
}

// checkExpiries: no reservation we knew of lapsed on the simulator
// (promise 3), except those the job never learned of (a reserveResources
// answer lost, or a kill before it was stored: README, known limitations)
// and those held when the job stopped for 25 h.
func (c *checker) checkExpiries() {
	var exps []expiry
	if c.h.simExpiry {
		var all []expiry
		c.h.getJSON("/_sim/expired", &all)
		for _, e := range all {
			if e.Credential == cred {
				exps = append(exps, e)
			}
		}
	} else {
		exps = c.ledgerExpiries()
	}
	lost, killed, stopped := 0, 0, 0
	for _, e := range exps {
		switch {
		case !c.known[e.MSN] && c.reserveAnswerLost(e):
			lost++
		case !c.known[e.MSN] && c.killedAt(e.ReservedAt):
			killed++
		case c.known[e.MSN] && !c.stopFrom.IsZero() && !e.ReservedAt.After(c.stopFrom) && e.ExpiredAt.After(c.stopFrom) &&
			!e.ExpiredAt.After(c.stopFrom.Add(25*time.Hour+time.Minute)):
			stopped++
		case !c.known[e.MSN]:
			c.fail("expiry", "reservation of %s (reserved %s) lapsed on the simulator at %s: Octane answered the reserveResources call, no pass was killed then, yet the job never stored the number (promise 3: every reserved number is stored before use)%s",
				e.MSN, e.ReservedAt.UTC().Format(time.DateTime), e.ExpiredAt.UTC().Format(time.DateTime), c.passAt(e.ReservedAt))
		default:
			var ev string
			for aid := range c.owners[e.MSN] {
				ev += c.evidence("expiry", c.byID[aid])
			}
			c.fail("expiry", "reservation of %s (reserved %s, %s) lapsed on the simulator at %s: numbers are released before 24 h (promise 3)%s%s",
				e.MSN, e.ReservedAt.UTC().Format(time.DateTime), e.State, e.ExpiredAt.UTC().Format(time.DateTime), c.reservationRows(e.MSN), ev)
		}
	}
	src := "GET /_sim/expired"
	if !c.h.simExpiry {
		src = "the ledger"
	}
	c.stat("lapsed reservations (from %s): %d; %d whose reserveResources answer was lost, %d reserved by a pass then SIGKILLed, %d held across the 25 h stop",
		src, len(exps), lost, killed, stopped)
}

// reserveAnswerLost says whether the reserveResources call that handed out
// e's number lost its answer (README, known limitations: the job never
// learns of those numbers).
func (c *checker) reserveAnswerLost(e expiry) bool {
	for _, l := range c.ledger {
		if l.Method != "reserveResources" || !strings.Contains(","+l.MSN+",", ","+e.MSN+",") || l.At.Sub(e.ReservedAt).Abs() > time.Second {
			continue
		}
		if l.Outcome == "dropped" {
			return true
		}
		if p := c.procAt(l.At); p != nil && c.h.proxy.droppedNear("reserveResources", l.At.Add(-p.offset)) {
			return true
		}
	}
	return false
}

// procAt is a batch run that was running at simulator time at.
func (c *checker) procAt(at time.Time) *proc {
	for _, r := range c.recs {
		for _, p := range r.procs {
			if !at.Before(p.start.Add(p.offset).Add(-time.Second)) && !at.After(p.end.Add(p.offset).Add(time.Second)) {
				return p
			}
		}
	}
	return nil
}

// killedAt says whether a pass running at simulator time at was SIGKILLed:
// a number reserved just before the kill may never have been stored.
func (c *checker) killedAt(at time.Time) bool {
	for _, r := range c.recs {
		for _, p := range r.procs {
			if p.killed && p.signal != "" && !at.Before(p.start.Add(p.offset).Add(-time.Second)) && !at.After(p.end.Add(p.offset).Add(time.Second)) {
				return true
			}
		}
	}
	return false
}

// passAt names the passes that ran at simulator time at, with the tail of
// their stderr.
func (c *checker) passAt(at time.Time) string {
	var b strings.Builder
	for _, r := range c.recs {
		for _, p := range r.procs {
			if !at.Before(p.start.Add(p.offset).Add(-time.Second)) && !at.After(p.end.Add(p.offset).Add(time.Second)) {
				fmt.Fprintf(&b, "\n  during %s\n%s", p, indent(tail(p.errPath, 8)))
			}
		}
	}
	return b.String()
}

func (c *checker) reservationRows(msn string) string {
	rows, err := c.h.db.Query(`SELECT id, run_id, reserved_at, state, COALESCE(activation_id, 0), updated_at FROM reservations WHERE msn = $1 ORDER BY id`, msn)
	if err != nil {
		return ""
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, run, aid int64
		var at, upd time.Time
		var state string
		if rows.Scan(&id, &run, &at, &state, &aid, &upd) == nil {
			fmt.Fprintf(&b, "\n    reservation %d run %d reserved %s %s activation %d updated %s", id, run,
				at.UTC().Format(time.DateTime), state, aid, upd.UTC().Format(time.DateTime))
		}
	}
	return b.String()
}

// ledgerExpiries works out lapsed reservations from the ledger: a number
// reserved at T that no orderCreate consumed and no unreserveResources
// gave back before T+24h, the simulator's clock being past T+24h.
func (c *checker) ledgerExpiries() []expiry {
	byMSN := map[string][]ledgerEntry{}
	for _, e := range c.ledger {
		if e.MSN != "" && !strings.Contains(e.MSN, ",") {
			byMSN[e.MSN] = append(byMSN[e.MSN], e)
		}
	}
	var out []expiry
	for _, e := range c.ledger {
		if e.Method != "reserveResources" || e.MSN == "" || (e.Outcome != "ok" && e.Outcome != "dropped") {
			continue
		}
		for _, msn := range strings.Split(e.MSN, ",") {
			until := e.At.Add(24 * time.Hour)
			ended := false
			for _, l := range byMSN[msn] {
				if l.At.Before(e.At) {
					continue
				}
				if !l.At.Before(until) {
					break
				}
				if (l.Method == "orderCreate" && l.OrderID != "") || (l.Method == "unreserveResources" && l.Outcome == "ok") {
					ended = true
					break
				}
			}
			if !ended && !c.simNow.Before(until) {
				out = append(out, expiry{MSN: msn, Credential: cred, State: "RESERVED or SELECTED", ReservedAt: e.At, ExpiredAt: until})
			}
		}
	}
	return out
}

// mailed is one delivered report.
type mailed struct {
	messageID, subject, file string
	number                   int64
}

var lpaCode = regexp.MustCompile(`^LPA:1\$smdp\.sim\.example\$(\d+)-[0-9A-F]{8}$`)

// checkReports: every ended activation in exactly one delivered report, on
// the right sheet, with its own QR code and nobody else's (promises 4, 1);
// every rejected sales line in exactly one report (promise 6); the database
// agrees.
func (c *checker) checkReports() {
	t := c.t
	in := map[string]map[string]bool{} // ref -> message ids
	rejectsIn := map[rejectLine]map[string]bool{}
	byMID := map[string]mailed{}
	dup, images := 0, 0
	qrOf := map[string]string{} // activation code -> ref
	esim := map[string]map[string]bool{}
	for _, e := range c.ledger {
		if e.Method == "getEsimDetails" && e.Outcome == "ok" {
			if esim[e.MSN] == nil {
				esim[e.MSN] = map[string]bool{}
			}
			esim[e.MSN][e.OrderID] = true
		}
	}
	resentCopies := 0
	for i, m := range c.mailAll {
		p, err := smtptest.Parse(m.Data)
		if err != nil {
			t.Errorf("email %d: %v", i, err)
			continue
		}
		mid := strings.Trim(p.Header.Get("Message-Id"), "<> ")
		if strings.Contains(strings.ToLower(p.Header.Get("Subject")), "resent") {
			resentCopies++
		}
		if _, seen := byMID[mid]; seen {
			dup++ // the same report delivered again (a crash after sending): not a second report
			continue
		}
		var wb *smtptest.Attachment
		for k := range p.Attachments {
			if strings.HasSuffix(p.Attachments[k].FileName, ".xlsx") {
				wb = &p.Attachments[k]
			}
		}
		if wb == nil {
			t.Errorf("email %q (%s) has no workbook", p.Header.Get("Subject"), mid)
			continue
		}
		byMID[mid] = mailed{messageID: mid, subject: p.Header.Get("Subject"), file: wb.FileName}
		f, err := excelize.OpenReader(bytes.NewReader(wb.Data))
		if err != nil {
			t.Errorf("%s: %v", wb.FileName, err)
			continue
		}
		add := func(ref, sheet string) {
			if in[ref] == nil {
				in[ref] = map[string]bool{}
			}
			in[ref][mid] = true
			a := c.acts[ref]
			if a == nil {
				c.fail("reports", "%s lists %s on %q, an activation the database does not have", wb.FileName, ref, sheet)
				return
			}
			if want := map[bool]string{true: "Failures", false: "QR codes"}[a.state == "failed"]; sheet != want {
				c.fail("reports", "%s: %s (%s) is on the %q sheet, want %q", wb.FileName, ref, a.state, sheet, want)
			}
		}
		for _, r := range sheetRows(t, f, "QR codes", wb.FileName) {
			ref := r["Sales reference"]
			add(ref, "QR codes")
			images += c.checkQRRow(f, wb.FileName, r, qrOf, esim)
		}
		for _, r := range sheetRows(t, f, "Failures", wb.FileName) {
			ref := r["Sales reference"]
			add(ref, "Failures")
			// Octane's words go to "Octane message"; a failure of our own
			// carries its message inside "Our reason".
			if a := c.acts[ref]; a != nil && (r["Failed step"] != a.step ||
				!(r["Octane message"] == a.emsg || (r["Octane message"] == "" && strings.Contains(r["Our reason"], a.emsg)))) {
				c.fail("reports", "%s: Failures row of %s says %q %q / %q, the database %q %q", wb.FileName, ref,
					r["Failed step"], r["Octane message"], r["Our reason"], a.step, a.emsg)
			}
		}
		for _, r := range sheetRows(t, f, "Rejected imports", wb.FileName) {
			line, _ := strconv.Atoi(r["Line"])
			k := rejectLine{file: filepath.Base(r["File"]), line: line}
			if rejectsIn[k] == nil {
				rejectsIn[k] = map[string]bool{}
			}
			rejectsIn[k][mid] = true
		}
		f.Close()
	}
	for _, ref := range c.order {
		a := c.acts[ref]
		if a == nil || !terminal(a.state) {
			continue
		}
		switch n := len(in[ref]); {
		case n != 1:
			c.fail("reports", "%s (%s) is in %d delivered reports, want exactly 1 (promise 4)%s", ref, a.state, n, c.evidence("reports", a))
		case !a.inReport || !a.reportDelivered || !a.reported:
			c.fail("reports", "%s was mailed, but the database has report item %v, delivered %v, reported_at set %v", ref, a.inReport, a.reportDelivered, a.reported)
		default:
			for mid := range in[ref] {
				if a.reportMessageID != "" && strings.Trim(a.reportMessageID, "<>") != mid {
					c.fail("reports", "%s: the database puts it in report %d (%s), the mail in %s", ref, a.reportNumber, a.reportMessageID, mid)
				}
			}
		}
	}
	for ref := range in {
		if c.sales[ref].ref == "" {
			c.fail("reports", "a report lists %q, which is no sale of this scenario", ref)
		}
	}
	want := 0
	for _, f := range c.files {
		for _, r := range f.rejects {
			want++
			if n := len(rejectsIn[r]); n != 1 {
				c.fail("rejects", "rejected line %s:%d is in %d delivered reports, want exactly 1 (promise 6)", r.file, r.line, n)
			}
		}
	}
	if len(rejectsIn) != want {
		t.Errorf("the reports list %d rejected lines, the files had %d", len(rejectsIn), want)
	}
	var undelivered int
	if err := c.h.db.QueryRow(`SELECT count(*) FROM reports WHERE delivered_at IS NULL`).Scan(&undelivered); err != nil {
		t.Fatal(err)
	}
	if undelivered > 0 {
		t.Errorf("%d reports were fixed but never delivered (a refused send must be sent again)", undelivered)
	}
	// Every delivered copy counts: a report delivered but not recorded is
	// sent again under its Message-ID, and its first copy is not "resent".
	resent := resentCopies
	if c.h.mail.Attempts() > len(c.mailAll) && resent == 0 {
		t.Errorf("the mail server refused %d sends, and no report came again marked resent", c.h.mail.Attempts()-len(c.mailAll))
	}
	c.stat("mail: %d emails, %d distinct reports, %d delivered twice, %d resent after a refusal, %d refused sends; %d QR images checked (%d that gozxing cannot read matched their code's symbol pixel for pixel)",
		len(c.mailAll), len(byMID), dup, resent, c.h.mail.Attempts()-len(c.mailAll), images, c.undecodable)
}

// checkQRRow checks one row of a QR codes sheet: the activation code is the
// one the simulator issued for this activation's own order, the image
// decodes to it, and no other activation shows it. It returns the number
// of images decoded.
func (c *checker) checkQRRow(f *excelize.File, file string, r map[string]string, qrOf map[string]string, esim map[string]map[string]bool) int {
	ref, msn, code := r["Sales reference"], r["MSN"], r["Activation code"]
	a := c.acts[ref]
	if a == nil {
		return 0
	}
	if a.state == "provisioned" && code == "" {
		return 0 // a physical SIM: no QR
	}
	if code != a.code {
		c.fail("qr", "%s: %s shows activation code %q, the database has %q%s", file, ref, code, a.code, c.evidence("qr", a))
	}
	if other, ok := qrOf[code]; ok && other != ref {
		c.fail("qr", "%s: %s shows the QR code of %s (%q)%s%s", file, ref, other, code, c.evidence("qr", a), c.evidence("qr", c.acts[other]))
	}
	qrOf[code] = ref
	m := lpaCode.FindStringSubmatch(code)
	if m == nil {
		c.fail("qr", "%s: %s: %q is no activation code the simulator issues%s", file, ref, code, c.evidence("qr", a))
		return 0
	}
	o, ok := c.orders[m[1]]
	switch {
	case !ok:
		c.fail("qr", "%s: %s shows the code of order %s, which the simulator never accepted%s", file, ref, m[1], c.evidence("qr", a))
	case o.MSN != msn:
		c.fail("qr", "%s: %s (MSN %s) shows the code of order %s on %s: another customer's eSIM%s", file, ref, msn, m[1], o.MSN, c.evidence("qr", a))
	case len(c.owners[o.MSN]) != 1 || !c.owners[o.MSN][a.id]:
		c.fail("qr", "%s: %s shows the code of order %s on %s, a number this activation did not order alone%s", file, ref, m[1], o.MSN, c.evidence("qr", a))
	case !esim[o.MSN][o.OrderID]:
		c.fail("qr", "%s: %s shows the code of order %s, which no getEsimDetails answer carried%s", file, ref, m[1], c.evidence("qr", a))
	}
	if id := r["Order ID"]; id != "" && id != m[1] {
		c.fail("qr", "%s: %s lists order %s but its code is order %s's%s", file, ref, id, m[1], c.evidence("qr", a))
	}
	cell, ok := r["\x00QR code cell"]
	if !ok {
		return 0
	}
	pics, err := f.GetPictures("QR codes", cell)
	if err != nil || len(pics) != 1 {
		c.fail("qr", "%s: %s: %d QR images in %s (%v), want 1", file, ref, len(pics), cell, err)
		return 0
	}
	text, err := decodeQR(pics[0].File)
	switch {
	case err != nil && rendersCode(pics[0].File, code):
		// gozxing cannot read a few symbols at all, however rendered; the
		// image is pixel for pixel the code's own QR symbol, which is what
		// the check is after.
		c.undecodable++
	case err != nil:
		c.fail("qr", "%s: %s: the QR image neither decodes (%v) nor is the QR symbol of the row's code %q%s", file, ref, err, code, c.evidence("qr", a))
	case text != code:
		c.fail("qr", "%s: %s: the QR image decodes to %q, the row's code is %q (another customer's eSIM?)%s", file, ref, text, code, c.evidence("qr", a))
	}
	return 1
}

// rendersCode says whether png shows exactly the QR symbol of code as the
// simulator (256 px) or the report (128 px) renders it.
func rendersCode(png []byte, code string) bool {
	img, _, err := image.Decode(bytes.NewReader(png))
	if err != nil {
		return false
	}
	for _, size := range []int{256, 128} {
		ref, err := qrcode.Encode(code, qrcode.Medium, size)
		if err != nil {
			continue
		}
		want, _, err := image.Decode(bytes.NewReader(ref))
		if err == nil && samePixels(img, want) {
			return true
		}
	}
	return false
}

func samePixels(a, b image.Image) bool {
	if a.Bounds().Size() != b.Bounds().Size() {
		return false
	}
	ab, bb := a.Bounds(), b.Bounds()
	for y := 0; y < ab.Dy(); y++ {
		for x := 0; x < ab.Dx(); x++ {
			r1, g1, b1, _ := a.At(ab.Min.X+x, ab.Min.Y+y).RGBA()
			r2, g2, b2, _ := b.At(bb.Min.X+x, bb.Min.Y+y).RGBA()
			if (r1+g1+b1 > 3*0x7fff) != (r2+g2+b2 > 3*0x7fff) {
				return false
			}
		}
	}
	return true
}

func decodeQR(png []byte) (string, error) {
	img, _, err := image.Decode(bytes.NewReader(png))
	if err != nil {
		return "", err
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", err
	}
	res, err := zxqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		return "", err
	}
	return res.GetText(), nil
}

// sheetRows reads a sheet cell by cell: the header row names the columns,
// data rows run until the first empty first cell. Each row maps header to
// value; "\x00QR code cell" is the cell of the QR image column.
func sheetRows(t *testing.T, f *excelize.File, sheet, file string) []map[string]string {
	t.Helper()
	if idx, err := f.GetSheetIndex(sheet); err != nil || idx < 0 {
		t.Errorf("%s has no %q sheet", file, sheet)
		return nil
	}
	var headers []string
	for col := 1; col <= 40; col++ {
		cell, _ := excelize.CoordinatesToCellName(col, 1)
		v, err := f.GetCellValue(sheet, cell)
		if err != nil {
			t.Errorf("%s %s!%s: %v", file, sheet, cell, err)
			return nil
		}
		if v == "" {
			break
		}
		headers = append(headers, v)
	}
	var out []map[string]string
	for row := 2; ; row++ {
		r := map[string]string{}
		for i, hd := range headers {
			cell, _ := excelize.CoordinatesToCellName(i+1, row)
			v, err := f.GetCellValue(sheet, cell)
			if err != nil {
				t.Errorf("%s %s!%s: %v", file, sheet, cell, err)
			}
			r[hd] = v
			if hd == "QR code" {
				r["\x00QR code cell"] = cell
			}
			if formula, _ := f.GetCellFormula(sheet, cell); formula != "" {
				t.Errorf("%s %s!%s holds a formula %q: sales text must stay text", file, sheet, cell, formula)
			}
		}
		if len(headers) == 0 || r[headers[0]] == "" {
			break
		}
		out = append(out, r)
	}
	return out
}

// checkRuns: two runs never held the lock at once (their recorded spans
// never overlap).
func (c *checker) checkRuns() {
	rows, err := c.h.db.Query(`SELECT id, started_at, finished_at, outcome FROM runs WHERE finished_at IS NOT NULL ORDER BY started_at, id`)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	var lastID int64
	var lastEnd time.Time
	n, outcomes := 0, map[string]int{}
	for rows.Next() {
		var id int64
		var start, end time.Time
		var outcome string
		if err := rows.Scan(&id, &start, &end, &outcome); err != nil {
			c.t.Fatal(err)
		}
		n++
		outcomes[outcome]++
		if start.Before(lastEnd) {
			c.fail("runs", "run %d started at %s while run %d (until %s) held the lock: two runners at once", id,
				start.UTC().Format(time.RFC3339Nano), lastID, lastEnd.UTC().Format(time.RFC3339Nano))
		}
		if end.After(lastEnd) {
			lastID, lastEnd = id, end
		}
	}
	var total int
	_ = c.h.db.QueryRow(`SELECT count(*) FROM runs`).Scan(&total)
	c.stat("runs: %d recorded, %d finished: %v", total, n, outcomes)
}

// checkBudget: outside the passes that got spurious rate-limit faults, the
// simulator never answered 233: the client kept to every documented limit,
// across processes, kills and restarts (promise 5).
func (c *checker) checkBudget() {
	var from, to time.Time
	for _, r := range c.recs {
		if r.idx < c.stormFrom || r.idx >= c.stormTo || !c.h.simFaults {
			continue
		}
		for _, p := range r.procs {
			if s := p.start.Add(p.offset); from.IsZero() || s.Before(from) {
				from = s
			}
			if e := p.end.Add(p.offset).Add(time.Second); e.After(to) {
				to = e
			}
		}
	}
	storm, real := 0, map[string]int{}
	for _, e := range c.ledger {
		if e.Code != "233" && e.Code != "429" {
			continue
		}
		if !from.IsZero() && !e.At.Before(from) && !e.At.After(to) {
			storm++
			continue
		}
		real[e.Method]++
		if real[e.Method] <= 3 {
			c.fail("budget", "%s answered 233 at %s outside the injected faults: the client went over Octane's limit (promise 5)%s",
				e.Method, e.At.UTC().Format(time.DateTime), c.passAt(e.At))
		}
	}
	c.stat("rate limits: %d spurious 233 injected and waited out, %v real ones", storm, real)
}

// checkSweep: once every activation has ended, the idle passes of the
// sweep order nothing, poll nothing and fetch nothing.
func (c *checker) checkSweep() {
	if c.sweepFrom >= len(c.recs) {
		return
	}
	for _, a := range c.acts {
		if !terminal(a.state) {
			return // reported already; its calls would only repeat it
		}
	}
	first := c.recs[c.sweepFrom].procs[0]
	from := first.start.Add(first.offset)
	for _, e := range c.ledger {
		if e.At.Before(from) {
			continue
		}
		switch e.Method {
		case "orderCreate", "orderQuery", "reserveResources", "selectResource", "addCustomer", "getEsimDetails":
			c.fail("sweep", "an idle pass after every activation had ended called %s (%s, msn %s, order %s)", e.Method, e.Outcome, e.MSN, e.OrderID)
		}
	}
}
