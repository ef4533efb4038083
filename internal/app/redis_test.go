package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/testenv"
)

// TestRedisOptions: every way of naming the Redis instances turns into the client options
// it means, and a malformed one is refused before anything connects.
func TestRedisOptions(t *testing.T) {
	base := Config{RedisPoolSize: 8, RedisTimeout: 1}
	tests := []struct {
		name      string
		mutate    func(*Config)
		addrs     []string
		master    string
		cluster   bool
		pass      string
		sentPass  string
		db        int
		wantError string
	}{
		{name: "standalone", mutate: func(c *Config) { c.RedisURL = "redis://:pw@10.0.0.1:6380/2" },
			addrs: []string{"10.0.0.1:6380"}, pass: "pw", db: 2},
		{name: "password override", mutate: func(c *Config) { c.RedisURL = "redis://:pw@h:6379/0"; c.RedisPassword = "env" },
			addrs: []string{"h:6379"}, pass: "env"},
		{name: "cluster", mutate: func(c *Config) { c.RedisAddrs = []string{"a:1", "b:2"} }, addrs: []string{"a:1", "b:2"}, cluster: true},
		{name: "sentinel URL as the seeds write it", mutate: func(c *Config) { c.RedisURL = "redis://sentinel:26379/0?sentinel=mymaster" },
			addrs: []string{"sentinel:26379"}, master: "mymaster"},
		{name: "sentinel URL, default port, more sentinels, data password", mutate: func(c *Config) {
			c.RedisURL = "redis://:data@s1/3?sentinel=shop&addr=s2:26380&addr=s3:26381"
			c.RedisSentinelPassword = "sp"
		}, addrs: []string{"s1:26379", "s2:26380", "s3:26381"}, master: "shop", pass: "data", sentPass: "sp", db: 3},
		{name: "sentinel env", mutate: func(c *Config) {
			c.RedisSentinelAddrs = []string{"s1:26379", "s2:26379", "s3:26379"}
			c.RedisMasterName = "m"
			c.RedisSentinelPassword = "sp"
			c.RedisURL = "redis://:data@ignored:6379/1"
		}, addrs: []string{"s1:26379", "s2:26379", "s3:26379"}, master: "m", pass: "data", sentPass: "sp", db: 1},
		{name: "sentinel without a name", mutate: func(c *Config) { c.RedisURL = "redis://s:26379/0?sentinel=" }, wantError: "master's name"},
		{name: "bad extra sentinel", mutate: func(c *Config) { c.RedisURL = "redis://s:26379/0?sentinel=m&addr=nohost" }, wantError: "bad sentinel addr"},
		{name: "unknown parameter", mutate: func(c *Config) { c.RedisURL = "redis://s:6379/0?sentinal=m" }, wantError: "unexpected option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			c.RedisURL = "redis://127.0.0.1:6379/0"
			tt.mutate(&c)
			o, err := redisOptions(c, c.stateTarget())
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(o.Addrs, tt.addrs) || o.MasterName != tt.master || o.IsClusterMode != tt.cluster ||
				o.Password != tt.pass || o.SentinelPassword != tt.sentPass || o.DB != tt.db {
				t.Errorf("options: addrs %v master %q cluster %v password %q sentinel password %q db %d",
					o.Addrs, o.MasterName, o.IsClusterMode, o.Password, o.SentinelPassword, o.DB)
			}
			if o.MaxRetries != -1 || o.PoolSize != 8 {
				t.Errorf("pool/retry settings lost: MaxRetries %d PoolSize %d", o.MaxRetries, o.PoolSize)
			}
		})
	}
}

// TestConfigRefusesContradictoryRedisSettings: Validate names each contradiction.
func TestConfigRefusesContradictoryRedisSettings(t *testing.T) {
	for _, tt := range []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.RedisSentinelAddrs = []string{"s:26379"} }, "REDIS_MASTER_NAME is required"},
		{func(c *Config) { c.RedisMasterName = "m" }, "needs REDIS_SENTINEL_ADDRS"},
		{func(c *Config) {
			c.RedisSentinelAddrs, c.RedisMasterName, c.RedisAddrs = []string{"s:1"}, "m", []string{"a:1"}
		}, "not both"},
		{func(c *Config) { c.RedisCacheURL, c.RedisCacheAddrs = "redis://c:6379/0", []string{"a:1"} }, "REDIS_CACHE_URL or REDIS_CACHE_ADDRS"},
		{func(c *Config) { c.RedisCacheURL = "redis://c:6379/0?sentinel=" }, "REDIS_CACHE"},
	} {
		c := testConfig(t)
		tt.mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
		}
	}
}

// stateRedisConfig is a test configuration whose L1/L3 Redis is a private server.
func stateRedisConfig(t *testing.T, srv *testenv.RedisServer, env string) Config {
	cfg := testConfig(t)
	cfg.Env = env
	cfg.RedisAddrs, cfg.RedisURL, cfg.RedisPrefix = nil, "redis://"+srv.Addr+"/0", ""
	return cfg
}

// TestStartupRefusesEvictingPolicyInProduction: allkeys-* on the instance that holds
// holds and counters stops a production start and is only a warning in development;
// volatile-* and noeviction start. Missing persistence is a warning that names what a
// restart costs. The stats route reports the policy.
func TestStartupRefusesEvictingPolicyInProduction(t *testing.T) {
	srv := testenv.StartRedis(t) // --save "" --appendonly no
	direct := srv.Client()
	ctx := context.Background()
	for _, tt := range []struct {
		policy, env string
		refused     bool
	}{
		{"allkeys-lru", "production", true},
		{"allkeys-lfu", "production", true},
		{"allkeys-random", "production", true},
		{"allkeys-lru", "development", false},
		{"volatile-lru", "production", false},
		{"volatile-ttl", "production", false},
		{"noeviction", "production", false},
	} {
		if err := direct.ConfigSet(ctx, "maxmemory-policy", tt.policy).Err(); err != nil {
			t.Fatal(err)
		}
		var logs strings.Builder
		a, err := New(ctx, stateRedisConfig(t, srv, tt.env), slog.New(slog.NewTextHandler(&logs, nil)))
		if tt.refused {
			if err == nil || !strings.Contains(err.Error(), "maxmemory-policy "+tt.policy) {
				t.Errorf("%s in %s: New() = %v, want a refusal naming the policy", tt.policy, tt.env, err)
			}
			if a != nil {
				a.Close(ctx)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s in %s: New() = %v, want a start", tt.policy, tt.env, err)
			continue
		}
		out := logs.String()
		if !strings.Contains(out, "no persistence") || !strings.Contains(out, "anonymous carts") ||
			!strings.Contains(out, "self-heal from PostgreSQL") {
			t.Errorf("%s: no loud persistence warning naming the cost of a restart in the log:\n%s", tt.policy, out)
		}
		if evicting := strings.Contains(out, "REDIS EVICTION"); evicting != strings.HasPrefix(tt.policy, "allkeys-") {
			t.Errorf("%s in %s: eviction warning logged = %v", tt.policy, tt.env, evicting)
		}
		r := do(t, a.Handler(), call{method: "GET", path: "/admin/cache/stats", headers: admin()})
		var body struct {
			State struct {
				OK            bool     `json:"ok"`
				Policy        string   `json:"maxmemory_policy"`
				Persistence   string   `json:"persistence"`
				Evicting      bool     `json:"evicting"`
				SeparateCache bool     `json:"separate_cache"`
				Problems      []string `json:"problems"`
			} `json:"state_redis"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil || r.status != http.StatusOK {
			t.Fatalf("stats: %d %s", r.status, r.body)
		}
		s := body.State
		if !s.OK || s.Policy != tt.policy || s.Persistence != "none" || s.Evicting != strings.HasPrefix(tt.policy, "allkeys-") ||
			s.SeparateCache || len(s.Problems) == 0 {
			t.Errorf("%s: stats state_redis = %+v", tt.policy, s)
		}
		a.Close(ctx)
	}
	// With AOF on, no persistence warning.
	if err := direct.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	if err := direct.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	a, err := New(ctx, stateRedisConfig(t, srv, "production"), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	if strings.Contains(logs.String(), "REDIS DURABILITY") {
		t.Errorf("persistence warning with appendonly yes:\n%s", logs.String())
	}
}

// TestSeparateCacheTier: with REDIS_CACHE_URL set, product cache entries live on the
// cache instance and nothing of L2 lands on the state instance (and L1 nothing on the
// cache instance); the stats route reports each.
func TestSeparateCacheTier(t *testing.T) {
	state, cache := testenv.StartRedis(t), testenv.StartRedis(t)
	cfg := stateRedisConfig(t, state, "test")
	cfg.RedisCacheURL = "redis://" + cache.Addr + "/0"
	a, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	if a.Cache == a.Redis {
		t.Fatal("REDIS_CACHE_URL set but the cache client is the state client")
	}
	e := &chaosEnv{t: t, a: a, h: a.Handler()}
	product, variant := e.createProduct(5)
	if r := e.send("GET", "/v1/products/"+product, "", nil); r.status != 200 {
		t.Fatalf("product: %d %s", r.status, r.body)
	}
	s := &shop{e: e}
	if r := s.newSession(); r.status != http.StatusCreated {
		t.Fatalf("session: %d %s", r.status, r.body)
	}
	if r := s.add(variant, 1); r.status >= 300 {
		t.Fatalf("cart: %d %s", r.status, r.body)
	}
	if r := s.startCheckout(); r.status != http.StatusCreated {
		t.Fatalf("checkout: %d %s", r.status, r.body)
	}
	keys := func(srv *testenv.RedisServer) []string {
		k, err := srv.Client().Keys(context.Background(), "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	has := func(keys []string, prefix string) bool {
		return slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, prefix) })
	}
	sk, ck := keys(state), keys(cache)
	if !has(ck, "product:") || has(sk, "product:") {
		t.Errorf("product cache keys: cache instance %v, state instance %v; want them only on the cache instance", ck, sk)
	}
	for _, p := range []string{"inv:", "sess:", "cart:"} {
		if has(ck, p) {
			t.Errorf("%s keys on the cache instance: %v", p, ck)
		}
		if !has(sk, p) {
			t.Errorf("no %s keys on the state instance: %v", p, sk)
		}
	}
	r := do(t, a.Handler(), call{method: "GET", path: "/admin/cache/stats", headers: admin()})
	var body struct {
		Redis struct {
			Addr string `json:"addr"`
		} `json:"redis"`
		State struct {
			SeparateCache bool `json:"separate_cache"`
			Nodes         []struct {
				Addr string `json:"addr"`
			} `json:"nodes"`
		} `json:"state_redis"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if !body.State.SeparateCache || len(body.State.Nodes) != 1 || body.State.Nodes[0].Addr != state.Addr {
		t.Errorf("stats: %s", r.body)
	}
}

// TestCacheEvictionNeverTouchesL1: with REDIS_CACHE_URL the caches live on an instance
// under allkeys-lru with a tiny maxmemory. Reading a catalog bigger than that memory
// evicts cache entries, every read still answers 200 (from PostgreSQL on a miss), and no
// L1 or L3 key is lost: the state instance evicts nothing, every variant keeps
// available + held = on_hand with no drift (before any reconcile), its held units equal
// the open checkouts' units, and every shopper's session and cart are still there.
func TestCacheEvictionNeverTouchesL1(t *testing.T) {
	state, cache := testenv.StartRedis(t), testenv.StartRedis(t)
	ctx := context.Background()
	cdirect, sdirect := cache.Client(), state.Client()
	used := func(c interface {
		Info(context.Context, ...string) *redis.StringCmd
	}, field string) int64 {
		info := c.Info(ctx, "memory", "stats").Val()
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		t.Fatalf("no %s in INFO", field)
		return 0
	}
	// Room for a few dozen cached products, not for the whole catalog.
	limit := used(cdirect, "used_memory") + 256<<10
	if err := cdirect.ConfigSet(ctx, "maxmemory", strconv.FormatInt(limit, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := cdirect.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	if err := sdirect.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	cfg := stateRedisConfig(t, state, "test")
	cfg.RedisCacheURL = "redis://" + cache.Addr + "/0"
	a, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	e := &chaosEnv{t: t, a: a, h: a.Handler()}
	e.pool = a.Pool

	const products, stock = 120, 50
	desc := strings.Repeat("A long product description that makes each cache entry big. ", 64) // ~4 KiB
	type item struct{ product, variant string }
	items := make([]item, products)
	for i := range items {
		slug := fmt.Sprintf("evict-%d", i)
		r := e.send("POST", "/admin/products", fmt.Sprintf(`{"slug":%q,"name":"Evictable","description":%q,
			"category":"shoes","status":"active","attributes":{},"variants":[{"sku":%q,"name":"42",
			"price":{"amount":1000,"currency":"USD"},"attributes":{},"stock":%d}]}`, slug, desc, "SKU-"+slug, stock), admin())
		if r.status != http.StatusCreated {
			t.Fatalf("create product: %d %s", r.status, r.body)
		}
		items[i] = item{field(r, "id"), ""}
		var p struct {
			Variants []struct {
				ID string `json:"id"`
			} `json:"variants"`
		}
		if err := json.Unmarshal(r.body, &p); err != nil || len(p.Variants) != 1 {
			t.Fatalf("create product: %s", r.body)
		}
		items[i].variant = p.Variants[0].ID
	}
	// Shoppers hold units of every fourth variant (L1 holds, L3 sessions and carts).
	held := map[string]int64{}
	var shops []*shop
	for i := 0; i < products; i += 4 {
		s := &shop{e: e}
		if r := s.newSession(); r.status != http.StatusCreated {
			t.Fatalf("session: %d %s", r.status, r.body)
		}
		if r := s.add(items[i].variant, 2); r.status >= 300 {
			t.Fatalf("cart: %d %s", r.status, r.body)
		}
		if r := s.startCheckout(); r.status != http.StatusCreated {
			t.Fatalf("checkout: %d %s", r.status, r.body)
		}
		held[items[i].variant] = 2
		shops = append(shops, s)
	}
	// Browse the whole catalog a few times: more than the cache can hold.
	for round := 0; round < 3; round++ {
		for _, it := range items {
			if r := e.send("GET", "/v1/products/"+it.product, "", nil); r.status != http.StatusOK {
				t.Fatalf("product read under eviction: %d %s", r.status, r.body)
			}
		}
	}
	if n := used(cdirect, "evicted_keys"); n == 0 {
		t.Fatalf("the cache instance evicted nothing (maxmemory %d): the test did not create pressure", limit)
	} else {
		t.Logf("cache instance evicted %d keys", n)
	}
	if n := used(sdirect, "evicted_keys"); n != 0 {
		t.Errorf("the state instance evicted %d keys", n)
	}
	// The invariant, read straight from Redis (no reconcile first).
	for _, it := range items {
		r := e.send("GET", "/admin/inventory/"+it.variant, "", admin())
		var l invLevels
		if err := json.Unmarshal(r.body, &l); err != nil || r.status != http.StatusOK {
			t.Fatalf("inventory: %d %s", r.status, r.body)
		}
		if l.Drift != 0 || l.Available+l.Held != l.OnHand || l.OnHand != stock || l.Held != held[it.variant] {
			t.Errorf("variant %s after cache eviction: %+v, want on_hand %d, held %d, no drift", it.variant, l, stock, held[it.variant])
		}
	}
	for _, s := range shops {
		if r := e.send("GET", "/v1/cart", "", sess(s.sid)); r.status != http.StatusOK {
			t.Errorf("cart of a shopper after cache eviction: %d %s", r.status, r.body)
		}
		if r := e.send("GET", "/v1/checkouts/"+s.checkout, "", sess(s.sid)); r.status != http.StatusOK {
			t.Errorf("checkout of a shopper after cache eviction: %d %s", r.status, r.body)
		}
	}
}
