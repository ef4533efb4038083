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
// it is awaiting_payment. Errors: ErrInvalidOwner; ErrCartEmpty; *StockError (nothing is
// left held, the cart is unfrozen); ErrInProgress (another request is creating a checkout
// for this cart); dependency failures wrapped with fault.ErrUnavailable.
func (s *Service) Create(ctx context.Context, owner Owner, email string) (Checkout, bool, error) {
	if err := owner.Validate(); err != nil {
		return Checkout{}, false, err
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	if c, ok, err := s.existing(ctx, owner, false); err != nil || ok {
		return c, false, err
	}
	cartKey := owner.CartKey()
	token, ok, err := s.r.lock(ctx, cartKey, s.opts.LockTTL)
	if err != nil {
		return Checkout{}, false, err
	}
	if !ok {
		s.m.created.WithLabelValues("in_progress").Inc()
		return Checkout{}, false, ErrInProgress
	}
	stopRenew := s.keepLock(ctx, cartKey, token)
	defer func() {
		stopRenew()
		if err := s.r.unlockCart(ctx, cartKey, token); err != nil {
			s.log.Warn("checkout: unlock cart", slog.String("error", err.Error()))
		}
	}()
	// Under the lock: someone may have finished creating one just before we got it, or
	// died while creating one (abandoned here).
	if c, ok, err := s.existing(ctx, owner, true); err != nil || ok {
		return c, false, err
	}
	c, err := s.create(ctx, owner, email)
	if err != nil {
		switch {
		case errors.Is(err, ErrInsufficientStock):
			s.m.created.WithLabelValues("insufficient_stock").Inc()
		case errors.Is(err, ErrCartEmpty):
			s.m.created.WithLabelValues("cart_empty").Inc()
		default:
			s.m.created.WithLabelValues("error").Inc()
		}
		return Checkout{}, false, err
	}
	s.m.created.WithLabelValues("created").Inc()
	return c, true, nil
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

// existing returns the cart's active checkout when there is one to hand back. A checkout
// past its expiry is expired on the spot. A checkout still reserving is being created
// by whoever holds the cart's lock: without the lock (locked false) it is left to the
// caller to take the lock (refused while the creator lives); with the lock (locked true)
// its creator is known dead, since a live one renews the lock, and it is abandoned at
// once, so a new one can start: a crashed creation blocks its cart for one LockTTL.
func (s *Service) existing(ctx context.Context, owner Owner, locked bool) (Checkout, bool, error) {
	c, ok, err := s.st.active(ctx, owner.CartKey())
	if err != nil || !ok {
		return Checkout{}, false, err
	}
	switch c.State {
	case StateReserving:
		if !locked {
			// Whoever holds the lock decides: the lock is taken next, or refused.
			return Checkout{}, false, nil
		}
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
	s.m.created.WithLabelValues("existing").Inc()
	return c, true, nil
}

// freeze freezes owner's cart for id. A lock left by a checkout that is over and whose
// cleanup a crash interrupted is finished first (a completed checkout's cart is cleared,
// so its lines are not bought twice); a lock of a checkout that was never stored (a
// request that crashed between freezing and inserting) is cleared.
func (s *Service) freeze(ctx context.Context, owner Owner, id uuid.UUID) (CartSnapshot, error) {
	for attempt := 0; ; attempt++ {
		snap, err := s.carts.Freeze(ctx, owner, id.String())
		var le *CartLockedError
		if attempt > 0 || !errors.As(err, &le) {
			if errors.Is(err, ErrCartLocked) {
				return CartSnapshot{}, ErrInProgress
			}
			return snap, err
		}
		other, perr := uuid.Parse(le.CheckoutID)
		var oc Checkout
		if perr == nil {
			oc, err = s.st.get(ctx, other)
		}
		switch {
		case perr != nil || errors.Is(err, ErrNotFound):
			if err := s.carts.Unfreeze(ctx, owner, le.CheckoutID); err != nil {
				return CartSnapshot{}, err
			}
		case err != nil:
			return CartSnapshot{}, err
		case !oc.State.Final():
			return CartSnapshot{}, ErrInProgress
		default:
			s.cleanup(ctx, oc)
		}
	}
}

func (s *Service) create(ctx context.Context, owner Owner, email string) (Checkout, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Checkout{}, err
	}
	snap, err := s.freeze(ctx, owner, id)
	if err != nil {
		return Checkout{}, err
	}
	unfreeze := func() {
		if err := s.carts.Unfreeze(ctx, owner, id.String()); err != nil {
			s.log.Warn("checkout: unfreeze cart", slog.String("checkout", id.String()), slog.String("error", err.Error()))
		}
	}
	c, err := s.price(ctx, owner, id, email, snap)
	if err != nil {
		unfreeze()
		return Checkout{}, err
	}
	// Sold out is the common answer in a flash sale: give it before writing anything. The
	// figure is soft (the reservation below decides); it only spares a shopper who cannot
	// win the checkout row, its cancellation and the Redis work in between.
	if short := s.shortages(ctx, c.Lines); len(short) > 0 {
		unfreeze()
		return Checkout{}, &StockError{Shortages: short}
	}
	c, err = s.st.insert(ctx, c, s.opts.CheckoutTTL, s.opts.HoldTTL)
	if err != nil {
		unfreeze()
		if errors.Is(err, errActiveExists) {
			return Checkout{}, ErrInProgress
		}
		return Checkout{}, err
	}
	// Best effort: the first transition loads the hash itself when this fails.
	_ = s.r.loadHash(ctx, c.ID, c.State, c.Version, 0, s.opts.ClaimLease, s.hashTTL)
	s.at(hookCreateAfterInsert)

	if err := s.inv.Reserve(ctx, id.String(), stockLines(c.Lines), s.opts.HoldTTL); err != nil {
		s.abandon(ctx, c, !errors.Is(err, ErrInsufficientStock))
		return Checkout{}, err
	}
	s.at(hookCreateAfterReserve)
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
		s.abandon(ctx, c, true)
		return Checkout{}, unavailable(fmt.Errorf("create payment intent: %w", err))
	}
	status := PaymentStatus(intent.Status)
	if status == "" {
		status = PaymentRequiresPaymentMethod
	}
	secret := intent.ClientSecret
	if _, err := s.transition(ctx, id, StateReserving, StateAwaitingPayment, c.Version, s.cas(id, StateReserving,
		StateAwaitingPayment, change{paymentIntentID: &intent.ID, paymentStatus: &status, clientSecret: &secret})); err != nil {
		s.abandon(ctx, c, true)
		if errors.Is(err, ErrConflict) || errors.Is(err, ErrInProgress) {
			return Checkout{}, ErrInProgress
		}
		return Checkout{}, err
	}
	return s.st.get(ctx, id)
}

// shortages lists the lines that exceed what is available now. When availability cannot
// be read it lists none and leaves the decision to Reserve.
func (s *Service) shortages(ctx context.Context, lines []Line) []Shortage {
	avail, err := s.inv.Available(ctx, variantIDs(lines))
	if err != nil {
		return nil
	}
	var out []Shortage
	for _, l := range lines {
		if a, ok := avail[l.VariantID]; ok && a < l.Quantity {
			out = append(out, Shortage{VariantID: l.VariantID, Requested: l.Quantity, Available: a})
		}
	}
	return out
}

// abandon cancels a checkout that failed while reserving: its holds are released (when
// release, i.e. when some may have been taken) and its cart is unfrozen.
func (s *Service) abandon(ctx context.Context, c Checkout, release bool) {
	if _, err := s.finish(ctx, c, StateCancelled, change{}); err == nil {
		return
	}
	// The transition failed (Redis or PostgreSQL down): undo what we can; Recover cancels
	// the row later, and holds lapse after HoldTTL anyway.
	if release {
		if _, err := s.inv.Release(ctx, c.ID.String(), variantIDs(c.Lines)); err != nil {
			s.log.Warn("checkout: release holds", slog.String("checkout", c.ID.String()), slog.String("error", err.Error()))
		}
	}
	if err := s.carts.Unfreeze(ctx, c.Owner, c.ID.String()); err != nil {
		s.log.Warn("checkout: unfreeze cart", slog.String("checkout", c.ID.String()), slog.String("error", err.Error()))
	}
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
