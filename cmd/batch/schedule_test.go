package main

import (
	"context"
	"testing"
)

// Every bad SCHEDULE_<PHASE> is bad configuration (exit 2), found before
// anything is opened; none may panic the process.
func TestScheduleRefusesBadSpecs(t *testing.T) {
	base := map[string]string{
		"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "OCTANE_SOAP_URL": "http://127.0.0.1:1/tiab",
		"OCTANE_REST_URL": "http://127.0.0.1:1/tiab/api", "OCTANE_USERNAME": "u", "OCTANE_PASSWORD": "p",
		"OCTANE_GROUP_NO": "1",
	}
	tests := []struct {
		name, key, spec string
	}{
		{"words", "SCHEDULE_SUBMIT", "every ten minutes"},
		{"six fields", "SCHEDULE_POLL", "0 */5 * * * *"},
		{"four fields", "SCHEDULE_QR", "*/5 * * *"},
		{"minute out of range", "SCHEDULE_RELEASE", "61 * * * *"},
		{"TZ without a schedule (cron #554 panics)", "SCHEDULE_SUBMIT", "TZ=0"},
		{"CRON_TZ moves the schedule off UTC", "SCHEDULE_REPORT", "CRON_TZ=Australia/Sydney 0 * * * *"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{tt.key: tt.spec}
			for k, v := range base {
				vars[k] = v
			}
			e, _, stderr := testEnv(vars)
			err := run(context.Background(), []string{"schedule"}, e)
			if got := exitCode(err); got != exitConfig {
				t.Fatalf("%s=%q: exit %d (%v), want %d; stderr:\n%s", tt.key, tt.spec, got, err, exitConfig, stderr)
			}
		})
	}
}
