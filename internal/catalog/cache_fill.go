package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// --- fills ----------------------------------------------------------------------------

func (c *Cache) fillMissing(ctx context.Context, key string) error {
	return c.fill.Run(ctx, c.rdb, []string{key}, 0, "0\n", c.negTTL.Milliseconds()).Err()
}

// fillProducts writes the products with versioned fills, and their variant → product
// mappings, in one pipeline. A cached version newer than the one written is kept.
func (c *Cache) fillProducts(ctx context.Context, ps []Product) error {
	if len(ps) == 0 {
		return nil
	}
	vals := make([][]byte, len(ps))
	for i, p := range ps {
		b, err := encodeProduct(p)
		if err != nil {
			return err
		}
		vals[i] = b
	}
	run := func() ([]redis.Cmder, error) {
		pipe := c.rdb.Pipeline()
		for i, p := range ps {
			c.fill.EvalSha(ctx, pipe, []string{c.productKey(p.ID)}, p.Version, vals[i], jitter(c.ttl).Milliseconds())
			for _, v := range p.Variants {
				pipe.Set(ctx, c.variantKey(v.ID), p.ID.String(), jitter(c.ttl))
			}
		}
		return pipe.Exec(ctx)
	}
	cmds, err := run()
	if err != nil && noScript(cmds) {
		if err := c.fill.Load(ctx, c.rdb).Err(); err != nil {
			return fmt.Errorf("load cache_fill script: %w", err)
		}
		_, err = run()
	}
	if err != nil {
		return fmt.Errorf("fill %d products: %w", len(ps), err)
	}
	return nil
}

func noScript(cmds []redis.Cmder) bool {
	for _, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			return true
		}
	}
	return false
}

// Invalidate makes a committed write of p visible to every replica: it writes p with a
// versioned fill (so a slower reader's older fill cannot replace it), deleting the key
// if that fails, bumps the catalog generation so every cached listing is left behind,
// and publishes the new version to the near-caches of every replica (this one's is
// updated directly). It returns what failed; the write is committed either way, and its
// catalog_invalidations row stays for the relay until a call succeeds.
func (c *Cache) Invalidate(ctx context.Context, p Product) error {
	return c.InvalidateAll(ctx, []Product{p})
}

// InvalidateAll is Invalidate for several products, in a few pipelined round trips.
func (c *Cache) InvalidateAll(ctx context.Context, ps []Product) error {
	if len(ps) == 0 {
		return nil
	}
	for _, p := range ps {
		c.near.invalidate(p.ID, p.Version)
	}
	var errs []error
	l2Fixed := true
	if err := c.fillProducts(ctx, ps); err != nil {
		errs = append(errs, err)
		keys := make([]string, len(ps))
		for i, p := range ps {
			keys[i] = c.productKey(p.ID)
		}
		if derr := c.del(ctx, keys); derr != nil {
			errs = append(errs, fmt.Errorf("delete %d products: %w", len(ps), derr))
			l2Fixed = false
		}
	}
	// The generation moves only once the L2 holds no older entry: near-caches trust an
	// entry read at a generation until it moves (see nearCache.sameGeneration).
	if l2Fixed {
		if err := c.bumpGeneration(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.publish(ctx, ps); err != nil {
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "catalog cache invalidation failed",
			slog.String("product_id", ps[0].ID.String()), slog.Int64("version", ps[0].Version),
			slog.Int("products", len(ps)), slog.String("error", err.Error()))
	}
	return err
}

// del deletes keys one by one in a pipeline (they live in different Cluster slots).
func (c *Cache) del(ctx context.Context, keys []string) error {
	pipe := c.rdb.Pipeline()
	for _, k := range keys {
		pipe.Del(ctx, k)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Warm loads every active product from the Source and writes them to Redis with
// pipelined versioned fills, warmBatch at a time. It returns how many products it wrote
// (a fill that found a newer version cached counts too).
func (c *Cache) Warm(ctx context.Context) (int, error) {
	ids, err := c.src.AllActiveIDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("warm products: %w", err)
	}
	n := 0
	for start := 0; start < len(ids); start += warmBatch {
		batch := ids[start:min(start+warmBatch, len(ids))]
		ps, err := c.src.Products(ctx, batch)
		if err != nil {
			return n, fmt.Errorf("warm products: %w", err)
		}
		if err := c.fillProducts(ctx, ps); err != nil {
			return n, fmt.Errorf("warm products: %w", err)
		}
		n += len(ps)
	}
	return n, nil
}
