package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/reports"
)

func TestReportOptions(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want jobs.ReportOptions
	}{
		{"no SMTP: .eml files under the default REPORT_DIR", nil,
			jobs.ReportOptions{Dir: "esimbatch-reports"}},
		{"a nothing-new email when a pass has nothing", map[string]string{"REPORT_SEND_EMPTY": "true"},
			jobs.ReportOptions{Dir: "esimbatch-reports", SendEmpty: true}},
		{"no SMTP, encrypted workbooks", map[string]string{"REPORT_DIR": "/var/reports", "REPORT_PASSWORD": "xlsx-pw"},
			jobs.ReportOptions{Dir: "/var/reports", Password: "xlsx-pw"}},
		{"SMTP", map[string]string{
			"SMTP_HOST": "smtp.example.com", "SMTP_PORT": "465", "SMTP_USERNAME": "bot", "SMTP_PASSWORD": "mail-pw",
			"SMTP_FROM": "esimbatch@example.com", "REPORT_TO": "finance@example.com,ops@example.com",
		}, jobs.ReportOptions{
			Dir:  "esimbatch-reports",
			SMTP: &reports.SMTPConfig{Host: "smtp.example.com", Port: 465, Username: "bot", Password: "mail-pw"},
			From: "esimbatch@example.com", To: []string{"finance@example.com", "ops@example.com"},
		}},
		{"SMTP default port", map[string]string{"SMTP_HOST": "127.0.0.1", "SMTP_FROM": "a@example.com", "REPORT_TO": "b@example.com"},
			jobs.ReportOptions{Dir: "esimbatch-reports", SMTP: &reports.SMTPConfig{Host: "127.0.0.1", Port: 587},
				From: "a@example.com", To: []string{"b@example.com"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(context.Background(), lookupMap(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := reportOptions(cfg); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("reportOptions = %+v (smtp %+v)\nwant %+v (smtp %+v)", got, got.SMTP, tt.want, tt.want.SMTP)
			}
		})
	}
}

func TestImportPhaseWithoutImportDir(t *testing.T) {
	cfg, err := loadConfig(context.Background(), lookupMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	counts, err := importPhase(cfg, nil, slog.New(slog.NewTextHandler(&log, nil)))(context.Background(), time.Now())
	if err != nil || counts["skipped"] != 1 {
		t.Fatalf("counts %v, err %v; want skipped", counts, err)
	}
	if !strings.Contains(log.String(), "IMPORT_DIR is not set") {
		t.Errorf("no log line says why the import phase was skipped: %q", log.String())
	}
}

// TestScheduleStopsCleanly starts `batch schedule` against a migrated store
// and stops it as SIGTERM would: it exits 0 after logging its start.
func TestScheduleStopsCleanly(t *testing.T) {
	vars, _, _ := runEnv(t, "pw", 2*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	log := &signalWriter{match: `msg="schedule started"`, seen: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"schedule"}, env{lookup: testEnvLookup(vars), stdout: io.Discard, stderr: log})
	}()
	select {
	case <-log.seen:
	case err := <-done:
		t.Fatalf("schedule ended before it started: %v\n%s", err, log)
	case <-time.After(10 * time.Second):
		t.Fatalf("schedule never started:\n%s", log)
	}
	cancel()
	select {
	case err := <-done:
		if code := exitCode(err); code != exitOK {
			t.Fatalf("schedule stopped with exit %d (%v)", code, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("schedule did not stop")
	}
}

// JSON logs carry durations as Go duration strings, not nanoseconds.
func TestLogDurationsAsText(t *testing.T) {
	var b bytes.Buffer
	log := newLogger(&config{LogFormat: "json"}, &b)
	log.Info("x", "wait", 1500*time.Millisecond, slog.Group("g", slog.Duration("d", time.Minute)))
	var got struct {
		Wait string `json:"wait"`
		G    struct {
			D string `json:"d"`
		} `json:"g"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, b.String())
	}
	if got.Wait != "1.5s" || got.G.D != "1m0s" {
		t.Fatalf("durations logged as %q and %q, want 1.5s and 1m0s: %s", got.Wait, got.G.D, b.String())
	}
}
