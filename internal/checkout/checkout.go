// Package checkout turns a frozen cart into an order: checkout sessions with a state
// machine whose every transition is a compare-and-set (a Lua script on the checkout's
// Redis hash, mirrored by a conditional UPDATE of its PostgreSQL row, the truth), a
// per-cart checkout lock, Stripe-style idempotency keys, payment intents through a
// PaymentProvider, exactly-once order placement through the inventory's commit protocol,
// expiry, recovery after a crash, and an outbox relayed to a Redis Stream.
//
// Exactly once. An order is written in the same PostgreSQL transaction that moves the
// checkout from `completing` to `completed` with a version check (a completer fenced by
// a newer transition writes nothing), next to the stock decrement and an outbox row, and
// orders.checkout_id is UNIQUE. Concurrent completes of one checkout race on the
// `awaiting_payment → completing` claim; the losers wait for the winner and answer with
// the same order.
package checkout

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"commerce/internal/payment"
	"commerce/internal/platform/auth"
	"commerce/internal/platform/idempotency"
	"commerce/internal/platform/money"
)

// Errors returned by this package. The handlers map them to the contract's statuses.
var (
	// ErrNotFound: no such checkout or order, or it belongs to someone else (404).
	ErrNotFound = errors.New("checkout: not found")
	// ErrInvalidOwner: the owner is not a well-formed session or customer.
	ErrInvalidOwner = errors.New("checkout: invalid owner")
	// ErrCartEmpty: the cart has no line that can be bought (422 cart_empty).
	ErrCartEmpty = errors.New("checkout: cart is empty")
	// ErrInProgress: another request is working on this cart or checkout right now
	// (409 checkout_in_progress); retrying later is right.
	ErrInProgress = errors.New("checkout: another request is in progress")
	// ErrConflict: the checkout's state does not allow the operation, e.g. cancelling a
	// completed one (409 conflict).
	ErrConflict = errors.New("checkout: not allowed in the checkout's state")
	// ErrExpired: the checkout expired and its holds could not be taken again (410).
	ErrExpired = errors.New("checkout: expired")
	// ErrPaymentDeclined: the payment provider declined; the checkout stays payable (402).
	ErrPaymentDeclined = errors.New("checkout: payment declined")
	// ErrInsufficientStock: some line cannot be reserved; see *StockError (409).
	ErrInsufficientStock = errors.New("checkout: insufficient stock")
	// ErrInvalidTransition: the state machine forbids the transition (see CanTransition).
	ErrInvalidTransition = errors.New("checkout: invalid state transition")
	// ErrHoldMissing is what an Inventory returns from Commit when the holder's holds
	// lapsed (were reclaimed) before they could be committed.
	ErrHoldMissing = errors.New("checkout: stock holds missing")
	// ErrDeclined is what a PaymentProvider returns from Confirm for a declined payment.
	ErrDeclined = payment.ErrDeclined
	// ErrCartLocked is what Carts returns (as *CartLockedError) when another checkout froze the cart.
	ErrCartLocked = errors.New("checkout: cart locked by another checkout")
)

// Shortage is one line that cannot be reserved: Requested units, Available now.
type Shortage struct {
	VariantID uuid.UUID
	Requested int64
	Available int64
}

// StockError lists the short lines of a failed reservation. errors.Is(err,
// ErrInsufficientStock) holds.
type StockError struct{ Shortages []Shortage }

func (e *StockError) Error() string {
	return fmt.Sprintf("checkout: insufficient stock for %d line(s)", len(e.Shortages))
}

// Is makes errors.Is(err, ErrInsufficientStock) true.
func (e *StockError) Is(target error) bool { return target == ErrInsufficientStock }

// CartLockedError says which checkout froze a cart. errors.Is(err, ErrCartLocked) holds.
type CartLockedError struct{ CheckoutID string }

func (e *CartLockedError) Error() string { return "checkout: cart locked by checkout " + e.CheckoutID }

// Is makes errors.Is(err, ErrCartLocked) true.
func (e *CartLockedError) Is(target error) bool { return target == ErrCartLocked }

// State is a checkout's state.
type State string

// Checkout states: awaiting_payment → completing → completed, and cancelled or expired
// from any state that is not final. A checkout is created in awaiting_payment; reserving
// (before awaiting_payment) is only found on rows older versions of the service wrote.
const (
	StateReserving       State = "reserving"
	StateAwaitingPayment State = "awaiting_payment"
	StateCompleting      State = "completing"
	StateCompleted       State = "completed"
	StateCancelled       State = "cancelled"
	StateExpired         State = "expired"
)

// Valid reports whether s is one of the six states.
func (s State) Valid() bool {
	switch s {
	case StateReserving, StateAwaitingPayment, StateCompleting, StateCompleted, StateCancelled, StateExpired:
		return true
	}
	return false
}

// Final reports whether nothing can happen to a checkout in s any more.
func (s State) Final() bool {
	return s == StateCompleted || s == StateCancelled || s == StateExpired
}

// CanTransition reports whether the state machine allows from → to:
//
//	reserving        → awaiting_payment, cancelled, expired
//	awaiting_payment → completing, cancelled, expired
//	completing       → completed, awaiting_payment (payment declined, or recovery of a
//	                   crashed completion), cancelled, expired
//	completed, cancelled, expired: final, no transition.
func CanTransition(from, to State) bool {
	if !from.Valid() || !to.Valid() || from.Final() || from == to {
		return false
	}
	switch to {
	case StateCancelled, StateExpired:
		return true
	case StateAwaitingPayment:
		return from == StateReserving || from == StateCompleting
	case StateCompleting:
		return from == StateAwaitingPayment
	case StateCompleted:
		return from == StateCompleting
	}
	return false
}

// PaymentStatus is the status of a checkout's payment intent.
type PaymentStatus string

// Payment intent statuses.
const (
	PaymentRequiresPaymentMethod PaymentStatus = "requires_payment_method"
	PaymentRequiresConfirmation  PaymentStatus = "requires_confirmation"
	PaymentSucceeded             PaymentStatus = "succeeded"
	PaymentFailed                PaymentStatus = "failed"
)

// Owner is whose checkout or order it is: an anonymous session or a customer.
type Owner struct {
	Type auth.OwnerType
	ID   string
}

// Validate returns ErrInvalidOwner unless o is a well-formed session or customer id.
func (o Owner) Validate() error {
	if auth.ValidOwner(o.Type, o.ID) {
		return nil
	}
	return ErrInvalidOwner
}

// CartKey is the key of the owner's cart in the "one active checkout per cart"
// constraint (auth.OwnerKey: no session token in an index; the cart's public id).
func (o Owner) CartKey() string { return auth.OwnerKey(o.Type, o.ID) }

// Identity is who is asking: a request may prove a customer and a session at once, and
// may then see what either of them owns.
type Identity struct {
	CustomerID string
	SessionID  string
}

// Owns reports whether the identity is o.
func (id Identity) Owns(o Owner) bool {
	switch o.Type {
	case auth.OwnerCustomer:
		return id.CustomerID != "" && id.CustomerID == o.ID
	case auth.OwnerSession:
		return id.SessionID != "" && id.SessionID == o.ID
	}
	return false
}

// Line is a frozen, priced checkout or order line.
type Line struct {
	VariantID uuid.UUID
	ProductID uuid.UUID
	SKU       string
	Name      string
	Category  string
	Quantity  int64
	UnitPrice money.Money
	LineTotal money.Money
	Discount  money.Money
}

// AppliedDiscount is one discount rule that took an amount off. Code is "" for an
// automatic rule.
type AppliedDiscount struct {
	ID     uuid.UUID
	Name   string
	Code   string
	Amount money.Money
}

// Checkout is a checkout session as stored in PostgreSQL.
type Checkout struct {
	ID              uuid.UUID
	Owner           Owner
	State           State
	Email           string
	Lines           []Line
	Applied         []AppliedDiscount
	Coupon          string
	Currency        string
	Subtotal        money.Money
	DiscountTotal   money.Money
	Total           money.Money
	DiscountVersion int64
	PaymentIntentID string
	PaymentStatus   PaymentStatus
	// ClientSecret is the intent's client secret, for the storefront's client-side
	// confirmation (shown to the checkout's owner only).
	ClientSecret  string
	OrderID       uuid.UUID // uuid.Nil until completed
	Version       int64
	ExpiresAt     time.Time
	HoldsExpireAt time.Time // zero when no holds were taken
	CreatedAt     time.Time
	UpdatedAt     time.Time
	CleanedAt     time.Time // zero until the side effects of a final state are done

	dbNow time.Time // PostgreSQL's clock when the row was read
}

// Order statuses.
const (
	OrderPlaced            = "placed"
	OrderPartiallyRefunded = "partially_refunded"
	OrderRefunded          = "refunded"
	OrderCancelled         = "cancelled"
)

// Refund is a refund of (part of) an order. Status: pending (decided, the provider has
// not confirmed it yet), succeeded, failed.
type Refund struct {
	ID        uuid.UUID
	Amount    money.Money
	Status    string
	Reason    string
	CreatedAt time.Time
}

// Order is a placed order.
type Order struct {
	ID              uuid.UUID
	Number          int64
	CheckoutID      uuid.UUID
	Owner           Owner
	Status          string // placed, partially_refunded, refunded, cancelled
	RefundedTotal   money.Money
	Refunds         []Refund
	Email           string
	Lines           []Line
	Applied         []AppliedDiscount
	Currency        string
	Subtotal        money.Money
	DiscountTotal   money.Money
	Total           money.Money
	DiscountVersion int64
	PaymentIntentID string
	CreatedAt       time.Time
}

// Completion is the result of a successful complete: the completed checkout and its order.
type Completion struct {
	Checkout Checkout
	Order    Order
}

// Options configure a Service. Zero values take the defaults.
type Options struct {
	// EventsMaxLen bounds the events:orders stream: each XADD trims it to about this many
	// entries (MAXLEN ~; default 100 000).
	EventsMaxLen int64
	HoldTTL      time.Duration // lifetime of the stock holds (default 15 min)
	CheckoutTTL  time.Duration // a checkout not completed by then expires (default 15 min)
	Currency     string        // shop currency (default USD)
	IdemTTL      time.Duration // how long an idempotent response is replayed (default 24 h)
	// IdemInFlightTTL bounds how long an idempotency key stays "in flight" when its
	// request dies without finishing: the request deadline plus a margin (default 35 s).
	IdemInFlightTTL time.Duration
	// Idempotency, when set, is the shared store of Idempotency-Key records (IdemTTL and
	// IdemInFlightTTL are then its own); nil makes one from IdemTTL and IdemInFlightTTL.
	Idempotency *idempotency.Store
	// LockTTL is the lease of the per-cart creation lock, renewed every third of it while
	// a creation runs (default 5 s): a creation whose process died blocks its cart for
	// at most this long.
	LockTTL time.Duration
	// ClaimLease: a claimed Redis transition not confirmed within it is considered dead
	// and the hash is rebuilt from PostgreSQL (default 30 s).
	ClaimLease time.Duration
	// CompleteWait: how long a complete waits for a concurrent complete of the same
	// checkout before answering 409 checkout_in_progress (default 10 s).
	CompleteWait time.Duration
	// HoldRefresh: complete re-takes the holds before charging when less than this is left
	// of them (default 30 s, at most HoldTTL/2).
	HoldRefresh time.Duration
	// StaleAfter: Recover treats a checkout stuck in reserving or completing for longer
	// as abandoned by a crashed request (default 2 min, at least ClaimLease).
	StaleAfter time.Duration
	Logger     *slog.Logger // default slog.Default()
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HoldTTL, 15*time.Minute)
	def(&o.CheckoutTTL, 15*time.Minute)
	if o.EventsMaxLen <= 0 {
		o.EventsMaxLen = defaultEventsMaxLen
	}
	def(&o.IdemTTL, 24*time.Hour)
	def(&o.IdemInFlightTTL, 35*time.Second)
	def(&o.LockTTL, 5*time.Second)
	def(&o.ClaimLease, 30*time.Second)
	def(&o.CompleteWait, 10*time.Second)
	def(&o.HoldRefresh, 30*time.Second)
	def(&o.StaleAfter, 2*time.Minute)
	if o.HoldRefresh > o.HoldTTL/2 {
		o.HoldRefresh = o.HoldTTL / 2
	}
	if o.StaleAfter < o.ClaimLease {
		o.StaleAfter = o.ClaimLease
	}
	if o.Currency == "" {
		o.Currency = "USD"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}
