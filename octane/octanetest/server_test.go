package octanetest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	_ "image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/esimbatch/esimbatch/octane"
)

func TestESIMActivationLifecycle(t *testing.T) {
	c := newSim(t, Config{OrderLatency: 10 * time.Minute})
	cust := c.addCustomer()

	msn := c.reserve()
	if len(msn) != 10 || !strings.HasPrefix(msn, "04") {
		t.Fatalf("reserved MSN %q, want 04 + 8 digits", msn)
	}
	if got := c.s.NumberState(msn); got != octane.NumberReserved {
		t.Fatalf("after reserve: state %s", got)
	}
	if q := c.query(msn); q.text(octane.ElemPooledResource, "internalStatus") != octane.NumberReserved {
		t.Fatalf("queryResources after reserve: %s", q.raw)
	}
	if r := c.selectMSN(msn); r.text("success") != "true" || r.text("errorCode") != "0" {
		t.Fatalf("select: %s", r.raw)
	}
	if got := c.s.NumberState(msn); got != octane.NumberSelected {
		t.Fatalf("after select: state %s", got)
	}
	r, err := c.orderCreate(item{custNo: cust, planNo: "1002", msn: msn, isEsim: "true"})
	if err != nil || r.text("errorCode") != "0" || r.text("orderId") == "" {
		t.Fatalf("orderCreate: %v %s", err, r.raw)
	}
	id := r.text("orderId")
	if got := c.s.NumberState(msn); got != octane.NumberInUse {
		t.Fatalf("after orderCreate: state %s", got)
	}
	if got := c.s.EsimProfiles(); got != DefaultEsimProfiles-1 {
		t.Fatalf("profiles left %d, want %d", got, DefaultEsimProfiles-1)
	}

	steps := []struct {
		advance time.Duration
		status  string
	}{
		{0, octane.StatusOpen},
		{5*time.Minute - time.Second, octane.StatusOpen},
		{time.Second, octane.StatusInProgress},
		{5*time.Minute - time.Second, octane.StatusInProgress},
		{time.Second, octane.StatusComplete},
	}
	for _, st := range steps {
		c.s.Advance(st.advance)
		q := c.orderQuery(id)
		if got := q.text("orderQueryResponse", "status"); got != st.status {
			t.Fatalf("status %s, want %s: %s", got, st.status, q.raw)
		}
		if sn := q.text("orderQueryResponse", "serviceNumber"); (sn != "") != (st.status == octane.StatusComplete) {
			t.Fatalf("serviceNumber %q with status %s", sn, st.status)
		}
	}
	if q := c.orderQuery(id); q.text("orderQueryResponse", "serviceNumber") != msn {
		t.Fatalf("serviceNumber: %s", q.raw)
	}

	st, out := c.rest("mobile/resource/getEsimDetails", map[string]string{"requestType": "QR Code", "msn": msn})
	if st != http.StatusOK || out["success"] != "true" {
		t.Fatalf("getEsimDetails: %d %v", st, out)
	}
	lpa, _ := out["activationCode"].(string)
	if !strings.HasPrefix(lpa, "LPA:1$smdp.sim.example$") || out["msn"] != msn || out["iccid"] == "" {
		t.Fatalf("getEsimDetails fields: %v", out)
	}
	if got := decodeQR(t, out["qrCode"].(string)); got != lpa {
		t.Fatalf("QR decodes to %q, want the activation code %q", got, lpa)
	}
	orders := c.s.Orders()
	if len(orders) != 1 || orders[0].ActivationCode != lpa || orders[0].SIMNoPresent || !orders[0].LoginPresent ||
		orders[0].Notes != "ACT-1" || orders[0].Email != "jane@example.com" || orders[0].PlanNo != 1002 {
		t.Fatalf("Orders() = %+v", orders)
	}

	st, out = c.rest("mobile/resource/getEsimDetails", map[string]string{"requestType": "SIM Details", "msn": msn})
	if st != http.StatusOK || out["profileState"] != "RELEASED" || out["iccid"] != orders[0].ICCID {
		t.Fatalf("SIM Details: %d %v", st, out)
	}
}

func decodeQR(t *testing.T, b64 string) string {
	t.Helper()
	png, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("qrCode is not base64: %v", err)
	}
	img, _, err := image.Decode(bytes.NewReader(png))
	if err != nil {
		t.Fatalf("qrCode is not a PNG: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("decoding QR: %v", err)
	}
	return res.GetText()
}

func TestEsimDetailsOnlyForCompleteEsim(t *testing.T) {
	c := newSim(t, Config{})
	cust := c.addCustomer()
	_, msn := c.newOrder(cust)
	for _, tc := range []struct{ name, reqType, msn string }{
		{"order not complete yet", "QR Code", msn},
		{"unknown msn", "QR Code", "0499999999"},
		{"sim details not complete", "SIM Details", msn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, out := c.rest("mobile/resource/getEsimDetails", map[string]string{"requestType": tc.reqType, "msn": tc.msn})
			if out["success"] != "false" || out["message"] == "" || out["qrCode"] != nil {
				t.Fatalf("answer %v, want success false with a message", out)
			}
		})
	}
}

func TestReservationExpiresAfter24h(t *testing.T) {
	c := newSim(t, Config{})
	reserved := c.reserve()
	selected := c.selected()
	c.s.Advance(ReservationTTL - time.Second)
	if st := c.s.NumberState(reserved); st != octane.NumberReserved {
		t.Fatalf("just before 24h: %s", st)
	}
	if st := c.s.NumberState(selected); st != octane.NumberSelected {
		t.Fatalf("just before 24h: %s", st)
	}
	c.s.Advance(time.Second)
	for _, msn := range []string{reserved, selected} {
		if st := c.s.NumberState(msn); st != octane.NumberAvailable {
			t.Fatalf("%s at 24h: %s, want AVAILABLE", msn, st)
		}
		if q := c.query(msn); q.text(octane.ElemPooledResource, "internalStatus") != octane.NumberAvailable {
			t.Fatalf("queryResources at 24h: %s", q.raw)
		}
	}
	if r := c.selectMSN(reserved); r.text("errorCode") == "0" {
		t.Fatalf("select of a lapsed reservation succeeded: %s", r.raw)
	}
}

func TestUnreserveAndSelectRules(t *testing.T) {
	c := newSim(t, Config{})
	cust := c.addCustomer()
	msn := c.reserve()

	// orderCreate needs SELECTED, not just RESERVED.
	r, _ := c.orderCreate(item{custNo: cust, planNo: "1001", msn: msn, isEsim: "true"})
	if r.text("errorCode") == "0" || !strings.Contains(r.text("errorMessage"), "not selected") {
		t.Fatalf("orderCreate on a RESERVED number: %s", r.raw)
	}
	if u := c.unreserve(msn); u.text("errorCode") != "0" {
		t.Fatalf("unreserve: %s", u.raw)
	}
	if st := c.s.NumberState(msn); st != octane.NumberAvailable {
		t.Fatalf("after unreserve: %s", st)
	}
	for _, tc := range []struct {
		name string
		res  soapResult
	}{
		{"select available", c.selectMSN(msn)},
		{"unreserve available", c.unreserve(msn)},
		{"select unknown", c.selectMSN("0400000001")},
	} {
		if tc.res.text("success") != "false" || tc.res.text("errorCode") == "0" || tc.res.text("errorMessage") == "" {
			t.Errorf("%s: %s", tc.name, tc.res.raw)
		}
	}
	// Another credential's reservation cannot be selected.
	other := c.reserve()
	c.s.mu.Lock()
	n := c.s.numbers[other]
	n.by = "someone-else"
	c.s.mu.Unlock()
	if r := c.selectMSN(n.msn); !strings.Contains(r.text("errorMessage"), "another user") {
		t.Fatalf("select of another user's number: %s", r.raw)
	}
}

func TestOrderCreateRules(t *testing.T) {
	empty, serial := "", "8961000000000000001"
	tests := []struct {
		name     string
		it       func(cust, msn string) item
		profiles int // -1: leave default
		code     string
		msg      string
	}{
		{"plan not configured", func(cu, m string) item { return item{custNo: cu, planNo: "9999", msn: m, isEsim: "true"} }, -1, octane.ErrorCodeRejected, "plan"},
		{"plan missing", func(cu, m string) item { return item{custNo: cu, planNo: "", msn: m, isEsim: "true"} }, -1, octane.ErrorCodeRejected, "plan"},
		{"empty simNo for eSIM", func(cu, m string) item {
			return item{custNo: cu, planNo: "1001", msn: m, isEsim: "true", simNo: &empty}
		}, -1, octane.ErrorCodeRejected, "simNo"},
		{"simNo for eSIM", func(cu, m string) item {
			return item{custNo: cu, planNo: "1001", msn: m, isEsim: "true", simNo: &serial}
		}, -1, octane.ErrorCodeRejected, "simNo"},
		{"unknown customer", func(_, m string) item { return item{custNo: "42", planNo: "1001", msn: m, isEsim: "true"} }, -1, octane.ErrorCodeRejected, "Customer"},
		{"bad isEsim", func(cu, m string) item { return item{custNo: cu, planNo: "1001", msn: m, isEsim: "yes"} }, -1, octane.ErrorCodeRejected, "isEsim"},
		{"physical SIM unknown", func(cu, m string) item {
			return item{custNo: cu, planNo: "1001", msn: m, isEsim: "false", simNo: &empty}
		}, -1, octane.ErrorCodeRejected, "SIM"},
		{"no eSIM profiles left", func(cu, m string) item { return item{custNo: cu, planNo: "1001", msn: m, isEsim: "true"} }, 0, octane.ErrorCodeUnavailable, octane.MsgUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newSim(t, Config{})
			if tc.profiles >= 0 {
				c.s.SetEsimProfiles(tc.profiles)
			}
			cust := c.addCustomer()
			msn := c.selected()
			it := tc.it(cust, msn)
			r, err := c.orderCreate(it)
			if err != nil {
				t.Fatal(err)
			}
			if r.text("errorCode") != tc.code || !strings.Contains(r.text("errorMessage"), tc.msg) || r.text("orderId") != "" {
				t.Fatalf("answer %s, want code %s and a message with %q", r.raw, tc.code, tc.msg)
			}
			if st := c.s.NumberState(msn); st != octane.NumberSelected {
				t.Fatalf("a rejected order changed the number to %s", st)
			}
			e := c.lastEntry()
			if e.Method != "orderCreate" || e.Outcome != OutcomeRejected || e.Code != tc.code || e.SIMNoPresent != (it.simNo != nil) || !e.LoginPresent {
				t.Fatalf("ledger %+v", e)
			}
			if len(c.s.Orders()) != 0 {
				t.Fatal("a rejected orderCreate made an order")
			}
		})
	}
}

func TestPhysicalSIMOrder(t *testing.T) {
	serial := "89610000000000000017"
	c := newSim(t, Config{PhysicalSIMs: []string{serial}, Customers: []int64{12345}, OrderLatency: time.Minute})
	if q := c.query(serial); q.text(octane.ElemPooledResource, "internalStatus") != octane.NumberAvailable ||
		q.text(octane.ElemPooledResource, "providerStatus") != "r" {
		t.Fatalf("queryResources on the SIM: %s", q.raw)
	}
	msn := c.selected()
	r, err := c.orderCreate(item{custNo: "12345", planNo: "1003", msn: msn, isEsim: "false", simNo: &serial})
	if err != nil || r.text("errorCode") != "0" {
		t.Fatalf("orderCreate: %v %s", err, r.raw)
	}
	if q := c.query(serial); q.text(octane.ElemPooledResource, "internalStatus") != octane.NumberInUse {
		t.Fatalf("SIM after order: %s", q.raw)
	}
	// The same SIM cannot be used twice.
	msn2 := c.selected()
	if r, _ := c.orderCreate(item{custNo: "12345", planNo: "1003", msn: msn2, isEsim: "false", simNo: &serial}); r.text("errorCode") == "0" {
		t.Fatalf("second order on the same SIM accepted: %s", r.raw)
	}
	c.s.Advance(time.Minute)
	if q := c.orderQuery(r.text("orderId")); q.text("orderQueryResponse", "status") != octane.StatusComplete {
		t.Fatalf("physical order: %s", q.raw)
	}
}

func TestNumberPoolExhaustion(t *testing.T) {
	c := newSim(t, Config{MSNs: 3})
	r := c.reserveN(5)
	if r.text("errorCode") != "0" || len(r.ret.Kids) != 2+3 { // success, errorCode, 3 numbers
		t.Fatalf("reserve 5 of 3: %s", r.raw)
	}
	r = c.reserveN(1)
	if r.text("success") != "false" || r.text("errorCode") != octane.ErrorCodeUnavailable || r.text("errorMessage") != octane.MsgUnavailable {
		t.Fatalf("reserve on an empty pool: %s", r.raw)
	}
	if e := c.lastEntry(); e.Outcome != OutcomeRejected || e.Code != octane.ErrorCodeUnavailable {
		t.Fatalf("ledger %+v", e)
	}
	for _, n := range []string{"0", "6", "x"} {
		r := c.pooled("reserveResources", "<reservePooledResourcesRequest><resourceType>WME_MSN</resourceType><numResources>"+n+"</numResources></reservePooledResourcesRequest>")
		if r.text("errorCode") != octane.ErrorCodeRejected {
			t.Fatalf("numResources %s accepted", n)
		}
	}
}

func TestBadCredentials(t *testing.T) {
	c := newSim(t, Config{Username: "alice", Password: "s3cret"})
	reserve := "<reservePooledResourcesRequest><resourceType>WME_MSN</resourceType><numResources>1</numResources></reservePooledResourcesRequest>"
	for _, tc := range []struct{ name, loginXML string }{
		{"wrong password", login("alice", "nope")},
		{"wrong user", login("bob", "s3cret")},
		{"no login element", ""},
		{"empty login", "<login/>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.post(octane.ServicePooledResource, envelope(octane.NSPooledResource, "reserveResources", tc.loginXML+reserve))
			if err != nil {
				t.Fatal(err)
			}
			if r.status != http.StatusOK || r.text("errorCode") != octane.ErrorCodeLogin || r.text("errorMessage") != octane.MsgLoginFailed {
				t.Fatalf("answer %d %s", r.status, r.raw)
			}
			if e := c.lastEntry(); e.Outcome != OutcomeFault || e.Code != octane.ErrorCodeLogin || e.LoginPresent != (tc.loginXML != "") {
				t.Fatalf("ledger %+v", e)
			}
		})
	}
	for _, tc := range []struct{ name, user, pass string }{{"REST wrong password", "alice", "x"}, {"REST no auth", "", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			c.user, c.pass = tc.user, tc.pass
			for _, path := range []string{"group/1/customer", "mobile/resource/getEsimDetails"} {
				if st, out := c.rest(path, customerJSON(1001)); st != http.StatusUnauthorized || out["success"] != "false" {
					t.Fatalf("%s: %d %v", path, st, out)
				}
				if e := c.lastEntry(); e.Outcome != OutcomeFault || e.Code != "401" {
					t.Fatalf("ledger %+v", e)
				}
			}
		})
	}
	c.user, c.pass = "alice", "s3cret"
	if r := c.reserveN(1); r.text("errorCode") != "0" {
		t.Fatalf("good credential refused: %s", r.raw)
	}
}

func TestAddCustomerValidation(t *testing.T) {
	c := newSim(t, Config{GroupNo: 7})
	mod := func(f func(m map[string]any)) map[string]any { m := customerJSON(1001); f(m); return m }
	for _, tc := range []struct {
		name string
		path string
		body map[string]any
		ok   bool
	}{
		{"valid", "group/7/customer", customerJSON(1001), true},
		{"plan as string", "group/7/customer", mod(func(m map[string]any) { m["customerAgreement"] = map[string]any{"planNo": "1002"} }), true},
		{"wrong group", "group/8/customer", customerJSON(1001), false},
		{"bad plan", "group/7/customer", customerJSON(5), false},
		{"no surname", "group/7/customer", mod(func(m map[string]any) {
			m["customerIdentity"] = map[string]any{"customerType": "R", "customerGivenNames": "Jane"}
		}), false},
		{"business without company", "group/7/customer", mod(func(m map[string]any) {
			m["customerIdentity"] = map[string]any{"customerType": "B", "customerSurname": "X"}
		}), false},
		{"bad contact type", "group/7/customer", mod(func(m map[string]any) {
			m["contactMedium"] = []map[string]any{{"contactType": "FAX", "contactDestination": "1"}}
		}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, out := c.rest(tc.path, tc.body)
			if got := out["success"] == "true"; got != tc.ok {
				t.Fatalf("answer %d %v, want ok=%v", st, out, tc.ok)
			}
			if tc.ok {
				if _, isNum := out["custNo"].(float64); !isNum {
					t.Fatalf("custNo is not a number: %v", out)
				}
			} else if out["message"] == "" {
				t.Fatalf("no message: %v", out)
			}
		})
	}
}

func TestPrefixesAreIrrelevant(t *testing.T) {
	c := newSim(t, Config{})
	inner := login("demo", "demo") + "<reservePooledResourcesRequest><resourceType>WME_MSN</resourceType><numResources>1</numResources></reservePooledResourcesRequest>"
	for _, tc := range []struct{ name, body string }{
		{"other prefixes", `<e:Envelope xmlns:e="` + octane.NSSoapEnvelope + `"><e:Body><x:reserveResources xmlns:x="` +
			octane.NSPooledResource + `">` + inner + `</x:reserveResources></e:Body></e:Envelope>`},
		{"default namespace on operation", `<soap:Envelope xmlns:soap="` + octane.NSSoapEnvelope + `"><soap:Body><reserveResources xmlns="` +
			octane.NSPooledResource + `">` + inner + `</reserveResources></soap:Body></soap:Envelope>`},
		{"default namespace on envelope", `<Envelope xmlns="` + octane.NSSoapEnvelope + `"><Header/><Body><p:reserveResources xmlns:p="` +
			octane.NSPooledResource + `" xmlns="">` + inner + `</p:reserveResources></Body></Envelope>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.post(octane.ServicePooledResource, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if r.text("errorCode") != "0" || r.text("reservedPooledResources", "resourceValue") == "" {
				t.Fatalf("answer %s", r.raw)
			}
			if !strings.Contains(r.raw, "<S:Envelope") || !strings.Contains(r.raw, "<ns2:reserveResourcesResponse") {
				t.Fatalf("answer is not JAX-WS style: %s", r.raw)
			}
		})
	}
}

func TestMalformedAndUnknownRequests(t *testing.T) {
	c := newSim(t, Config{})
	l := login("demo", "demo")
	for _, tc := range []struct {
		name, service, body, fault string
	}{
		{"not XML", octane.ServicePooledResource, "hello", "S:Client"},
		{"truncated", octane.ServicePooledResource, envelope(octane.NSPooledResource, "reserveResources", l)[:120], "S:Client"},
		{"empty body", octane.ServiceOrder, "", "S:Client"},
		{"no envelope", octane.ServiceOrder, "<orderQuery/>", "S:Client"},
		{"wrong envelope namespace", octane.ServiceOrder, `<Envelope xmlns="urn:x"><Body/></Envelope>`, "S:Client"},
		{"empty body element", octane.ServiceOrder, `<S:Envelope xmlns:S="` + octane.NSSoapEnvelope + `"><S:Body/></S:Envelope>`, "S:Client"},
		{"unknown operation", octane.ServicePooledResource, envelope(octane.NSPooledResource, "deleteEverything", l), "S:Client"},
		{"operation in the wrong namespace", octane.ServicePooledResource, envelope(octane.NSOrder, "reserveResources", l), "S:Client"},
		{"operation on the wrong service", octane.ServiceOrder, envelope(octane.NSOrder, "reserveResources", l), "S:Client"},
		{"trailing garbage", octane.ServiceOrder, envelope(octane.NSOrder, "orderQuery", l) + "<x", "S:Client"},
		{"service v3", octane.ServiceServiceV3, envelope(octane.NSServiceV3, "getServiceDetail", l), "S:Server"},
		{"plan service", octane.ServicePlan, envelope(octane.NSPlan, "getGroupPlans", l), "S:Server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.post(tc.service, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if r.status != http.StatusInternalServerError || r.faultCode != tc.fault || r.faultString == "" {
				t.Fatalf("answer %d %s", r.status, r.raw)
			}
			if e := c.lastEntry(); e.Outcome != OutcomeFault {
				t.Fatalf("ledger %+v", e)
			}
		})
	}
	resp, err := http.Get(c.url + "/tiab/UtbNothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown service: %d", resp.StatusCode)
	}
}

func TestSimEndpoints(t *testing.T) {
	c := newSim(t, Config{})
	cust := c.addCustomer()
	id, msn := c.newOrder(cust)

	before := c.s.Now()
	resp, err := http.Post(c.url+"/_sim/clock", "application/json", strings.NewReader(`{"advance":"31m"}`))
	if err != nil {
		t.Fatal(err)
	}
	var clock struct{ Now time.Time }
	if err := json.NewDecoder(resp.Body).Decode(&clock); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("clock: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if d := clock.Now.Sub(before); d < 31*time.Minute || d > 32*time.Minute {
		t.Fatalf("clock moved %v, want 31m", d)
	}
	if q := c.orderQuery(id); q.text("orderQueryResponse", "status") != octane.StatusComplete {
		t.Fatalf("after advancing 31m: %s", q.raw)
	}
	for _, bad := range []string{`{"advance":"soon"}`, `{"advance":"-1m"}`, `nope`} {
		resp, err := http.Post(c.url+"/_sim/clock", "application/json", strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("clock %s: %d", bad, resp.StatusCode)
		}
	}

	resp, err = http.Get(c.url + "/_sim/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ledger []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&ledger); err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, e := range ledger {
		for _, k := range []string{"at", "method", "outcome", "msn", "order_id"} {
			if _, ok := e[k]; !ok {
				t.Fatalf("ledger entry %v lacks %q", e, k)
			}
		}
		methods = append(methods, e["method"].(string))
	}
	want := "addCustomer reserveResources selectResource orderCreate orderQuery"
	if got := strings.Join(methods, " "); got != want {
		t.Fatalf("ledger methods %q, want %q", got, want)
	}
	if oc := ledger[3]; oc["order_id"] != id || oc["msn"] != msn || oc["outcome"] != "ok" {
		t.Fatalf("orderCreate entry %v", oc)
	}
}

func TestExternalClock(t *testing.T) {
	now := time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC)
	c := newSim(t, Config{Now: func() time.Time { return now }})
	c.s.Advance(time.Hour)
	if !c.s.Now().Equal(now) {
		t.Fatalf("Advance moved an external clock")
	}
	resp, err := http.Post(c.url+"/_sim/clock", "application/json", strings.NewReader(`{"advance":"1m"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("clock with Config.Now: %d", resp.StatusCode)
	}
	c.reserve()
	if at := c.lastEntry().At; !at.Equal(now) {
		t.Fatalf("ledger time %v, want the business clock %v", at, now)
	}
}
