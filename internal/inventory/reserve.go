package inventory

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Reserve holds every line for holder for ttl (Options.HoldTTL when ttl <= 0), all or
// nothing. Lines are merged per variant and taken in variant-id order. A hold the holder
// already has on a variant is REPLACED (quantity and expiry), so a retried Reserve never
// holds twice. When it fails, the holder holds nothing on any of the lines' variants
// (holds taken by this call are released, and so are replaced ones).
//
// Errors: *InsufficientStockError (ErrInsufficientStock) listing the failing line and
// every later line short at that moment; ErrNotFound (unknown variant); ErrHoldBusy (the
// holder is committing one of the variants); ErrInvalid; Redis/PostgreSQL errors.
func (s *Service) Reserve(ctx context.Context, holder string, lines []Line, ttl time.Duration) error {
	if err := checkHolder(holder); err != nil {
		return err
	}
	lines, err := normalize(lines)
	if err != nil {
		return err
	}
	if ttl <= 0 {
		ttl = s.opts.HoldTTL
	}
	ttlMs := max(ttl.Milliseconds(), 1)
	for i, l := range lines {
		rep, err := s.reserveLine(ctx, holder, l, ttlMs)
		if err == nil && rep.code == codeOK {
			continue
		}
		s.releaseAll(ctx, holder, lines)
		if err != nil {
			s.m.reservations.WithLabelValues("error").Inc()
			return err
		}
		s.m.reservations.WithLabelValues("insufficient").Inc()
		short := []Shortage{{VariantID: l.VariantID, Requested: l.Quantity, Available: max(rep.available, 0)}}
		if rest := lines[i+1:]; len(rest) > 0 {
			ids := make([]uuid.UUID, len(rest))
			for j, r := range rest {
				ids[j] = r.VariantID
			}
			if av, err := s.Available(ctx, ids); err == nil {
				for _, r := range rest {
					if a, ok := av[r.VariantID]; ok && a < r.Quantity {
						short = append(short, Shortage{VariantID: r.VariantID, Requested: r.Quantity, Available: a})
					}
				}
			}
		}
		return &InsufficientStockError{Shortages: short}
	}
	s.m.reservations.WithLabelValues("ok").Inc()
	return nil
}

// reserveLine runs the reserve script, loading the counter when it is missing, and
// registers the hold in the sweep index. An error means the hold may or may not exist.
func (s *Service) reserveLine(ctx context.Context, holder string, l Line, ttlMs int64) (reserveReply, error) {
	for i := 0; ; i++ {
		rep, err := s.r.reserveOne(ctx, l.VariantID, holder, l.Quantity, ttlMs, s.opts.ReclaimBatch)
		if err != nil {
			return rep, err
		}
		if rep.reclaimed > 0 {
			s.m.reclaimed.Add(float64(rep.reclaimed))
		}
		switch rep.code {
		case codeOK:
			if !rep.indexed && (rep.first < 0 || rep.expiry < rep.first) {
				if err := s.r.indexLower(ctx, l.VariantID, rep.expiry); err != nil {
					return rep, err
				}
			}
			s.noteReserved(ctx, l.VariantID, holder, rep)
			return rep, nil
		case codeInsufficient:
			return rep, nil
		case codeBusy:
			return rep, fmt.Errorf("reserve %s for %s: %w", l.VariantID, holder, ErrHoldBusy)
		case codeLoadRequired:
			if i >= s.opts.LoadRetries {
				return rep, fmt.Errorf("reserve %s: counter still missing after %d loads", l.VariantID, i)
			}
			if _, err := s.load(ctx, l.VariantID, nil); err != nil {
				return rep, fmt.Errorf("reserve %s: %w", l.VariantID, err)
			}
		default:
			return rep, fmt.Errorf("reserve %s: unexpected reply %q", l.VariantID, rep.code)
		}
	}
}

func (s *Service) releaseAll(ctx context.Context, holder string, lines []Line) {
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	for _, l := range lines {
		if _, _, err := s.r.releaseOne(cctx, l.VariantID, holder); err != nil {
			// the hold expires on its own
			s.log.Warn("inventory: release after a failed reserve", "variant_id", l.VariantID, "holder", holder, "error", err)
		}
	}
}

// Release returns holder's held holds of variantIDs to available and says how many units
// came back. Holds that are gone (released, expired and reclaimed, sold) and holds being
// committed return nothing. Errors: ErrInvalid; Redis errors (some holds may have been
// released: the call is safe to repeat).
func (s *Service) Release(ctx context.Context, holder string, variantIDs []uuid.UUID) (int64, error) {
	if err := checkHolder(holder); err != nil {
		return 0, err
	}
	var total int64
	for _, id := range variantIDs {
		n, _, err := s.r.releaseOne(ctx, id, holder)
		if err != nil {
			return total, fmt.Errorf("release %s for %s: %w", id, holder, err)
		}
		total += n
	}
	return total, nil
}
