package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/push"
)

// Job is the Pushgateway job name; the grouping key adds the credential.
const Job = "esimbatch"

// Gateway is a Pushgateway address from PUSHGATEWAY_URL: the URL without its
// user info, and the basic auth the user info carried. It prints (String,
// LogValue) with the user info masked, and its errors never quote it.
type Gateway struct {
	url            string // no user info
	user, password string
	auth           bool
}

// ParseGateway checks a PUSHGATEWAY_URL: an absolute http(s) URL with a host,
// optionally with user:password for basic auth, which plain http may carry
// only to a loopback host (a password must not cross a network in clear).
// An error says what is wrong without quoting the URL, which may hold a
// password.
func ParseGateway(raw string) (Gateway, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return Gateway{}, errors.New("not a URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Gateway{}, errors.New("want an http(s) URL with a host, such as http://pushgateway:9091")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Gateway{}, errors.New("no query or fragment: the grouping key is added to the path")
	}
	g := Gateway{}
	if u.User != nil {
		g.auth = true
		g.user = u.User.Username()
		g.password, _ = u.User.Password()
		if u.Scheme == "http" && !loopback(u.Hostname()) {
			return Gateway{}, errors.New("basic auth over plain http only to a loopback host: use https")
		}
		u.User = nil
	}
	g.url = strings.TrimRight(u.String(), "/")
	return g, nil
}

func loopback(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// String is the URL with its user info masked.
func (g Gateway) String() string {
	if !g.auth {
		return g.url
	}
	return strings.Replace(g.url, "://", "://***@", 1)
}

// GoString is String, so %#v shows no password either.
func (g Gateway) GoString() string { return g.String() }

// LogValue is String: the password never reaches a log line.
func (g Gateway) LogValue() slog.Value { return slog.StringValue(g.String()) }

// Push sends every family to the Pushgateway under job Job and grouping
// label credential (the Octane user name, never the password) with POST
// (push's Add): the Pushgateway replaces the families pushed and keeps the
// others of the group. So a failed run, which has no LastSuccess to push,
// leaves the time of the last success in place, where PUT (push's Push)
// would delete it with everything else in the group. timeout bounds the
// whole push (0: 10s). Errors name the URL masked; they never carry its
// password.
func (m *Metrics) Push(ctx context.Context, g Gateway, credential string, timeout time.Duration) error {
	if g.url == "" {
		return errors.New("metrics: no Pushgateway URL")
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := push.New(g.url, Job).Grouping("credential", credential).Gatherer(m.reg).
		Client(&http.Client{Timeout: timeout})
	if g.auth {
		p = p.BasicAuth(g.user, g.password)
	}
	if err := p.AddContext(ctx); err != nil {
		return fmt.Errorf("metrics: push to %s: %w", g, err)
	}
	return nil
}
