package resilience

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"commerce/internal/platform/fault"
)

// ErrExhausted is matched (errors.Is) by the error Retry returns when every attempt failed
// with a retryable error. That error also matches fault.ErrUnavailable (a 503 with
// Retry-After at the edge) and unwraps to the last attempt's error.
var ErrExhausted = errors.New("retries exhausted")

// Policy says which errors are retried and how long to wait between attempts. Waits grow
// exponentially from BaseDelay, capped at MaxDelay, each drawn uniformly from [0, cap]
// ("full jitter"), so that contending callers spread out.
type Policy struct {
	// Op labels the retry metrics ("checkout.place", "catalog.l2_read").
	Op string
	// Attempts is the total number of calls, the first included [3].
	Attempts int
	// BaseDelay is the cap of the first wait [5ms]; MaxDelay caps every wait [250ms].
	BaseDelay, MaxDelay time.Duration
	// Retryable reports whether an error is worth another attempt (required).
	Retryable func(error) bool
	// Metrics, when set, counts retries and exhaustions under Op.
	Metrics *Metrics
	// OnRetry, when set, is called before each wait (for logs and tests).
	OnRetry func(attempt int, wait time.Duration, err error)
	// Jitter draws a wait in [0, cap]; nil means uniform (tests inject a fixed one).
	Jitter func(cap time.Duration) time.Duration
}

// PostgresPolicy retries a whole PostgreSQL transaction that failed with a serialization
// failure (40001) or a deadlock (40P01): 5 attempts, waits up to 5, 10, 20, 40 ms.
func PostgresPolicy(op string, m *Metrics) Policy {
	m.touch(op)
	return Policy{Op: op, Attempts: 5, BaseDelay: 5 * time.Millisecond, MaxDelay: 200 * time.Millisecond,
		Retryable: IsSerializationFailure, Metrics: m}
}

// RedisReadPolicy retries an idempotent Redis read (GET, HGETALL, a read-only script) that
// failed on the network: 3 attempts, waits up to 10, 20 ms. Never use it for a script that
// writes: a reply lost after the script ran would apply it twice.
func RedisReadPolicy(op string, m *Metrics) Policy {
	m.touch(op)
	return Policy{Op: op, Attempts: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond,
		Retryable: IsTransientRedisError, Metrics: m}
}

func (p Policy) withDefaults() Policy {
	if p.Attempts < 1 {
		p.Attempts = 3
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 5 * time.Millisecond
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = max(250*time.Millisecond, p.BaseDelay)
	}
	if p.Jitter == nil {
		p.Jitter = func(c time.Duration) time.Duration { return time.Duration(rand.Int64N(int64(c) + 1)) }
	}
	if p.Op == "" {
		p.Op = "unnamed"
	}
	return p
}

// Backoff is the cap of the wait after the given failed attempt (1-based):
// min(MaxDelay, BaseDelay·2^(attempt−1)).
func (p Policy) Backoff(attempt int) time.Duration {
	p = p.withDefaults()
	d := p.BaseDelay
	for i := 1; i < attempt && d < p.MaxDelay; i++ {
		d *= 2
	}
	return min(d, p.MaxDelay)
}

// Retry calls fn until it succeeds, fails with an error p.Retryable rejects (returned as
// is), or p.Attempts calls failed (the error then matches ErrExhausted and
// fault.ErrUnavailable and unwraps to the last error). It stops waiting when ctx ends and
// returns an error matching ctx.Err() that also unwraps to the last error. fn must be
// safe to repeat: a whole transaction (begin … commit), or an idempotent read.
func Retry(ctx context.Context, p Policy, fn func(context.Context) error) error {
	_, err := RetryValue(ctx, p, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// RetryValue is Retry for calls with a result.
func RetryValue[T any](ctx context.Context, p Policy, fn func(context.Context) (T, error)) (T, error) {
	p = p.withDefaults()
	var zero T
	for attempt := 1; ; attempt++ {
		v, err := fn(ctx)
		if err == nil {
			return v, nil
		}
		if p.Retryable == nil || !p.Retryable(err) {
			return zero, err
		}
		if ctx.Err() != nil {
			return zero, &stoppedError{ctx: ctx.Err(), last: err, attempts: attempt}
		}
		if attempt >= p.Attempts {
			if p.Metrics != nil {
				p.Metrics.retries.WithLabelValues(p.Op, "exhausted").Inc()
			}
			return zero, &exhaustedError{last: err, attempts: attempt}
		}
		wait := p.Jitter(p.Backoff(attempt))
		if p.OnRetry != nil {
			p.OnRetry(attempt, wait, err)
		}
		if p.Metrics != nil {
			p.Metrics.retries.WithLabelValues(p.Op, "retry").Inc()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, &stoppedError{ctx: ctx.Err(), last: err, attempts: attempt}
		case <-t.C:
		}
	}
}

type exhaustedError struct {
	last     error
	attempts int
}

func (e *exhaustedError) Error() string {
	return fmt.Sprintf("gave up after %d attempts: %v", e.attempts, e.last)
}
func (e *exhaustedError) Unwrap() error { return e.last }
func (e *exhaustedError) Is(target error) bool {
	return target == ErrExhausted || target == fault.ErrUnavailable
}

type stoppedError struct {
	ctx, last error
	attempts  int
}

func (e *stoppedError) Error() string {
	return fmt.Sprintf("%v after %d attempts (last error: %v)", e.ctx, e.attempts, e.last)
}
func (e *stoppedError) Unwrap() []error { return []error{e.ctx, e.last} }

// SQLSTATE codes that mean "run the transaction again".
const (
	sqlstateSerializationFailure = "40001"
	sqlstateDeadlockDetected     = "40P01"
)

// IsSerializationFailure reports whether err is a PostgreSQL serialization failure
// (40001) or deadlock (40P01): the transaction was rolled back and may simply be rerun.
func IsSerializationFailure(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == sqlstateSerializationFailure || pe.Code == sqlstateDeadlockDetected
	}
	return false
}

// IsTransientRedisError reports whether a failed Redis read is worth repeating: a network
// error, a timeout of the call, LOADING/TRYAGAIN/CLUSTERDOWN. Not redis.Nil (an answer),
// not an open breaker (it would only fail again), not a cancelled caller.
func IsTransientRedisError(err error) bool {
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, context.Canceled),
		errors.Is(err, ErrOpen), errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return false // a PostgreSQL error is never a Redis read worth re-sending
	}
	return fault.IsUnavailable(err)
}

// WithTimeout calls fn with a context that ends after d (no deadline when d <= 0). A
// deadline hit inside fn surfaces as context.DeadlineExceeded, which the error funnel
// answers with 503. fn's client must honour context deadlines.
func WithTimeout[T any](ctx context.Context, d time.Duration, fn func(context.Context) (T, error)) (T, error) {
	if d <= 0 {
		return fn(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return fn(ctx)
}
