// Package metricstest is an in-process stand-in for a Prometheus Pushgateway,
// for tests: an httptest server that decodes every push with expfmt (the
// protobuf or text exposition format the Content-Type names), records it,
// and keeps each group as the Pushgateway documents: PUT replaces the whole
// group, POST replaces only the families it carries, DELETE drops the group.
// It also reads a /metrics scrape back (Parse) and looks values up (Value).
package metricstest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Families are decoded metric families by name.
type Families map[string]*dto.MetricFamily

// Push is one request the gateway received.
type Push struct {
	Method string
	Path   string
	// Grouping is the grouping key from the path, job included.
	Grouping map[string]string
	// User and Password are the request's basic auth ("" without).
	User, Password string
	Families       Families
}

// Gateway is the stand-in Pushgateway.
type Gateway struct {
	// URL is the server's base URL (http://127.0.0.1:PORT).
	URL string

	mu     sync.Mutex
	pushes []Push
	groups map[string]Families
	status int // answer every push with this status when non-zero
}

// Start serves a Gateway until the test ends.
func Start(t testing.TB) *Gateway {
	t.Helper()
	g := &Gateway{groups: map[string]Families{}}
	srv := httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

// FailWith makes every later push answer status (0: accept again).
func (g *Gateway) FailWith(status int) {
	g.mu.Lock()
	g.status = status
	g.mu.Unlock()
}

// Pushes returns the requests received so far, oldest first.
func (g *Gateway) Pushes() []Push {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Push(nil), g.pushes...)
}

// Group returns what the gateway holds for a grouping key (job included),
// after every push so far; nil when it holds nothing.
func (g *Gateway) Group(grouping map[string]string) Families {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.groups[groupKey(grouping)]
}

func groupKey(grouping map[string]string) string {
	kv := make([]string, 0, len(grouping))
	for k, v := range grouping {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) {
	grouping, err := parseGrouping(r.URL.EscapedPath())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p := Push{Method: r.Method, Path: r.URL.Path, Grouping: grouping, Families: Families{}}
	p.User, p.Password, _ = r.BasicAuth()
	if r.Method == http.MethodPut || r.Method == http.MethodPost {
		dec := expfmt.NewDecoder(r.Body, expfmt.ResponseFormat(r.Header))
		for {
			mf := &dto.MetricFamily{}
			if err := dec.Decode(mf); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				http.Error(w, "decode: "+err.Error(), http.StatusBadRequest)
				return
			}
			p.Families[mf.GetName()] = mf
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pushes = append(g.pushes, p)
	if g.status != 0 {
		http.Error(w, "refused by the test", g.status)
		return
	}
	key := groupKey(grouping)
	switch r.Method {
	case http.MethodPut:
		g.groups[key] = p.Families
	case http.MethodPost:
		if g.groups[key] == nil {
			g.groups[key] = Families{}
		}
		for n, mf := range p.Families {
			g.groups[key][n] = mf
		}
	case http.MethodDelete:
		delete(g.groups, key)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// parseGrouping reads /metrics/job/J/label/value/... (a name ending in
// @base64 has a base64url value, as the push package sends a value with a
// slash).
func parseGrouping(path string) (map[string]string, error) {
	rest, ok := strings.CutPrefix(path, "/metrics/")
	if !ok {
		return nil, fmt.Errorf("path %q is not /metrics/job/...", path)
	}
	parts := strings.Split(rest, "/")
	if len(parts)%2 != 0 || len(parts) < 2 || parts[0] != "job" && parts[0] != "job@base64" {
		return nil, fmt.Errorf("path %q: want /metrics/job/NAME followed by label/value pairs", path)
	}
	out := map[string]string{}
	for i := 0; i < len(parts); i += 2 {
		name, raw := parts[i], parts[i+1]
		var v string
		if n, b64 := strings.CutSuffix(name, "@base64"); b64 {
			name = n
			if raw != "=" {
				b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(raw, "="))
				if err != nil {
					return nil, fmt.Errorf("label %s: %w", name, err)
				}
				v = string(b)
			}
		} else {
			u, err := url.QueryUnescape(raw) // the push package escapes with url.QueryEscape
			if err != nil {
				return nil, fmt.Errorf("label %s: %w", name, err)
			}
			v = u
		}
		out[name] = v
	}
	return out, nil
}

// Parse decodes an exposition (a /metrics response body) in the format
// header names.
func Parse(r io.Reader, header http.Header) (Families, error) {
	format := expfmt.ResponseFormat(header)
	if format == expfmt.FmtUnknown {
		format = expfmt.NewFormat(expfmt.TypeTextPlain)
	}
	dec := expfmt.NewDecoder(r, format)
	out := Families{}
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return out, err
		}
		out[mf.GetName()] = mf
	}
}

// Value returns the value of the first series of family name whose labels
// include every pair in labels (gauge, counter or untyped), and whether
// there is one.
func (f Families) Value(name string, labels map[string]string) (float64, bool) {
	mf := f[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// Labels returns every label value of every series, for checks that no
// secret reached a label.
func (f Families) Labels() []string {
	var out []string
	for _, mf := range f {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				out = append(out, l.GetName()+"="+l.GetValue())
			}
		}
	}
	sort.Strings(out)
	return out
}
