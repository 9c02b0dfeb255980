package jobs_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/esimbatch/esimbatch/jobs"
	"github.com/esimbatch/esimbatch/octane/octanetest"
	"github.com/esimbatch/esimbatch/repo"
)

// A row stored before the import required a name (no cust_no, no name)
// fails at addCustomer without a request: the client refuses to send it,
// and the row says so with its own code, never "transport", which would
// send an operator looking for an outage.
func TestNamelessCustomerFailsAsNotSent(t *testing.T) {
	h := newHarness(t, octanetest.Faults{})
	ctx := context.Background()
	rows := []repo.NewActivation{{Line: 2, SalesRef: "NONAME-1", Email: "x@example.com", PlanNo: 1001, SIMType: "esim"}}
	if _, err := h.store.Import(ctx, repo.ImportFile{Name: "old.csv", Hash: fmt.Sprint(rand.Int64()), DataRows: 1}, rows, nil, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.runner(h.client("secret")).Pass(ctx, []string{jobs.PhaseSubmit}); err != nil {
		t.Fatal(err)
	}
	a, err := h.store.ActivationByRef(ctx, "NONAME-1")
	if err != nil {
		t.Fatal(err)
	}
	if a.State != repo.StateFailed || a.LastErrorStep != string(repo.StepCustomer) || a.LastErrorCode != "not_sent" {
		t.Fatalf("row is %s at %q with code %q (%s), want failed at addCustomer with not_sent",
			a.State, a.LastErrorStep, a.LastErrorCode, a.LastErrorMessage)
	}
	for _, c := range h.sim.Ledger() {
		if c.Method == "addCustomer" {
			t.Errorf("the simulator received an addCustomer call: %+v", c)
		}
	}
}
