package reports

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/reports/smtptest"
	"github.com/wneessen/go-mail"
)

func testMessage(t *testing.T, resend bool) Message {
	t.Helper()
	d := sampleData(t)
	return Message{
		Number: 12, MessageID: "esimbatch.report-12.abc@example.com", Resend: resend,
		Date: t0, ReportDate: t0, PeriodFrom: d.PeriodFrom, PeriodTo: d.PeriodTo,
		QR: 180, Failed: 3, Rejected: 2, Encrypted: true,
		FileName: "esim-report-000012.xlsx", Workbook: mustBuild(t, d, Options{}),
	}
}

func TestSendSMTP(t *testing.T) {
	tests := []struct {
		name   string
		resend bool
	}{{"first send", false}, {"resend", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t)
			ml, err := NewMailer(&SMTPConfig{Host: srv.Host, Port: srv.Port, Username: "u", Password: "pw"},
				"esimbatch@example.com", []string{"finance@example.com", "ops@example.com"}, "")
			if err != nil {
				t.Fatal(err)
			}
			msg := testMessage(t, tt.resend)
			del, err := ml.Send(context.Background(), msg)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if del.Via != "smtp" {
				t.Errorf("via %q", del.Via)
			}
			got := srv.Messages()
			if len(got) != 1 {
				t.Fatalf("server got %d messages", len(got))
			}
			if strings.Join(got[0].To, ",") != "finance@example.com,ops@example.com" {
				t.Errorf("RCPT TO %v", got[0].To)
			}
			p, err := smtptest.Parse(got[0].Data)
			if err != nil {
				t.Fatal(err)
			}
			checkParsed(t, p, msg)
			if u := srv.Usernames(); len(u) != 1 || u[0] != "u" {
				t.Errorf("AUTH usernames %v, want [u]", u)
			}
		})
	}
}

// checkParsed asserts headers, body and attachment of a delivered report.
func checkParsed(t *testing.T, p smtptest.Parsed, msg Message) {
	t.Helper()
	wantSubject := "eSIM report #12 2026-11-28: 180 QR, 3 failed, 2 rejected"
	if msg.Resend {
		wantSubject += " (resent)"
	}
	if s := p.Header.Get("Subject"); s != wantSubject {
		t.Errorf("Subject %q, want %q", s, wantSubject)
	}
	if id := p.Header.Get("Message-Id"); id != "<"+msg.MessageID+">" {
		t.Errorf("Message-ID %q", id)
	}
	if v := p.Header.Get(HeaderReport); v != "12" {
		t.Errorf("%s = %q", HeaderReport, v)
	}
	wantResend := ""
	if msg.Resend {
		wantResend = "true"
	}
	if v := p.Header.Get(HeaderResend); v != wantResend {
		t.Errorf("%s = %q, want %q", HeaderResend, v, wantResend)
	}
	for _, s := range []string{"QR codes:              180", "Physical SIMs:         0", "QR emailed by Octane:  0",
		"Failed:                3", "Rejected imports:      2", "Files refused:         0",
		"password is shared separately"} {
		if !strings.Contains(p.Text, s) {
			t.Errorf("body lacks %q:\n%s", s, p.Text)
		}
	}
	if len(p.Attachments) != 1 {
		t.Fatalf("%d attachments", len(p.Attachments))
	}
	a := p.Attachments[0]
	if a.FileName != msg.FileName || a.ContentType != XLSXContentType {
		t.Errorf("attachment %q %q", a.FileName, a.ContentType)
	}
	f := open(t, a.Data, "")
	if v, _ := f.GetCellValue(SheetQR, "D2"); v != "0412345678" {
		t.Errorf("attachment D2 = %q: did not reopen intact", v)
	}
	if string(a.Data) != string(msg.Workbook) {
		t.Errorf("attachment differs from the workbook (%d vs %d bytes)", len(a.Data), len(msg.Workbook))
	}
}

func TestSendRefused(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		wantTemp bool
	}{
		{"permanent 554", 554, false},
		{"temporary 451", 451, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t)
			srv.Refuse(tt.code, "transaction failed")
			ml, err := NewMailer(&SMTPConfig{Host: srv.Host, Port: srv.Port}, "a@example.com", []string{"b@example.com"}, "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = ml.Send(context.Background(), testMessage(t, false))
			var de *DeliveryError
			if !errors.Is(err, ErrDelivery) || !errors.As(err, &de) {
				t.Fatalf("err = %v, want a *DeliveryError", err)
			}
			if de.Code != tt.code || de.Temporary != tt.wantTemp || de.Number != 12 {
				t.Errorf("DeliveryError %+v", de)
			}
			if srv.Attempts() != 1 || len(srv.Messages()) != 0 {
				t.Errorf("attempts %d, accepted %d", srv.Attempts(), len(srv.Messages()))
			}
		})
	}
}

func TestTLSRequiredAgainstPlainServer(t *testing.T) {
	srv := smtptest.Start(t)
	ml, err := NewMailer(&SMTPConfig{Host: srv.Host, Port: srv.Port}, "a@example.com", []string{"b@example.com"}, "")
	if err != nil {
		t.Fatal(err)
	}
	// As for any non-loopback host: the plain test server offers no STARTTLS.
	ml.smtp.requireTLS = true
	_, err = ml.Send(context.Background(), testMessage(t, false))
	if !errors.Is(err, ErrDelivery) {
		t.Fatalf("err = %v, want ErrDelivery (TLS required, server has none)", err)
	}
	if srv.Attempts() != 0 {
		t.Errorf("message sent without TLS")
	}
}

func TestSendClosedPort(t *testing.T) {
	srv := smtptest.Start(t)
	port := srv.Port
	srv.Close()
	ml, err := NewMailer(&SMTPConfig{Host: "127.0.0.1", Port: port, Timeout: 2 * time.Second}, "a@example.com", []string{"b@example.com"}, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ml.Send(context.Background(), testMessage(t, false))
	var de *DeliveryError
	if !errors.As(err, &de) || de.Stage != "dial" || !de.Temporary {
		t.Fatalf("err = %v, want a temporary dial DeliveryError", err)
	}
}

func TestTLSPolicy(t *testing.T) {
	tests := []struct {
		host string
		want mail.TLSPolicy
	}{
		{"smtp.example.com", mail.TLSMandatory},
		{"10.0.0.1", mail.TLSMandatory},
		{"localhost", mail.TLSOpportunistic},
		{"127.0.0.1", mail.TLSOpportunistic},
		{"::1", mail.TLSOpportunistic},
		{"[::1]", mail.TLSOpportunistic},
		{"localhost.evil.example", mail.TLSMandatory},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if got := (SMTPConfig{Host: tt.host}).tlsPolicy(); got != tt.want {
				t.Errorf("policy %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWriteEML(t *testing.T) {
	dir := t.TempDir()
	ml, err := NewMailer(nil, "esimbatch@example.com", []string{"finance@example.com"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, resend := range []bool{false, true} {
		msg := testMessage(t, resend)
		del, err := ml.Send(context.Background(), msg)
		if err != nil {
			t.Fatal(err)
		}
		if del.Via != "eml" || del.Path != filepath.Join(dir, "esim-report-000012.eml") {
			t.Fatalf("delivery %+v", del)
		}
		b, err := os.ReadFile(del.Path)
		if err != nil {
			t.Fatal(err)
		}
		p, err := smtptest.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		checkParsed(t, p, msg)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries, want the one .eml (no temp files)", len(entries))
	}
}

func TestNewMailerConfig(t *testing.T) {
	tests := []struct {
		name string
		smtp *SMTPConfig
		from string
		to   []string
		dir  string
	}{
		{"no sender", &SMTPConfig{Host: "h"}, "", []string{"a@example.com"}, ""},
		{"bad sender", &SMTPConfig{Host: "h"}, "not an address", []string{"a@example.com"}, ""},
		{"no recipient", &SMTPConfig{Host: "h"}, "a@example.com", nil, ""},
		{"no host", &SMTPConfig{}, "a@example.com", []string{"b@example.com"}, ""},
		{"bad port", &SMTPConfig{Host: "h", Port: 70000}, "a@example.com", []string{"b@example.com"}, ""},
		{"no smtp, no dir", nil, "a@example.com", []string{"b@example.com"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewMailer(tt.smtp, tt.from, tt.to, tt.dir); !errors.Is(err, ErrMailConfig) {
				t.Errorf("err = %v, want ErrMailConfig", err)
			}
		})
	}
}

// The subject counts QR codes only, and names the provisioned services
// without one and the refused files apart, only when there are some.
func TestSubjectCountsApart(t *testing.T) {
	base := Message{Number: 7, ReportDate: t0, QR: 40, Failed: 2, Rejected: 1}
	tests := []struct {
		name string
		edit func(m *Message)
		want string
	}{
		{"QR codes only", func(*Message) {}, "eSIM report #7 2026-11-28: 40 QR, 2 failed, 1 rejected"},
		{"physical SIMs and Octane's emails apart", func(m *Message) { m.Physical, m.Emailed = 3, 5 },
			"eSIM report #7 2026-11-28: 40 QR, 3 physical SIM, 5 QR emailed by Octane, 2 failed, 1 rejected"},
		{"a refused file", func(m *Message) { m.Refused = 1 }, "eSIM report #7 2026-11-28: 40 QR, 2 failed, 1 rejected, 1 file refused"},
		{"refused files, resent", func(m *Message) { m.Refused, m.Resend = 2, true },
			"eSIM report #7 2026-11-28: 40 QR, 2 failed, 1 rejected, 2 files refused (resent)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base
			tt.edit(&m)
			if got := m.Subject(); got != tt.want {
				t.Errorf("Subject() = %q, want %q", got, tt.want)
			}
		})
	}
}
