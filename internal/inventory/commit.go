package inventory

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"commerce/internal/platform/db"
	"commerce/internal/platform/resilience"
)

// Commit sells holder's holds of lines (merged per variant), in three steps:
//  1. each hold is marked committing (it keeps counting as held; nothing returns it);
//  2. one PostgreSQL transaction runs inTx (the checkout's order insert), decrements each
//     on_hand WHERE on_hand >= quantity, bumps its version, writes a ledger row (reason,
//     reference = holder) and records the attempt as committed;
//  3. the holds are deleted without returning their units.
//
// If step 1 fails nothing is changed (marked holds are unmarked). If step 2 fails the
// transaction is rolled back and the holds are `held` again. If step 3 fails the sale
// stands and Commit succeeds: recovery finishes step 3. A crash after step 1 leaves
// committing holds that recovery decides after Options.CommitTimeout.
//
// Errors: ErrHoldMissing (a hold was gone, expired, or for another quantity; or recovery
// had already given the units back); ErrHoldBusy (another Commit of the same holder is
// running); inTx's error as returned; ErrInsufficientStock (PostgreSQL on_hand below a
// held quantity: Redis and PostgreSQL disagree); ErrNotFound; ErrInvalid;
// Redis/PostgreSQL errors (an error from COMMIT itself is resolved in PostgreSQL at once
// when possible, else left to recovery).
func (s *Service) Commit(ctx context.Context, holder string, lines []Line, reason string,
	inTx func(ctx context.Context, tx db.Tx) error) error {
	if err := checkHolder(holder); err != nil {
		return err
	}
	if !validReason(reason) {
		return fmt.Errorf("reason must be 1-200 characters: %w", ErrInvalid)
	}
	lines, err := normalize(lines)
	if err != nil {
		return err
	}
	_, err = s.sell(ctx, holder, holder, lines, reason, nil, inTx)
	return err
}

// sell is Commit with a ledger reference and an optional compare-and-set of on_hand
// (single line); it returns the versions written.
func (s *Service) sell(ctx context.Context, holder, reference string, lines []Line, reason string, expected *int64,
	inTx func(ctx context.Context, tx db.Tx) error) (map[uuid.UUID]int64, error) {
	attempt := token()
	timeoutMs := max(s.opts.CommitTimeout.Milliseconds(), 1)
	epochs := make([]string, len(lines))
	// Step 1.
	for i, l := range lines {
		rep, err := s.r.markOne(ctx, l.VariantID, holder, attempt, l.Quantity, timeoutMs)
		if err == nil && rep.code == codeOK {
			epochs[i] = rep.epoch
			// The recovery deadline may be earlier than the hold's expiry: make sure the
			// sweep visits by then (the script did, unless under Cluster; a crash between
			// the script and indexLower delays recovery to that expiry).
			if rep.indexed {
				continue
			}
			if err = s.r.indexLower(ctx, l.VariantID, rep.deadline); err == nil {
				continue
			}
		}
		undo := lines[:i]
		if err != nil {
			undo = lines[:i+1] // the reply was lost: it may have been marked
		}
		s.unmarkAll(ctx, holder, attempt, undo)
		if err != nil {
			return nil, fmt.Errorf("commit %s: mark %s: %w", holder, l.VariantID, err)
		}
		switch rep.code {
		case codeBusy:
			return nil, fmt.Errorf("commit %s: variant %s: %w", holder, l.VariantID, ErrHoldBusy)
		case codeQty:
			return nil, fmt.Errorf("commit %s: variant %s: holds %d, not %d: %w", holder, l.VariantID, rep.held,
				l.Quantity, ErrHoldMissing)
		case codeExpired:
			return nil, fmt.Errorf("commit %s: variant %s: hold expired: %w", holder, l.VariantID, ErrHoldMissing)
		default:
			return nil, fmt.Errorf("commit %s: variant %s: %w", holder, l.VariantID, ErrHoldMissing)
		}
	}
	if h := s.opts.Hooks.AfterMark; h != nil {
		if err := h(); err != nil {
			return nil, err
		}
	}
	// Step 2.
	// A serialization failure or deadlock rolls the whole transaction back (inTx included),
	// so running it again is safe.
	versions, err := resilience.RetryValue(ctx, resilience.PostgresPolicy("inventory.sell", s.opts.RetryMetrics),
		func(ctx context.Context) (map[uuid.UUID]int64, error) {
			return s.store.sell(ctx, saleSpec{attempt: attempt, holder: holder, lines: lines, reason: reason,
				reference: reference, expected: expected, inTx: inTx})
		})
	switch {
	case err == nil:
	case errors.Is(err, errAttemptAborted):
		// Recovery gave up on this attempt first and returns (or returned) its units.
		s.abortAll(ctx, holder, attempt, lines)
		return nil, fmt.Errorf("commit %s: holds returned by recovery: %w", holder, ErrHoldMissing)
	case errors.Is(err, errOutcomeUnknown):
		cctx, cancel := cleanupCtx(ctx)
		outcome, vs, rerr := s.store.resolve(cctx, attempt, holder)
		cancel()
		if rerr != nil {
			return nil, fmt.Errorf("commit %s: outcome unknown, left to recovery: %w", holder, err)
		}
		if outcome != outcomeCommitted {
			s.unmarkAll(ctx, holder, attempt, lines)
			return nil, fmt.Errorf("commit %s: %w", holder, err)
		}
		versions = vs
	default:
		s.unmarkAll(ctx, holder, attempt, lines)
		return nil, err
	}
	if h := s.opts.Hooks.AfterTx; h != nil {
		if err := h(); err != nil {
			return nil, err
		}
	}
	// Step 3. The sale stands whatever happens here.
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	for i, l := range lines {
		if _, _, err := s.r.finalizeOne(cctx, l.VariantID, holder, attempt, l.Quantity, versions[l.VariantID], epochs[i]); err != nil {
			s.m.finalizeLag.Inc()
			s.log.Warn("inventory: finalize failed, left to recovery", "variant_id", l.VariantID, "holder", holder, "error", err)
		}
	}
	return versions, nil
}

// unmarkAll puts the holds of a failed attempt back to `held`, with the expiry they had.
func (s *Service) unmarkAll(ctx context.Context, holder, attempt string, lines []Line) {
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	for _, l := range lines {
		code, exp, err := s.r.unmarkOne(cctx, l.VariantID, holder, attempt)
		if err == nil && code == codeOK {
			// the expiry may be earlier than what the index says now
			err = s.r.indexLower(cctx, l.VariantID, exp)
		}
		if err != nil {
			// left committing: recovery finds no committed attempt and returns the units
			s.log.Warn("inventory: unmark failed, left to recovery", "variant_id", l.VariantID, "holder", holder, "error", err)
		}
	}
}

// abortAll returns the units of an attempt recovery decided as not sold.
func (s *Service) abortAll(ctx context.Context, holder, attempt string, lines []Line) {
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	for _, l := range lines {
		if _, _, err := s.r.abortOne(cctx, l.VariantID, holder, attempt); err != nil {
			s.log.Warn("inventory: abort failed, left to recovery", "variant_id", l.VariantID, "holder", holder, "error", err)
		}
	}
}
