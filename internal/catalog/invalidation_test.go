package catalog

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"commerce/internal/platform/money"
	"commerce/internal/platform/rkey"
	"commerce/internal/platform/testenv"
)

// A product write whose Redis invalidation fails is still made visible: Redis is cut off
// (a real redis-server behind a toxiproxy proxy that is stopped) while a price changes,
// so the old entry stays in Redis; the write's catalog_invalidations row keeps the
// invalidation, and the relay republishes it once Redis answers. Replica B, which has no
// near-cache and reads Redis directly, serves the new price within 1 s of the proxy
// coming back, and the row is gone.
func TestFailedInvalidationIsRelayedWithin1sOfRedisReturning(t *testing.T) {
	pool, _ := testenv.DB(t)
	srv := testenv.StartRedis(t)
	toxi := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	proxy := toxiproxy.NewProxy(toxi, "redis", "127.0.0.1:0", srv.Addr)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Listen, ContextTimeoutEnabled: true, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	space := rkey.Space("inv:")
	ctx := context.Background()

	a := newInstance(t, pool, rdb, space, WithNearCache(time.Second, 100, 1<<20))
	a.svc.Start(ctx)
	t.Cleanup(func() { _ = a.svc.Stop(ctx) })
	b := newInstance(t, pool, rdb, space) // reads Redis on every request
	p := mustCreate(t, a.svc, sampleProduct(1))
	path := "/v1/products/" + p.ID.String()
	if rec := b.do(t, "GET", path, ""); rec.Code != 200 {
		t.Fatalf("warm B: %d", rec.Code)
	}
	direct := srv.Client()
	t.Cleanup(func() { _ = direct.Close() })
	cachedVersion := func() int64 {
		b, err := direct.Get(ctx, a.cache.productKey(p.ID)).Bytes()
		if err != nil {
			t.Fatalf("read the cached entry: %v", err)
		}
		e, ok := decodeProduct(b)
		if !ok {
			t.Fatalf("unreadable entry %q", b)
		}
		return e.p.Version
	}
	if v := cachedVersion(); v != p.Version {
		t.Fatalf("cached version %d, want %d", v, p.Version)
	}

	proxy.Stop() // Redis unreachable: connections refused
	out, err := a.svc.UpdateVariant(ctx, p.Variants[0].ID, VariantPatch{Price: ptr(money.New(9999, "USD"))})
	if err != nil {
		t.Fatalf("the write itself must succeed while Redis is down: %v", err)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM catalog_invalidations WHERE product_id = $1`, p.ID).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows == 0 {
		t.Fatal("no catalog_invalidations row left by a write whose invalidation failed")
	}
	time.Sleep(500 * time.Millisecond) // the relay tries, and fails, meanwhile
	if v := cachedVersion(); v != p.Version {
		t.Fatalf("the invalidation reached Redis through a stopped proxy (version %d)", v)
	}

	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for {
		rec := b.do(t, "GET", path, "")
		var pj productJSON
		if rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &pj) == nil && pj.Variants[0].Price.Amount == 9999 {
			break
		}
		if time.Since(back) > time.Second {
			t.Fatalf("B still serves the old price 1 s after Redis answered again: %d %s", rec.Code, rec.Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("new price served %s after Redis answered again", time.Since(back).Round(time.Millisecond))
	if v := cachedVersion(); v != out.Version {
		t.Fatalf("cached version %d, want %d", v, out.Version)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM catalog_invalidations`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d invalidation rows left after the relay published", rows)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A write whose invalidation succeeds leaves no row behind, and one recorded by a
// process that died after its commit (no invalidation at all) is published by the relay.
func TestRelayPublishesRowsLeftBehind(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := mustCreate(t, e.svc, sampleProduct(1))
	var rows int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM catalog_invalidations`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("rows after a confirmed invalidation: %d %v", rows, err)
	}
	if rec := e.do(t, "GET", "/v1/products/"+p.ID.String(), ""); rec.Code != 200 {
		t.Fatal(rec.Code)
	}
	// A commit whose process died before invalidating: the store alone.
	out, err := e.store.UpdateVariant(ctx, p.Variants[0].ID, VariantPatch{Price: ptr(money.New(31, "USD"))})
	if err != nil {
		t.Fatal(err)
	}
	n, more, err := e.svc.RelayInvalidations(ctx)
	if err != nil || n != 1 || more {
		t.Fatalf("relay: %d %v %v", n, more, err)
	}
	got, err := e.cache.GetActive(ctx, p.ID)
	if err != nil || got.Version != out.Version || got.Variants[0].Price.Amount != 31 {
		t.Fatalf("after the relay: %+v %v", got, err)
	}
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM catalog_invalidations`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("rows after the relay: %d %v", rows, err)
	}
}
