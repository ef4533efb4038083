package resilience

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/httpx"
	"commerce/internal/platform/testenv"
)

var (
	errSerialization = &pgconn.PgError{Code: "40001", Message: "could not serialize access"}
	errDeadlock      = &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}
	errUnique        = &pgconn.PgError{Code: "23505", Message: "duplicate key"}
	errRefused       = fmt.Errorf("dial tcp 127.0.0.1:6379: %w", syscall.ECONNREFUSED)
)

func TestClassifiers(t *testing.T) {
	tests := []struct {
		name          string
		err           error
		serialization bool
		redisRetry    bool
	}{
		{"nil", nil, false, false},
		{"serialization", errSerialization, true, false},
		{"wrappedDeadlock", fmt.Errorf("place order: %w", errDeadlock), true, false},
		{"uniqueViolation", errUnique, false, false},
		{"noRows", pgx.ErrNoRows, false, false},
		{"redisNil", redis.Nil, false, false},
		{"refused", errRefused, false, true},
		{"callTimeout", fmt.Errorf("get: %w", context.DeadlineExceeded), false, true},
		{"loading", redisErr("LOADING Redis is loading"), false, true},
		{"scriptError", redisErr("ERR Error running script"), false, false},
		{"cancelled", context.Canceled, false, false},
		{"breakerOpen", &openError{name: "x", cause: errors.New("circuit breaker is open")}, false, false},
		{"plain", errors.New("bug"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsSerializationFailure(tt.err); got != tt.serialization {
				t.Errorf("IsSerializationFailure = %v, want %v", got, tt.serialization)
			}
			if got := IsTransientRedisError(tt.err); got != tt.redisRetry {
				t.Errorf("IsTransientRedisError = %v, want %v", got, tt.redisRetry)
			}
		})
	}
}

func TestBackoffIsExponentialAndCapped(t *testing.T) {
	p := Policy{BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond, Retryable: IsSerializationFailure}
	want := []time.Duration{10, 20, 40, 50, 50, 50}
	for i, w := range want {
		if got := p.Backoff(i + 1); got != w*time.Millisecond {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	// Full jitter: every wait lies in [0, cap] and they are not all the same.
	seen := map[time.Duration]bool{}
	p.Attempts = 40
	p.BaseDelay, p.MaxDelay = time.Microsecond, 8*time.Microsecond
	p.OnRetry = func(attempt int, wait time.Duration, _ error) {
		if wait < 0 || wait > p.Backoff(attempt) {
			t.Errorf("attempt %d waited %v, cap %v", attempt, wait, p.Backoff(attempt))
		}
		seen[wait] = true
	}
	_ = Retry(context.Background(), p, func(context.Context) error { return errSerialization })
	if len(seen) < 3 {
		t.Errorf("waits are not jittered: %v", seen)
	}
}

func TestRetry(t *testing.T) {
	noWait := func(time.Duration) time.Duration { return 0 }
	tests := []struct {
		name      string
		failures  []error // errors of the first calls, then success
		attempts  int
		wantCalls int
		check     func(t *testing.T, err error)
	}{
		{"succeedsFirstTime", nil, 3, 1, func(t *testing.T, err error) {
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"retriesSerializationThenSucceeds", []error{errSerialization, errDeadlock}, 3, 3, func(t *testing.T, err error) {
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"doesNotRetryOtherErrors", []error{errUnique}, 3, 1, func(t *testing.T, err error) {
			if !errors.Is(err, errUnique) || errors.Is(err, ErrExhausted) {
				t.Fatalf("err %v, want the unique violation as is", err)
			}
		}},
		{"givesUpAfterAttempts", []error{errSerialization, errSerialization, errSerialization, errSerialization}, 3, 3,
			func(t *testing.T, err error) {
				var pe *pgconn.PgError
				if !errors.Is(err, ErrExhausted) || !errors.As(err, &pe) || pe.Code != "40001" {
					t.Fatalf("err %v, want ErrExhausted wrapping 40001", err)
				}
				if got := httpx.Classify(err); got.Status != 503 || got.RetryAfter < 1 {
					t.Fatalf("exhausted retries map to %d (Retry-After %d), want 503 with Retry-After", got.Status, got.RetryAfter)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			p := PostgresPolicy("test", nil)
			p.Attempts, p.Jitter = tt.attempts, noWait
			err := Retry(context.Background(), p, func(context.Context) error {
				calls++
				if calls <= len(tt.failures) {
					return tt.failures[calls-1]
				}
				return nil
			})
			if calls != tt.wantCalls {
				t.Errorf("%d calls, want %d", calls, tt.wantCalls)
			}
			tt.check(t, err)
		})
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := PostgresPolicy("test", nil)
	p.Attempts = 100
	p.Jitter = func(time.Duration) time.Duration { return time.Hour }
	p.OnRetry = func(int, time.Duration, error) { cancel() }
	calls := 0
	err := Retry(ctx, p, func(context.Context) error { calls++; return errSerialization })
	if calls != 1 || !errors.Is(err, context.Canceled) || !IsSerializationFailure(err) {
		t.Fatalf("calls=%d err=%v: want one call, an error matching context.Canceled and the last error", calls, err)
	}
}

func TestRetryMetrics(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	p := PostgresPolicy("checkout.place", m)
	p.Attempts, p.Jitter = 3, func(time.Duration) time.Duration { return 0 }
	_ = Retry(context.Background(), p, func(context.Context) error { return errSerialization })
	if r, e := testutil.ToFloat64(m.retries.WithLabelValues("checkout.place", "retry")),
		testutil.ToFloat64(m.retries.WithLabelValues("checkout.place", "exhausted")); r != 2 || e != 1 {
		t.Fatalf("retries %v exhausted %v, want 2 and 1", r, e)
	}
}

// TestRetryRealSerializationFailure provokes a real 40001 with two SERIALIZABLE
// transactions (write skew: both read the table, both insert) and shows that Retry reruns
// the losing transaction, which then commits with a result that accounts for the winner.
func TestRetryRealSerializationFailure(t *testing.T) {
	pool, _ := testenv.DB(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE skew (k text PRIMARY KEY, total bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	// insertSum inserts a row holding the sum of the table, in a SERIALIZABLE transaction;
	// between its read and its write, interleave runs (the concurrent transaction).
	insertSum := func(ctx context.Context, key string, interleave func() error) error {
		return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(tx pgx.Tx) error {
			var sum int64
			if err := tx.QueryRow(ctx, `SELECT coalesce(sum(total), 0) + 1 FROM skew`).Scan(&sum); err != nil {
				return err
			}
			if interleave != nil {
				if err := interleave(); err != nil {
					return err
				}
			}
			_, err := tx.Exec(ctx, `INSERT INTO skew (k, total) VALUES ($1, $2)`, key, sum)
			return err
		})
	}
	var calls atomic.Int32
	var failures []error
	p := PostgresPolicy("test.skew", nil)
	p.OnRetry = func(_ int, _ time.Duration, err error) { failures = append(failures, err) }
	err := Retry(ctx, p, func(ctx context.Context) error {
		var other func() error
		if calls.Add(1) == 1 {
			other = func() error { return insertSum(ctx, "other", nil) }
		}
		return insertSum(ctx, "mine", other)
	})
	if err != nil {
		t.Fatalf("Retry: %v", err)
	}
	if calls.Load() != 2 || len(failures) != 1 || !IsSerializationFailure(failures[0]) {
		t.Fatalf("calls=%d failures=%v: want exactly one real serialization failure, then success", calls.Load(), failures)
	}
	var other, mine int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT total FROM skew WHERE k='other'), (SELECT total FROM skew WHERE k='mine')`).
		Scan(&other, &mine); err != nil {
		t.Fatal(err)
	}
	if other != 1 || mine != 2 {
		t.Fatalf("other=%d mine=%d: the retried transaction must see the committed one (want 1 and 2)", other, mine)
	}
}

// TestRetryRedisReadOverRestart: an idempotent read that fails because Redis is down is
// retried and succeeds once Redis is back; a miss (redis.Nil) is never retried.
func TestRetryRedisReadOverRestart(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()

	calls := 0
	_, err := RetryValue(ctx, RedisReadPolicy("test.get", nil), func(ctx context.Context) (string, error) {
		calls++
		return rdb.Get(ctx, "absent").Result()
	})
	if !errors.Is(err, redis.Nil) || calls != 1 {
		t.Fatalf("miss: calls=%d err=%v, want one call and redis.Nil", calls, err)
	}

	srv.Kill()
	calls = 0
	p := RedisReadPolicy("test.get", nil)
	p.OnRetry = func(attempt int, _ time.Duration, err error) {
		if attempt == 1 {
			srv.Start() // Redis comes back while the reader waits
			_ = srv.Client().Set(ctx, "k", "v", 0).Err()
		}
	}
	v, err := RetryValue(ctx, p, func(ctx context.Context) (string, error) {
		calls++
		return rdb.Get(ctx, "k").Result()
	})
	if err != nil || v != "v" || calls != 2 {
		t.Fatalf("read over restart: v=%q err=%v calls=%d, want v after 2 calls", v, err, calls)
	}
}
