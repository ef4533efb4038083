package app

import (
	"fmt"

	"github.com/redis/go-redis/v9"
)

// OpenRedis returns a standalone or Cluster client: several REDIS_ADDRS mean Cluster
// (IsClusterMode is forced so one seed address also works), otherwise REDIS_URL
// (redis:// or rediss:// for TLS). REDIS_PASSWORD overrides the URL's password.
func OpenRedis(c Config) (redis.UniversalClient, error) {
	opts := &redis.UniversalOptions{PoolSize: c.RedisPoolSize, ReadTimeout: c.RedisTimeout,
		WriteTimeout: c.RedisTimeout, DialTimeout: 2 * c.RedisTimeout, PoolTimeout: 2 * c.RedisTimeout,
		// A lost reply must not re-send a write script (MaxRetries -1); idempotent reads
		// retry explicitly. Context deadlines cut calls (request deadline, breaker), and
		// one dial attempt keeps a Redis outage a fast 503 rather than a slow one.
		MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true}
	if len(c.RedisAddrs) > 0 {
		opts.Addrs = c.RedisAddrs
		opts.IsClusterMode = true
		opts.Password = c.RedisPassword
	} else {
		u, err := redis.ParseURL(c.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("parse REDIS_URL: %w", err)
		}
		opts.Addrs = []string{u.Addr}
		opts.Username, opts.Password, opts.DB, opts.TLSConfig = u.Username, u.Password, u.DB, u.TLSConfig
		if c.RedisPassword != "" {
			opts.Password = c.RedisPassword
		}
	}
	// The client connects lazily: a Redis that is down at start is a degraded service
	// (the degradation matrix of docs/architecture.md), not a fatal error; /readyz reports it.
	return redis.NewUniversalClient(opts), nil
}
