package inventory

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/resilience"
)

// Sentinel errors. Methods wrap them with context; match with errors.Is.
var (
	// ErrInsufficientStock: a reservation could not be taken (the error is an
	// *InsufficientStockError naming the short variants), or, from Commit, PostgreSQL's
	// on_hand was below a held quantity (Redis and PostgreSQL disagree: a bug signal).
	ErrInsufficientStock = errors.New("inventory: insufficient stock")
	// ErrHoldMissing: Commit found a hold gone (released, expired, lost with Redis) or for
	// another quantity; nothing was sold and no hold was changed.
	ErrHoldMissing = errors.New("inventory: hold missing")
	// ErrHoldBusy: the holder's hold of a variant is being committed, so it cannot be
	// reserved again or committed by another attempt.
	ErrHoldBusy = errors.New("inventory: hold is being committed")
	// ErrBelowHeld: a decrease of on_hand would leave less than what is held (or below 0).
	ErrBelowHeld = errors.New("inventory: on_hand would fall below what is held")
	// ErrNotFound: the variant has no inventory row.
	ErrNotFound = errors.New("inventory: variant not found")
	// ErrInvalid: a caller mistake (empty lines, quantity < 1, malformed holder, reason
	// not 1–200 characters, delta out of range).
	ErrInvalid = errors.New("inventory: invalid request")
	// ErrPartial: an increase was committed in PostgreSQL but Redis failed before the
	// counter was raised; the counter stays low (safe) until the next reconcile. Do not
	// repeat the adjustment.
	ErrPartial = errors.New("inventory: adjusted in PostgreSQL, Redis counter not raised")
	// ErrConcurrentChange: Set lost its compare-and-set against other changes of the same
	// variant too many times in a row.
	ErrConcurrentChange = errors.New("inventory: concurrent change, retry")
)

// Line is a variant and a quantity to hold or sell.
type Line struct {
	VariantID uuid.UUID
	Quantity  int64
}

// Shortage is a line that could not be held: Requested units while only Available could
// be held at that moment.
type Shortage struct {
	VariantID            uuid.UUID
	Requested, Available int64
}

// InsufficientStockError is the error of a failed Reserve. It lists the line that failed
// and every later line (in variant-id order) that was also short at that moment; lines
// before the failing one were available. errors.Is(err, ErrInsufficientStock) holds.
type InsufficientStockError struct {
	Shortages []Shortage
}

func (e *InsufficientStockError) Error() string {
	parts := make([]string, 0, len(e.Shortages))
	for _, s := range e.Shortages {
		parts = append(parts, fmt.Sprintf("%s requested %d available %d", s.VariantID, s.Requested, s.Available))
	}
	return "inventory: insufficient stock: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInsufficientStock) true.
func (e *InsufficientStockError) Is(target error) bool { return target == ErrInsufficientStock }

// BelowHeldError is the error of an adjustment refused because it would take on_hand
// below what is held: only Available units could be taken. errors.Is(err, ErrBelowHeld).
type BelowHeldError struct {
	VariantID            uuid.UUID
	Requested, Available int64
}

func (e *BelowHeldError) Error() string {
	return fmt.Sprintf("inventory: variant %s: cannot take %d units, only %d are not held",
		e.VariantID, e.Requested, e.Available)
}

// Is makes errors.Is(err, ErrBelowHeld) true.
func (e *BelowHeldError) Is(target error) bool { return target == ErrBelowHeld }

// Hold is one holder's units of a variant. ExpiresAt is the hold's expiry, or for a
// committing hold the moment recovery may decide its commit.
type Hold struct {
	Holder     string
	Quantity   int64
	ExpiresAt  time.Time
	Committing bool
}

// Levels is a variant's stock as PostgreSQL (OnHand, Version) and Redis (Available,
// Holds) see it. Held is the total of all holds (not only the page in Holds); Drift = Available + Held − OnHand is 0 when
// they agree, negative in the safe windows (see the package doc), positive while a sale
// sits between its transaction and its step 3 (its hold still counts but on_hand already
// dropped) and otherwise only if something is wrong.
type Levels struct {
	VariantID uuid.UUID
	OnHand    int64
	Version   int64
	Available int64
	Held      int64
	// HoldsCount is how many holds there are; Holds is the first page of them (the
	// soonest deadlines first, at most 100).
	HoldsCount int64
	Holds      []Hold
	Drift      int64
}

// ReconcileVariant is one variant whose counter disagreed with PostgreSQL.
// RedisAvailable is nil when Redis had no counter.
type ReconcileVariant struct {
	VariantID         uuid.UUID
	OnHand            int64
	Held              int64
	RedisAvailable    *int64
	ExpectedAvailable int64
}

// ReconcileReport says what a Reconcile checked. Drifted lists the variants whose
// counter disagreed (Fixed of them were set; none in a dry run). Skipped counts variants
// whose PostgreSQL read was older than the counter (a concurrent change: nothing to do).
type ReconcileReport struct {
	Checked  int
	Drifted  int
	Fixed    int
	Skipped  int
	Variants []ReconcileVariant
	Duration time.Duration
}

// Hooks let tests stop a Commit or a Reconcile between its steps. A hook returning an
// error makes the operation return that error at once, leaving Redis and PostgreSQL as a
// process that died there would (no cleanup).
type Hooks struct {
	// AfterMark runs after step 1 of Commit (holds marked committing).
	AfterMark func() error
	// AfterTx runs after step 2 of Commit (the PostgreSQL transaction committed).
	AfterTx func() error
	// ReconcileRead runs in Reconcile after PostgreSQL was read for a variant and before
	// the counter is compared (to interleave a concurrent change deterministically).
	ReconcileRead func(variantID uuid.UUID)
	// SweepIndex runs in Sweep after a variant's earliest deadline was read and before
	// the index entry is rewritten from it.
	SweepIndex func(variantID uuid.UUID)
}

// Options configure a Service. Zero fields take the defaults in brackets.
type Options struct {
	// HoldTTL is the hold TTL when Reserve is given ttl <= 0 [15m].
	HoldTTL time.Duration
	// RetryMetrics counts the retries of PostgreSQL serialization failures and deadlocks
	// (nil: not counted).
	RetryMetrics *resilience.Metrics
	// CommitTimeout is how long a committing hold waits before recovery may decide its
	// attempt in PostgreSQL [30s]. Correctness does not depend on it (recovery and a late
	// commit are fenced in PostgreSQL); it only bounds how long a crashed commit's units
	// stay held.
	CommitTimeout time.Duration
	// LoadRetries bounds the load-and-retry rounds when a counter is missing [5].
	LoadRetries int
	// ReclaimBatch is how many expired holds a reserve returns before it reserves [100].
	ReclaimBatch int
	// SweepBatch is how many expired holds one sweep script returns per variant per call [1000].
	SweepBatch int
	// SweepVariants is how many due variants one Sweep visits [10000].
	SweepVariants int
	// ReconcilePage is the PostgreSQL page size of a full Reconcile [500].
	ReconcilePage int
	// Logger logs what cannot be returned (a failed step 3 left to recovery) [slog.Default()].
	Logger *slog.Logger
	// Hooks are for tests.
	Hooks Hooks
}

func (o Options) withDefaults() Options {
	if o.HoldTTL <= 0 {
		o.HoldTTL = 15 * time.Minute
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 30 * time.Second
	}
	if o.LoadRetries <= 0 {
		o.LoadRetries = 5
	}
	if o.ReclaimBatch <= 0 {
		o.ReclaimBatch = 100
	}
	if o.SweepBatch <= 0 {
		o.SweepBatch = 1000
	}
	if o.SweepVariants <= 0 {
		o.SweepVariants = 10000
	}
	if o.ReconcilePage <= 0 {
		o.ReconcilePage = 500
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// MaxAdjust bounds |delta| of one adjustment and on_hand of Set.
const MaxAdjust = 1_000_000

// MaxOnHand bounds the on_hand that Set accepts.
const MaxOnHand = 1_000_000_000

var holderRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

// ValidHolder reports whether holder may own holds: 1–100 characters of [A-Za-z0-9_-]
// (a checkout UUID is one).
func ValidHolder(holder string) bool { return holderRe.MatchString(holder) }

func validReason(reason string) bool {
	n := len([]rune(reason))
	return n >= 1 && n <= 200 && strings.TrimSpace(reason) != ""
}
