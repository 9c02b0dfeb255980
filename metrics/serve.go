package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/esimbatch/esimbatch/internal/httpstop"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NoSuccessLimit is how long `batch schedule` may go without a successful
// pass (since the last one, or since it started) before /healthz says
// unhealthy.
const NoSuccessLimit = 2 * time.Hour

// PhaseInfo is how the last pass that ran a phase ended.
type PhaseInfo struct {
	LastPass time.Time `json:"last_pass"`
	Failed   bool      `json:"failed"`
}

// Health is the /healthz verdict. It is unhealthy when the last pass of
// any phase failed (what `batch run` exits 1 for), or when no pass has
// succeeded for NoSuccessLimit. It carries no error text (which could name a
// server or a file): the logs have the errors.
type Health struct {
	Healthy     bool                 `json:"healthy"`
	Reasons     []string             `json:"reasons,omitempty"`
	Started     time.Time            `json:"started"`
	LastSuccess *time.Time           `json:"last_success,omitempty"`
	Phases      map[string]PhaseInfo `json:"phases"`
}

// Health returns the verdict at the wall clock's now.
func (m *Metrics) Health() Health {
	now := m.opts.Wall()
	m.mu.Lock()
	defer m.mu.Unlock()
	h := Health{Healthy: true, Started: m.started.UTC(), Phases: map[string]PhaseInfo{}}
	var failed []string
	for ph, info := range m.phases {
		info.LastPass = info.LastPass.UTC()
		h.Phases[ph] = info
		if info.Failed {
			failed = append(failed, ph)
		}
	}
	sort.Strings(failed)
	for _, ph := range failed {
		h.Reasons = append(h.Reasons, fmt.Sprintf("the last %s pass failed", ph))
	}
	since := m.started
	if !m.lastSuccess.IsZero() {
		t := m.lastSuccess.UTC()
		h.LastSuccess = &t
		since = m.lastSuccess
	}
	if d := now.Sub(since); d >= NoSuccessLimit {
		if m.lastSuccess.IsZero() {
			h.Reasons = append(h.Reasons, fmt.Sprintf("no pass has succeeded in the %s since the start", d.Truncate(time.Second)))
		} else {
			h.Reasons = append(h.Reasons, fmt.Sprintf("no pass has succeeded for %s", d.Truncate(time.Second)))
		}
	}
	h.Healthy = len(h.Reasons) == 0
	return h
}

// Handler serves /metrics (the Prometheus exposition, in the format the
// scraper asks for) and /healthz (Health as JSON: 200 when healthy, 503
// when not).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		h := m.Health()
		w.Header().Set("Content-Type", "application/json")
		if !h.Healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(h)
	})
	return mux
}

// Server is the metrics endpoint of `batch schedule`.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Listen binds addr (METRICS_ADDR, host:port; port 0 picks a free one) and
// serves Handler on it until Close. Errors: the listener's.
func (m *Metrics) Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	s := &Server{ln: ln, done: make(chan error, 1),
		srv: &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	httpstop.CloseUnused(s.srv)
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server, letting requests in progress end within ctx.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
