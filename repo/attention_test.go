package repo_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/repo/repotest"
)

// setRow runs "UPDATE activations SET <set> WHERE sales_ref = ref" with ?
// placeholders; time.Time arguments go through the store's own conversion.
func setRow(t *testing.T, s *repo.Store, ref, set string, args ...any) {
	t.Helper()
	for i, a := range args {
		if x, ok := a.(time.Time); ok {
			args[i] = s.DBTime(x)
		}
	}
	res, err := s.DB().ExecContext(context.Background(), s.DB().Rebind(`UPDATE activations SET `+set+` WHERE sales_ref = ?`),
		append(args, ref)...)
	must(t, err)
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("update %s: %d rows", ref, n)
	}
}

// refs lists the rows' sales references, in order.
func refs(rows []repo.AttentionRow) string {
	var out []string
	for _, r := range rows {
		out = append(out, r.SalesRef)
	}
	return strings.Join(out, ",")
}

// seedAttention builds, through the real transitions, rows in every state
// that matters, then sets their times relative to now with plain SQL:
//
//	att-1  submitted, sent now-24h01m, updated a minute ago     listed
//	att-2  submitted, sent now-23h59m, updated 5 days ago        not listed
//	att-3  submitted, sent now-3d, 144 polls, 2 attempts, error  listed, oldest
//	att-4  submitted, no send time, updated now-2d               listed (fallback)
//	att-5  submitted, sent exactly now-24h                       not listed
//	att-6  completed now-24h01m                                  QR late
//	att-7  completed now-23h59m                                  not listed
//	att-8  completed now-30h, 3 attempts, error                  QR late, oldest
//	att-9  provisioned 5 days ago                                never listed
//	att-10 pending 5 days                                        never listed
//	att-11 failed 5 days ago                                     never listed
//	att-12 qr_ready 5 days ago                                   never listed
//	att-13 submitted, sent now-3d (att-3's time, higher id)      listed after att-3
func seedAttention(t *testing.T, s *repo.Store, now time.Time) {
	t.Helper()
	ctx := context.Background()
	runID := seed(t, s, "att", 13)
	for i := 1; i <= 9; i++ {
		toSubmitted(t, s, t0, runID, fmt.Sprintf("04100000%02d", i))
	}
	polls, err := s.ClaimPolls(ctx, t0.Add(30*time.Minute), t0.Add(time.Hour), runID, "cred", 100, lease)
	must(t, err)
	if len(polls) != 9 {
		t.Fatalf("claimed %d polls, want 9", len(polls))
	}
	for i := range polls {
		a := &polls[i]
		switch a.SalesRef {
		case "att-6", "att-7", "att-8":
			must(t, s.OrderCompleted(ctx, a, "svc", true, t0.Add(time.Hour)))
		case "att-9":
			must(t, s.OrderCompleted(ctx, a, "svc", false, t0.Add(time.Hour)))
		default:
			must(t, s.Unclaim(ctx, a))
		}
	}
	f := claimRef(t, s, t0, runID, "att-11")
	must(t, s.Fail(ctx, &f, "addCustomer", "E1", "invalid", t0))
	setRow(t, s, "att-12", `state = 'qr_ready', completed_at = ?, updated_at = ?`, now.Add(-120*time.Hour), now.Add(-120*time.Hour))
	a13 := selectRef(t, s, t0, runID, "att-13", "0410000013")
	must(t, s.BeginOrder(ctx, &a13, repo.LockGuard{}, false, t0))
	must(t, s.OrderAccepted(ctx, &a13, "ORD0410000013", t0, t0.Add(30*time.Minute)))

	day := 24 * time.Hour
	setRow(t, s, "att-1", `order_sent_at = ?, updated_at = ?`, now.Add(-day-time.Minute), now.Add(-time.Minute))
	setRow(t, s, "att-2", `order_sent_at = ?, updated_at = ?`, now.Add(-day+time.Minute), now.Add(-5*day))
	setRow(t, s, "att-3", `order_sent_at = ?, poll_count = 144, attempts = 2, last_error_message = ?`,
		now.Add(-3*day), "orderQuery: connection reset")
	setRow(t, s, "att-4", `order_sent_at = NULL, updated_at = ?`, now.Add(-2*day))
	setRow(t, s, "att-5", `order_sent_at = ?`, now.Add(-day))
	setRow(t, s, "att-6", `completed_at = ?, updated_at = ?`, now.Add(-day-time.Minute), now.Add(-time.Minute))
	setRow(t, s, "att-7", `completed_at = ?, updated_at = ?`, now.Add(-day+time.Minute), now.Add(-5*day))
	setRow(t, s, "att-8", `completed_at = ?, attempts = 3, last_error_message = ?`, now.Add(-30*time.Hour), "getEsimDetails: no QR code yet")
	setRow(t, s, "att-9", `completed_at = ?, order_sent_at = ?, updated_at = ?`, now.Add(-5*day), now.Add(-5*day), now.Add(-5*day))
	setRow(t, s, "att-10", `created_at = ?, updated_at = ?`, now.Add(-5*day), now.Add(-5*day))
	setRow(t, s, "att-11", `order_sent_at = ?, updated_at = ?`, now.Add(-5*day), now.Add(-5*day))
	setRow(t, s, "att-13", `order_sent_at = ?`, now.Add(-3*day))
}

func TestAttention(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		now := t0.Add(10 * 24 * time.Hour)
		seedAttention(t, s, now)
		at, err := s.Attention(ctx, now, 10)
		must(t, err)
		if got := refs(at.OpenOrders.Rows); at.OpenOrders.Count != 4 || got != "att-3,att-13,att-4,att-1" {
			t.Errorf("open orders = %d %s, want 4 att-3,att-13,att-4,att-1 (oldest first; 23h59m and exactly 24h not listed)",
				at.OpenOrders.Count, got)
		}
		if got := refs(at.QRLate.Rows); at.QRLate.Count != 2 || got != "att-8,att-6" {
			t.Errorf("QR late = %d %s, want 2 att-8,att-6", at.QRLate.Count, got)
		}
		if len(at.OpenOrders.Rows) == 4 && len(at.QRLate.Rows) == 2 {
			day := 24 * time.Hour
			for _, c := range []struct {
				got   repo.AttentionRow
				since time.Time
				state repo.State
				polls int
				tries int
				err   string
			}{
				{at.OpenOrders.Rows[0], now.Add(-3 * day), repo.StateSubmitted, 144, 2, "orderQuery: connection reset"},
				{at.OpenOrders.Rows[2], now.Add(-2 * day), repo.StateSubmitted, 1, 0, ""}, // updated_at: no send time
				{at.OpenOrders.Rows[3], now.Add(-day - time.Minute), repo.StateSubmitted, 1, 0, ""},
				{at.QRLate.Rows[0], now.Add(-30 * time.Hour), repo.StateCompleted, 1, 3, "getEsimDetails: no QR code yet"},
				{at.QRLate.Rows[1], now.Add(-day - time.Minute), repo.StateCompleted, 1, 0, ""},
			} {
				r := c.got
				if !r.Since.Equal(c.since) || r.State != c.state || r.PollCount != c.polls || r.Attempts != c.tries || r.LastError != c.err {
					t.Errorf("%s = since %s state %s polls %d attempts %d error %q; want %s %s %d %d %q", r.SalesRef,
						r.Since, r.State, r.PollCount, r.Attempts, r.LastError, c.since, c.state, c.polls, c.tries, c.err)
				}
				a, err := s.ActivationByRef(ctx, r.SalesRef)
				must(t, err)
				if r.ID != a.ID || r.MSN != a.MSN || r.MSN == "" || r.OrderID != "ORD"+a.MSN {
					t.Errorf("%s = id %d msn %q order %q; the row has %d %q %q", r.SalesRef, r.ID, r.MSN, r.OrderID, a.ID, a.MSN, a.OrderID)
				}
			}
		}

		// The caller's clock decides, in any zone: two minutes later the
		// 23h59m rows and the one at exactly 24 h are over; two minutes
		// earlier the 24h01m ones are not yet.
		sydney := time.FixedZone("AEDT", 11*3600)
		later, err := s.Attention(ctx, now.Add(2*time.Minute).In(sydney), 10)
		must(t, err)
		if got := refs(later.OpenOrders.Rows); later.OpenOrders.Count != 6 || got != "att-3,att-13,att-4,att-1,att-5,att-2" {
			t.Errorf("open orders 2 min later = %d %s, want 6 att-3,att-13,att-4,att-1,att-5,att-2", later.OpenOrders.Count, got)
		}
		if got := refs(later.QRLate.Rows); later.QRLate.Count != 3 || got != "att-8,att-6,att-7" {
			t.Errorf("QR late 2 min later = %d %s, want 3 att-8,att-6,att-7", later.QRLate.Count, got)
		}
		earlier, err := s.Attention(ctx, now.Add(-2*time.Minute), 10)
		must(t, err)
		if got := refs(earlier.OpenOrders.Rows); earlier.OpenOrders.Count != 3 || got != "att-3,att-13,att-4" {
			t.Errorf("open orders 2 min earlier = %d %s, want 3 att-3,att-13,att-4", earlier.OpenOrders.Count, got)
		}
		if got := refs(earlier.QRLate.Rows); earlier.QRLate.Count != 1 || got != "att-8" {
			t.Errorf("QR late 2 min earlier = %d %s, want 1 att-8", earlier.QRLate.Count, got)
		}

		// The limit cuts the list, never the count.
		capped, err := s.Attention(ctx, now, 2)
		must(t, err)
		if got := refs(capped.OpenOrders.Rows); capped.OpenOrders.Count != 4 || got != "att-3,att-13" {
			t.Errorf("open orders, limit 2 = %d %s, want 4 att-3,att-13", capped.OpenOrders.Count, got)
		}
		counts, err := s.Attention(ctx, now, 0)
		must(t, err)
		if counts.OpenOrders.Count != 4 || counts.QRLate.Count != 2 || len(counts.OpenOrders.Rows)+len(counts.QRLate.Rows) != 0 {
			t.Errorf("limit 0 = %+v, want counts 4 and 2, no rows", counts)
		}

		// Status shows the same lists, at most StatusAttentionRows each.
		st, err := s.Status(ctx, now, now.Add(-23*time.Hour))
		must(t, err)
		if st.OpenOrders.Count != 4 || refs(st.OpenOrders.Rows) != refs(at.OpenOrders.Rows) ||
			st.QRLate.Count != 2 || refs(st.QRLate.Rows) != refs(at.QRLate.Rows) {
			t.Errorf("Status open %d %s, QR %d %s; want Attention's", st.OpenOrders.Count, refs(st.OpenOrders.Rows),
				st.QRLate.Count, refs(st.QRLate.Rows))
		}
	})
}

// A report lists the rows needing attention at the time asked for (the
// report's creation by default) and does not take them: they stay
// unreported and in their state, and the next report lists them again.
func TestReportContentAttention(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		now := t0.Add(10 * 24 * time.Hour)
		seedAttention(t, s, now)
		rep, err := s.NewReport(ctx, now, 0)
		must(t, err)
		if rep.Activations != 3 { // att-9, att-11, att-12
			t.Fatalf("report holds %d activations, want the 3 terminal rows", rep.Activations)
		}
		c, err := s.ReportContent(ctx, rep.ID)
		must(t, err)
		if got := refs(c.Attention.OpenOrders.Rows); c.Attention.OpenOrders.Count != 4 || got != "att-3,att-13,att-4,att-1" {
			t.Errorf("ReportContent open orders = %d %s, want those at the report's creation", c.Attention.OpenOrders.Count, got)
		}
		if got := refs(c.Attention.QRLate.Rows); c.Attention.QRLate.Count != 2 || got != "att-8,att-6" {
			t.Errorf("ReportContent QR late = %d %s", c.Attention.QRLate.Count, got)
		}
		at, err := s.ReportContentAt(ctx, rep.ID, now.Add(2*time.Minute))
		must(t, err)
		if at.Attention.OpenOrders.Count != 6 || at.Attention.QRLate.Count != 3 || len(at.Activations) != 3 {
			t.Errorf("ReportContentAt(+2m) = open %d, QR %d, activations %d; want 6, 3, 3",
				at.Attention.OpenOrders.Count, at.Attention.QRLate.Count, len(at.Activations))
		}
		must(t, s.MarkReportDelivered(ctx, rep.ID, now))
		if n := count(t, s, `SELECT COUNT(*) FROM activations WHERE state IN ('submitted', 'completed') AND
(reported_at IS NOT NULL OR id IN (SELECT activation_id FROM report_items))`); n != 0 {
			t.Errorf("%d listed rows were taken into a report", n)
		}
		// A later report (one more failure) lists them again.
		runID := run(t, s)
		f := claimRef(t, s, now, runID, "att-10")
		must(t, s.Fail(ctx, &f, "addCustomer", "E1", "invalid", now))
		rep2, err := s.NewReport(ctx, now.Add(time.Hour), 0)
		must(t, err)
		c2, err := s.ReportContentAt(ctx, rep2.ID, now.Add(time.Hour))
		must(t, err)
		if c2.Attention.OpenOrders.Count != 6 || c2.Attention.QRLate.Count != 3 || len(c2.Activations) != 1 {
			t.Errorf("second report: open %d, QR %d, activations %d; want 6, 3, 1",
				c2.Attention.OpenOrders.Count, c2.Attention.QRLate.Count, len(c2.Activations))
		}
		if _, err := s.ReportContentAt(ctx, 999, now); err == nil || !strings.Contains(err.Error(), repo.ErrNotFound.Error()) {
			t.Errorf("ReportContentAt(999) = %v, want ErrNotFound", err)
		}
	})
}

// A report lists at most ReportAttentionRows of each kind, the oldest, and
// the full count.
func TestReportContentAttentionCapped(t *testing.T) {
	t.Parallel()
	repotest.Each(t, func(t *testing.T, s *repo.Store) {
		ctx := context.Background()
		now := t0.Add(10 * 24 * time.Hour)
		n := repo.ReportAttentionRows + 1
		seed(t, s, "cap", n+1)
		last := fmt.Sprintf("cap-%d", n+1)
		setRow(t, s, last, `state = 'failed'`) // something to report
		// All sent at the same time but three, which are older still.
		base := s.DBTime(now.Add(-48 * time.Hour))
		q := `UPDATE activations SET state = 'submitted', msn = '04' || id, order_id = 'ORD' || id, order_sent_at = ? WHERE sales_ref <> ?`
		if _, err := s.DB().ExecContext(ctx, s.DB().Rebind(q), base, last); err != nil {
			t.Fatal(err)
		}
		for i, ref := range []string{"cap-1", "cap-2", fmt.Sprintf("cap-%d", n)} {
			setRow(t, s, ref, `order_sent_at = ?`, now.Add(-48*time.Hour-time.Duration(3-i)*time.Minute))
		}
		rep, err := s.NewReport(ctx, now, 0)
		must(t, err)
		c, err := s.ReportContentAt(ctx, rep.ID, now)
		must(t, err)
		rows := c.Attention.OpenOrders.Rows
		if c.Attention.OpenOrders.Count != n || len(rows) != repo.ReportAttentionRows {
			t.Fatalf("open orders = %d, %d rows; want %d, %d", c.Attention.OpenOrders.Count, len(rows), n, repo.ReportAttentionRows)
		}
		if rows[0].SalesRef != "cap-1" || rows[1].SalesRef != "cap-2" || rows[2].SalesRef != fmt.Sprintf("cap-%d", n) {
			t.Errorf("first rows %s, want cap-1,cap-2,cap-%d (oldest first)", refs(rows[:3]), n)
		}
		// The rest tie on the time: by id, so the cut falls after cap-499.
		if got := rows[len(rows)-1].SalesRef; got != fmt.Sprintf("cap-%d", n-2) {
			t.Errorf("last row %s, want cap-%d", got, n-2)
		}
		for i := 1; i < len(rows); i++ {
			if rows[i].Since.Before(rows[i-1].Since) || (rows[i].Since.Equal(rows[i-1].Since) && rows[i].ID < rows[i-1].ID) {
				t.Fatalf("rows %d and %d out of order: %v %d, %v %d", i-1, i, rows[i-1].Since, rows[i-1].ID, rows[i].Since, rows[i].ID)
			}
		}
	})
}
