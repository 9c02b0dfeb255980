package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/jobs/sales"
	"github.com/esimbatch/esimbatch/octane/octanetest"
	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
	"github.com/robfig/cron/v3"
)

// testEnv runs the program in-process with a map environment.
func testEnv(vars map[string]string) (env, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return env{lookup: testEnvLookup(vars), stdout: &out, stderr: &errb}, &out, &errb
}

func testEnvLookup(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestRunExitCodes(t *testing.T) {
	base := map[string]string{
		"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "OCTANE_SOAP_URL": "http://127.0.0.1:1/tiab",
		"OCTANE_REST_URL": "http://127.0.0.1:1/tiab/api", "OCTANE_USERNAME": "u", "OCTANE_PASSWORD": "p",
		"OCTANE_GROUP_NO": "1",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range base {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want int
	}{
		{"unknown phase", []string{"run", "--phases", "launch"}, base, exitConfig},
		{"reserve batch too big", []string{"run"}, with("RESERVE_BATCH", "9"), exitConfig},
		{"poll interval too short", []string{"run"}, with("POLL_INTERVAL", "5m"), exitConfig},
		{"missing password", []string{"run"}, with("OCTANE_PASSWORD", ""), exitConfig},
		{"missing group", []string{"run"}, with("OCTANE_GROUP_NO", ""), exitConfig},
		{"bad schedule", []string{"schedule"}, with("SCHEDULE_SUBMIT", "every ten minutes"), exitConfig},
		{"six-field schedule", []string{"schedule"}, with("SCHEDULE_POLL", "0 */5 * * * *"), exitConfig},
		{"import dir missing", []string{"run"}, with("IMPORT_DIR", "/nonexistent/esimbatch-inbox"), exitConfig},
		{"database unreachable", []string{"run"}, base, exitFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, stderr := testEnv(tt.vars)
			err := run(context.Background(), tt.args, e)
			if got := exitCode(err); got != tt.want {
				t.Fatalf("exit %d (%v), want %d; stderr:\n%s", got, err, tt.want, stderr)
			}
		})
	}
}

// sampleActivations is the demo sample's accepted rows, read by the real
// sales reader.
func sampleActivations(t *testing.T) []repo.NewActivation {
	t.Helper()
	f, err := sales.Read(bytes.NewReader(demoSales), "sample-sales.csv", sales.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]repo.NewActivation, len(f.Rows))
	for i, r := range f.Rows {
		out[i] = repo.NewActivation{
			Line: r.Line, SalesRef: r.SalesRef, GivenNames: r.GivenNames, Surname: r.Surname, Email: r.Email,
			AddressLine1: r.AddressLine1, Suburb: r.Suburb, AddrState: r.State, Postcode: r.Postcode, Notes: r.Notes,
			CustNo: r.CustNo, PlanNo: r.PlanNo, SIMType: r.SIMType, SIMSerial: r.SIMSerial,
		}
	}
	return out
}

// runEnv is a migrated PostgreSQL schema with sample rows and a simulator.
func runEnv(t *testing.T, password string, latency time.Duration) (map[string]string, *repo.Store, *octanetest.Server) {
	t.Helper()
	url := repotest.PostgresURL(t)
	store, err := repo.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	cred := fmt.Sprintf("cmd-%d", time.Now().UnixNano())
	sim := octanetest.New(octanetest.Config{Username: cred, Password: "pw", OrderLatency: time.Minute, Faults: octanetest.Faults{Latency: latency}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	var esim []repo.NewActivation
	for _, r := range sampleActivations(t) {
		if r.SIMType == "esim" && r.CustNo == nil {
			esim = append(esim, r)
		}
	}
	if _, err := store.Import(context.Background(), repo.ImportFile{Name: "s.csv", Hash: cred, DataRows: len(esim)}, esim, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"DATABASE_URL": url, "OCTANE_SOAP_URL": srv.URL + "/tiab", "OCTANE_REST_URL": srv.URL + "/tiab/api",
		"OCTANE_USERNAME": cred, "OCTANE_PASSWORD": password, "OCTANE_GROUP_NO": "3", "LOG_FORMAT": "text",
		"REPORT_DIR": t.TempDir(),
	}, store, sim
}

// signalWriter collects a log and closes seen once it contains match.
type signalWriter struct {
	mu    sync.Mutex
	buf   strings.Builder
	match string
	seen  chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.buf.String(), w.match)
	w.buf.Write(p)
	if !had && strings.Contains(w.buf.String(), w.match) {
		close(w.seen)
	}
	return len(p), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestTwoRunsAtOnce starts a second `batch run` while the first holds the
// run lock (its pass has started and its Octane calls are slow): the second
// exits 0 at once saying so, and the first completes its pass.
func TestTwoRunsAtOnce(t *testing.T) {
	vars, _, sim := runEnv(t, "pw", 150*time.Millisecond)
	vars["MAX_SUBMIT_PER_RUN"], vars["BATCH_SIZE"] = "4", "4"
	phases := []string{"run", "--phases", "release,submit,poll,qr"}

	var firstOut bytes.Buffer
	firstLog := &signalWriter{match: `msg="pass start"`, seen: make(chan struct{})}
	firstDone := make(chan error, 1)
	go func() {
		firstDone <- run(context.Background(), phases, env{lookup: testEnvLookup(vars), stdout: &firstOut, stderr: firstLog})
	}()
	select {
	case <-firstLog.seen:
	case err := <-firstDone:
		t.Fatalf("first run ended before its pass started: %v\n%s", err, firstLog)
	case <-time.After(20 * time.Second):
		t.Fatal("first run never started its pass")
	}

	start := time.Now()
	code, out, stderr, err := batchCmd(vars, phases...)
	took := time.Since(start)
	if code != exitOK || !strings.Contains(out, "another run holds the lock") {
		t.Fatalf("second run: exit %d (%v), output %q, want exit 0 saying another run holds the lock\n%s", code, err, out, stderr)
	}
	if took > 5*time.Second {
		t.Errorf("second run took %s to give way", took)
	}
	select {
	case <-firstDone:
		t.Fatal("the first run ended before the second gave way: the test proved nothing; slow the simulator down")
	default:
	}

	if err := <-firstDone; err != nil {
		t.Fatalf("first run: %v\n%s", err, firstLog)
	}
	if strings.Contains(firstOut.String(), "another run holds the lock") {
		t.Fatal("the first run gave way too")
	}
	if n := len(sim.Orders()); n != 4 {
		t.Fatalf("%d orders, want the first run's 4", n)
	}
}

func TestRunBadCredentialsExit1(t *testing.T) {
	vars, store, sim := runEnv(t, "wrong", 2*time.Millisecond)
	e, _, stderr := testEnv(vars)
	err := run(context.Background(), []string{"run"}, e)
	if got := exitCode(err); got != exitFailed {
		t.Fatalf("exit %d (%v), want 1", got, err)
	}
	if strings.Contains(stderr.String(), "wrong") {
		t.Error("the password appears in the log")
	}
	if len(sim.Orders()) != 0 {
		t.Error("orders were created with a refused credential")
	}
	a, err := store.ActivationByRef(context.Background(), "DEMO-0001")
	if err != nil {
		t.Fatal(err)
	}
	if a.State != repo.StatePending || a.Attempts != 0 || a.ClaimToken != "" {
		t.Errorf("row changed: state %s attempts %d claim %q", a.State, a.Attempts, a.ClaimToken)
	}
}

func TestScheduleDefaults(t *testing.T) {
	cfg, err := loadConfig(context.Background(), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	specs := cfg.schedules()
	if !reflect.DeepEqual(specs, jobs.DefaultSchedules) {
		t.Fatalf("default schedules = %v, want jobs.DefaultSchedules %v", specs, jobs.DefaultSchedules)
	}
	if err := jobs.ValidateSchedules(specs); err != nil {
		t.Fatal(err)
	}
	// Staggered: over a day, no two phases fire in the same minute.
	fires := map[time.Time][]string{}
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	for ph, spec := range specs {
		sched, err := cron.ParseStandard(spec)
		if err != nil {
			t.Fatal(err)
		}
		for at := sched.Next(start.Add(-time.Second)); at.Before(start.Add(24 * time.Hour)); at = sched.Next(at) {
			fires[at] = append(fires[at], ph)
		}
	}
	for at, phs := range fires {
		if len(phs) > 1 {
			t.Errorf("%s: %v fire together", at.Format("15:04"), phs)
		}
	}
}

func TestStatus(t *testing.T) {
	vars, _, _ := runEnv(t, "pw", 2*time.Millisecond)
	e, out, stderr := testEnv(vars)
	if err := run(context.Background(), []string{"status"}, e); err != nil {
		t.Fatalf("status: %v\n%s", err, stderr)
	}
	for _, want := range []string{"pending      43", "orderCreate", "hour used/limit", "0/2000"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}
