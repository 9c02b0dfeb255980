package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
)

// `batch reassign` hands a credential's unstarted rows to another, says
// what stays and why, and a dry run changes nothing.
func TestReassignCommand(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			s, vars := opsStore(t, d.url(t))
			now := time.Now().UTC()
			runID := opsSeed(t, s, now.Add(-time.Hour), "W-1", "W-2", "W-3")
			got, err := s.ClaimPending(ctx, now.Add(-time.Hour), runID, "old", 3, time.Minute)
			mustOK(t, err)
			for i := range got {
				if got[i].SalesRef == "W-3" { // holds a number of old's
					mustOK(t, s.SaveReservations(ctx, runID, "old", now.Add(-time.Hour), []repo.Reservation{{MSN: "0410000033"}}))
					r, err := s.TakeReservation(ctx, runID, &got[i], now.Add(-time.Hour))
					mustOK(t, err)
					mustOK(t, s.MarkSelected(ctx, &got[i], r, now.Add(-time.Hour)))
				}
				mustOK(t, s.Unclaim(ctx, &got[i]))
			}
			mustOK(t, s.FinishRun(ctx, runID, now.Add(-30*time.Minute), "ok", nil, ""))

			for _, args := range [][]string{{"reassign", "--from", "old"}, {"reassign", "--from", "old", "--to", "old"},
				{"reassign", "--from", "old", "--to", "new", "extra"}} {
				if code, _, _, _ := batchCmd(vars, args...); code != exitConfig {
					t.Errorf("%v: exit %d, want 2", args, code)
				}
			}
			code, out, stderr, err := batchCmd(vars, "reassign", "--from", "old", "--to", "new", "--dry-run")
			if code != exitOK {
				t.Fatalf("dry run: exit %d (%v)\n%s%s", code, err, out, stderr)
			}
			for _, want := range []string{"dry run: would move 2 activations from old to new (pending 2)",
				"left with old: 1 (selected 1)"} {
				if !strings.Contains(out, want) {
					t.Errorf("dry run output lacks %q:\n%s", want, out)
				}
			}
			if a := state(t, s, "W-1"); a.Credential != "old" {
				t.Fatalf("the dry run moved W-1 to %q", a.Credential)
			}
			code, out, stderr, err = batchCmd(vars, "reassign", "--from", "old", "--to", "new", "--note", "password withdrawn")
			if code != exitOK || !strings.Contains(out, "moved 2 activations from old to new (pending 2)") {
				t.Fatalf("reassign: exit %d (%v)\n%s%s", code, err, out, stderr)
			}
			for ref, want := range map[string]string{"W-1": "new", "W-2": "new", "W-3": "old"} {
				if a := state(t, s, ref); a.Credential != want {
					t.Errorf("%s owned by %q, want %q", ref, a.Credential, want)
				}
			}
		})
	}
}
