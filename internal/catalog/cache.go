package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"commerce/internal/platform/cachestats"
	"commerce/internal/platform/rkey"
	"commerce/scripts/lua"
)

// Source is what the cache reads from the source of truth; *Store implements it.
type Source interface {
	Get(ctx context.Context, id uuid.UUID) (Product, error)
	Products(ctx context.Context, ids []uuid.UUID) ([]Product, error)
	ProductsOfVariants(ctx context.Context, variantIDs []uuid.UUID) ([]Product, error)
	ListActive(ctx context.Context, q ListQuery) (Page, error)
	AllActiveIDs(ctx context.Context) ([]uuid.UUID, error)
}

var _ Source = (*Store)(nil)

// Guard runs one Redis read of the cache. The default calls it directly; the resilience
// layer passes a circuit breaker (*resilience.Breaker has this method), which fails fast
// while Redis is down so reads go straight to PostgreSQL.
type Guard interface {
	Run(ctx context.Context, fn func(ctx context.Context) error) error
}

type directGuard struct{}

func (directGuard) Run(ctx context.Context, fn func(context.Context) error) error { return fn(ctx) }

// CacheOption configures a Cache.
type CacheOption func(*Cache)

// WithGuard routes the cache's Redis reads (and read-path fills) through g.
func WithGuard(g Guard) CacheOption { return func(c *Cache) { c.guard = g } }

// WithListTTL sets the TTL of listing pages [min(product TTL, 15m)]. Old generations'
// pages are never read again and just expire, so a short TTL bounds their memory.
func WithListTTL(d time.Duration) CacheOption { return func(c *Cache) { c.listTTL = d } }

// WithNegativeTTL sets how long "no such product" is cached [30s].
func WithNegativeTTL(d time.Duration) CacheOption { return func(c *Cache) { c.negTTL = d } }

// WithNearCache puts an in-process near-cache of at most maxEntries products and maxBytes
// of encoded bodies in front of the L2, each entry served for at most ttl after it was
// read [off]. Other replicas' writes reach it over Redis pub/sub once Start runs; a lost
// message costs at most ttl of staleness.
func WithNearCache(ttl time.Duration, maxEntries, maxBytes int) CacheOption {
	return func(c *Cache) { c.near = newNearCache(ttl, maxEntries, maxBytes) }
}

// WithLogger sets where failed invalidations are reported [discarded].
func WithLogger(l *slog.Logger) CacheOption { return func(c *Cache) { c.log = l } }

// Cache is the L2 cache of the catalog in Redis, in front of a Source (the L2 tier of
// docs/architecture.md). Reads are cache-aside with TTL ±10 % jitter; concurrent misses of one
// key load once per process (singleflight); every fill is versioned (cache_fill.lua) so
// an older load never overwrites a newer value; listings are keyed by a generation
// counter that every write bumps. A Redis failure on a read is a miss: the read is
// served from the Source. Values returned are shared between callers: do not modify them.
//
// Keys: <space>product:{<id>}:details ("<version>\n<json>", version 0 and no JSON for
// "not found"), <space>variant:{<id>}:product (the variant's product id),
// <space>catalog:gen, <space>catalog:list:<gen>:<sha256 of the query>.
type Cache struct {
	src     Source
	rdb     redis.UniversalClient
	space   rkey.Space
	ttl     time.Duration
	listTTL time.Duration
	negTTL  time.Duration
	fill    *redis.Script
	guard   Guard
	log     *slog.Logger
	sf      singleflight.Group
	near    *nearCache // nil: no near-cache

	subMu   sync.Mutex
	subStop context.CancelFunc
	subDone chan struct{}

	productStats, listStats, variantStats, nearStats *cachestats.Counter
}

// loadTimeout bounds a shared load, which outlives the caller that started it.
const loadTimeout = 10 * time.Second

// warmBatch is how many products Warm loads and writes per pipeline.
const warmBatch = 500

// NewCache returns the L2 cache of src in rdb under space. ttl is the product TTL
// (PRODUCT_TTL, e.g. 6h; each write gets ±10 % jitter). Hits and misses are recorded in
// stats (tier L2, caches "product", "listing" and "variant"); a nil stats counts nowhere.
func NewCache(src Source, rdb redis.UniversalClient, space rkey.Space, ttl time.Duration,
	stats *cachestats.Registry, opts ...CacheOption) *Cache {
	if stats == nil {
		stats = cachestats.New(nil)
	}
	if ttl <= 0 {
		ttl = 6 * time.Hour
	}
	c := &Cache{src: src, rdb: rdb, space: space, ttl: ttl, listTTL: min(ttl, 15*time.Minute),
		negTTL: 30 * time.Second, fill: redis.NewScript(lua.Source("cache_fill")), guard: directGuard{},
		log:          slog.New(slog.DiscardHandler),
		productStats: stats.Counter(cachestats.TierL2, "product"),
		listStats:    stats.Counter(cachestats.TierL2, "listing"),
		variantStats: stats.Counter(cachestats.TierL2, "variant"),
		nearStats:    stats.Counter(cachestats.TierL0, "product")}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Load loads the fill script into Redis so a broken Redis shows at start.
func (c *Cache) Load(ctx context.Context) error {
	if err := c.fill.Load(ctx, c.rdb).Err(); err != nil {
		return fmt.Errorf("load cache_fill script: %w", err)
	}
	return nil
}

func (c *Cache) productKey(id uuid.UUID) string {
	return c.space.Key("product:{", id.String(), "}:details")
}

func (c *Cache) variantKey(id uuid.UUID) string {
	return c.space.Key("variant:{", id.String(), "}:product")
}

func (c *Cache) genKey() string { return c.space.Key("catalog:gen") }

func (c *Cache) listKey(gen string, q ListQuery) string {
	return c.space.Key("catalog:list:", gen, ":", q.hash())
}

// jitter returns d ± 10 %.
func jitter(d time.Duration) time.Duration {
	spread := d / 5
	if spread <= 0 {
		return d
	}
	return d - d/10 + rand.N(spread+1)
}

// entry is a decoded product cache value: a product, or "not found" (missing), and when
// it was read (the start of the Redis or PostgreSQL read that returned it).
type entry struct {
	p       Product
	missing bool
	at      time.Time
}

// --- product reads --------------------------------------------------------------------

// lookup reads one product key through the guard. found is false on a miss; err is a
// Redis failure.
func (c *Cache) lookup(ctx context.Context, key string) (e entry, found bool, err error) {
	at := time.Now()
	err = c.guard.Run(ctx, func(ctx context.Context) error {
		b, err := c.rdb.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		if err != nil {
			return err
		}
		e, found = decodeProduct(b)
		return nil
	})
	e.at = at
	return e, found, err
}

// GetActive returns the product when it is active, from the near-cache or Redis when
// cached, otherwise loaded from the Source once per process however many callers miss at
// the same time, and cached (also when it is unknown, for a short TTL, or not active).
// Errors: ErrNotFound (unknown or not active), or the Source's dependency error; a Redis
// failure is not an error.
func (c *Cache) GetActive(ctx context.Context, id uuid.UUID) (Product, error) {
	e, err := c.product(ctx, id)
	if err != nil {
		return Product{}, err
	}
	return activeOnly(e, id)
}

// Encoded is a product's public representation as GET /v1/products/{id} serves it: the
// JSON body (shared: do not modify) and its strong ETag.
type Encoded struct {
	Body []byte
	ETag string
}

// GetActiveEncoded returns the encoded public representation of an active product: from
// the near-cache, bytes as they are, when it holds the product (no Redis call), else
// through GetActive's path, and the near-cache is filled. Errors as GetActive.
func (c *Cache) GetActiveEncoded(ctx context.Context, id uuid.UUID) (Encoded, error) {
	if ne, ok := c.near.get(id, time.Now()); ok {
		c.nearStats.Hit()
		if ne.body == nil {
			return Encoded{}, fmt.Errorf("product %s: %w", id, ErrNotFound)
		}
		return Encoded{Body: ne.body, ETag: ne.etag}, nil
	}
	e, err := c.l2Product(ctx, id)
	if err != nil {
		return Encoded{}, err
	}
	if e.missing {
		c.near.putMissing(id, e.at)
		return Encoded{}, fmt.Errorf("product %s: %w", id, ErrNotFound)
	}
	ne, err := newNearEntry(e.p, e.at, c.near.ttlOr0())
	if err != nil {
		return Encoded{}, err
	}
	c.near.storeEntry(e.p, ne, e.at)
	if ne.body == nil {
		return Encoded{}, fmt.Errorf("product %s: %w", id, ErrNotFound)
	}
	return Encoded{Body: ne.body, ETag: ne.etag}, nil
}

// product returns id's entry from the near-cache, else from the L2 path (and fills the
// near-cache).
func (c *Cache) product(ctx context.Context, id uuid.UUID) (entry, error) {
	now := time.Now()
	if ne, ok := c.near.get(id, now); ok {
		c.nearStats.Hit()
		if ne.missing {
			return entry{missing: true, at: now}, nil
		}
		return entry{p: ne.product, at: now}, nil
	}
	e, err := c.l2Product(ctx, id)
	if err != nil {
		return entry{}, err
	}
	if e.missing {
		c.near.putMissing(id, e.at)
	} else {
		c.near.put(e.p, e.at)
	}
	return e, nil
}

// l2Product reads id's entry from Redis, or loads it from the Source once per process
// however many callers miss at the same time, and caches it in Redis.
func (c *Cache) l2Product(ctx context.Context, id uuid.UUID) (entry, error) {
	if c.near.enabled() {
		c.nearStats.Miss()
	}
	key := c.productKey(id)
	e, found, rerr := c.lookup(ctx, key)
	if rerr == nil && found {
		c.productStats.Hit()
		return e, nil
	}
	c.productStats.Miss()
	redisOK := rerr == nil
	v, err := c.flight(ctx, key, func(ctx context.Context) (any, error) {
		if redisOK {
			// A flight that started after another one filled the key finds it here.
			if e, found, err := c.lookup(ctx, key); err == nil && found {
				return e, nil
			}
		}
		at := time.Now()
		p, err := c.src.Get(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			if redisOK {
				_ = c.guard.Run(ctx, func(ctx context.Context) error { return c.fillMissing(ctx, key) })
			}
			return entry{missing: true, at: at}, nil
		case err != nil:
			return nil, err
		}
		if redisOK {
			_ = c.guard.Run(ctx, func(ctx context.Context) error { return c.fillProducts(ctx, []Product{p}) })
		}
		return entry{p: p, at: at}, nil
	})
	if err != nil {
		return entry{}, err
	}
	return v.(entry), nil
}

func activeOnly(e entry, id uuid.UUID) (Product, error) {
	if e.missing || e.p.Status != StatusActive {
		return Product{}, fmt.Errorf("product %s: %w", id, ErrNotFound)
	}
	return e.p, nil
}

// flight runs fn once per key among concurrent callers. The shared run is detached from
// the caller that started it (it ends at loadTimeout), so one caller giving up does not
// fail the others; each caller still returns when its own context ends.
func (c *Cache) flight(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	ch := c.sf.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		return fn(fctx)
	})
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
