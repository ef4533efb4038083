package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/redischeck"
)

// redisTarget is where one Redis client connects: a single node, a Cluster (several
// seed addresses) or a Sentinel-monitored master (sentinel addresses plus the master's
// name).
type redisTarget struct {
	url              string   // redis:// or rediss://, optionally ?sentinel=NAME
	clusterAddrs     []string // Cluster seeds
	sentinelAddrs    []string // Sentinel addresses (with masterName)
	masterName       string
	password         string // overrides the URL's password when set
	sentinelPassword string
}

// stateTarget is the instance that holds L1 (inventory, checkouts, locks, idempotency)
// and L3 (carts, sessions, preferences): REDIS_SENTINEL_ADDRS, else REDIS_ADDRS, else
// REDIS_URL.
func (c Config) stateTarget() redisTarget {
	return redisTarget{url: c.RedisURL, clusterAddrs: c.RedisAddrs, sentinelAddrs: c.RedisSentinelAddrs,
		masterName: c.RedisMasterName, password: c.RedisPassword, sentinelPassword: c.RedisSentinelPassword}
}

// cacheTarget is the instance that holds L2 (product and discount caches):
// REDIS_CACHE_ADDRS (Cluster) or REDIS_CACHE_URL (a node, or Sentinel with ?sentinel=),
// and ok=false when neither is set (L2 shares the state instance).
func (c Config) cacheTarget() (redisTarget, bool) {
	if len(c.RedisCacheAddrs) == 0 && c.RedisCacheURL == "" {
		return redisTarget{}, false
	}
	return redisTarget{url: c.RedisCacheURL, clusterAddrs: c.RedisCacheAddrs,
		sentinelPassword: c.RedisSentinelPassword}, true
}

// SeparateCache reports whether L2 has its own Redis (REDIS_CACHE_URL or REDIS_CACHE_ADDRS).
func (c Config) SeparateCache() bool { _, ok := c.cacheTarget(); return ok }

// OpenRedis returns the client of the instance that holds L1 and L3 (see stateTarget).
// Sentinel: REDIS_SENTINEL_ADDRS with REDIS_MASTER_NAME, or a REDIS_URL such as
// redis://sentinel:26379/0?sentinel=mymaster (more sentinels with &addr=host:port); the
// client asks the sentinels for the master and follows +switch-master. Cluster: several
// REDIS_ADDRS (IsClusterMode is forced so one seed address also works). Otherwise
// REDIS_URL (redis://, or rediss:// for TLS). REDIS_PASSWORD overrides the URL's password
// (the data nodes' password); REDIS_SENTINEL_PASSWORD is the sentinels' own.
func OpenRedis(c Config) (redis.UniversalClient, error) {
	opts, err := redisOptions(c, c.stateTarget())
	if err != nil {
		return nil, fmt.Errorf("redis (REDIS_URL/REDIS_ADDRS/REDIS_SENTINEL_ADDRS): %w", err)
	}
	rdb := newRedisClient(opts)
	if c.RedisReplicaAcks > 0 {
		cl, ok := rdb.(*redis.Client)
		if !ok {
			return nil, errors.New("REDIS_REPLICA_ACKS needs a single Redis or Sentinel, not Cluster")
		}
		cl.AddHook(&replicaAck{client: cl, acks: c.RedisReplicaAcks, timeout: c.replicaAckTimeout()})
	}
	return rdb, nil
}

// replicaAckTimeout bounds WAIT: half the Redis timeout, so the round trip of the write
// and its WAIT stays within the read timeout.
func (c Config) replicaAckTimeout() time.Duration { return max(c.RedisTimeout/2, time.Millisecond) }

// OpenCacheRedis returns the client of the L2 cache instance, or nil when L2 shares the
// state instance (REDIS_CACHE_URL and REDIS_CACHE_ADDRS unset). It takes the same pool,
// timeout and retry settings as OpenRedis.
func OpenCacheRedis(c Config) (redis.UniversalClient, error) {
	t, ok := c.cacheTarget()
	if !ok {
		return nil, nil
	}
	opts, err := redisOptions(c, t)
	if err != nil {
		return nil, fmt.Errorf("redis cache (REDIS_CACHE_URL/REDIS_CACHE_ADDRS): %w", err)
	}
	return newRedisClient(opts), nil
}

// newRedisClient is the one place a Redis client is constructed (hooks such as tracing
// belong here so every client gets them).
func newRedisClient(opts *redis.UniversalOptions) redis.UniversalClient {
	// The client connects lazily: a Redis that is down at start is a degraded service
	// (the degradation matrix of docs/architecture.md), not a fatal error; /readyz reports it.
	return redis.NewUniversalClient(opts)
}

// redisOptions turns a target into client options with the service's pool, timeout and
// retry settings.
func redisOptions(c Config, t redisTarget) (*redis.UniversalOptions, error) {
	opts := &redis.UniversalOptions{PoolSize: c.RedisPoolSize, ReadTimeout: c.RedisTimeout,
		WriteTimeout: c.RedisTimeout, DialTimeout: 2 * c.RedisTimeout, PoolTimeout: 2 * c.RedisTimeout,
		// A lost reply must not re-send a write script (MaxRetries -1); idempotent reads
		// retry explicitly. Context deadlines cut calls (request deadline, breaker), and
		// one dial attempt keeps a Redis outage a fast 503 rather than a slow one.
		MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true}
	switch {
	case len(t.sentinelAddrs) > 0:
		if t.masterName == "" {
			return nil, fmt.Errorf("REDIS_MASTER_NAME is required with REDIS_SENTINEL_ADDRS")
		}
		if t.url != "" {
			// REDIS_URL still gives the data nodes' credentials, database and TLS.
			u, err := redis.ParseURL(stripSentinelParams(t.url))
			if err != nil {
				return nil, fmt.Errorf("parse REDIS_URL: %w", err)
			}
			opts.Username, opts.Password, opts.DB, opts.TLSConfig = u.Username, u.Password, u.DB, u.TLSConfig
		}
		opts.Addrs, opts.MasterName = t.sentinelAddrs, t.masterName
	case len(t.clusterAddrs) > 0:
		opts.Addrs = t.clusterAddrs
		opts.IsClusterMode = true
	default:
		raw := t.url
		sentinels, master, err := sentinelURL(raw)
		if err != nil {
			return nil, err
		}
		if master != "" {
			raw = stripSentinelParams(raw)
		}
		u, err := redis.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("parse URL: %w", err)
		}
		opts.Addrs = []string{u.Addr}
		opts.Username, opts.Password, opts.DB, opts.TLSConfig = u.Username, u.Password, u.DB, u.TLSConfig
		if master != "" {
			opts.Addrs, opts.MasterName = sentinels, master
		}
	}
	if t.password != "" {
		opts.Password = t.password
	}
	if opts.MasterName != "" {
		opts.SentinelPassword = t.sentinelPassword
		// The sentinels share the data nodes' TLS setting (rediss:// means both).
	}
	return opts, nil
}

// sentinelURL reads a Sentinel URL: redis://[user:pass@]host:port[/db]?sentinel=NAME
// [&addr=host2:port2...]. The host (and every addr) is a sentinel; NAME is the master.
// master is "" for an ordinary URL.
func sentinelURL(raw string) (sentinels []string, master string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("parse URL: %w", err)
	}
	q := u.Query()
	if !q.Has("sentinel") {
		return nil, "", nil
	}
	if master = q.Get("sentinel"); master == "" {
		return nil, "", fmt.Errorf("?sentinel= needs the master's name")
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "26379") // Sentinel's port
	}
	sentinels = []string{host}
	for _, a := range q["addr"] {
		if h, p, err := net.SplitHostPort(a); err != nil || h == "" || p == "" {
			return nil, "", fmt.Errorf("bad sentinel addr %q (want host:port)", a)
		}
		sentinels = append(sentinels, a)
	}
	return sentinels, master, nil
}

// stripSentinelParams removes sentinel= and addr= so the rest parses as an ordinary URL.
func stripSentinelParams(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Del("sentinel")
	q.Del("addr")
	u.RawQuery = q.Encode()
	return strings.TrimSuffix(u.String(), "?")
}

// checkStateRedis inspects the instance that holds L1 and L3 at start. An allkeys-*
// eviction policy is refused in production (it can evict holds and counters) and only
// warned about in development; no persistence is a loud warning naming what a restart
// costs. A check that cannot run (Redis refused INFO) is logged, never fatal.
func checkStateRedis(ctx context.Context, cfg Config, rdb redis.UniversalClient, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 4*cfg.RedisTimeout)
	defer cancel()
	rep, err := redischeck.Inspect(ctx, rdb)
	if err != nil {
		log.Warn("could not check the Redis that holds inventory and carts (eviction policy, persistence)",
			slog.String("error", err.Error()))
		return nil
	}
	refusals, warnings := rep.Problems()
	for _, w := range warnings {
		log.Warn("REDIS DURABILITY: "+w, slog.String("persistence", rep.Persistence))
	}
	if len(refusals) == 0 {
		log.Info("state redis checked", slog.String("maxmemory_policy", rep.Policy),
			slog.String("persistence", rep.Persistence), slog.Bool("separate_cache", cfg.SeparateCache()))
		return nil
	}
	if cfg.Development() {
		for _, r := range refusals {
			log.Warn("REDIS EVICTION (refused outside development): "+r, slog.String("maxmemory_policy", rep.Policy))
		}
		return nil
	}
	return errors.New("refusing to start: " + strings.Join(refusals, "; "))
}
