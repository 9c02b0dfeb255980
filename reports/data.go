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
// the order is fixed and checked against testdata/columns.golden. The
// credential (the Octane user that owns the row) is last on every sheet, so
// the columns before it keep their places.
var (
	QRColumns = []string{"Sales reference", "Customer", "Email", "MSN", "Order ID", "ICCID",
		"Outcome", "Completed (UTC)", "Activation code", "QR code", ColumnCredential}
	FailureColumns = []string{"Sales reference", "Customer", "Email", "MSN", "Failed step",
		"Octane error code", "Octane message", "Our reason", "What to do",
		"Attempts", "First attempt (UTC)", "Last attempt (UTC)", ColumnCredential}
	RejectColumns    = []string{"File", "Line", "Reason", "Raw row", "Imported (UTC)", ColumnCredential}
	AttentionColumns = []string{"Issue", "Sales reference", "MSN", "Order ID", "State", "Since (UTC)",
		"Polls / attempts", "Last error", ColumnCredential}
)

// ColumnCredential heads the last column of every sheet's table: the Octane
// user name that owns the row (empty on Rejected imports: a rejected line
// never reaches Octane) or, on the Summary, made the calls.
const ColumnCredential = "Credential"

// Outcome keys of Data.Counts and Data.Totals besides the lifecycle states.
const (
	// OutcomeProvisionedPhysical and OutcomeProvisionedEmailed split the
	// provisioned services, which have no QR code in the workbook: a
	// physical SIM, and an eSIM whose QR code Octane emailed itself.
	OutcomeProvisionedPhysical = "provisioned_physical"
	OutcomeProvisionedEmailed  = "provisioned_emailed"
	// OutcomeRejected counts sales rows rejected on import, OutcomeRefused
	// files refused whole.
	OutcomeRejected = "rejected"
	OutcomeRefused  = "refused_files"
)

// Outcome keys the Summary lists first, in this order; other keys follow
// sorted by name. "provisioned" undivided is listed only when given.
var outcomeOrder = []string{"qr_ready", OutcomeProvisionedPhysical, OutcomeProvisionedEmailed, "failed",
	OutcomeRejected, OutcomeRefused, "cancelled",
	"pending", "selected", "ordering", "submitted", "completed", "provisioned"}

// reportOutcomes are the outcomes a report delivers, the head of
// outcomeOrder: always listed, with a count for this report and to date.
var reportOutcomes = outcomeOrder[:6]

// chartOutcomes are the outcomes the Summary's chart shows: the rows and
// activations a report delivers (refused files are files, not rows).
var chartOutcomes = outcomeOrder[:5]

// outcomeLabel is the Summary's wording of an outcome key; a key it does not
// know is shown as it is.
func outcomeLabel(key string) string {
	switch key {
	case "qr_ready":
		return "QR ready"
	case OutcomeProvisionedPhysical:
		return "Provisioned: physical SIM"
	case OutcomeProvisionedEmailed:
		return "Provisioned: QR emailed by Octane"
	case OutcomeRejected:
		return "Rejected on import"
	case OutcomeRefused:
		return "Files refused on import"
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
	// Refused are files refused whole on import, listed on the Rejected
	// imports sheet before the rows.
	Refused []RefusedFile
	// Counts are this report's rows by outcome ("qr_ready",
	// OutcomeProvisionedPhysical, OutcomeProvisionedEmailed, "failed",
	// OutcomeRejected, OutcomeRefused); Totals the same to date, and every
	// activation to date by lifecycle state. A key missing from either is a
	// blank cell, not a 0.
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
	SalesRef   string
	MSN        string
	OrderID    string
	State      string    // the lifecycle state, e.g. "submitted", "completed"
	Since      time.Time // order sent (open orders) or completed (QR codes late)
	Count      int       // polls made (open orders) or QR fetch attempts (QR codes late)
	LastError  string
	Credential string // the Octane user that owns the row
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
	Credential     string // the Octane user that owns the row
}

// FailureRow is one failed activation on the Failures sheet. Octane's words
// and ours are apart: Code and Message are Octane's (blank when Octane gave
// no answer, or the failure is our own finding), Reason is ours, Advice what
// an operator does about it.
type FailureRow struct {
	SalesRef     string
	Customer     string
	Email        string
	MSN          string
	Step         string
	Code         string // Octane's error code, or its order status (REJECTED, CANCELLED)
	Message      string // Octane's message
	Reason       string // our reason
	Advice       string // what to do
	Attempts     int
	FirstAttempt time.Time // zero: left blank
	LastAttempt  time.Time
	Credential   string // the Octane user that owns the row ("" if none claimed it)
}

// RejectRow is one sales row the import refused.
type RejectRow struct {
	File       string
	Line       int
	Reason     string
	Raw        string
	ImportedAt time.Time
	Credential string // always "" today: a rejected line is never worked by a credential
}

// RefusedFile is a sales file the import refused whole: no row of it was
// read.
type RefusedFile struct {
	File      string
	Reason    string
	MovedTo   string // the import folder's subfolder it went to ("rejected"), "" when it stayed
	RefusedAt time.Time
}

// CallStat counts Octane calls of one method and outcome.
type CallStat struct {
	Method     string
	Outcome    string
	Count      int
	Waited     time.Duration // time spent waiting on the rate limiter before these calls
	Credential string        // the Octane user that made them
}

// Options change how a workbook is written.
type Options struct {
	// Password, when set, encrypts the whole workbook (ECMA-376 standard
	// encryption). It never travels with the email.
	Password string
}
