package octanetest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/esimbatch/esimbatch/octane"
)

// Method names, from package octane.
const (
	methodQueryResources     = octane.MethodQueryResources
	methodReserveResources   = octane.MethodReserveResources
	methodSelectResource     = octane.MethodSelectResource
	methodUnreserveResources = octane.MethodUnreserveResources
	methodOrderCreate        = octane.MethodOrderCreate
	methodOrderQuery         = octane.MethodOrderQuery
	methodAddCustomer        = octane.MethodAddCustomer
	methodGetEsimDetails     = octane.MethodGetEsimDetails
)

// node is a generic XML element of a request. Children of the operation
// element are unqualified per the contract; parse normalises a child in the
// operation's own namespace (a default xmlns on the operation) to
// unqualified, so lookups go by local name within "" only.
type node struct {
	XMLName xml.Name
	Text    string `xml:",chardata"`
	Kids    []node `xml:",any"`
}

// child is the first unqualified child named local.
func (n *node) child(local string) (*node, bool) {
	if n == nil {
		return nil, false
	}
	for i := range n.Kids {
		k := &n.Kids[i]
		if k.XMLName.Space == "" && k.XMLName.Local == local {
			return k, true
		}
	}
	return nil, false
}

// text is the trimmed text of the child at path, "" if absent.
func (n *node) text(path ...string) string {
	cur := n
	for _, p := range path {
		c, ok := cur.child(p)
		if !ok {
			return ""
		}
		cur = c
	}
	return strings.TrimSpace(cur.Text)
}

func (n *node) unqualify(ns string) {
	for i := range n.Kids {
		if n.Kids[i].XMLName.Space == ns {
			n.Kids[i].XMLName.Space = ""
		}
		n.Kids[i].unqualify(ns)
	}
}

// parseEnvelope finds Envelope/Body/{operation} by namespace and local name
// and decodes the operation element.
func parseEnvelope(data []byte) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	depth := 0 // 0 outside, 1 in Envelope, 2 in Body
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("no SOAP Body operation element")
			}
			return nil, fmt.Errorf("malformed XML: %w", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			if _, end := tok.(xml.EndElement); end {
				return nil, errors.New("no SOAP Body operation element")
			}
			continue
		}
		switch depth {
		case 0:
			if se.Name.Space != octane.NSSoapEnvelope || se.Name.Local != "Envelope" {
				return nil, fmt.Errorf("root element is {%s}%s, want a SOAP 1.1 Envelope", se.Name.Space, se.Name.Local)
			}
			depth = 1
		case 1:
			if se.Name.Space == octane.NSSoapEnvelope && se.Name.Local == "Body" {
				depth = 2
				continue
			}
			if err := d.Skip(); err != nil { // Header or anything else
				return nil, fmt.Errorf("malformed XML: %w", err)
			}
		case 2:
			op := &node{}
			if err := d.DecodeElement(op, &se); err != nil {
				return nil, fmt.Errorf("malformed XML: %w", err)
			}
			op.unqualify(op.XMLName.Space)
			// The rest of the document must be well-formed too.
			for {
				if _, err := d.Token(); err != nil {
					if errors.Is(err, io.EOF) {
						return op, nil
					}
					return nil, fmt.Errorf("malformed XML: %w", err)
				}
			}
		}
	}
}

// el is an element of an answer.
type el struct {
	name string
	text string
	kids []el
}

func leaf(name, text string) el { return el{name: name, text: text} }

func (e el) write(b *strings.Builder) {
	b.WriteString("<" + e.name + ">")
	if len(e.kids) == 0 {
		_ = xml.EscapeText(b, []byte(e.text))
	}
	for _, k := range e.kids {
		k.write(b)
	}
	b.WriteString("</" + e.name + ">")
}

const xmlHeader = `<?xml version='1.0' encoding='UTF-8'?>`

// soapAnswer renders a JAX-WS style response: S:Envelope/S:Body/ns2:{op}Response/return.
func soapAnswer(ns, op string, ret []el) []byte {
	var b strings.Builder
	b.WriteString(xmlHeader)
	b.WriteString(`<S:Envelope xmlns:S="` + octane.NSSoapEnvelope + `"><S:Body>`)
	b.WriteString(`<ns2:` + op + `Response xmlns:ns2="`)
	_ = xml.EscapeText(&b, []byte(ns))
	b.WriteString(`">`)
	el{name: "return", kids: ret}.write(&b)
	b.WriteString(`</ns2:` + op + `Response></S:Body></S:Envelope>`)
	return []byte(b.String())
}

// soapFault renders a SOAP 1.1 fault.
func soapFault(code, msg string) []byte {
	var b strings.Builder
	b.WriteString(xmlHeader)
	b.WriteString(`<S:Envelope xmlns:S="` + octane.NSSoapEnvelope + `"><S:Body><S:Fault>`)
	leaf("faultcode", code).write(&b)
	leaf("faultstring", msg).write(&b)
	b.WriteString(`</S:Fault></S:Body></S:Envelope>`)
	return []byte(b.String())
}

// reply is the answer to one call plus what the ledger says about it.
type reply struct {
	status int
	body   []byte
	ctype  string
	entry  LedgerEntry
}

func faultReply(status int, code, msg string) reply {
	return reply{status: status, body: soapFault(code, msg), ctype: "text/xml; charset=utf-8",
		entry: LedgerEntry{Outcome: OutcomeFault, Code: code}}
}

// soapCall is one parsed SOAP request.
type soapCall struct {
	ns, method   string
	op           *node
	user, pass   string
	loginPresent bool
}

// soapOp handles one operation with s.mu held; it returns the children of
// <return> and the ledger entry (Outcome, Code, MSN, OrderID).
type soapOp func(s *Server, c *soapCall, p faultPlan) ([]el, LedgerEntry)

var soapServices = map[string]struct {
	ns  string
	ops map[string]soapOp
}{
	octane.ServicePooledResource: {octane.NSPooledResource, map[string]soapOp{
		methodQueryResources:     (*Server).queryResources,
		methodReserveResources:   (*Server).reserveResources,
		methodSelectResource:     (*Server).selectResource,
		methodUnreserveResources: (*Server).unreserveResources,
	}},
	octane.ServiceOrder: {octane.NSOrder, map[string]soapOp{
		methodOrderCreate: (*Server).orderCreate,
		methodOrderQuery:  (*Server).orderQuery,
	}},
	octane.ServiceServiceV3: {octane.NSServiceV3, nil},
	octane.ServicePlan:      {octane.NSPlan, nil},
}

// pooledMethods answer with a success element besides errorCode.
func hasSuccess(method string) bool {
	switch method {
	case methodOrderCreate, methodOrderQuery:
		return false
	}
	return true
}

// errReturn is a <return> for a business error.
func errReturn(method, code, msg string) []el {
	var out []el
	if hasSuccess(method) {
		out = append(out, leaf("success", "false"))
	}
	return append(out, leaf("errorCode", code), leaf("errorMessage", msg))
}

func okReturn(method string, rest ...el) []el {
	var out []el
	if hasSuccess(method) {
		out = append(out, leaf("success", "true"))
	}
	return append(append(out, leaf("errorCode", "0")), rest...)
}

func (s *Server) handleSOAP(w http.ResponseWriter, r *http.Request) {
	svc, ok := soapServices[r.PathValue("service")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "SOAP endpoint: POST only (no WSDL is served)", http.StatusMethodNotAllowed)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		rep := faultReply(http.StatusBadRequest, "S:Client", "reading request: "+err.Error())
		s.record(rep.entry)
		writeReply(w, rep)
		return
	}
	op, err := parseEnvelope(data)
	if err != nil {
		rep := faultReply(http.StatusInternalServerError, "S:Client", "Couldn't parse SOAP request: "+err.Error())
		s.record(rep.entry)
		writeReply(w, rep)
		return
	}
	c := &soapCall{ns: svc.ns, method: op.XMLName.Local, op: op}
	if login, ok := op.child("login"); ok {
		c.loginPresent = true
		c.user, c.pass = login.text("userName"), login.text("password")
	}
	handler, known := svc.ops[c.method]
	switch {
	case svc.ops == nil:
		rep := faultReply(http.StatusInternalServerError, "S:Server", "not implemented: "+r.PathValue("service")+"."+c.method)
		rep.entry.Method, rep.entry.Credential, rep.entry.LoginPresent = c.method, c.user, c.loginPresent
		s.record(rep.entry)
		writeReply(w, rep)
		return
	case !known || op.XMLName.Space != svc.ns:
		rep := faultReply(http.StatusInternalServerError, "S:Client",
			fmt.Sprintf("Cannot find dispatch method for {%s}%s", op.XMLName.Space, c.method))
		rep.entry.Method, rep.entry.Credential, rep.entry.LoginPresent = c.method, c.user, c.loginPresent
		s.record(rep.entry)
		writeReply(w, rep)
		return
	}
	s.serveCall(w, r, c.method, c.user, func(p faultPlan) reply {
		rep := s.runSOAP(c, handler, p)
		rep.entry.LoginPresent = c.loginPresent
		return rep
	})
}

// runSOAP applies the checks every SOAP call shares (login, rate limit,
// injected 233 and rejection), then the operation, under s.mu.
func (s *Server) runSOAP(c *soapCall, handler soapOp, p faultPlan) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle(s.nowLocked())
	answer := func(ret []el, e LedgerEntry) reply {
		return reply{status: http.StatusOK, body: soapAnswer(c.ns, c.method, ret), ctype: "text/xml; charset=utf-8", entry: e}
	}
	if !c.loginPresent || !s.authorized(c.user, c.pass) {
		return answer(errReturn(c.method, octane.ErrorCodeLogin, octane.MsgLoginFailed),
			LedgerEntry{Outcome: OutcomeFault, Code: octane.ErrorCodeLogin})
	}
	if !s.admit(c.method, c.user) || p.rateLimit {
		return faultReply(octane.RateLimitHTTPStatus, octane.FaultCodeRateLimited,
			fmt.Sprintf(octane.MsgRateLimitedPattern, c.method))
	}
	if p.reject {
		return answer(errReturn(c.method, octane.ErrorCodeRejected, "Simulated rejection: request refused"),
			LedgerEntry{Outcome: OutcomeRejected, Code: octane.ErrorCodeRejected})
	}
	ret, e := handler(s, c, p)
	return answer(ret, e)
}

// serveCall applies latency, transport and drop faults around run and
// records the ledger entry.
func (s *Server) serveCall(w http.ResponseWriter, r *http.Request, method, cred string, run func(faultPlan) reply) {
	p := s.plan(method)
	sleep(r.Context(), p.latency)
	if p.transport {
		s.record(LedgerEntry{Method: method, Credential: cred, Outcome: OutcomeDropped, Code: "transport"})
		hangUp(w)
		return
	}
	rep := run(p)
	rep.entry.Method, rep.entry.Credential = method, cred
	if p.drop {
		rep.entry.Outcome = OutcomeDropped
		s.record(rep.entry)
		hangUp(w)
		return
	}
	s.record(rep.entry)
	writeReply(w, rep)
}

func writeReply(w http.ResponseWriter, rep reply) {
	w.Header().Set("Content-Type", rep.ctype)
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body)
}
