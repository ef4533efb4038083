package discount

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/cachestats"
	"commerce/internal/platform/money"
	"commerce/internal/platform/rkey"
	"commerce/internal/platform/testenv"
)

// cmdCounter counts the commands a client sends, by name (lower case).
type cmdCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *cmdCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *cmdCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		h.n[cmd.Name()]++
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}
func (h *cmdCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *cmdCounter) get(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[name]
}

// countingLoader is a Loader that counts its loads.
type countingLoader struct {
	src   Loader
	loads atomic.Int64
	fail  atomic.Bool
}

func (l *countingLoader) Load(ctx context.Context) (Ruleset, error) {
	l.loads.Add(1)
	if l.fail.Load() {
		return Ruleset{}, errors.New("source down")
	}
	return l.src.Load(ctx)
}

// staticLoader returns a fixed ruleset.
type staticLoader struct{ rs Ruleset }

func (l staticLoader) Load(context.Context) (Ruleset, error) { return l.rs, nil }

// versionedRules is a synthetic ruleset whose content names its version, so a reader can
// tell a bundle of one version from another's.
func versionedRules(v int64) Ruleset {
	return Ruleset{Version: v, Rules: []Rule{{
		ID: uuid.UUID{0xAA, byte(v >> 8), byte(v)}, Name: fmt.Sprintf("rules of v%d", v),
		Kind: KindPercentage, Value: v%100 + 1, Scope: Scope{Type: ScopeCart, IDs: []string{}},
		Stackable: true, Active: true,
	}}}
}

func checkVersioned(rs Ruleset) error {
	if len(rs.Rules) != 1 || rs.Rules[0].Name != fmt.Sprintf("rules of v%d", rs.Version) ||
		rs.Rules[0].Value != rs.Version%100+1 {
		return fmt.Errorf("bundle of version %d holds %+v", rs.Version, rs.Rules)
	}
	return nil
}

func stat(reg *cachestats.Registry, tier, cache string) cachestats.Stat {
	for _, s := range reg.Snapshot() {
		if s.Tier == tier && s.Cache == cache {
			return s
		}
	}
	return cachestats.Stat{}
}

// TestPublishReadRace: readers racing 1000 ruleset publishes never see a
// bundle whose version differs from the pointer they read, and the pointer never goes
// back, even with publishers moving it out of order.
func TestPublishReadRace(t *testing.T) {
	ctx := context.Background()
	rdb, space := testenv.Redis(t)
	pub := NewCache(rdb, space, staticLoader{}, cachestats.New(nil), CacheOptions{})
	const publishes = 1000

	var stop atomic.Bool
	var reads, distinct atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			// A raw reader: pointer, then the bundle of exactly that version.
			last := int64(0)
			for !stop.Load() {
				ptr, err := rdb.Get(ctx, space.Key("discount:ruleset:version")).Int64()
				if errors.Is(err, redis.Nil) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				rs, err := pub.readBundle(ctx, ptr)
				if err != nil {
					t.Errorf("pointer %d names no usable bundle: %v", ptr, err)
					return
				}
				if rs.Version != ptr {
					t.Errorf("pointer %d, bundle of version %d", ptr, rs.Version)
					return
				}
				if err := checkVersioned(rs); err != nil {
					t.Error(err)
					return
				}
				if ptr < last {
					t.Errorf("pointer went back from %d to %d", last, ptr)
					return
				}
				if ptr != last {
					distinct.Add(1)
				}
				last = ptr
				reads.Add(1)
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			// Readers through Cache.Load, asking Redis on every read (no local reuse).
			rd := NewCache(rdb, space, staticLoader{versionedRules(1)}, cachestats.New(nil), CacheOptions{LocalTTL: -1})
			last := int64(0)
			for !stop.Load() {
				rs, err := rd.Load(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if err := checkVersioned(rs); err != nil {
					t.Error(err)
					return
				}
				if rs.Version < last {
					t.Errorf("Load went back from %d to %d", last, rs.Version)
					return
				}
				last = rs.Version
				reads.Add(1)
			}
		})
	}

	// 1000 publishes in order, then 1000 more from 4 publishers in shuffled order.
	for v := int64(1); v <= publishes; v++ {
		if err := pub.Publish(ctx, versionedRules(v)); err != nil {
			t.Fatal(err)
		}
	}
	perm := rand.Perm(publishes)
	var pw sync.WaitGroup
	for p := range 4 {
		pw.Go(func() {
			for i := p; i < publishes; i += 4 {
				if err := pub.Publish(ctx, versionedRules(int64(publishes+1+perm[i]))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	pw.Wait()
	stop.Store(true)
	wg.Wait()

	ptr, err := rdb.Get(ctx, space.Key("discount:ruleset:version")).Int64()
	if err != nil || ptr != 2*publishes {
		t.Fatalf("final pointer %d (%v), want %d", ptr, err, 2*publishes)
	}
	if reads.Load() == 0 || distinct.Load() < 2 {
		t.Fatalf("the readers did not race the publishes: %d reads, %d distinct versions", reads.Load(), distinct.Load())
	}
	t.Logf("%d reads, %d version changes observed", reads.Load(), distinct.Load())
}

func TestPublishScriptCodes(t *testing.T) {
	ctx := context.Background()
	rdb, space := testenv.Redis(t)
	c := NewCache(rdb, space, staticLoader{}, cachestats.New(nil), CacheOptions{})
	// run returns the script's status, or "error" for an error reply (bad input).
	run := func(args ...any) string {
		t.Helper()
		v, err := c.publish.Run(ctx, rdb, []string{c.ptrKey}, args...).Slice()
		if err != nil {
			if !strings.Contains(err.Error(), "ERR discount_publish: bad ") {
				t.Fatal(err)
			}
			return "error"
		}
		s, _ := v[0].(string)
		return s
	}
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{5, 60000}, "OK"},
		{[]any{5, 60000}, "SAME"},
		{[]any{4, 60000}, "NEWER"},
		{[]any{6, 60000}, "OK"},
		{[]any{"x", 60000}, "error"},
		{[]any{0, 60000}, "error"},
		{[]any{7, 0}, "error"},
		{[]any{"7.5", 60000}, "error"},
	} {
		if got := run(tc.args...); got != tc.want {
			t.Fatalf("publish %v = %s, want %s", tc.args, got, tc.want)
		}
	}
	if v, _ := rdb.Get(ctx, c.ptrKey).Int64(); v != 6 {
		t.Fatalf("pointer %d, want 6", v)
	}
	if ttl := rdb.PTTL(ctx, c.ptrKey).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("pointer TTL %v", ttl)
	}
}

// newCacheEnv returns a store on a fresh database and a Cache over it on its own key space.
func newCacheEnv(t *testing.T, o CacheOptions) (*Store, *Cache, *countingLoader, *cmdCounter, *cachestats.Registry, redis.UniversalClient, rkey.Space) {
	t.Helper()
	pool, _ := testenv.DB(t)
	rdb, space := testenv.Redis(t)
	hook := &cmdCounter{n: map[string]int{}}
	rdb.AddHook(hook)
	store := NewStore(pool)
	src := &countingLoader{src: store}
	reg := cachestats.New(nil)
	return store, NewCache(rdb, space, src, reg, o), src, hook, reg, rdb, space
}

// TestCacheReusesLocalCopy: while the pointer is unchanged no bundle is fetched and
// PostgreSQL is not read; within LocalTTL Redis is not even asked.
func TestCacheReusesLocalCopy(t *testing.T) {
	ctx := context.Background()
	store, c, src, hook, reg, _, _ := newCacheEnv(t, CacheOptions{LocalTTL: -1})
	if _, _, err := store.Create(ctx, newRule("r1")); err != nil {
		t.Fatal(err)
	}
	first, err := c.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if src.loads.Load() != 1 || len(first.Rules) != 1 {
		t.Fatalf("cold load: %d source loads, %d rules", src.loads.Load(), len(first.Rules))
	}
	gets0, bundles0 := hook.get("get"), c.bundleReads.Load()
	for range 100 {
		rs, err := c.Load(ctx)
		if err != nil || rs.Version != first.Version {
			t.Fatalf("load: %v %v", rs.Version, err)
		}
	}
	if src.loads.Load() != 1 || c.bundleReads.Load() != bundles0 || hook.get("get") != gets0+100 {
		t.Fatalf("100 warm loads: %d source loads, %d bundle reads (was %d), %d GETs (was %d)",
			src.loads.Load(), c.bundleReads.Load(), bundles0, hook.get("get"), gets0)
	}
	if s := stat(reg, "L2", "discounts"); s.Hits != 100 || s.Misses != 1 {
		t.Fatalf("stats %+v, want 100 hits and 1 miss", s)
	}

	// Another replica publishes a new version: the next read fetches that bundle once.
	other := NewCache(c.rdb, c.space, store, cachestats.New(nil), CacheOptions{})
	if _, _, err := store.Create(ctx, newRule("r2")); err != nil {
		t.Fatal(err)
	}
	v2, err := other.Warm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := c.Load(ctx)
	if err != nil || rs.Version != v2 || len(rs.Rules) != 2 {
		t.Fatalf("after another replica's publish: version %d (want %d), %d rules, %v", rs.Version, v2, len(rs.Rules), err)
	}
	if c.bundleReads.Load() != bundles0+1 || src.loads.Load() != 1 {
		t.Fatalf("new version: %d bundle reads (want %d), %d source loads", c.bundleReads.Load(), bundles0+1, src.loads.Load())
	}

	// With a long LocalTTL the copy is served without any Redis command.
	long := NewCache(c.rdb, c.space, src, cachestats.New(nil), CacheOptions{LocalTTL: time.Hour})
	if _, err := long.Load(ctx); err != nil {
		t.Fatal(err)
	}
	cmds := hook.get("get") + hook.get("evalsha") + hook.get("set")
	for range 100 {
		if _, err := long.Load(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := hook.get("get") + hook.get("evalsha") + hook.get("set"); n != cmds {
		t.Fatalf("%d Redis commands for 100 reads within LocalTTL", n-cmds)
	}
}

// TestCacheSingleflight: 200 concurrent cold reads load PostgreSQL once.
func TestCacheSingleflight(t *testing.T) {
	ctx := context.Background()
	store, c, src, _, _, _, _ := newCacheEnv(t, CacheOptions{})
	if _, _, err := store.Create(ctx, newRule("r1")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 200 {
		wg.Go(func() {
			<-start
			if rs, err := c.Load(ctx); err != nil || len(rs.Rules) != 1 {
				t.Errorf("load: %v, %d rules", err, len(rs.Rules))
			}
		})
	}
	close(start)
	wg.Wait()
	if n := src.loads.Load(); n != 1 {
		t.Fatalf("%d source loads for 200 concurrent cold reads", n)
	}
}

// TestCacheReloadsWhenRedisWiped: a Redis that lost everything is refilled from
// PostgreSQL on the next read, which counts as a miss.
func TestCacheReloadsWhenRedisWiped(t *testing.T) {
	ctx := context.Background()
	store, c, src, _, reg, rdb, space := newCacheEnv(t, CacheOptions{LocalTTL: -1})
	if _, _, err := store.Create(ctx, newRule("r1")); err != nil {
		t.Fatal(err)
	}
	v, err := c.Warm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A fresh replica reads the warmed bundle: a hit, no source load.
	fresh := NewCache(rdb, space, src, reg, CacheOptions{LocalTTL: -1})
	loads := src.loads.Load()
	if rs, err := fresh.Load(ctx); err != nil || rs.Version != v || src.loads.Load() != loads {
		t.Fatalf("warm read: %v %v, %d source loads", rs.Version, err, src.loads.Load()-loads)
	}
	before := stat(reg, "L2", "discounts")

	if err := testenv.DeleteSpace(ctx, rdb, space); err != nil {
		t.Fatal(err)
	}
	rs, err := fresh.Load(ctx)
	if err != nil || rs.Version != v || len(rs.Rules) != 1 {
		t.Fatalf("after wipe: %+v %v", rs, err)
	}
	if src.loads.Load() != loads+1 {
		t.Fatalf("after wipe: %d source loads, want 1", src.loads.Load()-loads)
	}
	if after := stat(reg, "L2", "discounts"); after.Misses != before.Misses+1 {
		t.Fatalf("misses %d → %d", before.Misses, after.Misses)
	}
	// The reload republished: pointer and bundle are back.
	if p, err := rdb.Get(ctx, space.Key("discount:ruleset:version")).Int64(); err != nil || p != v {
		t.Fatalf("pointer after reload: %d %v", p, err)
	}
	if n, _ := rdb.Exists(ctx, c.bundleKey(v)).Result(); n != 1 {
		t.Fatal("bundle not republished")
	}
	// A missing bundle under an existing pointer also reloads.
	rdb.Del(ctx, c.bundleKey(v))
	other := NewCache(rdb, space, src, reg, CacheOptions{LocalTTL: -1})
	if rs, err := other.Load(ctx); err != nil || rs.Version != v {
		t.Fatalf("missing bundle: %v %v", rs.Version, err)
	}
	if src.loads.Load() != loads+2 {
		t.Fatalf("missing bundle: %d source loads, want 2", src.loads.Load()-loads)
	}
	// A corrupt bundle is treated as missing.
	rdb.Set(ctx, c.bundleKey(v), "{not json", time.Minute)
	other2 := NewCache(rdb, space, src, reg, CacheOptions{LocalTTL: -1})
	if rs, err := other2.Load(ctx); err != nil || rs.Version != v || len(rs.Rules) != 1 {
		t.Fatalf("corrupt bundle: %v %v", rs.Version, err)
	}
}

// TestCacheRedisDown: with Redis unreachable reads come from PostgreSQL (misses), and
// they go back to Redis once it is back.
func TestCacheRedisDown(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.DB(t)
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	store := NewStore(pool)
	src := &countingLoader{src: store}
	reg := cachestats.New(nil)
	c := NewCache(rdb, "", src, reg, CacheOptions{LocalTTL: -1, RedisBackoff: time.Millisecond})
	if _, _, err := store.Create(ctx, newRule("r1")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Warm(ctx); err != nil {
		t.Fatal(err)
	}

	srv.Kill()
	if _, err := c.Warm(ctx); err == nil {
		t.Fatal("warm with Redis down: no error")
	}
	if _, _, err := store.Create(ctx, newRule("r2")); err != nil {
		t.Fatal(err)
	}
	loads, misses := src.loads.Load(), stat(reg, "L2", "discounts").Misses
	rs, err := c.Load(ctx)
	if err != nil || len(rs.Rules) != 2 {
		t.Fatalf("load with Redis down: %d rules, %v", len(rs.Rules), err)
	}
	if src.loads.Load() != loads+1 || stat(reg, "L2", "discounts").Misses != misses+1 {
		t.Fatal("a read with Redis down must load from PostgreSQL and count a miss")
	}
	// Source down too: the error surfaces (no silent empty ruleset).
	src.fail.Store(true)
	if _, err := c.Load(ctx); err == nil {
		t.Fatal("load with Redis and the source down: no error")
	}
	src.fail.Store(false)

	srv.Start()
	// Back up (and empty): the next reads republish, then hit.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if n, _ := rdb.Exists(ctx, c.ptrKey).Result(); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ruleset was never republished after Redis came back")
		}
		time.Sleep(5 * time.Millisecond)
	}
	loads = src.loads.Load()
	if _, err := c.Load(ctx); err != nil || src.loads.Load() != loads {
		t.Fatalf("after recovery reads come from Redis: %v, %d loads", err, src.loads.Load()-loads)
	}
}

func TestBundleRoundTrip(t *testing.T) {
	starts := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	ends := starts.Add(time.Hour)
	full := newRule("full")
	full.Code, full.Kind, full.Value, full.Currency = "ABC", KindFixedAmount, 5, "EUR"
	full.Scope = Scope{Type: ScopeVariant, IDs: []string{uuid.NewString()}}
	full.MinSubtotal = &money.Money{Amount: 700, Currency: "EUR"}
	full.StartsAt, full.EndsAt, full.Priority, full.Stackable = &starts, &ends, -3, false
	in := Ruleset{Version: 9, Rules: []Rule{full, newRule("plain")}}
	b, err := encodeBundle(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in %+v\nout %+v", in, out)
	}
}

// BenchmarkCacheLoad: a read within LocalTTL (no I/O) and a read that checks the pointer
// (one GET) on an unchanged version.
func BenchmarkCacheLoad(b *testing.B) {
	ctx := context.Background()
	rdb, space := testenv.Redis(b)
	for _, tc := range []struct {
		name     string
		localTTL time.Duration
	}{{"local", time.Hour}, {"pointerGET", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			c := NewCache(rdb, space, staticLoader{versionedRules(3)}, cachestats.New(nil), CacheOptions{LocalTTL: tc.localTTL})
			if _, err := c.Warm(ctx); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Load(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
