package checkout

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// ExpireDue expires the checkouts (reserving or awaiting_payment) past CheckoutTTL:
// each moves to expired, its holds are released and its cart unfrozen. It returns how
// many it expired. A checkout a complete claims first is left to it, and one whose intent
// the provider says is paid is completed instead (its stock taken again if it allows).
// Expiring a checkout with an intent decides its void.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	n := 0
	for round := 0; round < 100; round++ {
		due, err := s.st.due(ctx, batch)
		if err != nil {
			return n, err
		}
		progress, settled := 0, 0
		for _, c := range due {
			if s.paidMeanwhile(ctx, c) {
				settled++ // completed instead: the shopper paid in the storefront
				continue
			}
			if _, err := s.finish(ctx, c, StateExpired, change{}); err != nil {
				var se *stateError
				if errors.As(err, &se) {
					continue
				}
				return n, err
			}
			progress++
		}
		n += progress
		s.m.expired.Add(float64(progress))
		if len(due) < batch || progress+settled == 0 {
			return n, nil
		}
	}
	return n, nil
}

// paidMeanwhile places the order of a due checkout whose intent the storefront paid
// (client-side confirmation) without a complete or webhook reaching us yet, and reports
// whether it did. Anything else (not paid, provider unreachable) leaves it to expire; the
// expiry then voids the intent, refunding it if it took money after all.
func (s *Service) paidMeanwhile(ctx context.Context, c Checkout) bool {
	if c.State != StateAwaitingPayment || c.PaymentIntentID == "" || c.PaymentStatus == PaymentFailed {
		return false
	}
	if err := s.settle(ctx, c.PaymentIntentID); err != nil {
		s.log.Warn("checkout: expiry: settle payment", slog.String("checkout", c.ID.String()),
			slog.String("error", err.Error()))
		return false
	}
	now, err := s.st.get(ctx, c.ID)
	return err == nil && now.State == StateCompleted
}

// RecoverStats says what Recover did.
type RecoverStats struct {
	Creations int // creations that died before writing their row: holds returned, cart unfrozen
	Abandoned int // reserving checkouts of crashed requests, now expired
	Reverted  int // completing checkouts without an order, back to awaiting_payment
	Expired   int // completing checkouts without an order past their expiry, now expired
	Cleaned   int // final checkouts whose cart or holds were left behind, now cleaned
}

// Recover repairs what crashed requests left behind (run it after inventory recovery,
// from a job): checkouts stuck in reserving for StaleAfter are expired; checkouts stuck in
// completing have no order (the order and the completed state are one transaction), so
// they go back to awaiting_payment with their holds released (the next complete takes
// them again; a payment that went through is remembered), or to expired when past their
// expiry; final checkouts whose cleanup did not happen get it now. A completion that is
// merely slow is fenced: its commit finds the version moved and writes nothing.
func (s *Service) Recover(ctx context.Context) (RecoverStats, error) {
	var st RecoverStats
	n, err := s.recoverCreations(ctx)
	st.Creations = n
	if err != nil {
		return st, err
	}
	stuck, err := s.st.stuck(ctx, s.opts.StaleAfter, batch)
	if err != nil {
		return st, err
	}
	for _, c := range stuck {
		var err error
		switch {
		case c.State == StateReserving:
			if _, err = s.finish(ctx, c, StateExpired, change{}); err == nil {
				st.Abandoned++
			}
		case !c.dbNow.Before(c.ExpiresAt):
			if _, err = s.finish(ctx, c, StateExpired, change{}); err == nil {
				st.Expired++
			}
		default:
			if _, err = s.transition(ctx, c.ID, StateCompleting, StateAwaitingPayment, c.Version,
				s.cas(c.ID, StateCompleting, StateAwaitingPayment, change{holdsLapsed: true})); err == nil {
				st.Reverted++
				_, err = s.inv.Release(ctx, c.ID.String(), variantIDs(c.Lines))
				if err == nil && c.PaymentIntentID != "" {
					// The crashed request may have charged: if the provider says so, place
					// the order now (the shopper may never call complete again).
					if serr := s.settle(ctx, c.PaymentIntentID); serr != nil {
						s.log.Warn("checkout: recover: settle payment", slog.String("checkout", c.ID.String()),
							slog.String("error", serr.Error()))
					}
				}
			}
		}
		var se *stateError
		if err != nil && !errors.As(err, &se) {
			return st, err
		}
	}
	left, err := s.st.uncleaned(ctx, s.opts.StaleAfter, batch)
	if err != nil {
		return st, err
	}
	for _, c := range left {
		s.cleanup(ctx, c)
		st.Cleaned++
	}
	s.m.recovered.Add(float64(st.Abandoned + st.Reverted + st.Expired + st.Cleaned))
	return st, nil
}

// recoverCreations settles registered creations older than min(StaleAfter, 2×LockTTL)
// whose cart lock nobody holds (a live creator renews it, and a later attempt of the
// same cart takes it and settles the creation itself): one whose row PostgreSQL has is
// done, and only its registration goes; one without a row died before its insert, and
// its holds and frozen cart are returned. With the defaults, a dead creation's holds are
// back within about 10 s plus one SWEEP_INTERVAL.
func (s *Service) recoverCreations(ctx context.Context) (int, error) {
	// The lock is the liveness signal (renewed every third of LockTTL), so a creation
	// need not be older than StaleAfter: twice the lock's lease is enough to be past the
	// instant between its registration and its lock.
	members, err := s.r.staleCreations(ctx, time.Now().Add(-min(s.opts.StaleAfter, 2*s.opts.LockTTL)), batch)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range members {
		id, owner, perr := parseCreatingMember(m)
		if perr != nil {
			s.log.Warn("checkout: recover: dropping a malformed creation", slog.String("error", perr.Error()))
			if err := s.r.removeMember(ctx, m); err != nil {
				return n, err
			}
			continue
		}
		held, err := s.r.lockHeld(ctx, owner)
		if err != nil {
			return n, err
		}
		if held {
			continue
		}
		_, err = s.st.get(ctx, id)
		switch {
		case err == nil:
			if err := s.r.unregister(ctx, id, owner); err != nil {
				return n, err
			}
			continue
		case !errors.Is(err, ErrNotFound):
			return n, err
		}
		if err := s.abandonCreation(ctx, owner, id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// RelayOutbox publishes unpublished outbox rows (oldest first) to the Redis Stream
// <space>events:orders, each entry carrying the event id (field "id") so consumers can
// de-duplicate, and marks them published. Delivery is at-least-once: a crash between the
// XADD and the commit publishes the batch again. It returns how many rows it published.
func (s *Service) RelayOutbox(ctx context.Context) (int, error) {
	n := 0
	for round := 0; round < 100; round++ {
		k, err := s.st.relay(ctx, batch, s.r.publish)
		n += k
		s.m.published.Add(float64(k))
		if err != nil {
			return n, err
		}
		if k < batch {
			break
		}
	}
	return n, nil
}
