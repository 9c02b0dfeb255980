package jobs

import (
	"context"
	"time"

	"github.com/esimbatch/esimbatch/octane"
	"github.com/esimbatch/esimbatch/repo"
)

// Store is what the phases need from the store (*repo.Store satisfies it).
// The transitions that record an Octane answer take the answered calls
// (repo.AnsweredCall) to write in the same statement; see answers.
// Every guarded method returns repo.ErrLostClaim when the row moved under us.
// Claims, releases and reservations take the pass's credential
// (Config.Credential): a row belongs to the credential that first claimed
// it, a number to the one that reserved it (docs/design.md).
type Store interface {
	StartRun(ctx context.Context, at time.Time, credential string, phases []string, dryRun bool) (int64, error)
	FinishRun(ctx context.Context, runID int64, at time.Time, outcome string, counts map[string]int, errMsg string) error
	RenewRun(ctx context.Context, runID int64, until time.Time) error
	RecordCall(ctx context.Context, c repo.Call) error

	ClaimPending(ctx context.Context, now time.Time, runID int64, credential string, limit int, lease time.Duration) ([]repo.Activation, error)
	SetCustomer(ctx context.Context, a *repo.Activation, custNo int64, now time.Time) error
	StoreReservations(ctx context.Context, runID int64, credential string, sentAt time.Time, msns []repo.Reservation) ([]repo.Reservation, error)
	MarkSelected(ctx context.Context, a *repo.Activation, r repo.Reservation, now time.Time, calls ...repo.AnsweredCall) error
	BeginOrder(ctx context.Context, a *repo.Activation, g repo.LockGuard, qrByEmail bool, now time.Time) error
	OrderAccepted(ctx context.Context, a *repo.Activation, orderID string, now, nextPoll time.Time, calls ...repo.AnsweredCall) error
	Fail(ctx context.Context, a *repo.Activation, step repo.Step, code, msg string, now time.Time) error
	Backoff(ctx context.Context, a *repo.Activation, step repo.Step, code, msg string, now time.Time, policy repo.RetryPolicy) (bool, error)
	BackToPending(ctx context.Context, a *repo.Activation, step repo.Step, outcome string, now time.Time) error
	Unclaim(ctx context.Context, a *repo.Activation) error
	FreeReservations(ctx context.Context, runID int64) ([]repo.Reservation, error)
	ReleaseReservation(ctx context.Context, credential string, r repo.Reservation, now time.Time) error

	Peek(ctx context.Context, kind repo.PeekKind, credential string, now time.Time, afterID int64, limit int) ([]repo.Activation, error)
	ClaimUnknownOrders(ctx context.Context, now time.Time, runID int64, credential string, limit int, lease time.Duration) ([]repo.Activation, error)
	ReconcileResubmit(ctx context.Context, a *repo.Activation, now time.Time) error
	ReconcileAdopt(ctx context.Context, a *repo.Activation, now, nextPoll time.Time) error

	DueReleases(ctx context.Context, now, olderThan time.Time, runID int64, credential string, limit int) ([]repo.Reservation, error)

	ClaimPolls(ctx context.Context, now, nextPoll time.Time, runID int64, credential string, limit int, lease time.Duration) ([]repo.Activation, error)
	OrderCompleted(ctx context.Context, a *repo.Activation, serviceNumber string, awaitQR bool, now time.Time, calls ...repo.AnsweredCall) error
	ClaimQR(ctx context.Context, now time.Time, runID int64, credential string, limit int, lease time.Duration) ([]repo.Activation, error)
	QRReady(ctx context.Context, a *repo.Activation, code string, png []byte, iccid string, now time.Time, calls ...repo.AnsweredCall) error
	CompletedWithQR(ctx context.Context, a *repo.Activation, serviceNumber, code string, png []byte, iccid string, now time.Time) error

	// Due sizes a phase for its progress lines (total and ETA), and
	// Waiting counts what a pass leaves for the next.
	Due(ctx context.Context, kind repo.DueKind, credential string, now time.Time) (int, error)
	Waiting(ctx context.Context) (map[repo.State]int, error)
}

// Octane is what the phases need from the Octane client (*octane.Client
// satisfies it). Errors are the client's: *octane.APIError kinds and
// *octane.TransportError.
type Octane interface {
	AddCustomer(ctx context.Context, c octane.Customer) (int64, error)
	QueryResources(ctx context.Context, value string) ([]octane.PooledResource, error)
	ReserveResources(ctx context.Context, n int) ([]octane.Reservation, error)
	SelectResource(ctx context.Context, msn string) error
	UnreserveResource(ctx context.Context, msn string) error
	// Acquire grants a limiter slot ahead of the call (budget-first
	// submitting: no number is reserved before its orderCreate can go).
	Acquire(ctx context.Context, method string) (*octane.Slot, error)
	OrderCreate(ctx context.Context, req octane.OrderRequest) (string, error)
	OrderQuery(ctx context.Context, orderID string) (octane.OrderStatus, error)
	GetEsimQR(ctx context.Context, msn string) (octane.EsimQR, error)
	GetSIMDetails(ctx context.Context, msn string) (octane.SIMDetails, error)
}

// Lock is a held run lock. When it also has Check(ctx) error (as
// *repo.RunLock does), a pass confirms the lock before every phase and every
// claim and stops, wrapping ErrStopped, when Check fails.
type Lock interface {
	Release(ctx context.Context) error
}

// Locker takes the run lock for a key; it returns an error wrapping
// repo.ErrLocked when another run holds it.
type Locker func(ctx context.Context, key string) (Lock, error)

// repoLocker is the store's lock method, as *repo.Store declares it.
type repoLocker interface {
	AcquireRunLock(ctx context.Context, key string) (*repo.RunLock, error)
}

// PhaseFunc is a pluggable phase (import, report): it runs at the injected
// time now and returns counts for the run record and the phase log line.
type PhaseFunc func(ctx context.Context, now time.Time) (map[string]int, error)

type ctxKey int

const (
	keyRun ctxKey = iota
	keyActivation
	keyDryRun
	keyAnswers
)

// withDryRun marks a dry run's context: its calls are not recorded (a dry
// run leaves no trace in the database).
func withDryRun(ctx context.Context) context.Context {
	return context.WithValue(ctx, keyDryRun, true)
}

func withRun(ctx context.Context, runID int64) context.Context {
	return context.WithValue(ctx, keyRun, runID)
}

func withActivation(ctx context.Context, id int64) context.Context {
	return context.WithValue(ctx, keyActivation, id)
}
