package reports

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"
)

// XLSXContentType is the attachment's media type (go-mail would otherwise
// guess application/octet-stream).
const XLSXContentType = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

// Headers that make a report email recognisable to people and filters.
const (
	HeaderReport = "X-Esimbatch-Report" // the report number
	HeaderResend = "X-Esimbatch-Resend" // "true" when the same report is sent again
)

// Mail errors. Mailer methods wrap them; test with errors.Is.
var (
	// ErrMailConfig: the mail settings are unusable (no sender, no recipient,
	// an invalid address or port).
	ErrMailConfig = errors.New("reports: invalid mail configuration")
	// ErrDelivery: the SMTP server was unreachable or did not accept the
	// message. The error is a *DeliveryError.
	ErrDelivery = errors.New("reports: report email not delivered")
)

// DeliveryError says why a report email was not accepted. Nothing was
// delivered: the report must be sent again.
type DeliveryError struct {
	Number    int64  // report number
	Temporary bool   // a 4xx reply or a network error: worth retrying soon
	Code      int    // the SMTP reply code when the server gave one, else 0
	Err       error  // go-mail's error (a *mail.SendError for server replies)
	Stage     string // "dial" or "send"
}

// Error names the report number, the SMTP stage that failed and the cause.
func (e *DeliveryError) Error() string {
	return fmt.Sprintf("reports: report #%d not delivered (%s): %v", e.Number, e.Stage, e.Err)
}

// Unwrap lets errors.Is find ErrDelivery and go-mail's error.
func (e *DeliveryError) Unwrap() []error { return []error{ErrDelivery, e.Err} }

// SMTPConfig is the SMTP server reports are sent through.
type SMTPConfig struct {
	Host     string
	Port     int // 587 (STARTTLS) when zero; 465 means implicit TLS
	Username string
	Password string // never logged, never part of an error
	Timeout  time.Duration

	// requireTLS forces TLSMandatory even on a loopback host (tests).
	requireTLS bool
	// rootCAs, when set, replaces the system roots for verifying the
	// server's certificate (tests trusting a self-signed one). Verification
	// stays on; nil keeps go-mail's default TLS configuration.
	rootCAs *x509.CertPool
}

// tlsConfig is the TLS configuration for STARTTLS or implicit TLS, or nil for
// go-mail's default (system roots, ServerName = host, TLS 1.2 or newer).
func (c SMTPConfig) tlsConfig() *tls.Config {
	if c.rootCAs == nil {
		return nil
	}
	return &tls.Config{ServerName: c.Host, RootCAs: c.rootCAs, MinVersion: tls.VersionTLS12}
}

// tlsPolicy is mandatory TLS, except on a loopback host (the demo, tests, a
// local relay), where TLS is used when offered.
func (c SMTPConfig) tlsPolicy() mail.TLSPolicy {
	if !c.requireTLS && isLoopback(c.Host) {
		return mail.TLSOpportunistic
	}
	return mail.TLSMandatory
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// Mailer delivers report emails: over SMTP when configured, else as .eml
// files in a folder (which counts as delivered).
type Mailer struct {
	smtp *SMTPConfig
	from string
	to   []string
	dir  string
}

// NewMailer returns a Mailer sending from one address to the recipients
// through smtp, or, when smtp is nil, writing .eml files under dir. It returns
// ErrMailConfig when from or to is missing or invalid, or the port is out of
// range.
func NewMailer(smtp *SMTPConfig, from string, to []string, dir string) (*Mailer, error) {
	probe := mail.NewMsg()
	if err := probe.From(from); err != nil {
		return nil, fmt.Errorf("%w: sender %q: %v", ErrMailConfig, from, err)
	}
	if len(to) == 0 {
		return nil, fmt.Errorf("%w: no recipient", ErrMailConfig)
	}
	if err := probe.To(to...); err != nil {
		return nil, fmt.Errorf("%w: recipients: %v", ErrMailConfig, err)
	}
	if smtp != nil {
		if smtp.Host == "" {
			return nil, fmt.Errorf("%w: no SMTP host", ErrMailConfig)
		}
		if smtp.Port < 0 || smtp.Port > 65535 {
			return nil, fmt.Errorf("%w: SMTP port %d", ErrMailConfig, smtp.Port)
		}
		c := *smtp
		smtp = &c
	} else if dir == "" {
		return nil, fmt.Errorf("%w: neither SMTP nor a folder for .eml files", ErrMailConfig)
	}
	return &Mailer{smtp: smtp, from: from, to: append([]string(nil), to...), dir: dir}, nil
}

// Message is one report email. Its content comes from the report record, so
// a resend of the same report is the same email with the same Message-ID.
type Message struct {
	Number     int64
	MessageID  string    // without angle brackets, fixed before the first send
	Resend     bool      // an earlier attempt may have been delivered
	Date       time.Time // the Date header: now
	ReportDate time.Time // when the report was fixed: in the subject
	PeriodFrom time.Time
	PeriodTo   time.Time
	QR         int // QR codes delivered: QR rows with a code (Data.QRCodes)
	// Physical and Emailed are the provisioned services without a QR code
	// in the workbook: physical SIMs, and eSIMs whose QR Octane emailed.
	Physical  int
	Emailed   int
	Failed    int
	Rejected  int    // sales rows rejected on import
	Refused   int    // files refused whole on import
	Encrypted bool   // the workbook needs the password (sent out of band)
	FileName  string // the attachment's name, e.g. esim-report-000012.xlsx
	Workbook  []byte
}

// Subject is the email subject, e.g.
// "eSIM report #12 2026-11-28: 180 QR, 3 failed, 2 rejected"; the
// provisioned services without a QR code and refused files are named only
// when there are some: "..., 180 QR, 4 physical SIM, 2 QR emailed by Octane,
// 3 failed, 2 rejected, 1 file refused". A Number of 0 is the "nothing new"
// email.
func (m Message) Subject() string {
	if m.Number == 0 {
		return fmt.Sprintf("eSIM report %s: nothing new", m.ReportDate.UTC().Format("2006-01-02"))
	}
	parts := []string{fmt.Sprintf("%d QR", m.QR)}
	if m.Physical > 0 {
		parts = append(parts, fmt.Sprintf("%d physical SIM", m.Physical))
	}
	if m.Emailed > 0 {
		parts = append(parts, fmt.Sprintf("%d QR emailed by Octane", m.Emailed))
	}
	parts = append(parts, fmt.Sprintf("%d failed", m.Failed), fmt.Sprintf("%d rejected", m.Rejected))
	if m.Refused == 1 {
		parts = append(parts, "1 file refused")
	} else if m.Refused > 1 {
		parts = append(parts, fmt.Sprintf("%d files refused", m.Refused))
	}
	s := fmt.Sprintf("eSIM report #%d %s: %s", m.Number, m.ReportDate.UTC().Format("2006-01-02"), strings.Join(parts, ", "))
	if m.Resend {
		s += " (resent)"
	}
	return s
}

// Body is the short plain-text body.
func (m Message) Body() string {
	var b strings.Builder
	fmt.Fprintf(&b, "eSIM activation report #%d, fixed %s UTC.\n", m.Number, m.ReportDate.UTC().Format("2006-01-02 15:04"))
	if !m.PeriodFrom.IsZero() || !m.PeriodTo.IsZero() {
		fmt.Fprintf(&b, "Period: %s to %s UTC.\n", m.PeriodFrom.UTC().Format("2006-01-02 15:04"), m.PeriodTo.UTC().Format("2006-01-02 15:04"))
	}
	b.WriteString("\n")
	for _, l := range []struct {
		label string
		n     int
	}{{"QR codes:", m.QR}, {"Physical SIMs:", m.Physical}, {"QR emailed by Octane:", m.Emailed},
		{"Failed:", m.Failed}, {"Rejected imports:", m.Rejected}, {"Files refused:", m.Refused}} {
		fmt.Fprintf(&b, "%-22s %d\n", l.label, l.n)
	}
	fmt.Fprintf(&b, "\nThe details are in the attached workbook %s.\n", m.FileName)
	if m.Encrypted {
		b.WriteString("The workbook is password protected; the password is shared separately.\n")
	}
	if m.Resend {
		fmt.Fprintf(&b, "\nThis is a repeat of report #%d: an earlier attempt to send it may have arrived. Its content is the same; keep one.\n", m.Number)
	}
	return b.String()
}

// Delivery says where a report went.
type Delivery struct {
	Via  string // "smtp" or "eml"
	Path string // the .eml file when Via is "eml"
}

// Send delivers msg. Over SMTP it returns only once the server accepted the
// message (a *DeliveryError, matching ErrDelivery, otherwise); without SMTP it
// writes <dir>/<FileName without .xlsx>.eml, replacing an earlier copy of the
// same report, and returns a wrapped file-system error on failure.
func (ml *Mailer) Send(ctx context.Context, msg Message) (Delivery, error) {
	m, err := ml.compose(msg)
	if err != nil {
		return Delivery{}, err
	}
	if ml.smtp == nil {
		path, err := ml.writeEML(m, msg)
		if err != nil {
			return Delivery{}, err
		}
		return Delivery{Via: "eml", Path: path}, nil
	}
	if err := ml.sendSMTP(ctx, m, msg.Number); err != nil {
		return Delivery{}, err
	}
	return Delivery{Via: "smtp"}, nil
}

func (ml *Mailer) compose(msg Message) (*mail.Msg, error) {
	if msg.MessageID == "" {
		return nil, fmt.Errorf("reports: report #%d: no Message-ID", msg.Number)
	}
	if msg.FileName == "" || len(msg.Workbook) == 0 {
		return nil, fmt.Errorf("reports: report #%d: no workbook", msg.Number)
	}
	m := mail.NewMsg()
	if err := m.From(ml.from); err != nil {
		return nil, fmt.Errorf("%w: sender: %v", ErrMailConfig, err)
	}
	if err := m.To(ml.to...); err != nil {
		return nil, fmt.Errorf("%w: recipients: %v", ErrMailConfig, err)
	}
	m.Subject(msg.Subject())
	m.SetMessageIDWithValue(strings.Trim(msg.MessageID, "<>"))
	date := msg.Date
	if date.IsZero() {
		date = msg.ReportDate
	}
	m.SetDateWithValue(date)
	m.SetGenHeader(HeaderReport, strconv.FormatInt(msg.Number, 10))
	if msg.Resend {
		m.SetGenHeader(HeaderResend, "true")
	}
	m.SetBodyString(mail.TypeTextPlain, msg.Body())
	m.AttachReadSeeker(msg.FileName, bytes.NewReader(msg.Workbook),
		mail.WithFileContentType(XLSXContentType))
	return m, nil
}

func (ml *Mailer) sendSMTP(ctx context.Context, m *mail.Msg, number int64) error {
	cfg := ml.smtp
	port := cfg.Port
	if port == 0 {
		port = 587
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	opts := []mail.Option{mail.WithPort(port), mail.WithTimeout(timeout), mail.WithTLSPolicy(cfg.tlsPolicy())}
	if port == 465 {
		opts = append(opts, mail.WithSSL())
	}
	if tc := cfg.tlsConfig(); tc != nil {
		opts = append(opts, mail.WithTLSConfig(tc))
	}
	if cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthPlain),
			mail.WithUsername(cfg.Username), mail.WithPassword(cfg.Password))
	}
	c, err := mail.NewClient(cfg.Host, opts...)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMailConfig, err)
	}
	sc, err := c.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return &DeliveryError{Number: number, Stage: "dial", Temporary: true, Err: err}
	}
	if err := c.SendWithSMTPClient(sc, m); err != nil {
		_ = c.CloseWithSMTPClient(sc)
		de := &DeliveryError{Number: number, Stage: "send", Err: err}
		var se *mail.SendError
		if errors.As(err, &se) {
			de.Temporary, de.Code = se.IsTemp(), se.ErrorCode()
		}
		return de
	}
	// The server accepted the message: a failing QUIT does not undo that.
	_ = c.CloseWithSMTPClient(sc)
	return nil
}

func (ml *Mailer) writeEML(m *mail.Msg, msg Message) (string, error) {
	name := strings.TrimSuffix(msg.FileName, filepath.Ext(msg.FileName)) + ".eml"
	path := filepath.Join(ml.dir, filepath.Base(name))
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		return "", fmt.Errorf("reports: compose %s: %w", path, err)
	}
	if err := SaveFile(path, buf.Bytes()); err != nil {
		return "", err
	}
	return path, nil
}

// SaveFile writes b to path atomically (a temp file renamed into place, mode
// 0640), so a crash never leaves a half-written workbook or email behind. It
// returns a wrapped file-system error.
func SaveFile(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("reports: save %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("reports: save %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("reports: save %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("reports: save %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o640); err != nil {
		return fmt.Errorf("reports: save %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("reports: save %s: %w", path, err)
	}
	return nil
}
