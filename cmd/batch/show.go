package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/esimbatch/esimbatch/repo"
)

// masked stands for an activation code or QR image that is present: both
// are credentials (an eSIM can be installed from them) and never printed.
const masked = "***"

// cmdShow is `batch show [--json] REF`: one activation's fields (the
// activation code and QR image masked), its event history and its Octane
// calls, oldest first, and the reports it is in.
func cmdShow(ctx context.Context, args []string, e env) error {
	fs := newFlags(e, "show", "show [--json] REF",
		"One activation: its fields, its event history and its Octane calls (oldest first), and the\n"+
			"reports it is in. REF is a sales reference, an order id or an MSN. The activation code and the\n"+
			"QR image are never shown. Exit 1 when REF matches no activation, or several (an MSN can have\n"+
			"served more than one): then give the sales reference.")
	asJSON := fs.Bool("json", false, "write one JSON object instead of text")
	refs, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(refs) != 1 {
		fs.printUsage(e.stderr)
		return badConfig("show: give exactly one REF, got %d", len(refs))
	}
	_, store, err := openStore(ctx, e)
	if err != nil {
		return err
	}
	defer store.Close()
	a, ok, err := findRef(ctx, store, e.stderr, refs[0])
	if err != nil {
		return fmt.Errorf("show: %w", err)
	}
	if !ok {
		return fmt.Errorf("show: %s: no single activation", text(refs[0]))
	}
	evs, err := store.Events(ctx, a.ID)
	if err != nil {
		return fmt.Errorf("show: %w", err)
	}
	calls, err := store.ActivationCalls(ctx, a.ID)
	if err != nil {
		return fmt.Errorf("show: %w", err)
	}
	items, err := store.ActivationReports(ctx, a.ID)
	if err != nil {
		return fmt.Errorf("show: %w", err)
	}
	doc := showJSON(a, evs, calls, items)
	if *asJSON {
		return writeJSON(e.stdout, doc)
	}
	printShow(e.stdout, doc)
	return nil
}

// showDoc is `batch show --json`. Times are RFC 3339 UTC; a missing time is
// null.
type showDoc struct {
	Activation activationDoc `json:"activation"`
	Events     []eventDoc    `json:"events"`
	Calls      []callDoc     `json:"calls"`
	Reports    []reportDoc   `json:"reports"`
}

type activationDoc struct {
	ID           int64  `json:"id"`
	SalesRef     string `json:"sales_ref"`
	State        string `json:"state"`
	GivenNames   string `json:"given_names"`
	Surname      string `json:"surname"`
	Email        string `json:"email"`
	AddressLine1 string `json:"address_line1"`
	Suburb       string `json:"suburb"`
	AddrState    string `json:"addr_state"`
	Postcode     string `json:"postcode"`
	Notes        string `json:"notes"`
	CustNo       *int64 `json:"cust_no"`
	PlanNo       int    `json:"plan_no"`
	SIMType      string `json:"sim_type"`
	SIMSerial    string `json:"sim_serial"`

	MSN           string     `json:"msn"`
	ReservedAt    *time.Time `json:"reserved_at"`
	OrderID       string     `json:"order_id"`
	OrderSentAt   *time.Time `json:"order_sent_at"`
	OrderAttempts int        `json:"order_attempts"`
	QRByEmail     bool       `json:"qr_by_email"`
	Adopted       bool       `json:"adopted"`
	NextPollAt    *time.Time `json:"next_poll_at"`
	LastPollAt    *time.Time `json:"last_poll_at"`
	PollCount     int        `json:"poll_count"`
	ServiceNumber string     `json:"service_number"`
	CompletedAt   *time.Time `json:"completed_at"`
	// ActivationCode is "***" when the code is stored, "" when not; the
	// code itself is never shown. QRImageBytes is the stored image's size.
	ActivationCode string `json:"activation_code"`
	QRImageBytes   int    `json:"qr_image_bytes"`
	ICCID          string `json:"iccid"`

	Attempts         int        `json:"attempts"`
	NextAttemptAt    time.Time  `json:"next_attempt_at"`
	FirstAttemptAt   *time.Time `json:"first_attempt_at"`
	LastAttemptAt    *time.Time `json:"last_attempt_at"`
	LastErrorStep    string     `json:"last_error_step"`
	LastErrorCode    string     `json:"last_error_code"`
	LastErrorMessage string     `json:"last_error_message"`

	Claimed    bool       `json:"claimed"` // a claim was taken (it may have expired: see claim_until)
	ClaimUntil *time.Time `json:"claim_until"`
	RunID      *int64     `json:"run_id"`
	Retries    int        `json:"retries"`
	ReportedAt *time.Time `json:"reported_at"`
	ImportID   *int64     `json:"import_id"`
	SourceLine int        `json:"source_line"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

type eventDoc struct {
	At         time.Time `json:"at"`
	RunID      *int64    `json:"run_id"`
	Kind       string    `json:"kind"`
	Step       string    `json:"step"`
	FromState  string    `json:"from_state"`
	ToState    string    `json:"to_state"`
	Outcome    string    `json:"outcome"`
	Code       string    `json:"code"`
	Message    string    `json:"message"`
	DurationMS int64     `json:"duration_ms"`
	Actor      string    `json:"actor"`
}

type callDoc struct {
	SentAt     time.Time `json:"sent_at"`
	RunID      *int64    `json:"run_id"`
	Method     string    `json:"method"`
	Outcome    string    `json:"outcome"`
	Code       string    `json:"code"`
	Message    string    `json:"message"`
	DurationMS int64     `json:"duration_ms"`
	WaitedMS   int64     `json:"waited_ms"`
	MSN        string    `json:"msn"`
	OrderID    string    `json:"order_id"`
}

type reportDoc struct {
	Number      int64      `json:"number"`
	Retries     int        `json:"retries"` // the life of the row it reports
	CreatedAt   time.Time  `json:"created_at"`
	DeliveredAt *time.Time `json:"delivered_at"`
}

func showJSON(a repo.Activation, evs []repo.Event, calls []repo.LoggedCall, items []repo.ReportItem) showDoc {
	// Never the code, not even inside a message that quotes it.
	hide := func(s string) string {
		if a.ActivationCode != "" {
			s = strings.ReplaceAll(s, a.ActivationCode, masked)
		}
		return s
	}
	d := showDoc{Activation: activationDoc{
		ID: a.ID, SalesRef: a.SalesRef, State: string(a.State), GivenNames: a.GivenNames, Surname: a.Surname,
		Email: a.Email, AddressLine1: a.AddressLine1, Suburb: a.Suburb, AddrState: a.AddrState, Postcode: a.Postcode,
		Notes: a.Notes, CustNo: a.CustNo, PlanNo: a.PlanNo, SIMType: a.SIMType, SIMSerial: a.SIMSerial,
		MSN: a.MSN, ReservedAt: utcPtr(a.ReservedAt), OrderID: a.OrderID, OrderSentAt: utcPtr(a.OrderSentAt),
		OrderAttempts: a.OrderAttempts, QRByEmail: a.QRByEmail, Adopted: a.Adopted, NextPollAt: utcPtr(a.NextPollAt),
		LastPollAt: utcPtr(a.LastPollAt), PollCount: a.PollCount, ServiceNumber: a.ServiceNumber,
		CompletedAt: utcPtr(a.CompletedAt), QRImageBytes: len(a.QRPNG), ICCID: a.ICCID,
		Attempts: a.Attempts, NextAttemptAt: a.NextAttemptAt.UTC(), FirstAttemptAt: utcPtr(a.FirstAttemptAt),
		LastAttemptAt: utcPtr(a.LastAttemptAt), LastErrorStep: a.LastErrorStep, LastErrorCode: a.LastErrorCode,
		LastErrorMessage: hide(a.LastErrorMessage), Claimed: a.ClaimToken != "", ClaimUntil: utcPtr(a.ClaimUntil),
		RunID: a.RunID, Retries: a.Retries, ReportedAt: utcPtr(a.ReportedAt), ImportID: a.ImportID,
		SourceLine: a.SourceLine, CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
	}, Events: []eventDoc{}, Calls: []callDoc{}, Reports: []reportDoc{}}
	if a.ActivationCode != "" {
		d.Activation.ActivationCode = masked
	}
	for _, ev := range evs {
		if ev.Kind == repo.EventCall {
			continue // the call log below has every call, with its wait
		}
		d.Events = append(d.Events, eventDoc{At: ev.At.UTC(), RunID: ev.RunID, Kind: ev.Kind, Step: string(ev.Step),
			FromState: string(ev.FromState), ToState: string(ev.ToState), Outcome: ev.Outcome, Code: ev.Code,
			Message: hide(ev.Message), DurationMS: ev.Duration.Milliseconds(), Actor: ev.Actor})
	}
	for _, c := range calls {
		d.Calls = append(d.Calls, callDoc{SentAt: c.SentAt.UTC(), RunID: c.RunID, Method: c.Method, Outcome: c.Outcome,
			Code: c.Code, Message: hide(c.Message), DurationMS: c.Duration.Milliseconds(), WaitedMS: c.Waited.Milliseconds(),
			MSN: c.MSN, OrderID: c.OrderID})
	}
	for _, it := range items {
		d.Reports = append(d.Reports, reportDoc{Number: it.Number, Retries: it.Retries, CreatedAt: it.CreatedAt.UTC(),
			DeliveredAt: utcPtr(it.DeliveredAt)})
	}
	return d
}

// printShow writes the text form: labelled fields, then the events and the
// calls, oldest first, one a line.
func printShow(w io.Writer, d showDoc) {
	a := d.Activation
	kv := func(k, format string, args ...any) {
		fmt.Fprintf(w, "  %-17s %s\n", k+":", fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(w, "activation %d  %s  state %s\n", a.ID, text(a.SalesRef), a.State)
	kv("customer", "%s", text(strings.TrimSpace(a.GivenNames+" "+a.Surname)))
	if a.CustNo != nil {
		kv("customer number", "%d", *a.CustNo)
	}
	kv("email", "%s", text(a.Email))
	kv("address", "%s", text(strings.Trim(strings.Join([]string{a.AddressLine1, a.Suburb, a.AddrState, a.Postcode}, " "), " ")))
	if a.Notes != "" {
		kv("notes", "%s", text(a.Notes))
	}
	kv("plan", "%d", a.PlanNo)
	sim := a.SIMType
	if a.SIMSerial != "" {
		sim += " " + text(a.SIMSerial)
	}
	kv("sim", "%s", sim)
	kv("imported", "import %s line %d at %s", ptrInt(a.ImportID), a.SourceLine, a.CreatedAt.Format(time.RFC3339))
	kv("number", "%s (reserved %s)", text(a.MSN), fmtTime(a.ReservedAt))
	order := text(a.OrderID)
	if a.Adopted {
		order += " (adopted by reconcile)"
	}
	kv("order", "%s (intent %s, intents %d, QR by email %v)", order, fmtTime(a.OrderSentAt), a.OrderAttempts, a.QRByEmail)
	kv("polls", "%d (last %s, next %s)", a.PollCount, fmtTime(a.LastPollAt), fmtTime(a.NextPollAt))
	kv("completed", "%s (service number %s)", fmtTime(a.CompletedAt), text(a.ServiceNumber))
	code := "-"
	if a.ActivationCode != "" {
		code = masked + " (stored; never shown)"
	}
	kv("activation code", "%s", code)
	img := "-"
	if a.QRImageBytes > 0 {
		img = fmt.Sprintf("%s (%d bytes stored; never shown)", masked, a.QRImageBytes)
	}
	kv("QR image", "%s", img)
	kv("ICCID", "%s", text(a.ICCID))
	kv("attempts", "%d (first %s, last %s, next %s)", a.Attempts, fmtTime(a.FirstAttemptAt), fmtTime(a.LastAttemptAt),
		a.NextAttemptAt.Format(time.RFC3339))
	if a.LastErrorStep != "" || a.LastErrorMessage != "" {
		kv("last error", "%s %s %s", text(a.LastErrorStep), text(a.LastErrorCode), text(a.LastErrorMessage))
	}
	claim := "none"
	if a.Claimed {
		claim = fmt.Sprintf("run %s until %s", ptrInt(a.RunID), fmtTime(a.ClaimUntil))
	}
	kv("claim", "%s", claim)
	kv("retries", "%d", a.Retries)
	kv("reported", "%s", fmtTime(a.ReportedAt))
	kv("updated", "%s", a.UpdatedAt.Format(time.RFC3339))

	fmt.Fprintln(w, "\nevents (oldest first):")
	if len(d.Events) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, ev := range d.Events {
		line := fmt.Sprintf("  %s  %-16s %s -> %s  %s", ev.At.Format(time.RFC3339), ev.Step, text(ev.FromState), ev.ToState, text(ev.Outcome))
		if ev.RunID != nil {
			line += fmt.Sprintf("  run %d", *ev.RunID)
		}
		if ev.Code != "" {
			line += "  code " + text(ev.Code)
		}
		if ev.Actor != "" {
			line += "  by " + text(ev.Actor)
		}
		if ev.Message != "" {
			line += "  " + text(ev.Message)
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "\nOctane calls (oldest first):")
	if len(d.Calls) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, c := range d.Calls {
		line := fmt.Sprintf("  %s  %-16s %-9s %dms (waited %dms)", c.SentAt.Format(time.RFC3339), c.Method, c.Outcome, c.DurationMS, c.WaitedMS)
		if c.RunID != nil {
			line += fmt.Sprintf("  run %d", *c.RunID)
		}
		if c.MSN != "" {
			line += "  msn " + text(c.MSN)
		}
		if c.OrderID != "" {
			line += "  order " + text(c.OrderID)
		}
		if c.Code != "" {
			line += "  code " + text(c.Code)
		}
		if c.Message != "" {
			line += "  " + text(c.Message)
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "\nreports:")
	if len(d.Reports) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, r := range d.Reports {
		fmt.Fprintf(w, "  report %d (retries %d) built %s, delivered %s\n", r.Number, r.Retries, r.CreatedAt.Format(time.RFC3339), fmtTime(r.DeliveredAt))
	}
}

func ptrInt(p *int64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}
