// Package cart keeps shopping carts (L3): one Redis hash per owner (an anonymous session or
// a customer), changed only by one Lua script per operation so that concurrent requests
// never lose an update, priced on every read with the catalog's current prices and the
// discount rules, merged into the customer's cart at login, and frozen while a checkout
// runs. It also keeps customers' preferences.
//
// Durability: a customer cart is snapshotted to PostgreSQL (customer_carts) behind the
// write, in batches, and restored from that snapshot when Redis no longer has it, so a
// Redis loss costs at most the changes of the last flush interval. An anonymous (session)
// cart lives only in Redis: when Redis loses its data, session carts are gone (the
// sessions themselves are gone too, so the storefront starts a new session with an empty
// cart). The checkout lock is not part of the snapshot: a customer cart restored after a
// Redis loss comes back unlocked.
package cart

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/auth"
	"commerce/internal/platform/money"
)

// Limits of the API contract.
const (
	MaxLines    = 50  // lines per cart
	MaxQuantity = 100 // units per line
)

// Errors returned by this package. Handlers map them to the contract's statuses.
var (
	ErrInvalidOwner        = errors.New("cart: invalid owner")
	ErrVariantNotFound     = errors.New("cart: unknown or inactive variant")
	ErrQuantity            = errors.New("cart: quantity must be between 1 and 100 per line")
	ErrTooManyLines        = errors.New("cart: a cart holds at most 50 lines")
	ErrInsufficientStock   = errors.New("cart: insufficient stock")
	ErrLocked              = errors.New("cart: locked by a checkout")
	ErrEmpty               = errors.New("cart: empty")
	ErrInvalidCoupon       = errors.New("cart: malformed coupon code")
	ErrCouponNotFound      = errors.New("cart: unknown coupon code")
	ErrCouponNotApplicable = errors.New("cart: coupon not applicable")
	ErrInvalidCheckoutID   = errors.New("cart: invalid checkout id")
)

// LockedError says which checkout froze the cart. errors.Is(err, ErrLocked) holds.
type LockedError struct{ CheckoutID string }

func (e *LockedError) Error() string        { return "cart: locked by checkout " + e.CheckoutID }
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// StockError is a failed soft stock check: the line would hold Requested units while only
// Available can be reserved now. errors.Is(err, ErrInsufficientStock) holds.
type StockError struct {
	VariantID uuid.UUID
	Requested int64
	Available int64
}

func (e *StockError) Error() string {
	return fmt.Sprintf("cart: variant %s: requested %d, available %d", e.VariantID, e.Requested, e.Available)
}
func (e *StockError) Is(target error) bool { return target == ErrInsufficientStock }

// Owner is whose cart it is: an anonymous session or a customer.
type Owner struct {
	Type auth.OwnerType
	ID   string
}

// SessionOwner returns the owner of session id's cart.
func SessionOwner(id string) Owner { return Owner{Type: auth.OwnerSession, ID: id} }

// CustomerOwner returns the owner of customer id's cart.
func CustomerOwner(id string) Owner { return Owner{Type: auth.OwnerCustomer, ID: id} }

// Validate returns ErrInvalidOwner unless o is a session with a well-formed session id or
// a customer with a well-formed customer id (so it is safe inside a Redis key).
func (o Owner) Validate() error {
	if auth.ValidOwner(o.Type, o.ID) {
		return nil
	}
	return ErrInvalidOwner
}

// CartID is the cart's public, stable, opaque id (auth.OwnerKey: never the session token).
func (o Owner) CartID() string { return auth.OwnerKey(o.Type, o.ID) }

// Line is a variant and how many units of it the cart holds.
type Line struct {
	VariantID uuid.UUID
	Quantity  int64
}

// Snapshot is the frozen content of a cart handed to checkout: variant ids and quantities
// (never prices) and the coupon code ("" for none). Lines may name variants that are no
// longer active; the priced cart hides those, checkout has to refuse or skip them.
type Snapshot struct {
	Lines  []Line
	Coupon string
}

// VariantInfo is what the cart needs to know about a variant. The wiring converts the
// catalog's read model to it field by field (internal/app/adapters.go).
type VariantInfo struct {
	ID, ProductID                           uuid.UUID
	SKU, ProductName, VariantName, Category string
	Price                                   money.Money
	Active                                  bool
}

// Catalog looks variants up with their current prices. Unknown ids are absent from the map.
type Catalog interface {
	Variants(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]VariantInfo, error)
}

// Stock tells how many units of each variant can be reserved now (absent = 0).
type Stock interface {
	Available(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]int64, error)
}

// CounterKeys may be implemented by a Stock whose available-units counters live in the
// carts' Redis: CounterKey returns the key of a variant's counter, or false when the
// counter may be on another node (Redis Cluster). The add and set scripts then read the
// counter themselves, saving a round trip. A counter the key names holds the units
// available (negative counts as 0); a missing one makes the service ask Available.
type CounterKeys interface {
	CounterKey(id uuid.UUID) (string, bool)
}

// PriceLine is one visible cart line handed to the Pricer.
type PriceLine struct {
	VariantID, ProductID uuid.UUID
	Category             string
	SKU, Name            string
	Quantity             int64
	UnitPrice            money.Money
}

// AppliedDiscount is one discount the Pricer applied. Code is "" for an automatic one.
type AppliedDiscount struct {
	ID     uuid.UUID
	Name   string
	Code   string
	Amount money.Money
}

// Priced is the Pricer's result. LineDiscounts[i] is the discount on lines[i] (nil or
// short means zero for the missing lines).
type Priced struct {
	LineDiscounts []money.Money
	Applied       []AppliedDiscount
	Subtotal      money.Money
	DiscountTotal money.Money
	Total         money.Money
}

// Pricer prices cart lines with the discount rules. Price must ignore a coupon that no
// longer exists or applies (the cart keeps it; it is re-checked at every read).
// CheckCoupon returns ErrCouponNotFound or ErrCouponNotApplicable (possibly wrapped).
type Pricer interface {
	Price(ctx context.Context, lines []PriceLine, coupon string) (Priced, error)
	CheckCoupon(ctx context.Context, lines []PriceLine, code string) error
}

// NoDiscounts is the Pricer used until the discount rules exist: no discounts (total =
// subtotal) and no coupon is known.
type NoDiscounts struct{ Currency string }

// Price returns the subtotal of lines as the total.
func (p NoDiscounts) Price(_ context.Context, lines []PriceLine, _ string) (Priced, error) {
	sub := money.Zero(p.Currency)
	for _, l := range lines {
		var err error
		if sub, err = sub.Add(l.UnitPrice.Mul(l.Quantity)); err != nil {
			return Priced{}, err
		}
	}
	return Priced{Subtotal: sub, DiscountTotal: money.Zero(p.Currency), Total: sub}, nil
}

// CheckCoupon always returns ErrCouponNotFound.
func (NoDiscounts) CheckCoupon(context.Context, []PriceLine, string) error { return ErrCouponNotFound }

// Cart is a priced cart as the storefront sees it. Lines of variants that are unknown or
// inactive stay in Redis (they come back if the product is re-activated, and still count
// towards MaxLines) but are left out of Lines and of every total; Hidden lists them.
type Cart struct {
	ID            string
	Owner         auth.OwnerType
	Lines         []PricedLine
	Hidden        []uuid.UUID
	Coupon        string
	Applied       []AppliedDiscount
	Subtotal      money.Money
	DiscountTotal money.Money
	Total         money.Money
	LockedBy      string    // checkout id, "" when not frozen
	UpdatedAt     time.Time // zero for a cart that was never written
	ExpiresAt     time.Time // zero for a cart that does not exist yet
}

// PricedLine is a visible cart line with current prices.
type PricedLine struct {
	VariantID uuid.UUID
	SKU       string
	Name      string
	Quantity  int64
	UnitPrice money.Money
	LineTotal money.Money
	Discount  money.Money
}

// Options configure a Service. Zero values take the defaults.
type Options struct {
	SessionTTL  time.Duration // sliding lifetime of a session cart (default 7 days)
	CustomerTTL time.Duration // sliding lifetime of a customer cart in Redis (default 30 days)
	Currency    string        // shop currency (default USD)

	SnapshotQueue    int           // bounded queue of customer-cart snapshots (default 4096)
	SnapshotBatch    int           // rows per PostgreSQL batch (default 200)
	SnapshotInterval time.Duration // flush period (default 500 ms)

	Logger *slog.Logger // default slog.Default()
}

func (o Options) withDefaults() Options {
	if o.SessionTTL <= 0 {
		o.SessionTTL = 7 * 24 * time.Hour
	}
	if o.CustomerTTL <= 0 {
		o.CustomerTTL = 30 * 24 * time.Hour
	}
	if o.Currency == "" {
		o.Currency = "USD"
	}
	if o.SnapshotQueue <= 0 {
		o.SnapshotQueue = 4096
	}
	if o.SnapshotBatch <= 0 {
		o.SnapshotBatch = 200
	}
	if o.SnapshotInterval <= 0 {
		o.SnapshotInterval = 500 * time.Millisecond
	}
	return o
}
