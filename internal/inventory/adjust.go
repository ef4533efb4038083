package inventory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"commerce/internal/platform/resilience"
)

// Adjust adds delta (≠ 0, |delta| ≤ MaxAdjust) to on_hand with a ledger row (reason,
// reference) and returns the new levels.
//
// An increase is written to PostgreSQL first, then added to the counter (unless the
// counter was computed from that version already). A decrease is held first, like a
// sale: the units are reserved in Redis (so they cannot be promised to a shopper while
// PostgreSQL changes), then taken from on_hand in one transaction, then the hold is
// finalized; a crash in between is recovered like a crashed commit. So a decrease is
// refused (ErrBelowHeld) exactly when the counter has fewer than |delta| units — which
// is never wrongly accepted: the counter is never above on_hand − held; in the windows
// where it is below, a decrease that would have fitted may be refused.
//
// Errors: *BelowHeldError (ErrBelowHeld); ErrNotFound; ErrInvalid; Redis/PostgreSQL
// errors. If Redis fails after PostgreSQL committed an increase, the error says so: the
// counter stays low (the safe direction) until the next reconcile, and the adjustment
// must not be repeated.
func (s *Service) Adjust(ctx context.Context, variantID uuid.UUID, delta int64, reason, reference string) (Levels, error) {
	if delta == 0 || delta > MaxAdjust || delta < -MaxAdjust {
		return Levels{}, fmt.Errorf("delta must be non-zero and at most %d in size: %w", MaxAdjust, ErrInvalid)
	}
	if !validReason(reason) {
		return Levels{}, fmt.Errorf("reason must be 1-200 characters: %w", ErrInvalid)
	}
	if err := s.adjust(ctx, variantID, delta, nil, reason, reference); err != nil {
		return Levels{}, err
	}
	return s.Levels(ctx, variantID)
}

// adjust applies delta, as a compare-and-set when expected is given (errCASFailed).
func (s *Service) adjust(ctx context.Context, id uuid.UUID, delta int64, expected *int64, reason, reference string) error {
	if delta > 0 {
		// Check that Redis answers before PostgreSQL is changed, so that an outage
		// refuses the adjustment instead of half-applying it.
		if err := s.r.probe(ctx, id); err != nil {
			return err
		}
		row, err := resilience.RetryValue(ctx, resilience.PostgresPolicy("inventory.add", s.opts.RetryMetrics),
			func(ctx context.Context) (stockRow, error) {
				return s.store.add(ctx, id, delta, expected, reason, reference)
			})
		if err != nil {
			return err
		}
		if _, err := s.r.adjustOne(ctx, id, delta, row.Version); err != nil {
			return fmt.Errorf("adjust %s: on_hand is now %d in PostgreSQL but the Redis counter was not raised "+
				"(it stays low until reconcile; do not repeat the adjustment): %w: %w", id, row.OnHand, ErrPartial, err)
		}
		return nil
	}
	// A decrease: hold the units, then sell them. The hold can only go missing between
	// the two if Redis lost it (or it outlived CommitTimeout): try again with a new one.
	d := -delta
	l := Line{VariantID: id, Quantity: d}
	for i := 0; i < 3; i++ {
		holder := "adj_" + token()
		rep, err := s.reserveLine(ctx, holder, l, max(s.opts.CommitTimeout.Milliseconds(), 1))
		if err != nil {
			s.releaseAll(ctx, holder, []Line{l})
			return err
		}
		if rep.code != codeOK {
			return &BelowHeldError{VariantID: id, Requested: d, Available: max(rep.available, 0)}
		}
		_, err = s.sell(ctx, holder, reference, []Line{l}, reason, expected, nil)
		if err == nil {
			return nil
		}
		s.releaseAll(ctx, holder, []Line{l}) // held again after a failed step 2
		switch {
		case errors.Is(err, ErrHoldMissing):
			continue
		case errors.Is(err, ErrInsufficientStock):
			return &BelowHeldError{VariantID: id, Requested: d, Available: 0}
		}
		return err
	}
	return fmt.Errorf("adjust %s: the decrease's hold kept disappearing: %w", id, ErrConcurrentChange)
}

// Set sets on_hand to onHand (0 ≤ onHand ≤ MaxOnHand) through Adjust's protocol with a
// compare-and-set on the value it read, retried when another change got in between, and
// returns the new levels. Setting the current value changes nothing.
// Errors: as Adjust, and ErrConcurrentChange after repeated lost races.
func (s *Service) Set(ctx context.Context, variantID uuid.UUID, onHand int64, reason string) (Levels, error) {
	return s.SetRef(ctx, variantID, onHand, reason, "")
}

// SetRef is Set with the ledger reference of the change (see KeyReference).
func (s *Service) SetRef(ctx context.Context, variantID uuid.UUID, onHand int64, reason, reference string) (Levels, error) {
	if onHand < 0 || onHand > MaxOnHand {
		return Levels{}, fmt.Errorf("on_hand must be between 0 and %d: %w", MaxOnHand, ErrInvalid)
	}
	if !validReason(reason) {
		return Levels{}, fmt.Errorf("reason must be 1-200 characters: %w", ErrInvalid)
	}
	for i := 0; i < 5; i++ {
		row, err := s.store.stock(ctx, variantID)
		if err != nil {
			return Levels{}, err
		}
		delta := onHand - row.OnHand
		if delta == 0 {
			return s.Levels(ctx, variantID)
		}
		cur := row.OnHand
		err = s.adjust(ctx, variantID, delta, &cur, reason, reference)
		if errors.Is(err, errCASFailed) {
			continue
		}
		if err != nil {
			return Levels{}, err
		}
		return s.Levels(ctx, variantID)
	}
	return Levels{}, fmt.Errorf("set %s: %w", variantID, ErrConcurrentChange)
}

// KeyReference is the ledger reference of an operator's change sent with an
// Idempotency-Key: 'key:' and a hash of scope (the route) and key. The ledger holds at
// most one row per such reference (migration 000020), so the change applies at most once
// however often it is retried; a retry gets an error for which AlreadyApplied is true.
func KeyReference(scope, key string) string {
	h := sha256.Sum256([]byte("inventory-key\x00" + scope + "\x00" + key))
	return "key:" + hex.EncodeToString(h[:16])
}

// AlreadyApplied reports whether err says that the change of a KeyReference was applied
// by an earlier attempt (its ledger row exists): nothing was changed this time.
func AlreadyApplied(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "stock_ledger_key_uniq"
}
