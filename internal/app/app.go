// Package app wires the service together: configuration, PostgreSQL, Redis, every domain
// service, the HTTP router, background jobs, and their orderly shutdown. cmd/commerce and
// the end-to-end tests both build an App.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"commerce/internal/inventory"
	"commerce/internal/platform/auth"
	"commerce/internal/platform/cachestats"
	"commerce/internal/platform/db"
	"commerce/internal/platform/httpx"
	"commerce/internal/platform/ratelimit"
	"commerce/internal/platform/rkey"
	"commerce/internal/platform/tracing"
)

// App is one running replica of the service.
type App struct {
	cfg   Config
	log   *slog.Logger
	Pool  *pgxpool.Pool
	Redis redis.UniversalClient
	// Cache is the L2 client (product and discount caches). It is its own client when
	// REDIS_CACHE_URL or REDIS_CACHE_ADDRS is set, else the same client as Redis.
	Cache redis.UniversalClient
	Space rkey.Space
	Reg   *prometheus.Registry
	Stats *cachestats.Registry
	tp    trace.TracerProvider // nil: tracing off
	Echo  *echo.Echo

	Sessions *auth.Sessions
	Tokens   *auth.Tokens
	routes   *httpx.Routes
	// addrLimit is the per-address ceiling; its counts are shared across replicas by a
	// background loop.
	addrLimit *ratelimit.Address
	// callerLimit is the per-caller limit of /v1; windowed, its counts are shared the same way.
	callerLimit *ratelimit.Limiter

	domains domains
	closers []func(context.Context) error
}

// New connects to PostgreSQL and Redis, applies migrations when configured, seeds the demo
// catalog when asked, and builds every service and route. It does not serve yet.
func New(ctx context.Context, cfg Config, log *slog.Logger, opts ...Option) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	a := &App{cfg: cfg, log: log, Space: rkey.Space(cfg.RedisPrefix), Reg: prometheus.NewRegistry()}
	a.Reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.Stats = cachestats.New(a.Reg)

	// Tracing: only when asked (an OTLP endpoint, or a provider from the caller); off,
	// nothing of it is installed.
	a.tp = o.tracerProvider
	if a.tp == nil && cfg.TracingEnabled() {
		tp, err := tracing.NewOTLP(ctx, "commerce")
		if err != nil {
			return nil, err
		}
		a.tp = tp
		a.closers = append(a.closers, tp.Shutdown)
	}
	var poolOpts []func(*pgxpool.Config)
	if a.tp != nil {
		tracing.SetGlobals(a.tp)
		log = slog.New(tracing.LogHandler{Handler: log.Handler()})
		a.log = log
		tracer := tracing.PgxTracer(a.tp)
		poolOpts = append(poolOpts, func(c *pgxpool.Config) { c.ConnConfig.Tracer = tracer })
	}

	pool, err := db.OpenWithTimeout(ctx, cfg.DatabaseURL, cfg.PGMaxConns, cfg.PGTimeout, poolOpts...)
	if err != nil {
		a.Close(ctx)
		return nil, err
	}
	a.Pool = pool
	a.closers = append(a.closers, func(context.Context) error { pool.Close(); return nil })
	if cfg.MigrateOnStart {
		if err := db.Migrate(pool, "up"); err != nil {
			a.Close(ctx)
			return nil, err
		}
	}
	rdb, err := OpenRedis(cfg)
	if err != nil {
		a.Close(ctx)
		return nil, err
	}
	a.Redis = rdb
	a.closers = append(a.closers, func(context.Context) error { return rdb.Close() })
	a.Cache = rdb
	if cdb, err := OpenCacheRedis(cfg); err != nil {
		a.Close(ctx)
		return nil, err
	} else if cdb != nil {
		a.Cache = cdb
		a.closers = append(a.closers, func(context.Context) error { return cdb.Close() })
	}
	if a.tp != nil {
		for _, c := range uniqueClients(a.Redis, a.Cache) {
			if err := tracing.InstrumentRedis(c, a.tp); err != nil {
				a.Close(ctx)
				return nil, err
			}
		}
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		log.Warn("redis is not reachable at start; serving degraded until it is", slog.String("error", err.Error()))
	} else if err := checkStateRedis(ctx, cfg, rdb, log); err != nil {
		a.Close(ctx)
		return nil, err
	}
	if a.Cache != rdb {
		if err := a.Cache.Ping(ctx).Err(); err != nil {
			log.Warn("the cache Redis is not reachable at start; catalog reads go to PostgreSQL until it is",
				slog.String("error", err.Error()))
		}
	}

	a.Tokens = auth.NewTokens(cfg.JWTSecret)
	if cfg.AuthMaxTokenTTL > 0 {
		a.Tokens.MaxTTL = cfg.AuthMaxTokenTTL
	}
	a.Sessions = auth.NewSessions(rdb, a.Space, cfg.SessionTTL, cfg.SessionsPerMinute)
	a.Sessions.SetSecret(cfg.JWTSecret)
	a.Sessions.SetRevocations(&auth.PGRevocations{Pool: a.Pool})

	a.Echo = a.newEcho()
	if err := a.wireDomains(ctx); err != nil {
		a.Close(ctx)
		return nil, err
	}
	return a, nil
}

func (a *App) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = httpx.ErrorHandler(a.log)
	e.JSONSerializer = httpx.JSONSerializer{}
	trusted, _ := httpx.ParseTrustedProxies(a.cfg.TrustedProxies) // checked by Validate
	e.IPExtractor = httpx.ClientIP(trusted)
	a.routes = httpx.NewRoutes(e)
	a.addrLimit = ratelimit.NewAddress(float64(a.cfg.RateLimitPerAddress), 2*a.cfg.RateLimitPerAddress, a.Reg).
		Shared(a.Redis, a.Space, float64(a.cfg.RateLimitPerAddress), 2*a.cfg.RateLimitPerAddress)
	// Order: the per-address ceiling runs before anything that costs Redis calls or
	// cryptography (sessions, tokens, the admin token), on every path.
	if a.tp != nil {
		e.Use(tracing.Echo(a.tp, "commerce")...)
	}
	e.Pre(httpx.HeadAsGet())
	e.Use(httpx.RestoreHead(), httpx.RequestIDMiddleware(), httpx.Recover(), httpx.AccessMiddleware(a.log, httpx.NewHTTPMetrics(a.Reg), a.routes),
		httpx.SecurityHeaders(),
		a.addrLimit.Middleware(),
		a.routes.MethodNotAllowed(), exceptStreaming(httpx.BodyLimit()), exceptStreaming(httpx.Deadline(a.cfg.RequestTimeout)))
	registerOps(e, a.Pool, a.Redis, a.Reg)
	return e
}

// Option changes how New builds the App.
type Option func(*options)

type options struct {
	tracerProvider trace.TracerProvider
}

// WithTracerProvider traces with tp (tests use the SDK's in-memory exporter) instead of
// the OTLP exporter that OTEL_EXPORTER_OTLP_ENDPOINT turns on.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

func uniqueClients(cs ...redis.UniversalClient) []redis.UniversalClient {
	var out []redis.UniversalClient
	for _, c := range cs {
		if c != nil && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// streamingRoutes read large bodies as a stream and set their own body limit and
// deadline, so the service-wide ones do not apply to them.
var streamingRoutes = map[string]bool{inventory.BulkPath: true}

// exceptStreaming applies mw to every route but the streaming ones.
func exceptStreaming(mw echo.MiddlewareFunc) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		wrapped := mw(next)
		return func(c echo.Context) error {
			if streamingRoutes[c.Path()] {
				return next(c)
			}
			return wrapped(c)
		}
	}
}

// Handler returns the HTTP handler of the service (for httptest and benchmarks).
func (a *App) Handler() http.Handler { return a.Echo }

// Serve serves HTTP on l and runs the background jobs until ctx is cancelled, then shuts
// down in order: stop accepting requests (draining within ShutdownTimeout), stop the jobs
// and wait for them, flush write-behind queues, close Redis and the pool.
func (a *App) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: a.Echo, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	if err := a.startBackground(ctx); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	a.log.Info("serving", slog.String("addr", l.Addr().String()))
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.log.Error("http shutdown", slog.String("error", err.Error()))
	}
	a.Close(sctx)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	return nil
}

// Close stops background work and releases connections, last opened first.
func (a *App) Close(ctx context.Context) {
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](ctx); err != nil {
			a.log.Error("shutdown step failed", slog.String("error", err.Error()))
		}
	}
	a.closers = nil
}
