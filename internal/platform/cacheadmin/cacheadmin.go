// Package cacheadmin serves the operator's cache routes: warm the L2 caches now, read hit
// and miss figures with Redis INFO, purge one cache namespace with SCAN, and read the
// Redis slow log. Every route works on a single Redis and on Redis Cluster (per master).
package cacheadmin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/cachestats"
	"commerce/internal/platform/httpx"
	"commerce/internal/platform/redischeck"
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

// ---------------------------------------------------------------- stats

type counterJSON struct {
	Hits    int64   `json:"hits"`
	Misses  int64   `json:"misses"`
	HitRate float64 `json:"hit_rate"`
}

type tierJSON struct {
	counterJSON
	Caches map[string]counterJSON `json:"caches"`
}

// RedisInfo holds the INFO figures the stats route reports, for one node or summed.
type RedisInfo struct {
	Addr             string  `json:"addr,omitempty"`
	Version          string  `json:"redis_version,omitempty"`
	UsedMemory       int64   `json:"used_memory"`
	MaxMemory        int64   `json:"maxmemory"`
	MaxMemoryPolicy  string  `json:"maxmemory_policy,omitempty"`
	KeyspaceHits     int64   `json:"keyspace_hits"`
	KeyspaceMisses   int64   `json:"keyspace_misses"`
	KeyspaceHitRate  float64 `json:"keyspace_hit_rate"`
	EvictedKeys      int64   `json:"evicted_keys"`
	ExpiredKeys      int64   `json:"expired_keys"`
	ConnectedClients int64   `json:"connected_clients"`
	PingLatencyMS    float64 `json:"ping_latency_ms"`
}

type redisJSON struct {
	OK    bool   `json:"ok"`
	Mode  string `json:"mode"`
	Error string `json:"error,omitempty"`
	RedisInfo
	// Masters lists each master in Cluster (the top-level figures are their sums).
	Masters []RedisInfo `json:"masters,omitempty"`
}

// stateJSON is the verdict on the instance that holds L1 and L3.
type stateJSON struct {
	OK bool `json:"ok"`
	// SeparateCache is true when the caches (the "redis" figures) are on another instance.
	SeparateCache bool     `json:"separate_cache"`
	Error         string   `json:"error,omitempty"`
	Problems      []string `json:"problems"`
	redischeck.Report
}

type statsResponse struct {
	Tiers map[string]tierJSON `json:"tiers"`
	// Redis is the instance that holds the caches (L2).
	Redis redisJSON `json:"redis"`
	// State is the instance that holds L1 and L3 (absent when not configured).
	State *stateJSON `json:"state_redis,omitempty"`
}

func rate(hits, misses int64) float64 {
	if hits+misses == 0 {
		return 0
	}
	return float64(hits) / float64(hits+misses)
}

func (h *Handler) statsRoute(c echo.Context) error {
	out := statsResponse{Tiers: map[string]tierJSON{}}
	for _, s := range h.stats.Snapshot() {
		t, ok := out.Tiers[s.Tier]
		if !ok {
			t.Caches = map[string]counterJSON{}
		}
		t.Caches[s.Cache] = counterJSON{Hits: s.Hits, Misses: s.Misses, HitRate: s.HitRate}
		t.Hits += s.Hits
		t.Misses += s.Misses
		t.HitRate = rate(t.Hits, t.Misses)
		out.Tiers[s.Tier] = t
	}
	out.Redis = h.redisStats(c.Request().Context())
	if h.state != nil {
		out.State = h.stateStats(c.Request().Context())
	}
	return c.JSON(http.StatusOK, out)
}

// redisStats reads INFO from every master. Redis being down is reported in the body (the
// process counters are still worth seeing), without the driver's text.
func (h *Handler) redisStats(ctx context.Context) redisJSON {
	out := redisJSON{Mode: "standalone"}
	if _, ok := h.rdb.(*redis.ClusterClient); ok {
		out.Mode = "cluster"
	}
	start := time.Now()
	if err := h.rdb.Ping(ctx).Err(); err != nil {
		out.Error = "redis is unavailable"
		return out
	}
	out.PingLatencyMS = ms(time.Since(start))
	var mu sync.Mutex
	err := forEachMaster(ctx, h.rdb, func(ctx context.Context, cl *redis.Client) error {
		start := time.Now()
		if err := cl.Ping(ctx).Err(); err != nil {
			return err
		}
		lat := time.Since(start)
		txt, err := cl.Info(ctx, "server", "clients", "memory", "stats").Result()
		if err != nil {
			return err
		}
		info := parseInfo(txt)
		info.Addr, info.PingLatencyMS = cl.Options().Addr, ms(lat)
		mu.Lock()
		out.Masters = append(out.Masters, info)
		mu.Unlock()
		return nil
	})
	if err != nil {
		out.Error = "INFO failed on a Redis node"
		return out
	}
	slices.SortFunc(out.Masters, func(a, b RedisInfo) int { return strings.Compare(a.Addr, b.Addr) })
	for _, m := range out.Masters {
		if out.Version == "" {
			out.Version, out.MaxMemoryPolicy = m.Version, m.MaxMemoryPolicy
		}
		out.UsedMemory += m.UsedMemory
		out.MaxMemory += m.MaxMemory
		out.KeyspaceHits += m.KeyspaceHits
		out.KeyspaceMisses += m.KeyspaceMisses
		out.EvictedKeys += m.EvictedKeys
		out.ExpiredKeys += m.ExpiredKeys
		out.ConnectedClients += m.ConnectedClients
	}
	out.KeyspaceHitRate = rate(out.KeyspaceHits, out.KeyspaceMisses)
	out.OK = true
	if out.Mode == "standalone" && len(out.Masters) == 1 {
		out.Masters = nil
	}
	return out
}

// stateStats inspects the L1/L3 instance; an evicting policy and missing persistence are
// listed as problems.
func (h *Handler) stateStats(ctx context.Context) *stateJSON {
	out := &stateJSON{SeparateCache: h.separateCache, Problems: []string{}}
	rep, err := redischeck.Inspect(ctx, h.state)
	if err != nil {
		out.Error = "redis is unavailable"
		return out
	}
	out.Report, out.OK = rep, true
	refusals, warnings := rep.Problems()
	out.Problems = append(append(out.Problems, refusals...), warnings...)
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// parseInfo reads the figures of one INFO reply.
func parseInfo(txt string) RedisInfo {
	var info RedisInfo
	num := func(v string) int64 { n, _ := strconv.ParseInt(v, 10, 64); return n }
	for _, line := range strings.Split(txt, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		switch k {
		case "redis_version":
			info.Version = v
		case "used_memory":
			info.UsedMemory = num(v)
		case "maxmemory":
			info.MaxMemory = num(v)
		case "maxmemory_policy":
			info.MaxMemoryPolicy = v
		case "keyspace_hits":
			info.KeyspaceHits = num(v)
		case "keyspace_misses":
			info.KeyspaceMisses = num(v)
		case "evicted_keys":
			info.EvictedKeys = num(v)
		case "expired_keys":
			info.ExpiredKeys = num(v)
		case "connected_clients":
			info.ConnectedClients = num(v)
		}
	}
	info.KeyspaceHitRate = rate(info.KeyspaceHits, info.KeyspaceMisses)
	return info
}

// forEachMaster calls fn for every master of a Cluster, or once for a single Redis.
func forEachMaster(ctx context.Context, rdb redis.UniversalClient, fn func(context.Context, *redis.Client) error) error {
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	}
	return fmt.Errorf("cacheadmin: unsupported Redis client %T", rdb)
}

// ---------------------------------------------------------------- purge

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

// ---------------------------------------------------------------- slowlog

const (
	slowlogEntries = 128
	maxArgs        = 32
	maxArgLen      = 128
)

type slowlogEntry struct {
	ID         int64     `json:"id"`
	Time       time.Time `json:"time"`
	DurationUS int64     `json:"duration_us"`
	Args       []string  `json:"args"`
	ClientAddr string    `json:"client_addr,omitempty"`
	ClientName string    `json:"client_name,omitempty"`
	Node       string    `json:"node,omitempty"`
}

type slowlogResponse struct {
	Entries []slowlogEntry `json:"entries"`
}

func (h *Handler) slowlog(c echo.Context) error {
	_, cluster := h.rdb.(*redis.ClusterClient)
	var mu sync.Mutex
	out := slowlogResponse{Entries: []slowlogEntry{}}
	err := forEachMaster(c.Request().Context(), h.rdb, func(ctx context.Context, cl *redis.Client) error {
		logs, err := cl.SlowLogGet(ctx, slowlogEntries).Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, l := range logs {
			e := slowlogEntry{ID: l.ID, Time: l.Time.UTC(), DurationUS: l.Duration.Microseconds(),
				Args: truncateArgs(l.Args), ClientAddr: l.ClientAddr, ClientName: l.ClientName}
			if cluster {
				e.Node = cl.Options().Addr
			}
			out.Entries = append(out.Entries, e)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("slowlog: %w", err)
	}
	slices.SortStableFunc(out.Entries, func(a, b slowlogEntry) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	if len(out.Entries) > slowlogEntries {
		out.Entries = out.Entries[:slowlogEntries]
	}
	return c.JSON(http.StatusOK, out)
}

func truncateArgs(args []string) []string {
	out := make([]string, 0, min(len(args), maxArgs))
	for i, a := range args {
		if i == maxArgs {
			out = append(out, fmt.Sprintf("... (%d more arguments)", len(args)-maxArgs))
			break
		}
		if len(a) > maxArgLen {
			a = a[:maxArgLen] + fmt.Sprintf("... (%d more bytes)", len(a)-maxArgLen)
		}
		out = append(out, a)
	}
	return out
}
