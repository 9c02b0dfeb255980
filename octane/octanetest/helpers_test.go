package octanetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/esimbatch/esimbatch/octane"
)

// sim is a Server behind a real HTTP listener, with a raw client.
type sim struct {
	t    testing.TB
	s    *Server
	url  string
	user string
	pass string
}

func newSim(t testing.TB, cfg Config) *sim {
	t.Helper()
	s := New(cfg)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return &sim{t: t, s: s, url: ts.URL, user: "demo", pass: "demo"}
}

// soapResult is a parsed SOAP answer.
type soapResult struct {
	status      int
	raw         string
	ret         *node // <return>, nil for a fault
	faultCode   string
	faultString string
}

func (r soapResult) text(path ...string) string { return r.ret.text(path...) }

func login(user, pass string) string {
	return fmt.Sprintf("<login><userName>%s</userName><password>%s</password></login>", user, pass)
}

// envelope wraps an operation in the usual prefixed form.
func envelope(ns, op, inner string) string {
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>`+
		`<soapenv:Envelope xmlns:soapenv="%s" xmlns:tns="%s"><soapenv:Header/><soapenv:Body>`+
		`<tns:%s>%s</tns:%s></soapenv:Body></soapenv:Envelope>`, octane.NSSoapEnvelope, ns, op, inner, op)
}

// post sends a raw SOAP body; err is a transport error.
func (c *sim) post(service, body string) (soapResult, error) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.url+"/tiab/"+service, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", `""`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return soapResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return soapResult{}, err
	}
	res := soapResult{status: resp.StatusCode, raw: string(b)}
	n, err := parseEnvelope(b)
	if err != nil {
		c.t.Fatalf("answer is not a SOAP envelope: %v\n%s", err, b)
	}
	if n.XMLName.Space == octane.NSSoapEnvelope && n.XMLName.Local == "Fault" {
		res.faultCode, res.faultString = n.text("faultcode"), n.text("faultstring")
		return res, nil
	}
	ret, ok := n.child("return")
	if !ok {
		c.t.Fatalf("answer has no return element:\n%s", b)
	}
	res.ret = ret
	return res, nil
}

// call sends op with the sim's credential and fails the test on a
// transport error.
func (c *sim) call(service, ns, op, inner string) soapResult {
	c.t.Helper()
	r, err := c.post(service, envelope(ns, op, login(c.user, c.pass)+inner))
	if err != nil {
		c.t.Fatalf("%s: %v", op, err)
	}
	return r
}

func (c *sim) pooled(op, inner string) soapResult {
	c.t.Helper()
	return c.call(octane.ServicePooledResource, octane.NSPooledResource, op, inner)
}

func (c *sim) reserveN(n int) soapResult {
	c.t.Helper()
	return c.pooled("reserveResources", fmt.Sprintf(
		"<reservePooledResourcesRequest><resourceType>WME_MSN</resourceType><numResources>%d</numResources></reservePooledResourcesRequest>", n))
}

// reserve reserves one number and returns it.
func (c *sim) reserve() string {
	c.t.Helper()
	r := c.reserveN(1)
	if r.text("errorCode") != "0" {
		c.t.Fatalf("reserve: %s", r.raw)
	}
	return r.text("reservedPooledResources", "resourceValue")
}

func (c *sim) selectMSN(msn string) soapResult {
	c.t.Helper()
	return c.pooled("selectResource", "<selectPooledResourceRequest><resource>"+msn+"</resource><resourceType>WME_MSN</resourceType></selectPooledResourceRequest>")
}

func (c *sim) unreserve(msn string) soapResult {
	c.t.Helper()
	return c.pooled("unreserveResources", "<unreservePooledResourcesRequest><resourceType>WME_MSN</resourceType><resource>"+msn+"</resource></unreservePooledResourcesRequest>")
}

func (c *sim) query(v string) soapResult {
	c.t.Helper()
	return c.pooled("queryResources", "<queryPooledResourcesRequest><queryValue>"+v+"</queryValue></queryPooledResourcesRequest>")
}

// item is a wmeNewReqItem; simNo nil means absent.
type item struct {
	custNo string
	planNo string
	msn    string
	simNo  *string
	isEsim string
}

func orderXML(it item) string {
	sim := ""
	if it.simNo != nil {
		sim = "<simNo>" + *it.simNo + "</simNo>"
	}
	return "<createRequest><custNo>" + it.custNo + "</custNo><orderType>SRVC_ORD</orderType><orderAction>ADD_WME_NEW</orderAction>" +
		"<orderItems><wmeNewReqItem><lineType>R</lineType><lineName>Jane Citizen</lineName><planNo>" + it.planNo + "</planNo>" +
		"<msn>" + it.msn + "</msn>" + sim + "<isEsim>" + it.isEsim + "</isEsim><isQRcode>false</isQRcode>" +
		"<notificationEmail>jane@example.com</notificationEmail><orderNotes>ACT-1</orderNotes></wmeNewReqItem></orderItems></createRequest>"
}

func (c *sim) orderCreate(it item) (soapResult, error) {
	c.t.Helper()
	return c.post(octane.ServiceOrder, envelope(octane.NSOrder, "orderCreate", login(c.user, c.pass)+orderXML(it)))
}

func (c *sim) orderQuery(id string) soapResult {
	c.t.Helper()
	return c.call(octane.ServiceOrder, octane.NSOrder, "orderQuery", "<request><orderId>"+id+"</orderId></request>")
}

// rest posts JSON with Basic auth and decodes the answer.
func (c *sim) rest(path string, body any) (int, map[string]any) {
	c.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		c.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, c.url+"/tiab/api/v1/"+path, bytes.NewReader(b))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		c.t.Fatalf("%s: decoding answer: %v", path, err)
	}
	return resp.StatusCode, out
}

func customerJSON(plan int) map[string]any {
	return map[string]any{
		"customerIdentity":  map[string]any{"customerType": "R", "customerGivenNames": "Jane", "customerSurname": "Citizen", "customerDob": "1990-01-31"},
		"address":           map[string]any{"addressLine1": "1 George St", "suburb": "Sydney", "state": "NSW", "postcode": "2000", "countryCode": "AU"},
		"contactMedium":     []map[string]any{{"contactType": "EMAIL", "contactDestination": "jane@example.com"}},
		"customerAgreement": map[string]any{"planNo": plan},
	}
}

// addCustomer creates a customer and returns its custNo as text.
func (c *sim) addCustomer() string {
	c.t.Helper()
	st, out := c.rest("group/1/customer", customerJSON(1001))
	if st != http.StatusOK || out["success"] != "true" {
		c.t.Fatalf("addCustomer: %d %v", st, out)
	}
	return fmt.Sprint(out["custNo"])
}

// selected reserves and selects a number.
func (c *sim) selected() string {
	c.t.Helper()
	msn := c.reserve()
	if r := c.selectMSN(msn); r.text("errorCode") != "0" {
		c.t.Fatalf("select: %s", r.raw)
	}
	return msn
}

// newOrder creates an accepted eSIM order and returns its id and MSN.
func (c *sim) newOrder(cust string) (string, string) {
	c.t.Helper()
	msn := c.selected()
	r, err := c.orderCreate(item{custNo: cust, planNo: "1001", msn: msn, isEsim: "true"})
	if err != nil || r.text("errorCode") != "0" {
		c.t.Fatalf("orderCreate: %v %s", err, r.raw)
	}
	return r.text("orderId"), msn
}

func (c *sim) lastEntry() LedgerEntry {
	c.t.Helper()
	l := c.s.Ledger()
	if len(l) == 0 {
		c.t.Fatal("empty ledger")
	}
	return l[len(l)-1]
}
