package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// --- variants -------------------------------------------------------------------------

// Variants returns what carts and checkout need to know about each variant, with the
// current price (a variant write overwrites its product's cache entry before it
// returns). Variants are resolved through the cached products; those not cached are
// loaded from the Source with their whole products, which are cached. Unknown ids are
// absent from the map. Errors: the Source's dependency error; a Redis failure is not an
// error.
func (c *Cache) Variants(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]VariantInfo, error) {
	out := make(map[uuid.UUID]VariantInfo, len(ids))
	want := make(map[uuid.UUID]bool, len(ids))
	uniq := make([]uuid.UUID, 0, len(ids))
	for _, id := range ids {
		if !want[id] {
			want[id] = true
			uniq = append(uniq, id)
		}
	}
	if len(uniq) == 0 {
		return out, nil
	}
	if uniq = c.variantsFromNear(uniq, want, out); len(uniq) == 0 {
		return out, nil
	}
	redisOK := c.guard.Run(ctx, func(ctx context.Context) error {
		return c.variantsFromRedis(ctx, uniq, want, out)
	}) == nil
	var missing []uuid.UUID
	for _, id := range uniq {
		if _, ok := out[id]; ok {
			c.variantStats.Hit()
		} else {
			c.variantStats.Miss()
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	at := time.Now()
	ps, err := c.src.ProductsOfVariants(ctx, missing)
	if err != nil {
		return nil, fmt.Errorf("variants: %w", err)
	}
	for _, p := range ps {
		c.near.put(p, at)
		for _, vi := range p.variantInfos() {
			if want[vi.ID] {
				out[vi.ID] = vi
			}
		}
	}
	if redisOK && len(ps) > 0 {
		_ = c.guard.Run(ctx, func(ctx context.Context) error { return c.fillProducts(ctx, ps) })
	}
	return out, nil
}

// variantsFromRedis resolves variant → product through the mapping keys, then reads
// those products, all in two round trips. What it cannot resolve stays absent from out.
func (c *Cache) variantsFromRedis(ctx context.Context, ids []uuid.UUID, want map[uuid.UUID]bool,
	out map[uuid.UUID]VariantInfo) error {
	pipe := c.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		gets[i] = pipe.Get(ctx, c.variantKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	var pids []uuid.UUID
	seen := map[uuid.UUID]bool{}
	for _, g := range gets {
		pid, err := uuid.Parse(g.Val())
		if g.Err() != nil || err != nil || seen[pid] {
			continue
		}
		seen[pid] = true
		pids = append(pids, pid)
	}
	if len(pids) == 0 {
		return nil
	}
	at := time.Now()
	pipe = c.rdb.Pipeline()
	pgets := make([]*redis.StringCmd, len(pids))
	for i, pid := range pids {
		pgets[i] = pipe.Get(ctx, c.productKey(pid))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	for _, g := range pgets {
		b, err := g.Bytes()
		if err != nil {
			continue
		}
		e, ok := decodeProduct(b)
		if !ok || e.missing {
			continue
		}
		c.near.put(e.p, at)
		for _, vi := range e.p.variantInfos() {
			if want[vi.ID] {
				out[vi.ID] = vi
			}
		}
	}
	return nil
}

// variantsFromNear resolves what it can from the near-cache into out and returns the ids
// it could not (a variant whose product is not held, or held but expired).
func (c *Cache) variantsFromNear(ids []uuid.UUID, want map[uuid.UUID]bool, out map[uuid.UUID]VariantInfo) []uuid.UUID {
	if !c.near.enabled() {
		return ids
	}
	now := time.Now()
	rest := ids[:0:0]
	for _, id := range ids {
		if _, ok := out[id]; ok {
			continue
		}
		pid, ok := c.near.productOf(id)
		var ne *nearEntry
		if ok {
			ne, ok = c.near.get(pid, now)
		}
		if !ok {
			c.nearStats.Miss()
			rest = append(rest, id)
			continue
		}
		c.nearStats.Hit()
		found := false
		for _, vi := range ne.infos {
			if want[vi.ID] {
				out[vi.ID] = vi
			}
			found = found || vi.ID == id
		}
		if !found {
			rest = append(rest, id)
		}
	}
	return rest
}
