package inventory

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/rkey"
	"commerce/internal/platform/testenv"
)

// env is one test's PostgreSQL database and Redis key space.
type env struct {
	t     testing.TB
	pool  *pgxpool.Pool
	rdb   redis.UniversalClient
	space rkey.Space
}

// newEnv uses the shared test Redis (or Cluster, with REDIS_ADDRS) with a private space.
func newEnv(t testing.TB) *env {
	t.Helper()
	pool, _ := testenv.DB(t)
	rdb, space := testenv.Redis(t)
	return &env{t: t, pool: pool, rdb: rdb, space: space}
}

// newPrivateEnv uses a private redis-server that the test may flush or kill.
func newPrivateEnv(t testing.TB) (*env, *testenv.RedisServer) {
	t.Helper()
	pool, _ := testenv.DB(t)
	srv := testenv.StartRedis(t)
	// fail fast when the test kills the server
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, DialerRetries: 1, MaxRetries: -1, PoolSize: 64})
	t.Cleanup(func() { _ = c.Close() })
	return &env{t: t, pool: pool, rdb: c, space: "p:"}, srv
}

func (e *env) service(opts Options) *Service {
	e.t.Helper()
	s, err := NewService(e.pool, e.rdb, e.space, nil, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := s.LoadScripts(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// variants creates n variants (one product) with on_hand each, in one statement.
func (e *env) variants(n int, onHand int64) []uuid.UUID {
	e.t.Helper()
	ctx := context.Background()
	pid := uuid.New()
	if _, err := e.pool.Exec(ctx, `INSERT INTO products (id, slug, name, status) VALUES ($1, $2, 'Test product', 'active')`,
		pid, "p-"+pid.String()[:8]); err != nil {
		e.t.Fatal(err)
	}
	ids := make([]uuid.UUID, n)
	skus := make([]string, n)
	for i := range ids {
		ids[i] = uuid.New()
		skus[i] = "SKU-" + ids[i].String()
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO variants (id, product_id, sku, name, price_amount, currency)
		SELECT v, $1, s, 'V', 1000, 'USD' FROM unnest($2::uuid[], $3::text[]) AS t(v, s)`, pid, ids, skus); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO inventory (variant_id, on_hand) SELECT unnest($1::uuid[]), $2`, ids, onHand); err != nil {
		e.t.Fatal(err)
	}
	return ids
}

func (e *env) variant(onHand int64) uuid.UUID { return e.variants(1, onHand)[0] }

func (e *env) onHand(id uuid.UUID) int64 {
	e.t.Helper()
	var n int64
	if err := e.pool.QueryRow(context.Background(), `SELECT on_hand FROM inventory WHERE variant_id = $1`, id).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// rawAvail reads the counter without loading it; ok is false when it is missing.
func (e *env) rawAvail(s *Service, id uuid.UUID) (int64, bool) {
	e.t.Helper()
	n, err := e.rdb.Get(context.Background(), s.r.keys(id).avail).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return n, true
}

func levels(t testing.TB, s *Service, id uuid.UUID) Levels {
	t.Helper()
	l, err := s.Levels(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// wantLevels checks on_hand, available and held, and that drift is 0.
func wantLevels(t testing.TB, s *Service, id uuid.UUID, onHand, avail, held int64) {
	t.Helper()
	l := levels(t, s, id)
	if l.OnHand != onHand || l.Available != avail || l.Held != held || l.Drift != 0 {
		t.Fatalf("levels of %s: on_hand %d available %d held %d drift %d (holds %+v); want on_hand %d available %d held %d drift 0",
			id, l.OnHand, l.Available, l.Held, l.Drift, l.Holds, onHand, avail, held)
	}
}

// waitRedisPast polls Redis's clock until it is past t.
func waitRedisPast(t testing.TB, rdb redis.UniversalClient, at time.Time) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, err := rdb.Time(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		if now.After(at) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis clock never passed %v", at)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// poll calls cond until it returns true or the timeout passes.
func poll(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ledgerSum(t testing.TB, pool *pgxpool.Pool, id uuid.UUID, reason string) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), `SELECT COALESCE(sum(delta), 0) FROM stock_ledger
		WHERE variant_id = $1 AND ($2 = '' OR reason = $2)`, id, reason).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func holder(i int) string { return fmt.Sprintf("h%04d", i) }

var errCrash = errors.New("simulated crash")
