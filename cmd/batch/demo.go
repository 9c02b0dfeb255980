package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/octane/octanetest"
	"github.com/esimbatch/esimbatch/repo"
)

//go:embed testdata/sample-sales.csv
var demoSales []byte

// Demo fixtures the simulator must know: the one physical SIM in stock and
// the customers that already exist.
var (
	demoSIMs      = []string{"8961010000000000012"}
	demoCustomers = []int64{500010, 500020, 500030, 500040, 500050}
)

// simClock is a business clock moved by hand, shared by the job and the
// simulator.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *simClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// cmdDemo is `batch demo [--out DIR]`: the whole pipeline on an embedded
// SQLite store, the simulator on a loopback port and a simulated clock.
func cmdDemo(ctx context.Context, args []string, e env) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	out := fs.String("out", "", "folder for the database (a new temporary folder when empty)")
	verbose := fs.Bool("v", false, "log every phase")
	if err := fs.Parse(args); err != nil {
		return configError{err}
	}
	dir := *out
	if dir == "" {
		d, err := os.MkdirTemp("", "esimbatch-demo-")
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	res, err := runDemo(ctx, dir, log)
	if err != nil {
		return err
	}
	w := e.stdout
	fmt.Fprintf(w, "demo: %d activations, %d passes over %s of simulated time (%s wall)\n",
		res.total, res.passes, res.simulated.Round(time.Minute), res.wall.Round(time.Millisecond))
	for _, s := range repo.States() {
		if n := res.counts[s]; n > 0 {
			fmt.Fprintf(w, "  %-12s %d\n", s, n)
		}
	}
	fmt.Fprintf(w, "octane orders: %d accepted\n", res.orders)
	fmt.Fprintf(w, "database: %s\n", res.db)
	return nil
}

type demoResult struct {
	total, passes, orders int
	counts                map[repo.State]int
	simulated, wall       time.Duration
	db                    string
}

// runDemo runs passes until every sample activation is terminal.
func runDemo(ctx context.Context, dir string, log *slog.Logger) (demoResult, error) {
	wall := time.Now()
	clock := &simClock{t: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)}
	start := clock.Now()
	res := demoResult{db: filepath.Join(dir, "esimbatch.db")}

	store, err := repo.Open(ctx, res.db)
	if err != nil {
		return res, fmt.Errorf("demo: open store: %w", err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return res, fmt.Errorf("demo: migrate: %w", err)
	}

	sim := octanetest.New(octanetest.Config{
		Username: "demo", Password: "demo", Now: clock.Now,
		PhysicalSIMs: demoSIMs, Customers: demoCustomers, OrderLatency: 5 * time.Minute,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, fmt.Errorf("demo: listen: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String() + "/tiab"

	rows, err := parseDemoSales(demoSales)
	if err != nil {
		return res, err
	}
	sum := sha256.Sum256(demoSales)
	imp, err := store.Import(ctx, repo.ImportFile{Name: "sample-sales.csv", Hash: hex.EncodeToString(sum[:]), DataRows: len(rows)},
		rows, nil, clock.Now())
	if err != nil {
		return res, fmt.Errorf("demo: import: %w", err)
	}
	log.Info("demo sample loaded", "accepted", imp.Accepted, "duplicate", imp.Duplicate)

	client, err := octane.New(base, base+"/api", "demo", "demo",
		octane.WithGroupNo(1), octane.WithLogger(log), octane.WithCallHook(jobs.CallRecorder(store, "demo", log)))
	if err != nil {
		return res, fmt.Errorf("demo: client: %w", err)
	}
	runner := jobs.NewRunner(store, client, jobs.Config{
		Credential: "demo", BatchSize: 25, MaxSubmitPerRun: 2000, ReserveBatch: 5,
		PollInterval: 30 * time.Minute, ReleaseAfter: 23 * time.Hour, RunDeadline: time.Minute,
	}, jobs.WithClock(clock.Now), jobs.WithLogger(log))

	phases := []string{jobs.PhaseRelease, jobs.PhaseSubmit, jobs.PhasePoll, jobs.PhaseQR}
	for res.passes < 20 {
		if _, err := runner.Pass(ctx, phases); err != nil {
			return res, fmt.Errorf("demo: pass %d: %w", res.passes+1, err)
		}
		res.passes++
		res.counts, res.total = map[repo.State]int{}, len(rows)
		open := 0
		for _, row := range rows {
			a, err := store.ActivationByRef(ctx, row.SalesRef)
			if err != nil {
				return res, fmt.Errorf("demo: read %s: %w", row.SalesRef, err)
			}
			res.counts[a.State]++
			if !a.State.Terminal() {
				open++
			}
		}
		if open == 0 {
			break
		}
		clock.Advance(31 * time.Minute)
	}
	res.orders = len(sim.Orders())
	res.simulated = clock.Now().Sub(start)
	res.wall = time.Since(wall)
	return res, nil
}

// parseDemoSales reads the bundled sample (DESIGN's sales columns).
func parseDemoSales(b []byte) ([]repo.NewActivation, error) {
	r := csv.NewReader(bytes.NewReader(b))
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("demo sample: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(h)] = i
	}
	var out []repo.NewActivation
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("demo sample line %d: %w", line, err)
		}
		get := func(k string) string {
			if i, ok := col[k]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		plan, err := strconv.Atoi(get("plan_no"))
		if err != nil {
			return nil, fmt.Errorf("demo sample line %d: plan_no: %w", line, err)
		}
		a := repo.NewActivation{Line: line, SalesRef: get("sales_ref"), GivenNames: get("given_names"),
			Surname: get("surname"), Email: get("email"), PlanNo: plan, SIMType: get("sim_type"),
			SIMSerial: get("sim_serial"), AddressLine1: get("address_line1"), Suburb: get("suburb"),
			AddrState: get("state"), Postcode: get("postcode"), Notes: get("notes")}
		if a.SIMType == "" {
			a.SIMType = "esim"
		}
		if c := get("cust_no"); c != "" {
			n, err := strconv.ParseInt(c, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("demo sample line %d: cust_no: %w", line, err)
			}
			a.CustNo = &n
		}
		out = append(out, a)
	}
}
