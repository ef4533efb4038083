package checkout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"commerce/internal/payment"
	"commerce/internal/platform/money"
)

// Create starts a checkout of owner's cart, or returns the cart's active checkout
// (created false). A new checkout has its cart frozen, its lines priced with the current
// discount ruleset (version recorded), every line held for HoldTTL and a payment intent;
// it is written once, in awaiting_payment. Errors: ErrInvalidOwner; ErrCartEmpty;
// *StockError (nothing is left held, the cart is unfrozen); ErrInProgress (another
// request is creating a checkout for this cart); dependency failures wrapped with
// fault.ErrUnavailable.
//
// The order is what makes one PostgreSQL write enough: the cart lock is taken and the
// creation registered (one Redis round trip), the cart frozen, the lines priced and held,
// the intent opened, and only then is the row inserted, already awaiting payment. A
// process that dies before that insert leaves holds and a frozen cart that no row names;
// the registration names them, and they are returned by the cart's next attempt (which
// finds its cart frozen by a checkout PostgreSQL does not have) or by Recover once the
// dead creator's cart lock has lapsed.
func (s *Service) Create(ctx context.Context, owner Owner, email string) (Checkout, bool, error) {
	if err := owner.Validate(); err != nil {
		return Checkout{}, false, err
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	if se := s.knownSoldOut(ctx, owner); se != nil {
		s.m.created.WithLabelValues("insufficient_stock").Inc()
		return Checkout{}, false, se
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Checkout{}, false, err
	}
	token, ok, err := s.r.lockAndRegister(ctx, owner, id, s.opts.LockTTL)
	if err != nil {
		return Checkout{}, false, err
	}
	if !ok {
		s.m.created.WithLabelValues("in_progress").Inc()
		return Checkout{}, false, ErrInProgress
	}
	stopRenew := s.keepLock(ctx, owner.CartKey(), token)
	c, res, err := s.create(ctx, owner, id, email)
	stopRenew()
	var hash State
	if res == created {
		hash = c.State
	}
	if res == undecided {
		// The insert's outcome is unknown: the registration stays for Recover (or the
		// cart's next attempt) to settle; only the lock is let go.
		if uerr := s.r.unlockCart(ctx, owner.CartKey(), token); uerr != nil {
			s.log.Warn("checkout: unlock cart", slog.String("error", uerr.Error()))
		}
	} else if ferr := s.r.finishCreation(ctx, owner, id, token, hash, s.opts.ClaimLease, s.hashTTL); ferr != nil {
		if res == created && errors.Is(ferr, errLockLost) {
			c, err = s.lostLock(ctx, owner, c)
		} else {
			// The lock lapses after LockTTL; Recover removes the registration.
			s.log.Warn("checkout: finish creation", slog.String("checkout", id.String()), slog.String("error", ferr.Error()))
		}
	}
	switch {
	case err == nil && res == created:
		s.m.created.WithLabelValues("created").Inc()
		return c, true, nil
	case err == nil:
		s.m.created.WithLabelValues("existing").Inc()
		return c, false, nil
	case errors.Is(err, ErrInsufficientStock):
		s.m.created.WithLabelValues("insufficient_stock").Inc()
	case errors.Is(err, ErrCartEmpty):
		s.m.created.WithLabelValues("cart_empty").Inc()
	case errors.As(err, new(*ValidationError)):
		s.m.created.WithLabelValues("below_minimum").Inc()
	case errors.Is(err, ErrInProgress):
		s.m.created.WithLabelValues("in_progress").Inc()
	default:
		s.m.created.WithLabelValues("error").Inc()
	}
	return Checkout{}, false, err
}

// lostLock decides a checkout created by a request whose cart lock lapsed while it ran
// (a pause longer than LockTTL, or a Redis that lost the key). If the cart is still
// frozen for it, nobody took over and it stands. Otherwise another request took the cart
// over, returned this creation's holds and unfroze or refroze the cart: the checkout
// cannot stand beside that, so it is cancelled and the caller told to try again.
func (s *Service) lostLock(ctx context.Context, owner Owner, c Checkout) (Checkout, error) {
	if _, ok, err := s.frozenFor(ctx, owner, c.ID); err == nil && ok {
		return c, nil
	}
	s.log.Warn("checkout: cart lock lost during a creation; cancelling it", slog.String("checkout", c.ID.String()))
	if _, err := s.finish(ctx, c, StateCancelled, change{}); err != nil {
		return Checkout{}, err
	}
	return Checkout{}, ErrInProgress
}

// keepLock renews the per-cart lock every third of LockTTL until the returned stop is
// called, so the lock lives as long as the creation and only LockTTL past a crash.
func (s *Service) keepLock(ctx context.Context, cartKey, token string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.opts.LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			held, err := s.r.renewLock(ctx, cartKey, token, s.opts.LockTTL)
			if err == nil && !held {
				// Another request now owns the cart's creation; the state machine's
				// compare-and-set fences whatever this one still tries to write.
				s.log.Warn("checkout: cart lock lost during a creation")
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// existing returns the cart's active checkout (ok) to hand back, as found in
// PostgreSQL. A checkout past its expiry is expired on the spot and a checkout left in
// reserving (written by an earlier version of the service, whose creation is known dead
// because the caller holds the cart lock) is abandoned: both give ok false, so a new one
// can start.
func (s *Service) existing(ctx context.Context, owner Owner) (Checkout, bool, error) {
	c, ok, err := s.st.active(ctx, owner.CartKey())
	if err != nil || !ok {
		return Checkout{}, false, err
	}
	return s.handBack(ctx, c)
}

// handBack decides an active checkout c of the caller's cart (the caller holds the cart
// lock): returned (ok), or ended first when it is past its expiry or a dead reserving one.
func (s *Service) handBack(ctx context.Context, c Checkout) (Checkout, bool, error) {
	switch c.State {
	case StateReserving:
		if _, err := s.finish(ctx, c, StateExpired, change{}); err != nil {
			return Checkout{}, false, ErrInProgress
		}
		return Checkout{}, false, nil
	case StateAwaitingPayment:
		if !c.dbNow.Before(c.ExpiresAt) {
			if _, err := s.finish(ctx, c, StateExpired, change{}); err != nil {
				if errors.Is(err, ErrConflict) || errors.Is(err, ErrInProgress) {
					return Checkout{}, false, ErrInProgress
				}
				return Checkout{}, false, err
			}
			s.m.expired.Inc()
			return Checkout{}, false, nil
		}
	}
	return c, true, nil
}

// freeze freezes owner's cart for id, or returns the cart's active checkout (found) when
// the cart is frozen for one. A cart frozen for a checkout that is over, whose cleanup a
// crash interrupted, is cleaned up first (a completed checkout's cart is cleared, so its
// lines are not bought twice); a cart frozen for a creation that died before its row was
// written has that creation's holds returned and is unfrozen; a cart frozen for a
// checkout past its expiry has it expired.
func (s *Service) freeze(ctx context.Context, owner Owner, id uuid.UUID) (snap CartSnapshot, found *Checkout, err error) {
	for attempt := 0; ; attempt++ {
		snap, err := s.carts.Freeze(ctx, owner, id.String())
		var le *CartLockedError
		if attempt > 2 || !errors.As(err, &le) {
			if errors.Is(err, ErrCartLocked) {
				return CartSnapshot{}, nil, ErrInProgress
			}
			return snap, nil, err
		}
		other, perr := uuid.Parse(le.CheckoutID)
		if perr != nil {
			if err := s.carts.Unfreeze(ctx, owner, le.CheckoutID); err != nil {
				return CartSnapshot{}, nil, err
			}
			continue
		}
		oc, err := s.st.get(ctx, other)
		switch {
		case err == nil && oc.Owner != owner:
			// A cart only ever names its owner's checkouts; if it names another's, that
			// checkout is never shown or touched here: the stray mark is cleared.
			s.log.Error("checkout: a cart is frozen for another owner's checkout; clearing the mark",
				slog.String("checkout", other.String()))
			if err := s.carts.Unfreeze(ctx, owner, le.CheckoutID); err != nil {
				return CartSnapshot{}, nil, err
			}
		case errors.Is(err, ErrNotFound):
			// We hold the cart lock, so the creation that froze it is not running any more
			// (a live creator renews the lock): it died before its insert.
			if err := s.abandonCreation(ctx, owner, other); err != nil {
				return CartSnapshot{}, nil, err
			}
		case err != nil:
			return CartSnapshot{}, nil, err
		case !oc.State.Final():
			c, ok, err := s.handBack(ctx, oc)
			if err != nil {
				return CartSnapshot{}, nil, err
			}
			if ok {
				return CartSnapshot{}, &c, nil
			}
		default:
			s.cleanup(ctx, oc)
		}
	}
}

// frozenFor returns owner's cart content when checkout id has it frozen (ok false when it
// is not frozen, frozen for another checkout, or gone), changing nothing.
func (s *Service) frozenFor(ctx context.Context, owner Owner, id uuid.UUID) (CartSnapshot, bool, error) {
	snap, lockedBy, err := s.carts.Peek(ctx, owner)
	if err != nil || lockedBy != id.String() {
		return CartSnapshot{}, false, err
	}
	return snap, true, nil
}

// abandonCreation returns what a creation that died before writing its row left: its
// holds on the lines of the cart it froze, and the freeze; then its registration goes.
// Every step is safe to repeat.
func (s *Service) abandonCreation(ctx context.Context, owner Owner, id uuid.UUID) error {
	snap, ok, err := s.frozenFor(ctx, owner, id)
	if err != nil {
		return err
	}
	if ok {
		ids := make([]uuid.UUID, len(snap.Lines))
		for i, l := range snap.Lines {
			ids[i] = l.VariantID
		}
		if _, err := s.inv.Release(ctx, id.String(), ids); err != nil {
			return err
		}
		if err := s.carts.Unfreeze(ctx, owner, id.String()); err != nil {
			return err
		}
	}
	s.m.recovered.Inc()
	return s.r.unregister(ctx, id, owner)
}

// createResult says what create did.
type createResult int

const (
	notCreated createResult = iota // nothing is left behind (or an existing checkout is returned)
	created                        // the row is committed
	undecided                      // the insert's outcome is unknown: holds and freeze are left for recovery
)

func (s *Service) create(ctx context.Context, owner Owner, id uuid.UUID, email string) (Checkout, createResult, error) {
	snap, found, err := s.freeze(ctx, owner, id)
	if err != nil {
		return Checkout{}, notCreated, err
	}
	if found != nil {
		return *found, notCreated, nil
	}
	unfreeze := func() {
		if err := s.carts.Unfreeze(ctx, owner, id.String()); err != nil {
			s.log.Warn("checkout: unfreeze cart", slog.String("checkout", id.String()), slog.String("error", err.Error()))
		}
	}
	release := func(c Checkout) {
		if _, err := s.inv.Release(ctx, id.String(), variantIDs(c.Lines)); err != nil {
			s.log.Warn("checkout: release holds", slog.String("checkout", id.String()), slog.String("error", err.Error()))
		}
	}
	c, err := s.price(ctx, owner, id, email, snap)
	if err != nil {
		unfreeze()
		return Checkout{}, notCreated, err
	}
	// Sold out is the common answer in a flash sale: the reservation gives it before
	// anything is written, and leaves nothing held.
	reserved := time.Now()
	if err := s.inv.Reserve(ctx, id.String(), stockLines(c.Lines), s.opts.HoldTTL); err != nil {
		if errors.Is(err, ErrInsufficientStock) {
			s.noteSoldOut(err)
		} else {
			release(c) // an error may leave a hold behind
		}
		unfreeze()
		return Checkout{}, notCreated, err
	}
	s.at(hookCreateAfterReserve)
	c.State = StateAwaitingPayment
	// A checkout with nothing to pay (discounts cover it all) has no intent: a provider
	// refuses one for zero (Stripe for anything under its minimum charge).
	if c.Total.Amount != 0 {
		pctx, pcancel := providerCtx(ctx)
		// The key is derived from the checkout: a retried creation never opens a second intent.
		intent, err := s.pay.CreateIntent(pctx, payment.CreateParams{CheckoutID: id, Amount: c.Total,
			IdempotencyKey: "checkout-" + id.String() + "-intent"})
		pcancel()
		s.observe("create", err)
		if err == nil {
			err = intent.Verify(c.Total)
		}
		if err != nil {
			// An intent that was opened is never confirmed (its client secret went nowhere),
			// so it can never charge.
			release(c)
			unfreeze()
			if errors.Is(err, payment.ErrAmountTooSmall) {
				// The cart's total is under the smallest charge the provider takes: the
				// shopper can add to the cart, so it is the caller's to fix, not an outage.
				return Checkout{}, notCreated, &ValidationError{Fields: map[string]string{
					"total": "is below the smallest amount the payment provider can charge; add to the cart"}}
			}
			return Checkout{}, notCreated, unavailable(fmt.Errorf("create payment intent: %w", err))
		}
		c.PaymentIntentID, c.PaymentStatus, c.ClientSecret = intent.ID, PaymentStatus(intent.Status), intent.ClientSecret
		if c.PaymentStatus == "" {
			c.PaymentStatus = PaymentRequiresPaymentMethod
		}
	}
	// What is left of the holds, a little less: the row's note is never later than the truth.
	left := s.opts.HoldTTL - time.Since(reserved) - time.Second
	row, err := s.st.insert(ctx, c, s.opts.CheckoutTTL, max(left, 0))
	switch {
	case errors.Is(err, errActiveExists):
		// The cart has an active checkout that its frozen state did not show (Redis lost
		// the cart): hand that one back instead.
		release(c)
		unfreeze()
		other, ok, err := s.existing(ctx, owner)
		if err != nil {
			return Checkout{}, notCreated, err
		}
		if !ok {
			return Checkout{}, notCreated, ErrInProgress
		}
		return other, notCreated, nil
	case err != nil:
		return Checkout{}, undecided, err
	}
	s.at(hookCreateAfterInsert)
	return row, created, nil
}

// price builds the checkout of the frozen cart: current catalog prices, lines of unknown
// or inactive variants left out (the cart does not show them either), discounts applied.
func (s *Service) price(ctx context.Context, owner Owner, id uuid.UUID, email string, snap CartSnapshot) (Checkout, error) {
	cur := s.opts.Currency
	ids := make([]uuid.UUID, len(snap.Lines))
	for i, l := range snap.Lines {
		ids[i] = l.VariantID
	}
	vs, err := s.cat.Variants(ctx, ids)
	if err != nil {
		return Checkout{}, fmt.Errorf("checkout: catalog: %w", err)
	}
	var pls []PriceLine
	for _, l := range snap.Lines {
		v, ok := vs[l.VariantID]
		if !ok || !v.Active || v.Price.Currency != cur || l.Quantity <= 0 {
			continue
		}
		name := v.ProductName
		if v.VariantName != "" {
			name += " " + v.VariantName
		}
		pls = append(pls, PriceLine{VariantID: l.VariantID, ProductID: v.ProductID, Category: v.Category,
			SKU: v.SKU, Name: name, Quantity: l.Quantity, UnitPrice: v.Price})
	}
	if len(pls) == 0 {
		return Checkout{}, ErrCartEmpty
	}
	p, err := s.pricing.Price(ctx, pls, snap.Coupon, cur)
	if err != nil {
		return Checkout{}, fmt.Errorf("checkout: pricing: %w", err)
	}
	c := Checkout{ID: id, Owner: owner, State: StateReserving, Email: email, Coupon: snap.Coupon, Currency: cur,
		Subtotal: p.Subtotal, DiscountTotal: p.DiscountTotal, Total: p.Total, DiscountVersion: p.RulesetVersion,
		Applied: p.Applied, Lines: make([]Line, len(pls))}
	for i, l := range pls {
		disc := money.Zero(cur)
		if i < len(p.LineDiscounts) && p.LineDiscounts[i].Currency == cur {
			disc = p.LineDiscounts[i]
		}
		c.Lines[i] = Line{VariantID: l.VariantID, ProductID: l.ProductID, SKU: l.SKU, Name: l.Name,
			Category: l.Category, Quantity: l.Quantity, UnitPrice: l.UnitPrice,
			LineTotal: l.UnitPrice.Mul(l.Quantity), Discount: disc}
	}
	if c.Applied == nil {
		c.Applied = []AppliedDiscount{}
	}
	return c, nil
}
