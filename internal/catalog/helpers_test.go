package catalog

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/cachestats"
	"commerce/internal/platform/httpx"
	"commerce/internal/platform/money"
	"commerce/internal/platform/rkey"
	"commerce/internal/platform/testenv"

	"commerce/internal/platform/spectest"
)

// countingSource counts the loads the cache asks of the store.
type countingSource struct {
	*Store
	gets, products, ofVariants, lists atomic.Int64
}

func (s *countingSource) Get(ctx context.Context, id uuid.UUID) (Product, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, id)
}

func (s *countingSource) Products(ctx context.Context, ids []uuid.UUID) ([]Product, error) {
	s.products.Add(1)
	return s.Store.Products(ctx, ids)
}

func (s *countingSource) ProductsOfVariants(ctx context.Context, ids []uuid.UUID) ([]Product, error) {
	s.ofVariants.Add(1)
	return s.Store.ProductsOfVariants(ctx, ids)
}

func (s *countingSource) ListActive(ctx context.Context, q ListQuery) (Page, error) {
	s.lists.Add(1)
	return s.Store.ListActive(ctx, q)
}

// queryCounter is a pgx tracer counting every statement sent to PostgreSQL.
type queryCounter struct{ n atomic.Int64 }

func (q *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	q.n.Add(1)
	return ctx
}

func (q *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// tracedPool opens a second pool on dsn whose statements are counted.
func tracedPool(t testing.TB, dsn string) (*pgxpool.Pool, *queryCounter) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	qc := &queryCounter{}
	cfg.ConnConfig.Tracer = qc
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, qc
}

// instance is one replica's catalog: its own store, cache, service and router.
type instance struct {
	store *Store
	src   *countingSource
	cache *Cache
	svc   *Service
	stats *cachestats.Registry
	e     *echo.Echo
}

func newInstance(t testing.TB, pool *pgxpool.Pool, rdb redis.UniversalClient, space rkey.Space, opts ...CacheOption) *instance {
	t.Helper()
	in := &instance{store: NewStore(pool, "USD"), stats: cachestats.New(nil)}
	in.src = &countingSource{Store: in.store}
	in.cache = NewCache(in.src, rdb, space, defaultTestTTL, in.stats, opts...)
	in.svc = NewService(in.store, in.cache)
	in.e = echo.New()
	in.e.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
	in.e.Use(httpx.RequestIDMiddleware(), httpx.BodyLimit())
	NewHandler(in.svc).Register(in.e.Group("/v1"), in.e.Group("/admin"))
	return in
}

const defaultTestTTL = 6 * time.Hour

// env is one test's PostgreSQL database and Redis key space with one instance on them.
type env struct {
	*instance
	pool  *pgxpool.Pool
	dsn   string
	rdb   redis.UniversalClient
	space rkey.Space
}

func newEnv(t testing.TB) *env {
	t.Helper()
	pool, dsn := testenv.DB(t)
	rdb, space := testenv.Redis(t)
	return &env{instance: newInstance(t, pool, rdb, space), pool: pool, dsn: dsn, rdb: rdb, space: space}
}

func (in *instance) do(t testing.TB, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	var req *http.Request
	if body != "" {
		req = httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	rec := httptest.NewRecorder()
	spectest.Handler(t, in.e).ServeHTTP(rec, req) // checked against api/openapi.yaml
	return rec
}

func (in *instance) stat(cache string) cachestats.Stat { return statOf(in.stats, cache) }

func statOf(r *cachestats.Registry, cache string) cachestats.Stat {
	for _, s := range r.Snapshot() {
		if s.Cache == cache {
			return s
		}
	}
	return cachestats.Stat{}
}

var seq atomic.Int64

// sampleProduct returns a valid NewProduct with n variants and unique slug and SKUs.
func sampleProduct(n int) NewProduct {
	k := seq.Add(1)
	np := NewProduct{Slug: fmt.Sprintf("p-%d-%s", k, uuid.NewString()[:8]), Name: fmt.Sprintf("Product %d", k),
		Description: "a test product", Category: "shoes", Status: StatusActive,
		Attributes: map[string]any{"brand": "Acme"}}
	for i := 0; i < n; i++ {
		np.Variants = append(np.Variants, NewVariant{SKU: fmt.Sprintf("SKU-%d-%d-%s", k, i, uuid.NewString()[:6]),
			Name: fmt.Sprintf("size %d", 40+i), Price: money.New(int64(1000+i), "USD"),
			Attributes: map[string]any{"size": 40 + i}, Stock: int64(10 * (i + 1))})
	}
	return np
}

func mustCreate(t testing.TB, svc *Service, np NewProduct) Product {
	t.Helper()
	p, err := svc.Create(context.Background(), np)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return p
}

func ptr[T any](v T) *T { return &v }
