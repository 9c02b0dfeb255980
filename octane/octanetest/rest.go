package octanetest

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/skip2/go-qrcode"

	"github.com/esimbatch/esimbatch/octane"
)

// restFail is a REST error body: {"success":"false","message":...}.
func restFail(status int, outcome, msg string) reply {
	b, _ := json.Marshal(map[string]string{"success": "false", "message": msg})
	code := strconv.Itoa(status)
	if status == http.StatusOK {
		code = octane.ErrorCodeRejected
	}
	return reply{status: status, body: b, ctype: "application/json",
		entry: LedgerEntry{Outcome: outcome, Code: code}}
}

func restOK(v map[string]any) reply {
	v["success"] = octane.RESTSuccessTrue
	b, err := json.Marshal(v)
	if err != nil {
		return restFail(http.StatusInternalServerError, OutcomeFault, "encoding response")
	}
	return reply{status: http.StatusOK, body: b, ctype: "application/json", entry: LedgerEntry{Outcome: OutcomeOK, Code: "0"}}
}

// serveREST runs the shared REST steps: body, Basic auth, rate limit and
// injected faults, then fn under s.mu.
func (s *Server) serveREST(w http.ResponseWriter, r *http.Request, method string, fn func(body []byte, p faultPlan) reply) {
	user, pass, hasAuth := r.BasicAuth()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		rep := restFail(http.StatusBadRequest, OutcomeFault, "reading request: "+err.Error())
		rep.entry.Method, rep.entry.Credential = method, user
		s.record(rep.entry)
		writeReply(w, rep)
		return
	}
	s.serveCall(w, r, method, user, func(p faultPlan) reply {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.settle(s.nowLocked())
		if !hasAuth || !s.authorized(user, pass) {
			rep := restFail(http.StatusUnauthorized, OutcomeFault, "Unauthorized")
			rep.entry.LoginPresent = hasAuth
			return rep
		}
		if !s.admit(method, user) || p.rateLimit {
			return restFail(http.StatusTooManyRequests, OutcomeFault, fmt.Sprintf(octane.MsgRateLimitedPattern, method))
		}
		if p.reject {
			return restFail(http.StatusBadRequest, OutcomeRejected, "Simulated rejection: request refused")
		}
		rep := fn(body, p)
		rep.entry.LoginPresent = true
		return rep
	})
}

type customerBody struct {
	CustomerIdentity struct {
		CustomerType       string `json:"customerType"`
		CustomerGivenNames string `json:"customerGivenNames"`
		CustomerSurname    string `json:"customerSurname"`
		Company            string `json:"company"`
		CustomerDob        string `json:"customerDob"`
	} `json:"customerIdentity"`
	Address struct {
		AddressLine1 string `json:"addressLine1"`
		Suburb       string `json:"suburb"`
		State        string `json:"state"`
		Postcode     string `json:"postcode"`
		CountryCode  string `json:"countryCode"`
	} `json:"address"`
	ContactMedium []struct {
		ContactType        string `json:"contactType"`
		ContactDestination string `json:"contactDestination"`
	} `json:"contactMedium"`
	CustomerAgreement struct {
		PlanNo json.RawMessage `json:"planNo"` // a number or a numeric string
	} `json:"customerAgreement"`
}

func (s *Server) handleAddCustomer(w http.ResponseWriter, r *http.Request) {
	s.serveREST(w, r, methodAddCustomer, func(body []byte, _ faultPlan) reply {
		group, err := strconv.Atoi(r.PathValue("groupNo"))
		if err != nil || (s.cfg.GroupNo != 0 && group != s.cfg.GroupNo) {
			return restFail(http.StatusNotFound, OutcomeRejected, fmt.Sprintf("Unknown group %q", r.PathValue("groupNo")))
		}
		var c customerBody
		d := json.NewDecoder(bytes.NewReader(body))
		if err := d.Decode(&c); err != nil {
			return restFail(http.StatusBadRequest, OutcomeRejected, "Invalid JSON body: "+err.Error())
		}
		id := c.CustomerIdentity
		switch id.CustomerType {
		case "R":
			if strings.TrimSpace(id.CustomerSurname) == "" {
				return restFail(http.StatusBadRequest, OutcomeRejected, "customerSurname is required")
			}
		case "B":
			if strings.TrimSpace(id.Company) == "" {
				return restFail(http.StatusBadRequest, OutcomeRejected, "company is required for a business customer")
			}
		default:
			return restFail(http.StatusBadRequest, OutcomeRejected, fmt.Sprintf("Invalid customerType %q (want R or B)", id.CustomerType))
		}
		for _, cm := range c.ContactMedium {
			switch cm.ContactType {
			case "EMAIL", "MOBILE", "PHONE":
			default:
				return restFail(http.StatusBadRequest, OutcomeRejected, fmt.Sprintf("Invalid contactType %q", cm.ContactType))
			}
		}
		raw := strings.Trim(string(c.CustomerAgreement.PlanNo), `"`)
		plan, err := strconv.Atoi(raw)
		if err != nil || !s.plans[plan] {
			return restFail(http.StatusBadRequest, OutcomeRejected, fmt.Sprintf("Invalid plan number %q", raw))
		}
		custNo := s.nextCust
		s.nextCust++
		s.customers[custNo] = true
		return restOK(map[string]any{"custNo": custNo})
	})
}

func (s *Server) handleEsimDetails(w http.ResponseWriter, r *http.Request) {
	s.serveREST(w, r, methodGetEsimDetails, func(body []byte, _ faultPlan) reply {
		var req struct {
			RequestType string `json:"requestType"`
			MSN         string `json:"msn"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return restFail(http.StatusBadRequest, OutcomeRejected, "Invalid JSON body: "+err.Error())
		}
		var found *order
		for i := len(s.orderList) - 1; i >= 0; i-- {
			if o := s.orderList[i]; o.MSN == req.MSN && o.IsEsim && o.Status == octane.StatusComplete {
				found = o
				break
			}
		}
		var rep reply
		switch {
		case req.RequestType != octane.EsimRequestQR && req.RequestType != octane.EsimRequestSIMDetails:
			rep = restFail(http.StatusBadRequest, OutcomeRejected, fmt.Sprintf("Invalid requestType %q", req.RequestType))
		case found == nil:
			rep = restFail(http.StatusOK, OutcomeRejected, fmt.Sprintf("No eSIM service found for msn %q", req.MSN))
		case req.RequestType == octane.EsimRequestSIMDetails:
			rep = restOK(map[string]any{"msn": found.MSN, "iccid": found.ICCID, "profileState": "RELEASED"})
		default:
			png, err := qrPNG(found.ActivationCode)
			if err != nil {
				rep = restFail(http.StatusInternalServerError, OutcomeFault, "rendering QR code")
				break
			}
			rep = restOK(map[string]any{"msn": found.MSN, "iccid": found.ICCID,
				"activationCode": found.ActivationCode, "qrCode": base64.StdEncoding.EncodeToString(png)})
		}
		rep.entry.MSN = req.MSN
		if found != nil {
			rep.entry.OrderID = found.ID
		}
		return rep
	})
}

// qrPNG renders code as the QR image getEsimDetails answers with: the
// pixels of go-qrcode's Encode(code, Medium, 256) (a test compares them),
// written as a 1-bit paletted PNG straight from the symbol's modules and
// compressed for speed rather than size. Encode's image building and best
// compression were most of the simulator's CPU.
func qrPNG(code string) ([]byte, error) {
	q, err := qrcode.New(code, qrcode.Medium)
	if err != nil {
		return nil, err
	}
	bitmap := q.Bitmap()
	modules := len(bitmap)
	size := max(qrPixels, modules)
	// Each pixel shows the module go-qrcode's Image maps it to.
	perPixel := float64(modules) / float64(size)
	stride := 1 + (size+7)/8 // a filter byte (0: none), then the bits
	raw := make([]byte, stride*size)
	for y := range size {
		row := bitmap[int(float64(y)*perPixel)]
		line := raw[y*stride+1 : (y+1)*stride]
		for x := range size {
			if row[int(float64(x)*perPixel)] {
				line[x/8] |= 0x80 >> (x % 8)
			}
		}
	}
	zw := zlibWriters.Get().(*zlib.Writer)
	defer zlibWriters.Put(zw)
	var idat bytes.Buffer
	zw.Reset(&idat)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], uint32(size))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(size))
	ihdr[8], ihdr[9] = 1, 3 // bit depth 1, colour type 3 (palette); no interlace
	pngChunk(&b, "IHDR", ihdr[:])
	pngChunk(&b, "PLTE", []byte{0xff, 0xff, 0xff, 0, 0, 0}) // index 0 white, 1 black, as Image's palette
	pngChunk(&b, "IDAT", idat.Bytes())
	pngChunk(&b, "IEND", nil)
	return b.Bytes(), nil
}

// qrPixels is the width and height of the simulator's QR images.
const qrPixels = 256

// zlibWriters reuses compressors between images.
var zlibWriters = sync.Pool{New: func() any {
	w, _ := zlib.NewWriterLevel(io.Discard, zlib.BestSpeed) // a valid level: never an error
	return w
}}

// pngChunk appends one PNG chunk: length, type, data, CRC of type and data.
func pngChunk(b *bytes.Buffer, typ string, data []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	b.Write(n[:])
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	b.WriteString(typ)
	b.Write(data)
	binary.BigEndian.PutUint32(n[:], crc.Sum32())
	b.Write(n[:])
}
