package jobs

import (
	"slices"
	"strings"
	"testing"

	"github.com/esimbatch/esimbatch/repo"
)

// Every entry of failureTable is reached by the failure it is written for
// (no entry hides behind an earlier one), names a real step and gives
// advice; our own failures leave Octane's columns blank and carry our
// message in the reason, Octane's keep its code and message apart.
func TestFailureTable(t *testing.T) {
	for i, f := range failureTable {
		code := f.code
		if code == "" {
			code = "E042" // any code of Octane's
		}
		step := f.step
		if step == "" {
			step = repo.StepSelect // a step no entry names
		}
		if f.step != "" && !slices.Contains(repo.Steps(), f.step) {
			t.Errorf("entry %d: step %q is not a repo.Step", i, f.step)
		}
		if f.reason == "" || f.advice == "" {
			t.Errorf("entry %d (%s at %s): no reason or no advice", i, f.code, f.step)
		}
		oc, om, reason, advice := describeFailure(string(step), code, "the message")
		if !strings.HasPrefix(reason, f.reason) || advice != f.advice {
			t.Errorf("entry %d (%s at %s) is not the one applied: reason %q, advice %q", i, code, step, reason, advice)
		}
		if ourCodes[code] {
			if oc != "" || om != "" || reason != f.reason+": the message" {
				t.Errorf("our %s: Octane code %q, message %q, reason %q; want Octane's blank and our message in the reason", code, oc, om, reason)
			}
		} else if oc != code || om != "the message" || reason != f.reason {
			t.Errorf("Octane's %s at %s: code %q, message %q, reason %q; want Octane's code and message apart from our reason", code, step, oc, om, reason)
		}
	}
}

func TestDescribeFailure(t *testing.T) {
	tests := []struct {
		name                   string
		step, code, msg        string
		wantCode, wantMsg      string
		wantReason, wantAdvice string // reason exact, advice a substring
	}{
		{"Octane refused the order: check the plan", "orderCreate", "E042", "plan not allowed",
			"E042", "plan not allowed", "Octane refused the order", "Check the plan"},
		{"order rejected later: ask Octane, then retry", "orderQuery", "REJECTED", "credit check",
			"REJECTED", "credit check", "Octane rejected or cancelled the order after accepting it", "batch retry"},
		{"no answer: re-drive", "reserveResources", "transport", "connection reset",
			"", "", "No answer from Octane: connection reset", "re-drive with `batch retry`"},
		{"no answer to addCustomer: look before retrying", "addCustomer", "transport", "timeout",
			"", "", "No answer from Octane to addCustomer: the customer may have been created: timeout", "Look the customer up"},
		{"never sent", "addCustomer", "not_sent", "octane addCustomer: invalid request: no customer name",
			"", "", "Never sent to Octane: octane addCustomer: invalid request: no customer name", "Fix what the reason names"},
		{"reconcile review: ask Octane", "reconcile", "review", "number AVAILABLE",
			"", "", "An order may exist for this number: number AVAILABLE", "Ask Octane"},
		{"unknown Octane code elsewhere", "selectResource", "999", "odd",
			"999", "odd", "Octane refused the request", "Ask Octane"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg, reason, advice := describeFailure(tt.step, tt.code, tt.msg)
			if code != tt.wantCode || msg != tt.wantMsg || reason != tt.wantReason || !strings.Contains(advice, tt.wantAdvice) {
				t.Errorf("describeFailure(%s, %s, %q) = %q, %q, %q, %q\nwant %q, %q, %q, advice with %q",
					tt.step, tt.code, tt.msg, code, msg, reason, advice, tt.wantCode, tt.wantMsg, tt.wantReason, tt.wantAdvice)
			}
		})
	}
}
