package cacheadmin

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/redischeck"
)

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
