package octanetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/octane"
)

// getJSON GETs a control endpoint and decodes its JSON answer into v.
func (c *sim) getJSON(path string, v any) {
	c.t.Helper()
	resp, err := http.Get(c.url + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
}

// postFaults POSTs spec to /_sim/faults and returns the status and the
// decoded answer ({"faults"} or {"error"}).
func (c *sim) postFaults(spec string) (int, map[string]string) {
	c.t.Helper()
	resp, err := http.Post(c.url+"/_sim/faults", "text/plain", strings.NewReader(spec))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		c.t.Fatalf("POST /_sim/faults %q: HTTP %d, %v", spec, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

func (c *sim) faultSpec() string {
	c.t.Helper()
	var out map[string]string
	c.getJSON("/_sim/faults", &out)
	return out["faults"]
}

func (c *sim) advanceHTTP(d string) {
	c.t.Helper()
	resp, err := http.Post(c.url+"/_sim/clock", "application/json", strings.NewReader(`{"advance":"`+d+`"}`))
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("advance %s: HTTP %d", d, resp.StatusCode)
	}
}

func TestSimFaultsEndpoint(t *testing.T) {
	tests := []struct {
		name      string
		initial   Faults
		body      string
		status    int
		wantSpec  string // in force afterwards (GET and Server.Faults)
		wantErr   string // substring of the 400 message
		probeDown bool   // a queryResources call now fails at the transport level
	}{
		{name: "set", body: "transport=0.05,drop=0.02,latency=50ms,methods=orderCreate|orderQuery",
			status: 200, wantSpec: "transport=0.05,drop=0.02,latency=50ms,methods=orderCreate|orderQuery"},
		{name: "canonical order and spacing", body: " methods = orderCreate , Drop=0.5 ,latency=1s\n",
			status: 200, wantSpec: "drop=0.5,latency=1s,methods=orderCreate"},
		{name: "outage starts", body: "transport=1", status: 200, wantSpec: "transport=1", probeDown: true},
		{name: "empty body ends the outage", initial: Faults{Transport: 1}, body: "", status: 200, wantSpec: ""},
		{name: "blank body clears", initial: Faults{Drop: 0.5}, body: " \n", status: 200, wantSpec: ""},
		{name: "probability out of range", initial: Faults{Transport: 1}, body: "drop=2",
			status: 400, wantSpec: "transport=1", wantErr: `drop="2"`, probeDown: true},
		{name: "unknown key", initial: Faults{Drop: 0.25}, body: "transport=0.1,explode=1",
			status: 400, wantSpec: "drop=0.25", wantErr: `"explode"`},
		{name: "misspelt method", initial: Faults{Transport: 1, Methods: []string{methodOrderCreate}}, body: "drop=1,methods=orderCreat",
			status: 400, wantSpec: "transport=1,methods=orderCreate", wantErr: `"orderCreat"`},
		{name: "bad latency", body: "latency=fast", status: 400, wantSpec: "", wantErr: `latency="fast"`},
		{name: "no value", body: "transport", status: 400, wantSpec: "", wantErr: `"transport"`},
		{name: "JSON is not the syntax", body: `{"faults":"transport=1"}`, status: 400, wantSpec: "", wantErr: "unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newSim(t, Config{MSNs: 10, Faults: tc.initial})
			status, out := c.postFaults(tc.body)
			if status != tc.status {
				t.Fatalf("POST %q: HTTP %d %v, want %d", tc.body, status, out, tc.status)
			}
			if tc.status == http.StatusOK && out["faults"] != tc.wantSpec {
				t.Fatalf("POST answered %v, want faults %q", out, tc.wantSpec)
			}
			if tc.wantErr != "" && !strings.Contains(out["error"], tc.wantErr) {
				t.Fatalf("error %q, want it to name %s", out["error"], tc.wantErr)
			}
			if got := c.faultSpec(); got != tc.wantSpec {
				t.Fatalf("GET /_sim/faults %q, want %q", got, tc.wantSpec)
			}
			want, err := ParseFaults(tc.wantSpec)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.s.Faults(); !reflect.DeepEqual(got, want) {
				t.Fatalf("Server.Faults %+v, want %+v", got, want)
			}
			_, err = c.post(octane.ServicePooledResource, envelope(octane.NSPooledResource, methodQueryResources,
				login(c.user, c.pass)+"<queryPooledResourcesRequest><queryValue>0410000000</queryValue></queryPooledResourcesRequest>"))
			if down := err != nil; down != tc.probeDown {
				t.Fatalf("queryResources error %v, want a transport failure: %v", err, tc.probeDown)
			}
		})
	}
}

func TestSimFaultsEndpointConcurrent(t *testing.T) {
	c := newSim(t, Config{MSNs: 10})
	specs := []string{"", "transport=1", "drop=1,methods=queryResources", "ratelimit=0.5,latency=1ms"}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 4 { // writers, one bad spec in the mix
		wg.Go(func() {
			for j := range 40 {
				spec := specs[(i+j)%len(specs)]
				if j%5 == 4 {
					spec = "drop=7"
				}
				resp, err := http.Post(c.url+"/_sim/faults", "text/plain", strings.NewReader(spec))
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if want := map[bool]int{true: 400, false: 200}[spec == "drop=7"]; resp.StatusCode != want {
					errs <- fmt.Errorf("POST %q: HTTP %d, want %d", spec, resp.StatusCode, want)
				}
			}
		})
	}
	for range 2 { // readers: every spec seen is one that was posted whole
		wg.Go(func() {
			for range 40 {
				resp, err := http.Get(c.url + "/_sim/faults")
				if err != nil {
					errs <- err
					return
				}
				var out map[string]string
				err = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if err != nil || !slices.Contains(specs, out["faults"]) {
					errs <- fmt.Errorf("GET /_sim/faults: %v %v: not one of the posted specs", out, err)
				}
			}
		})
	}
	for range 4 { // traffic drawing faults meanwhile; transport errors expected
		wg.Go(func() {
			for range 40 {
				_, _ = c.post(octane.ServicePooledResource, envelope(octane.NSPooledResource, methodQueryResources,
					login(c.user, c.pass)+"<queryPooledResourcesRequest><queryValue>0410000000</queryValue></queryPooledResourcesRequest>"))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if status, _ := c.postFaults(""); status != http.StatusOK {
		t.Fatalf("clear: HTTP %d", status)
	}
	if r := c.query("0410000000"); r.text("errorCode") != "0" {
		t.Fatalf("after clearing: %s", r.raw)
	}
}

func TestFaultsStringRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		f    Faults
		want string
	}{
		{"none", Faults{}, ""},
		{"all", Faults{Transport: 0.05, Drop: 0.02, Reject: 0.01, AsyncReject: 0.03, RateLimit: 1,
			Latency: 1500 * time.Millisecond, Methods: []string{methodOrderCreate, methodOrderQuery}},
			"transport=0.05,drop=0.02,reject=0.01,asyncreject=0.03,ratelimit=1,latency=1.5s,methods=orderCreate|orderQuery"},
		{"methods only", Faults{Methods: []string{methodGetEsimDetails}}, "methods=getEsimDetails"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f.String(); got != tc.want {
				t.Fatalf("String %q, want %q", got, tc.want)
			}
			back, err := ParseFaults(tc.want)
			if err != nil || !reflect.DeepEqual(back, tc.f) {
				t.Fatalf("ParseFaults(%q) = %+v, %v; want %+v", tc.want, back, err, tc.f)
			}
		})
	}
}

func TestLedgerCredential(t *testing.T) {
	queryInner := "<queryPooledResourcesRequest><queryValue>0410000000</queryValue></queryPooledResourcesRequest>"
	tests := []struct {
		name        string
		do          func(c *sim)
		wantMethod  string
		wantOutcome string
		wantCred    string
	}{
		{"soap ok", func(c *sim) { c.query("0410000000") }, methodQueryResources, OutcomeOK, "demo"},
		{"soap wrong password", func(c *sim) {
			c.pass = "wrong"
			c.query("0410000000")
		}, methodQueryResources, OutcomeFault, "demo"},
		{"soap unknown user", func(c *sim) {
			c.user, c.pass = "mallory", "x"
			c.reserveN(1)
		}, methodReserveResources, OutcomeFault, "mallory"},
		{"soap no login", func(c *sim) {
			if _, err := c.post(octane.ServicePooledResource, envelope(octane.NSPooledResource, methodQueryResources, queryInner)); err != nil {
				c.t.Fatal(err)
			}
		}, methodQueryResources, OutcomeFault, ""},
		{"soap unknown operation", func(c *sim) {
			c.pooled("explode", queryInner)
		}, "explode", OutcomeFault, "demo"},
		{"soap dropped", func(c *sim) {
			c.s.FailNext(methodQueryResources, FaultTransport, 1)
			_, _ = c.post(octane.ServicePooledResource, envelope(octane.NSPooledResource, methodQueryResources, login(c.user, c.pass)+queryInner))
		}, methodQueryResources, OutcomeDropped, "demo"},
		{"rest ok", func(c *sim) { c.addCustomer() }, methodAddCustomer, OutcomeOK, "demo"},
		{"rest refused", func(c *sim) {
			c.user, c.pass = "mallory", "x"
			c.rest("group/1/customer", customerJSON(1001))
		}, methodAddCustomer, OutcomeFault, "mallory"},
		{"rest no auth", func(c *sim) {
			c.user = ""
			c.rest("mobile/resource/getEsimDetails", map[string]string{"requestType": "QR Code", "msn": "0410000000"})
		}, methodGetEsimDetails, OutcomeFault, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newSim(t, Config{MSNs: 10})
			tc.do(c)
			e := c.lastEntry()
			if e.Method != tc.wantMethod || e.Outcome != tc.wantOutcome || e.Credential != tc.wantCred {
				t.Fatalf("ledger entry %+v, want method %s, outcome %s, credential %q", e, tc.wantMethod, tc.wantOutcome, tc.wantCred)
			}
			var wire []map[string]any
			c.getJSON("/_sim/ledger", &wire)
			last := wire[len(wire)-1]
			for _, k := range []string{"at", "method", "outcome", "msn", "order_id", "credential"} {
				if _, ok := last[k]; !ok {
					t.Fatalf("GET /_sim/ledger entry %v lacks %q", last, k)
				}
			}
			if last["credential"] != tc.wantCred || last["method"] != tc.wantMethod {
				t.Fatalf("GET /_sim/ledger entry %v, want credential %q", last, tc.wantCred)
			}
		})
	}
}

// expiredJSON is one entry of GET /_sim/expired as a client reads it.
type expiredJSON struct {
	MSN           string    `json:"msn"`
	Credential    string    `json:"credential"`
	ReservationID string    `json:"reservation_id"`
	State         string    `json:"state"`
	ReservedAt    time.Time `json:"reserved_at"`
	ExpiredAt     time.Time `json:"expired_at"`
}

func TestSimExpiredReservations(t *testing.T) {
	tests := []struct {
		name    string
		advance string
		// setup makes the reservations and returns the MSNs expected to
		// lapse (in order) with the state they lapse in.
		setup     func(c *sim) (msns []string, state string)
		queryMSNs bool // observe the numbers by queryResources before listing
	}{
		{"reserved lapses", "25h", func(c *sim) ([]string, string) { return []string{c.reserve()}, octane.NumberReserved }, false},
		{"selected lapses", "25h", func(c *sim) ([]string, string) { return []string{c.selected()}, octane.NumberSelected }, false},
		{"several, in reservation order", "24h", func(c *sim) ([]string, string) {
			r := c.reserveN(3)
			var msns []string
			for _, k := range r.ret.Kids {
				if k.XMLName.Local == "reservedPooledResources" {
					msns = append(msns, k.text("resourceValue"))
				}
			}
			return msns, octane.NumberReserved
		}, false},
		{"seen by a call first, recorded once", "25h", func(c *sim) ([]string, string) { return []string{c.reserve()}, octane.NumberReserved }, true},
		{"not yet 24h", "23h59m59s", func(c *sim) ([]string, string) {
			c.reserve()
			c.selected()
			return nil, ""
		}, true},
		{"consumed by an order", "25h", func(c *sim) ([]string, string) {
			c.newOrder(c.addCustomer())
			return nil, ""
		}, true},
		{"unreserved", "25h", func(c *sim) ([]string, string) {
			if r := c.unreserve(c.selected()); r.text("errorCode") != "0" {
				c.t.Fatalf("unreserve: %s", r.raw)
			}
			return nil, ""
		}, true},
		{"order rejected later", "25h", func(c *sim) ([]string, string) {
			c.s.FailNext(methodOrderCreate, FaultAsyncReject, 1)
			c.newOrder(c.addCustomer())
			return nil, ""
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newSim(t, Config{MSNs: 10})
			before := c.s.Now()
			want, state := tc.setup(c)
			after := c.s.Now()
			c.advanceHTTP(tc.advance)
			if tc.queryMSNs {
				for i := range 10 {
					c.query(fmt.Sprintf("04%08d", firstMSN+i))
				}
			}
			var got []expiredJSON
			for range 2 { // listing twice changes nothing
				got = nil
				c.getJSON("/_sim/expired", &got)
			}
			var msns []string
			for _, e := range got {
				msns = append(msns, e.MSN)
				if e.Credential != "demo" || e.State != state || e.ReservationID == "" {
					t.Errorf("expiry %+v, want credential demo, state %s", e, state)
				}
				if e.ReservedAt.Before(before) || e.ReservedAt.After(after) || e.ExpiredAt.Sub(e.ReservedAt) != ReservationTTL {
					t.Errorf("expiry %+v: want reserved between %v and %v, expired %v later", e, before, after, ReservationTTL)
				}
				if st := c.s.NumberState(e.MSN); st != octane.NumberAvailable {
					t.Errorf("%s after its expiry: %s", e.MSN, st)
				}
			}
			if !slices.Equal(msns, want) {
				t.Fatalf("expired %v, want %v", msns, want)
			}
			if l := c.s.Expired(); len(l) != len(want) {
				t.Fatalf("Server.Expired %+v, want %d", l, len(want))
			}
		})
	}
}

// A number unreserved and reserved again lives by its new reservation: the
// first one's end must not lapse it.
func TestSimExpiredReservationRenewed(t *testing.T) {
	c := newSim(t, Config{MSNs: 1})
	msn := c.reserve()
	if r := c.unreserve(msn); r.text("errorCode") != "0" {
		t.Fatalf("unreserve: %s", r.raw)
	}
	c.advanceHTTP("12h")
	if again := c.reserve(); again != msn {
		t.Fatalf("pool of one gave %s, then %s", msn, again)
	}
	second := c.s.Now()
	c.advanceHTTP("13h") // 25h after the first reservation
	var got []expiredJSON
	c.getJSON("/_sim/expired", &got)
	if len(got) != 0 || c.s.NumberState(msn) != octane.NumberReserved {
		t.Fatalf("expired %+v, state %s: the old reservation's end lapsed the new one", got, c.s.NumberState(msn))
	}
	c.advanceHTTP("12h")
	c.getJSON("/_sim/expired", &got)
	if len(got) != 1 || got[0].MSN != msn || got[0].ReservationID != "2" || got[0].ReservedAt.Before(second.Add(-time.Second)) {
		t.Fatalf("expired %+v, want the second reservation of %s", got, msn)
	}
}
