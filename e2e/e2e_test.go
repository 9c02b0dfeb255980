//go:build linux

package e2e

import (
	"database/sql"
	"encoding/csv"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/reports/smtptest"
)

var (
	fullFlag = flag.Bool("e2e.full", false, "run the full black-box scenario (1000 activations); also E2E_FULL=1")
	seedFlag = flag.Int64("e2e.seed", 0, "seed of the black-box scenario; also E2E_SEED (0 or unset: a new one)")
)

// scale sizes a scenario.
type scale struct {
	name       string
	n          int           // activations
	passes     int           // scenario passes, before the drain
	kills      int           // passes SIGKILLed at a random moment
	triples    int           // three passes started at once
	pgRestarts int           // PostgreSQL restarted under a running pass
	deadlines  int           // passes with a RUN_DEADLINE of a few seconds
	outage     int           // passes while Octane is unreachable
	outageStep time.Duration // business time between two of them
	storm      int           // passes with spurious rate-limit faults (each costs up to a minute)
	maxSubmit  int           // MAX_SUBMIT_PER_RUN
}

// The client's limiter runs on real windows (1 minute, 1 hour: batch has
// no setting to compress them), so the simulator does too, and the budget
// sets the pace: orderCreate and orderQuery 100 a minute each. The short
// form stays near two minutes of that budget.
var (
	shortScale = scale{name: "short", n: 150, passes: 26, kills: 8, triples: 3, pgRestarts: 1, deadlines: 2,
		outage: 10, outageStep: 2 * time.Hour, storm: 1, maxSubmit: 30}
	fullScale = scale{name: "full", n: 1000, passes: 80, kills: 24, triples: 6, pgRestarts: 3, deadlines: 4,
		outage: 12, outageStep: 90 * time.Minute, storm: 3, maxSubmit: 120}
)

// childTimeout bounds every batch child; RUN_DEADLINE (3m) plus the
// in-flight grace fits well inside it.
const childTimeout = 5 * time.Minute

// background is the fault mix of ordinary passes.
var background = faults{transport: 0.03, drop: 0.03, reject: 0.01, asyncReject: 0.01}

// sale is one generated sales row.
type sale struct {
	ref, given, surname, email string
	plan                       int
	custNo                     string
	simType, serial            string
	kind                       string // esim, customer (known cust_no), physical, badplan
}

// rejectLine is a sales line the import must refuse, and report.
type rejectLine struct {
	file string // base name
	line int
}

// salesFile is one generated file.
type salesFile struct {
	name    string
	rows    []sale
	rejects []rejectLine
	data    []byte
}

var (
	givenNames = []string{"Ava", "Jack", "Isla", "Noah", "Mia", "Leo", "Zoe", "Oscar", "Ruby", "Henry", "Aroha", "Siobhán"}
	surnames   = []string{"Smith", "Nguyen", "O'Neil", "Williams", "Brown", "Wilson", "Taylor", "Kaur", "=SUM(A1)", "Müller"}
	suburbs    = []string{"Perth", "St Kilda, VIC", "Adelaide", "Sydney", "Darwin", "Hobart"}
)

// knownCustomers exist on the simulator from the start.
var knownCustomers = []string{"5001", "5002", "5003", "5004", "5005", "5006", "5007", "5008"}

// genSales makes n sales rows and the physical SIM serials the simulator
// must know: about 6 % physical SIMs, 3 % with a plan Octane refuses, the
// rest eSIMs; a quarter of the last 15 % (the file imported after the long
// stop) belong to customers Octane already knows. Earlier rows all need
// addCustomer first, so while Octane is down they fail before reserving
// numbers and spend none of reserveResources' 50 a minute.
func genSales(rng *rand.Rand, n int) ([]sale, []string) {
	var out []sale
	var serials []string
	for i := range n {
		s := sale{ref: fmt.Sprintf("BB-%05d", i+1), given: givenNames[rng.IntN(len(givenNames))],
			surname: surnames[rng.IntN(len(surnames))], plan: 1001 + rng.IntN(3), simType: "esim", kind: "esim"}
		s.email = fmt.Sprintf("cust%05d@example.com", i+1)
		switch r := rng.Float64(); {
		case r < 0.06:
			s.kind, s.simType = "physical", "physical"
			s.serial = fmt.Sprintf("PSIM%06d", i+1)
			serials = append(serials, s.serial)
		case r < 0.09:
			s.kind, s.plan = "badplan", 9999
		case r < 0.34 && i >= n*85/100:
			s.kind, s.custNo = "customer", knownCustomers[rng.IntN(len(knownCustomers))]
		}
		out = append(out, s)
	}
	return out, serials
}

// writeSales renders rows as a CSV file with three lines the import must
// reject, at random places.
func writeSales(rng *rand.Rand, name string, rows []sale) salesFile {
	f := salesFile{name: name, rows: rows}
	var b strings.Builder
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"sales_ref", "given_names", "surname", "email", "plan_no", "cust_no", "sim_type", "sim_serial",
		"address_line1", "suburb", "state", "postcode", "notes"})
	bad := [][]string{
		{name + "-REJ-1", "No", "Email", "", "1001", "", "esim", "", "", "", "", "", ""},
		{name + "-REJ-2", "Bad", "Plan", "bad.plan@example.com", "one-thousand", "", "esim", "", "", "", "", "", ""},
		{name + "-REJ-3", "No", "Serial", "no.serial@example.com", "1001", "", "physical", "", "", "", "", "", ""},
	}
	slots := make([]int, len(bad))
	for k := range slots {
		slots[k] = rng.IntN(len(rows) + 1)
	}
	sort.Ints(slots)
	line, k := 1, 0
	writeBad := func(slot int) {
		for ; k < len(bad) && slots[k] == slot; k++ {
			_ = w.Write(bad[k])
			line++
			f.rejects = append(f.rejects, rejectLine{file: name, line: line})
		}
	}
	for i, s := range rows {
		writeBad(i)
		_ = w.Write([]string{s.ref, s.given, s.surname, s.email, strconv.Itoa(s.plan), s.custNo, s.simType, s.serial,
			fmt.Sprintf("%d Test St", i+1), suburbs[i%len(suburbs)], "WA", "6000", "e2e"})
		line++
	}
	writeBad(len(rows))
	w.Flush()
	f.data = []byte(b.String())
	return f
}

// passRec is what one pass of the scenario did.
type passRec struct {
	idx         int
	kind        string
	procs       []*proc
	outage      bool
	smtpRefused bool
	pgFrom      time.Time // wall window of a PostgreSQL restart
	pgTo        time.Time
}

// TestBlackBox is the scenario; see the package comment.
func TestBlackBox(t *testing.T) {
	if testing.Short() {
		t.Skip("the black-box suite takes minutes; skipped under -short")
	}
	if os.Getenv("E2E") == "0" {
		t.Skip("E2E=0: black-box suite skipped")
	}
	sc := shortScale
	if *fullFlag || os.Getenv("E2E_FULL") == "1" {
		sc = fullScale
	}
	if v := os.Getenv("E2E_PG_RESTARTS"); v != "" {
		// A knob for hunting what a restart under a pass breaks: more of
		// them in one scenario.
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("E2E_PG_RESTARTS=%q: want a count", v)
		}
		sc.pgRestarts = n
	}
	seed := *seedFlag
	if v := os.Getenv("E2E_SEED"); v != "" && seed == 0 {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("E2E_SEED=%q: %v", v, err)
		}
		seed = n
	}
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000_000
	}
	t.Logf("seed %d (%s form, %d activations); reproduce with E2E_SEED=%d", seed, sc.name, sc.n, seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d (%s form): E2E_SEED=%d go test ./e2e -run TestBlackBox -v", seed, sc.name, seed)
		}
	})
	began := time.Now()
	rng := rand.New(rand.NewPCG(uint64(seed), 0xe2e))

	h := newHarness(t)
	h.pg = startPostgres(t, h.logDir)
	h.dbURL = h.pg.url("e2e")
	h.bin = buildBatch(t, h.dir)
	t.Logf("built batch and started PostgreSQL on port %d in %.1fs", h.pg.port, time.Since(began).Seconds())

	sales, serials := genSales(rng, sc.n)
	simArgs := []string{"--msns", "60000", "--esim-profiles", "20000", "--order-latency", "20m",
		"--group-no", groupNo, "--customers", strings.Join(knownCustomers, ","),
		"--faults", faults{reject: background.reject, asyncReject: background.asyncReject}.spec()}
	if len(serials) > 0 {
		simArgs = append(simArgs, "--physical-sims", strings.Join(serials, ","))
	}
	h.startSim(seed, simArgs...)
	if !h.simFaults {
		t.Logf("the simulator has no POST /_sim/faults: transport and drop faults and the outage come from a proxy in front of it; no rate-limit storm")
	}
	if !h.simExpiry {
		t.Logf("the simulator has no GET /_sim/expired: lapsed reservations are worked out from the ledger")
	}
	h.mail = smtptest.Start(t)
	h.vars = map[string]string{
		"DATABASE_URL": h.dbURL, "OCTANE_SOAP_URL": h.octaneURL + "/tiab", "OCTANE_REST_URL": h.octaneURL + "/tiab/api",
		"OCTANE_USERNAME": cred, "OCTANE_PASSWORD": password, "OCTANE_GROUP_NO": groupNo,
		"LOG_FORMAT": "text", "IMPORT_DIR": h.inbox, "REPORT_DIR": h.reportDir,
		"SMTP_HOST": h.mail.Host, "SMTP_PORT": strconv.Itoa(h.mail.Port), "SMTP_FROM": "esimbatch@example.com",
		"REPORT_TO":  "finance@example.com,ops@example.com",
		"BATCH_SIZE": "20", "RESERVE_BATCH": "4", "MAX_SUBMIT_PER_RUN": strconv.Itoa(sc.maxSubmit),
		"RUN_DEADLINE": "3m",
	}

	// Three files: one through `batch import`, one waiting in IMPORT_DIR,
	// one dropped there after the long stop.
	cutA, cutB := sc.n*50/100, sc.n*85/100
	files := []salesFile{
		writeSales(rng, "sales-a.csv", sales[:cutA]),
		writeSales(rng, "sales-b.csv", sales[cutA:cutB]),
		writeSales(rng, "sales-c.csv", sales[cutB:]),
	}
	h.mustBatch("migrate", nil, "migrate")
	pathA := filepath.Join(h.dir, files[0].name)
	if err := os.WriteFile(pathA, files[0].data, 0o644); err != nil {
		t.Fatal(err)
	}
	imp := h.mustBatch("import", nil, "import", pathA)
	checkImportLine(t, imp, files[0], false)
	imp = h.mustBatch("import-again", nil, "import", pathA)
	checkImportLine(t, imp, files[0], true)
	dropInbox(t, h.inbox, files[1])

	db, err := sql.Open("postgres", h.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(2)
	h.db = db

	// The plan of the scenario, all from the seed. The first passes order
	// only a few activations, so the outage that follows has orders to
	// poll, services to fetch QR codes for and a backlog to submit, without
	// spending minutes of the orderQuery budget on calls that cannot reach
	// Octane. The outage starts in the middle of a pass and lasts 18 to 20
	// hours of business time; the 25 h stop comes a few passes after it.
	outageFrom := 2
	outageTo := outageFrom + sc.outage // exclusive
	stormFrom, stormTo := outageTo, outageTo+sc.storm
	stopAfter := outageTo + 3 // 25 h between this pass and the next
	smtpPass := stopAfter + 2
	kinds := make([]string, sc.passes)
	for i := range kinds {
		kinds[i] = "run"
	}
	kinds[outageFrom] = "outage-start"
	free := []int{}
	for i := 1; i < sc.passes; i++ {
		if i != outageFrom && i != smtpPass && i != smtpPass+1 {
			free = append(free, i)
		}
	}
	rng.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	take := func(kind string, n int) {
		for k := 0; n > 0 && k < len(free); {
			// Kills and restarts stay out of the outage: each outage pass
			// must get as far as charging its rows, or the outage would
			// not be a long one for them.
			if i := free[k]; (kind == "kill" || kind == "pg") && i >= outageFrom && i < outageTo {
				k++
				continue
			}
			kinds[free[k]] = kind
			free = slices.Delete(free, k, k+1)
			n--
		}
	}
	// RUN_DEADLINE cuts passes while the backlog after the outage is
	// worked off, when a pass has more to do than its deadline allows.
	for i, n := outageTo, 0; i < sc.passes && n < sc.deadlines; i++ {
		if k := slices.Index(free, i); k >= 0 && i != stopAfter {
			kinds[i] = "deadline"
			free = slices.Delete(free, k, k+1)
			n++
		}
	}
	take("kill", sc.kills)
	take("triple", sc.triples)
	take("pg", sc.pgRestarts)
	t.Logf("plan: %s; outage passes %d-%d, 25 h stop after pass %d, SMTP refuses from pass %d", strings.Join(kinds, " "),
		outageFrom, outageTo-1, stopAfter, smtpPass)

	var recs []*passRec
	setupDone := time.Now()
	h.setFaults(background)
	refusing, refusedFrom := false, 0
	for i := 0; i < sc.passes; i++ {
		var extra map[string]string
		switch {
		case i < outageFrom:
			extra = map[string]string{"MAX_SUBMIT_PER_RUN": "4"}
		case i < outageTo:
			// No cap while Octane is down: every due row is tried (and
			// charged, if the job charges rows for an outage) each pass.
			extra = map[string]string{"MAX_SUBMIT_PER_RUN": "0"}
		}
		if i == outageTo {
			h.setFaults(background)
			t.Logf("pass %d: Octane back", i)
		}
		switch {
		case h.simFaults && i == stormFrom:
			f := background
			f.rateLimit = 0.05
			h.setFaults(f)
			t.Logf("pass %d: spurious rate-limit faults (233) on 5 %% of calls for %d passes", i, sc.storm)
		case h.simFaults && i == stormTo:
			h.setFaults(background)
		}
		if i == stopAfter+1 {
			dropInbox(t, h.inbox, files[2])
		}
		if i == smtpPass {
			// Refused until a report has been tried: the passes right after
			// the stop may have nothing to report, and a refusal no send
			// met would test nothing.
			h.mail.Refuse(554, "mailbox unavailable (e2e refusal)")
			refusing, refusedFrom = true, h.mail.Attempts()
		}
		rec := h.pass(rng, i, kinds[i], extra)
		rec.outage = i >= outageFrom && i < outageTo
		rec.smtpRefused = refusing
		recs = append(recs, rec)
		refusing = h.refusalTested(refusing, refusedFrom, i)
		switch {
		case i == stopAfter:
			h.advance(25 * time.Hour)
			t.Logf("pass %d: stopped for 25 h", i)
		case rec.outage:
			h.advance(sc.outageStep)
		default:
			switch r := rng.Float64(); {
			case r < 0.12:
				// the same slot fires again, as a CronJob sometimes does
			case r < 0.2:
				h.advance(10 * time.Minute)
			default:
				h.advance(31 * time.Minute)
			}
		}
	}
	scenarioEnd := time.Now()

	// Clean passes until every activation has ended and is reported.
	h.setFaults(faults{})
	drained := false
	lastOpen, stalled := -1, 0
	for i := 0; i < 40 && stalled < 12; i++ {
		rec := h.pass(rng, sc.passes+i, "drain", nil)
		rec.smtpRefused = refusing
		recs = append(recs, rec)
		refusing = h.refusalTested(refusing, refusedFrom, sc.passes+i)
		open, unreported := h.openRows()
		if open == 0 && unreported == 0 && i >= 1 && !refusing {
			drained = true
			break
		}
		if open == lastOpen {
			stalled++ // rows that never move on: reported below
		} else {
			lastOpen, stalled = open, 0
		}
		step := 31 * time.Minute
		if i >= 8 {
			step = 3 * time.Hour
		}
		h.advance(step)
	}
	if refusing {
		t.Errorf("SMTP refused from pass %d to the end of the drain and no report was tried: the refusal tested nothing", smtpPass)
		h.mail.Accept()
	}
	drainEnd := time.Now()
	// A day of hourly idle passes: every number still held must be
	// released in time (23 h), never left to lapse on Octane's side.
	sweepFrom := len(recs)
	for i := 0; i < 26; i++ {
		h.advance(59 * time.Minute)
		recs = append(recs, h.pass(rng, len(recs), "sweep", nil))
	}
	t.Logf("timing: setup %.0fs, scenario %.0fs, drain %.0fs, sweep %.0fs", setupDone.Sub(began).Seconds(),
		scenarioEnd.Sub(setupDone).Seconds(), drainEnd.Sub(scenarioEnd).Seconds(), time.Since(drainEnd).Seconds())
	if !drained {
		open, unreported := h.openRows()
		t.Errorf("after the clean passes %d activations are still open and %d unreported", open, unreported)
	}

	c := newChecker(h, sales, files, recs)
	c.stopFrom = stopAt(h, recs, stopAfter)
	c.sweepFrom = sweepFrom
	c.stormFrom, c.stormTo = stormFrom, stormTo
	if sc.name == "full" {
		c.minKills = 20
	}
	c.run()
	t.Logf("done in %.0fs", time.Since(began).Seconds())
}

// refusalTested ends an SMTP refusal once a send has met it (the mail
// server counts attempts; from is the count when the refusal began) and
// says whether the refusal goes on.
func (h *harness) refusalTested(refusing bool, from, pass int) bool {
	if !refusing || h.mail.Attempts() == from {
		return refusing
	}
	h.mail.Accept()
	h.t.Logf("pass %d: SMTP refused %d attempts; accepting again", pass, h.mail.Attempts()-from)
	return false
}

// stopAt is the simulator time at which the 25 h stop began: the end of
// the pass before it.
func stopAt(h *harness, recs []*passRec, idx int) time.Time {
	var at time.Time
	for _, r := range recs {
		if r.idx != idx {
			continue
		}
		for _, p := range r.procs {
			if e := p.end.Add(p.offset).Add(time.Second); e.After(at) {
				at = e
			}
		}
	}
	return at
}

// pass runs one pass of the given kind, with extra settings.
func (h *harness) pass(rng *rand.Rand, idx int, kind string, extra map[string]string) *passRec {
	h.t.Helper()
	rec := &passRec{idx: idx, kind: kind}
	name := fmt.Sprintf("run-p%03d-%s", idx, kind)
	switch kind {
	case "outage-start":
		// Octane goes down in the middle of this pass.
		p := h.spawn(name, childTimeout, h.env(extra), "run")
		p.waitFor("pass start", 10*time.Second)
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		h.setFaults(faults{transport: 1})
		h.t.Logf("pass %d: Octane down", idx)
		p.wait()
		rec.procs = append(rec.procs, p)
	case "kill":
		// Killed at a random moment of the pass itself: after it started
		// working (its "pass start" line), not while the process loads.
		// A pass that ends before its kill is run again, up to three times.
		for try := 0; try < 3; try++ {
			p := h.spawn(fmt.Sprintf("%s-%d", name, try), childTimeout, h.env(extra), "run")
			p.waitFor("pass start", 10*time.Second)
			wait := 700
			if try > 0 {
				wait = 120 // an idle pass is over in a few hundred milliseconds
			}
			time.Sleep(time.Duration(rng.IntN(wait)) * time.Millisecond)
			p.kill()
			p.wait()
			rec.procs = append(rec.procs, p)
			if p.signal != "" {
				h.quiet() // its last requests reach the simulator before the clock moves
				break
			}
		}
	case "triple":
		for k := range 3 {
			rec.procs = append(rec.procs, h.spawn(fmt.Sprintf("%s-%d", name, k), childTimeout, h.env(extra), "run"))
		}
		for _, p := range rec.procs {
			p.wait()
		}
	case "pg":
		// PostgreSQL restarts under a running pass: after its "pass start"
		// line and a random pause; a pass that ended first is run again
		// and restarted under at once.
		for try := 0; ; try++ {
			p := h.spawn(fmt.Sprintf("%s-%d", name, try), childTimeout, h.env(extra), "run")
			p.waitFor("pass start", 10*time.Second)
			if try == 0 {
				time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
			}
			running := p.running()
			if running || try == 2 {
				rec.pgFrom = time.Now()
				if err := h.pg.restart(); err != nil {
					h.t.Fatalf("restart PostgreSQL: %v\n%s", err, tail(h.pg.log, 20))
				}
				rec.pgTo = time.Now()
			}
			p.wait()
			rec.procs = append(rec.procs, p)
			if !rec.pgFrom.IsZero() {
				h.t.Logf("pass %d: PostgreSQL restarted in %.1fs (the pass still running: %v) under %s", idx,
					rec.pgTo.Sub(rec.pgFrom).Seconds(), running, p)
				break
			}
		}
	case "deadline":
		d := time.Duration(300+rng.IntN(1200)) * time.Millisecond
		x := map[string]string{"RUN_DEADLINE": d.String()}
		for k, v := range extra {
			x[k] = v
		}
		rec.procs = append(rec.procs, h.batch(name, x, "run"))
	default:
		rec.procs = append(rec.procs, h.batch(name, extra, "run"))
	}
	return rec
}

// openRows counts activations not yet terminal, and terminal ones not yet
// reported.
func (h *harness) openRows() (open, unreported int) {
	h.t.Helper()
	err := h.db.QueryRow(`SELECT
  count(*) FILTER (WHERE state NOT IN ('qr_ready', 'provisioned', 'failed')),
  count(*) FILTER (WHERE state IN ('qr_ready', 'provisioned', 'failed') AND reported_at IS NULL)
FROM activations`).Scan(&open, &unreported)
	if err != nil {
		h.t.Fatalf("count open rows: %v", err)
	}
	return open, unreported
}

// dropInbox writes a file into IMPORT_DIR the way the README asks: under a
// temporary name, then renamed.
func dropInbox(t *testing.T, dir string, f salesFile) {
	t.Helper()
	part := filepath.Join(dir, f.name+".part")
	if err := os.WriteFile(part, f.data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(part, filepath.Join(dir, f.name)); err != nil {
		t.Fatal(err)
	}
}

// checkImportLine checks `batch import`'s summary of f.
func checkImportLine(t *testing.T, p *proc, f salesFile, again bool) {
	t.Helper()
	m := importLine.FindStringSubmatch(p.stdout())
	if m == nil {
		t.Fatalf("batch import printed no summary line:\n%s", p.stdout())
	}
	acc, _ := strconv.Atoi(m[2])
	dup, _ := strconv.Atoi(m[3])
	rej, _ := strconv.Atoi(m[4])
	want := len(f.rows)
	switch {
	case again && acc != 0:
		t.Errorf("importing %s again accepted %d rows, want none:\n%s", f.name, acc, p.stdout())
	case !again && (acc != want || dup != 0 || rej != len(f.rejects)):
		t.Errorf("batch import %s: %q, want accepted %d, duplicate 0, rejected %d", f.name, m[0], want, len(f.rejects))
	}
	if again && !strings.Contains(p.stdout(), "already imported") && dup != want {
		t.Errorf("importing %s again: %q, want it recognised (already imported, or %d duplicates)", f.name, m[0], want)
	}
}
