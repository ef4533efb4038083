package inventory

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// Levels returns on_hand and version (PostgreSQL), the counter, the held total and the
// hold count (Redis, loading a missing counter, all O(1)), the first page of holds (the
// soonest deadlines first, at most 100) and Drift. The two reads are not one snapshot,
// so a concurrent change can show as a transient drift. Errors: ErrNotFound;
// Redis/PostgreSQL errors.
func (s *Service) Levels(ctx context.Context, variantID uuid.UUID) (Levels, error) {
	row, err := s.store.stock(ctx, variantID)
	if err != nil {
		return Levels{}, err
	}
	var lv Levels
	for i := 0; ; i++ {
		got, ok, err := s.r.levelsOne(ctx, variantID)
		if err != nil {
			return Levels{}, err
		}
		if ok {
			lv = got
			break
		}
		if i >= s.opts.LoadRetries {
			return Levels{}, fmt.Errorf("levels %s: counter still missing after %d loads", variantID, i)
		}
		if _, err := s.load(ctx, variantID, nil); err != nil {
			return Levels{}, err
		}
	}
	lv.VariantID, lv.OnHand, lv.Version = variantID, row.OnHand, row.Version
	lv.Drift = lv.Available + lv.Held - lv.OnHand
	return lv, nil
}

// Available returns how many units of each variant can be reserved now (never below 0),
// from the Redis counters, loading missing ones. Unknown variants are absent. When Redis
// fails it degrades to PostgreSQL on_hand, which ignores holds (it may overstate what a
// reservation would get; reservations themselves never degrade). Errors: PostgreSQL errors.
func (s *Service) Available(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]int64, error) {
	out := make(map[uuid.UUID]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	got, err := s.r.getAvail(ctx, ids)
	if err != nil {
		return s.availableFromPG(ctx, ids, err)
	}
	var missing []uuid.UUID
	seen := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		if v, ok := got[id]; ok {
			out[id] = max(v, 0)
		} else if !seen[id] {
			seen[id] = true
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	rows, err := s.store.stockMany(ctx, missing)
	if err != nil {
		return nil, err
	}
	for id, row := range rows {
		v, err := s.load(ctx, id, &row)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			s.m.fallbacks.Inc()
			v = row.OnHand // Redis failed while loading: degrade like above
		}
		out[id] = max(v, 0)
	}
	return out, nil
}

// CounterKey returns the Redis key of variant id's available-units counter (what
// Available reads; a missing key means the counter is not loaded), so that a script on
// the same Redis can read it in the same round trip. It is false under Redis Cluster,
// where that key may be on another node than the caller's.
func (s *Service) CounterKey(id uuid.UUID) (string, bool) {
	if !s.r.singleNode() {
		return "", false
	}
	return s.r.keys(id).avail, true
}

func (s *Service) availableFromPG(ctx context.Context, ids []uuid.UUID, cause error) (map[uuid.UUID]int64, error) {
	s.m.fallbacks.Inc()
	s.log.Warn("inventory: availability from PostgreSQL, Redis failed", "error", cause)
	rows, err := s.store.stockMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]int64, len(rows))
	for id, r := range rows {
		out[id] = r.OnHand
	}
	return out, nil
}
