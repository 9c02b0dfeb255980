package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/sethvargo/go-envconfig"
)

// secret is a string that never prints: String, LogValue and %v all give ***.
type secret string

func (s secret) String() string       { return redact(string(s)) }
func (s secret) LogValue() slog.Value { return slog.StringValue(redact(string(s))) }
func (s secret) GoString() string     { return redact(string(s)) }

// Reveal returns the secret for the one place that needs it.
func (s secret) Reveal() string { return string(s) }

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "***"
}

// config is the one configuration struct, decoded once from the environment
// (names in the README), validated, passed down.
type config struct {
	DatabaseURL string `env:"DATABASE_URL"`

	Octane struct {
		SOAPURL   string `env:"SOAP_URL"`
		RESTURL   string `env:"REST_URL"`
		Username  string `env:"USERNAME"`
		Password  secret `env:"PASSWORD"`
		GroupNo   int    `env:"GROUP_NO"`
		QRByEmail bool   `env:"QR_BY_EMAIL, default=false"`
	} `env:", prefix=OCTANE_"`

	BatchSize       int           `env:"BATCH_SIZE, default=50"`
	MaxSubmitPerRun int           `env:"MAX_SUBMIT_PER_RUN, default=2000"`
	ReserveBatch    int           `env:"RESERVE_BATCH, default=4"`
	PollInterval    time.Duration `env:"POLL_INTERVAL, default=30m"`
	ReleaseAfter    time.Duration `env:"RELEASE_AFTER, default=23h"`
	ImportDir       string        `env:"IMPORT_DIR"`

	SMTP struct {
		Host     string `env:"HOST"`
		Port     int    `env:"PORT, default=587"`
		Username string `env:"USERNAME"`
		Password secret `env:"PASSWORD"`
		From     string `env:"FROM"`
	} `env:", prefix=SMTP_"`

	Report struct {
		To       []string `env:"TO"`
		Dir      string   `env:"DIR, default=esimbatch-reports"`
		Password secret   `env:"PASSWORD"`
		// SendEmpty sends a "nothing new" email when a pass has nothing to
		// report, so a silent inbox means a stopped job, not a quiet day.
		SendEmpty bool `env:"SEND_EMPTY, default=false"`
	} `env:", prefix=REPORT_"`

	// RunDeadline bounds one pass; keep it under the CronJob's
	// activeDeadlineSeconds so the pass records itself before the kill.
	RunDeadline time.Duration `env:"RUN_DEADLINE, default=9m"`
	// TimeOffset shifts the job's clock, only against a loopback Octane
	// (black-box tests against `batch sim`).
	TimeOffset time.Duration `env:"BATCH_TIME_OFFSET, default=0s"`
	// LogFormat is json (default, for production) or text.
	LogFormat string `env:"LOG_FORMAT, default=json"`

	// PushgatewayURL: where `batch run` pushes its metrics after the pass
	// (empty: no push). It may carry basic auth (https://user:pw@host), so
	// it is a secret, logged with its user info masked.
	PushgatewayURL secret `env:"PUSHGATEWAY_URL"`
	// MetricsAddr: host:port where `batch schedule` serves /metrics and
	// /healthz (empty: no server).
	MetricsAddr string `env:"METRICS_ADDR"`

	// Schedules for `batch schedule`: one 5-field UTC cron spec per phase,
	// staggered like jobs.DefaultSchedules (a test keeps them equal).
	Schedule struct {
		Import  string `env:"IMPORT, default=1-59/15 * * * *"`
		Release string `env:"RELEASE, default=18 * * * *"`
		Submit  string `env:"SUBMIT, default=*/10 * * * *"`
		Poll    string `env:"POLL, default=2-59/5 * * * *"`
		QR      string `env:"QR, default=4-59/5 * * * *"`
		Report  string `env:"REPORT, default=5 * * * *"`
	} `env:", prefix=SCHEDULE_"`
}

// schedules returns the per-phase cron specs.
func (c *config) schedules() map[string]string {
	return map[string]string{
		"import": c.Schedule.Import, "release": c.Schedule.Release, "submit": c.Schedule.Submit,
		"poll": c.Schedule.Poll, "qr": c.Schedule.QR, "report": c.Schedule.Report,
	}
}

// LogValue is the redacted view of the configuration logged at start: no
// password, and the database URL without its credentials.
func (c *config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("database", redactURL(c.DatabaseURL)),
		slog.String("octane_soap_url", redactURL(c.Octane.SOAPURL)),
		slog.String("octane_rest_url", redactURL(c.Octane.RESTURL)),
		slog.String("octane_username", c.Octane.Username),
		slog.Any("octane_password", c.Octane.Password),
		slog.Int("octane_group_no", c.Octane.GroupNo),
		slog.Bool("octane_qr_by_email", c.Octane.QRByEmail),
		slog.Int("batch_size", c.BatchSize),
		slog.Int("max_submit_per_run", c.MaxSubmitPerRun),
		slog.Int("reserve_batch", c.ReserveBatch),
		slog.Duration("poll_interval", c.PollInterval),
		slog.Duration("release_after", c.ReleaseAfter),
		slog.Duration("run_deadline", c.RunDeadline),
		slog.Duration("time_offset", c.TimeOffset),
		slog.String("import_dir", c.ImportDir),
		slog.String("smtp_host", c.SMTP.Host),
		slog.Int("smtp_port", c.SMTP.Port),
		slog.String("smtp_username", c.SMTP.Username),
		slog.Any("smtp_password", c.SMTP.Password),
		slog.String("smtp_from", c.SMTP.From),
		slog.Any("report_to", c.Report.To),
		slog.String("report_dir", c.Report.Dir),
		slog.Any("report_password", c.Report.Password),
		slog.String("pushgateway_url", redactURL(c.PushgatewayURL.Reveal())),
		slog.String("metrics_addr", c.MetricsAddr),
	)
}

// redactURL drops the user info of a URL (a SQLite path is returned as is).
func redactURL(s string) string {
	// A password can also ride in a query or a key=value DSN
	// ("?password=..." or "host=db password=...").
	s = passwordParam.ReplaceAllString(s, "${1}***")
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		// A URL that does not parse (a password with a stray % or space,
		// say) may still carry credentials: cut them out by hand.
		if i := strings.Index(s, "://"); i >= 0 {
			if j := strings.LastIndex(s, "@"); j > i {
				return s[:i+3] + "***" + s[j:]
			}
		}
		return s
	}
	if u.User != nil {
		u.User = nil
		return strings.Replace(u.String(), "://", "://***@", 1)
	}
	return s
}

var passwordParam = regexp.MustCompile(`(?i)(password=)[^&\s]*`)

// loadConfig decodes and validates the environment. Errors are configError.
func loadConfig(ctx context.Context, lookup func(string) (string, bool)) (*config, error) {
	cfg, err := decodeConfig(ctx, lookup)
	if err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, configError{err}
	}
	return cfg, nil
}

// decodeConfig decodes the environment without validating it (batch
// config shows what is wrong rather than stop at it). Errors: configError
// naming the variable that does not decode.
func decodeConfig(ctx context.Context, lookup func(string) (string, bool)) (*config, error) {
	var cfg config
	err := envconfig.ProcessWith(ctx, &envconfig.Config{
		Target:   &cfg,
		Lookuper: envconfig.LookuperFunc(func(k string) (string, bool) { return lookup(k) }),
	})
	if err != nil {
		return nil, configError{fmt.Errorf("configuration: %s: %w", envNameOf(err), err)}
	}
	return &cfg, nil
}

// validate checks what every command needs; per-command requirements (the
// Octane credential for run) are checked by requireOctane.
func (c *config) validate() error {
	var errs []error
	if c.PollInterval < 30*time.Minute {
		errs = append(errs, fmt.Errorf("POLL_INTERVAL: %s is below the 30m minimum Octane asks for", c.PollInterval))
	}
	if c.ReleaseAfter <= 0 || c.ReleaseAfter >= 24*time.Hour {
		errs = append(errs, fmt.Errorf("RELEASE_AFTER: %s must be above 0 and below 24h (reservations lapse at 24h)", c.ReleaseAfter))
	}
	if c.ReserveBatch < 1 || c.ReserveBatch > 5 {
		errs = append(errs, fmt.Errorf("RESERVE_BATCH: %d must be 1 to 5", c.ReserveBatch))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("BATCH_SIZE: %d must be positive", c.BatchSize))
	}
	if c.MaxSubmitPerRun < 0 {
		errs = append(errs, fmt.Errorf("MAX_SUBMIT_PER_RUN: %d must not be negative", c.MaxSubmitPerRun))
	}
	if c.RunDeadline <= 0 {
		errs = append(errs, fmt.Errorf("RUN_DEADLINE: %s must be positive", c.RunDeadline))
	}
	if strings.TrimSpace(c.DatabaseURL) != "" {
		if _, _, err := repo.DialectOf(c.DatabaseURL); err != nil {
			errs = append(errs, fmt.Errorf("DATABASE_URL: %w", err)) // the text never quotes the URL
		}
	}
	if c.SMTP.Port < 1 || c.SMTP.Port > 65535 {
		errs = append(errs, fmt.Errorf("SMTP_PORT: %d is not a port", c.SMTP.Port))
	}
	if c.SMTP.Host != "" && len(c.Report.To) == 0 {
		errs = append(errs, errors.New("REPORT_TO: required when SMTP_HOST is set"))
	}
	if c.SMTP.Host != "" && c.SMTP.From == "" {
		errs = append(errs, errors.New("SMTP_FROM: required when SMTP_HOST is set"))
	}
	errs = append(errs, c.validateMetrics()...)
	switch c.LogFormat {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("LOG_FORMAT: %q must be json or text", c.LogFormat))
	}
	if c.TimeOffset != 0 {
		for name, u := range map[string]string{"OCTANE_SOAP_URL": c.Octane.SOAPURL, "OCTANE_REST_URL": c.Octane.RESTURL} {
			if !isLoopbackURL(u) {
				errs = append(errs, fmt.Errorf("BATCH_TIME_OFFSET: refused because %s (%q) is not a loopback address", name, u))
			}
		}
	}
	return errors.Join(errs...)
}

// requireOctane checks the settings a command that talks to Octane needs.
func (c *config) requireOctane() error {
	var errs []error
	for _, v := range []struct{ name, value string }{
		{"DATABASE_URL", c.DatabaseURL},
		{"OCTANE_SOAP_URL", c.Octane.SOAPURL},
		{"OCTANE_REST_URL", c.Octane.RESTURL},
		{"OCTANE_USERNAME", c.Octane.Username},
		{"OCTANE_PASSWORD", c.Octane.Password.Reveal()},
	} {
		if strings.TrimSpace(v.value) == "" {
			errs = append(errs, fmt.Errorf("%s: required", v.name))
		}
	}
	if c.Octane.GroupNo <= 0 {
		errs = append(errs, fmt.Errorf("OCTANE_GROUP_NO: %d must be a positive wholesaler group number", c.Octane.GroupNo))
	}
	for _, v := range []struct{ name, value string }{{"OCTANE_SOAP_URL", c.Octane.SOAPURL}, {"OCTANE_REST_URL", c.Octane.RESTURL}} {
		if v.value == "" {
			continue
		}
		u, err := url.Parse(v.value)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			errs = append(errs, fmt.Errorf("%s: %q is not an http(s) URL", v.name, v.value))
		case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
			// The credential travels in every request: plain HTTP only to
			// a simulator on this machine.
			errs = append(errs, fmt.Errorf("%s: %q must use https (plain http only for a loopback simulator)", v.name, v.value))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return configError{err}
	}
	return nil
}

// isLoopbackURL reports whether u's host is a loopback address or localhost.
func isLoopbackURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return false
	}
	return isLoopbackHost(p.Hostname())
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// envNameOf finds the variable an envconfig error is about. go-envconfig names
// the Go field ("PollInterval: time: invalid duration"); operators know the
// variable, so map the field back to it through the struct tags.
func envNameOf(err error) string {
	msg := err.Error()
	var found string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("env")
			name, opts, _ := strings.Cut(tag, ",")
			if f.Type.Kind() == reflect.Struct && name == "" {
				p := strings.TrimPrefix(strings.TrimSpace(opts), "prefix=")
				walk(f.Type, prefix+p)
				continue
			}
			if name != "" && found == "" && strings.Contains(msg, f.Name+":") {
				found = prefix + name
			}
		}
	}
	walk(reflect.TypeOf(config{}), "")
	if found == "" {
		return "environment"
	}
	return found
}
