package octanetest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/esimbatch/esimbatch/octane"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultUsername     = "demo"
	DefaultPassword     = "demo"
	DefaultMSNs         = 10000
	DefaultEsimProfiles = 1000
	DefaultOrderLatency = 5 * time.Minute

	// ReservationTTL is how long a RESERVED or SELECTED number stays held
	// (business clock) before it returns to AVAILABLE, as on Octane. A lapse
	// is recorded; see Server.Expired.
	ReservationTTL = 24 * time.Hour

	// maxMSNs keeps generated numbers inside "04" + 8 digits.
	maxMSNs = 89_999_999
	// firstMSN is the first generated number: 0410000000.
	firstMSN = 10_000_000
	// maxBody bounds a request body.
	maxBody = 1 << 20
)

// DefaultPlans are the valid planNo values when Config.Plans is empty.
func DefaultPlans() []int { return []int{1001, 1002, 1003} }

// Config configures a Server. Zero fields take the defaults documented on
// each field.
type Config struct {
	// Username and Password are an accepted credential (default
	// "demo"/"demo" when neither they nor Credentials are set), for SOAP
	// login elements and REST Basic auth alike.
	Username, Password string
	// Credentials are more API users of the same account, user name to
	// password (`batch sim --credentials`). Each user has its own rate
	// windows (Octane counts its limits per user); customers belong to the
	// account, so any user can order for a custNo another created; a number
	// reserved by one user can be selected, ordered or unreserved only by
	// that user, and an order queried only by the user who created it
	// (both provisional: the contract's section 6); getEsimDetails answers
	// any user of the account.
	Credentials map[string]string
	// GroupNo is the accepted REST group number (0 = any).
	GroupNo int
	// Plans are the valid planNo values (default 1001, 1002, 1003).
	Plans []int
	// MSNs is the size of the number pool (default 10000); numbers are
	// "04" + 8 digits, starting at 0410000000.
	MSNs int
	// EsimProfiles is the eSIM profile pool (default 1000; use
	// SetEsimProfiles(0) for an empty pool). Each accepted eSIM order takes
	// one; an order that ends REJECTED gives it back.
	EsimProfiles int
	// PhysicalSIMs are the valid physical SIM serials (AVAILABLE,
	// providerStatus r), usable once in a physical-SIM order.
	PhysicalSIMs []string
	// Customers are custNo values that exist from the start, besides the
	// ones addCustomer creates. orderCreate rejects any other custNo.
	Customers []int64
	// OrderLatency: an order is OPEN, IN_PROGRESS from latency/2 and
	// terminal at latency, on the business clock (default 5m).
	OrderLatency time.Duration
	// MinuteWindow and HourWindow are the fixed rate-limit windows (default
	// 1m and 1h), on WALL time since New: window index = elapsed / window.
	MinuteWindow, HourWindow time.Duration
	// Limits per method name (default octane.DefaultLimits(), the
	// documented table). A method absent from the map gets DefaultLimit.
	Limits map[string]octane.Limit
	// DefaultLimit applies to methods not in Limits; zero = unlimited.
	DefaultLimit octane.Limit
	// Faults injected at random (seeded, deterministic).
	Faults Faults
	// Now is the business clock; nil = wall time plus the offset moved by
	// Advance.
	Now func() time.Time
	// Seed seeds the fault RNG and generated identifiers (0 = a fixed
	// default seed; runs are deterministic for a given call sequence).
	Seed int64
	// Logger receives one line per call (method, outcome, code, msn,
	// order id; never a password or QR payload). nil = discard.
	Logger *slog.Logger
}

// LedgerEntry is one call the simulator answered (or dropped).
type LedgerEntry struct {
	At time.Time // business clock
	// Method is the contract name: reserveResources, orderCreate,
	// addCustomer, getEsimDetails, ... ("" when the request could not be
	// parsed).
	Method string
	// Credential is the user name presented (SOAP login userName, REST
	// Basic auth user), also when the login was refused; "" if none.
	Credential string
	// Outcome is "ok", "rejected" (business error answered), "fault" (SOAP
	// fault such as 233, bad login, REST 401, malformed request) or
	// "dropped" (connection closed, before or after processing).
	Outcome string
	MSN     string // number(s) concerned, comma-separated for reserveResources
	OrderID string
	Code    string // errorCode, faultcode or HTTP status of an error
	// LoginPresent and SIMNoPresent say whether the SOAP request carried a
	// login element and (orderCreate) a simNo element.
	LoginPresent bool
	SIMNoPresent bool
}

// Ledger outcomes.
const (
	OutcomeOK       = "ok"
	OutcomeRejected = "rejected"
	OutcomeFault    = "fault"
	OutcomeDropped  = "dropped"
)

// Order is the simulator's view of one order (a copy).
type Order struct {
	ID           string
	MSN          string
	CustNo       int64
	PlanNo       int
	IsEsim       bool
	IsQRCode     bool
	LineName     string
	Status       string // octane.StatusOpen, ...
	CreatedAt    time.Time
	Notes        string
	Email        string
	SIMNo        string
	SIMNoPresent bool // the orderCreate XML had a simNo element
	LoginPresent bool // the orderCreate XML had a login element
	Credential   string
	ICCID        string // set once COMPLETE
	// ActivationCode is the LPA string, set once an eSIM order is COMPLETE.
	ActivationCode string
	ErrorMessage   string // set once REJECTED
}

// Server is an in-memory Octane. It implements http.Handler and is safe for
// concurrent use.
type Server struct {
	cfg   Config
	users map[string]string // every accepted user name and its password
	mux   *http.ServeMux
	start time.Time // wall; rate-limit windows count from here
	log   *slog.Logger

	mu        sync.Mutex
	offset    time.Duration
	faults    Faults
	rng       *rand.Rand // faults
	idRNG     *rand.Rand // matching ids
	schedule  map[string][]string
	plans     map[int]bool
	pool      []*number
	numbers   map[string]*number
	cursor    int
	sims      map[string]*simCard
	customers map[int64]bool
	nextCust  int64
	orders    map[string]*order
	orderList []*order
	pending   []*order
	nextOrder int64
	nextRes   int64
	nextICCID int64
	profiles  int
	rate      map[string]*rateCount
	ledger    []LedgerEntry
	holds     holdQueue // reservations by the end of their lifetime
	expired   []Expiry
	// pendingUnsorted is set once an order was created at an earlier time
	// than the one before it (the clock went back): pending is no longer
	// in creation-time order, and settle looks at every order.
	pendingUnsorted bool
}

// New builds a Server from cfg, applying defaults to zero fields.
func New(cfg Config) *Server {
	if cfg.Username == "" && cfg.Password == "" && len(cfg.Credentials) == 0 {
		cfg.Username, cfg.Password = DefaultUsername, DefaultPassword
	}
	users := make(map[string]string, len(cfg.Credentials)+1)
	for u, p := range cfg.Credentials {
		users[u] = p
	}
	if cfg.Username != "" || cfg.Password != "" {
		users[cfg.Username] = cfg.Password
	}
	if len(cfg.Plans) == 0 {
		cfg.Plans = DefaultPlans()
	}
	if cfg.MSNs <= 0 {
		cfg.MSNs = DefaultMSNs
	}
	if cfg.MSNs > maxMSNs {
		cfg.MSNs = maxMSNs
	}
	if cfg.EsimProfiles <= 0 {
		cfg.EsimProfiles = DefaultEsimProfiles
	}
	if cfg.OrderLatency <= 0 {
		cfg.OrderLatency = DefaultOrderLatency
	}
	if cfg.MinuteWindow <= 0 {
		cfg.MinuteWindow = time.Minute
	}
	if cfg.HourWindow <= 0 {
		cfg.HourWindow = time.Hour
	}
	if cfg.Limits == nil {
		cfg.Limits = octane.DefaultLimits()
	}
	seed := uint64(cfg.Seed)
	if seed == 0 {
		seed = 0x5eed
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:       cfg,
		users:     users,
		start:     time.Now(),
		log:       log,
		rng:       rand.New(rand.NewPCG(seed, 1)),
		idRNG:     rand.New(rand.NewPCG(seed, 2)),
		schedule:  map[string][]string{},
		plans:     map[int]bool{},
		numbers:   make(map[string]*number, cfg.MSNs),
		pool:      make([]*number, 0, cfg.MSNs),
		sims:      map[string]*simCard{},
		customers: map[int64]bool{},
		nextCust:  200001,
		orders:    map[string]*order{},
		nextOrder: 700001,
		nextRes:   1,
		nextICCID: 1,
		profiles:  cfg.EsimProfiles,
		rate:      map[string]*rateCount{},
	}
	for _, p := range cfg.Plans {
		s.plans[p] = true
	}
	for i := range cfg.MSNs {
		n := &number{msn: fmt.Sprintf("04%08d", firstMSN+i), state: octane.NumberAvailable}
		s.pool = append(s.pool, n)
		s.numbers[n.msn] = n
	}
	for _, sn := range cfg.PhysicalSIMs {
		s.sims[sn] = &simCard{serial: sn, state: octane.NumberAvailable}
	}
	for _, c := range cfg.Customers {
		s.customers[c] = true
	}
	s.SetFaults(cfg.Faults)
	s.routes()
	return s
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("/tiab/{service}", s.handleSOAP)
	m.HandleFunc("POST /tiab/api/v1/group/{groupNo}/customer", s.handleAddCustomer)
	m.HandleFunc("POST /tiab/api/v1/mobile/resource/getEsimDetails", s.handleEsimDetails)
	m.HandleFunc("GET /_sim/ledger", s.handleLedger)
	m.HandleFunc("POST /_sim/clock", s.handleClock)
	m.HandleFunc("GET /_sim/faults", s.handleFaults)
	m.HandleFunc("POST /_sim/faults", s.handleFaults)
	m.HandleFunc("GET /_sim/expired", s.handleExpired)
	s.mux = m
}

// ServeHTTP serves the SOAP services under /tiab/, REST under /tiab/api/v1/
// and the control endpoints under /_sim/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// authorized reports whether user and pass are one of the account's
// credentials.
func (s *Server) authorized(user, pass string) bool {
	want, ok := s.users[user]
	return ok && pass == want
}

// Now is the business clock.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nowLocked()
}

func (s *Server) nowLocked() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now().Add(s.offset)
}

// Advance moves the business clock forward by d. It does nothing when
// Config.Now is set (that clock is the caller's) or d is negative.
func (s *Server) Advance(d time.Duration) {
	if d < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

// Ledger returns a copy of every call so far, in order.
func (s *Server) Ledger() []LedgerEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LedgerEntry(nil), s.ledger...)
}

// NumberState is the state of msn now (AVAILABLE, RESERVED, SELECTED,
// IN_USE), or "" for a number not in the pool.
func (s *Server) NumberState(msn string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	s.settle(now)
	n, ok := s.numbers[msn]
	if !ok {
		return ""
	}
	return s.numberState(n, now)
}

// Orders returns a copy of every order, oldest first, with status as of
// now.
func (s *Server) Orders() []Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle(s.nowLocked())
	out := make([]Order, 0, len(s.orderList))
	for _, o := range s.orderList {
		out = append(out, o.public())
	}
	return out
}

// SetEsimProfiles sets how many eSIM profiles are left (e.g. 0 to test
// pool exhaustion).
func (s *Server) SetEsimProfiles(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.profiles = max(n, 0)
}

// EsimProfiles is how many eSIM profiles are not yet taken by an order.
func (s *Server) EsimProfiles() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle(s.nowLocked())
	return s.profiles
}

// record appends to the ledger and logs the call. Called without s.mu.
func (s *Server) record(e LedgerEntry) {
	s.mu.Lock()
	e.At = s.nowLocked()
	s.ledger = append(s.ledger, e)
	s.mu.Unlock()
	s.log.Info("octane sim call", "method", e.Method, "outcome", e.Outcome, "code", e.Code,
		"credential", e.Credential, "msn", e.MSN, "order_id", e.OrderID)
}

// rateCount is one method+credential's counts in the current windows.
type rateCount struct {
	minIdx, hourIdx int64
	min, hour       int
}

// admit counts a call against the fixed wall-time windows; false means the
// method is over its limit for this credential (fault 233). Refused calls
// are not counted. Called with s.mu held.
func (s *Server) admit(method, cred string) bool {
	lim, ok := s.cfg.Limits[method]
	if !ok {
		lim = s.cfg.DefaultLimit
	}
	if lim.PerMinute <= 0 && lim.PerHour <= 0 {
		return true
	}
	elapsed := time.Since(s.start)
	mi, hi := int64(elapsed/s.cfg.MinuteWindow), int64(elapsed/s.cfg.HourWindow)
	key := method + "\x00" + cred
	c := s.rate[key]
	if c == nil {
		c = &rateCount{minIdx: mi, hourIdx: hi}
		s.rate[key] = c
	}
	if c.minIdx != mi {
		c.minIdx, c.min = mi, 0
	}
	if c.hourIdx != hi {
		c.hourIdx, c.hour = hi, 0
	}
	if (lim.PerMinute > 0 && c.min >= lim.PerMinute) || (lim.PerHour > 0 && c.hour >= lim.PerHour) {
		return false
	}
	c.min++
	c.hour++
	return true
}

// hangUp closes the client's connection without an answer. When the
// connection cannot be hijacked (HTTP/2, a recorder) it answers 503 with no
// body, which a client also sees as a transport failure.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	_ = conn.Close()
}

// sleep waits d of wall time or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// ledgerJSON is the wire shape of GET /_sim/ledger.
type ledgerJSON struct {
	At         time.Time `json:"at"`
	Method     string    `json:"method"`
	Outcome    string    `json:"outcome"`
	MSN        string    `json:"msn"`
	OrderID    string    `json:"order_id"`
	Credential string    `json:"credential"`
	Code       string    `json:"code"`
}

func (s *Server) handleLedger(w http.ResponseWriter, r *http.Request) {
	l := s.Ledger()
	out := make([]ledgerJSON, 0, len(l))
	for _, e := range l {
		out = append(out, ledgerJSON{e.At, e.Method, e.Outcome, e.MSN, e.OrderID, e.Credential, e.Code})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleClock(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Advance string `json:"advance"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be {\"advance\":\"<duration>\"}: " + err.Error()})
		return
	}
	d, err := time.ParseDuration(req.Advance)
	if err != nil || d < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("advance %q: want a non-negative Go duration such as 31m", req.Advance)})
		return
	}
	if s.cfg.Now != nil {
		writeJSON(w, http.StatusConflict, map[string]string{"error": "the clock is external (Config.Now); it cannot be advanced"})
		return
	}
	s.Advance(d)
	writeJSON(w, http.StatusOK, map[string]string{"now": s.Now().Format(time.RFC3339Nano)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
