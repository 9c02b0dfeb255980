package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func lookupMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(context.Background(), lookupMap(nil))
	if err != nil {
		t.Fatalf("loadConfig with an empty environment: %v", err)
	}
	if cfg.PollInterval != 30*time.Minute || cfg.ReleaseAfter != 23*time.Hour {
		t.Errorf("poll %s release %s, want 30m and 23h", cfg.PollInterval, cfg.ReleaseAfter)
	}
	if cfg.ReserveBatch < 1 || cfg.ReserveBatch > 5 || cfg.BatchSize < 1 {
		t.Errorf("reserve batch %d, batch size %d: out of range", cfg.ReserveBatch, cfg.BatchSize)
	}
	if cfg.Octane.QRByEmail {
		t.Error("OCTANE_QR_BY_EMAIL defaults to true, want false (we fetch the QR)")
	}
}

func TestLoadConfigRejects(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string
	}{
		{"poll below 30m", map[string]string{"POLL_INTERVAL": "29m"}, "POLL_INTERVAL"},
		{"release at 24h", map[string]string{"RELEASE_AFTER": "24h"}, "RELEASE_AFTER"},
		{"release zero", map[string]string{"RELEASE_AFTER": "0s"}, "RELEASE_AFTER"},
		{"reserve batch 6", map[string]string{"RESERVE_BATCH": "6"}, "RESERVE_BATCH"},
		{"reserve batch 0", map[string]string{"RESERVE_BATCH": "0"}, "RESERVE_BATCH"},
		{"batch size 0", map[string]string{"BATCH_SIZE": "0"}, "BATCH_SIZE"},
		{"not a duration", map[string]string{"POLL_INTERVAL": "soon"}, "POLL_INTERVAL"},
		{"smtp without recipients", map[string]string{"SMTP_HOST": "mail.example.com", "SMTP_FROM": "a@example.com"}, "REPORT_TO"},
		{"time offset against a real host", map[string]string{
			"BATCH_TIME_OFFSET": "1h",
			"OCTANE_SOAP_URL":   "https://benzine.telcoinabox.com/tiab",
			"OCTANE_REST_URL":   "http://127.0.0.1:8085/tiab/api",
		}, "OCTANE_SOAP_URL"},
		{"bad log format", map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(context.Background(), lookupMap(tt.env))
			if err == nil {
				t.Fatal("loadConfig accepted it")
			}
			if exitCode(err) != exitConfig {
				t.Errorf("exit code %d, want %d", exitCode(err), exitConfig)
			}
			if !strings.Contains(err.Error(), tt.wantVar) {
				t.Errorf("error %q does not name %s", err, tt.wantVar)
			}
		})
	}
}

func TestTimeOffsetAllowedOnLoopback(t *testing.T) {
	_, err := loadConfig(context.Background(), lookupMap(map[string]string{
		"BATCH_TIME_OFFSET": "25h",
		"OCTANE_SOAP_URL":   "http://127.0.0.1:8085/tiab",
		"OCTANE_REST_URL":   "http://localhost:8085/tiab/api",
	}))
	if err != nil {
		t.Fatalf("loopback time offset refused: %v", err)
	}
}

func TestRequireOctaneRefusesPlainHTTPToARealHost(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL": "x.db", "OCTANE_USERNAME": "u", "OCTANE_PASSWORD": "p", "OCTANE_GROUP_NO": "7",
		"OCTANE_SOAP_URL": "http://benzine.telcoinabox.com/tiab", "OCTANE_REST_URL": "http://127.0.0.1:8085/tiab/api",
	}
	cfg, err := loadConfig(context.Background(), lookupMap(env))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.requireOctane()
	if err == nil || !strings.Contains(err.Error(), "OCTANE_SOAP_URL") || strings.Contains(err.Error(), "OCTANE_REST_URL") {
		t.Fatalf("requireOctane = %v, want only OCTANE_SOAP_URL refused", err)
	}
	env["OCTANE_SOAP_URL"] = "https://benzine.telcoinabox.com/tiab"
	if cfg, err = loadConfig(context.Background(), lookupMap(env)); err != nil {
		t.Fatal(err)
	}
	if err := cfg.requireOctane(); err != nil {
		t.Fatalf("https and loopback http refused: %v", err)
	}
}

func TestRequireOctane(t *testing.T) {
	cfg, err := loadConfig(context.Background(), lookupMap(map[string]string{"OCTANE_SOAP_URL": "ftp://x/tiab"}))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.requireOctane()
	if exitCode(err) != exitConfig {
		t.Fatalf("requireOctane: %v (exit %d), want a configuration error", err, exitCode(err))
	}
	for _, name := range []string{"DATABASE_URL", "OCTANE_USERNAME", "OCTANE_PASSWORD", "OCTANE_REST_URL", "OCTANE_SOAP_URL"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	cfg, err := loadConfig(context.Background(), lookupMap(map[string]string{
		"OCTANE_PASSWORD": "hunter2", "SMTP_PASSWORD": "mailpw", "REPORT_PASSWORD": "xlsxpw",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v %+v %#v %s", cfg, cfg, cfg, cfg.Octane.Password)
	slog.New(slog.NewTextHandler(&b, nil)).Info("config", "cfg", cfg, "pw", cfg.SMTP.Password)
	for _, s := range []string{"hunter2", "mailpw", "xlsxpw"} {
		if strings.Contains(b.String(), s) {
			t.Errorf("secret %q printed: %s", s, b.String())
		}
	}
	if cfg.Octane.Password.Reveal() != "hunter2" {
		t.Error("Reveal lost the secret")
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"password", "postgres://u:pw@db:5432/x?sslmode=disable", "postgres://***@db:5432/x?sslmode=disable"},
		{"password in the query", "postgres://db/x?sslmode=require&password=pw&user=u", "postgres://db/x?sslmode=require&password=***&user=u"},
		{"key=value DSN", "host=db user=u password=pw dbname=x", "host=db user=u password=*** dbname=x"},
		{"no userinfo", "postgres://db/x", "postgres://db/x"},
		{"sqlite path", "/var/lib/batch.db", "/var/lib/batch.db"},
		{"bad escape", "postgres://u:pa%zz@db/x", "postgres://***@db/x"},
		{"space", "postgres://u:p ss@db/x", "postgres://***@db/x"},
		{"hash", "postgres://u:p#ss@db/x", "postgres://***@db/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redactURL(tt.in); got != tt.want {
				t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestUnknownCommandIsConfigError(t *testing.T) {
	var out strings.Builder
	err := run(context.Background(), []string{"frobnicate"}, env{lookup: lookupMap(nil), stdout: &out, stderr: &out})
	if !errors.As(err, new(configError)) || exitCode(err) != exitConfig {
		t.Fatalf("unknown command: %v (exit %d), want exit 2", err, exitCode(err))
	}
	if !strings.Contains(out.String(), "usage: batch") {
		t.Errorf("no usage printed: %q", out.String())
	}
}
