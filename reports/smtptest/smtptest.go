// Package smtptest runs a real SMTP server (emersion/go-smtp) in-process on
// 127.0.0.1 for tests: it captures every accepted message and can be told to
// refuse the DATA command, as a full mailbox or a content filter would.
package smtptest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one message the server accepted.
type Message struct {
	From string
	To   []string
	Data []byte // the raw RFC 5322 message
}

// Server is an SMTP server listening on 127.0.0.1. Its zero value is not
// usable; call Start.
type Server struct {
	Host string // "127.0.0.1"
	Port int

	srv *smtp.Server
	l   net.Listener

	mu       sync.Mutex
	messages []Message
	refuse   *smtp.SMTPError
	attempts int
	users    []string
	closed   bool
}

// Start starts a server on 127.0.0.1:0 and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{Host: "127.0.0.1"}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{s: s}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.MaxMessageBytes = 64 << 20
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s.srv, s.l = srv, l
	s.Port = l.Addr().(*net.TCPAddr).Port
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return s
}

// Close stops the server now (a later cleanup is a no-op), so its port
// refuses connections.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		_ = s.srv.Close()
		_ = s.l.Close() // Serve may not have taken the listener yet
	}
}

// Usernames lists the users that authenticated (AUTH PLAIN, any password
// accepted and not kept).
func (s *Server) Usernames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.users...)
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Refuse makes the server answer DATA with code and message (e.g. 554
// "transaction failed") until Accept is called. Nothing is captured then.
func (s *Server) Refuse(code int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{5, 0, 0}, Message: msg}
	if code < 500 {
		s.refuse.EnhancedCode = smtp.EnhancedCode{4, 0, 0}
	}
}

// Accept undoes Refuse.
func (s *Server) Accept() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = nil
}

// Messages returns a copy of the accepted messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Attempts counts DATA commands, accepted or refused.
func (s *Server) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

type session struct {
	s    *Server
	from string
	to   []string
}

func (se *session) Reset()        { se.from, se.to = "", nil }
func (se *session) Logout() error { return nil }

func (se *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (se *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, _ string) error {
		se.s.mu.Lock()
		defer se.s.mu.Unlock()
		se.s.users = append(se.s.users, username)
		return nil
	}), nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	se.s.mu.Lock()
	defer se.s.mu.Unlock()
	se.s.attempts++
	if se.s.refuse != nil {
		return se.s.refuse
	}
	if se.from == "" || len(se.to) == 0 {
		return errors.New("smtptest: DATA without MAIL or RCPT")
	}
	se.s.messages = append(se.s.messages, Message{From: se.from, To: append([]string(nil), se.to...), Data: b})
	return nil
}

// Attachment is one decoded attachment of a parsed message.
type Attachment struct {
	FileName    string
	ContentType string
	Data        []byte
}

// Parsed is a message taken apart with net/mail and mime/multipart.
type Parsed struct {
	Header      mail.Header
	Text        string // the text/plain part
	Attachments []Attachment
}

// Parse decodes a captured message (multipart/mixed with base64 or
// quoted-printable parts). It returns an error naming the part that failed.
func Parse(data []byte) (Parsed, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return Parsed{}, fmt.Errorf("smtptest: read message: %w", err)
	}
	p := Parsed{Header: msg.Header}
	err = walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), "", msg.Body, &p)
	return p, err
}

func walk(contentType, encoding, disposition string, body io.Reader, p *Parsed) error {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("smtptest: content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("smtptest: next part: %w", err)
			}
			h := part.Header
			if err := walk(h.Get("Content-Type"), h.Get("Content-Transfer-Encoding"), h.Get("Content-Disposition"), part, p); err != nil {
				return err
			}
		}
	}
	var r io.Reader = body
	switch strings.ToLower(encoding) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, body)
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("smtptest: decode %s part: %w", mediaType, err)
	}
	if _, dp, err := mime.ParseMediaType(disposition); err == nil && dp["filename"] != "" {
		p.Attachments = append(p.Attachments, Attachment{FileName: dp["filename"], ContentType: mediaType, Data: b})
		return nil
	}
	if mediaType == "text/plain" && p.Text == "" {
		p.Text = string(b)
	}
	return nil
}
