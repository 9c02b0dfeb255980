package octane

import (
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// xmlNode is a generic element, to check what encodeSOAP put on the wire.
type xmlNode struct {
	XMLName xml.Name
	Text    string    `xml:",chardata"`
	Kids    []xmlNode `xml:",any"`
}

func (n xmlNode) kid(local string) (xmlNode, bool) {
	for _, k := range n.Kids {
		if k.XMLName.Local == local {
			return k, true
		}
	}
	return xmlNode{}, false
}

func (n xmlNode) names() []string {
	var out []string
	for _, k := range n.Kids {
		out = append(out, k.XMLName.Local)
	}
	return out
}

// allUnqualified reports the first descendant that carries a namespace.
func allUnqualified(n xmlNode) (string, bool) {
	for _, k := range n.Kids {
		if k.XMLName.Space != "" {
			return k.XMLName.Space + " " + k.XMLName.Local, false
		}
		if where, ok := allUnqualified(k); !ok {
			return where, false
		}
	}
	return "", true
}

func operationOf(t *testing.T, body []byte) xmlNode {
	t.Helper()
	var env xmlNode
	if err := xml.Unmarshal(body, &env); err != nil {
		t.Fatalf("envelope does not parse: %v\n%s", err, body)
	}
	if env.XMLName != (xml.Name{Space: NSSoapEnvelope, Local: "Envelope"}) {
		t.Fatalf("root = %v, want SOAP 1.1 Envelope", env.XMLName)
	}
	b, ok := env.kid("Body")
	if !ok || b.XMLName.Space != NSSoapEnvelope || len(b.Kids) != 1 {
		t.Fatalf("Body missing or not one operation: %+v", b)
	}
	return b.Kids[0]
}

func TestEncodeSOAP(t *testing.T) {
	esim := orderCreateRequest{CustNo: 42, OrderType: orderTypeService, OrderAction: orderActionNewMSN, Item: wmeItem{
		LineType: "R", LineName: "Ann <&> Lee", PlanNo: 1001, MSN: "0410000000", IsEsim: true,
		NotificationEmail: "ann@example.com", OrderNotes: "act-1",
	}}
	physical := esim
	physical.Item.IsEsim, physical.Item.SIMNo, physical.Item.OrderNotes = false, "8961000000000000001", ""
	tests := []struct {
		name      string
		ns, op    string
		payload   any
		request   string   // element after login
		children  []string // children of the request element, in order
		itemOrder []string // wmeNewReqItem children, for orderCreate
	}{
		{"queryResources", NSPooledResource, MethodQueryResources, queryResourcesRequest{QueryValue: "0410000000"},
			"queryPooledResourcesRequest", []string{"queryValue"}, nil},
		{"reserveResources", NSPooledResource, MethodReserveResources, reserveResourcesRequest{ResourceType: ResourceTypeMSN, NumResources: 4},
			"reservePooledResourcesRequest", []string{"resourceType", "numResources"}, nil},
		{"selectResource", NSPooledResource, MethodSelectResource, selectResourceRequest{Resource: "0410000000", ResourceType: ResourceTypeMSN},
			"selectPooledResourceRequest", []string{"resource", "resourceType"}, nil},
		{"unreserveResources", NSPooledResource, MethodUnreserveResources, unreserveResourcesRequest{ResourceType: ResourceTypeMSN, Resource: "0410000000"},
			"unreservePooledResourcesRequest", []string{"resourceType", "resource"}, nil},
		{"orderCreate eSIM has no simNo", NSOrder, MethodOrderCreate, esim, "createRequest",
			[]string{"custNo", "orderType", "orderAction", "orderItems"},
			[]string{"lineType", "lineName", "planNo", "msn", "isEsim", "isQRcode", "notificationEmail", "orderNotes"}},
		{"orderCreate physical SIM carries simNo", NSOrder, MethodOrderCreate, physical, "createRequest",
			[]string{"custNo", "orderType", "orderAction", "orderItems"},
			[]string{"lineType", "lineName", "planNo", "msn", "simNo", "isEsim", "isQRcode", "notificationEmail"}},
		{"orderQuery", NSOrder, MethodOrderQuery, orderQueryRequest{OrderID: "700001"}, "request", []string{"orderId"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := encodeSOAP(tt.ns, tt.op, "user&1", "p<a>ss", tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			op := operationOf(t, body)
			if op.XMLName != (xml.Name{Space: tt.ns, Local: tt.op}) {
				t.Errorf("operation = {%s}%s, want {%s}%s", op.XMLName.Space, op.XMLName.Local, tt.ns, tt.op)
			}
			if where, ok := allUnqualified(op); !ok {
				t.Errorf("child %s is namespace-qualified; children must be unqualified", where)
			}
			if got := op.names(); len(got) != 2 || got[0] != "login" || got[1] != tt.request {
				t.Fatalf("operation children = %v, want [login %s]", got, tt.request)
			}
			login, _ := op.kid("login")
			if u, _ := login.kid("userName"); u.Text != "user&1" {
				t.Errorf("userName = %q", u.Text)
			}
			if p, _ := login.kid("password"); p.Text != "p<a>ss" {
				t.Errorf("password = %q", p.Text)
			}
			req, _ := op.kid(tt.request)
			if got := strings.Join(req.names(), ","); got != strings.Join(tt.children, ",") {
				t.Errorf("%s children = %s, want %s", tt.request, got, strings.Join(tt.children, ","))
			}
			if tt.itemOrder != nil {
				items, _ := req.kid("orderItems")
				item, _ := items.kid("wmeNewReqItem")
				if got := strings.Join(item.names(), ","); got != strings.Join(tt.itemOrder, ",") {
					t.Errorf("wmeNewReqItem children = %s, want %s", got, strings.Join(tt.itemOrder, ","))
				}
			}
		})
	}
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeSOAP(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		ns, op    string
		wantFault string
		wantErr   bool
		check     func(t *testing.T, out any)
	}{
		{name: "JAX-WS reserve answer", file: "soap/reserve_ok.xml", ns: NSPooledResource, op: MethodReserveResources,
			check: func(t *testing.T, out any) {
				r := out.(*reserveResourcesReturn)
				if len(r.Reserved) != 2 || r.Reserved[1].Value != "0410000001" || r.Reserved[0].ReservationID != "11" {
					t.Errorf("reserved = %+v", r.Reserved)
				}
			}},
		{name: "other prefixes, default namespace, header", file: "soap/reserve_other_prefixes.xml", ns: NSPooledResource, op: MethodReserveResources,
			check: func(t *testing.T, out any) {
				r := out.(*reserveResourcesReturn)
				if len(r.Reserved) != 1 || strings.TrimSpace(r.Reserved[0].Value) != "0412345678" {
					t.Errorf("reserved = %+v", r.Reserved)
				}
			}},
		{name: "business error", file: "soap/reserve_unavailable.xml", ns: NSPooledResource, op: MethodReserveResources,
			check: func(t *testing.T, out any) {
				r := out.(*reserveResourcesReturn)
				if r.ErrorCode != "301" || r.ErrorMessage != MsgUnavailable || r.Success != "false" {
					t.Errorf("status = %+v", r.soapStatus)
				}
			}},
		{name: "fault 233", file: "soap/fault_233.xml", ns: NSPooledResource, op: MethodReserveResources, wantFault: "233"},
		{name: "latin-1 order query", file: "soap/orderquery_complete.xml", ns: NSOrder, op: MethodOrderQuery,
			check: func(t *testing.T, out any) {
				r := out.(*orderQueryReturn)
				if r.Order.Status != StatusComplete || r.Order.ServiceNumber != "0410000000" {
					t.Errorf("order = %+v", r.Order)
				}
			}},
		{name: "answer in another namespace", file: "soap/reserve_wrong_ns.xml", ns: NSPooledResource, op: MethodReserveResources, wantErr: true},
		{name: "answer for another operation", file: "soap/reserve_ok.xml", ns: NSPooledResource, op: MethodSelectResource, wantErr: true},
		{name: "HTML error page", file: "soap/not_soap.html", ns: NSPooledResource, op: MethodReserveResources, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outs := map[string]any{
				MethodReserveResources: &reserveResourcesReturn{}, MethodOrderQuery: &orderQueryReturn{},
				MethodSelectResource: &statusOnlyReturn{},
			}
			out := outs[tt.op]
			fault, err := decodeSOAP(readFixture(t, tt.file), tt.ns, tt.op, out)
			if tt.wantErr {
				if !errors.Is(err, errNotSOAP) {
					t.Fatalf("err = %v, want errNotSOAP", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantFault != "" {
				if fault == nil || fault.Code != tt.wantFault || !strings.Contains(fault.String, "Rate limit") {
					t.Fatalf("fault = %+v, want code %s", fault, tt.wantFault)
				}
				return
			}
			if fault != nil {
				t.Fatalf("unexpected fault %+v", fault)
			}
			tt.check(t, out)
		})
	}
}

func TestAnswerErrorKinds(t *testing.T) {
	tests := []struct {
		name          string
		code, message string
		how           error
		want          error
		outcome       string
	}{
		{"fault 233", "233", "Rate limit exceeded for orderCreate.", errFault, ErrRateLimited, OutcomeRateLimited},
		{"prefixed fault 233", "S:233", "try again in some time", errFault, ErrRateLimited, OutcomeRateLimited},
		{"REST 429", "", "slow down", errRateLimitStatus, ErrRateLimited, OutcomeRateLimited},
		{"errorCode 233 is not a fault", "233", "weird", nil, ErrRejected, OutcomeRejected},
		{"SOAP login error", ErrorCodeLogin, MsgLoginFailed, nil, ErrUnauthorized, OutcomeFault},
		{"login message, other code", "7", "LOGIN FAILED", nil, ErrUnauthorized, OutcomeFault},
		{"REST 401", "", "Unauthorized", errUnauthorizedStatus, ErrUnauthorized, OutcomeFault},
		{"pool empty", ErrorCodeUnavailable, MsgUnavailable, nil, ErrResourcesUnavailable, OutcomeRejected},
		{"not available by message", "42", "eSIM profiles are Not Available", nil, ErrResourcesUnavailable, OutcomeRejected},
		{"invalid plan", ErrorCodeRejected, "Invalid plan number", nil, ErrRejected, OutcomeRejected},
		{"other SOAP fault", "S:Server", "NullPointerException", errFault, ErrRejected, OutcomeFault},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := error(answerError("m", 200, tt.code, tt.message, tt.how))
			for _, k := range []error{ErrRateLimited, ErrUnauthorized, ErrResourcesUnavailable, ErrRejected} {
				if got := errors.Is(err, k); got != (k == tt.want) {
					t.Errorf("errors.Is(%v) = %v", k, got)
				}
			}
			if got := outcome(err); got != tt.outcome {
				t.Errorf("outcome = %s, want %s", got, tt.outcome)
			}
		})
	}
}

// soapSeeds are the fixtures the fuzzer starts from.
var soapSeeds = []string{"reserve_ok.xml", "reserve_other_prefixes.xml", "reserve_unavailable.xml", "fault_233.xml", "orderquery_complete.xml", "not_soap.html"}

func FuzzDecodeSOAP(f *testing.F) {
	for _, s := range soapSeeds {
		f.Add(readFixture(f, "soap/"+s))
	}
	f.Add([]byte(`<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><ns2:orderCreateResponse xmlns:ns2="http://order.frontend.ws.utilibill.com.au/"><return><errorCode>0</errorCode><orderId>1</orderId></return></ns2:orderCreateResponse></S:Body></S:Envelope>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		outs := []struct {
			ns, op string
			out    soapReturn
		}{
			{NSPooledResource, MethodQueryResources, &queryResourcesReturn{}},
			{NSPooledResource, MethodReserveResources, &reserveResourcesReturn{}},
			{NSPooledResource, MethodSelectResource, &statusOnlyReturn{}},
			{NSOrder, MethodOrderCreate, &orderCreateReturn{}},
			{NSOrder, MethodOrderQuery, &orderQueryReturn{}},
		}
		for _, o := range outs {
			fault, err := decodeSOAP(body, o.ns, o.op, o.out)
			if err != nil && fault != nil {
				t.Fatalf("both a fault and an error")
			}
			if err == nil && fault == nil {
				_ = o.out.status()
			}
			if fault != nil {
				_ = answerError(o.op, 500, fault.Code, fault.String, errFault).Error()
			}
		}
	})
}
