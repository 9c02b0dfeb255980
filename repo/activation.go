package repo

import (
	"log/slog"
	"strings"
	"time"
)

// State is an activation's lifecycle state (docs/design.md).
type State string

// The lifecycle states; the schema's CHECK constraint holds exactly these.
const (
	StatePending     State = "pending"
	StateSelected    State = "selected"
	StateOrdering    State = "ordering"
	StateSubmitted   State = "submitted"
	StateCompleted   State = "completed"
	StateProvisioned State = "provisioned"
	StateQRReady     State = "qr_ready"
	StateFailed      State = "failed"
	// StateCancelled: an operator stopped a pending or selected row before
	// its order (batch cancel); terminal, reported once.
	StateCancelled State = "cancelled"
)

// States lists every state in lifecycle order.
func States() []State {
	return []State{StatePending, StateSelected, StateOrdering, StateSubmitted,
		StateCompleted, StateProvisioned, StateQRReady, StateFailed, StateCancelled}
}

// Terminal reports whether st is an end state (reported once, never moved).
func (st State) Terminal() bool {
	return st == StateQRReady || st == StateProvisioned || st == StateFailed || st == StateCancelled
}

// Activation is one sales row on its way to a live service: a row of the
// activations table. ActivationCode and QRPNG are credentials: LogValue
// leaves them out.
type Activation struct {
	ID         int64  `db:"id"`
	SalesRef   string `db:"sales_ref"`
	GivenNames string `db:"given_names"`
	Surname    string `db:"surname"`
	Email      string `db:"email"`

	AddressLine1 string `db:"address_line1"`
	Suburb       string `db:"suburb"`
	AddrState    string `db:"addr_state"`
	Postcode     string `db:"postcode"`
	Notes        string `db:"notes"`

	CustNo    *int64 `db:"cust_no"`
	PlanNo    int    `db:"plan_no"`
	SIMType   string `db:"sim_type"` // "esim" | "physical"
	SIMSerial string `db:"sim_serial"`

	State      State      `db:"state"`
	MSN        string     `db:"msn"`
	ReservedAt *time.Time `db:"reserved_at"`

	OrderID       string     `db:"order_id"`
	OrderSentAt   *time.Time `db:"order_sent_at"`
	OrderAttempts int        `db:"order_attempts"`
	QRByEmail     bool       `db:"qr_by_email"`
	Adopted       bool       `db:"adopted"`

	NextPollAt    *time.Time `db:"next_poll_at"`
	LastPollAt    *time.Time `db:"last_poll_at"`
	PollCount     int        `db:"poll_count"`
	ServiceNumber string     `db:"service_number"`
	CompletedAt   *time.Time `db:"completed_at"`

	ActivationCode string `db:"activation_code"`
	QRPNG          []byte `db:"qr_png"`
	ICCID          string `db:"iccid"`

	Attempts         int        `db:"attempts"`
	NextAttemptAt    time.Time  `db:"next_attempt_at"`
	FirstAttemptAt   *time.Time `db:"first_attempt_at"`
	LastAttemptAt    *time.Time `db:"last_attempt_at"`
	LastErrorStep    string     `db:"last_error_step"`
	LastErrorCode    string     `db:"last_error_code"`
	LastErrorMessage string     `db:"last_error_message"`

	ClaimToken string     `db:"claim_token"`
	ClaimUntil *time.Time `db:"claim_until"`
	RunID      *int64     `db:"run_id"`
	// Credential is the Octane user name that owns the row: "" while no
	// credential has claimed it, then the first claimer's for good (every
	// Octane call for the row goes through it; docs/design.md).
	Credential string `db:"credential"`

	ReportedAt *time.Time `db:"reported_at"`
	ImportID   *int64     `db:"import_id"`
	SourceLine int        `db:"source_line"`
	CreatedAt  time.Time  `db:"created_at"`
	UpdatedAt  time.Time  `db:"updated_at"`
	// Retries counts the times an operator put the row back (batch retry);
	// each life of the row is reported once.
	Retries int `db:"retries"`
}

// LogValue logs the row's identity and progress, never the activation code,
// the QR image or the claim token.
func (a Activation) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.Int64("id", a.ID),
		slog.String("sales_ref", a.SalesRef),
		slog.String("state", string(a.State)),
	}
	if a.Credential != "" {
		attrs = append(attrs, slog.String("credential", a.Credential))
	}
	if a.MSN != "" {
		attrs = append(attrs, slog.String("msn", a.MSN))
	}
	if a.OrderID != "" {
		attrs = append(attrs, slog.String("order_id", a.OrderID))
	}
	if a.Attempts > 0 {
		attrs = append(attrs, slog.Int("attempts", a.Attempts))
	}
	return slog.GroupValue(attrs...)
}

// activationColumns is every column of activations, in the struct's order.
const activationColumns = `id, sales_ref, given_names, surname, email,
address_line1, suburb, addr_state, postcode, notes,
cust_no, plan_no, sim_type, sim_serial,
state, msn, reserved_at,
order_id, order_sent_at, order_attempts, qr_by_email, adopted,
next_poll_at, last_poll_at, poll_count, service_number, completed_at,
activation_code, qr_png, iccid,
attempts, next_attempt_at, first_attempt_at, last_attempt_at,
last_error_step, last_error_code, last_error_message,
claim_token, claim_until, run_id, credential,
reported_at, import_id, source_line, created_at, updated_at, retries`

// activationCols returns activationColumns, each prefixed (e.g. "t.").
func activationCols(prefix string) string {
	if prefix == "" {
		return activationColumns
	}
	parts := strings.Split(activationColumns, ",")
	for i, p := range parts {
		parts[i] = prefix + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}
