// Package cacheadmin serves the operator's cache routes: warm the L2 caches now, read hit
// and miss figures with Redis INFO, purge one cache namespace with SCAN, and read the
// Redis slow log. Every route works on a single Redis and on Redis Cluster (per master).
package cacheadmin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/cachestats"
	"commerce/internal/platform/httpx"
	"commerce/internal/platform/rkey"
)

// ErrNamespace is returned by Purge for a namespace that is not a cache namespace.
var ErrNamespace = errors.New("cacheadmin: not a cache namespace")

// namespacePatterns returns the key patterns (after the key space) that namespace ns
// covers. Only L2 cache data is listed: L1 state (inv:, chk:, lock:, idem:), L3 state
// (cart:, sess:, prefs) and job locks are never purgeable. catalog:gen is kept: the
// listing keys it names are what "catalog" purges.
func namespacePatterns(ns string) ([]string, bool) {
	switch ns {
	case "product":
		return []string{"product:*", "variant:*"}, true
	case "catalog":
		return []string{"catalog:list:*"}, true
	case "discount":
		return []string{"discount:*"}, true
	}
	return nil, false
}

// Namespaces are the values DELETE /admin/cache?namespace= accepts.
func Namespaces() []string { return []string{"catalog", "discount", "product"} }

// Handler serves /admin/cache routes.
type Handler struct {
	rdb     redis.UniversalClient
	space   rkey.Space
	stats   *cachestats.Registry
	warmers map[string]func(context.Context) (int64, error)
	order   []string

	state         redis.UniversalClient // the L1/L3 instance, nil when not reported
	separateCache bool
}

// WithState makes the stats route also report the instance that holds L1 and L3 (its
// eviction policy and persistence, see redischeck). separate says whether rdb (the
// caches' client) is another instance.
func (h *Handler) WithState(state redis.UniversalClient, separate bool) *Handler {
	h.state, h.separateCache = state, separate
	return h
}

// New returns the cache admin handlers. warmers maps a target name to its warmer:
// "products" returns how many products it cached, "discounts" the ruleset version it
// published; other names are allowed and reported under "results".
func New(rdb redis.UniversalClient, space rkey.Space, stats *cachestats.Registry,
	warmers map[string]func(ctx context.Context) (int64, error)) *Handler {
	w := maps.Clone(warmers)
	if w == nil {
		w = map[string]func(context.Context) (int64, error){}
	}
	return &Handler{rdb: rdb, space: space, stats: stats, warmers: w, order: slices.Sorted(maps.Keys(w))}
}

// Register mounts POST /cache/warm, GET /cache/stats, DELETE /cache and GET
// /cache/slowlog on admin (the /admin group, already guarded).
func (h *Handler) Register(admin *echo.Group) {
	admin.POST("/cache/warm", h.warm)
	admin.GET("/cache/stats", h.statsRoute)
	admin.DELETE("/cache", h.purge)
	admin.GET("/cache/slowlog", h.slowlog)
}

// ---------------------------------------------------------------- warm

type warmRequest struct {
	Targets []string `json:"targets"`
}

type warmResponse struct {
	Products         int64            `json:"products"`
	DiscountsVersion int64            `json:"discounts_version"`
	DurationMS       int64            `json:"duration_ms"`
	Results          map[string]int64 `json:"results"`
}

func (h *Handler) warm(c echo.Context) error {
	var in warmRequest
	if err := httpx.BindOptional(c, &in); err != nil {
		return err
	}
	targets := h.order
	if len(in.Targets) > 0 {
		targets = nil
		for _, t := range in.Targets {
			if _, ok := h.warmers[t]; !ok {
				return httpx.Validation(map[string]string{
					"targets": fmt.Sprintf("unknown target %q; known: %s", t, strings.Join(h.order, ", "))})
			}
			if slices.Contains(targets, t) {
				return httpx.Validation(map[string]string{"targets": fmt.Sprintf("target %q is named twice", t)})
			}
			targets = append(targets, t)
		}
	}
	start := time.Now()
	out := warmResponse{Results: map[string]int64{}}
	for _, t := range targets {
		n, err := h.warmers[t](c.Request().Context())
		if err != nil {
			return fmt.Errorf("warm %s: %w", t, err)
		}
		out.Results[t] = n
		switch t {
		case "products":
			out.Products = n
		case "discounts":
			out.DiscountsVersion = n
		}
	}
	out.DurationMS = time.Since(start).Milliseconds()
	return c.JSON(http.StatusOK, out)
}
