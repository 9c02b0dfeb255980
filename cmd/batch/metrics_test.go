package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/metrics"
	"github.com/esimbatch/esimbatch/metrics/metricstest"
	"github.com/esimbatch/esimbatch/repo"
)

func copyVars(vars map[string]string, kv ...string) map[string]string {
	m := map[string]string{}
	for k, v := range vars {
		m[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestRunPushesMetrics runs `batch run` against PostgreSQL and the simulator
// with PUSHGATEWAY_URL set, and reads every push back: the families under
// job and credential, the database gauges equal to the store's counts (six
// orders submitted, then six QR codes ready), the pass's counts and calls
// equal to what the simulator saw, open orders past 24 h; a failed run
// pushes its exit code and no last-success time, and the gateway keeps the
// earlier one; a refused push leaves the exit code alone; the gateway's
// password never reaches the log or a label.
func TestRunPushesMetrics(t *testing.T) {
	vars, store, sim := runEnv(t, "pw", 0)
	const n = 6
	gw := metricstest.Start(t)
	vars = copyVars(vars, "MAX_SUBMIT_PER_RUN", "6", "BATCH_SIZE", "6",
		"PUSHGATEWAY_URL", strings.Replace(gw.URL, "://", "://push-user:push-s3cret@", 1))
	cred := vars["OCTANE_USERNAME"]
	group := map[string]string{"job": metrics.Job, "credential": cred}
	ctx := context.Background()
	var logs strings.Builder

	// run runs `batch run` with extra variables, wants exit code want and
	// returns what it pushed.
	run := func(want int, args []string, kv ...string) metricstest.Families {
		t.Helper()
		before := len(gw.Pushes())
		code, out, stderr, err := batchCmd(copyVars(vars, kv...), append([]string{"run"}, args...)...)
		logs.WriteString(stderr)
		if code != want {
			t.Fatalf("batch run %v: exit %d (%v), want %d\n%s%s", kv, code, err, want, out, stderr)
		}
		pushes := gw.Pushes()
		if len(pushes) != before+1 {
			t.Fatalf("batch run %v pushed %d times, want once\n%s", kv, len(pushes)-before, stderr)
		}
		p := pushes[len(pushes)-1]
		if p.Method != http.MethodPost || p.Path != "/metrics/job/esimbatch/credential/"+cred {
			t.Errorf("pushed %s %s, want POST /metrics/job/esimbatch/credential/%s", p.Method, p.Path, cred)
		}
		if p.User != "push-user" || p.Password != "push-s3cret" {
			t.Errorf("pushed as %q, want the URL's basic auth", p.User)
		}
		for _, l := range p.Families.Labels() {
			if strings.Contains(l, "s3cret") || l == "credential="+cred || strings.HasSuffix(l, "=pw") {
				t.Errorf("label %q: the credential belongs in the grouping key, a secret nowhere", l)
			}
		}
		return p.Families
	}
	value := func(f metricstest.Families, name string, labels ...string) float64 {
		t.Helper()
		want := map[string]string{}
		for i := 0; i+1 < len(labels); i += 2 {
			want[labels[i]] = labels[i+1]
		}
		v, ok := f.Value(name, want)
		if !ok {
			t.Fatalf("no %s%v pushed", name, want)
		}
		return v
	}
	// stateGauges checks the pushed state gauges against the store.
	stateGauges := func(f metricstest.Families, now time.Time) repo.Status {
		t.Helper()
		st, err := store.Status(ctx, now, now.Add(-23*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range repo.States() {
			if got := value(f, metrics.Activations, "state", string(s)); got != float64(st.Counts[s]) {
				t.Errorf("%s{state=%s} = %v, the store says %d", metrics.Activations, s, got, st.Counts[s])
			}
		}
		return st
	}

	// 1: six orders.
	t1 := time.Now()
	f := run(exitOK, nil)
	for _, name := range metrics.Names() {
		if _, ok := f[name]; !ok {
			t.Errorf("a successful run did not push %s", name)
		}
	}
	st := stateGauges(f, time.Now())
	if st.Counts[repo.StateSubmitted] != n || value(f, metrics.Activations, "state", "submitted") != n {
		t.Fatalf("after the first run: %v submitted, want %d", st.Counts, n)
	}
	if got := value(f, metrics.Outcomes, "phase", "submit", "outcome", "ordered"); got != n {
		t.Errorf("outcomes submit/ordered = %v, want %d", got, n)
	}
	if got := value(f, metrics.OctaneCalls, "method", "orderCreate", "outcome", "ok"); got != float64(len(sim.Orders())) || got != n {
		t.Errorf("orderCreate ok = %v, the simulator has %d orders, want %d", got, len(sim.Orders()), n)
	}
	if got := value(f, metrics.LastRunExitCode); got != 0 {
		t.Errorf("exit code %v, want 0", got)
	}
	success1 := value(f, metrics.LastSuccess)
	if success1 < float64(t1.Unix()) || success1 > float64(time.Now().Unix()+1) {
		t.Errorf("last success %v, want between %d and now", success1, t1.Unix())
	}
	if d := value(f, metrics.RunDuration); d <= 0 || d > time.Since(t1).Seconds() {
		t.Errorf("run duration %v s", d)
	}

	// 2: a day later on the job's clock, before any poll: the six orders are
	// open past 24 h, the pending rows a day old.
	f = run(exitOK, []string{"--phases", "import"}, "BATCH_TIME_OFFSET", "25h")
	if got := value(f, metrics.OpenOrdersOver24h); got != n {
		t.Errorf("open orders over 24 h = %v, want %d", got, n)
	}
	if got := value(f, metrics.OldestPendingAge); got < (25 * time.Hour).Seconds() {
		t.Errorf("oldest pending age %v s, want at least 25 h", got)
	}

	// 3: 31 minutes on: the polls complete the orders, their QR codes come.
	sim.Advance(31 * time.Minute)
	f = run(exitOK, nil, "BATCH_TIME_OFFSET", "31m")
	st = stateGauges(f, time.Now().Add(31*time.Minute))
	if st.Counts[repo.StateQRReady] != n || value(f, metrics.Activations, "state", "qr_ready") != n {
		t.Fatalf("after the poll run: %v, want %d qr_ready", st.Counts, n)
	}
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{metrics.Outcomes, []string{"phase", "poll", "outcome", "completed"}},
		{metrics.Outcomes, []string{"phase", "qr", "outcome", "ready"}},
		{metrics.OctaneCalls, []string{"method", "orderQuery", "outcome", "ok"}},
		{metrics.OctaneCalls, []string{"method", "getEsimDetails", "outcome", "ok"}},
	} {
		if got := value(f, c.name, c.labels...); got != n {
			t.Errorf("%s%v = %v, want %d", c.name, c.labels, got, n)
		}
	}
	success3 := value(f, metrics.LastSuccess)
	if got := value(f, metrics.OpenOrdersOver24h); got != 0 {
		t.Errorf("open orders over 24 h = %v after they completed", got)
	}

	// 4: a bad password fails the run: exit 1 pushed, no last success; the
	// gateway keeps run 3's.
	f = run(exitFailed, nil, "OCTANE_PASSWORD", "wrong-pw")
	if got := value(f, metrics.LastRunExitCode); got != 1 {
		t.Errorf("a failed run pushed exit code %v, want 1", got)
	}
	if _, ok := f[metrics.LastSuccess]; ok {
		t.Errorf("a failed run pushed %s", metrics.LastSuccess)
	}
	if got, _ := gw.Group(group).Value(metrics.LastSuccess, nil); got != success3 {
		t.Errorf("after the failed run the gateway holds last success %v, want run 3's %v", got, success3)
	}
	if got, _ := gw.Group(group).Value(metrics.LastRunExitCode, nil); got != 1 {
		t.Errorf("the gateway holds exit code %v, want 1", got)
	}

	// 5: the gateway refuses: the run still exits 0, and says so.
	gw.FailWith(http.StatusInternalServerError)
	mark := logs.Len()
	run(exitOK, nil)
	if !strings.Contains(logs.String()[mark:], "metrics push failed") {
		t.Errorf("a refused push is not logged:\n%s", logs.String()[mark:])
	}
	if strings.Contains(logs.String(), "push-s3cret") {
		t.Error("the Pushgateway password appears in the log")
	}
	if !strings.Contains(logs.String(), "pushgateway_url=http://***@127.0.0.1") {
		t.Error("the configuration line does not show the Pushgateway URL masked")
	}
}

// A bad PUSHGATEWAY_URL or METRICS_ADDR is bad configuration (exit 2), and
// the error does not quote the URL's password.
func TestMetricsConfig(t *testing.T) {
	base := map[string]string{
		"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "OCTANE_SOAP_URL": "http://127.0.0.1:1/tiab",
		"OCTANE_REST_URL": "http://127.0.0.1:1/tiab/api", "OCTANE_USERNAME": "u", "OCTANE_PASSWORD": "p",
		"OCTANE_GROUP_NO": "1",
	}
	for _, tt := range []struct{ cmd, key, value, says string }{
		{"run", "PUSHGATEWAY_URL", "pushgateway:9091", "PUSHGATEWAY_URL: want an http(s) URL"},
		{"run", "PUSHGATEWAY_URL", "http://ops:hunter2@pushgateway.example.com:9091", "PUSHGATEWAY_URL: basic auth over plain http"},
		{"schedule", "METRICS_ADDR", "9090", "METRICS_ADDR"},
		{"schedule", "METRICS_ADDR", "127.0.0.1:http-alt", "METRICS_ADDR"},
	} {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			code, _, stderr, err := batchCmd(copyVars(base, tt.key, tt.value), tt.cmd)
			if code != exitConfig || err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("exit %d (%v), want 2 saying %q\n%s", code, err, tt.says, stderr)
			}
			if strings.Contains(err.Error()+stderr, "hunter2") {
				t.Error("the password is quoted")
			}
		})
	}
}

var listeningAddr = regexp.MustCompile(`msg="metrics server listening" addr=(\S+)`)

// startSchedule runs `batch schedule` until the test ends and returns the
// metrics server's base URL.
func startSchedule(t *testing.T, vars map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := &signalWriter{match: `msg="metrics server listening"`, seen: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"schedule"}, env{lookup: testEnvLookup(vars), stdout: io.Discard, stderr: log})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("schedule: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("schedule did not stop")
		}
	})
	select {
	case <-log.seen:
	case err := <-done:
		t.Fatalf("schedule ended before serving metrics: %v\n%s", err, log)
	case <-time.After(10 * time.Second):
		t.Fatalf("no metrics server:\n%s", log)
	}
	m := listeningAddr.FindStringSubmatch(log.String())
	if m == nil {
		t.Fatalf("no address in the log:\n%s", log)
	}
	return "http://" + m[1]
}

// scrape reads /healthz, then /metrics (so what /healthz saw has happened
// in what /metrics shows).
func scrape(t *testing.T, base string) (metricstest.Families, int, metrics.Health) {
	t.Helper()
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h metrics.Health
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("/healthz: %v", err)
	}
	code := resp.StatusCode
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	f, err := metricstest.Parse(resp.Body, resp.Header)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return f, code, h
}

// scheduleVars fires submit every second and nothing else in the test's
// time.
func scheduleVars(vars map[string]string, kv ...string) map[string]string {
	const never = "0 0 1 1 *"
	return copyVars(copyVars(vars, "METRICS_ADDR", "127.0.0.1:0", "MAX_SUBMIT_PER_RUN", "2", "BATCH_SIZE", "2",
		"SCHEDULE_SUBMIT", "@every 1s", "SCHEDULE_IMPORT", never, "SCHEDULE_RELEASE", never,
		"SCHEDULE_POLL", never, "SCHEDULE_QR", never, "SCHEDULE_REPORT", never), kv...)
}

// TestScheduleServesMetrics: `batch schedule` with METRICS_ADDR serves the
// families with the credential label, the database gauges and the passes'
// counts, and /healthz says healthy once a pass succeeded.
func TestScheduleServesMetrics(t *testing.T) {
	vars, _, _ := runEnv(t, "pw", 0)
	cred := vars["OCTANE_USERNAME"]
	base := startSchedule(t, scheduleVars(vars))
	f, code, h := scrape(t, base)
	if code != http.StatusOK || !h.Healthy {
		t.Fatalf("at the start: /healthz %d %+v, want healthy", code, h)
	}
	if len(h.Phases) == 0 {
		if _, ok := f.Value(metrics.LastRunExitCode, nil); ok {
			t.Errorf("%s exposed before any pass ran", metrics.LastRunExitCode)
		}
	}
	pending, ok := f.Value(metrics.Activations, map[string]string{"state": "pending", "credential": cred})
	if !ok || pending == 0 {
		t.Fatalf("%s{state=pending,credential=%s} = %v (found %v), want the imported rows", metrics.Activations, cred, pending, ok)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, code, h = scrape(t, base)
		ordered, _ := f.Value(metrics.Outcomes, map[string]string{"phase": "submit", "outcome": "ordered", "credential": cred})
		submitted, _ := f.Value(metrics.Activations, map[string]string{"state": "submitted"})
		calls, _ := f.Value(metrics.OctaneCalls, map[string]string{"method": "orderCreate", "outcome": "ok"})
		if ordered >= 2 && submitted >= ordered && calls >= ordered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no submit pass showed up in /metrics: ordered %v, submitted %v, orderCreate ok %v", ordered, submitted, calls)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, ok := f.Value(metrics.LastSuccess, map[string]string{"credential": cred}); !ok {
		t.Errorf("no %s after a successful pass", metrics.LastSuccess)
	}
	if code != http.StatusOK || !h.Healthy || h.LastSuccess == nil || h.Phases["submit"].LastPass.IsZero() {
		t.Errorf("after a successful pass: /healthz %d %+v", code, h)
	}
}

// TestScheduleUnhealthyWhenPassesFail: with a refused password every submit
// pass fails: /healthz answers 503 naming the phase, /metrics says exit code
// 1 and has no last-success time.
func TestScheduleUnhealthyWhenPassesFail(t *testing.T) {
	vars, _, _ := runEnv(t, "pw", 0)
	base := startSchedule(t, scheduleVars(vars, "OCTANE_PASSWORD", "wrong-pw"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, code, h := scrape(t, base)
		if code == http.StatusServiceUnavailable {
			if h.Healthy || !strings.Contains(strings.Join(h.Reasons, ";"), "the last submit pass failed") {
				t.Errorf("/healthz 503 with %+v, want unhealthy naming submit", h)
			}
			if got, _ := f.Value(metrics.LastRunExitCode, nil); got != 1 {
				t.Errorf("exit code %v, want 1", got)
			}
			if _, ok := f.Value(metrics.LastSuccess, nil); ok {
				t.Errorf("%s with no successful pass", metrics.LastSuccess)
			}
			return
		}
		if code != http.StatusOK {
			t.Fatalf("/healthz %d", code)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz still healthy: %+v", h)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
