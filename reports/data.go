package reports

import (
	"errors"
	"strings"
	"time"
)

// MaxQRRowsPerWorkbook caps the QR codes sheet of one workbook: rows with an
// activation code or image. Each carries an image (about 0.55 KB and a few ms each), so the cap bounds the
// workbook's size, build time and memory. Build refuses more. The caller
// splits a larger report before building: the store's NewReport takes at most
// this many QR rows per report (the rest wait for the next report), so each
// report is exactly one complete workbook and one email.
const MaxQRRowsPerWorkbook = 5000

// Sheet names, in workbook order.
const (
	SheetQR      = "QR codes"
	SheetFailure = "Failures"
	SheetRejects = "Rejected imports"
	SheetSummary = "Summary"
	// SheetAttention lists the open orders and late QR codes (AttentionRow).
	SheetAttention = "Attention"
)

// MaxAttentionRows caps each attention list (open orders, QR codes late) on
// the Attention sheet; the Summary gives the full counts and says when a list
// is cut.
const MaxAttentionRows = 500

// Column headers of the data sheets. Finance builds spreadsheets on these:
// the order is fixed and checked against testdata/columns.golden.
var (
	QRColumns = []string{"Sales reference", "Customer", "Email", "MSN", "Order ID", "ICCID",
		"Outcome", "Completed (UTC)", "Activation code", "QR code"}
	FailureColumns = []string{"Sales reference", "Customer", "Email", "MSN", "Failed step",
		"Octane error code", "Message", "Attempts", "First attempt (UTC)", "Last attempt (UTC)"}
	RejectColumns    = []string{"File", "Line", "Reason", "Raw row", "Imported (UTC)"}
	AttentionColumns = []string{"Issue", "Sales reference", "MSN", "Order ID", "State", "Since (UTC)",
		"Polls / attempts", "Last error"}
)

// Outcome keys the Summary lists first, in this order; other keys follow
// sorted by name.
var outcomeOrder = []string{"qr_ready", "provisioned", "failed", "rejected", "cancelled",
	"pending", "selected", "ordering", "submitted", "completed"}

// reportOutcomes are the outcomes a report delivers, the head of outcomeOrder.
var reportOutcomes = outcomeOrder[:4]

// outcomeLabel is the Summary's wording of an outcome key; a key it does not
// know is shown as it is.
func outcomeLabel(key string) string {
	switch key {
	case "qr_ready":
		return "QR ready"
	case "rejected":
		return "Rejected on import"
	case "provisioned", "failed", "cancelled", "pending", "selected", "ordering", "submitted", "completed":
		return strings.ToUpper(key[:1]) + key[1:]
	}
	return key
}

// ErrTooManyQRRows is returned by Build when Data holds more than
// MaxQRRowsPerWorkbook QR rows.
var ErrTooManyQRRows = errors.New("reports: too many QR rows for one workbook")

// Data is everything one report workbook shows. Times are written in UTC.
type Data struct {
	Number      int64     // the report number, also in the file name and the email subject
	GeneratedAt time.Time // when the report's content was fixed
	PeriodFrom  time.Time // the period the report covers
	PeriodTo    time.Time
	DryRun      bool
	QR          []QRRow
	Failures    []FailureRow
	Rejects     []RejectRow
	// Counts are this report's rows by outcome ("qr_ready", "provisioned",
	// "failed", "rejected"); Totals all activations to date by state.
	Counts map[string]int
	Totals map[string]int
	// Calls are Octane calls in the period by method and outcome.
	Calls []CallStat
	// RateLimitWaits is the total time calls waited on the rate limiter in
	// the period; when zero it is the sum of Calls' Waited.
	RateLimitWaits time.Duration
	// OpenOrders are orders open for more than 24 h, QRLate completed eSIM
	// services still without a QR code after 24 h, each oldest first. Not
	// the report's rows: every report shows them while the condition holds.
	OpenOrders AttentionList
	QRLate     AttentionList
}

// AttentionList is the full count of one attention condition and its oldest
// rows (at most MaxAttentionRows are shown).
type AttentionList struct {
	Count int
	Rows  []AttentionRow
}

// AttentionRow is one activation on the Attention sheet.
type AttentionRow struct {
	SalesRef  string
	MSN       string
	OrderID   string
	State     string    // the lifecycle state, e.g. "submitted", "completed"
	Since     time.Time // order sent (open orders) or completed (QR codes late)
	Count     int       // polls made (open orders) or QR fetch attempts (QR codes late)
	LastError string
}

// QRRow is one finished activation on the QR codes sheet.
type QRRow struct {
	SalesRef       string
	Customer       string
	Email          string
	MSN            string
	OrderID        string
	ICCID          string
	Outcome        string // e.g. "QR ready", "Provisioned (QR emailed by Octane)"
	CompletedAt    time.Time
	ActivationCode string // LPA string; the image is rendered from it when PNG is empty or unreadable
	PNG            []byte // Octane's QR image, optional
}

// FailureRow is one failed activation on the Failures sheet.
type FailureRow struct {
	SalesRef     string
	Customer     string
	Email        string
	MSN          string
	Step         string
	Code         string
	Message      string
	Attempts     int
	FirstAttempt time.Time // zero: left blank
	LastAttempt  time.Time
}

// RejectRow is one sales row the import refused.
type RejectRow struct {
	File       string
	Line       int
	Reason     string
	Raw        string
	ImportedAt time.Time
}

// CallStat counts Octane calls of one method and outcome.
type CallStat struct {
	Method  string
	Outcome string
	Count   int
	Waited  time.Duration // time spent waiting on the rate limiter before these calls
}

// Options change how a workbook is written.
type Options struct {
	// Password, when set, encrypts the whole workbook (ECMA-376 standard
	// encryption). It never travels with the email.
	Password string
}
