package cacheadmin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/httpx"
)

type purgeResponse struct {
	Deleted int64 `json:"deleted"`
}

func (h *Handler) purge(c echo.Context) error {
	ns := c.QueryParam("namespace")
	if ns == "" {
		return httpx.BadRequest("query parameter namespace is required")
	}
	n, err := h.Purge(c.Request().Context(), ns)
	if errors.Is(err, ErrNamespace) {
		return httpx.Validation(map[string]string{
			"namespace": "must be one of " + strings.Join(Namespaces(), ", ")})
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, purgeResponse{Deleted: n})
}

// Purge deletes every key of cache namespace ns in this key space, with SCAN (on every
// master in Cluster) and UNLINK, and returns how many keys it deleted. Readers refill
// the cache from PostgreSQL. Errors: ErrNamespace for a name outside Namespaces(), Redis
// errors (keys deleted before the error stay deleted).
func (h *Handler) Purge(ctx context.Context, ns string) (int64, error) {
	patterns, ok := namespacePatterns(ns)
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrNamespace, ns)
	}
	var mu sync.Mutex
	var total int64
	err := forEachMaster(ctx, h.rdb, func(ctx context.Context, cl *redis.Client) error {
		for _, p := range patterns {
			n, err := scanUnlink(ctx, cl, globEscape(string(h.space))+p)
			mu.Lock()
			total += n
			mu.Unlock()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return total, fmt.Errorf("purge %s: %w", ns, err)
	}
	return total, nil
}

// scanUnlink unlinks the keys of one node matching pattern, a SCAN batch per pipeline.
// Keys are unlinked one per command, so Cluster never sees a cross-slot multi-key call.
func scanUnlink(ctx context.Context, cl *redis.Client, pattern string) (int64, error) {
	var total int64
	var cursor uint64
	for {
		keys, next, err := cl.Scan(ctx, cursor, pattern, 500).Result()
		if err != nil {
			return total, err
		}
		if len(keys) > 0 {
			cmds, err := cl.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Unlink(ctx, k)
				}
				return nil
			})
			if err != nil {
				return total, err
			}
			for _, c := range cmds {
				total += c.(*redis.IntCmd).Val()
			}
		}
		if next == 0 {
			return total, nil
		}
		cursor = next
	}
}

// globEscape escapes the SCAN MATCH metacharacters of a literal prefix.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
