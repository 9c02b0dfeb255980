//go:build linux

package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/reports/smtptest"
)

// The one Octane credential of the scenario.
const (
	cred     = "e2e-blackbox"
	password = "bb-s3cret-pw"
	groupNo  = "7"
)

// buildBatch builds ./cmd/batch from the module root into dir.
func buildBatch(t *testing.T, dir string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is not on PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD: %q, %v", gomod, err)
	}
	bin := filepath.Join(dir, "batch")
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, "./cmd/batch")
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/batch: %v\n%s", err, b)
	}
	return bin
}

// proc is one child process: `batch run`, `batch import`, `batch sim`...
type proc struct {
	name     string
	args     []string
	outPath  string
	errPath  string
	start    time.Time
	end      time.Time
	offset   time.Duration // BATCH_TIME_OFFSET it ran with
	deadline string        // RUN_DEADLINE it ran with
	cmd      *exec.Cmd
	done     chan struct{}
	cancel   context.CancelFunc

	// Set once done.
	code     int    // exit code; -1 when a signal ended it
	signal   string // the signal that ended it, if any
	timedOut bool   // the harness's timeout killed it
	killed   bool   // the scenario SIGKILLed it on purpose
}

func (p *proc) wait() { <-p.done }

// stdout and stderr read what the child wrote.
func (p *proc) stdout() string { b, _ := os.ReadFile(p.outPath); return string(b) }
func (p *proc) stderr() string { b, _ := os.ReadFile(p.errPath); return string(b) }

// String names the process, its outcome and where its output is.
func (p *proc) String() string {
	state := "exit " + strconv.Itoa(p.code)
	switch {
	case p.timedOut:
		state = "timed out (killed by the harness)"
	case p.signal != "":
		state = "ended by " + p.signal
		if p.killed {
			state += " (the scenario's SIGKILL)"
		}
	}
	return fmt.Sprintf("%s [%s] offset %s, %s, %.1fs; stderr %s", p.name, strings.Join(p.args, " "), p.offset,
		state, p.end.Sub(p.start).Seconds(), p.errPath)
}

// running says whether the child has not ended yet.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// waitFor waits until the child's stderr contains s, it ends, or timeout.
func (p *proc) waitFor(s string, timeout time.Duration) {
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		select {
		case <-p.done:
			return
		default:
		}
		if strings.Contains(p.stderr(), s) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kill SIGKILLs the process (no grace, no cleanup: a node dying).
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.killed = true
	_ = p.cmd.Process.Kill()
}

// failure is the last `batch: ...` line of a finished child's stderr.
func (p *proc) failure() string {
	lines := strings.Split(strings.TrimSpace(p.stderr()), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "batch: ") {
			return lines[i]
		}
	}
	return ""
}

// harness owns every child process and the services of the scenario.
type harness struct {
	t      *testing.T
	ctx    context.Context
	stop   context.CancelFunc
	dir    string
	logDir string
	bin    string

	pg    *postgres
	dbURL string
	db    *sql.DB
	mail  *smtptest.Server

	simBase   string // the simulator itself: control endpoints
	octaneURL string // what batch talks to: the fault proxy in front of the simulator
	proxy     *faultProxy
	simFaults bool // the simulator has POST /_sim/faults
	simExpiry bool // the simulator has GET /_sim/expired

	inbox, reportDir string
	vars             map[string]string

	offset time.Duration // how far both clocks were moved

	mu    sync.Mutex
	seq   int
	procs []*proc
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	if keep := os.Getenv("E2E_KEEP"); keep != "" {
		dir = filepath.Join(keep, fmt.Sprintf("e2e-%s", time.Now().UTC().Format("20060102T150405")))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("keeping child output under %s", dir)
	}
	ctx, stop := context.WithCancel(context.Background())
	h := &harness{t: t, ctx: ctx, stop: stop, dir: dir, logDir: filepath.Join(dir, "logs"),
		inbox: filepath.Join(dir, "inbox"), reportDir: filepath.Join(dir, "reports")}
	for _, d := range []string{h.logDir, h.inbox, h.reportDir, filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(h.cleanup)
	return h
}

// cleanup kills whatever still runs and waits for it.
func (h *harness) cleanup() {
	h.stop()
	h.mu.Lock()
	procs := append([]*proc(nil), h.procs...)
	h.mu.Unlock()
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			h.t.Errorf("%s did not stop", p.name)
		}
	}
	if h.db != nil {
		h.db.Close()
	}
}

// env is the environment of a batch child: nothing inherited but PATH, the
// scenario's settings, then extra ("" removes a variable).
func (h *harness) env(extra map[string]string) []string {
	m := map[string]string{"PATH": os.Getenv("PATH"), "HOME": h.dir, "TZ": "UTC", "TMPDIR": filepath.Join(h.dir, "tmp")}
	for k, v := range h.vars {
		m[k] = v
	}
	m["BATCH_TIME_OFFSET"] = h.offset.String()
	for k, v := range extra {
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		if v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// spawn starts a child that is killed after timeout or at the test's end.
func (h *harness) spawn(name string, timeout time.Duration, env []string, args ...string) *proc {
	h.t.Helper()
	h.mu.Lock()
	h.seq++
	base := filepath.Join(h.logDir, fmt.Sprintf("%04d-%s", h.seq, name))
	h.mu.Unlock()
	if dl, ok := h.t.Deadline(); ok {
		// Leave the test time to stop its children and check what it has.
		left := time.Until(dl) - time.Minute
		if left < 10*time.Second {
			h.t.Fatalf("out of time for %s: raise go test's -timeout (the full form needs about an hour)", name)
		}
		timeout = min(timeout, left)
	}
	ctx, cancel := context.WithTimeout(h.ctx, timeout)
	p := &proc{name: name, args: args, outPath: base + ".out", errPath: base + ".err", offset: h.offset,
		done: make(chan struct{}), cancel: cancel}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "BATCH_TIME_OFFSET="); ok {
			p.offset, _ = time.ParseDuration(v)
		}
		if v, ok := strings.CutPrefix(kv, "RUN_DEADLINE="); ok {
			p.deadline = v
		}
	}
	outF, err := os.Create(p.outPath)
	if err != nil {
		h.t.Fatal(err)
	}
	errF, err := os.Create(p.errPath)
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = env
	cmd.Dir = h.dir
	cmd.Stdout, cmd.Stderr = outF, errF
	cmd.WaitDelay = 5 * time.Second
	// If the test binary dies (go test's -timeout), its children die too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd = cmd
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		h.t.Fatalf("start %s: %v", name, err)
	}
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		p.end = time.Now()
		outF.Close()
		errF.Close()
		p.timedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
		cancel()
		p.code = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.signal = ws.Signal().String()
		}
		close(p.done)
	}()
	return p
}

// batch runs one batch command to its end.
func (h *harness) batch(name string, extra map[string]string, args ...string) *proc {
	h.t.Helper()
	p := h.spawn(name, childTimeout, h.env(extra), args...)
	p.wait()
	return p
}

// mustBatch runs a command that has to exit 0.
func (h *harness) mustBatch(name string, extra map[string]string, args ...string) *proc {
	h.t.Helper()
	p := h.batch(name, extra, args...)
	if p.code != 0 {
		h.t.Fatalf("%s\nstdout:\n%s\nstderr tail:\n%s", p, p.stdout(), tail(p.errPath, 30))
	}
	return p
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var simURLLine = regexp.MustCompile(`OCTANE_SOAP_URL=(\S+)/tiab OCTANE_REST_URL=(\S+)/tiab/api`)

// startSim runs `batch sim` on a free loopback port and puts the fault proxy
// in front of it. args are simulator flags.
func (h *harness) startSim(seed int64, args ...string) {
	h.t.Helper()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.dir, "TZ=UTC",
		"OCTANE_USERNAME=" + cred, "OCTANE_PASSWORD=" + password}
	all := append([]string{"sim", "--addr", "127.0.0.1:0", "--seed", strconv.FormatInt(seed, 10)}, args...)
	p := h.spawn("sim", 2*time.Hour, env, all...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := simURLLine.FindStringSubmatch(p.stdout()); m != nil {
			if m[1] != m[2] {
				h.t.Fatalf("batch sim printed %q", m[0])
			}
			h.simBase = m[1]
			break
		}
		select {
		case <-p.done:
			h.t.Fatalf("batch sim ended early: %s\n%s", p, tail(p.errPath, 20))
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("batch sim printed no URL in 20s\n%s", tail(p.errPath, 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.proxy = startProxy(h.t, h.simBase, seed)
	h.octaneURL = h.proxy.url
	h.simFaults = h.probe("/_sim/faults")
	h.simExpiry = h.probe("/_sim/expired")
}

// probe says whether the simulator serves GET path.
func (h *harness) probe(path string) bool {
	resp, err := http.Get(h.simBase + path)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// ledgerEntry is one row of GET /_sim/ledger.
type ledgerEntry struct {
	At         time.Time `json:"at"`
	Method     string    `json:"method"`
	Outcome    string    `json:"outcome"`
	MSN        string    `json:"msn"`
	OrderID    string    `json:"order_id"`
	Credential string    `json:"credential"`
	Code       string    `json:"code"`
}

func (h *harness) getJSON(path string, v any) {
	h.t.Helper()
	resp, err := http.Get(h.simBase + path)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		h.t.Fatalf("GET %s: HTTP %d %s", path, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
}

func (h *harness) ledger() []ledgerEntry {
	h.t.Helper()
	var l []ledgerEntry
	h.getJSON("/_sim/ledger", &l)
	return l
}

// quiet waits until the simulator's ledger has not grown for half a second
// (at most 10 s). A SIGKILLed child's last requests can still be in its
// sockets, and the simulator stamps a request with its clock when it serves
// it: were the clock advanced first, an orderQuery the killed pass sent
// 31 minutes earlier in business time would be stamped next to the next
// pass's query of the same order (seed 218 of the short form).
func (h *harness) quiet() {
	h.t.Helper()
	const still = 500 * time.Millisecond
	n, since := len(h.ledger()), time.Now()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		if m := len(h.ledger()); m != n {
			n, since = m, time.Now()
		} else if time.Since(since) >= still {
			return
		}
	}
	h.t.Logf("the simulator's ledger still grew 10 s after a kill")
}

// expiry is one row of GET /_sim/expired.
type expiry struct {
	MSN           string    `json:"msn"`
	Credential    string    `json:"credential"`
	ReservationID string    `json:"reservation_id"`
	State         string    `json:"state"`
	ReservedAt    time.Time `json:"reserved_at"`
	ExpiredAt     time.Time `json:"expired_at"`
}

func (h *harness) post(path, ctype, body string) {
	h.t.Helper()
	resp, err := http.Post(h.simBase+path, ctype, strings.NewReader(body))
	if err != nil {
		h.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		h.t.Fatalf("POST %s %q: HTTP %d %s", path, body, resp.StatusCode, b)
	}
}

// advance moves both clocks: the simulator's and the job's offset.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	if d <= 0 {
		return
	}
	h.post("/_sim/clock", "application/json", `{"advance":"`+d.String()+`"}`)
	h.offset += d
}

// simNow is the simulator's clock.
func (h *harness) simNow() time.Time {
	h.t.Helper()
	resp, err := http.Post(h.simBase+"/_sim/clock", "application/json", strings.NewReader(`{"advance":"0s"}`))
	if err != nil {
		h.t.Fatalf("read the simulator's clock: %v", err)
	}
	defer resp.Body.Close()
	var v struct {
		Now time.Time `json:"now"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.Now.IsZero() {
		h.t.Fatalf("read the simulator's clock: HTTP %d, %v", resp.StatusCode, err)
	}
	return v.Now
}

// faults is a fault setting of the scenario.
type faults struct {
	transport, drop, reject, asyncReject, rateLimit float64
}

func (f faults) spec() string {
	var parts []string
	for _, kv := range []struct {
		k string
		v float64
	}{{"transport", f.transport}, {"drop", f.drop}, {"reject", f.reject}, {"asyncreject", f.asyncReject}, {"ratelimit", f.rateLimit}} {
		if kv.v > 0 {
			parts = append(parts, kv.k+"="+strconv.FormatFloat(kv.v, 'g', -1, 64))
		}
	}
	return strings.Join(parts, ",")
}

// setFaults puts f in force: through POST /_sim/faults when the simulator
// has it; otherwise transport and drop faults come from the proxy and the
// simulator keeps the rejections it was started with.
func (h *harness) setFaults(f faults) {
	h.t.Helper()
	if h.simFaults {
		h.post("/_sim/faults", "text/plain", f.spec())
		h.proxy.set(0, 0, false)
		return
	}
	h.proxy.set(f.transport, f.drop, f.transport >= 1)
}

// faultProxy stands between batch and the simulator. It forwards every
// request, except that it can hang up before forwarding (a transport
// fault: nothing reached Octane) or after the simulator answered (a drop:
// processed, answer lost), at random or always (an outage). The simulator
// does the same itself once it has POST /_sim/faults; the proxy covers a
// simulator without it.
type faultProxy struct {
	url    string
	target string
	srv    *http.Server
	client *http.Client

	mu              sync.Mutex
	rng             *rand.Rand
	transport, drop float64
	down            bool
	events          []proxyEvent
}

// proxyEvent is a request the proxy failed on purpose.
type proxyEvent struct {
	at     time.Time // wall
	kind   string    // transport or drop
	method string    // the SOAP operation or REST call, as far as the body tells
}

// proxyMethods are the calls the proxy recognises in a request.
var proxyMethods = []string{"reserveResources", "unreserveResources", "selectResource", "queryResources",
	"orderCreate", "orderQuery", "getEsimDetails", "customer"}

func startProxy(t *testing.T, target string, seed int64) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{url: "http://" + ln.Addr().String(), target: target, rng: rand.New(rand.NewPCG(uint64(seed), 7)),
		client: &http.Client{Timeout: 60 * time.Second}}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

func (p *faultProxy) set(transport, drop float64, down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.transport, p.drop, p.down = transport, drop, down
}

// droppedNear says whether the proxy dropped the answer to a call of
// method within a second of at (wall).
func (p *faultProxy) droppedNear(method string, at time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.events {
		if e.kind == "drop" && e.method == method && e.at.Sub(at).Abs() < time.Second {
			return true
		}
	}
	return false
}

// faultsBetween counts the requests failed on purpose in [from, to] (wall).
func (p *faultProxy) faultsBetween(from, to time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, e := range p.events {
		if !e.at.Before(from) && !e.at.After(to) {
			n++
		}
	}
	return n
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		hangUp(w)
		return
	}
	p.mu.Lock()
	kind := ""
	switch {
	case p.down:
		kind = "transport"
	case p.transport > 0 && p.rng.Float64() < p.transport:
		kind = "transport"
	case p.drop > 0 && p.rng.Float64() < p.drop:
		kind = "drop"
	}
	if kind != "" {
		ev := proxyEvent{at: time.Now(), kind: kind}
		for _, m := range proxyMethods {
			if bytes.Contains(body, []byte(m)) || strings.Contains(r.URL.Path, m) {
				ev.method = m
				break
			}
		}
		p.events = append(p.events, ev)
	}
	p.mu.Unlock()
	if kind == "transport" {
		hangUp(w)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		hangUp(w)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := p.client.Do(req)
	if err != nil {
		hangUp(w)
		return
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || kind == "drop" {
		hangUp(w)
		return
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// hangUp closes the connection without an answer.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	_ = conn.Close()
}

// importLine is the summary line `batch import` prints per file.
var importLine = regexp.MustCompile(`(?m)^(.+): accepted (\d+), duplicate (\d+), rejected (\d+), blank (\d+)`)
