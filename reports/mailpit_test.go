package reports

// Integration tests of the report email path against Mailpit, a real SMTP
// server run as a subprocess, with STARTTLS required and a certificate made
// at test time. Mailpit is found through $MAILPIT, then PATH, then
// $(go env GOPATH)/bin; install it with
// `go install github.com/axllent/mailpit@v1.33.1`.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"go/build"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const mailpitInstall = "go install github.com/axllent/mailpit@v1.33.1"

// mailpitBinary returns Mailpit's path, or skips the test (fails it under
// CI=true) when it is not installed.
func mailpitBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("MAILPIT"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("MAILPIT=%s: %v", p, err)
		}
		return p
	}
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p
	}
	gopath := build.Default.GOPATH
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if s := strings.TrimSpace(string(out)); s != "" {
			gopath = strings.Split(s, string(os.PathListSeparator))[0]
		}
	}
	p := filepath.Join(gopath, "bin", "mailpit")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := "mailpit not found (set MAILPIT, put it on PATH, or run: " + mailpitInstall + ")"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// testCert writes a self-signed certificate for 127.0.0.1 and its key under
// dir and returns the files and a pool trusting the certificate.
func testCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "esimbatch test SMTP"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// lockedBuffer collects a subprocess's output; safe to read while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// mailpit is one running Mailpit.
type mailpit struct {
	smtpPort int
	api      string // http://127.0.0.1:PORT
	pool     *x509.CertPool
	out      *lockedBuffer
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startMailpit runs Mailpit on free loopback ports, accepting any SMTP
// login, and, withTLS, requiring STARTTLS with a fresh self-signed
// certificate (mailpit.pool trusts it). It is killed at cleanup.
func startMailpit(t *testing.T, withTLS bool) *mailpit {
	t.Helper()
	bin := mailpitBinary(t)
	dir := t.TempDir()
	mp := &mailpit{}
	// Mailpit refuses --smtp-auth-allow-insecure together with required
	// STARTTLS; with TLS, AUTH comes after STARTTLS anyway.
	modeArgs := []string{"--smtp-auth-allow-insecure"}
	if withTLS {
		certFile, keyFile, pool := testCert(t, dir)
		mp.pool = pool
		modeArgs = []string{"--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile, "--smtp-require-starttls"}
	}
	// A port picked free may be taken before Mailpit binds it: try again.
	for attempt := 1; ; attempt++ {
		mp.smtpPort = freePort(t)
		httpPort := freePort(t)
		mp.api = "http://127.0.0.1:" + strconv.Itoa(httpPort)
		mp.out = &lockedBuffer{}
		args := append([]string{
			"--smtp", "127.0.0.1:" + strconv.Itoa(mp.smtpPort),
			"--listen", "127.0.0.1:" + strconv.Itoa(httpPort),
			"--smtp-auth-accept-any",
			"--smtp-disable-rdns", "--disable-version-check",
			"-d", filepath.Join(dir, fmt.Sprintf("mailpit-%d.db", attempt)),
		}, modeArgs...)
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = mp.out, mp.out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		err := mp.waitReady(exited, 10*time.Second)
		if err == nil {
			return mp
		}
		if attempt == 3 || !strings.Contains(mp.out.String(), "address already in use") {
			t.Fatalf("mailpit: %v\n%s", err, mp.out)
		}
		t.Logf("mailpit attempt %d: %v; retrying", attempt, err)
		_ = cmd.Process.Kill()
		<-exited
	}
}

// waitReady waits until both the API answers and the SMTP port accepts.
func (mp *mailpit) waitReady(exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-exited:
			return errors.New("exited during startup")
		default:
		}
		if resp, err := client.Get(mp.api + "/api/v1/messages"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(mp.smtpPort), time.Second); err == nil {
					c.Close()
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// get fetches an API path and returns the body, failing the test on any
// status but 200.
func (mp *mailpit) get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := http.Get(mp.api + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b
}

func (mp *mailpit) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	if err := json.Unmarshal(mp.get(t, path), v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

type mailpitSummary struct {
	ID          string
	MessageID   string
	Subject     string
	Attachments int
}

func (mp *mailpit) messages(t *testing.T) []mailpitSummary {
	t.Helper()
	var list struct {
		Total    int
		Messages []mailpitSummary
	}
	mp.getJSON(t, "/api/v1/messages", &list)
	return list.Messages
}

// mailpitMailer is a Mailer sending through mp with TLS required (as for any
// non-loopback host) and SMTP AUTH, trusting pool (nil: the system roots).
func mailpitMailer(t *testing.T, mp *mailpit, pool *x509.CertPool) *Mailer {
	t.Helper()
	ml, err := NewMailer(&SMTPConfig{
		Host: "127.0.0.1", Port: mp.smtpPort, Username: "reports", Password: "test-password",
		Timeout: 5 * time.Second, requireTLS: true, rootCAs: pool,
	}, "esimbatch@example.com", []string{"finance@example.com", "ops@example.com"}, "")
	if err != nil {
		t.Fatal(err)
	}
	return ml
}

func TestMailpitDeliversOverSTARTTLS(t *testing.T) {
	mp := startMailpit(t, true)
	msg := testMessage(t, false)
	if _, err := mailpitMailer(t, mp, mp.pool).Send(context.Background(), msg); err != nil {
		t.Fatalf("Send: %v\nmailpit:\n%s", err, mp.out)
	}

	list := mp.messages(t)
	if len(list) != 1 {
		t.Fatalf("mailpit holds %d messages, want 1", len(list))
	}
	if list[0].Attachments != 1 {
		t.Errorf("message has %d attachments, want 1", list[0].Attachments)
	}
	if list[0].Subject != msg.Subject() {
		t.Errorf("Subject %q, want %q", list[0].Subject, msg.Subject())
	}

	var headers map[string][]string
	mp.getJSON(t, "/api/v1/message/"+list[0].ID+"/headers", &headers)
	if got := headers["Message-Id"]; len(got) != 1 || got[0] != "<"+msg.MessageID+">" {
		t.Errorf("Message-ID header %q, want <%s>", got, msg.MessageID)
	}
	if got := headers[HeaderReport]; len(got) != 1 || got[0] != "12" {
		t.Errorf("%s header %q, want 12", HeaderReport, got)
	}

	var full struct {
		Attachments []struct {
			PartID, FileName, ContentType string
		}
	}
	mp.getJSON(t, "/api/v1/message/"+list[0].ID, &full)
	if len(full.Attachments) != 1 {
		t.Fatalf("message details list %d attachments", len(full.Attachments))
	}
	a := full.Attachments[0]
	if a.FileName != msg.FileName || a.ContentType != XLSXContentType {
		t.Errorf("attachment %q %q, want %q %q", a.FileName, a.ContentType, msg.FileName, XLSXContentType)
	}
	data := mp.get(t, "/api/v1/message/"+list[0].ID+"/part/"+a.PartID)
	if !bytes.Equal(data, msg.Workbook) {
		t.Errorf("attachment differs from the workbook sent (%d vs %d bytes)", len(data), len(msg.Workbook))
	}
	f := open(t, data, "")
	d := sampleData(t)
	for i, r := range d.QR {
		want := []string{r.SalesRef, r.Customer, r.Email, r.MSN, r.OrderID, r.ICCID, r.Outcome,
			r.CompletedAt.UTC().Format("2006-01-02 15:04:05"), r.ActivationCode}
		if got := row(t, f, SheetQR, i+2, len(want)); strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("QR row %d reopened as %q, want %q", i+2, got, want)
		}
	}
	if got, _ := f.GetCellValue(SheetFailure, "G2"); got != d.Failures[0].Message {
		t.Errorf("Failures G2 reopened as %q, want %q", got, d.Failures[0].Message)
	}
}

func TestMailpitUntrustedCertificate(t *testing.T) {
	mp := startMailpit(t, true)
	// The system roots do not include the test certificate: verification
	// must fail before anything is sent.
	_, err := mailpitMailer(t, mp, nil).Send(context.Background(), testMessage(t, false))
	var de *DeliveryError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want a *DeliveryError", err)
	}
	var unknown x509.UnknownAuthorityError
	if de.Stage != "dial" || !errors.As(err, &unknown) {
		t.Errorf("err = %v, want a dial failure from x509.UnknownAuthorityError", err)
	}
	if n := len(mp.messages(t)); n != 0 {
		t.Errorf("mailpit holds %d messages, want none", n)
	}
}

func TestMailpitWithoutTLS(t *testing.T) {
	mp := startMailpit(t, false)
	// TLS required (any non-loopback host): a server offering no STARTTLS
	// gets nothing, even though it would accept the message in the clear.
	_, err := mailpitMailer(t, mp, nil).Send(context.Background(), testMessage(t, false))
	var de *DeliveryError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want a *DeliveryError", err)
	}
	if de.Stage != "dial" || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("err = %v, want a dial failure naming the missing STARTTLS", err)
	}
	if n := len(mp.messages(t)); n != 0 {
		t.Errorf("mailpit holds %d messages, want none", n)
	}

	// The same server takes the message when TLS is optional (the loopback
	// default): the refusal above came from the TLS policy alone.
	ml := mailpitMailer(t, mp, nil)
	ml.smtp.requireTLS = false
	if _, err := ml.Send(context.Background(), testMessage(t, false)); err != nil {
		t.Fatalf("Send with TLS optional: %v\nmailpit:\n%s", err, mp.out)
	}
	if n := len(mp.messages(t)); n != 1 {
		t.Errorf("mailpit holds %d messages after the plain send, want 1", n)
	}
}

func TestTLSConfig(t *testing.T) {
	if tc := (SMTPConfig{Host: "smtp.example.com"}).tlsConfig(); tc != nil {
		t.Errorf("without test roots tlsConfig = %+v, want nil (go-mail's default)", tc)
	}
	pool := x509.NewCertPool()
	tc := (SMTPConfig{Host: "127.0.0.1", rootCAs: pool}).tlsConfig()
	if tc == nil || tc.RootCAs != pool || tc.ServerName != "127.0.0.1" || tc.InsecureSkipVerify || tc.MinVersion != tls.VersionTLS12 {
		t.Errorf("with test roots tlsConfig = %+v, want verification on against the pool, TLS 1.2+", tc)
	}
}
