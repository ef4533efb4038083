package discount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"commerce/internal/platform/cachestats"
	"commerce/internal/platform/money"
	"commerce/internal/platform/rkey"
	"commerce/scripts/lua"
)

// Loader reads the current ruleset from the source of truth (Store.Load).
type Loader interface {
	Load(ctx context.Context) (Ruleset, error)
}

// CacheOptions tune a Cache. Zero values take the defaults.
type CacheOptions struct {
	// TTL of each bundle and of the version pointer in Redis (default 4h). Every publish
	// and every warm refreshes it; make it longer than the warm interval (the wiring
	// uses max(DISCOUNT_TTL, 2 × the warm interval)).
	TTL time.Duration
	// LocalTTL is how long the in-process copy is used without asking Redis (default
	// 250 ms; negative: ask Redis on every read). It is the staleness bound of a replica
	// that did not make the write itself.
	LocalTTL time.Duration
	// RedisBackoff is how long reads skip Redis after a Redis error and go to PostgreSQL
	// (default 1 s), so a Redis outage costs one timeout per backoff, not one per read.
	RedisBackoff time.Duration
	Log          *slog.Logger
}

// Cache is the versioned ruleset cache (the L2 tier of docs/architecture.md), wrapping a Loader with the same
// Load method.
//
// Keys: <space>discount:ruleset:<v> holds the JSON bundle of version v, and
// <space>discount:ruleset:version (the pointer) holds the newest published v. A writer
// stores the bundle first and then moves the pointer forward only (discount_publish.lua),
// so every pointer value names a bundle that was complete before the pointer named it.
// A reader reads the pointer, then the bundle of exactly that version, and checks the
// bundle's own version: in Cluster the two keys may live on different nodes, which is
// fine because the reader never mixes versions. Bundles are immutable: the rules of
// version v are those PostgreSQL committed with v (Store.Load reads both in one
// snapshot), so two writers publishing v write identical bundles.
//
// Staleness: a process reuses its in-process copy for LocalTTL without touching Redis,
// then one GET of the pointer tells whether the copy is still current (a second GET
// fetches a new bundle only when the version moved). A write publishes before it
// returns, so every replica prices with it within LocalTTL plus a Redis round trip
// (≤ 1 s with the default 250 ms). A missing pointer or bundle (expiry, eviction, a
// Redis restart, DELETE /admin/cache) loads from PostgreSQL and publishes; Redis down
// loads from PostgreSQL (at most once per LocalTTL per process) and counts a miss.
type Cache struct {
	rdb      redis.UniversalClient
	space    rkey.Space
	ptrKey   string
	src      Loader
	stat     *cachestats.Counter
	ttl      time.Duration
	localTTL time.Duration
	backoff  time.Duration
	log      *slog.Logger
	publish  *redis.Script

	sf        singleflight.Group
	local     atomic.Pointer[localCopy]
	downUntil atomic.Int64 // unix nanoseconds; Redis is skipped until then

	// Counters for tests and debugging: bundle GETs issued and loads from src.
	bundleReads atomic.Int64
	srcLoads    atomic.Int64
}

type localCopy struct {
	rs      Ruleset
	checked time.Time // when Redis (or the source) last confirmed rs was current
}

// NewCache returns a Cache over src storing its keys under space. Hits and misses are
// counted on stats as tier L2, cache "discounts".
func NewCache(rdb redis.UniversalClient, space rkey.Space, src Loader, stats *cachestats.Registry, o CacheOptions) *Cache {
	if o.TTL <= 0 {
		o.TTL = 4 * time.Hour
	}
	if o.LocalTTL == 0 {
		o.LocalTTL = 250 * time.Millisecond
	}
	if o.RedisBackoff <= 0 {
		o.RedisBackoff = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Cache{
		rdb: rdb, space: space, ptrKey: space.Key("discount:ruleset:version"), src: src,
		stat: stats.Counter(cachestats.TierL2, "discounts"), ttl: o.TTL, localTTL: o.LocalTTL,
		backoff: o.RedisBackoff, log: o.Log, publish: redis.NewScript(lua.Source("discount_publish")),
	}
}

// errMissing means Redis answered but holds no usable pointer or bundle.
var errMissing = errors.New("discount: ruleset not cached")

func (c *Cache) bundleKey(v int64) string {
	return c.space.Key("discount:ruleset:", strconv.FormatInt(v, 10))
}

// Load returns the current ruleset (see the type's doc for how current). The returned
// Ruleset is shared: callers must not modify it. Errors: only when the ruleset is neither
// in Redis nor readable from the source (then the source's error, wrapped).
func (c *Cache) Load(ctx context.Context) (Ruleset, error) {
	if lc := c.local.Load(); lc != nil && c.localTTL > 0 && time.Since(lc.checked) < c.localTTL {
		c.stat.Hit()
		return lc.rs, nil
	}
	type result struct {
		rs     Ruleset
		source bool
	}
	v, err, _ := c.sf.Do("current", func() (any, error) {
		// One refresh serves every waiting caller; it must not fail because the first
		// caller went away.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		rs, fromSource, err := c.refresh(rctx)
		return result{rs, fromSource}, err
	})
	if err != nil {
		c.stat.Miss()
		return Ruleset{}, err
	}
	r := v.(result)
	if r.source {
		c.stat.Miss()
	} else {
		c.stat.Hit()
	}
	return r.rs, nil
}

// refresh confirms or replaces the local copy from Redis, falling back to the source.
func (c *Cache) refresh(ctx context.Context) (Ruleset, bool, error) {
	redisUp := time.Now().UnixNano() >= c.downUntil.Load()
	if redisUp {
		rs, err := c.readRedis(ctx)
		if err == nil {
			c.keep(rs)
			return rs, false, nil
		}
		if !errors.Is(err, errMissing) {
			c.markDown(err)
			redisUp = false
		}
	}
	rs, err := c.loadSource(ctx)
	if err != nil {
		return Ruleset{}, true, err
	}
	if redisUp {
		if err := c.Publish(ctx, rs); err != nil {
			c.markDown(err)
		}
	}
	c.keep(rs)
	return rs, true, nil
}

// readRedis reads the pointer, then (unless the local copy already has that version) the
// bundle of exactly that version. errMissing: no pointer, no bundle or a bad bundle.
func (c *Cache) readRedis(ctx context.Context) (Ruleset, error) {
	ptr, err := c.rdb.Get(ctx, c.ptrKey).Int64()
	if errors.Is(err, redis.Nil) {
		return Ruleset{}, errMissing
	}
	if err != nil {
		var numErr *strconv.NumError
		if errors.As(err, &numErr) {
			return Ruleset{}, errMissing
		}
		return Ruleset{}, fmt.Errorf("read ruleset pointer: %w", err)
	}
	if lc := c.local.Load(); lc != nil && lc.rs.Version == ptr {
		return lc.rs, nil
	}
	return c.readBundle(ctx, ptr)
}

// readBundle returns the bundle of version v. errMissing when absent or not version v.
func (c *Cache) readBundle(ctx context.Context, v int64) (Ruleset, error) {
	c.bundleReads.Add(1)
	b, err := c.rdb.Get(ctx, c.bundleKey(v)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Ruleset{}, errMissing
	}
	if err != nil {
		return Ruleset{}, fmt.Errorf("read ruleset bundle %d: %w", v, err)
	}
	rs, err := decodeBundle(b)
	if err != nil || rs.Version != v {
		c.log.Warn("discount ruleset bundle unusable; reloading", slog.Int64("version", v))
		return Ruleset{}, errMissing
	}
	return rs, nil
}

func (c *Cache) loadSource(ctx context.Context) (Ruleset, error) {
	c.srcLoads.Add(1)
	rs, err := c.src.Load(ctx)
	if err != nil {
		return Ruleset{}, fmt.Errorf("load discount ruleset: %w", err)
	}
	return rs, nil
}

// keep makes rs the local copy unless the local copy is newer (a slower refresh never
// takes a process back to an older version).
func (c *Cache) keep(rs Ruleset) {
	now := time.Now()
	for {
		old := c.local.Load()
		if old != nil && old.rs.Version > rs.Version {
			return
		}
		if c.local.CompareAndSwap(old, &localCopy{rs: rs, checked: now}) {
			return
		}
	}
}

func (c *Cache) markDown(err error) {
	now := time.Now()
	if prev := c.downUntil.Swap(now.Add(c.backoff).UnixNano()); prev < now.UnixNano() {
		c.log.Warn("redis unavailable for the discount ruleset; reading PostgreSQL",
			slog.String("error", err.Error()))
	}
}

// Publish stores rs's bundle and then moves the pointer to rs.Version unless the pointer
// already names a newer version. Both keys get the cache TTL. Errors: Redis errors.
func (c *Cache) Publish(ctx context.Context, rs Ruleset) error {
	b, err := encodeBundle(rs)
	if err != nil {
		return err
	}
	if err := c.rdb.Set(ctx, c.bundleKey(rs.Version), b, c.ttl).Err(); err != nil {
		return fmt.Errorf("store ruleset bundle %d: %w", rs.Version, err)
	}
	// The reply ('OK', 'SAME' or 'NEWER') needs no action: the pointer only moves forward.
	if err := c.publish.Run(ctx, c.rdb, []string{c.ptrKey}, rs.Version, c.ttl.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("move ruleset pointer to %d: %w", rs.Version, err)
	}
	return nil
}

// Warm loads the ruleset from the source, publishes it and makes it the local copy. It
// returns the version now cached. Errors: the source's or Redis's.
func (c *Cache) Warm(ctx context.Context) (int64, error) {
	rs, err := c.loadSource(ctx)
	if err != nil {
		return 0, err
	}
	if err := c.Publish(ctx, rs); err != nil {
		c.keep(rs)
		return 0, err
	}
	c.downUntil.Store(0)
	c.keep(rs)
	return rs.Version, nil
}

// forget drops the pointer so that every replica reloads from the source on its next
// check. Used when a write could not be published.
func (c *Cache) forget(ctx context.Context) error {
	return c.rdb.Del(ctx, c.ptrKey).Err()
}

// The bundle's JSON shape. It is private to the cache: domain types carry no JSON tags.
type bundleJSON struct {
	Version int64      `json:"version"`
	Rules   []ruleJSON `json:"rules"`
}

type ruleJSON struct {
	ID          uuid.UUID  `json:"id"`
	Name        string     `json:"name"`
	Code        string     `json:"code,omitempty"`
	Kind        string     `json:"kind"`
	Value       int64      `json:"value"`
	Currency    string     `json:"currency,omitempty"`
	ScopeType   string     `json:"scope_type"`
	ScopeIDs    []string   `json:"scope_ids,omitempty"`
	MinAmount   *int64     `json:"min_amount,omitempty"`
	MinCurrency string     `json:"min_currency,omitempty"`
	StartsAt    *time.Time `json:"starts_at,omitempty"`
	EndsAt      *time.Time `json:"ends_at,omitempty"`
	Priority    int        `json:"priority"`
	Stackable   bool       `json:"stackable"`
	Active      bool       `json:"active"`
}

func encodeBundle(rs Ruleset) ([]byte, error) {
	b := bundleJSON{Version: rs.Version, Rules: make([]ruleJSON, len(rs.Rules))}
	for i, r := range rs.Rules {
		j := ruleJSON{ID: r.ID, Name: r.Name, Code: r.Code, Kind: string(r.Kind), Value: r.Value,
			Currency: r.Currency, ScopeType: string(r.Scope.Type), ScopeIDs: r.Scope.IDs,
			StartsAt: r.StartsAt, EndsAt: r.EndsAt, Priority: r.Priority, Stackable: r.Stackable, Active: r.Active}
		if r.MinSubtotal != nil {
			amount := r.MinSubtotal.Amount
			j.MinAmount, j.MinCurrency = &amount, r.MinSubtotal.Currency
		}
		b.Rules[i] = j
	}
	return json.Marshal(b)
}

func decodeBundle(data []byte) (Ruleset, error) {
	var b bundleJSON
	if err := json.Unmarshal(data, &b); err != nil {
		return Ruleset{}, err
	}
	rs := Ruleset{Version: b.Version, Rules: make([]Rule, len(b.Rules))}
	for i, j := range b.Rules {
		r := Rule{ID: j.ID, Name: j.Name, Code: j.Code, Kind: Kind(j.Kind), Value: j.Value,
			Currency: j.Currency, Scope: Scope{Type: ScopeType(j.ScopeType), IDs: j.ScopeIDs},
			StartsAt: j.StartsAt, EndsAt: j.EndsAt, Priority: j.Priority, Stackable: j.Stackable, Active: j.Active}
		if r.Scope.IDs == nil {
			r.Scope.IDs = []string{}
		}
		if j.MinAmount != nil {
			r.MinSubtotal = &money.Money{Amount: *j.MinAmount, Currency: j.MinCurrency}
		}
		rs.Rules[i] = r
	}
	return rs, nil
}
