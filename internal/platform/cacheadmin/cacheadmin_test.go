package cacheadmin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"commerce/internal/catalog"
	"commerce/internal/discount"
	"commerce/internal/platform/cachestats"
	"commerce/internal/platform/httpx"
	"commerce/internal/platform/rkey"
	"commerce/internal/platform/testenv"

	"commerce/internal/platform/spectest"
)

func newServer(h *Handler) *echo.Echo {
	e := echo.New()
	e.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
	e.Use(httpx.RequestIDMiddleware(), httpx.BodyLimit()) // as the app serves them
	h.Register(e.Group("/admin"))
	return e
}

func do(t *testing.T, e *echo.Echo, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	spectest.Handler(t, e).ServeHTTP(rec, req) // checked against api/openapi.yaml
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: body %q: %v", method, path, rec.Body.String(), err)
	}
	return rec.Code, out
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// TestPurgeOnlyCacheNamespaces: a purge deletes the keys of its cache namespace in its
// own key space and nothing else: never L1/L3 state, never another space's keys, even
// when the space holds glob metacharacters.
func TestPurgeOnlyCacheNamespaces(t *testing.T) {
	ctx := context.Background()
	rdb, base := testenv.Redis(t)
	space := rkey.Space(string(base) + "g*[?]:")
	lookalike := rkey.Space(string(base) + "gX?:") // matched by the unescaped pattern
	state := []string{"inv:{v1}:avail", "inv:{v1}:holds", "chk:{c1}", "lock:{cart1}", "cart:{session:s1}",
		"cart:{customer:c1}", "sess:{s1}", "idem:checkout:c1:k", "job:{warm}:run", "prefs:{c1}", "catalog:gen"}
	caches := map[string][]string{
		"product":  {"product:{p1}:details", "product:{p2}:details", "variant:{v1}:product"},
		"catalog":  {"catalog:list:17:abc", "catalog:list:18:def"},
		"discount": {"discount:ruleset:version", "discount:ruleset:3", "discount:ruleset:4"},
	}
	for _, k := range state {
		rdb.Set(ctx, space.Key(k), "x", time.Hour)
	}
	for _, ks := range caches {
		for _, k := range ks {
			rdb.Set(ctx, space.Key(k), "x", time.Hour)
			rdb.Set(ctx, lookalike.Key(k), "x", time.Hour)
		}
	}
	h := New(rdb, space, cachestats.New(nil), nil)
	e := newServer(h)

	for _, tc := range []struct {
		query  string
		status int
		code   string
	}{
		{"", 400, "bad_request"},
		{"?namespace=", 400, "bad_request"},
		{"?namespace=inv", 422, "validation_failed"},
		{"?namespace=cart", 422, "validation_failed"},
		{"?namespace=chk", 422, "validation_failed"},
		{"?namespace=sess", 422, "validation_failed"},
		{"?namespace=idem", 422, "validation_failed"},
		{"?namespace=*", 422, "validation_failed"},
		{"?namespace=product*", 422, "validation_failed"},
	} {
		status, body := do(t, e, "DELETE", "/admin/cache"+tc.query, "")
		if status != tc.status || errCode(body) != tc.code {
			t.Errorf("DELETE /admin/cache%s = %d %v, want %d %s", tc.query, status, body, tc.status, tc.code)
		}
	}
	for _, ns := range []string{"product", "catalog", "discount"} {
		status, body := do(t, e, "DELETE", "/admin/cache?namespace="+ns, "")
		if status != 200 || body["deleted"] != float64(len(caches[ns])) {
			t.Fatalf("purge %s: %d %v, want %d deleted", ns, status, body, len(caches[ns]))
		}
		for _, k := range caches[ns] {
			if rdb.Exists(ctx, space.Key(k)).Val() != 0 {
				t.Fatalf("%s survived the purge of %s", k, ns)
			}
		}
	}
	for _, k := range state {
		if rdb.Exists(ctx, space.Key(k)).Val() != 1 {
			t.Errorf("state key %s was deleted by a cache purge", k)
		}
	}
	for _, ks := range caches {
		for _, k := range ks {
			if rdb.Exists(ctx, lookalike.Key(k)).Val() != 1 {
				t.Errorf("another space's %s was deleted", k)
			}
		}
	}
	if n, err := h.Purge(ctx, "product"); err != nil || n != 0 {
		t.Fatalf("second purge: %d %v", n, err)
	}
}

func TestPurgeManyKeys(t *testing.T) {
	ctx := context.Background()
	rdb, space := testenv.Redis(t)
	pipe := rdb.Pipeline()
	for i := range 1500 {
		pipe.Set(ctx, space.Key("product:{", time.Duration(i).String(), "}:details"), "x", time.Hour)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := New(rdb, space, cachestats.New(nil), nil).Purge(ctx, "product")
	if err != nil || n != 1500 {
		t.Fatalf("purged %d, %v", n, err)
	}
}

func TestStatsShape(t *testing.T) {
	rdb, space := testenv.Redis(t)
	stats := cachestats.New(nil)
	p := stats.Counter(cachestats.TierL2, "products")
	for range 3 {
		p.Hit()
	}
	p.Miss()
	stats.Counter(cachestats.TierL2, "discounts").Hit()
	stats.Counter(cachestats.TierL3, "carts").Miss()
	e := newServer(New(rdb, space, stats, nil))
	status, body := do(t, e, "GET", "/admin/cache/stats", "")
	if status != 200 {
		t.Fatalf("stats: %d %v", status, body)
	}
	l2 := body["tiers"].(map[string]any)["L2"].(map[string]any)
	products := l2["caches"].(map[string]any)["products"].(map[string]any)
	if products["hits"] != float64(3) || products["misses"] != float64(1) || products["hit_rate"] != 0.75 {
		t.Fatalf("L2 products %v", products)
	}
	if l2["hits"] != float64(4) || l2["misses"] != float64(1) || l2["hit_rate"] != 0.8 {
		t.Fatalf("L2 totals %v", l2)
	}
	l3 := body["tiers"].(map[string]any)["L3"].(map[string]any)
	if l3["hit_rate"] != float64(0) || l3["misses"] != float64(1) {
		t.Fatalf("L3 %v", l3)
	}
	r := body["redis"].(map[string]any)
	if r["ok"] != true || r["redis_version"] == "" || r["used_memory"].(float64) <= 0 ||
		r["connected_clients"].(float64) < 1 || r["ping_latency_ms"] == nil || r["keyspace_hits"] == nil ||
		r["evicted_keys"] == nil || r["expired_keys"] == nil || r["keyspace_misses"] == nil {
		t.Fatalf("redis figures %v", r)
	}
	wantMode := "standalone"
	if testenv.Cluster() {
		wantMode = "cluster"
		if ms, _ := r["masters"].([]any); len(ms) < 2 {
			t.Fatalf("cluster masters %v", r["masters"])
		}
	}
	if r["mode"] != wantMode {
		t.Fatalf("mode %v", r["mode"])
	}
}

func TestStatsWithRedisDown(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	stats := cachestats.New(nil)
	stats.Counter(cachestats.TierL2, "products").Hit()
	srv.Kill()
	status, body := do(t, newServer(New(rdb, "", stats, nil)), "GET", "/admin/cache/stats", "")
	if status != 200 {
		t.Fatalf("stats with Redis down: %d %v", status, body)
	}
	r := body["redis"].(map[string]any)
	if r["ok"] != false || strings.Contains(r["error"].(string), "refused") {
		t.Fatalf("redis part %v", r)
	}
	if body["tiers"].(map[string]any)["L2"] == nil {
		t.Fatal("process counters missing when Redis is down")
	}
}

func TestWarm(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.DB(t)
	rdb, space := testenv.Redis(t)
	store := discount.NewStore(pool)
	svc := discount.NewService(store, discount.NewCache(rdb, space, store, cachestats.New(nil), discount.CacheOptions{}), nil, nil)
	if _, err := discount.Seed(ctx, svc, "USD"); err != nil {
		t.Fatal(err)
	}
	_, version, err := svc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var productWarms, discountWarms atomic.Int64
	fail := atomic.Pointer[error]{}
	h := New(rdb, space, cachestats.New(nil), map[string]func(context.Context) (int64, error){
		"products": func(context.Context) (int64, error) {
			productWarms.Add(1)
			if e := fail.Load(); e != nil {
				return 0, *e
			}
			return 42, nil
		},
		"discounts": func(ctx context.Context) (int64, error) { discountWarms.Add(1); return svc.Warm(ctx) },
	})
	e := newServer(h)

	status, body := do(t, e, "POST", "/admin/cache/warm", "")
	if status != 200 || body["products"] != float64(42) || body["discounts_version"] != float64(version) ||
		body["duration_ms"] == nil {
		t.Fatalf("warm all: %d %v", status, body)
	}
	if p, _ := rdb.Get(ctx, space.Key("discount:ruleset:version")).Int64(); p != version {
		t.Fatalf("pointer %d after warm, want %d", p, version)
	}
	// targets is a set (uniqueItems in the spec): a repeated target is refused, nothing runs.
	status, body = do(t, e, "POST", "/admin/cache/warm", `{"targets":["discounts","discounts"]}`)
	if status != 422 || productWarms.Load() != 1 || discountWarms.Load() != 1 {
		t.Fatalf("warm with a repeated target: %d %v", status, body)
	}
	status, body = do(t, e, "POST", "/admin/cache/warm", `{"targets":["discounts"]}`)
	if status != 200 || body["products"] != float64(0) || body["discounts_version"] != float64(version) {
		t.Fatalf("warm discounts: %d %v", status, body)
	}
	if productWarms.Load() != 1 || discountWarms.Load() != 2 {
		t.Fatalf("warms: products %d, discounts %d", productWarms.Load(), discountWarms.Load())
	}
	status, body = do(t, e, "POST", "/admin/cache/warm", `{"targets":[]}`)
	if status != 200 || productWarms.Load() != 2 {
		t.Fatalf("warm with empty targets: %d %v", status, body)
	}
	for _, tc := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"targets":["carts"]}`, 422, "validation_failed"},
		{`{"targets":"products"}`, 400, "bad_request"},
		{`{"target":["products"]}`, 400, "bad_request"},
	} {
		if status, body := do(t, e, "POST", "/admin/cache/warm", tc.body); status != tc.status || errCode(body) != tc.code {
			t.Errorf("warm %s: %d %v", tc.body, status, body)
		}
	}
	down := error(redis.ErrClosed)
	fail.Store(&down)
	if status, body := do(t, e, "POST", "/admin/cache/warm", `{"targets":["products"]}`); status != 503 {
		t.Errorf("warm with Redis down: %d %v", status, body)
	}
	// A bug in a warmer is the one 500 here, provoked on purpose, so this exchange goes
	// around the spec check (a 500 is documented nowhere): its body must still hide the cause.
	bug := errors.New("select * from secret")
	fail.Store(&bug)
	req := httptest.NewRequest("POST", "/admin/cache/warm", strings.NewReader(`{"targets":["products"]}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "secret") || !strings.Contains(rec.Body.String(), `"internal"`) {
		t.Errorf("warm failing: %d %s", rec.Code, rec.Body)
	}
}

func TestSlowlog(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.ConfigSet(ctx, "slowlog-log-slower-than", "0").Err(); err != nil {
		t.Fatal(err)
	}
	rdb.Set(ctx, "k", strings.Repeat("v", 1000), 0)
	status, body := do(t, newServer(New(rdb, "", cachestats.New(nil), nil)), "GET", "/admin/cache/slowlog", "")
	if status != 200 {
		t.Fatalf("slowlog: %d %v", status, body)
	}
	entries, _ := body["entries"].([]any)
	if len(entries) == 0 {
		t.Fatalf("no entries: %v", body)
	}
	found := false
	for _, x := range entries {
		en := x.(map[string]any)
		if en["id"] == nil || en["time"] == nil || en["duration_us"] == nil {
			t.Fatalf("entry %v", en)
		}
		args := en["args"].([]any)
		for _, a := range args {
			if len(a.(string)) > maxArgLen+40 {
				t.Fatalf("argument not truncated: %d bytes", len(a.(string)))
			}
		}
		if len(args) == 3 && strings.EqualFold(args[0].(string), "set") {
			found = true
		}
	}
	if !found {
		t.Fatalf("the SET is not in the slow log: %v", entries)
	}
	if got := truncateArgs(make([]string, 40)); len(got) != maxArgs+1 || !strings.Contains(got[maxArgs], "8 more") {
		t.Fatalf("truncateArgs of 40: %d, %q", len(got), got[len(got)-1])
	}
}

// productStats reads tier L2 cache "product" from the stats route.
func productStats(t *testing.T, e *echo.Echo) (hits, misses float64) {
	t.Helper()
	status, body := do(t, e, "GET", "/admin/cache/stats", "")
	if status != 200 {
		t.Fatalf("stats: %d %v", status, body)
	}
	l2, _ := body["tiers"].(map[string]any)["L2"].(map[string]any)
	if l2 == nil {
		return 0, 0
	}
	p, _ := l2["caches"].(map[string]any)["product"].(map[string]any)
	if p == nil {
		return 0, 0
	}
	return p["hits"].(float64), p["misses"].(float64)
}

// TestWarmThenEveryActiveProductIsAHit: after POST /admin/cache/warm on a cold
// cache, GET /v1/products/{id} of every active product is a cache hit, as the stats route
// reports.
func TestWarmThenEveryActiveProductIsAHit(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.DB(t)
	rdb, space := testenv.Redis(t)
	stats := cachestats.New(nil)
	cstore := catalog.NewStore(pool, "USD")
	csvc := catalog.NewService(cstore, catalog.NewCache(cstore, rdb, space, time.Hour, stats))
	if n, err := catalog.Seed(ctx, csvc); err != nil || n == 0 {
		t.Fatalf("seed catalog: %d %v", n, err)
	}
	dstore := discount.NewStore(pool)
	dsvc := discount.NewService(dstore, discount.NewCache(rdb, space, dstore, stats, discount.CacheOptions{}), nil, nil)
	e := newServer(New(rdb, space, stats, map[string]func(context.Context) (int64, error){
		"products": func(ctx context.Context) (int64, error) {
			n, err := csvc.Warm(ctx)
			return int64(n), err
		},
		"discounts": dsvc.Warm,
	}))
	catalog.NewHandler(csvc).Register(e.Group("/v1"), e.Group("/admin"))

	// Cold: nothing of the catalog cached.
	if status, body := do(t, e, "DELETE", "/admin/cache?namespace=product", ""); status != 200 {
		t.Fatalf("purge: %d %v", status, body)
	}
	ids, err := cstore.AllActiveIDs(ctx)
	if err != nil || len(ids) == 0 {
		t.Fatalf("active ids: %d %v", len(ids), err)
	}
	status, body := do(t, e, "POST", "/admin/cache/warm", `{}`)
	if status != 200 || body["products"] != float64(len(ids)) {
		t.Fatalf("warm: %d %v, want %d products", status, body, len(ids))
	}
	hits0, misses0 := productStats(t, e)
	for _, id := range ids {
		if status, body := do(t, e, "GET", "/v1/products/"+id.String(), ""); status != 200 || body["id"] != id.String() {
			t.Fatalf("GET product %s: %d %v", id, status, body)
		}
	}
	hits, misses := productStats(t, e)
	if hits-hits0 != float64(len(ids)) || misses != misses0 {
		t.Fatalf("%d GETs after a warm: %v hits, %v misses", len(ids), hits-hits0, misses-misses0)
	}
	t.Logf("%d active products, all hits after the warm (L2 product hits %v, misses %v)", len(ids), hits, misses)
}
