package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"commerce/internal/cart"
	"commerce/internal/catalog"
	"commerce/internal/checkout"
	"commerce/internal/discount"
	"commerce/internal/inventory"
	"commerce/internal/platform/db"
	"commerce/internal/platform/money"
)

// The adapters below fit the inventory, cart, catalog and discount services to the
// small interfaces the checkout and cart packages declare (checkout.Inventory, Carts,
// Catalog, Pricing; cart.Catalog), translating their types and sentinel errors. The
// wiring and the checkout integration tests use the same adapters.

// VariantSource is what the catalog offers (catalog.Cache, catalog.Service).
type VariantSource interface {
	Variants(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]catalog.VariantInfo, error)
}

// CheckoutCatalog adapts a VariantSource to checkout.Catalog.
type CheckoutCatalog struct{ Src VariantSource }

var _ checkout.Catalog = CheckoutCatalog{}

// Variants returns the variants as checkout sees them, converted field by field (a
// field added to the catalog's VariantInfo reaches checkout only when added here).
func (a CheckoutCatalog) Variants(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]checkout.VariantInfo, error) {
	vs, err := a.Src.Variants(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]checkout.VariantInfo, len(vs))
	for id, v := range vs {
		out[id] = checkout.VariantInfo{ID: v.ID, ProductID: v.ProductID, SKU: v.SKU, ProductName: v.ProductName,
			VariantName: v.VariantName, Category: v.Category, Price: v.Price, Active: v.Active}
	}
	return out, nil
}

// CartCatalog adapts a VariantSource to cart.Catalog.
type CartCatalog struct{ Src VariantSource }

var _ cart.Catalog = CartCatalog{}

// Variants returns the variants as the cart sees them, converted field by field.
func (a CartCatalog) Variants(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]cart.VariantInfo, error) {
	vs, err := a.Src.Variants(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]cart.VariantInfo, len(vs))
	for id, v := range vs {
		out[id] = cart.VariantInfo{ID: v.ID, ProductID: v.ProductID, SKU: v.SKU, ProductName: v.ProductName,
			VariantName: v.VariantName, Category: v.Category, Price: v.Price, Active: v.Active}
	}
	return out, nil
}

// CheckoutCarts adapts *cart.Service to checkout.Carts.
type CheckoutCarts struct{ S *cart.Service }

var _ checkout.Carts = CheckoutCarts{}

func cartOwner(o checkout.Owner) cart.Owner { return cart.Owner{Type: o.Type, ID: o.ID} }

// Freeze freezes the cart; cart.ErrEmpty becomes checkout.ErrCartEmpty and
// *cart.LockedError a *checkout.CartLockedError.
func (a CheckoutCarts) Freeze(ctx context.Context, o checkout.Owner, checkoutID string) (checkout.CartSnapshot, error) {
	snap, err := a.S.Freeze(ctx, cartOwner(o), checkoutID)
	var le *cart.LockedError
	switch {
	case errors.As(err, &le):
		return checkout.CartSnapshot{}, &checkout.CartLockedError{CheckoutID: le.CheckoutID}
	case errors.Is(err, cart.ErrEmpty):
		return checkout.CartSnapshot{}, checkout.ErrCartEmpty
	case errors.Is(err, cart.ErrInvalidOwner):
		return checkout.CartSnapshot{}, checkout.ErrInvalidOwner
	case err != nil:
		return checkout.CartSnapshot{}, err
	}
	return toCheckoutSnapshot(snap), nil
}

func toCheckoutSnapshot(snap cart.Snapshot) checkout.CartSnapshot {
	out := checkout.CartSnapshot{Coupon: snap.Coupon, Lines: make([]checkout.StockLine, len(snap.Lines))}
	for i, l := range snap.Lines {
		out.Lines[i] = checkout.StockLine{VariantID: l.VariantID, Quantity: l.Quantity}
	}
	return out
}

// Peek returns the cart's content and the checkout that has it frozen.
func (a CheckoutCarts) Peek(ctx context.Context, o checkout.Owner) (checkout.CartSnapshot, string, error) {
	snap, lockedBy, err := a.S.Peek(ctx, cartOwner(o))
	if err != nil {
		return checkout.CartSnapshot{}, "", err
	}
	return toCheckoutSnapshot(snap), lockedBy, nil
}

// Unfreeze unlocks the cart if checkoutID holds it.
func (a CheckoutCarts) Unfreeze(ctx context.Context, o checkout.Owner, checkoutID string) error {
	return a.S.Unfreeze(ctx, cartOwner(o), checkoutID)
}

// ClearFor empties the cart after checkoutID's order.
func (a CheckoutCarts) ClearFor(ctx context.Context, o checkout.Owner, checkoutID string) error {
	return a.S.ClearFor(ctx, cartOwner(o), checkoutID)
}

// RulesetLoader is what the discount rules offer (discount.Cache, discount.Store).
type RulesetLoader interface {
	Load(ctx context.Context) (discount.Ruleset, error)
}

// CheckoutPricing adapts the discount engine and a ruleset source to checkout.Pricing. Now is
// the clock rules are evaluated at (time.Now when nil).
type CheckoutPricing struct {
	Rules RulesetLoader
	Now   func() time.Time
}

var _ checkout.Pricing = CheckoutPricing{}

// Price prices the lines with the current ruleset; a coupon that does not apply is
// ignored by the engine.
func (p CheckoutPricing) Price(ctx context.Context, lines []checkout.PriceLine, coupon, currency string) (checkout.Priced, error) {
	rs, err := p.Rules.Load(ctx)
	if err != nil {
		return checkout.Priced{}, err
	}
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	dl := make([]discount.Line, len(lines))
	for i, l := range lines {
		dl[i] = discount.Line{VariantID: l.VariantID, ProductID: l.ProductID, Category: l.Category, SKU: l.SKU,
			Name: l.Name, Quantity: l.Quantity, UnitPrice: l.UnitPrice}
	}
	pr, err := discount.Price(rs, dl, coupon, currency, now)
	if err != nil {
		return checkout.Priced{}, err
	}
	out := checkout.Priced{Subtotal: pr.Subtotal, DiscountTotal: pr.DiscountTotal, Total: pr.Total,
		RulesetVersion: pr.RulesetVersion, LineDiscounts: make([]money.Money, len(pr.Lines)),
		Applied: make([]checkout.AppliedDiscount, len(pr.Applied))}
	for i, l := range pr.Lines {
		out.LineDiscounts[i] = l.Discount
	}
	for i, a := range pr.Applied {
		out.Applied[i] = checkout.AppliedDiscount{ID: a.RuleID, Name: a.Name, Code: a.Code, Amount: a.Amount}
	}
	return out, nil
}

// CheckoutInventory adapts *inventory.Service to checkout.Inventory: *InsufficientStockError
// becomes *checkout.StockError, ErrHoldMissing checkout.ErrHoldMissing and ErrHoldBusy
// (a commit of the same checkout is in flight or awaits recovery) checkout.ErrInProgress;
// the original error stays in the chain.
type CheckoutInventory struct{ S *inventory.Service }

var _ checkout.Inventory = CheckoutInventory{}

func invLines(ls []checkout.StockLine) []inventory.Line {
	out := make([]inventory.Line, len(ls))
	for i, l := range ls {
		out[i] = inventory.Line{VariantID: l.VariantID, Quantity: l.Quantity}
	}
	return out
}

func invError(err error) error {
	var ie *inventory.InsufficientStockError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		se := &checkout.StockError{Shortages: make([]checkout.Shortage, len(ie.Shortages))}
		for i, s := range ie.Shortages {
			se.Shortages[i] = checkout.Shortage{VariantID: s.VariantID, Requested: s.Requested, Available: s.Available}
		}
		return se
	case errors.Is(err, inventory.ErrHoldMissing):
		return fmt.Errorf("%w: %w", checkout.ErrHoldMissing, err)
	case errors.Is(err, inventory.ErrHoldBusy):
		return fmt.Errorf("%w: %w", checkout.ErrInProgress, err)
	case errors.Is(err, inventory.ErrInsufficientStock):
		// Commit: PostgreSQL's on_hand is below a held quantity (Redis lost data).
		return fmt.Errorf("%w: %w", checkout.ErrInsufficientStock, err)
	}
	return err
}

// Available returns the live availability of the variants.
func (a CheckoutInventory) Available(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]int64, error) {
	return a.S.Available(ctx, ids)
}

func (a CheckoutInventory) Reserve(ctx context.Context, holder string, lines []checkout.StockLine, ttl time.Duration) error {
	return invError(a.S.Reserve(ctx, holder, invLines(lines), ttl))
}

// Release returns holder's holds of the variants.
func (a CheckoutInventory) Release(ctx context.Context, holder string, variantIDs []uuid.UUID) (int64, error) {
	n, err := a.S.Release(ctx, holder, variantIDs)
	return n, invError(err)
}

// Commit sells holder's holds, running inTx in the stock transaction.
func (a CheckoutInventory) Commit(ctx context.Context, holder string, lines []checkout.StockLine, reason string,
	inTx func(ctx context.Context, tx db.Tx) error) error {
	return invError(a.S.Commit(ctx, holder, invLines(lines), reason, inTx))
}

// RestockInTx adds units to on_hand inside the caller's transaction (ledger, version).
func (a CheckoutInventory) RestockInTx(ctx context.Context, tx db.Tx, variantID uuid.UUID, quantity int64, reason, reference string) (int64, error) {
	return a.S.RestockInTx(ctx, tx, variantID, quantity, reason, reference)
}

// RaiseCounter brings the Redis counter up after a committed restock.
func (a CheckoutInventory) RaiseCounter(ctx context.Context, variantID uuid.UUID, quantity, version int64) error {
	return a.S.RaiseCounter(ctx, variantID, quantity, version)
}
