package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/money"
	"commerce/internal/platform/testenv"
)

// versionOf reads the version out of an ETag ("v12" → 12).
func versionOf(t testing.TB, etag string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(strings.Trim(etag, `"v`), 10, 64)
	if err != nil {
		t.Fatalf("etag %q: %v", etag, err)
	}
	return v
}

// The near-cache never serves a product more than its TTL after a write on another
// replica returned, even when every invalidation message is lost: replica B does not
// subscribe at all, while readers on B hammer the product and replica A rewrites its
// price. Every read on B that started at least TTL after write k returned must see
// version k or newer. The near-cache did serve (hits), so the bound is its own.
//
// With the generation poll running (still no subscription), entries outlive their TTL
// while nothing is written, and the bound still holds when something is.
func TestNearCacheNeverOlderThanTTLWithMessagesLost(t *testing.T) {
	t.Run("no subscription", func(t *testing.T) { nearCacheBound(t, false) })
	t.Run("generation poll, no subscription", func(t *testing.T) { nearCacheBound(t, true) })
}

func nearCacheBound(t *testing.T, poll bool) {
	const ttl = 250 * time.Millisecond
	e := newEnv(t)
	a := newInstance(t, e.pool, e.rdb, e.space, WithNearCache(ttl, 1000, 1<<20))
	b := newInstance(t, e.pool, e.rdb, e.space, WithNearCache(ttl, 1000, 1<<20)) // never subscribes
	p := mustCreate(t, a.svc, sampleProduct(1))
	ctx := context.Background()
	if poll {
		b.cache.start(ctx, false)
		t.Cleanup(func() { _ = b.cache.Stop(ctx) })
		time.Sleep(ttl / 2) // the first reads of the generation
		// Nothing written for 4 TTLs: the entry read first is still served (no Redis
		// call would be needed), because the generation did not move.
		if _, err := b.cache.GetActiveEncoded(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * ttl)
		hits := statOfTier(b, "near", "product").Hits
		if _, err := b.cache.GetActiveEncoded(ctx, p.ID); err != nil || statOfTier(b, "near", "product").Hits != hits+1 {
			t.Fatalf("with the generation unchanged, an entry past its TTL was not served: %v", err)
		}
	}

	type write struct {
		done    time.Time
		version int64
	}
	type read struct {
		start   time.Time
		version int64
	}
	var (
		mu     sync.Mutex
		writes = []write{{time.Now(), p.Version}}
		reads  []read
		stop   atomic.Bool
		wg     sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				start := time.Now()
				enc, err := b.cache.GetActiveEncoded(ctx, p.ID)
				if err != nil {
					t.Errorf("read on B: %v", err)
					return
				}
				v := versionOf(t, enc.ETag)
				mu.Lock()
				reads = append(reads, read{start, v})
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}()
	}
	for i := range 12 {
		time.Sleep(time.Duration(40+i*17%90) * time.Millisecond)
		out, err := a.svc.UpdateVariant(ctx, p.Variants[0].ID, VariantPatch{Price: ptr(money.New(int64(2000+i), "USD"))})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		writes = append(writes, write{time.Now(), out.Version})
		mu.Unlock()
	}
	time.Sleep(2 * ttl)
	stop.Store(true)
	wg.Wait()

	stale := 0
	for _, r := range reads {
		var want int64
		for _, w := range writes {
			if !w.done.Add(ttl).After(r.start) && w.version > want {
				want = w.version
			}
		}
		if r.version < want {
			if stale++; stale <= 5 {
				t.Errorf("read started %s after the write of version %d returned saw version %d",
					r.start.Sub(writes[want-1].done), want, r.version)
			}
		}
	}
	if stale > 0 {
		t.Fatalf("%d of %d reads on B were older than the near-cache TTL allows", stale, len(reads))
	}
	if hits := statOfTier(b, "near", "product").Hits; hits < int64(len(reads))/2 {
		t.Fatalf("near-cache hits %d of %d reads: the bound was not the near-cache's", hits, len(reads))
	}
	if last := reads[len(reads)-1].version; last != writes[len(writes)-1].version {
		t.Fatalf("last read saw version %d, last write was %d", last, writes[len(writes)-1].version)
	}
}

func statOfTier(in *instance, tier, cache string) (out struct{ Hits, Misses int64 }) {
	for _, s := range in.stats.Snapshot() {
		if s.Tier == tier && s.Cache == cache {
			out.Hits, out.Misses = s.Hits, s.Misses
		}
	}
	return out
}

// With the subscription running, a write on A reaches B's near-cache over pub/sub long
// before the (here 30 s) TTL would have dropped the old entry.
func TestNearCacheInvalidatedOverPubSub(t *testing.T) {
	e := newEnv(t)
	a := newInstance(t, e.pool, e.rdb, e.space, WithNearCache(30*time.Second, 1000, 1<<20))
	b := newInstance(t, e.pool, e.rdb, e.space, WithNearCache(30*time.Second, 1000, 1<<20))
	ctx := context.Background()
	b.svc.Start(ctx)
	t.Cleanup(func() { _ = b.svc.Stop(ctx) })
	p := mustCreate(t, a.svc, sampleProduct(1))
	waitSubscribed(t, e.rdb, b.cache.invalidationChannel())

	enc, err := b.cache.GetActiveEncoded(ctx, p.ID)
	if err != nil || versionOf(t, enc.ETag) != p.Version {
		t.Fatalf("first read on B: %+v %v", enc, err)
	}
	if _, err := b.cache.GetActiveEncoded(ctx, p.ID); err != nil || statOfTier(b, "near", "product").Hits == 0 {
		t.Fatalf("B does not serve from its near-cache: %v %+v", err, statOfTier(b, "near", "product"))
	}
	out, err := a.svc.UpdateVariant(ctx, p.Variants[0].ID, VariantPatch{Price: ptr(money.New(4242, "USD"))})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		enc, err := b.cache.GetActiveEncoded(ctx, p.ID)
		if err == nil && versionOf(t, enc.ETag) == out.Version && strings.Contains(string(enc.Body), `"amount":4242`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B still serves %s 2 s after the write (pub/sub invalidation not applied)", enc.ETag)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Carts on B price from the near-cache too: the new price, not the old one.
	vs, err := b.svc.Variants(ctx, []uuid.UUID{p.Variants[0].ID})
	if err != nil || vs[p.Variants[0].ID].Price.Amount != 4242 {
		t.Fatalf("variants on B = %+v, %v", vs, err)
	}
}

// waitSubscribed waits until someone subscribes to channel.
func waitSubscribed(t *testing.T, rdb redis.UniversalClient, channel string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := rdb.PubSubNumSub(context.Background(), channel).Result()
		if err == nil && n[channel] > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nobody subscribed to %s: %v %v", channel, n, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A fill that read an old version before the invalidation arrived cannot put it back,
// and the near-cache stays within its bounds.
func TestNearCacheVersionsAndBounds(t *testing.T) {
	n := newNearCache(time.Minute, 10, 1<<20)
	id := uuid.New()
	p := Product{ID: id, Status: StatusActive, Version: 3, Variants: []Variant{{ID: uuid.New()}}}
	readAt := time.Now()
	n.invalidate(id, 4)
	n.put(p, readAt)
	if _, ok := n.get(id, time.Now()); ok {
		t.Fatal("a fill of version 3 was stored after an invalidation to version 4")
	}
	p.Version = 4
	n.put(p, time.Now())
	if e, ok := n.get(id, time.Now()); !ok || e.version != 4 || e.etag != `"v4"` {
		t.Fatalf("version 4 not stored: %+v %v", e, ok)
	}
	p.Version = 2
	n.put(p, time.Now())
	if e, _ := n.get(id, time.Now()); e == nil || e.version != 4 {
		t.Fatal("an older version replaced a newer entry")
	}
	// Data read before a clear is refused.
	n.clear()
	p.Version = 5
	n.put(p, readAt)
	if _, ok := n.get(id, time.Now()); ok {
		t.Fatal("data read before the clear was stored")
	}
	// Data older than the TTL is never stored, and an entry expires TTL after its read.
	n2 := newNearCache(50*time.Millisecond, 10, 1<<20)
	n2.put(p, time.Now().Add(-time.Second))
	if _, ok := n2.get(id, time.Now()); ok {
		t.Fatal("data read a second ago was stored with a 50 ms TTL")
	}
	n2.put(p, time.Now())
	if _, ok := n2.get(id, time.Now().Add(60*time.Millisecond)); ok {
		t.Fatal("an entry was served past its TTL")
	}

	for i := range 100 {
		n.put(Product{ID: uuid.New(), Status: StatusActive, Version: 1, Name: fmt.Sprint(i)}, time.Now())
	}
	if cnt, _ := n.len(); cnt > 10 {
		t.Fatalf("%d entries, bound 10", cnt)
	}
	small := newNearCache(time.Minute, 1000, 8<<10)
	for range 200 {
		small.put(Product{ID: uuid.New(), Status: StatusActive, Version: 1, Description: strings.Repeat("x", 500)}, time.Now())
	}
	if cnt, bytes := small.len(); bytes > 8<<10 || cnt == 0 {
		t.Fatalf("%d entries, %d bytes, bound 8 KiB", cnt, bytes)
	}
}

// Warm product reads and variant lookups make no Redis call: after one read fills the
// near-cache, GET bodies and cart variant lookups come from memory.
func TestNearCacheWarmReadsMakeNoRedisCall(t *testing.T) {
	e := newEnv(t)
	p := mustCreate(t, e.svc, sampleProduct(2))
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: testenv.RedisAddrs(), IsClusterMode: testenv.Cluster()})
	t.Cleanup(func() { _ = rdb.Close() })
	cnt := &testenv.CommandCounter{}
	rdb.AddHook(cnt)
	in := newInstance(t, e.pool, rdb, e.space, WithNearCache(time.Minute, 100, 1<<20))
	ctx := context.Background()
	if _, err := in.cache.GetActiveEncoded(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	before := cnt.N()
	ids := []uuid.UUID{p.Variants[0].ID, p.Variants[1].ID}
	for range 20 {
		if _, err := in.cache.GetActiveEncoded(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		vs, err := in.cache.Variants(ctx, ids)
		if err != nil || len(vs) != 2 || vs[ids[1]].Price != p.Variants[1].Price {
			t.Fatalf("variants %+v %v", vs, err)
		}
		if _, err := in.cache.GetActive(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n := cnt.N() - before; n != 0 {
		t.Fatalf("%d Redis commands for 60 warm reads", n)
	}
}

// GET /v1/products/{id} carries a strong ETag (the version) and a Cache-Control a CDN can
// use; If-None-Match with the current tag is a 304 without a body, with an old tag a 200.
func TestProductETagAndNotModified(t *testing.T) {
	e := newEnv(t)
	in := newInstance(t, e.pool, e.rdb, e.space, WithNearCache(time.Second, 100, 1<<20))
	p := mustCreate(t, in.svc, sampleProduct(1))
	path := "/v1/products/" + p.ID.String()
	get := func(inm string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		rec := httptest.NewRecorder()
		in.e.ServeHTTP(rec, req)
		return rec
	}
	rec := get("")
	etag := rec.Header().Get("ETag")
	if rec.Code != 200 || etag != `"v1"` || rec.Header().Get("Cache-Control") != PublicCacheControl ||
		!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("first get: %d %v", rec.Code, rec.Header())
	}
	var pj productJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &pj); err != nil || pj.ID != p.ID || pj.Version != 1 {
		t.Fatalf("body %s: %v", rec.Body, err)
	}
	for _, inm := range []string{etag, `W/"v1"`, `"v0", "v1"`, "*"} {
		if rec := get(inm); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 || rec.Header().Get("ETag") != etag {
			t.Fatalf("If-None-Match %s: %d %q %v", inm, rec.Code, rec.Body, rec.Header())
		}
	}
	if _, err := in.svc.Update(context.Background(), p.ID, ProductPatch{Name: ptr("Renamed")}); err != nil {
		t.Fatal(err)
	}
	if rec := get(etag); rec.Code != 200 || rec.Header().Get("ETag") != `"v2"` || !strings.Contains(rec.Body.String(), "Renamed") {
		t.Fatalf("after a write, the old tag: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	if rec := get(`"v2"`); rec.Code != http.StatusNotModified {
		t.Fatalf("the new tag: %d", rec.Code)
	}
	list := httptest.NewRecorder()
	in.e.ServeHTTP(list, httptest.NewRequest(http.MethodGet, "/v1/products", nil))
	if list.Code != 200 || list.Header().Get("Cache-Control") != PublicCacheControl {
		t.Fatalf("listing: %d %v", list.Code, list.Header())
	}
}
