package octanetest

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Faults are injected at random, per call, with the probabilities below
// (0..1). They are drawn from the seeded RNG, so a given sequence of calls
// sees the same faults on every run.
type Faults struct {
	// Transport closes the connection BEFORE processing: no state change,
	// ledger outcome "dropped".
	Transport float64
	// Drop processes the call, then closes the connection without an
	// answer (the lost orderCreate response); ledger outcome "dropped".
	Drop float64
	// Latency is added (wall time) to every answer.
	Latency time.Duration
	// Reject answers orderCreate with a business rejection (errorCode !=
	// 0) and changes nothing; ledger outcome "rejected".
	Reject float64
	// AsyncReject makes an accepted order end REJECTED (seen via
	// orderQuery) instead of COMPLETE.
	AsyncReject float64
	// RateLimit answers a spurious fault 233; ledger outcome "fault".
	RateLimit float64
	// Methods, if non-empty, limits all of the above to these methods.
	Methods []string
}

// Fault kinds for FailNext.
const (
	FaultTransport   = "transport"
	FaultDrop        = "drop"
	FaultReject      = "reject"
	FaultRateLimit   = "ratelimit"
	FaultAsyncReject = "asyncreject"
)

// faultMethods are the method names the simulator serves, the only ones a
// methods= filter can name: a misspelt name would otherwise filter every
// fault out without a word.
var faultMethods = []string{
	methodQueryResources, methodReserveResources, methodSelectResource, methodUnreserveResources,
	methodOrderCreate, methodOrderQuery, methodAddCustomer, methodGetEsimDetails,
}

// ParseFaults parses a SIM_FAULTS string such as
// "transport=0.05,drop=0.02,reject=0.01,ratelimit=0.01,latency=50ms,asyncreject=0.01,methods=orderCreate|orderQuery".
// Probabilities must be in 0..1, latency a non-negative Go duration,
// methods names the simulator serves. The error names the bad key or value.
// An empty string is no faults.
func ParseFaults(s string) (Faults, error) {
	var f Faults
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, val, ok := strings.Cut(part, "=")
		key, val = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(val)
		if !ok {
			return Faults{}, fmt.Errorf("parse faults: %q: want key=value", part)
		}
		switch key {
		case "transport", "drop", "reject", "asyncreject", "ratelimit":
			p, err := strconv.ParseFloat(val, 64)
			if err != nil || p < 0 || p > 1 {
				return Faults{}, fmt.Errorf("parse faults: %s=%q: want a probability between 0 and 1", key, val)
			}
			switch key {
			case "transport":
				f.Transport = p
			case "drop":
				f.Drop = p
			case "reject":
				f.Reject = p
			case "asyncreject":
				f.AsyncReject = p
			case "ratelimit":
				f.RateLimit = p
			}
		case "latency":
			d, err := time.ParseDuration(val)
			if err != nil || d < 0 {
				return Faults{}, fmt.Errorf("parse faults: latency=%q: want a non-negative duration such as 50ms", val)
			}
			f.Latency = d
		case "methods":
			for m := range strings.SplitSeq(val, "|") {
				if m = strings.TrimSpace(m); m == "" {
					continue
				}
				if !slices.Contains(faultMethods, m) {
					return Faults{}, fmt.Errorf("parse faults: methods: unknown method %q (want %s)", m, strings.Join(faultMethods, ", "))
				}
				f.Methods = append(f.Methods, m)
			}
		default:
			return Faults{}, fmt.Errorf("parse faults: unknown key %q (want transport, drop, reject, asyncreject, ratelimit, latency or methods)", key)
		}
	}
	return f, nil
}

// String is f in the ParseFaults (SIM_FAULTS) syntax, keys in a fixed
// order, zero values left out, "" for no faults: ParseFaults(f.String())
// gives f back.
func (f Faults) String() string {
	var parts []string
	for _, p := range []struct {
		key  string
		prob float64
	}{
		{"transport", f.Transport}, {"drop", f.Drop}, {"reject", f.Reject},
		{"asyncreject", f.AsyncReject}, {"ratelimit", f.RateLimit},
	} {
		if p.prob != 0 {
			parts = append(parts, p.key+"="+strconv.FormatFloat(p.prob, 'g', -1, 64))
		}
	}
	if f.Latency != 0 {
		parts = append(parts, "latency="+f.Latency.String())
	}
	if len(f.Methods) > 0 {
		parts = append(parts, "methods="+strings.Join(f.Methods, "|"))
	}
	return strings.Join(parts, ",")
}

// Faults returns the random fault configuration in force.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	f.Methods = slices.Clone(f.Methods)
	return f
}

// SetFaults replaces the random fault configuration in one step: a call
// draws its faults from either the old or the new configuration, never a
// mix. It does not touch the FailNext schedule.
func (s *Server) SetFaults(f Faults) {
	f.Methods = slices.Clone(f.Methods)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// faultsJSON is the wire shape of GET and POST /_sim/faults.
type faultsJSON struct {
	Faults string `json:"faults"`
}

// handleFaults serves GET /_sim/faults (the spec in force) and POST
// /_sim/faults (a new spec in the SIM_FAULTS syntax as the whole body;
// empty clears). A bad spec is a 400 naming the bad item and leaves the
// faults in force unchanged.
func (s *Server) handleFaults(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, faultsJSON{s.Faults().String()})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "reading the fault spec: " + err.Error()})
		return
	}
	f, err := ParseFaults(string(body))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, faultsJSON{f.String()})
}

// FailNext schedules exact faults: the next n calls of method get kind
// (FaultTransport, FaultDrop, FaultReject, FaultRateLimit or
// FaultAsyncReject), ahead of and instead of the random faults. Scheduled
// "reject" works for any method; "asyncreject" only means something for
// orderCreate. FailNext panics on an unknown kind: that is a bug in the
// calling test.
func (s *Server) FailNext(method string, kind string, n int) {
	switch kind {
	case FaultTransport, FaultDrop, FaultReject, FaultRateLimit, FaultAsyncReject:
	default:
		panic(fmt.Sprintf("octanetest: FailNext: unknown fault kind %q", kind))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.schedule[method] = append(s.schedule[method], kind)
	}
}

// faultPlan is what happens to one call.
type faultPlan struct {
	latency     time.Duration
	transport   bool
	drop        bool
	reject      bool
	asyncReject bool
	rateLimit   bool
}

// plan decides the faults of one call of method: the FailNext schedule
// first, else the random faults.
func (s *Server) plan(method string) faultPlan {
	s.mu.Lock()
	defer s.mu.Unlock()
	var p faultPlan
	if q := s.schedule[method]; len(q) > 0 {
		kind := q[0]
		if len(q) == 1 {
			delete(s.schedule, method)
		} else {
			s.schedule[method] = q[1:]
		}
		switch kind {
		case FaultTransport:
			p.transport = true
		case FaultDrop:
			p.drop = true
		case FaultReject:
			p.reject = true
		case FaultRateLimit:
			p.rateLimit = true
		case FaultAsyncReject:
			p.asyncReject = true
		}
		return p
	}
	f := s.faults
	if len(f.Methods) > 0 && !slices.Contains(f.Methods, method) {
		return p
	}
	p.latency = f.Latency
	hit := func(prob float64) bool { return prob > 0 && s.rng.Float64() < prob }
	p.transport = hit(f.Transport)
	p.drop = hit(f.Drop)
	p.rateLimit = hit(f.RateLimit)
	if method == methodOrderCreate {
		p.reject = hit(f.Reject)
		p.asyncReject = hit(f.AsyncReject)
	}
	return p
}
