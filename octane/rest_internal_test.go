package octane

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
)

func TestDecodeREST(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		file      string
		wantKind  error // sentinel, or nil
		transport bool
		custNo    string
	}{
		{name: "custNo answer", status: 200, file: "rest/addcustomer_ok.json", custNo: "200001"},
		{name: "success as JSON bool", status: 200, body: `{"success":true,"custNo":"77"}`, custNo: "77"},
		{name: "success false", status: 200, file: "rest/addcustomer_fail.json", wantKind: ErrRejected},
		{name: "success false, pool empty", status: 200, body: `{"success":"false","message":"Resources are not available"}`, wantKind: ErrResourcesUnavailable},
		{name: "success missing", status: 200, body: `{"custNo":1}`, wantKind: ErrRejected},
		{name: "401", status: 401, body: `{"success":"false","message":"Unauthorized"}`, wantKind: ErrUnauthorized},
		{name: "401 without body", status: 401, body: ``, wantKind: ErrUnauthorized},
		{name: "429", status: 429, body: `{"success":"false"}`, wantKind: ErrRateLimited},
		{name: "400 with message", status: 400, body: `{"success":"false","message":"Invalid plan number"}`, wantKind: ErrRejected},
		{name: "502 HTML", status: 502, body: `<html>bad gateway</html>`, transport: true},
		{name: "200 garbage", status: 200, file: "rest/garbage.txt", transport: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			if tt.file != "" {
				body = readFixture(t, tt.file)
			}
			var ans addCustomerAnswer
			err := decodeREST(MethodAddCustomer, tt.status, body, &ans)
			var te *TransportError
			switch {
			case tt.transport:
				if !errors.As(err, &te) || !te.MayHaveReached {
					t.Fatalf("err = %v, want *TransportError that may have reached", err)
				}
			case tt.wantKind != nil:
				var ae *APIError
				if !errors.As(err, &ae) || !errors.Is(err, tt.wantKind) {
					t.Fatalf("err = %v, want *APIError %v", err, tt.wantKind)
				}
				if ae.HTTPStatus != tt.status {
					t.Errorf("HTTPStatus = %d", ae.HTTPStatus)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if string(ans.CustNo) != tt.custNo {
					t.Errorf("custNo = %q, want %q", ans.CustNo, tt.custNo)
				}
			}
		})
	}
}

func TestParseEsimQR(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		file     string
		wantCode bool
		wantPNG  bool
		wantErr  bool
	}{
		{name: "activation code only", file: "rest/esim_code_only.json", wantCode: true},
		{name: "QR only", file: "rest/esim_qr_only.json", wantPNG: true},
		{name: "data URL QR", body: `{"success":"true","qrCode":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNiAAAABgADNjd8qAAAAABJRU5ErkJggg=="}`, wantPNG: true},
		{name: "neither", body: `{"success":"true","msn":"0410000000"}`, wantErr: true},
		{name: "QR not base64", body: `{"success":"true","qrCode":"%%%"}`, wantErr: true},
		{name: "QR not a PNG", body: `{"success":"true","qrCode":"aGVsbG8="}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			if tt.file != "" {
				body = readFixture(t, tt.file)
			}
			var ans esimAnswer
			if err := decodeREST(MethodGetEsimDetails, http.StatusOK, body, &ans); err != nil {
				t.Fatal(err)
			}
			q, err := parseEsimQR(ans, body)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %+v", q.LogValue())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (q.ActivationCode != "") != tt.wantCode || (q.QRCode != nil) != tt.wantPNG {
				t.Errorf("code %q, %d PNG bytes", q.ActivationCode, len(q.QRCode))
			}
			if tt.wantPNG && !bytes.HasPrefix(q.QRCode, pngMagic) {
				t.Errorf("QR is not PNG")
			}
			if !bytes.Equal(q.Raw, body) {
				t.Errorf("Raw is not the body")
			}
		})
	}
}

func FuzzDecodeREST(f *testing.F) {
	for _, s := range []string{"addcustomer_ok.json", "addcustomer_fail.json", "esim_code_only.json", "esim_qr_only.json", "simdetails_ok.json", "garbage.txt"} {
		f.Add(200, readFixture(f, "rest/"+s))
	}
	f.Add(401, []byte(`{"success":"false","message":"Unauthorized"}`))
	f.Add(200, []byte(`{"success":"true","qrCode":"data:image/png;base64,"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		var c addCustomerAnswer
		_ = decodeREST(MethodAddCustomer, status, body, &c)
		var e esimAnswer
		if err := decodeREST(MethodGetEsimDetails, status, body, &e); err == nil {
			if q, err := parseEsimQR(e, body); err == nil && q.ActivationCode == "" && q.QRCode == nil {
				t.Fatal("accepted an answer with neither code nor image")
			}
		}
	})
}
