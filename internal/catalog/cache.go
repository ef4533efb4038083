package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"commerce/internal/platform/cachestats"
	"commerce/internal/platform/money"
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

	productStats, listStats, variantStats *cachestats.Counter
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
		variantStats: stats.Counter(cachestats.TierL2, "variant")}
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

// entry is a decoded product cache value: a product, or "not found" (missing).
type entry struct {
	p       Product
	missing bool
}

// --- encoding -------------------------------------------------------------------------

type cachedVariant struct {
	ID         uuid.UUID      `json:"id"`
	SKU        string         `json:"sku"`
	Name       string         `json:"name"`
	Amount     int64          `json:"amount"`
	Currency   string         `json:"currency"`
	Attributes map[string]any `json:"attributes"`
	Position   int            `json:"position"`
}

type cachedProduct struct {
	ID          uuid.UUID       `json:"id"`
	Slug        string          `json:"slug"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Category    string          `json:"category"`
	Status      string          `json:"status"`
	Attributes  map[string]any  `json:"attributes"`
	Version     int64           `json:"version"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	Variants    []cachedVariant `json:"variants"`
}

type cachedPage struct {
	Total int64           `json:"total"`
	Items []cachedProduct `json:"items"`
}

func toCached(p Product) cachedProduct {
	cp := cachedProduct{ID: p.ID, Slug: p.Slug, Name: p.Name, Description: p.Description, Category: p.Category,
		Status: string(p.Status), Attributes: p.Attributes, Version: p.Version, CreatedAt: p.CreatedAt,
		UpdatedAt: p.UpdatedAt, Variants: make([]cachedVariant, len(p.Variants))}
	for i, v := range p.Variants {
		cp.Variants[i] = cachedVariant{ID: v.ID, SKU: v.SKU, Name: v.Name, Amount: v.Price.Amount,
			Currency: v.Price.Currency, Attributes: v.Attributes, Position: v.Position}
	}
	return cp
}

func fromCached(cp cachedProduct) Product {
	p := Product{ID: cp.ID, Slug: cp.Slug, Name: cp.Name, Description: cp.Description, Category: cp.Category,
		Status: Status(cp.Status), Attributes: nonNil(cp.Attributes), Version: cp.Version,
		CreatedAt: cp.CreatedAt, UpdatedAt: cp.UpdatedAt, Variants: make([]Variant, len(cp.Variants))}
	for i, v := range cp.Variants {
		p.Variants[i] = Variant{ID: v.ID, ProductID: cp.ID, SKU: v.SKU, Name: v.Name,
			Price: money.New(v.Amount, v.Currency), Attributes: nonNil(v.Attributes), Position: v.Position}
	}
	return p
}

// encodeProduct returns the cache value of p: "<version>\n<json>".
func encodeProduct(p Product) ([]byte, error) {
	b := strconv.AppendInt(nil, p.Version, 10)
	b = append(b, '\n')
	j, err := json.Marshal(toCached(p))
	if err != nil {
		return nil, fmt.Errorf("encode product %s: %w", p.ID, err)
	}
	return append(b, j...), nil
}

// decodeProduct parses a cache value; ok is false when the value is unreadable (treated
// as a miss and overwritten by the next fill).
func decodeProduct(b []byte) (e entry, ok bool) {
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		return entry{}, false
	}
	ver, err := strconv.ParseInt(string(b[:nl]), 10, 64)
	if err != nil {
		return entry{}, false
	}
	payload := b[nl+1:]
	if ver == 0 && len(payload) == 0 {
		return entry{missing: true}, true
	}
	var cp cachedProduct
	if err := json.Unmarshal(payload, &cp); err != nil {
		return entry{}, false
	}
	return entry{p: fromCached(cp)}, true
}

// --- product reads --------------------------------------------------------------------

// lookup reads one product key through the guard. found is false on a miss; err is a
// Redis failure.
func (c *Cache) lookup(ctx context.Context, key string) (e entry, found bool, err error) {
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
	return e, found, err
}

// GetActive returns the product when it is active, from Redis when cached, otherwise
// loaded from the Source once per process however many callers miss at the same time,
// and cached (also when it is unknown, for a short TTL, or not active). Errors:
// ErrNotFound (unknown or not active), or the Source's dependency error; a Redis failure
// is not an error.
func (c *Cache) GetActive(ctx context.Context, id uuid.UUID) (Product, error) {
	key := c.productKey(id)
	e, found, rerr := c.lookup(ctx, key)
	if rerr == nil && found {
		c.productStats.Hit()
		return activeOnly(e, id)
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
		p, err := c.src.Get(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			if redisOK {
				_ = c.guard.Run(ctx, func(ctx context.Context) error { return c.fillMissing(ctx, key) })
			}
			return entry{missing: true}, nil
		case err != nil:
			return nil, err
		}
		if redisOK {
			_ = c.guard.Run(ctx, func(ctx context.Context) error { return c.fillProducts(ctx, []Product{p}) })
		}
		return entry{p: p}, nil
	})
	if err != nil {
		return Product{}, err
	}
	return activeOnly(v.(entry), id)
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
// if that fails, and bumps the catalog generation so every cached listing is left
// behind. It returns what failed; the write is committed either way.
func (c *Cache) Invalidate(ctx context.Context, p Product) error {
	var errs []error
	if err := c.fillProducts(ctx, []Product{p}); err != nil {
		errs = append(errs, err)
		if derr := c.rdb.Del(ctx, c.productKey(p.ID)).Err(); derr != nil {
			errs = append(errs, fmt.Errorf("delete product %s: %w", p.ID, derr))
		}
	}
	if err := c.bumpGeneration(ctx); err != nil {
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "catalog cache invalidation failed",
			slog.String("product_id", p.ID.String()), slog.Int64("version", p.Version),
			slog.String("error", err.Error()))
	}
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
	ps, err := c.src.ProductsOfVariants(ctx, missing)
	if err != nil {
		return nil, fmt.Errorf("variants: %w", err)
	}
	for _, p := range ps {
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
		for _, vi := range e.p.variantInfos() {
			if want[vi.ID] {
				out[vi.ID] = vi
			}
		}
	}
	return nil
}
