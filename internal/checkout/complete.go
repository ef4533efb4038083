package checkout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/db"
)

// Complete pays for the checkout and places its order, exactly once: repeating it, or
// running it concurrently (or racing the provider's webhook), returns the same order.
// method is the payment method to confirm the intent with (server-side confirmation), or
// "" when the storefront confirmed it (Stripe.js): the intent is always retrieved first
// and its status, amount and currency checked. A checkout past its expiry (or whose holds
// lapsed) takes its holds again first, if stock allows. Errors: ErrNotFound;
// ErrPaymentDeclined, *ActionRequiredError, ErrPaymentMethodRequired,
// ErrPaymentMethodInvalid, ErrPaymentProcessing (the checkout stays awaiting_payment);
// ErrAmountMismatch (cancelled, refunded); ErrExpired (the holds cannot be taken again, or
// the checkout expired); ErrConflict (cancelled); ErrInProgress (another request is still
// at it after CompleteWait, or the checkout is being created); dependency failures
// wrapped with fault.ErrUnavailable.
func (s *Service) Complete(ctx context.Context, who Identity, id uuid.UUID, method string) (Completion, error) {
	c, err := s.Get(ctx, who, id)
	if err != nil {
		return Completion{}, err
	}
	return s.CompleteSeen(ctx, c, method)
}

// CompleteSeen is Complete of checkout c as Get (or Completed) just returned it to its
// owner, which saves reading it again. c may be stale by now: every transition is a
// compare-and-set on its version, so a checkout someone else moved meanwhile is read
// again and answered as it is.
func (s *Service) CompleteSeen(ctx context.Context, c Checkout, method string) (Completion, error) {
	start := time.Now()
	ctx, cancel := detach(ctx)
	defer cancel()
	res, err := s.complete(ctx, c, method, true)
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(err, ErrPaymentDeclined):
		outcome = "declined"
	case errors.Is(err, ErrPaymentRequiresAction):
		outcome = "requires_action"
	case errors.Is(err, ErrAmountMismatch):
		outcome = "amount_mismatch"
	case errors.Is(err, ErrExpired):
		outcome = "expired"
	case errors.Is(err, ErrConflict), errors.Is(err, ErrInProgress):
		outcome = "conflict"
	default:
		outcome = "error"
	}
	s.m.completes.WithLabelValues(outcome).Inc()
	s.m.completeSeconds.Observe(time.Since(start).Seconds())
	return res, err
}

// Completed returns the completion of checkout id when who owns it and it is completed
// (its order exists), else false; seen is the checkout as read (for CompleteSeen), valid
// when err is nil. Errors: those of Get.
func (s *Service) Completed(ctx context.Context, who Identity, id uuid.UUID) (done Completion, seen Checkout, ok bool, err error) {
	c, err := s.Get(ctx, who, id)
	if err != nil || c.State != StateCompleted {
		return Completion{}, c, false, err
	}
	res, err := s.completion(ctx, c)
	return res, c, err == nil, err
}

// complete runs or waits for the completion of c. When wait is false (a webhook), a
// completion someone else runs is not waited for (ErrInProgress at once).
func (s *Service) complete(ctx context.Context, c Checkout, method string, wait bool) (Completion, error) {
	deadline := s.waitDeadline(wait)
	for {
		switch c.State {
		case StateCompleted:
			return s.completion(ctx, c)
		case StateCancelled:
			return Completion{}, fmt.Errorf("%w: checkout is cancelled", ErrConflict)
		case StateExpired:
			return Completion{}, ErrExpired
		case StateAwaitingPayment:
			v, err := s.transition(ctx, c.ID, StateAwaitingPayment, StateCompleting, c.Version,
				s.cas(c.ID, StateAwaitingPayment, StateCompleting, change{}))
			if err == nil {
				c.State, c.Version = StateCompleting, v
				return s.run(ctx, c, method)
			}
			var se *stateError
			if !errors.As(err, &se) {
				return Completion{}, err
			}
			// Someone else moved it first: wait for them below, then look again.
		}
		if time.Now().After(deadline) {
			return Completion{}, ErrInProgress
		}
		if err := s.wait(ctx, c.ID, deadline); err != nil {
			return Completion{}, err
		}
		var err error
		if c, err = s.st.get(ctx, c.ID); err != nil {
			return Completion{}, err
		}
	}
}

// wait polls the Redis hash until the checkout is no longer in flight (not reserving or
// completing, no pending claim) or the deadline passes (ErrInProgress).
func (s *Service) wait(ctx context.Context, id uuid.UUID, deadline time.Time) error {
	delay := 2 * time.Millisecond
	for {
		st, pending, exists, err := s.r.peek(ctx, id)
		if err != nil {
			return err
		}
		if !exists || (!pending && st != StateCompleting && st != StateReserving) {
			return nil
		}
		if time.Now().Add(delay).After(deadline) {
			return ErrInProgress
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// run is the completion proper, by the request that claimed awaiting_payment → completing
// (version c.Version): take the holds again if they may have lapsed, charge, then commit
// the stock and write the order in one PostgreSQL transaction, then clear the cart.
func (s *Service) run(ctx context.Context, c Checkout, method string) (Completion, error) {
	s.at(hookAfterClaim)
	if c.HoldsExpireAt.IsZero() || c.HoldsExpireAt.Sub(c.dbNow) < s.opts.HoldRefresh {
		if err := s.retake(ctx, c); err != nil {
			return Completion{}, err
		}
	}
	if c.PaymentIntentID == "" && c.Total.Amount == 0 {
		// Nothing to pay (see create): no payment method is asked for or used.
	} else if err := s.charge(ctx, c, method); err != nil {
		return Completion{}, err
	}
	c.PaymentStatus = PaymentSucceeded
	s.at(hookAfterPayment)

	orderID, err := uuid.NewV7()
	if err != nil {
		return Completion{}, err
	}
	var done Completion // the checkout and order as the sale wrote them
	for attempt := 0; ; attempt++ {
		_, err = s.transition(ctx, c.ID, StateCompleting, StateCompleted, c.Version, func(ctx context.Context, v int64) error {
			eventID, err := uuid.NewV7()
			if err != nil {
				return err
			}
			err = s.inv.Commit(ctx, c.ID.String(), stockLines(c.Lines), "order "+orderID.String(),
				func(ctx context.Context, tx db.Tx) (err error) {
					done.Checkout, done.Order, err = s.st.placeOrder(ctx, tx, c, v, orderID, eventID)
					return err
				})
			if err == nil {
				s.at(hookAfterCommit)
			}
			return err
		})
		if err == nil || !errors.Is(err, ErrHoldMissing) || attempt > 0 {
			break
		}
		// The holds lapsed between the check above and the commit: take them again once.
		// (When the stock is gone the checkout expires, and its payment action refunds the
		// payment: decided in the expiring transaction.)
		if err := s.retake(ctx, c); err != nil {
			return Completion{}, err
		}
	}
	if err != nil {
		var se *stateError
		switch {
		case errors.Is(err, ErrHoldMissing), errors.Is(err, ErrInsufficientStock):
			// Still missing right after retaking them, or held against stock PostgreSQL no
			// longer has (Redis lost data; the sale is refused, nothing is oversold): give
			// up like an expiry, which returns the holds; the expiring transaction decides
			// the refund of the payment.
			s.log.Warn("checkout: payment succeeded but the holds cannot be kept; refunding",
				slog.String("checkout", c.ID.String()), slog.String("payment_intent", c.PaymentIntentID))
			if _, ferr := s.end(ctx, c, StateExpired, causeStockGone); ferr != nil {
				s.log.Warn("checkout: expire", slog.String("checkout", c.ID.String()), slog.String("error", ferr.Error()))
			}
			return Completion{}, ErrExpired
		case errors.As(err, &se) || errors.Is(err, errStale):
			// Fenced: recovery or an expiry moved the checkout on; answer from what it is now.
			now, gerr := s.st.get(ctx, c.ID)
			if gerr != nil {
				return Completion{}, gerr
			}
			return s.complete(ctx, now, method, true)
		}
		// Not sold (or, if the outcome is unknown, the version fences it): the checkout
		// is payable again; the payment already went through and is not asked for twice.
		return Completion{}, s.backToAwaiting(ctx, c, err)
	}
	s.at(hookAfterConfirm)
	s.m.orders.Inc()
	s.cleanup(ctx, done.Checkout)
	return done, nil
}

// retake reserves c's lines again for HoldTTL (a reserve by the same holder replaces
// what is left of its holds, so stock is never exposed in between). When stock no longer
// allows, c (completing) expires and ErrExpired is returned; on other failures c goes
// back to awaiting_payment.
func (s *Service) retake(ctx context.Context, c Checkout) error {
	if err := s.st.setHoldsExpiry(ctx, c.ID, s.opts.HoldTTL); err != nil {
		return s.backToAwaiting(ctx, c, err)
	}
	err := s.inv.Reserve(ctx, c.ID.String(), stockLines(c.Lines), s.opts.HoldTTL)
	if err == nil {
		s.m.retaken.Inc()
		return nil
	}
	if !errors.Is(err, ErrInsufficientStock) {
		return s.backToAwaiting(ctx, c, err)
	}
	cause := causeCheckoutEnded
	if c.PaymentStatus == PaymentSucceeded {
		cause = causeStockGone
	}
	if _, ferr := s.end(ctx, c, StateExpired, cause); ferr != nil {
		s.log.Warn("checkout: expire", slog.String("checkout", c.ID.String()), slog.String("error", ferr.Error()))
	}
	s.m.expired.Inc()
	return ErrExpired
}

// backToAwaiting undoes the completing claim after a failure before the sale was
// committed, and returns err. A payment that went through (c.PaymentStatus) is recorded
// with it, so the checkout shows it paid while it waits for the next complete (which
// does not charge again: it retrieves the intent first).
func (s *Service) backToAwaiting(ctx context.Context, c Checkout, err error) error {
	ch := change{holdsLapsed: true}
	if c.PaymentStatus == PaymentSucceeded {
		paid := PaymentSucceeded
		ch.paymentStatus = &paid
	}
	s.revert(ctx, c, ch)
	return err
}

// revert moves c, which this request claimed (completing at c.Version), back to
// awaiting_payment with ch. When Redis cannot take the transition (it went down
// mid-completion), the PostgreSQL half is written alone: nobody else moves a completing
// checkout before StaleAfter, and a hash left behind is rebuilt from the row by the next
// transition (its version is older). Without it the checkout would stay completing,
// and every complete answer checkout_in_progress, until recovery.
func (s *Service) revert(ctx context.Context, c Checkout, ch change) {
	_, terr := s.transition(ctx, c.ID, StateCompleting, StateAwaitingPayment, c.Version,
		s.cas(c.ID, StateCompleting, StateAwaitingPayment, ch))
	if terr == nil {
		return
	}
	var se *stateError
	if errors.As(terr, &se) || errors.Is(terr, errStale) {
		return // moved on by someone else (recovery): nothing of ours to undo
	}
	if perr := s.st.cas(ctx, s.st.pool, c.ID, StateCompleting, StateAwaitingPayment, c.Version+1, ch); perr != nil {
		s.log.Warn("checkout: back to awaiting_payment", slog.String("checkout", c.ID.String()),
			slog.String("error", terr.Error()), slog.String("postgres", perr.Error()))
		return
	}
	s.m.transitions.WithLabelValues(string(StateCompleting), string(StateAwaitingPayment)).Inc()
}

// completion returns a completed checkout with its order.
func (s *Service) completion(ctx context.Context, c Checkout) (Completion, error) {
	o, ok, err := s.st.orderFor(ctx, c.ID)
	if err != nil {
		return Completion{}, err
	}
	if !ok {
		return Completion{}, fmt.Errorf("checkout %s is completed without an order", c.ID)
	}
	return Completion{Checkout: c, Order: o}, nil
}
