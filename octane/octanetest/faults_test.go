package octanetest

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/octane"
)

func TestRateLimitPerMinute(t *testing.T) {
	c := newSim(t, Config{MinuteWindow: 3 * time.Second})
	for i := range 50 {
		if r := c.reserveN(1); r.text("errorCode") != "0" {
			t.Fatalf("call %d refused: %s", i+1, r.raw)
		}
	}
	r := c.reserveN(1)
	want := fmt.Sprintf(octane.MsgRateLimitedPattern, "reserveResources")
	if r.status != octane.RateLimitHTTPStatus || r.faultCode != octane.FaultCodeRateLimited || r.faultString != want {
		t.Fatalf("51st call: %d %s", r.status, r.raw)
	}
	if e := c.lastEntry(); e.Outcome != OutcomeFault || e.Code != "233" || e.Method != "reserveResources" {
		t.Fatalf("ledger %+v", e)
	}
	// Only that method is blocked.
	if r := c.query("0410000000"); r.text("errorCode") != "0" {
		t.Fatalf("queryResources blocked too: %s", r.raw)
	}
	// The next fixed window admits again.
	elapsed := time.Since(c.s.start)
	time.Sleep(3*time.Second - elapsed%(3*time.Second) + 50*time.Millisecond)
	if r := c.reserveN(1); r.text("errorCode") != "0" {
		t.Fatalf("after the window: %s", r.raw)
	}
}

func TestRateLimitPerHour(t *testing.T) {
	const window = 40 * time.Millisecond
	c := newSim(t, Config{MinuteWindow: window, HourWindow: time.Hour})
	ok, limited := 0, 0
	for ok < 500 {
		r := c.reserveN(1)
		switch {
		case r.text("errorCode") == "0":
			ok++
		case r.faultCode == "233":
			limited++
			time.Sleep(window)
		default:
			t.Fatalf("unexpected answer: %s", r.raw)
		}
	}
	if limited == 0 {
		t.Log("no per-minute fault on the way (slow machine); the per-hour check still holds")
	}
	for range 3 {
		time.Sleep(window)
		if r := c.reserveN(1); r.faultCode != "233" {
			t.Fatalf("call 501 in the hour: %s", r.raw)
		}
	}
}

func TestRateLimitConfigurable(t *testing.T) {
	c := newSim(t, Config{DefaultLimit: octane.Limit{PerMinute: 2}, Limits: map[string]octane.Limit{}})
	for i := range 2 {
		if r := c.query("0410000000"); r.text("errorCode") != "0" {
			t.Fatalf("call %d: %s", i, r.raw)
		}
	}
	if r := c.query("0410000000"); r.faultCode != "233" {
		t.Fatalf("third queryResources: %s", r.raw)
	}
	st, out := c.rest("group/1/customer", customerJSON(1001))
	st2, _ := c.rest("group/1/customer", customerJSON(1001))
	st3, out3 := c.rest("group/1/customer", customerJSON(1001))
	if st != 200 || st2 != 200 || st3 != http.StatusTooManyRequests || out3["success"] != "false" {
		t.Fatalf("REST default limit: %d %v / %d / %d %v", st, out, st2, st3, out3)
	}
}

func TestFailNext(t *testing.T) {
	t.Run("transport on reserve changes nothing", func(t *testing.T) {
		c := newSim(t, Config{})
		c.s.FailNext("reserveResources", FaultTransport, 1)
		if _, err := c.post(octane.ServicePooledResource, envelope(octane.NSPooledResource, "reserveResources",
			login("demo", "demo")+"<reservePooledResourcesRequest><resourceType>WME_MSN</resourceType><numResources>1</numResources></reservePooledResourcesRequest>")); err == nil {
			t.Fatal("transport fault answered")
		}
		if st := c.s.NumberState("0410000000"); st != octane.NumberAvailable {
			t.Fatalf("first number %s after a transport fault", st)
		}
		if e := c.lastEntry(); e.Outcome != OutcomeDropped || e.Method != "reserveResources" {
			t.Fatalf("ledger %+v", e)
		}
		if msn := c.reserve(); msn != "0410000000" {
			t.Fatalf("next reserve got %s", msn)
		}
	})
	t.Run("drop after orderCreate keeps the order", func(t *testing.T) {
		c := newSim(t, Config{})
		cust := c.addCustomer()
		msn := c.selected()
		c.s.FailNext("orderCreate", FaultDrop, 1)
		if _, err := c.orderCreate(item{custNo: cust, planNo: "1001", msn: msn, isEsim: "true"}); err == nil {
			t.Fatal("dropped orderCreate answered")
		}
		orders := c.s.Orders()
		if len(orders) != 1 || orders[0].MSN != msn {
			t.Fatalf("orders %+v", orders)
		}
		if st := c.s.NumberState(msn); st != octane.NumberInUse {
			t.Fatalf("number %s", st)
		}
		if q := c.query(msn); q.text(octane.ElemPooledResource, "internalStatus") != octane.NumberInUse {
			t.Fatalf("reconcile query: %s", q.raw)
		}
		e := c.s.Ledger()[3]
		if e.Method != "orderCreate" || e.Outcome != OutcomeDropped || e.OrderID != orders[0].ID || e.MSN != msn {
			t.Fatalf("ledger %+v", e)
		}
	})
	t.Run("reject", func(t *testing.T) {
		c := newSim(t, Config{})
		cust := c.addCustomer()
		msn := c.selected()
		c.s.FailNext("orderCreate", FaultReject, 1)
		r, err := c.orderCreate(item{custNo: cust, planNo: "1001", msn: msn, isEsim: "true"})
		if err != nil || r.text("errorCode") != octane.ErrorCodeRejected || r.text("errorMessage") == "" {
			t.Fatalf("answer %v %s", err, r.raw)
		}
		if st := c.s.NumberState(msn); st != octane.NumberSelected || len(c.s.Orders()) != 0 {
			t.Fatalf("a rejection changed state: %s", st)
		}
		if e := c.lastEntry(); e.Outcome != OutcomeRejected {
			t.Fatalf("ledger %+v", e)
		}
		// Only one call was scheduled.
		if r, _ := c.orderCreate(item{custNo: cust, planNo: "1001", msn: msn, isEsim: "true"}); r.text("errorCode") != "0" {
			t.Fatalf("second call: %s", r.raw)
		}
	})
	t.Run("spurious 233 twice", func(t *testing.T) {
		c := newSim(t, Config{})
		c.s.FailNext("orderQuery", FaultRateLimit, 2)
		for i := range 2 {
			if r := c.orderQuery("1"); r.faultCode != "233" || r.status != 500 {
				t.Fatalf("call %d: %s", i, r.raw)
			}
		}
		if r := c.orderQuery("1"); r.faultCode != "" || r.text("errorCode") != octane.ErrorCodeRejected {
			t.Fatalf("third call: %s", r.raw)
		}
	})
	t.Run("asyncreject", func(t *testing.T) {
		c := newSim(t, Config{OrderLatency: time.Hour})
		cust := c.addCustomer()
		c.s.FailNext("orderCreate", FaultAsyncReject, 1)
		id, msn := c.newOrder(cust)
		if got := c.s.EsimProfiles(); got != DefaultEsimProfiles-1 {
			t.Fatalf("profiles %d", got)
		}
		c.s.Advance(time.Hour)
		q := c.orderQuery(id)
		if q.text("orderQueryResponse", "status") != octane.StatusRejected || q.text("orderQueryResponse", "errorMessage") == "" ||
			q.text("orderQueryResponse", "serviceNumber") != "" {
			t.Fatalf("query: %s", q.raw)
		}
		if st := c.s.NumberState(msn); st != octane.NumberAvailable {
			t.Fatalf("number of a rejected order: %s", st)
		}
		if got := c.s.EsimProfiles(); got != DefaultEsimProfiles {
			t.Fatalf("profile not returned: %d", got)
		}
		if _, out := c.rest("mobile/resource/getEsimDetails", map[string]string{"requestType": "QR Code", "msn": msn}); out["success"] != "false" {
			t.Fatalf("QR for a rejected order: %v", out)
		}
	})
}

func TestRandomFaults(t *testing.T) {
	t.Run("latency", func(t *testing.T) {
		c := newSim(t, Config{Faults: Faults{Latency: 150 * time.Millisecond, Methods: []string{"queryResources"}}})
		start := time.Now()
		c.query("0410000000")
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("answered in %v", d)
		}
		start = time.Now()
		c.reserve()
		if d := time.Since(start); d >= 150*time.Millisecond {
			t.Fatalf("latency applied to another method: %v", d)
		}
	})
	outcomes := func(seed int64) []string {
		c := newSim(t, Config{Seed: seed, Faults: Faults{Transport: 0.2, Drop: 0.2, RateLimit: 0.2}})
		var out []string
		for range 40 {
			_, _ = c.post(octane.ServicePooledResource, envelope(octane.NSPooledResource, "queryResources",
				login("demo", "demo")+"<queryPooledResourcesRequest><queryValue>0410000000</queryValue></queryPooledResourcesRequest>"))
		}
		for _, e := range c.s.Ledger() {
			out = append(out, e.Outcome)
		}
		return out
	}
	a, b, other := outcomes(7), outcomes(7), outcomes(8)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different faults:\n%v\n%v", a, b)
	}
	if reflect.DeepEqual(a, other) {
		t.Fatalf("different seeds, same faults: %v", a)
	}
	counts := map[string]int{}
	for _, o := range a {
		counts[o]++
	}
	if counts[OutcomeDropped] == 0 || counts[OutcomeFault] == 0 || counts[OutcomeOK] == 0 {
		t.Fatalf("outcomes %v: want a mix of ok, dropped and fault", counts)
	}
}

func TestParseFaults(t *testing.T) {
	tests := []struct {
		in      string
		want    Faults
		wantErr string
	}{
		{"", Faults{}, ""},
		{"transport=0.05,drop=0.02,reject=0.01,ratelimit=0.01,latency=50ms,asyncreject=0.01",
			Faults{Transport: 0.05, Drop: 0.02, Reject: 0.01, RateLimit: 0.01, Latency: 50 * time.Millisecond, AsyncReject: 0.01}, ""},
		{" Drop = 1 , methods=orderCreate|orderQuery", Faults{Drop: 1, Methods: []string{"orderCreate", "orderQuery"}}, ""},
		{"drop=1.5", Faults{}, "drop"},
		{"transport=x", Faults{}, "transport"},
		{"latency=fast", Faults{}, "latency"},
		{"latency=-1s", Faults{}, "latency"},
		{"explode=0.1", Faults{}, "explode"},
		{"drop", Faults{}, "drop"},
		{"methods=orderCreate|orderCreat", Faults{}, `"orderCreat"`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseFaults(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestFailNextUnknownKindPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for an unknown kind")
		}
	}()
	New(Config{MSNs: 1}).FailNext("orderCreate", "meteor", 1)
}
