package app

import (
	"commerce/internal/inventory"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"commerce/internal/platform/httpx"
)

// Config is the whole configuration of the service. cmd/commerce fills it from the
// environment (the only place that reads it); tests build it directly.
type Config struct {
	Env      string `env:"APP_ENV" envDefault:"production"`
	HTTPAddr string `env:"HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`

	DatabaseURL    string        `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/commerce?sslmode=disable"`
	PGMaxConns     int32         `env:"PG_MAX_CONNS" envDefault:"20"`
	PGTimeout      time.Duration `env:"PG_TIMEOUT" envDefault:"3s"`
	MigrateOnStart bool          `env:"MIGRATE_ON_START" envDefault:"true"`
	SeedDemo       bool          `env:"SEED_DEMO" envDefault:"false"`

	RedisURL      string        `env:"REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	RedisAddrs    []string      `env:"REDIS_ADDRS" envSeparator:","`
	RedisPassword string        `env:"REDIS_PASSWORD"`
	RedisPrefix   string        `env:"REDIS_PREFIX"`
	RedisPoolSize int           `env:"REDIS_POOL_SIZE" envDefault:"64"`
	RedisTimeout  time.Duration `env:"REDIS_TIMEOUT" envDefault:"500ms"`
	// Sentinel: the sentinels' addresses and the monitored master's name (REDIS_URL may
	// say the same with ?sentinel=NAME).
	RedisSentinelAddrs    []string `env:"REDIS_SENTINEL_ADDRS" envSeparator:","`
	RedisMasterName       string   `env:"REDIS_MASTER_NAME"`
	RedisSentinelPassword string   `env:"REDIS_SENTINEL_PASSWORD"`
	// REDIS_REPLICA_ACKS > 0: every write to the L1/L3 instance waits (WAIT) until that
	// many replicas have it, so a Sentinel failover never loses an acknowledged write.
	RedisReplicaAcks int `env:"REDIS_REPLICA_ACKS" envDefault:"0"`
	// L2 on its own instance: REDIS_CACHE_URL (a node, or Sentinel with ?sentinel=NAME) or
	// REDIS_CACHE_ADDRS (Cluster). Unset, L2 shares the L1/L3 instance.
	RedisCacheURL   string   `env:"REDIS_CACHE_URL"`
	RedisCacheAddrs []string `env:"REDIS_CACHE_ADDRS" envSeparator:","`

	AdminToken      string        `env:"ADMIN_TOKEN"`
	JWTSecret       string        `env:"AUTH_JWT_SECRET"`
	AuthMaxTokenTTL time.Duration `env:"AUTH_MAX_TOKEN_TTL" envDefault:"24h"`
	WebhookSecret   string        `env:"PAYMENT_WEBHOOK_SECRET"`
	// TrustedProxies are the CIDRs of the proxies in front of the service; the client
	// address is the right-most X-Forwarded-For hop outside them. Empty: the peer address.
	TrustedProxies []string `env:"TRUSTED_PROXIES" envSeparator:","`
	// TrustProxyHeaders is the retired boolean; setting it is a configuration error that
	// points to TRUSTED_PROXIES.
	TrustProxyHeaders bool `env:"TRUST_PROXY_HEADERS"`

	// PaymentProvider: stripe, or test (the built-in provider: takes no money). Required
	// outside development, where it defaults to test.
	PaymentProvider     string `env:"PAYMENT_PROVIDER"`
	StripeSecretKey     string `env:"STRIPE_SECRET_KEY"`
	StripeWebhookSecret string `env:"STRIPE_WEBHOOK_SECRET"`
	// StripeAPIBase overrides Stripe's API address (stripe-mock in tests).
	StripeAPIBase string `env:"STRIPE_API_BASE"`

	Currency      string        `env:"SHOP_CURRENCY" envDefault:"USD"`
	HoldTTL       time.Duration `env:"HOLD_TTL" envDefault:"15m"`
	CheckoutTTL   time.Duration `env:"CHECKOUT_TTL" envDefault:"15m"`
	SweepInterval time.Duration `env:"SWEEP_INTERVAL" envDefault:"30s"`
	// CommitRecordRetention is how long the record of each stock commit attempt
	// (inventory_commits, the fence between a sale and its recovery) is kept; the
	// commits_prune job deletes older ones every hour.
	CommitRecordRetention time.Duration `env:"COMMIT_RECORD_RETENTION" envDefault:"168h"`
	SessionTTL            time.Duration `env:"SESSION_TTL" envDefault:"168h"`
	CustomerCartTTL       time.Duration `env:"CUSTOMER_CART_TTL" envDefault:"720h"`
	ProductTTL            time.Duration `env:"PRODUCT_TTL" envDefault:"6h"`
	DiscountTTL           time.Duration `env:"DISCOUNT_TTL" envDefault:"4h"`
	IdempotencyTTL        time.Duration `env:"IDEMPOTENCY_TTL" envDefault:"24h"`
	// Tracing is on when an OTLP endpoint is set (the other OTEL_* variables are read by
	// the OpenTelemetry SDK itself) and OTEL_SDK_DISABLED is not true.
	OTLPEndpoint       string `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	OTLPTracesEndpoint string `env:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"`
	OTelSDKDisabled    bool   `env:"OTEL_SDK_DISABLED"`
	// EventsMaxLen is the retention of the events:orders stream: each XADD trims it to
	// about this many entries (docs/events.md).
	EventsMaxLen int64 `env:"EVENTS_MAXLEN" envDefault:"100000"`
	// Bounds of the Idempotency-Key records: the largest response kept for replay, and
	// the most live keys one caller holds per route.
	IdempotencyMaxResponseBytes int `env:"IDEMPOTENCY_MAX_RESPONSE_BYTES" envDefault:"65536"`
	IdempotencyMaxKeys          int `env:"IDEMPOTENCY_MAX_KEYS" envDefault:"1000"`
	SessionsPerMinute           int `env:"SESSIONS_PER_MINUTE" envDefault:"60"`
	RateLimitPerSec             int `env:"RATE_LIMIT_PER_SECOND" envDefault:"50"`
	// RateLimitExact limits sessions and customers with the Redis script on every request
	// (exact across replicas, one Redis call a request). Off, they are limited in process
	// and their counts shared across replicas once a second: no Redis call a request,
	// and a caller can overrun by one second's allowance per replica before all refuse.
	RateLimitExact bool `env:"RATE_LIMIT_EXACT" envDefault:"false"`
	// RateLimitPerAddress is the ceiling of all requests from one client address per
	// second (burst twice that), whatever sessions or tokens they carry; 0 turns it off.
	RateLimitPerAddress int `env:"RATE_LIMIT_PER_ADDRESS" envDefault:"200"`
	// AdminFailuresPerMinute is how many failed admin authentications one address may
	// make per minute (then 429); 0 turns the limit off.
	AdminFailuresPerMinute int `env:"ADMIN_FAILURES_PER_MINUTE" envDefault:"10"`

	// The in-process near-cache of products: entries live NEAR_CACHE_TTL after they were
	// read (0 turns it off), at most NEAR_CACHE_MAX_ENTRIES products and
	// NEAR_CACHE_MAX_BYTES of encoded bodies per replica.
	NearCacheTTL        time.Duration `env:"NEAR_CACHE_TTL" envDefault:"1s"`
	NearCacheMaxEntries int           `env:"NEAR_CACHE_MAX_ENTRIES" envDefault:"20000"`
	NearCacheMaxBytes   int           `env:"NEAR_CACHE_MAX_BYTES" envDefault:"67108864"`

	WarmProductsCron  string        `env:"WARM_PRODUCTS_CRON" envDefault:"0 */6 * * *"`
	WarmDiscountsCron string        `env:"WARM_DISCOUNTS_CRON" envDefault:"0 */2 * * *"`
	ReconcileCron     string        `env:"RECONCILE_CRON" envDefault:"*/15 * * * *"`
	OutboxInterval    time.Duration `env:"OUTBOX_INTERVAL" envDefault:"2s"`
	JobTimeout        time.Duration `env:"JOB_TIMEOUT" envDefault:"5m"`
	// JobLease is a job run's lease, renewed while it runs: the longest a replica that
	// died mid-run delays the job (0: the default, 5 s).
	JobLease time.Duration `env:"JOB_LEASE" envDefault:"5s"`

	// inventoryHooks stop the inventory between steps (tests only; never from the
	// environment).
	inventoryHooks  inventory.Hooks
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"15s"`
	RequestTimeout  time.Duration `env:"REQUEST_TIMEOUT" envDefault:"10s"`
}

// Development reports whether the service runs with developer defaults.
func (c Config) Development() bool {
	return c.Env == "development" || c.Env == "dev" || c.Env == "test"
}

// Payment providers.
const (
	ProviderStripe = "stripe"
	ProviderTest   = "test"
)

// Provider is the payment provider in effect: PAYMENT_PROVIDER, or test in development.
func (c Config) Provider() string {
	if c.PaymentProvider == "" && c.Development() {
		return ProviderTest
	}
	return c.PaymentProvider
}

// Validate checks the configuration and returns every problem at once. Production
// refuses to start without ADMIN_TOKEN, AUTH_JWT_SECRET and PAYMENT_PROVIDER (and, for
// stripe, both Stripe secrets; for test, PAYMENT_WEBHOOK_SECRET), so it never gives
// goods away for a test token by accident.
func (c Config) Validate() error {
	var errs []error
	if !c.Development() {
		if len(c.AdminToken) < 16 {
			errs = append(errs, errors.New("ADMIN_TOKEN must be set (at least 16 characters) outside development"))
		}
		if len(c.JWTSecret) < 32 {
			errs = append(errs, errors.New("AUTH_JWT_SECRET must be set (at least 32 characters) outside development"))
		}
		if c.PaymentProvider == "" {
			errs = append(errs, errors.New("PAYMENT_PROVIDER must be set outside development: stripe to take payments, "+
				"or test to run without taking money"))
		}
		if c.PaymentProvider == ProviderTest && c.WebhookSecret == "" {
			errs = append(errs, errors.New("PAYMENT_WEBHOOK_SECRET must be set outside development with PAYMENT_PROVIDER=test"))
		}
	}
	switch c.Provider() {
	case "", ProviderTest:
	case ProviderStripe:
		if c.StripeSecretKey == "" {
			errs = append(errs, errors.New("STRIPE_SECRET_KEY must be set with PAYMENT_PROVIDER=stripe"))
		}
		if c.StripeWebhookSecret == "" {
			errs = append(errs, errors.New("STRIPE_WEBHOOK_SECRET must be set with PAYMENT_PROVIDER=stripe"))
		}
		if c.StripeAPIBase != "" {
			if u, err := url.Parse(c.StripeAPIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, errors.New("STRIPE_API_BASE must be an http(s) URL"))
			}
		}
	default:
		errs = append(errs, fmt.Errorf("PAYMENT_PROVIDER %q must be stripe or test", c.PaymentProvider))
	}
	if c.AdminToken == "" || c.JWTSecret == "" {
		errs = append(errs, errors.New("ADMIN_TOKEN and AUTH_JWT_SECRET are required (make run generates development values)"))
	}
	if len(c.Currency) != 3 || strings.ToUpper(c.Currency) != c.Currency {
		errs = append(errs, fmt.Errorf("SHOP_CURRENCY %q must be an ISO 4217 code like USD", c.Currency))
	}
	if c.EventsMaxLen != 0 && c.EventsMaxLen < 1000 { // 0: the default
		errs = append(errs, errors.New("EVENTS_MAXLEN must be at least 1000"))
	}
	if strings.ContainsAny(c.RedisPrefix, "{}") {
		errs = append(errs, errors.New("REDIS_PREFIX must not contain braces (they are hash tags)"))
	}
	for name, d := range map[string]time.Duration{"HOLD_TTL": c.HoldTTL, "CHECKOUT_TTL": c.CheckoutTTL,
		"SWEEP_INTERVAL": c.SweepInterval, "SESSION_TTL": c.SessionTTL, "CUSTOMER_CART_TTL": c.CustomerCartTTL,
		"PRODUCT_TTL": c.ProductTTL, "DISCOUNT_TTL": c.DiscountTTL, "IDEMPOTENCY_TTL": c.IdempotencyTTL,
		"PG_TIMEOUT": c.PGTimeout, "REDIS_TIMEOUT": c.RedisTimeout, "OUTBOX_INTERVAL": c.OutboxInterval,
		"JOB_TIMEOUT": c.JobTimeout, "SHUTDOWN_TIMEOUT": c.ShutdownTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be a positive duration", name))
		}
	}
	if c.IdempotencyMaxResponseBytes < 0 || c.IdempotencyMaxKeys < 0 {
		errs = append(errs, errors.New("IDEMPOTENCY_MAX_RESPONSE_BYTES and IDEMPOTENCY_MAX_KEYS must not be negative (0: the default)"))
	}
	if c.NearCacheTTL < 0 || c.NearCacheTTL > 10*time.Second {
		errs = append(errs, errors.New("NEAR_CACHE_TTL must be between 0 (off) and 10s (it bounds how stale a product read may be)"))
	}
	if c.NearCacheMaxEntries < 0 || c.NearCacheMaxBytes < 0 {
		errs = append(errs, errors.New("NEAR_CACHE_MAX_ENTRIES and NEAR_CACHE_MAX_BYTES must not be negative"))
	}
	if c.JobLease < 0 {
		errs = append(errs, errors.New("JOB_LEASE must not be negative (0: the default)"))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, errors.New("REQUEST_TIMEOUT must not be negative (0: no deadline)"))
	}
	if c.CommitRecordRetention < time.Hour {
		errs = append(errs, errors.New("COMMIT_RECORD_RETENTION must be at least 1h (a record fences its sale against recovery)"))
	}
	if c.CheckoutTTL < c.HoldTTL {
		errs = append(errs, errors.New("CHECKOUT_TTL must be at least HOLD_TTL"))
	}
	if c.RateLimitPerSec < 0 || c.RateLimitPerSec > 1_000_000 {
		errs = append(errs, errors.New("RATE_LIMIT_PER_SECOND must be between 0 (off) and 1000000"))
	}
	if len(c.RedisSentinelAddrs) > 0 && c.RedisMasterName == "" {
		errs = append(errs, errors.New("REDIS_MASTER_NAME is required with REDIS_SENTINEL_ADDRS"))
	}
	if c.RedisMasterName != "" && len(c.RedisSentinelAddrs) == 0 {
		errs = append(errs, errors.New("REDIS_MASTER_NAME needs REDIS_SENTINEL_ADDRS"))
	}
	if len(c.RedisSentinelAddrs) > 0 && len(c.RedisAddrs) > 0 {
		errs = append(errs, errors.New("set REDIS_SENTINEL_ADDRS or REDIS_ADDRS (Cluster), not both"))
	}
	if c.RedisReplicaAcks < 0 || c.RedisReplicaAcks > 16 {
		errs = append(errs, errors.New("REDIS_REPLICA_ACKS must be between 0 (off) and 16"))
	}
	if c.RedisReplicaAcks > 0 && len(c.RedisAddrs) > 0 {
		errs = append(errs, errors.New("REDIS_REPLICA_ACKS needs a single Redis or Sentinel, not Cluster (REDIS_ADDRS)"))
	}
	if c.RedisCacheURL != "" && len(c.RedisCacheAddrs) > 0 {
		errs = append(errs, errors.New("set REDIS_CACHE_URL or REDIS_CACHE_ADDRS (Cluster), not both"))
	}
	if _, err := redisOptions(c, c.stateTarget()); err != nil {
		errs = append(errs, fmt.Errorf("REDIS_URL: %w", err))
	}
	if t, ok := c.cacheTarget(); ok {
		if _, err := redisOptions(c, t); err != nil {
			errs = append(errs, fmt.Errorf("REDIS_CACHE: %w", err))
		}
	}
	if c.RateLimitPerAddress < 0 || c.RateLimitPerAddress > 1_000_000 {
		errs = append(errs, errors.New("RATE_LIMIT_PER_ADDRESS must be between 0 (off) and 1000000"))
	}
	if c.AdminFailuresPerMinute < 0 {
		errs = append(errs, errors.New("ADMIN_FAILURES_PER_MINUTE must not be negative (0: off)"))
	}
	if c.AuthMaxTokenTTL < 0 {
		errs = append(errs, errors.New("AUTH_MAX_TOKEN_TTL must not be negative (0: the 24h default)"))
	}
	if c.TrustProxyHeaders {
		errs = append(errs, errors.New("TRUST_PROXY_HEADERS is replaced by TRUSTED_PROXIES, a list of the proxies' CIDRs"))
	}
	if _, err := httpx.ParseTrustedProxies(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.PGMaxConns < 1 || c.RedisPoolSize < 1 {
		errs = append(errs, errors.New("PG_MAX_CONNS and REDIS_POOL_SIZE must be positive"))
	}
	return errors.Join(errs...)
}

// LogValue prints the configuration with secrets masked (slog.LogValuer).
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("env", c.Env), slog.String("http_addr", c.HTTPAddr), slog.Bool("tracing", c.TracingEnabled()),
		slog.Int64("events_maxlen", c.EventsMaxLen),
		slog.String("database_url", maskURL(c.DatabaseURL)), slog.String("redis_url", maskURL(c.RedisURL)),
		slog.Any("redis_addrs", c.RedisAddrs), slog.String("redis_password", mask(c.RedisPassword)),
		slog.String("redis_prefix", c.RedisPrefix), slog.Any("redis_sentinel_addrs", c.RedisSentinelAddrs),
		slog.String("redis_master_name", c.RedisMasterName), slog.Int("redis_replica_acks", c.RedisReplicaAcks),
		slog.String("redis_sentinel_password", mask(c.RedisSentinelPassword)),
		slog.String("redis_cache_url", maskURL(c.RedisCacheURL)), slog.Any("redis_cache_addrs", c.RedisCacheAddrs),
		slog.String("admin_token", mask(c.AdminToken)), slog.String("auth_jwt_secret", mask(c.JWTSecret)),
		slog.String("payment_webhook_secret", mask(c.WebhookSecret)),
		slog.String("payment_provider", c.Provider()), slog.String("stripe_secret_key", mask(c.StripeSecretKey)),
		slog.String("stripe_webhook_secret", mask(c.StripeWebhookSecret)), slog.String("stripe_api_base", c.StripeAPIBase),
		slog.Any("trusted_proxies", c.TrustedProxies), slog.Int("rate_limit_per_address", c.RateLimitPerAddress),
		slog.Bool("migrate_on_start", c.MigrateOnStart), slog.Bool("seed_demo", c.SeedDemo),
		slog.String("currency", c.Currency), slog.Duration("hold_ttl", c.HoldTTL),
		slog.Duration("checkout_ttl", c.CheckoutTTL), slog.Duration("sweep_interval", c.SweepInterval),
		slog.Duration("product_ttl", c.ProductTTL), slog.Duration("near_cache_ttl", c.NearCacheTTL), slog.String("warm_products_cron", c.WarmProductsCron),
		slog.String("warm_discounts_cron", c.WarmDiscountsCron), slog.String("reconcile_cron", c.ReconcileCron),
	)
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return "****"
}

func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "****"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
}

// TracingEnabled reports whether spans are exported (an OTLP endpoint is configured).
func (c Config) TracingEnabled() bool {
	return !c.OTelSDKDisabled && (c.OTLPEndpoint != "" || c.OTLPTracesEndpoint != "")
}
