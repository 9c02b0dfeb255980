package main

import (
	"context"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/repo"
)

// seedStatus drives 11 imported rows to a known spread of states, with times
// relative to now: 3 pending, 1 selected on a number reserved 23h30m ago
// (due for release), 1 ordering, 2 submitted (one poll due), 1 completed, 1
// qr_ready, 1 provisioned, 1 failed.
func seedStatus(t *testing.T, s *repo.Store, now time.Time) (base time.Time) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	base = now.Add(-2 * time.Hour)
	rows := make([]repo.NewActivation, 11)
	for i := range rows {
		rows[i] = repo.NewActivation{Line: i + 2, SalesRef: fmt.Sprintf("ST-%02d", i+1), Email: "a@example.com", PlanNo: 1}
	}
	_, err := s.Import(ctx, repo.ImportFile{Name: "st.csv", Hash: "st", DataRows: len(rows)}, rows, nil, base)
	must(err)
	runID, err := s.StartRun(ctx, base, "cred", []string{"submit"}, false)
	must(err)
	claimed, err := s.ClaimPending(ctx, base, runID, "cred", 8, time.Hour)
	must(err)
	if len(claimed) != 8 {
		t.Fatalf("claimed %d rows, want 8", len(claimed))
	}
	sel := func(a *repo.Activation, msn string, reservedAt time.Time) {
		t.Helper()
		must(s.SaveReservations(ctx, runID, "cred", reservedAt, []repo.Reservation{{MSN: msn}}))
		r, err := s.TakeReservation(ctx, runID, a, base)
		must(err)
		must(s.MarkSelected(ctx, a, r, base))
	}
	order := func(a *repo.Activation, msn string, nextPoll time.Time) {
		t.Helper()
		sel(a, msn, base)
		must(s.BeginOrder(ctx, a, repo.LockGuard{}, false, base))
		must(s.OrderAccepted(ctx, a, "ORD-"+msn, base, nextPoll))
	}
	// selected, on an old number.
	sel(&claimed[0], "0400000001", now.Add(-23*time.Hour-30*time.Minute))
	must(s.Unclaim(ctx, &claimed[0]))
	// ordering.
	sel(&claimed[1], "0400000002", base)
	must(s.BeginOrder(ctx, &claimed[1], repo.LockGuard{}, false, base))
	// submitted: one poll due, one not.
	order(&claimed[2], "0400000003", base.Add(10*time.Minute))
	order(&claimed[3], "0400000004", now.Add(time.Hour))
	// completed, qr_ready and provisioned: their polls came first.
	for i := 4; i <= 6; i++ {
		order(&claimed[i], fmt.Sprintf("040000000%d", i+1), base.Add(-time.Hour))
	}
	polls, err := s.ClaimPolls(ctx, base.Add(-30*time.Minute), now.Add(time.Hour), runID, "cred", 10, time.Hour)
	must(err)
	if len(polls) != 3 {
		t.Fatalf("claimed %d polls, want 3", len(polls))
	}
	must(s.OrderCompleted(ctx, &polls[0], "svc1", true, base))
	qr, err := s.ClaimQR(ctx, base, runID, "cred", 1, time.Hour)
	must(err)
	must(s.QRReady(ctx, &qr[0], "LPA:1$x", nil, "", base))
	must(s.OrderCompleted(ctx, &polls[1], "svc2", true, base))
	must(s.OrderCompleted(ctx, &polls[2], "svc3", false, base))
	// failed.
	must(s.Fail(ctx, &claimed[7], "addCustomer", "E1", "invalid", base))
	return base
}

// `batch status` prints the seeded database's numbers: counts by state (each
// checked against the table too), polls and releases due with their times,
// the oldest pending row.
func TestStatusMatchesTheDatabase(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			url := d.url(t)
			s, _ := opsStore(t, url) // migrated; closed at the end of the test
			now := time.Now().UTC()
			base := seedStatus(t, s, now)

			e, out, stderr := testEnv(map[string]string{"DATABASE_URL": url})
			if err := run(ctx, []string{"status"}, e); err != nil {
				t.Fatalf("status: %v\n%s", err, stderr)
			}
			text := out.String()
			got := map[string]int{}
			for _, m := range regexp.MustCompile(`(?m)^  ([a-z_]+) +(\d+)$`).FindAllStringSubmatch(text, -1) {
				n, _ := strconv.Atoi(m[2])
				got[m[1]] = n
			}
			want := map[string]int{"pending": 3, "selected": 1, "ordering": 1, "submitted": 2, "completed": 1,
				"qr_ready": 1, "provisioned": 1, "failed": 1, "cancelled": 0}
			for st, n := range want {
				if got[st] != n {
					t.Errorf("status prints %s %d, want %d", st, got[st], n)
				}
				var inDB int
				if err := s.DB().GetContext(ctx, &inDB, s.DB().Rebind(`SELECT COUNT(*) FROM activations WHERE state = ?`), st); err != nil {
					t.Fatal(err)
				}
				if got[st] != inDB {
					t.Errorf("status prints %s %d, the table has %d", st, got[st], inDB)
				}
			}
			if len(got) != len(want) {
				t.Errorf("status prints states %v, want exactly %v", got, want)
			}
			for _, line := range []string{
				"oldest pending:  " + base.Format(time.RFC3339),
				fmt.Sprintf("polls due:       1 (next %s)", base.Add(10*time.Minute).Format(time.RFC3339)),
				fmt.Sprintf("releases due:    1 (next %s)", now.Add(-30*time.Minute).Format(time.RFC3339)),
			} {
				if !strings.Contains(text, line) {
					t.Errorf("status lacks %q:\n%s", line, text)
				}
			}
		})
	}
}

// dbTime is a time argument as the store writes it (text on SQLite).
func dbTime(s *repo.Store, x time.Time) any {
	x = x.UTC().Truncate(time.Microsecond)
	if s.Dialect() == repo.DialectSQLite {
		return x.Format("2006-01-02 15:04:05.000000")
	}
	return x
}

// `batch status` lists the open orders older than 24 h and the QR codes late
// by more than 24 h: the count, then the 10 oldest, oldest first, and how
// many more; a row 23h59m old is not listed.
func TestStatusListsAttention(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			url := d.url(t)
			s, _ := opsStore(t, url) // migrated; closed at the end of the test
			now := time.Now().UTC()
			ref := func(i int) string {
				if i == 7 {
					return "O-07 \x1b[31mred" // a sales file's text: quoted, never sent to the terminal raw
				}
				return fmt.Sprintf("O-%02d", i)
			}
			var rows []repo.NewActivation
			for i := 1; i <= 13; i++ {
				rows = append(rows, repo.NewActivation{Line: i + 1, SalesRef: ref(i), Email: "a@example.com", PlanNo: 1})
			}
			rows = append(rows, repo.NewActivation{Line: 20, SalesRef: "Q-1", Email: "a@example.com", PlanNo: 1},
				repo.NewActivation{Line: 21, SalesRef: "Q-2", Email: "a@example.com", PlanNo: 1})
			if _, err := s.Import(ctx, repo.ImportFile{Name: "att.csv", Hash: "att", DataRows: len(rows)}, rows, nil, now.Add(-48*time.Hour)); err != nil {
				t.Fatal(err)
			}
			set := func(ref, assign string, args ...any) {
				t.Helper()
				res, err := s.DB().ExecContext(ctx, s.DB().Rebind(`UPDATE activations SET `+assign+` WHERE sales_ref = ?`), append(args, ref)...)
				if err != nil {
					t.Fatal(err)
				}
				if n, _ := res.RowsAffected(); n != 1 {
					t.Fatalf("update %q: %d rows", ref, n)
				}
			}
			since := map[string]time.Time{}
			for i := 1; i <= 12; i++ {
				since[ref(i)] = now.Add(-24*time.Hour - time.Duration(i)*time.Hour)
				set(ref(i), `state = 'submitted', msn = ?, order_id = ?, order_sent_at = ?, poll_count = ?`,
					fmt.Sprintf("04000000%02d", i), fmt.Sprintf("ORD-%d", i), dbTime(s, since[ref(i)]), 2*i)
			}
			set(ref(12), `last_error_message = ?`, "orderQuery: connection reset\nby peer")
			set(ref(13), `state = 'submitted', msn = '0400000013', order_id = 'ORD-13', order_sent_at = ?`,
				dbTime(s, now.Add(-24*time.Hour+time.Minute)))
			since["Q-1"] = now.Add(-24*time.Hour - time.Minute)
			set("Q-1", `state = 'completed', msn = '0400000020', order_id = 'ORD-20', completed_at = ?, poll_count = 5, attempts = 2, last_error_message = 'no QR code yet'`,
				dbTime(s, since["Q-1"]))
			set("Q-2", `state = 'completed', msn = '0400000021', order_id = 'ORD-21', completed_at = ?`,
				dbTime(s, now.Add(-24*time.Hour+time.Minute)))

			e, out, stderr := testEnv(map[string]string{"DATABASE_URL": url})
			if err := run(ctx, []string{"status"}, e); err != nil {
				t.Fatalf("status: %v\n%s", err, stderr)
			}
			text := out.String()
			at := func(ref string) string { return since[ref].Format(time.RFC3339) }
			want := []string{"open orders older than 24 h: 12"}
			for i := 12; i >= 3; i-- {
				line := fmt.Sprintf("  %s  %s  msn 04000000%02d  order ORD-%d  submitted  polls %d", at(ref(i)), ref(i), i, i, 2*i)
				switch i {
				case 12:
					line += `  last error "orderQuery: connection reset\nby peer"`
				case 7:
					line = fmt.Sprintf("  %s  %s  msn 0400000007  order ORD-7  submitted  polls 14", at(ref(i)), `"O-07 \x1b[31mred"`)
				}
				want = append(want, line)
			}
			want = append(want, "  ... and 2 more",
				"QR codes late (over 24 h): 1",
				fmt.Sprintf(`  %s  Q-1  msn 0400000020  order ORD-20  completed  attempts 2  last error "no QR code yet"`, at("Q-1")))
			block := strings.Join(want, "\n") + "\n"
			if !strings.Contains(text, "\n"+block) {
				t.Errorf("status lacks the attention block\nwant:\n%s\ngot:\n%s", block, text)
			}
			if strings.Contains(text, "\x1b") {
				t.Errorf("status wrote a raw escape character from a sales reference")
			}
			for _, ref := range []string{"O-13", "Q-2", "O-02 ", "O-01 "} {
				if strings.Contains(text, ref) {
					t.Errorf("status lists %q: not over 24 h, or past the 10 oldest", ref)
				}
			}
		})
	}
}

// The budget table counts the trailing hour and minute per limited method
// and says when a full window frees its next slot.
func TestBudgetOf(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	limits := map[string]octane.Limit{
		octane.MethodOrderCreate:      {PerMinute: 3, PerHour: 5},
		octane.MethodReserveResources: {PerMinute: 50, PerHour: 500},
	}
	var oc []time.Time
	for _, ago := range []time.Duration{90 * time.Minute, 50 * time.Minute, 40 * time.Minute, 50 * time.Second, 30 * time.Second, 10 * time.Second} {
		oc = append(oc, now.Add(-ago))
	}
	got := budgetOf(map[string][]time.Time{octane.MethodOrderCreate: oc}, limits, now)
	want := []budgetLine{
		{Method: octane.MethodOrderCreate, HourUsed: 5, HourLimit: 5, MinuteUsed: 3, MinuteLim: 3,
			HourFrees: now.Add(-50 * time.Minute).Add(time.Hour), MinuteFrees: now.Add(-50 * time.Second).Add(time.Minute)},
		{Method: octane.MethodReserveResources, HourLimit: 500, MinuteLim: 50},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("budgetOf:\n got  %+v\n want %+v", got, want)
	}
	var b strings.Builder
	printBudget(&b, got)
	if !strings.Contains(b.String(), "5/5") || !strings.Contains(b.String(), "10:10:00") {
		t.Errorf("budget table lacks the counts or the next free slot (10:10:00):\n%s", b.String())
	}
}

// `batch status` shows each credential's rows by state and numbers held,
// the rows no credential has claimed yet, and each credential's budget: of
// every credential that called Octane in the last hour, and of
// OCTANE_USERNAME's even when it has not.
func TestStatusPerCredential(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			url := d.url(t)
			s, _ := opsStore(t, url) // migrated; closed at the end of the test
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			now := time.Now().UTC()
			rows := make([]repo.NewActivation, 6)
			for i := range rows {
				rows[i] = repo.NewActivation{Line: i + 2, SalesRef: fmt.Sprintf("PC-%d", i+1), Email: "a@example.com", PlanNo: 1}
			}
			_, err := s.Import(ctx, repo.ImportFile{Name: "pc.csv", Hash: "pc", DataRows: len(rows)}, rows, nil, now.Add(-time.Hour))
			must(err)
			for _, c := range []struct {
				cred  string
				rows  int
				calls int
			}{{"alpha", 1, 1}, {"beta", 2, 2}} {
				runID, err := s.StartRun(ctx, now, c.cred, []string{"submit"}, false)
				must(err)
				claimed, err := s.ClaimPending(ctx, now, runID, c.cred, c.rows, time.Hour)
				must(err)
				must(s.SaveReservations(ctx, runID, c.cred, now, []repo.Reservation{{MSN: "04" + c.cred}}))
				r, err := s.TakeReservation(ctx, runID, &claimed[0], now)
				must(err)
				must(s.MarkSelected(ctx, &claimed[0], r, now))
				for i := range claimed {
					must(s.Unclaim(ctx, &claimed[i]))
				}
				for range c.calls {
					must(s.RecordCall(ctx, repo.Call{RunID: runID, Credential: c.cred, Method: octane.MethodOrderCreate,
						SentAt: time.Now(), Outcome: "ok"}))
				}
			}
			e, out, stderr := testEnv(map[string]string{"DATABASE_URL": url, "OCTANE_USERNAME": "gamma"})
			if err := run(ctx, []string{"status"}, e); err != nil {
				t.Fatalf("status: %v\n%s", err, stderr)
			}
			text := out.String()
			table := map[string][]string{}
			for _, m := range regexp.MustCompile(`(?m)^  (\(none yet\)|alpha|beta|gamma) +([\d ]+)$`).FindAllStringSubmatch(text, -1) {
				table[m[1]] = strings.Fields(m[2])
			}
			// pending selected ordering submitted completed qr_ready provisioned failed | numbers held
			want := map[string][]string{
				"(none yet)": {"3", "0", "0", "0", "0", "0", "0", "0", "0"},
				"alpha":      {"0", "1", "0", "0", "0", "0", "0", "0", "1"},
				"beta":       {"1", "1", "0", "0", "0", "0", "0", "0", "1"},
			}
			if !reflect.DeepEqual(table, want) {
				t.Errorf("per-credential table %v, want %v:\n%s", table, want, text)
			}
			for _, c := range []struct{ cred, used string }{{"alpha", "1/2000"}, {"beta", "2/2000"}, {"gamma", "0/2000"}} {
				i := strings.Index(text, "Octane budget of "+c.cred+" ")
				if i < 0 {
					t.Errorf("no budget of %s:\n%s", c.cred, text)
					continue
				}
				m := regexp.MustCompile(`(?m)^  orderCreate +(\d+/\d+)`).FindStringSubmatch(text[i:])
				if m == nil || m[1] != c.used {
					t.Errorf("%s's orderCreate budget line %v, want %s used:\n%s", c.cred, m, c.used, text[i:])
				}
			}
		})
	}
}
