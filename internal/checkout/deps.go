package checkout

import (
	"context"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/db"
	"commerce/internal/platform/money"
)

// The services checkout calls, declared here with just the methods it uses. The wiring
// adapts the inventory, cart, catalog and discount packages to them.

// StockLine is a variant and a quantity to hold or sell.
type StockLine struct {
	VariantID uuid.UUID
	Quantity  int64
}

// Inventory holds and sells stock for a holder (the checkout id).
type Inventory interface {
	// Reserve holds every line for holder for ttl, all or nothing. Reserving again for a
	// holder that still holds a variant must not add to its hold (checkout releases
	// before re-reserving). Errors: *StockError (nothing is left held).
	Reserve(ctx context.Context, holder string, lines []StockLine, ttl time.Duration) error
	// Release returns holder's holds of the variants (those already gone return nothing)
	// and says how many units came back.
	Release(ctx context.Context, holder string, variantIDs []uuid.UUID) (int64, error)
	// Commit turns holder's holds into a sale: marks them committing, runs inTx in the
	// PostgreSQL transaction that decrements on_hand (the transaction rolls back when
	// inTx fails), then deletes the holds. Errors: ErrHoldMissing when the holds lapsed
	// before they could be marked; inTx's error.
	Commit(ctx context.Context, holder string, lines []StockLine, reason string,
		inTx func(ctx context.Context, tx db.Tx) error) error
	// Available says how many units of each variant could be reserved right now (unknown
	// variants absent). It is an instantaneous figure: only Reserve decides.
	Available(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]int64, error)
	// RestockInTx adds quantity units of the variant to on_hand inside tx (ledger row,
	// version bump) and returns the version written; RaiseCounter, called once after tx
	// committed, brings the Redis counter up by the same units.
	RestockInTx(ctx context.Context, tx db.Tx, variantID uuid.UUID, quantity int64, reason, reference string) (int64, error)
	RaiseCounter(ctx context.Context, variantID uuid.UUID, quantity, version int64) error
}

// CartSnapshot is a frozen cart: lines (variant and quantity, no prices) and the coupon.
type CartSnapshot struct {
	Lines  []StockLine
	Coupon string
}

// Carts freezes, unfreezes and clears carts for a checkout.
type Carts interface {
	// Freeze locks owner's cart for checkoutID and returns its content; idempotent for
	// the same checkout. Errors: ErrCartEmpty, *CartLockedError.
	Freeze(ctx context.Context, owner Owner, checkoutID string) (CartSnapshot, error)
	// Peek returns the cart's content and the checkout that has it frozen ("" when it is
	// not frozen), changing nothing.
	Peek(ctx context.Context, owner Owner) (snap CartSnapshot, lockedBy string, err error)
	// Unfreeze unlocks the cart if checkoutID holds the lock (otherwise nothing happens).
	Unfreeze(ctx context.Context, owner Owner, checkoutID string) error
	// ClearFor empties the cart after checkoutID's order, if checkoutID holds the lock.
	ClearFor(ctx context.Context, owner Owner, checkoutID string) error
}

// VariantInfo is what checkout needs to know about a variant, with its current price.
// The wiring converts the catalog's read model to it field by field
// (internal/app/adapters.go).
type VariantInfo struct {
	ID, ProductID                           uuid.UUID
	SKU, ProductName, VariantName, Category string
	Price                                   money.Money
	Active                                  bool
}

// Catalog looks variants up; unknown ids are absent from the map.
type Catalog interface {
	Variants(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]VariantInfo, error)
}

// PriceLine is one line handed to Pricing.
type PriceLine struct {
	VariantID, ProductID uuid.UUID
	Category, SKU, Name  string
	Quantity             int64
	UnitPrice            money.Money
}

// Priced is a priced set of lines. LineDiscounts[i] is the discount on lines[i];
// RulesetVersion is the discount ruleset version the prices came from.
type Priced struct {
	LineDiscounts  []money.Money
	Applied        []AppliedDiscount
	Subtotal       money.Money
	DiscountTotal  money.Money
	Total          money.Money
	RulesetVersion int64
}

// Pricing prices lines with the current discount ruleset. A coupon that does not exist
// or does not apply is ignored (priced without it), not an error.
type Pricing interface {
	Price(ctx context.Context, lines []PriceLine, coupon, currency string) (Priced, error)
}
