package octane

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// flexString takes a JSON string, boolean or number as text: Octane sends
// "success":"true" as a string, and a corrected server might not.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch t := v.(type) {
	case nil:
		*f = ""
	case bool:
		*f = flexString(strconv.FormatBool(t))
	case float64:
		*f = flexString(strings.TrimSpace(string(b)))
	default:
		return fmt.Errorf("want a string, got %s", b)
	}
	return nil
}

// decodeREST decodes a REST answer body into out and turns a non-success
// status or body into an error: *APIError for Octane's answers,
// *TransportError (MayHaveReached) for a 5xx or an undecodable body.
func decodeREST(method string, status int, body []byte, out restAnswer) error {
	derr := json.Unmarshal(body, out)
	st := out.rest()
	msg := strings.TrimSpace(st.Message)
	if msg == "" && derr != nil {
		msg = http.StatusText(status)
	}
	// An error status without an errorCode is reported with the status as
	// its code.
	code := strings.TrimSpace(string(st.ErrorCode))
	if code == "" && status != http.StatusOK {
		code = strconv.Itoa(status)
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return answerError(method, status, code, msg, errUnauthorizedStatus)
	case status == http.StatusTooManyRequests:
		return answerError(method, status, code, msg, errRateLimitStatus)
	case status >= 500 || status < 200:
		return &TransportError{Method: method, MayHaveReached: true, Err: fmt.Errorf("HTTP %d", status)}
	case status >= 300:
		return answerError(method, status, code, msg, nil)
	case derr != nil:
		return &TransportError{Method: method, MayHaveReached: true, Err: fmt.Errorf("undecodable answer: %w", derr)}
	case !strings.EqualFold(strings.TrimSpace(string(st.Success)), RESTSuccessTrue):
		if code == "" {
			code = "0"
		}
		if msg == "" {
			msg = "success is not true"
		}
		return answerError(method, status, code, msg, nil)
	}
	return nil
}

// doREST posts a JSON body to {rest}{path} with Basic auth and decodes the
// answer into out; it returns the raw body.
func (c *Client) doREST(ctx context.Context, method, path string, in any, out restAnswer, at *attempt) ([]byte, error) {
	payload, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("octane %s: encode: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.restURL+path, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("octane %s: build request: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(c.username, c.password)
	status, body, err := c.send(req, at)
	if err != nil {
		return nil, &TransportError{Method: method, MayHaveReached: at.reached.Load(), Err: err}
	}
	return body, decodeREST(method, status, body, out)
}

// Request bodies of the REST calls (contract 3.1, 3.8).

type customerBody struct {
	CustomerIdentity struct {
		CustomerType       string `json:"customerType"`
		CustomerGivenNames string `json:"customerGivenNames"`
		CustomerSurname    string `json:"customerSurname"`
		Company            string `json:"company,omitempty"`
		CustomerDob        string `json:"customerDob,omitempty"`
	} `json:"customerIdentity"`
	Address struct {
		AddressLine1 string `json:"addressLine1"`
		Suburb       string `json:"suburb"`
		State        string `json:"state"`
		Postcode     string `json:"postcode"`
		CountryCode  string `json:"countryCode"`
	} `json:"address"`
	ContactMedium     []contactMedium `json:"contactMedium"`
	CustomerAgreement struct {
		PlanNo int `json:"planNo"`
	} `json:"customerAgreement"`
}

type contactMedium struct {
	ContactType        string `json:"contactType"`
	ContactDestination string `json:"contactDestination"`
}

type esimRequest struct {
	RequestType string `json:"requestType"`
	MSN         string `json:"msn"`
}

func newCustomerBody(cu Customer) customerBody {
	var b customerBody
	b.CustomerIdentity.CustomerType = cu.Type
	if b.CustomerIdentity.CustomerType == "" {
		b.CustomerIdentity.CustomerType = "R"
	}
	b.CustomerIdentity.CustomerGivenNames = cu.GivenNames
	b.CustomerIdentity.CustomerSurname = cu.Surname
	b.CustomerIdentity.Company = cu.Company
	b.CustomerIdentity.CustomerDob = cu.DOB
	b.Address.AddressLine1 = cu.Address.Line1
	b.Address.Suburb = cu.Address.Suburb
	b.Address.State = cu.Address.State
	b.Address.Postcode = cu.Address.Postcode
	b.Address.CountryCode = cu.Address.CountryCode
	b.ContactMedium = []contactMedium{}
	if cu.Email != "" {
		b.ContactMedium = append(b.ContactMedium, contactMedium{"EMAIL", cu.Email})
	}
	if cu.Mobile != "" {
		b.ContactMedium = append(b.ContactMedium, contactMedium{"MOBILE", cu.Mobile})
	}
	b.CustomerAgreement.PlanNo = cu.PlanNo
	return b
}

// AddCustomer creates a customer (REST) and returns its customer number. It
// is not retried once the request may have been sent (it creates). Errors:
// ErrWritesDisabled, ErrInvalidRequest (no group number, names or plan),
// *APIError (ErrUnauthorized on 401, ErrRejected), *TransportError.
func (c *Client) AddCustomer(ctx context.Context, cu Customer) (int64, error) {
	switch {
	case c.groupNo <= 0:
		return 0, invalid(MethodAddCustomer, "no group number (WithGroupNo)")
	case cu.Type != "" && cu.Type != "R" && cu.Type != "B":
		return 0, invalid(MethodAddCustomer, "customer type %q", cu.Type)
	case cu.GivenNames == "" && cu.Surname == "" && cu.Company == "":
		return 0, invalid(MethodAddCustomer, "no customer name")
	case cu.PlanNo <= 0:
		return 0, invalid(MethodAddCustomer, "planNo %d", cu.PlanNo)
	}
	body := newCustomerBody(cu)
	path := "/v1/group/" + strconv.Itoa(c.groupNo) + "/customer"
	var custNo int64
	err := c.call(ctx, &spec{method: MethodAddCustomer, write: true}, func(ctx context.Context, at *attempt) error {
		var ans addCustomerAnswer
		if _, err := c.doREST(ctx, MethodAddCustomer, path, body, &ans, at); err != nil {
			return err
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(ans.CustNo)), 10, 64)
		if err != nil || n <= 0 {
			return &TransportError{Method: MethodAddCustomer, MayHaveReached: true, Err: fmt.Errorf("answer without a valid custNo %q", ans.CustNo)}
		}
		custNo = n
		return nil
	})
	return custNo, err
}

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// parseEsimQR turns a decoded getEsimDetails answer into an EsimQR. The QR
// image is base64 PNG (a data: URL prefix is tolerated).
func parseEsimQR(ans esimAnswer, raw []byte) (EsimQR, error) {
	q := EsimQR{
		MSN: strings.TrimSpace(ans.MSN), ICCID: strings.TrimSpace(ans.ICCID),
		ActivationCode: strings.TrimSpace(ans.ActivationCode), Raw: raw,
	}
	if s := strings.TrimSpace(ans.QRCode); s != "" {
		if i := strings.Index(s, ";base64,"); i >= 0 && strings.HasPrefix(s, "data:") {
			s = s[i+len(";base64,"):]
		}
		s = strings.Map(func(r rune) rune {
			if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, s)
		img, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			img, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
		}
		if err != nil {
			return EsimQR{}, fmt.Errorf("qrCode is not base64: %w", err)
		}
		if !bytes.HasPrefix(img, pngMagic) {
			return EsimQR{}, errors.New("qrCode is not a PNG image")
		}
		q.QRCode = img
	}
	if q.ActivationCode == "" && q.QRCode == nil {
		return EsimQR{}, errors.New("answer has neither activationCode nor qrCode")
	}
	return q, nil
}

// GetEsimQR fetches the activation code and QR image of a completed eSIM
// service. The answer may carry only one of them; Raw keeps the body. Errors:
// ErrInvalidRequest, *APIError (ErrUnauthorized on 401, ErrRejected, e.g. no
// profile yet), *TransportError after the retries (also for an answer with
// neither code nor image, or an image that is not base64 PNG).
func (c *Client) GetEsimQR(ctx context.Context, msn string) (EsimQR, error) {
	if msn == "" {
		return EsimQR{}, invalid(MethodGetEsimDetails, "empty msn")
	}
	var out EsimQR
	err := c.call(ctx, &spec{method: MethodGetEsimDetails, safe: true, finish: true, msn: msn}, func(ctx context.Context, at *attempt) error {
		var ans esimAnswer
		raw, err := c.doREST(ctx, MethodGetEsimDetails, "/v1/mobile/resource/getEsimDetails",
			esimRequest{RequestType: EsimRequestQR, MSN: msn}, &ans, at)
		if err != nil {
			return err
		}
		q, err := parseEsimQR(ans, raw)
		if err != nil {
			return &TransportError{Method: MethodGetEsimDetails, MayHaveReached: true, Err: err}
		}
		if q.MSN == "" {
			q.MSN = msn
		}
		out = q
		return nil
	})
	return out, err
}

// GetSIMDetails fetches the eSIM profile state of a service. Errors:
// ErrInvalidRequest, *APIError, *TransportError after the retries.
func (c *Client) GetSIMDetails(ctx context.Context, msn string) (SIMDetails, error) {
	if msn == "" {
		return SIMDetails{}, invalid(MethodGetEsimDetails, "empty msn")
	}
	var out SIMDetails
	err := c.call(ctx, &spec{method: MethodGetEsimDetails, safe: true, msn: msn}, func(ctx context.Context, at *attempt) error {
		var ans esimAnswer
		if _, err := c.doREST(ctx, MethodGetEsimDetails, "/v1/mobile/resource/getEsimDetails",
			esimRequest{RequestType: EsimRequestSIMDetails, MSN: msn}, &ans, at); err != nil {
			return err
		}
		out = SIMDetails{MSN: strings.TrimSpace(ans.MSN), ICCID: strings.TrimSpace(ans.ICCID), ProfileState: strings.TrimSpace(ans.ProfileState)}
		if out.MSN == "" {
			out.MSN = msn
		}
		return nil
	})
	return out, err
}
