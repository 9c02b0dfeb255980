package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/esimbatch/esimbatch/repo"
	"github.com/esimbatch/esimbatch/reports"
)

// reportStore is what the report phase needs from the store (docs/design.md).
type reportStore interface {
	PendingReport(ctx context.Context) (repo.Report, error)
	NewReport(ctx context.Context, now time.Time, maxQRRows int) (repo.Report, error)
	SetReportMessage(ctx context.Context, reportID int64, messageID, file string) error
	ReportContentAt(ctx context.Context, reportID int64, now time.Time) (repo.ReportContent, error)
	MarkReportDelivered(ctx context.Context, reportID int64, at time.Time) error
	Attention(ctx context.Context, now time.Time, limit int) (repo.Attention, error)
}

// ReportOptions configure the report phase.
type ReportOptions struct {
	Dir      string // REPORT_DIR: workbooks and .eml files are kept here
	Password string // REPORT_PASSWORD: encrypts the workbook; never mailed, never logged
	// SMTP is the mail server; nil writes each email as a .eml file under Dir
	// instead (which counts as delivered).
	SMTP *reports.SMTPConfig
	From string   // SMTP_FROM; "esimbatch@localhost" for .eml when empty
	To   []string // REPORT_TO; "reports@localhost" for .eml when empty
	// SendEmpty sends a "nothing new" email (an empty workbook, number 0,
	// recorded nowhere) when a run has nothing to report. Off by default.
	SendEmpty bool
	// MaxQRRows caps QR rows per report (and so per workbook and email);
	// 0 or more than reports.MaxQRRowsPerWorkbook means that maximum.
	MaxQRRows int
}

// ReportResult is what one report phase delivered.
type ReportResult struct {
	Reports     int      // reports delivered (resends included)
	Resent      int      // of which resends of a report built by an earlier run
	Files       []string // the workbooks and .eml files written
	Activations int      // activations in the delivered reports
	Rejects     int      // import rejects in the delivered reports
	Refused     int      // files refused whole on import, in the delivered reports
}

// Reporter is the report phase: it delivers every terminal activation,
// import reject and refused import file in exactly one report.
type Reporter struct {
	store reportStore
	log   *slog.Logger
	opts  ReportOptions
}

// NewReporter returns the report phase over store. A nil log discards.
func NewReporter(store reportStore, log *slog.Logger, opts ReportOptions) *Reporter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxQRRows <= 0 || opts.MaxQRRows > reports.MaxQRRowsPerWorkbook {
		opts.MaxQRRows = reports.MaxQRRowsPerWorkbook
	}
	if opts.SMTP == nil {
		if opts.From == "" {
			opts.From = "esimbatch@localhost"
		}
		if len(opts.To) == 0 {
			opts.To = []string{"reports@localhost"}
		}
	}
	opts.To = append([]string(nil), opts.To...)
	return &Reporter{store: store, log: log, opts: opts}
}

// maxReportsPerRun stops a run that keeps finding reports (each delivered
// report takes its rows out of the next, so this is only a safety net).
const maxReportsPerRun = 1000

// Run delivers reports until none is left: first a report an earlier run
// built but did not deliver (sent again with its number and Message-ID,
// marked as a resend), then new reports, each capped at MaxQRRows QR rows.
// Each report's content and Message-ID are recorded before it is sent; it is
// marked delivered only once the SMTP server accepted it (or its .eml file
// is written). A failed send marks nothing and returns the error, wrapping
// reports.ErrDelivery (or the store's, the file system's, reports.ErrMailConfig);
// the result counts what was delivered before it.
func (r *Reporter) Run(ctx context.Context, now time.Time) (ReportResult, error) {
	var res ReportResult
	mailer, err := reports.NewMailer(r.opts.SMTP, r.opts.From, r.opts.To, r.opts.Dir)
	if err != nil {
		return res, fmt.Errorf("report: %w", err)
	}
	for range maxReportsPerRun {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("report: %w", err)
		}
		rep, resend, err := r.next(ctx, now)
		if errors.Is(err, repo.ErrNotFound) {
			break
		}
		if err != nil {
			return res, err
		}
		if err := r.deliver(ctx, mailer, rep, resend, now, &res); err != nil {
			return res, err
		}
	}
	if res.Reports == 0 && r.opts.SendEmpty {
		if err := r.sendEmpty(ctx, mailer, now, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// Phase adapts Run to the runner's phase signature (WithReport).
func (r *Reporter) Phase(ctx context.Context, now time.Time) (map[string]int, error) {
	res, err := r.Run(ctx, now)
	return map[string]int{"reports": res.Reports, "reports_resent": res.Resent,
		"reported_activations": res.Activations, "reported_rejects": res.Rejects, "reported_refused": res.Refused}, err
}

// next returns the undelivered report to send: an earlier one first, else a
// new one. resend is true when an earlier attempt may have reached the
// server (its Message-ID was fixed, so it may have been sent).
func (r *Reporter) next(ctx context.Context, now time.Time) (repo.Report, bool, error) {
	rep, err := r.store.PendingReport(ctx)
	if err == nil {
		return rep, rep.MessageID != "", nil
	}
	if !errors.Is(err, repo.ErrNotFound) {
		return rep, false, fmt.Errorf("report: %w", err)
	}
	rep, err = r.store.NewReport(ctx, now, r.opts.MaxQRRows)
	if errors.Is(err, repo.ErrNotFound) {
		return rep, false, err
	}
	if err != nil {
		return rep, false, fmt.Errorf("report: %w", err)
	}
	return rep, false, nil
}

func (r *Reporter) deliver(ctx context.Context, mailer *reports.Mailer, rep repo.Report, resend bool, now time.Time, res *ReportResult) error {
	name := reportFileName(rep.Number, rep.CreatedAt)
	if rep.File != "" {
		name = filepath.Base(rep.File) // REPORT_DIR may have moved since
	}
	path := filepath.Join(r.opts.Dir, name)
	if rep.MessageID == "" || rep.File != path {
		if rep.MessageID == "" {
			rep.MessageID = reportMessageID(rep.Number, r.opts.From)
		}
		// Fixed before the first send, so a repeat carries the same Message-ID.
		if err := r.store.SetReportMessage(ctx, rep.ID, rep.MessageID, path); err != nil {
			return fmt.Errorf("report #%d: %w", rep.Number, err)
		}
	}
	// The open orders and late QR codes as of this send: a resend lists
	// them as they are now, not as when the report was built.
	content, err := r.store.ReportContentAt(ctx, rep.ID, now)
	if err != nil {
		return fmt.Errorf("report #%d: %w", rep.Number, err)
	}
	data := reportData(content)
	book, err := reports.Build(data, reports.Options{Password: r.opts.Password})
	if err != nil {
		return fmt.Errorf("report #%d: %w", rep.Number, err)
	}
	if err := reports.SaveFile(path, book); err != nil {
		return fmt.Errorf("report #%d: %w", rep.Number, err)
	}
	msg := reports.Message{
		Number: rep.Number, MessageID: rep.MessageID, Resend: resend, Date: now, ReportDate: rep.CreatedAt,
		PeriodFrom: rep.PeriodFrom, PeriodTo: rep.PeriodTo,
		QR: data.QRCodes(), Physical: data.Counts[reports.OutcomeProvisionedPhysical],
		Emailed: data.Counts[reports.OutcomeProvisionedEmailed], Failed: len(data.Failures),
		Rejected: len(data.Rejects), Refused: len(data.Refused),
		Encrypted: r.opts.Password != "", FileName: name, Workbook: book,
	}
	del, err := mailer.Send(ctx, msg)
	if err != nil {
		r.log.Warn("report not delivered", "report", rep.Number, "resend", resend, "error", err)
		return fmt.Errorf("report #%d: %w", rep.Number, err)
	}
	if err := r.store.MarkReportDelivered(ctx, rep.ID, now); err != nil {
		// Sent but not recorded: the next run resends it, same number and Message-ID.
		return fmt.Errorf("report #%d delivered, not recorded: %w", rep.Number, err)
	}
	res.Reports++
	if resend {
		res.Resent++
	}
	res.Files = append(res.Files, path)
	if del.Path != "" {
		res.Files = append(res.Files, del.Path)
	}
	res.Activations += len(content.Activations)
	res.Rejects += len(content.Rejects)
	res.Refused += len(content.Refused)
	r.log.Info("report delivered", "report", rep.Number, "via", del.Via, "resend", resend,
		"qr_codes", data.QRCodes(), "qr_rows", len(data.QR), "failures", len(data.Failures), "rejects", len(data.Rejects),
		"refused_files", len(data.Refused),
		"open_orders_over_24h", data.OpenOrders.Count, "qr_late_over_24h", data.QRLate.Count, "file", path)
	return nil
}

// sendEmpty sends a "nothing new" report: number 0, recorded nowhere.
func (r *Reporter) sendEmpty(ctx context.Context, mailer *reports.Mailer, now time.Time, res *ReportResult) error {
	name := "esim-report-empty-" + now.UTC().Format("20060102T1504Z") + ".xlsx"
	path := filepath.Join(r.opts.Dir, name)
	at, err := r.store.Attention(ctx, now, reports.MaxAttentionRows)
	if err != nil {
		return fmt.Errorf("empty report: %w", err)
	}
	data := reports.Data{GeneratedAt: now, PeriodFrom: now, PeriodTo: now, Counts: reportCounts(nil, nil, nil),
		OpenOrders: attentionData(at.OpenOrders), QRLate: attentionData(at.QRLate)}
	book, err := reports.Build(data, reports.Options{Password: r.opts.Password})
	if err != nil {
		return fmt.Errorf("empty report: %w", err)
	}
	if err := reports.SaveFile(path, book); err != nil {
		return fmt.Errorf("empty report: %w", err)
	}
	del, err := mailer.Send(ctx, reports.Message{
		MessageID: reportMessageID(0, r.opts.From), Date: now, ReportDate: now, PeriodFrom: now, PeriodTo: now,
		Encrypted: r.opts.Password != "", FileName: name, Workbook: book,
	})
	if err != nil {
		return fmt.Errorf("empty report: %w", err)
	}
	res.Files = append(res.Files, path)
	if del.Path != "" {
		res.Files = append(res.Files, del.Path)
	}
	r.log.Info("empty report sent", "via", del.Via, "file", path)
	return nil
}

// reportFileName is e.g. esim-report-000012-20261128T1000Z.xlsx.
func reportFileName(number int64, created time.Time) string {
	return fmt.Sprintf("esim-report-%06d-%s.xlsx", number, created.UTC().Format("20060102T1504Z"))
}

// reportMessageID is unique across databases (a random part) and names the
// report; the domain is the sender's.
func reportMessageID(number int64, from string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	domain := "esimbatch.invalid"
	if i := strings.LastIndex(from, "@"); i >= 0 && i < len(from)-1 {
		domain = strings.TrimRight(from[i+1:], ">")
	}
	return fmt.Sprintf("esimbatch.report-%d.%s@%s", number, hex.EncodeToString(b[:]), domain)
}

// reportData turns a report's fixed content into the workbook's input.
func reportData(c repo.ReportContent) reports.Data {
	d := reports.Data{
		Number: c.Report.Number, GeneratedAt: c.Report.CreatedAt,
		PeriodFrom: c.Report.PeriodFrom, PeriodTo: c.Report.PeriodTo,
		Totals: reportTotals(c),
	}
	for _, a := range c.Activations {
		switch a.State {
		case repo.StateQRReady, repo.StateProvisioned:
			d.QR = append(d.QR, reports.QRRow{
				SalesRef: a.SalesRef, Customer: reportCustomer(a), Email: a.Email, MSN: a.MSN,
				OrderID: a.OrderID, ICCID: a.ICCID, Outcome: reportOutcome(a),
				CompletedAt: reportTime(a.CompletedAt, a.UpdatedAt), ActivationCode: a.ActivationCode, PNG: a.QRPNG,
				Credential: a.Credential,
			})
		case repo.StateFailed, repo.StateCancelled:
			// A cancelled row is listed with the failures: step cancel,
			// who cancelled it and why as the message (batch cancel).
			d.Failures = append(d.Failures, FailureRow(a))
		}
	}
	for _, rj := range c.Rejects {
		d.Rejects = append(d.Rejects, reports.RejectRow{File: rj.File, Line: rj.Line, Reason: rj.Reason, Raw: rj.Raw, ImportedAt: rj.ImportedAt})
	}
	for _, rf := range c.Refused {
		d.Refused = append(d.Refused, reports.RefusedFile{File: rf.File, Reason: rf.Reason, MovedTo: rf.MovedTo, RefusedAt: rf.RefusedAt})
	}
	d.Counts = reportCounts(c.Activations, c.Rejects, c.Refused)
	d.OpenOrders, d.QRLate = attentionData(c.Attention.OpenOrders), attentionData(c.Attention.QRLate)
	for _, m := range c.Calls {
		d.Calls = append(d.Calls, reports.CallStat{Method: m.Method, Outcome: m.Outcome, Count: m.Count, Waited: m.Waited,
			Credential: m.Credential})
	}
	return d
}

// FailureRow is a failed activation as the report's Failures sheet shows
// it: Octane's code and message apart from our reason, and what to do
// (failureTable).
func FailureRow(a repo.Activation) reports.FailureRow {
	code, msg, reason, advice := describeFailure(a.LastErrorStep, a.LastErrorCode, a.LastErrorMessage)
	return reports.FailureRow{
		SalesRef: a.SalesRef, Customer: reportCustomer(a), Email: a.Email, MSN: a.MSN,
		Step: a.LastErrorStep, Code: code, Message: msg, Reason: reason, Advice: advice, Attempts: a.Attempts,
		FirstAttempt: reportTime(a.FirstAttemptAt, time.Time{}), LastAttempt: reportTime(a.LastAttemptAt, a.UpdatedAt),
		Credential: a.Credential,
	}
}

// attentionData turns a store attention list into the workbook's: the count
// shown is polls for an open order, attempts for a late QR code.
func attentionData(l repo.AttentionList) reports.AttentionList {
	out := reports.AttentionList{Count: l.Count}
	for _, a := range l.Rows {
		n := a.Attempts
		if a.State == repo.StateSubmitted {
			n = a.PollCount
		}
		out.Rows = append(out.Rows, reports.AttentionRow{SalesRef: a.SalesRef, MSN: a.MSN, OrderID: a.OrderID,
			State: string(a.State), Since: a.Since, Count: n, LastError: a.LastError, Credential: a.Credential})
	}
	return out
}

// reportCounts counts a report's rows by the Summary's outcomes: QR codes,
// the provisioned services apart (physical SIM, QR emailed by Octane),
// failures, rejected rows and refused files.
func reportCounts(acts []repo.Activation, rejects []repo.RejectRow, refused []repo.RefusedImport) map[string]int {
	counts := map[string]int{string(repo.StateQRReady): 0, reports.OutcomeProvisionedPhysical: 0,
		reports.OutcomeProvisionedEmailed: 0, string(repo.StateFailed): 0,
		reports.OutcomeRejected: len(rejects), reports.OutcomeRefused: len(refused)}
	for _, a := range acts {
		counts[outcomeKey(a)]++
	}
	return counts
}

// outcomeKey is the Summary's outcome of a reported activation: its state,
// with provisioned split into physical SIMs and eSIMs whose QR Octane
// emailed (the only two ways a row is provisioned, see pass.awaitQR).
func outcomeKey(a repo.Activation) string {
	if a.State != repo.StateProvisioned {
		return string(a.State)
	}
	if a.SIMType == "physical" {
		return reports.OutcomeProvisionedPhysical
	}
	return reports.OutcomeProvisionedEmailed
}

// reportTotals is the Summary's to-date column: every state, provisioned
// split as in reportCounts, rejected rows and refused files, so every
// outcome row has its total.
func reportTotals(c repo.ReportContent) map[string]int {
	t := map[string]int{}
	for st, n := range c.Totals {
		if st != repo.StateProvisioned {
			t[string(st)] = n
		}
	}
	t[reports.OutcomeProvisionedPhysical] = c.ToDate.ProvisionedPhysical
	t[reports.OutcomeProvisionedEmailed] = c.ToDate.ProvisionedEmailed
	t[reports.OutcomeRejected] = c.ToDate.Rejects
	t[reports.OutcomeRefused] = c.ToDate.Refused
	return t
}

func reportCustomer(a repo.Activation) string {
	name := strings.TrimSpace(a.GivenNames + " " + a.Surname)
	if a.CustNo != nil {
		return fmt.Sprintf("%s (%d)", name, *a.CustNo)
	}
	return name
}

func reportOutcome(a repo.Activation) string {
	switch {
	case a.State == repo.StateQRReady:
		return "QR ready"
	case a.SIMType == "physical":
		return "Provisioned (physical SIM)"
	case a.QRByEmail:
		return "Provisioned (QR emailed by Octane)"
	default:
		return "Provisioned"
	}
}

func reportTime(t *time.Time, fallback time.Time) time.Time {
	if t != nil {
		return *t
	}
	return fallback
}
