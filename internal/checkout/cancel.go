package checkout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
)

// Get returns the checkout if who owns it. Errors: ErrNotFound.
func (s *Service) Get(ctx context.Context, who Identity, id uuid.UUID) (Checkout, error) {
	c, err := s.st.get(ctx, id)
	if err != nil {
		return Checkout{}, err
	}
	if !who.Owns(c.Owner) {
		return Checkout{}, ErrNotFound
	}
	return c, nil
}

// Cancel cancels the checkout: its holds are returned and its cart unfrozen. Cancelling
// a cancelled checkout returns it unchanged. Errors: ErrNotFound; ErrConflict (completed,
// expired, or being completed right now); ErrInProgress (still being created).
func (s *Service) Cancel(ctx context.Context, who Identity, id uuid.UUID) (Checkout, error) {
	ctx, cancel := detach(ctx)
	defer cancel()
	c, err := s.Get(ctx, who, id)
	if err != nil {
		return Checkout{}, err
	}
	switch c.State {
	case StateCancelled:
		return c, nil
	case StateReserving:
		return Checkout{}, ErrInProgress
	case StateAwaitingPayment:
	default:
		return Checkout{}, fmt.Errorf("%w: checkout is %s", ErrConflict, c.State)
	}
	if _, err := s.finish(ctx, c, StateCancelled, change{}); err != nil {
		var se *stateError
		if errors.As(err, &se) && se.state == StateCancelled {
			return s.st.get(ctx, id)
		}
		return Checkout{}, err
	}
	s.m.cancelled.Inc()
	return s.st.get(ctx, id)
}

// finish moves c to a final state (cancelled or expired) and then undoes its side effects:
// holds released, cart unfrozen. A crash in between leaves cleaned_at NULL and Recover
// finishes the job.
func (s *Service) finish(ctx context.Context, c Checkout, to State, ch change) (Checkout, error) {
	return s.endWith(ctx, c, to, ch, causeCheckoutEnded)
}

// end is finish with the cause recorded on the checkout's payment action.
func (s *Service) end(ctx context.Context, c Checkout, to State, cause string) (Checkout, error) {
	return s.endWith(ctx, c, to, change{}, cause)
}

// endWith moves c to a final state; when c has a payment intent, the same PostgreSQL
// transaction decides its void (a refund when the provider says it took the money),
// which the payment relay carries out.
func (s *Service) endWith(ctx context.Context, c Checkout, to State, ch change, cause string) (Checkout, error) {
	apply := s.cas(c.ID, c.State, to, ch)
	if c.PaymentIntentID != "" {
		from := c.State
		apply = func(ctx context.Context, v int64) error {
			return s.st.casWithAction(ctx, c, from, to, v, ch, cause)
		}
	}
	v, err := s.transition(ctx, c.ID, c.State, to, c.Version, apply)
	if err != nil {
		return c, err
	}
	c.State, c.Version = to, v
	s.cleanup(ctx, c)
	return c, nil
}

// cleanup does the side effects of a final state and records them done: a completed
// checkout's cart is cleared; a cancelled or expired one's holds are released and its
// cart unfrozen. Failures are logged: Recover retries. The record is written with
// other checkouts' (cleanMarks).
func (s *Service) cleanup(ctx context.Context, c Checkout) {
	id := c.ID.String()
	var err error
	switch c.State {
	case StateCompleted:
		err = s.carts.ClearFor(ctx, c.Owner, id)
	case StateCancelled, StateExpired:
		if _, err = s.inv.Release(ctx, id, variantIDs(c.Lines)); err == nil {
			err = s.carts.Unfreeze(ctx, c.Owner, id)
		}
	default:
		return
	}
	if err == nil {
		s.cleaned.mark(ctx, c.ID)
		return
	}
	s.log.Warn("checkout: cleanup after "+string(c.State), slog.String("checkout", id),
		slog.String("error", err.Error()))
}
