package inventory

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Reconcile compares each counter with PostgreSQL and, unless dryRun, sets it to
// on_hand − held. ids empty means every variant (paged through PostgreSQL in id order);
// unknown ids are ignored. A counter that already reflects a change newer than the
// PostgreSQL read is skipped (never set from a stale read); a missing counter is left
// for the lazy load. It also re-registers every variant with holds in the sweep index.
// Errors: Redis/PostgreSQL errors (the report says what was done before).
func (s *Service) Reconcile(ctx context.Context, ids []uuid.UUID, dryRun bool) (ReconcileReport, error) {
	start := time.Now()
	var rep ReconcileReport
	one := func(id uuid.UUID, row stockRow) error {
		if h := s.opts.Hooks.ReconcileRead; h != nil {
			h(id)
		}
		r, err := s.r.reconcileOne(ctx, id, row.OnHand, row.Version, dryRun)
		if err != nil {
			return fmt.Errorf("reconcile %s: %w", id, err)
		}
		rep.Checked++
		switch r.code {
		case codeFixed, codeDrift:
			rep.Drifted++
			s.m.driftFound.Inc()
			av := r.avail
			rep.Variants = append(rep.Variants, ReconcileVariant{VariantID: id, OnHand: row.OnHand, Held: r.held,
				RedisAvailable: &av, ExpectedAvailable: r.expected})
			if r.code == codeFixed {
				rep.Fixed++
				s.m.driftFixed.Inc()
			}
		case codeStale:
			rep.Skipped++
		}
		if r.first >= 0 && !dryRun {
			if err := s.r.indexLower(ctx, id, r.first); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if len(ids) > 0 {
		err = s.reconcileIDs(ctx, ids, one)
	} else {
		err = s.reconcileAll(ctx, one)
	}
	rep.Duration = time.Since(start)
	return rep, err
}

func (s *Service) reconcileIDs(ctx context.Context, ids []uuid.UUID, one func(uuid.UUID, stockRow) error) error {
	seen := make(map[uuid.UUID]bool, len(ids))
	for start := 0; start < len(ids); start += s.opts.ReconcilePage {
		chunk := ids[start:min(start+s.opts.ReconcilePage, len(ids))]
		rows, err := s.store.stockMany(ctx, chunk)
		if err != nil {
			return err
		}
		for _, id := range chunk {
			row, ok := rows[id]
			if !ok || seen[id] {
				continue
			}
			seen[id] = true
			if err := one(id, row); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Service) reconcileAll(ctx context.Context, one func(uuid.UUID, stockRow) error) error {
	after := uuid.Nil
	for {
		rows, err := s.store.page(ctx, after, s.opts.ReconcilePage)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := one(r.ID, r.stockRow); err != nil {
				return err
			}
		}
		if len(rows) < s.opts.ReconcilePage {
			return nil
		}
		after = rows[len(rows)-1].ID
	}
}
