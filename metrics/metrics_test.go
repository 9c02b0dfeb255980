package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/metrics"
	"github.com/esimbatch/esimbatch/metrics/metricstest"
	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

var t0 = time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC)

// clock is a settable wall clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func gateway(t *testing.T, raw string) metrics.Gateway {
	t.Helper()
	g, err := metrics.ParseGateway(raw)
	if err != nil {
		t.Fatalf("ParseGateway: %v", err)
	}
	return g
}

// A push is a POST under job and credential with the pass's counts; a later
// run that fails pushes no last-success time, and the group keeps the one a
// successful run pushed (PUT would have deleted it).
func TestPushKeepsLastSuccessAcrossAFailedRun(t *testing.T) {
	gw := metricstest.Start(t)
	g := gateway(t, strings.Replace(gw.URL, "://", "://push-user:push-pw@", 1))
	group := map[string]string{"job": "esimbatch", "credential": "api-user"}

	ok := metrics.New(metrics.Options{})
	ok.ObservePass(metrics.Pass{
		Phases: []string{"submit", "poll"}, Start: t0, End: t0.Add(90 * time.Second),
		Counts: map[string]int{"submit.ordered": 7, "poll.completed": 3, "lost_claims": 1, "submit.failed": 0},
		Calls: []repo.MethodCalls{{Method: "orderCreate", Outcome: "ok", Count: 7, Waited: 1500 * time.Millisecond},
			{Method: "orderQuery", Outcome: "fault", Count: 2}},
	})
	if err := ok.Push(context.Background(), g, "api-user", 0); err != nil {
		t.Fatal(err)
	}
	pushes := gw.Pushes()
	if len(pushes) != 1 {
		t.Fatalf("%d pushes, want 1", len(pushes))
	}
	p := pushes[0]
	if p.Method != http.MethodPost {
		t.Errorf("pushed with %s, want POST (push's Add: keep the families not pushed)", p.Method)
	}
	if p.Path != "/metrics/job/esimbatch/credential/api-user" || p.User != "push-user" || p.Password != "push-pw" {
		t.Errorf("push to %s as %q/%q, want /metrics/job/esimbatch/credential/api-user with the URL's basic auth", p.Path, p.User, p.Password)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{metrics.Outcomes, map[string]string{"phase": "submit", "outcome": "ordered"}, 7},
		{metrics.Outcomes, map[string]string{"phase": "poll", "outcome": "completed"}, 3},
		{metrics.Outcomes, map[string]string{"phase": "pass", "outcome": "lost_claims"}, 1},
		{metrics.OctaneCalls, map[string]string{"method": "orderCreate", "outcome": "ok"}, 7},
		{metrics.OctaneCalls, map[string]string{"method": "orderQuery", "outcome": "fault"}, 2},
		{metrics.RateLimitWait, map[string]string{"method": "orderCreate"}, 1.5},
		{metrics.RunDuration, nil, 90},
		{metrics.LastRun, nil, float64(t0.Add(90 * time.Second).Unix())},
		{metrics.LastRunExitCode, nil, 0},
		{metrics.LastSuccess, nil, float64(t0.Add(90 * time.Second).Unix())},
	} {
		if got, found := p.Families.Value(c.name, c.labels); !found || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, found, c.want)
		}
	}
	if _, found := p.Families.Value(metrics.Outcomes, map[string]string{"phase": "submit", "outcome": "failed"}); found {
		t.Error("a zero count was pushed as a series")
	}

	// The next run is a new process whose pass fails.
	failed := metrics.New(metrics.Options{})
	failed.ObservePass(metrics.Pass{Phases: []string{"submit"}, Start: t0.Add(time.Hour), End: t0.Add(time.Hour + time.Second), Failed: true})
	if err := failed.Push(context.Background(), g, "api-user", 0); err != nil {
		t.Fatal(err)
	}
	last := gw.Pushes()[1]
	if _, found := last.Families.Value(metrics.LastSuccess, nil); found {
		t.Errorf("a failed run pushed %s", metrics.LastSuccess)
	}
	held := gw.Group(group)
	if got, _ := held.Value(metrics.LastRunExitCode, nil); got != 1 {
		t.Errorf("after the failed run the gateway holds exit code %v, want 1", got)
	}
	if got, found := held.Value(metrics.LastSuccess, nil); !found || got != float64(t0.Add(90*time.Second).Unix()) {
		t.Errorf("after the failed run the gateway holds last success %v (found %v), want the first run's", got, found)
	}
	// The failed run made no call and counted nothing: the first run's
	// numbers must not stay on the gateway as if they were its own.
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{metrics.Outcomes, map[string]string{"phase": "submit", "outcome": "ordered"}, -1},
		{metrics.OctaneCalls, map[string]string{"method": "orderQuery", "outcome": "fault"}, -1},
		{metrics.OctaneCalls, map[string]string{"method": "orderCreate", "outcome": "ok"}, 0},
		{metrics.RateLimitWait, map[string]string{"method": "orderCreate"}, 0},
		{metrics.Outcomes, map[string]string{"phase": "pass", "outcome": "failed"}, 1},
		{metrics.Outcomes, map[string]string{"phase": "pass", "outcome": "ok"}, 0},
	} {
		got, found := held.Value(c.name, c.labels)
		if c.want < 0 && found {
			t.Errorf("after the failed run the gateway still holds the first run's %s%v = %v", c.name, c.labels, got)
		}
		if c.want >= 0 && (!found || got != c.want) {
			t.Errorf("after the failed run the gateway holds %s%v = %v (found %v), want %v", c.name, c.labels, got, found, c.want)
		}
	}
}

// A refused push is an error naming the gateway with its user info masked:
// neither the password nor the user name is in it.
func TestPushErrorHidesTheCredentials(t *testing.T) {
	gw := metricstest.Start(t)
	gw.FailWith(http.StatusInternalServerError)
	g := gateway(t, strings.Replace(gw.URL, "://", "://push-user:s3cret-push@", 1))
	m := metrics.New(metrics.Options{})
	m.ObservePass(metrics.Pass{Start: t0, End: t0})
	err := m.Push(context.Background(), g, "api-user", time.Second)
	if err == nil {
		t.Fatal("a refused push returned no error")
	}
	for _, s := range []string{err.Error(), g.String(), fmt.Sprint(g), fmt.Sprintf("%#v %+v", g, g)} {
		if strings.Contains(s, "s3cret-push") || strings.Contains(s, "push-user") {
			t.Errorf("the gateway's credentials leak: %q", s)
		}
	}
	if !strings.Contains(err.Error(), "***@127.0.0.1") || !strings.Contains(err.Error(), "500") {
		t.Errorf("error %q does not name the masked gateway and the status", err)
	}
	// No gateway at all: also an error, also masked.
	dead := gateway(t, "http://push-user:s3cret-push@127.0.0.1:1")
	if err := m.Push(context.Background(), dead, "api-user", time.Second); err == nil || strings.Contains(err.Error(), "s3cret-push") {
		t.Errorf("push to a closed port: %v", err)
	}
}

func TestParseGateway(t *testing.T) {
	tests := []struct {
		raw, want, err string
	}{
		{"http://pushgateway:9091", "http://pushgateway:9091", ""},
		{"https://u:p@push.example.com/prefix/", "https://***@push.example.com/prefix", ""},
		{"http://u:p@127.0.0.1:9091", "http://***@127.0.0.1:9091", ""},
		{"http://u:p@pushgateway:9091", "", "plain http only to a loopback host"},
		{"pushgateway:9091", "", "http(s) URL with a host"},
		{"ftp://pushgateway", "", "http(s) URL with a host"},
		{"http://pushgateway:9091/?job=x", "", "no query"},
		{"http://u:p%zz@host", "", "not a URL"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			g, err := metrics.ParseGateway(tt.raw)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one saying %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "u:p") {
					t.Errorf("the error quotes the URL's credentials: %v", err)
				}
				return
			}
			if err != nil || g.String() != tt.want {
				t.Fatalf("ParseGateway = %q, %v; want %q", g, err, tt.want)
			}
		})
	}
}

// The database gauges read the store at each gathering, on both dialects.
func TestDatabaseGauges(t *testing.T) {
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		rows := make([]repo.NewActivation, 5)
		for i := range rows {
			rows[i] = repo.NewActivation{Line: i + 2, SalesRef: fmt.Sprintf("M-%d", i), Email: "x@example.com", PlanNo: 1001}
		}
		if _, err := s.Import(ctx, repo.ImportFile{Name: "m.csv", Hash: "m", DataRows: 5}, rows, nil, t0); err != nil {
			t.Fatal(err)
		}
		m := metrics.New(metrics.Options{Store: s, Now: func() time.Time { return t0.Add(time.Hour) }, Labels: map[string]string{"credential": "api-user"}})
		fams := gather(t, m)
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{metrics.Activations, map[string]string{"state": "pending", "credential": "api-user"}, 5},
			{metrics.Activations, map[string]string{"state": "qr_ready"}, 0},
			{metrics.OldestPendingAge, nil, 3600},
			{metrics.OpenOrdersOver24h, nil, 0},
			{metrics.QRLateOver24h, nil, 0},
			{metrics.ReleasesDue, nil, 0},
		} {
			if got, found := fams.Value(c.name, c.labels); !found || got != c.want {
				t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, found, c.want)
			}
		}
		if n := len(fams[metrics.Activations].GetMetric()); n != len(repo.States()) {
			t.Errorf("%d state series, want one per state (%d)", n, len(repo.States()))
		}
		for _, name := range []string{metrics.LastSuccess, metrics.LastRunExitCode, metrics.LastRun, metrics.RunDuration} {
			if _, found := fams.Value(name, nil); found {
				t.Errorf("%s exposed before any pass ran", name)
			}
		}
	})
}

// A database that cannot be read leaves its gauges out and the rest in.
func TestDatabaseDownLeavesTheOthers(t *testing.T) {
	s := repotest.NewSQLite(t)
	s.Close()
	var log strings.Builder
	m := metrics.New(metrics.Options{Store: s, Log: newLog(&log)})
	m.ObservePass(metrics.Pass{Start: t0, End: t0, Failed: true})
	fams := gather(t, m)
	if _, found := fams.Value(metrics.Activations, nil); found {
		t.Error("state gauges from a closed store")
	}
	if got, found := fams.Value(metrics.LastRunExitCode, nil); !found || got != 1 {
		t.Errorf("exit code %v (found %v), want 1", got, found)
	}
	if !strings.Contains(log.String(), "read the database gauges") {
		t.Errorf("no warning logged: %q", log.String())
	}
}

// /healthz: healthy at the start; unhealthy while the last pass of any phase
// failed; unhealthy once nothing succeeded for two hours.
func TestHealth(t *testing.T) {
	c := &clock{t: t0}
	m := metrics.New(metrics.Options{Wall: c.now})
	srvURL := serve(t, m)
	check := func(want bool, reason string) {
		t.Helper()
		resp, err := http.Get(srvURL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h metrics.Health
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			t.Fatal(err)
		}
		wantCode := http.StatusOK
		if !want {
			wantCode = http.StatusServiceUnavailable
		}
		if resp.StatusCode != wantCode || h.Healthy != want {
			t.Fatalf("healthz %d %+v, want %d", resp.StatusCode, h, wantCode)
		}
		if reason != "" && !strings.Contains(strings.Join(h.Reasons, "; "), reason) {
			t.Fatalf("reasons %q, want one saying %q", h.Reasons, reason)
		}
	}
	check(true, "")
	c.set(t0.Add(time.Minute))
	m.ObservePass(metrics.Pass{Phases: []string{"submit"}, Start: t0, End: c.now()})
	m.ObservePass(metrics.Pass{Phases: []string{"poll"}, Start: t0, End: c.now(), Failed: true})
	check(false, "the last poll pass failed")
	m.ObservePass(metrics.Pass{Phases: []string{"poll"}, Start: t0, End: c.now()})
	check(true, "")
	c.set(t0.Add(time.Minute + metrics.NoSuccessLimit - time.Second))
	check(true, "")
	c.set(t0.Add(time.Minute + metrics.NoSuccessLimit))
	check(false, "no pass has succeeded for 2h0m0s")

	// Never a success: two hours from the start.
	c2 := &clock{t: t0}
	fresh := metrics.New(metrics.Options{Wall: c2.now})
	c2.set(t0.Add(metrics.NoSuccessLimit))
	if h := fresh.Health(); h.Healthy || !strings.Contains(strings.Join(h.Reasons, ";"), "since the start") {
		t.Errorf("no success in two hours since the start: %+v", h)
	}
}

// /metrics serves the exposition with the constant credential label.
func TestMetricsEndpoint(t *testing.T) {
	m := metrics.New(metrics.Options{Labels: map[string]string{"credential": "api-user"}})
	m.ObservePass(metrics.Pass{Start: t0, End: t0.Add(time.Second), Counts: map[string]int{"qr.ready": 4}})
	resp, err := http.Get(serve(t, m) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	fams, err := metricstest.Parse(resp.Body, resp.Header)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := fams.Value(metrics.Outcomes, map[string]string{"phase": "qr", "outcome": "ready", "credential": "api-user"}); got != 4 {
		t.Errorf("%s{qr,ready} = %v, want 4", metrics.Outcomes, got)
	}
	if got, _ := fams.Value(metrics.LastSuccess, map[string]string{"credential": "api-user"}); got != float64(t0.Add(time.Second).Unix()) {
		t.Errorf("%s = %v", metrics.LastSuccess, got)
	}
}

// Close ends promptly with a connection open that never sent a request (a
// scraper's or a probe's): net/http alone waits 5 s for such a one.
func TestCloseWithAnUnusedConnection(t *testing.T) {
	m := metrics.New(metrics.Options{})
	s, err := m.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // let the server accept it
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close with an unused connection open: %v, want nil within 1 s", err)
	}
}

func serve(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	s, err := m.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return "http://" + s.Addr().String()
}

// gather reads the families as a push or a scrape would.
func gather(t *testing.T, m *metrics.Metrics) metricstest.Families {
	t.Helper()
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := metricstest.Families{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func newLog(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
