package octane

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The request side of SOAP: an envelope whose operation element is
// namespace-qualified (prefix tns) and whose children are unqualified, which
// is what JAX-WS document/literal wrapped services expect.

type soapEnvelope struct {
	XMLName xml.Name `xml:"soapenv:Envelope"`
	NS      string   `xml:"xmlns:soapenv,attr"`
	Header  struct{} `xml:"soapenv:Header"`
	Body    soapBody `xml:"soapenv:Body"`
}

type soapBody struct {
	Op soapOperation
}

type soapOperation struct {
	XMLName xml.Name  // "tns:" + operation
	NS      string    `xml:"xmlns:tns,attr"`
	Login   soapLogin `xml:"login"`
	Request any       // the payload struct names its own element
}

type soapLogin struct {
	UserName string `xml:"userName"`
	Password string `xml:"password"`
}

// encodeSOAP builds the request envelope for op in namespace ns.
func encodeSOAP(ns, op, user, password string, payload any) ([]byte, error) {
	env := soapEnvelope{
		NS: NSSoapEnvelope,
		Body: soapBody{Op: soapOperation{
			XMLName: xml.Name{Local: "tns:" + op},
			NS:      ns,
			Login:   soapLogin{UserName: user, Password: password},
			Request: payload,
		}},
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if err := xml.NewEncoder(&buf).Encode(env); err != nil {
		return nil, fmt.Errorf("encode %s envelope: %w", op, err)
	}
	return buf.Bytes(), nil
}

// Request payloads, element order as in the contract (section 3).

type queryResourcesRequest struct {
	XMLName    struct{} `xml:"queryPooledResourcesRequest"`
	QueryValue string   `xml:"queryValue"`
}

type reserveResourcesRequest struct {
	XMLName      struct{} `xml:"reservePooledResourcesRequest"`
	ResourceType string   `xml:"resourceType"`
	NumResources int      `xml:"numResources"`
}

type selectResourceRequest struct {
	XMLName      struct{} `xml:"selectPooledResourceRequest"`
	Resource     string   `xml:"resource"`
	ResourceType string   `xml:"resourceType"`
}

type orderCreateRequest struct {
	XMLName     struct{} `xml:"createRequest"`
	CustNo      int64    `xml:"custNo"`
	OrderType   string   `xml:"orderType"`
	OrderAction string   `xml:"orderAction"`
	Item        wmeItem  `xml:"orderItems>wmeNewReqItem"`
}

type wmeItem struct {
	LineType          string `xml:"lineType"`
	LineName          string `xml:"lineName"`
	PlanNo            int    `xml:"planNo"`
	MSN               string `xml:"msn"`
	SIMNo             string `xml:"simNo,omitempty"` // absent for eSIM, never empty
	IsEsim            bool   `xml:"isEsim"`
	IsQRCode          bool   `xml:"isQRcode"`
	NotificationEmail string `xml:"notificationEmail"`
	OrderNotes        string `xml:"orderNotes,omitempty"`
}

type orderQueryRequest struct {
	XMLName struct{} `xml:"request"`
	OrderID string   `xml:"orderId"`
}

// The response side. Elements are matched by namespace and local name, never
// by prefix: the children of return are matched by local name alone.

// soapStatus is the part every return element shares.
type soapStatus struct {
	Success      string `xml:"success"`
	ErrorCode    string `xml:"errorCode"`
	ErrorMessage string `xml:"errorMessage"`
}

func (s *soapStatus) status() *soapStatus { return s }

type soapReturn interface{ status() *soapStatus }

type reserveResourcesReturn struct {
	soapStatus
	Reserved []struct {
		ReservationID string `xml:"reservationId"`
		Value         string `xml:"resourceValue"`
	} `xml:"reservedPooledResources"`
}

type statusOnlyReturn struct{ soapStatus }

type orderCreateReturn struct {
	soapStatus
	OrderID string `xml:"orderId"`
}

// soapFault is a SOAP 1.1 Fault.
type soapFault struct {
	Code   string `xml:"faultcode"`
	String string `xml:"faultstring"`
}

// errNotSOAP says a body is not a SOAP answer for the operation asked.
var errNotSOAP = errors.New("not a SOAP answer")

// decodeSOAP reads a response envelope. It returns the fault when the body
// holds one; otherwise it decodes the return element of {op}Response (in
// namespace ns) into out. Any other shape is an error wrapping errNotSOAP.
func decodeSOAP(body []byte, ns, op string, out any) (*soapFault, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	d.CharsetReader = charsetReader
	// Walk: Envelope > Body > (Fault | {op}Response > return).
	want := []xml.Name{{Space: NSSoapEnvelope, Local: "Envelope"}, {Space: NSSoapEnvelope, Local: "Body"}}
	for _, name := range want {
		se, err := nextStart(d)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errNotSOAP, err)
		}
		if se.Name != name {
			if name.Local == "Body" && se.Name == (xml.Name{Space: NSSoapEnvelope, Local: "Header"}) {
				if err := d.Skip(); err != nil {
					return nil, fmt.Errorf("%w: %v", errNotSOAP, err)
				}
				if se, err = nextStart(d); err != nil {
					return nil, fmt.Errorf("%w: %v", errNotSOAP, err)
				}
				if se.Name == name {
					continue
				}
			}
			return nil, fmt.Errorf("%w: got element {%s}%s, want {%s}%s", errNotSOAP, se.Name.Space, se.Name.Local, name.Space, name.Local)
		}
	}
	se, err := nextStart(d)
	if err != nil {
		return nil, fmt.Errorf("%w: empty body: %v", errNotSOAP, err)
	}
	switch se.Name {
	case xml.Name{Space: NSSoapEnvelope, Local: "Fault"}:
		var f soapFault
		if err := d.DecodeElement(&f, &se); err != nil {
			return nil, fmt.Errorf("%w: fault: %v", errNotSOAP, err)
		}
		f.Code = strings.TrimSpace(f.Code)
		f.String = strings.TrimSpace(f.String)
		return &f, nil
	case xml.Name{Space: ns, Local: op + "Response"}:
	default:
		return nil, fmt.Errorf("%w: got element {%s}%s, want {%s}%sResponse", errNotSOAP, se.Name.Space, se.Name.Local, ns, op)
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: no return element: %v", errNotSOAP, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			// return is unqualified in JAX-WS output; accept the service
			// namespace too in case elementFormDefault is qualified.
			if t.Name.Local != "return" || (t.Name.Space != "" && t.Name.Space != ns) {
				if err := d.Skip(); err != nil {
					return nil, fmt.Errorf("%w: %v", errNotSOAP, err)
				}
				continue
			}
			if err := d.DecodeElement(out, &t); err != nil {
				return nil, fmt.Errorf("%w: return: %v", errNotSOAP, err)
			}
			return nil, nil
		case xml.EndElement:
			return nil, fmt.Errorf("%w: %sResponse has no return element", errNotSOAP, op)
		}
	}
}

func nextStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, fmt.Errorf("unexpected end of %s", t.Name.Local)
		}
	}
}

// charsetReader accepts the single-byte encodings a Java server may declare
// besides UTF-8.
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "us-ascii", "ascii", "utf8":
		return in, nil
	case "iso-8859-1", "latin1", "latin-1", "iso8859-1":
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return strings.NewReader(string(r)), nil
	}
	return nil, fmt.Errorf("unsupported charset %q", label)
}

// soapService names one SOAP endpoint.
type soapService struct{ path, ns string }

var (
	svcPooledResource = soapService{ServicePooledResource, NSPooledResource}
	svcOrder          = soapService{ServiceOrder, NSOrder}
)

// doSOAP sends one operation and decodes its return into out. Every answer
// that is not a success goes through answerError; a missing or undecodable
// answer is a *TransportError.
func (c *Client) doSOAP(ctx context.Context, svc soapService, op string, payload any, out soapReturn, at *attempt) error {
	body, err := encodeSOAP(svc.ns, op, c.username, c.password, payload)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.soapURL+"/"+svc.path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("octane %s: build request: %w", op, err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", `""`)
	req.Header.Set("Accept", "text/xml")
	status, respBody, err := c.send(req, at)
	if err != nil {
		return &TransportError{Method: op, MayHaveReached: at.reached.Load(), Err: err}
	}
	fault, derr := decodeSOAP(respBody, svc.ns, op, out)
	switch {
	case derr != nil && (status == http.StatusUnauthorized || status == http.StatusForbidden):
		return answerError(op, status, "", http.StatusText(status), errUnauthorizedStatus)
	case derr != nil && status != http.StatusOK:
		return &TransportError{Method: op, MayHaveReached: true, Err: fmt.Errorf("HTTP %d without a SOAP answer", status)}
	case derr != nil:
		return &TransportError{Method: op, MayHaveReached: true, Err: fmt.Errorf("undecodable answer: %w", derr)}
	case fault != nil:
		return answerError(op, status, fault.Code, fault.String, errFault)
	}
	st := out.status()
	if code := strings.TrimSpace(st.ErrorCode); (code != "" && code != "0") || strings.EqualFold(strings.TrimSpace(st.Success), "false") {
		if code == "" {
			code = "0"
		}
		return answerError(op, status, code, strings.TrimSpace(st.ErrorMessage), nil)
	}
	return nil
}
