package octanetest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/octane"
)

// as is the same simulator seen by another user of the account.
func (c *sim) as(user, pass string) *sim {
	d := *c
	d.user, d.pass = user, pass
	return &d
}

// Several API users of one account: each is accepted with its own password
// only; customers are the account's; a number is its reserving user's to
// select, order and unreserve; an order is queried by its creator only;
// getEsimDetails answers any user.
func TestSeveralCredentials(t *testing.T) {
	t.Parallel()
	base := newSim(t, Config{Credentials: map[string]string{"u1": "p1", "u2": "p2"}, OrderLatency: time.Minute})
	u1, u2 := base.as("u1", "p1"), base.as("u2", "p2")

	for _, tc := range []struct{ name, user, pass string }{
		{"u1 with u2's password", "u1", "p2"},
		{"unknown user", "u3", "p1"},
		{"the default demo user is not added", "demo", "demo"},
	} {
		if r := base.as(tc.user, tc.pass).query("0410000000"); r.text("errorCode") != octane.ErrorCodeLogin {
			t.Errorf("%s: login accepted: %s", tc.name, r.raw)
		}
		if st, _ := base.as(tc.user, tc.pass).rest("group/1/customer", customerJSON(1001)); st != http.StatusUnauthorized {
			t.Errorf("%s: REST status %d, want 401", tc.name, st)
		}
	}

	cust := u1.addCustomer() // the account's customer
	mine := u1.reserve()
	for _, tc := range []struct {
		name string
		res  soapResult
	}{
		{"select", u2.selectMSN(mine)},
		{"unreserve", u2.unreserve(mine)},
	} {
		if tc.res.text("errorCode") == "0" || !strings.Contains(tc.res.text("errorMessage"), "another user") {
			t.Errorf("u2 %s of u1's reserved number: %s", tc.name, tc.res.raw)
		}
	}
	if r := u1.selectMSN(mine); r.text("errorCode") != "0" {
		t.Fatalf("u1 select: %s", r.raw)
	}
	r, err := u2.orderCreate(item{custNo: cust, planNo: "1001", msn: mine, isEsim: "true"})
	if err != nil || r.text("errorCode") == "0" || !strings.Contains(r.text("errorMessage"), "another user") {
		t.Fatalf("u2 ordering u1's selected number: %v %s", err, r.raw)
	}
	if st := base.s.NumberState(mine); st != octane.NumberSelected {
		t.Fatalf("u1's number after u2's attempts: %s, want SELECTED", st)
	}

	// u2 orders its own number for u1's customer; only u2 queries it.
	id, msn := u2.newOrder(cust)
	if r := u1.orderQuery(id); r.text("errorCode") == "0" || !strings.Contains(r.text("errorMessage"), "another user") {
		t.Fatalf("u1 querying u2's order: %s", r.raw)
	}
	if r := u2.orderQuery(id); r.text("errorCode") != "0" || r.text("orderQueryResponse", "status") != octane.StatusOpen {
		t.Fatalf("u2 querying its order: %s", r.raw)
	}
	base.s.Advance(2 * time.Minute)
	if st, out := u1.rest("mobile/resource/getEsimDetails", map[string]any{"requestType": octane.EsimRequestQR, "msn": msn}); st != http.StatusOK || out["activationCode"] == "" {
		t.Fatalf("u1's getEsimDetails of u2's service: %d %v", st, out)
	}
	if o := base.s.Orders(); len(o) != 1 || o[0].Credential != "u2" {
		t.Fatalf("orders %+v, want one, by u2", o)
	}
	for _, e := range base.s.Ledger() {
		if e.Method == octane.MethodOrderCreate && e.Outcome == OutcomeOK && e.Credential != "u2" {
			t.Fatalf("ledger: accepted orderCreate under %q", e.Credential)
		}
	}
}

// Each user has its own rate windows: one user's full window leaves the
// other's whole.
func TestCredentialsHaveTheirOwnRateWindows(t *testing.T) {
	t.Parallel()
	base := newSim(t, Config{Credentials: map[string]string{"u1": "p1", "u2": "p2"},
		Limits: map[string]octane.Limit{octane.MethodReserveResources: {PerMinute: 2, PerHour: 10}}, MinuteWindow: time.Hour})
	u1, u2 := base.as("u1", "p1"), base.as("u2", "p2")
	u1.reserve()
	u1.reserve()
	if r := u1.reserveN(1); r.faultCode != octane.FaultCodeRateLimited {
		t.Fatalf("u1's third reserve in its minute: %s, want fault 233", r.raw)
	}
	u2.reserve()
	u2.reserve()
	if r := u2.reserveN(1); r.faultCode != octane.FaultCodeRateLimited {
		t.Fatalf("u2's third reserve in its minute: %s, want fault 233", r.raw)
	}
	for _, e := range base.s.Ledger() {
		if e.Credential != "u1" && e.Credential != "u2" {
			t.Fatalf("ledger entry without the caller's credential: %+v", e)
		}
	}
}
