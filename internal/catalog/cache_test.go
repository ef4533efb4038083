package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/cachestats"
	"commerce/internal/platform/money"
	"commerce/internal/platform/testenv"
)

// After one cold read, GET /v1/products/{id} is served from Redis: no statement reaches
// PostgreSQL (counted by a pgx tracer) and the hit counter grows, the miss counter not.
func TestCacheWarmGetDoesNotTouchPostgres(t *testing.T) {
	e := newEnv(t)
	p := mustCreate(t, e.svc, sampleProduct(3))
	pool, queries := tracedPool(t, e.dsn)
	in := newInstance(t, pool, e.rdb, e.space) // a replica whose every query is counted

	if rec := in.do(t, "GET", "/v1/products/"+p.ID.String(), ""); rec.Code != 200 {
		t.Fatalf("first get: %d %s", rec.Code, rec.Body)
	}
	before, misses := queries.n.Load(), in.stat("product").Misses
	for i := 0; i < 50; i++ {
		rec := in.do(t, "GET", "/v1/products/"+p.ID.String(), "")
		if rec.Code != 200 {
			t.Fatalf("get %d: %d", i, rec.Code)
		}
	}
	if n := queries.n.Load() - before; n != 0 {
		t.Fatalf("%d PostgreSQL statements for 50 warm reads", n)
	}
	st := in.stat("product")
	if st.Misses != misses || st.Hits < 50 {
		t.Fatalf("stats = %+v (misses before %d)", st, misses)
	}
}

// gatedSource holds every load until n callers have missed the cache, so all of them are
// in flight at once however fast the first load would have been.
type gatedSource struct {
	*countingSource
	misses func() int64
	n      int64
}

func (s *gatedSource) Get(ctx context.Context, id uuid.UUID) (Product, error) {
	deadline := time.Now().Add(20 * time.Second)
	for s.misses() < s.n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return s.countingSource.Get(ctx, id)
}

// 1000 concurrent cold reads of one product make exactly one store load.
func TestCacheColdStampedeLoadsOnce(t *testing.T) {
	e := newEnv(t)
	p, err := e.store.Create(context.Background(), sampleProduct(2)) // store only: the cache stays cold
	if err != nil {
		t.Fatal(err)
	}
	const readers = 1000
	cs := &countingSource{Store: e.store}
	stats := cachestats.New(nil)
	gs := &gatedSource{countingSource: cs, n: readers,
		misses: func() int64 { return statOf(stats, "product").Misses }}
	c := NewCache(gs, e.rdb, e.space, time.Hour, stats)
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got, err := c.GetActive(context.Background(), p.ID)
			if err == nil && got.Version != p.Version {
				err = errors.New("wrong version")
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if m := statOf(stats, "product").Misses; m != readers {
		t.Fatalf("%d of %d readers missed: the stampede did not happen", m, readers)
	}
	if n := cs.gets.Load(); n != 1 {
		t.Fatalf("%d store loads for %d concurrent cold reads, want 1", n, readers)
	}
	if _, err := c.GetActive(context.Background(), p.ID); err != nil || cs.gets.Load() != 1 {
		t.Fatalf("the load was not cached: %v", err)
	}
}

// blockingSource lets a test hold a cache load between its PostgreSQL read and its fill.
type blockingSource struct {
	*countingSource
	loaded, proceed chan struct{}
}

func (s *blockingSource) Get(ctx context.Context, id uuid.UUID) (Product, error) {
	p, err := s.countingSource.Get(ctx, id)
	s.loaded <- struct{}{}
	<-s.proceed
	return p, err
}

// The delete-after-commit race: a reader loads v1, a write commits v2 and publishes it,
// then the reader's fill arrives. The versioned fill keeps v2.
func TestCacheOldFillDoesNotOverwriteNewerWrite(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p, err := e.store.Create(ctx, sampleProduct(1))
	if err != nil {
		t.Fatal(err)
	}
	bs := &blockingSource{countingSource: &countingSource{Store: e.store},
		loaded: make(chan struct{}), proceed: make(chan struct{})}
	slow := NewCache(bs, e.rdb, e.space, time.Hour, nil)

	done := make(chan Product)
	go func() {
		got, err := slow.GetActive(ctx, p.ID)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	<-bs.loaded // the reader holds v1, not yet filled
	u, err := e.svc.Update(ctx, p.ID, ProductPatch{Name: ptr("Newer")})
	if err != nil {
		t.Fatal(err)
	}
	close(bs.proceed) // now the stale fill runs
	if old := <-done; old.Version != 1 {
		t.Fatalf("the slow reader saw v%d", old.Version)
	}
	got, err := e.cache.GetActive(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != u.Version || got.Name != "Newer" {
		t.Fatalf("cache holds v%d %q after the stale fill, want v%d", got.Version, got.Name, u.Version)
	}
	if e.src.gets.Load() != 0 {
		t.Fatal("the read after the write went to the store: the write did not fill the cache")
	}
}

// The Lua script on its own: newer wins, equal rewrites, a "not found" never replaces a product.
func TestCacheFillScript(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	key := e.space.Key("product:{x}:details")
	fill := func(v int64, payload string) string {
		t.Helper()
		r, err := e.cache.fill.Run(ctx, e.rdb, []string{key}, v, strconv.FormatInt(v, 10)+"\n"+payload, 60000).Slice()
		if err != nil {
			t.Fatal(err)
		}
		s, _ := r[0].(string)
		return s
	}
	if fill(5, "five") != "OK" || fill(3, "three") != "KEPT" || fill(0, "") != "KEPT" || fill(5, "five again") != "OK" || fill(6, "six") != "OK" {
		t.Fatal("unexpected fill results")
	}
	if v := e.rdb.Get(ctx, key).Val(); v != "6\nsix" {
		t.Fatalf("value = %q", v)
	}
	if ttl := e.rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("ttl = %v", ttl)
	}
	for _, args := range [][]any{{"x", "x\n", 1000}, {9, "9\n", 0}, {9, "8\n", 1000}} {
		if err := e.cache.fill.Run(ctx, e.rdb, []string{key}, args...).Err(); err == nil ||
			!strings.Contains(err.Error(), "ERR cache_fill: bad ") {
			t.Fatalf("fill %v: err = %v, want an error reply", args, err)
		}
	}
	if v := e.rdb.Get(ctx, key).Val(); v != "6\nsix" {
		t.Fatalf("invalid calls wrote: %q", v)
	}
}

// A PATCH on one replica is visible through GET /v1/products/{id} on another replica
// (its own store, cache, singleflight and router; same Redis and PostgreSQL) within 1 s.
func TestPatchVisibleOnSecondInstanceWithin1s(t *testing.T) {
	e := newEnv(t)
	p := mustCreate(t, e.svc, sampleProduct(2))
	pool2, _ := tracedPool(t, e.dsn)
	b := newInstance(t, pool2, e.rdb, e.space)
	path := "/v1/products/" + p.ID.String()
	if rec := b.do(t, "GET", path, ""); rec.Code != 200 { // B has it cached now
		t.Fatalf("warm B: %d", rec.Code)
	}
	if rec := b.do(t, "GET", path, ""); rec.Code != 200 || b.stat("product").Hits == 0 {
		t.Fatalf("B is not serving from the cache: %d %+v", rec.Code, b.stat("product"))
	}

	checks := []struct {
		name, method, path, body string
		ok                       func(rec int, pj productJSON) bool
	}{
		{"rename", "PATCH", "/admin/products/" + p.ID.String(), `{"name":"Renamed on A"}`,
			func(code int, pj productJSON) bool { return code == 200 && pj.Name == "Renamed on A" }},
		{"price", "PATCH", "/admin/variants/" + p.Variants[1].ID.String(), `{"price":{"amount":777,"currency":"USD"}}`,
			func(code int, pj productJSON) bool { return code == 200 && pj.Variants[1].Price.Amount == 777 }},
		{"archive", "DELETE", "/admin/products/" + p.ID.String(), "",
			func(code int, _ productJSON) bool { return code == 404 }},
	}
	for _, c := range checks {
		rec := e.do(t, c.method, c.path, c.body)
		if rec.Code != 200 && rec.Code != 204 {
			t.Fatalf("%s on A: %d %s", c.name, rec.Code, rec.Body)
		}
		deadline := time.Now().Add(time.Second)
		for {
			rec := b.do(t, "GET", path, "")
			var pj productJSON
			if err := json.Unmarshal(rec.Body.Bytes(), &pj); err != nil {
				t.Fatalf("GET %s on B: %d: %v: %s", path, rec.Code, err, rec.Body)
			}
			if c.ok(rec.Code, pj) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not visible on B after 1 s: %d %s", c.name, rec.Code, rec.Body)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// The variant price is current for carts on B too.
	vs, err := b.svc.Variants(context.Background(), []uuid.UUID{p.Variants[1].ID})
	if err != nil || vs[p.Variants[1].ID].Price.Amount != 777 || vs[p.Variants[1].ID].Active {
		t.Fatalf("variants on B = %+v, %v", vs, err)
	}
}

// A write bumps the catalog generation: cached listings are left behind in O(1).
func TestCacheListingInvalidatedByGeneration(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first := mustCreate(t, e.svc, sampleProduct(1))
	q := ListQuery{Category: "shoes", Page: 1, PerPage: 10}
	if pg, err := e.cache.ListActive(ctx, q); err != nil || pg.Total != 1 {
		t.Fatalf("list = %+v, %v", pg, err)
	}
	if pg, err := e.cache.ListActive(ctx, q); err != nil || pg.Total != 1 || e.src.lists.Load() != 1 {
		t.Fatalf("second list: total %d, %d store lists, %v", pg.Total, e.src.lists.Load(), err)
	}
	gen := e.rdb.Get(ctx, e.space.Key("catalog:gen")).Val()

	second := mustCreate(t, e.svc, sampleProduct(1))
	pg, err := e.cache.ListActive(ctx, q)
	if err != nil || pg.Total != 2 || pg.Items[1].ID != second.ID {
		t.Fatalf("after create: %+v, %v", pg, err)
	}
	if gen2 := e.rdb.Get(ctx, e.space.Key("catalog:gen")).Val(); gen2 == gen {
		t.Fatal("the generation did not move")
	}
	if _, err := e.svc.Update(ctx, first.ID, ProductPatch{Name: ptr("Changed")}); err != nil {
		t.Fatal(err)
	}
	pg, _ = e.cache.ListActive(ctx, q)
	if pg.Items[0].Name != "Changed" {
		t.Fatalf("listing after rename shows %q", pg.Items[0].Name)
	}
	if st := e.stat("listing"); st.Hits != 1 || st.Misses != 3 {
		t.Fatalf("listing stats = %+v", st)
	}
	// Losing the generation counter never brings back an old generation's pages.
	if err := testenv.DeleteSpace(ctx, e.rdb, e.space); err != nil {
		t.Fatal(err)
	}
	if g, err := e.cache.generation(ctx); err != nil || g == gen || g == "" {
		t.Fatalf("restarted generation = %q, %v", g, err)
	}
}

// Unknown and inactive products are cached as 404s; making one active shows it at once.
func TestCacheNegativeAndInactive(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	unknown := uuid.Must(uuid.NewV7())
	for i := 0; i < 3; i++ {
		if _, err := e.cache.GetActive(ctx, unknown); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown: %v", err)
		}
	}
	if ttl := e.rdb.PTTL(ctx, e.cache.productKey(unknown)).Val(); ttl <= 0 || ttl > 30*time.Second {
		t.Fatalf("negative entry ttl = %v", ttl)
	}
	d := sampleProduct(1)
	d.Status = StatusDraft
	draft, err := e.store.Create(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := e.cache.GetActive(ctx, draft.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("draft: %v", err)
		}
	}
	if n := e.src.gets.Load(); n != 2 {
		t.Fatalf("%d store loads for 6 reads of 2 absent products, want 2", n)
	}
	if _, err := e.svc.Update(ctx, draft.ID, ProductPatch{Status: ptr(StatusActive)}); err != nil {
		t.Fatal(err)
	}
	if got, err := e.cache.GetActive(ctx, draft.ID); err != nil || got.Status != StatusActive {
		t.Fatalf("activated: %+v, %v", got, err)
	}
	if n := e.src.gets.Load(); n != 2 {
		t.Fatal("the activation was not written to the cache")
	}
}

func TestCacheVariantsCurrentPrices(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p, err := e.store.Create(ctx, sampleProduct(3)) // cold
	if err != nil {
		t.Fatal(err)
	}
	other := mustCreate(t, e.svc, sampleProduct(1)) // cached by the write
	unknown := uuid.Must(uuid.NewV7())
	ids := []uuid.UUID{p.Variants[0].ID, p.Variants[2].ID, other.Variants[0].ID, unknown, p.Variants[0].ID}
	vs, err := e.cache.Variants(ctx, ids)
	if err != nil || len(vs) != 3 {
		t.Fatalf("variants = %d, %v", len(vs), err)
	}
	if _, ok := vs[unknown]; ok {
		t.Fatal("unknown id present")
	}
	if v := vs[p.Variants[2].ID]; v.ProductID != p.ID || v.Price != p.Variants[2].Price || v.SKU != p.Variants[2].SKU || !v.Active {
		t.Fatalf("variant info = %+v", v)
	}
	loads := e.src.ofVariants.Load()
	if loads != 1 {
		t.Fatalf("%d store loads for one cold batch", loads)
	}
	// Warm now (only the unknown id goes to the store).
	if _, err := e.cache.Variants(ctx, ids[:3]); err != nil || e.src.ofVariants.Load() != loads {
		t.Fatalf("warm variants went to the store: %v", err)
	}
	price := money.New(1, "USD")
	if _, err := e.svc.UpdateVariant(ctx, p.Variants[2].ID, VariantPatch{Price: &price}); err != nil {
		t.Fatal(err)
	}
	vs, _ = e.cache.Variants(ctx, ids[:3])
	if vs[p.Variants[2].ID].Price != price || e.src.ofVariants.Load() != loads {
		t.Fatalf("price after patch = %+v", vs[p.Variants[2].ID].Price)
	}
}

func TestCacheWarmFillsEveryActiveProduct(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var active []Product
	for i := 0; i < 7; i++ {
		p, err := e.store.Create(ctx, sampleProduct(2))
		if err != nil {
			t.Fatal(err)
		}
		active = append(active, p)
	}
	d := sampleProduct(1)
	d.Status = StatusDraft
	if _, err := e.store.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	n, err := e.svc.Warm(ctx)
	if err != nil || n != 7 {
		t.Fatalf("warm = %d, %v", n, err)
	}
	for _, p := range active {
		if _, err := e.cache.GetActive(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := e.cache.Variants(ctx, []uuid.UUID{active[3].Variants[1].ID})
	if err != nil || len(vs) != 1 {
		t.Fatal("warm did not map variants", err)
	}
	if e.src.gets.Load() != 0 || e.src.ofVariants.Load() != 0 {
		t.Fatal("reads after a warm went to the store")
	}
	// A warm never replaces a newer version (fills are versioned): simulate a stale
	// warmer by filling an old copy after a write.
	u, _ := e.svc.Update(ctx, active[0].ID, ProductPatch{Name: ptr("v2")})
	if err := e.cache.fillProducts(ctx, []Product{active[0]}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.cache.GetActive(ctx, active[0].ID); got.Version != u.Version {
		t.Fatalf("stale warm replaced v%d with v%d", u.Version, got.Version)
	}
}

// With Redis gone, catalog reads are served from PostgreSQL and writes still commit.
func TestCacheReadsSurviveRedisOutage(t *testing.T) {
	pool, _ := testenv.DB(t)
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	in := newInstance(t, pool, rdb, "")
	ctx := context.Background()
	p := mustCreate(t, in.svc, sampleProduct(2))
	if _, err := in.cache.GetActive(ctx, p.ID); err != nil {
		t.Fatal(err)
	}

	srv.Kill()
	if rec := in.do(t, "GET", "/v1/products/"+p.ID.String(), ""); rec.Code != 200 {
		t.Fatalf("get with Redis down: %d %s", rec.Code, rec.Body)
	}
	if rec := in.do(t, "GET", "/v1/products?category=shoes", ""); rec.Code != 200 {
		t.Fatalf("list with Redis down: %d %s", rec.Code, rec.Body)
	}
	vs, err := in.svc.Variants(ctx, []uuid.UUID{p.Variants[0].ID})
	if err != nil || len(vs) != 1 {
		t.Fatalf("variants with Redis down: %v", err)
	}
	if rec := in.do(t, "PATCH", "/admin/products/"+p.ID.String(), `{"name":"Written while down"}`); rec.Code != 200 {
		t.Fatalf("patch with Redis down: %d %s", rec.Code, rec.Body)
	}
	got, err := in.cache.GetActive(ctx, p.ID)
	if err != nil || got.Name != "Written while down" {
		t.Fatalf("read after write with Redis down: %+v, %v", got.Name, err)
	}
	if _, err := in.cache.GetActive(ctx, uuid.Must(uuid.NewV7())); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown with Redis down: %v", err)
	}

	srv.Start() // empty again: the cache refills
	if got, err := in.cache.GetActive(ctx, p.ID); err != nil || got.Name != "Written while down" {
		t.Fatalf("after restart: %+v, %v", got.Name, err)
	}
	if n, _ := rdb.Exists(ctx, in.cache.productKey(p.ID)).Result(); n != 1 {
		t.Fatal("the cache was not refilled after Redis came back")
	}
}

// openGuard is a breaker stuck open: the cache must not touch Redis at all.
type openGuard struct{ calls int }

func (g *openGuard) Run(context.Context, func(context.Context) error) error {
	g.calls++
	return errors.New("breaker open")
}

func TestCacheGuardOpenGoesStraightToStore(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := mustCreate(t, e.svc, sampleProduct(1))
	g := &openGuard{}
	in := newInstance(t, e.pool, e.rdb, e.space, WithGuard(g))
	for i := 0; i < 3; i++ {
		if got, err := in.cache.GetActive(ctx, p.ID); err != nil || got.ID != p.ID {
			t.Fatal(err)
		}
	}
	if in.src.gets.Load() != 3 || g.calls == 0 || in.stat("product").Hits != 0 {
		t.Fatalf("gets %d, guard calls %d", in.src.gets.Load(), g.calls)
	}
	if _, err := in.cache.ListActive(ctx, ListQuery{Page: 1, PerPage: 5}); err != nil {
		t.Fatal(err)
	}
}
