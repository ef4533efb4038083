package inventory

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// Sweep returns expired held holds to available and recovers expired committing holds
// (see Recover); it returns how many holds came back. It visits only the variants that
// the hold index says are due, never SCANs.
//
// The index (ZSET variant → earliest deadline, in its own Cluster slot, so written from
// Go around the scripts) only has to be early, never late or absent while a variant has
// holds: reserve lowers it (ZADD LT) after its script whenever the new hold is the
// earliest; Sweep, which raises or removes entries, re-reads the variant's earliest
// deadline after its write and lowers the entry again if a hold appeared meanwhile. An
// early or stale entry only costs a visit. A process that dies between reserve's script
// and its index write leaves an unindexed hold: the next reserve of that variant reclaims
// it lazily, and Reconcile re-registers every variant with holds.
//
// Errors: Redis errors; PostgreSQL errors of recovery (the other variants are still swept).
func (s *Service) Sweep(ctx context.Context) (int64, error) {
	reclaimed, _, err := s.pass(ctx)
	return reclaimed, err
}

// Recover decides the committing holds of dead commits: those still committing
// Options.CommitTimeout after they were marked. For each, the attempt is looked up in
// PostgreSQL, and recorded as aborted if its transaction never committed (which fences a
// transaction still running: it then fails). A committed attempt is finished (step 3: the
// hold is deleted without returning stock); an aborted one has its units returned. It
// runs a whole Sweep pass and returns how many committing holds it decided.
func (s *Service) Recover(ctx context.Context) (int, error) {
	_, recovered, err := s.pass(ctx)
	return recovered, err
}

func (s *Service) pass(ctx context.Context) (reclaimed int64, recovered int, err error) {
	now, err := s.r.now(ctx)
	if err != nil {
		return 0, 0, err
	}
	due, err := s.r.due(ctx, now, s.opts.SweepVariants)
	if err != nil {
		return 0, 0, err
	}
	var firstErr error
	for _, id := range due {
		n, rec, err := s.sweepVariant(ctx, id)
		reclaimed += n
		recovered += rec
		if err != nil {
			if ctx.Err() != nil {
				return reclaimed, recovered, err
			}
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return reclaimed, recovered, firstErr
}

func (s *Service) sweepVariant(ctx context.Context, id uuid.UUID) (int64, int, error) {
	var reclaimed int64
	var stuck []stuckHold
	for i := 0; i < 100; i++ {
		rep, err := s.r.sweepOne(ctx, id, s.opts.SweepBatch)
		if err != nil {
			return reclaimed, 0, err
		}
		reclaimed += rep.holds
		if i == 0 {
			stuck = rep.stuck
		}
		if !rep.more {
			break
		}
	}
	if reclaimed > 0 {
		s.m.reclaimed.Add(float64(reclaimed))
	}
	recovered := 0
	var recErr error
	for _, h := range stuck {
		if err := s.recoverHold(ctx, h); err != nil {
			if recErr == nil {
				recErr = err
			}
			continue
		}
		recovered++
	}
	// Index maintenance: write, then re-read and lower if a hold appeared meanwhile.
	first, err := s.r.firstDeadline(ctx, id)
	if err != nil {
		return reclaimed, recovered, err
	}
	if h := s.opts.Hooks.SweepIndex; h != nil {
		h(id)
	}
	if err := s.r.indexSet(ctx, id, first); err != nil {
		return reclaimed, recovered, err
	}
	again, err := s.r.firstDeadline(ctx, id)
	if err != nil {
		return reclaimed, recovered, err
	}
	if again >= 0 && (first < 0 || again < first) {
		if err := s.r.indexLower(ctx, id, again); err != nil {
			return reclaimed, recovered, err
		}
	}
	return reclaimed, recovered, recErr
}

func (s *Service) recoverHold(ctx context.Context, h stuckHold) error {
	outcome, versions, err := s.store.resolve(ctx, h.attempt, h.holder)
	if err != nil {
		return fmt.Errorf("recover %s of %s: %w", h.variant, h.holder, err)
	}
	if outcome == outcomeCommitted {
		v, ok := versions[h.variant]
		if !ok {
			return fmt.Errorf("recover %s of %s: committed attempt %s has no version for it", h.variant, h.holder, h.attempt)
		}
		if _, _, err := s.r.finalizeOne(ctx, h.variant, h.holder, h.attempt, max(h.quantity, 1), v, ""); err != nil {
			return fmt.Errorf("recover %s of %s: %w", h.variant, h.holder, err)
		}
		s.m.recovered.WithLabelValues("sold").Inc()
		return nil
	}
	if _, _, err := s.r.abortOne(ctx, h.variant, h.holder, h.attempt); err != nil {
		return fmt.Errorf("recover %s of %s: %w", h.variant, h.holder, err)
	}
	s.m.recovered.WithLabelValues("returned").Inc()
	return nil
}
