package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/octane"
)

func fakeEnv(vars map[string]string, stdout io.Writer) env {
	return env{
		lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		stdout: stdout,
		stderr: io.Discard,
	}
}

func TestSimConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		vars    map[string]string
		check   func(t *testing.T, st simSettings)
		wantErr string // substring naming the bad variable or flag
	}{
		{"defaults", nil, nil, func(t *testing.T, st simSettings) {
			if st.addr != "127.0.0.1:8085" || st.cfg.Username != "demo" || st.cfg.Password != "demo" || st.cfg.Plans != nil {
				t.Fatalf("%+v", st)
			}
		}, ""},
		{"env", nil, map[string]string{
			"SIM_PLANS": "7, 8", "SIM_MSNS": "20", "SIM_ESIM_PROFILES": "0", "SIM_ORDER_LATENCY": "31m",
			"SIM_FAULTS": "drop=0.5", "SIM_MINUTE_WINDOW": "2s", "SIM_HOUR_WINDOW": "1m", "SIM_ADDR": "127.0.0.1:9",
			"OCTANE_USERNAME": "u", "OCTANE_PASSWORD": "p", "SIM_CUSTOMERS": "5,6",
		}, func(t *testing.T, st simSettings) {
			c := st.cfg
			if !reflect.DeepEqual(c.Plans, []int{7, 8}) || c.MSNs != 20 || !st.noProfiles || c.OrderLatency != 31*time.Minute ||
				c.Faults.Drop != 0.5 || c.MinuteWindow != 2*time.Second || c.HourWindow != time.Minute ||
				st.addr != "127.0.0.1:9" || c.Username != "u" || c.Password != "p" || !reflect.DeepEqual(c.Customers, []int64{5, 6}) {
				t.Fatalf("%+v", st)
			}
		}, ""},
		{"flag beats env", []string{"--msns", "30", "--addr", "127.0.0.1:0"}, map[string]string{"SIM_MSNS": "bad"},
			func(t *testing.T, st simSettings) {
				if st.cfg.MSNs != 30 || st.addr != "127.0.0.1:0" {
					t.Fatalf("%+v", st)
				}
			}, ""},
		{"bad plans", nil, map[string]string{"SIM_PLANS": "1001,x"}, nil, "SIM_PLANS"},
		{"bad msns", nil, map[string]string{"SIM_MSNS": "0"}, nil, "SIM_MSNS"},
		{"bad latency", nil, map[string]string{"SIM_ORDER_LATENCY": "5"}, nil, "SIM_ORDER_LATENCY"},
		{"bad faults", nil, map[string]string{"SIM_FAULTS": "drop=2"}, nil, "SIM_FAULTS"},
		{"bad faults method", []string{"--faults", "methods=orderCreat"}, nil, nil, "orderCreat"},
		{"bad window flag", []string{"--minute-window", "-1s"}, nil, nil, "--minute-window"},
		{"unknown flag", []string{"--nope"}, nil, nil, "nope"},
		{"credentials", nil, map[string]string{"SIM_CREDENTIALS": " u1:p1 , u2:p:2", "OCTANE_USERNAME": "u", "OCTANE_PASSWORD": "p"},
			func(t *testing.T, st simSettings) {
				// The list is the account's users; OCTANE_USERNAME is not added.
				if want := map[string]string{"u1": "p1", "u2": "p:2"}; !reflect.DeepEqual(st.cfg.Credentials, want) || st.cfg.Username != "" {
					t.Fatalf("credentials %v, username %q", st.cfg.Credentials, st.cfg.Username)
				}
			}, ""},
		{"credentials flag beats env", []string{"--credentials", "a:b"}, map[string]string{"SIM_CREDENTIALS": "x"},
			func(t *testing.T, st simSettings) {
				if !reflect.DeepEqual(st.cfg.Credentials, map[string]string{"a": "b"}) {
					t.Fatalf("credentials %v", st.cfg.Credentials)
				}
			}, ""},
		{"credentials without password", nil, map[string]string{"SIM_CREDENTIALS": "u1:s3cret,u2"}, nil, "SIM_CREDENTIALS: item 2"},
		{"credentials empty password", []string{"--credentials", "u1:s3cret,u2:"}, nil, nil, `--credentials: item 2 (user "u2")`},
		{"credentials twice", nil, map[string]string{"SIM_CREDENTIALS": "u1:s3cret,u1:s3cret"}, nil, `user "u1" is listed twice`},
		{"credentials empty item", nil, map[string]string{"SIM_CREDENTIALS": "u1:s3cret,,u2:x"}, nil, "item 2 is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := simConfig(tc.args, fakeEnv(tc.vars, io.Discard))
			if tc.wantErr != "" {
				var ce configError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.wantErr) || exitCode(err) != exitConfig {
					t.Fatalf("error %v, want a configError naming %s", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("error %q shows a password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, st)
		})
	}
}

// lineWriter hands the first line written to it to a channel.
type lineWriter struct {
	mu   sync.Mutex
	buf  strings.Builder
	line chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if s := w.buf.String(); strings.Contains(s, "\n") && w.line != nil {
		w.line <- s
		w.line = nil
	}
	return len(p), nil
}

func TestCmdSimServesUntilCancelled(t *testing.T) {
	lines := make(chan string, 1) // read here, never through out.line (the writer clears it)
	out := &lineWriter{line: lines}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"sim", "--addr", "127.0.0.1:0"}, fakeEnv(map[string]string{"SIM_MSNS": "5"}, out))
	}()
	var line string
	select {
	case line = <-lines:
	case err := <-done:
		t.Fatalf("sim ended early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no listening line")
	}
	m := regexp.MustCompile(`OCTANE_SOAP_URL=(\S+)/tiab OCTANE_REST_URL=(\S+)/tiab/api`).FindStringSubmatch(line)
	if m == nil || m[1] != m[2] {
		t.Fatalf("line %q", line)
	}
	resp, err := http.Get(m[1] + "/_sim/ledger")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ledger: %d", resp.StatusCode)
	}
	// A connection a client dialled but never used (an HTTP pool does
	// that) must not hold the stop up: net/http alone waits 5 s for it,
	// past the sim's shutdown bound.
	unused, err := net.Dial("tcp", strings.TrimPrefix(m[1], "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer unused.Close()
	time.Sleep(50 * time.Millisecond) // let the server accept it
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after cancel: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("sim did not stop within 3 s with an unused connection open")
	}
}

// TestCmdSimFaultsAndExpiry drives `batch sim` from outside as a black-box
// test would: start and end an Octane outage with POST /_sim/faults, then let
// a reservation lapse and find it in GET /_sim/expired.
func TestCmdSimFaultsAndExpiry(t *testing.T) {
	const user = "sim-faults-test"
	base := startBatchSim(t, user, "pw", "--faults", "drop=0.5,methods=orderCreate")
	client, err := octane.New(base+"/tiab", base+"/tiab/api", user, "pw", octane.WithRetries(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	control := func(method, path, body string, wantStatus int, out any) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s %q: HTTP %d, want %d", method, path, body, resp.StatusCode, wantStatus)
		}
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	steps := []struct {
		name, method, body string
		status             int
		wantFaults         string // in force afterwards
		wantDown           bool   // Octane calls fail at the transport level
	}{
		{"started with --faults", http.MethodGet, "", 200, "drop=0.5,methods=orderCreate", false},
		{"outage begins", http.MethodPost, "transport=1", 200, "transport=1", true},
		{"bad spec keeps the outage", http.MethodPost, "transport=1,drop=2", 400, "transport=1", true},
		{"outage ends", http.MethodPost, "", 200, "", false},
	}
	for _, st := range steps {
		var out map[string]string
		control(st.method, "/_sim/faults", st.body, st.status, &out)
		if st.status == http.StatusBadRequest && !strings.Contains(out["error"], `drop="2"`) {
			t.Fatalf("%s: error %v, want it to name drop=\"2\"", st.name, out)
		}
		control(http.MethodGet, "/_sim/faults", "", 200, &out)
		if out["faults"] != st.wantFaults {
			t.Fatalf("%s: faults %q, want %q", st.name, out["faults"], st.wantFaults)
		}
		_, err := client.QueryResources(ctx, "0410000000")
		var te *octane.TransportError
		if down := errors.As(err, &te); down != st.wantDown || (!down && err != nil) {
			t.Fatalf("%s: queryResources: %v, want a transport failure: %v", st.name, err, st.wantDown)
		}
	}

	res, err := client.ReserveResources(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var expired []struct {
		MSN, Credential string
	}
	control(http.MethodGet, "/_sim/expired", "", 200, &expired)
	if len(expired) != 0 {
		t.Fatalf("expired before 24h: %+v", expired)
	}
	simAdvance(t, base, 25*time.Hour)
	control(http.MethodGet, "/_sim/expired", "", 200, &expired)
	if len(expired) != 1 || expired[0].MSN != res[0].MSN || expired[0].Credential != user {
		t.Fatalf("expired %+v, want %s reserved by %s", expired, res[0].MSN, user)
	}
}
