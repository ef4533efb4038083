package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// --- listings -------------------------------------------------------------------------

// generation returns the current catalog generation. A missing counter (Redis lost it)
// restarts at the current Unix time in ms, never at a number an older, possibly still
// cached generation used.
func (c *Cache) generation(ctx context.Context) (string, error) {
	var gen string
	err := c.guard.Run(ctx, func(ctx context.Context) error {
		g, err := c.rdb.Get(ctx, c.genKey()).Result()
		if errors.Is(err, redis.Nil) {
			pipe := c.rdb.Pipeline()
			pipe.SetNX(ctx, c.genKey(), time.Now().UnixMilli(), 0)
			get := pipe.Get(ctx, c.genKey())
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
			g, err = get.Result()
		}
		gen = g
		return err
	})
	return gen, err
}

func (c *Cache) bumpGeneration(ctx context.Context) error {
	pipe := c.rdb.Pipeline()
	pipe.SetNX(ctx, c.genKey(), time.Now().UnixMilli(), 0)
	pipe.Incr(ctx, c.genKey())
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("bump catalog generation: %w", err)
	}
	return nil
}

// ListActive returns a page of active products, from Redis when the page is cached for
// the current catalog generation, otherwise from the Source (once per process for
// concurrent identical queries) and cached. q must be valid. Errors: the Source's
// dependency error; a Redis failure is not an error.
func (c *Cache) ListActive(ctx context.Context, q ListQuery) (Page, error) {
	gen, rerr := c.generation(ctx)
	var key string
	if rerr == nil {
		key = c.listKey(gen, q)
		var pg Page
		var found bool
		rerr = c.guard.Run(ctx, func(ctx context.Context) error {
			b, err := c.rdb.Get(ctx, key).Bytes()
			if errors.Is(err, redis.Nil) {
				return nil
			}
			if err != nil {
				return err
			}
			pg, found = decodePage(b)
			return nil
		})
		if rerr == nil && found {
			c.listStats.Hit()
			return pg, nil
		}
	}
	c.listStats.Miss()
	flightKey := key
	if rerr != nil {
		flightKey = "nocache:" + q.hash()
	}
	v, err := c.flight(ctx, flightKey, func(ctx context.Context) (any, error) {
		pg, err := c.src.ListActive(ctx, q)
		if err != nil {
			return nil, err
		}
		if rerr == nil {
			if b, err := encodePage(pg); err == nil {
				_ = c.guard.Run(ctx, func(ctx context.Context) error {
					return c.rdb.Set(ctx, key, b, jitter(c.listTTL)).Err()
				})
			}
		}
		return pg, nil
	})
	if err != nil {
		return Page{}, err
	}
	return v.(Page), nil
}

func encodePage(pg Page) ([]byte, error) {
	cp := cachedPage{Total: pg.Total, Items: make([]cachedProduct, len(pg.Items))}
	for i, p := range pg.Items {
		cp.Items[i] = toCached(p)
	}
	return json.Marshal(cp)
}

func decodePage(b []byte) (Page, bool) {
	var cp cachedPage
	if err := json.Unmarshal(b, &cp); err != nil {
		return Page{}, false
	}
	pg := Page{Total: cp.Total, Items: make([]Product, len(cp.Items))}
	for i, p := range cp.Items {
		pg.Items[i] = fromCached(p)
	}
	return pg, true
}
