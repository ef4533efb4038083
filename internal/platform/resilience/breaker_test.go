package resilience

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/fault"
	"commerce/internal/platform/httpx"
	"commerce/internal/platform/testenv"
)

func TestBreakerCountsOnlyDependencyFailures(t *testing.T) {
	refused := fmt.Errorf("dial tcp 127.0.0.1:1: %w", syscall.ECONNREFUSED)
	tests := []struct {
		name     string
		err      error
		wantOpen bool
	}{
		{"nilStaysClosed", nil, false},
		{"redisNilStaysClosed", redis.Nil, false},
		{"badRequestStaysClosed", httpx.BadRequest("x"), false},
		{"plainErrorStaysClosed", errors.New("validation"), false},
		{"scriptErrorStaysClosed", redisErr("ERR wrong number of arguments"), false},
		{"refusedTrips", refused, true},
		{"unavailableTrips", fmt.Errorf("load: %w", fault.ErrUnavailable), true},
		{"deadlineTrips", context.DeadlineExceeded, true},
		{"loadingTrips", redisErr("LOADING Redis is loading the dataset in memory"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBreaker(BreakerConfig{Name: tt.name, ConsecutiveFailures: 5, OpenTimeout: time.Minute}, nil)
			for i := 0; i < 5; i++ {
				_, err := Do(b, context.Background(), func(context.Context) (int, error) { return 1, tt.err })
				if !errors.Is(err, tt.err) && tt.err != nil {
					t.Fatalf("call %d: error %v does not carry %v", i, err, tt.err)
				}
			}
			if got := b.State() == StateOpen; got != tt.wantOpen {
				t.Fatalf("after 5 calls failing with %v: state %s, want open=%v", tt.err, b.State(), tt.wantOpen)
			}
			called := false
			_, err := Do(b, context.Background(), func(context.Context) (int, error) { called = true; return 1, nil })
			if tt.wantOpen {
				if called || !errors.Is(err, ErrOpen) || !fault.IsUnavailable(err) {
					t.Fatalf("open breaker: called=%v err=%v, want not called, ErrOpen, unavailable", called, err)
				}
				if s := httpx.Classify(err).Status; s != 503 {
					t.Fatalf("open breaker error maps to %d, want 503", s)
				}
			} else if !called || err != nil {
				t.Fatalf("closed breaker: called=%v err=%v", called, err)
			}
		})
	}
}

func TestBreakerNeedsConsecutiveFailures(t *testing.T) {
	b := NewBreaker(BreakerConfig{Name: "x", ConsecutiveFailures: 3, OpenTimeout: time.Minute}, nil)
	fail := func() { _ = b.Run(context.Background(), func(context.Context) error { return fault.ErrUnavailable }) }
	ok := func() { _ = b.Run(context.Background(), func(context.Context) error { return nil }) }
	for i := 0; i < 10; i++ { // two failures, one success: never three in a row
		fail()
		fail()
		ok()
	}
	if b.State() != StateClosed {
		t.Fatalf("state %s after interleaved successes, want closed", b.State())
	}
	fail()
	fail()
	fail()
	if b.State() != StateOpen {
		t.Fatalf("state %s after 3 consecutive failures, want open", b.State())
	}
}

func TestBreakerIgnoresCallersThatLeave(t *testing.T) {
	b := NewBreaker(BreakerConfig{Name: "x", ConsecutiveFailures: 2, OpenTimeout: time.Minute}, nil)
	for i := 0; i < 10; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		err := b.Run(ctx, func(ctx context.Context) error {
			cancel() // the client went away mid-call
			<-ctx.Done()
			return fmt.Errorf("read: %w", ctx.Err())
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	}
	for i := 0; i < 10; i++ { // a request deadline that passed is the caller's, too
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		err := b.Run(ctx, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want deadline", err)
		}
	}
	if b.State() != StateClosed {
		t.Fatalf("state %s after callers left, want closed", b.State())
	}
}

func TestBreakerCallTimeoutCountsAsFailure(t *testing.T) {
	b := NewBreaker(BreakerConfig{Name: "x", ConsecutiveFailures: 2, OpenTimeout: time.Minute,
		CallTimeout: 5 * time.Millisecond}, nil)
	for i := 0; i < 2; i++ {
		err := b.Run(context.Background(), func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("fn got no deadline")
			}
			<-ctx.Done()
			return ctx.Err()
		})
		if !fault.IsUnavailable(err) {
			t.Fatalf("timeout error %v is not 'unavailable'", err)
		}
	}
	if b.State() != StateOpen {
		t.Fatalf("state %s after 2 call timeouts, want open", b.State())
	}
}

// TestBreakerTripsOnKilledRedis: a real redis-server is killed, the breaker opens after the
// configured consecutive failures and stops calling Redis, the gauge says 2; when Redis is
// back the breaker closes by itself after its open timeout and the gauge says 0.
func TestBreakerTripsOnKilledRedis(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	b := NewBreaker(BreakerConfig{Name: "redis_l2", ConsecutiveFailures: 5, OpenTimeout: 100 * time.Millisecond,
		CallTimeout: 300 * time.Millisecond}, m)
	ctx := context.Background()
	get := func() (string, error, bool) {
		called := false
		v, err := Do(b, ctx, func(ctx context.Context) (string, error) {
			called = true
			return rdb.Get(ctx, "product:{1}").Result()
		})
		return v, err, called
	}
	gauge := func() float64 {
		t.Helper()
		n, err := testutil.GatherAndCount(reg, "commerce_breaker_state")
		if err != nil || n != 1 {
			t.Fatalf("commerce_breaker_state: %d series, %v", n, err)
		}
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "commerce_breaker_state" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}

	for i := 0; i < 20; i++ { // misses are answers, not failures
		if _, err, _ := get(); !errors.Is(err, redis.Nil) {
			t.Fatalf("GET of a missing key: %v", err)
		}
	}
	if b.State() != StateClosed || gauge() != 0 {
		t.Fatalf("after misses: state %s gauge %v, want closed/0", b.State(), gauge())
	}

	srv.Kill()
	for i := 1; i <= 5; i++ {
		_, err, called := get()
		if !called || !fault.IsUnavailable(err) {
			t.Fatalf("call %d with Redis down: called=%v err=%v", i, called, err)
		}
	}
	if b.State() != StateOpen || gauge() != 2 {
		t.Fatalf("after 5 failures: state %s gauge %v, want open/2", b.State(), gauge())
	}
	_, err, called := get()
	if called || !errors.Is(err, ErrOpen) {
		t.Fatalf("open breaker still called Redis (called=%v, err=%v)", called, err)
	}

	srv.Start()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err, _ := get()
		if errors.Is(err, redis.Nil) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("breaker did not let Redis back in within 5 s: %v (state %s)", err, b.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if b.State() != StateClosed || gauge() != 0 {
		t.Fatalf("after recovery: state %s gauge %v, want closed/0", b.State(), gauge())
	}
	for _, tr := range [][2]string{{"closed", "open"}, {"open", "half-open"}, {"half-open", "closed"}} {
		if v := testutil.ToFloat64(m.changes.WithLabelValues("redis_l2", tr[0], tr[1])); v < 1 {
			t.Errorf("no %s→%s transition counted", tr[0], tr[1])
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP commerce_breaker_state Circuit breaker state: 0 closed, 1 half-open, 2 open.
# TYPE commerce_breaker_state gauge
commerce_breaker_state{name="redis_l2"} 0
`), "commerce_breaker_state"); err != nil {
		t.Fatal(err)
	}
}

// redisErr is an error reply as go-redis surfaces it (a type with a RedisError method).
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}

// OnClosed runs each time the breaker closes again after being open, and not before.
func TestBreakerOnClosed(t *testing.T) {
	closed := make(chan struct{}, 4)
	b := NewBreaker(BreakerConfig{Name: "onclosed", ConsecutiveFailures: 1, OpenTimeout: 50 * time.Millisecond,
		OnClosed: func() { closed <- struct{}{} }}, nil)
	ctx := context.Background()
	_ = b.Run(ctx, func(context.Context) error { return fault.ErrUnavailable })
	if b.State() != StateOpen {
		t.Fatalf("state %s after a failure", b.State())
	}
	select {
	case <-closed:
		t.Fatal("OnClosed ran when the breaker opened")
	case <-time.After(20 * time.Millisecond):
	}
	time.Sleep(60 * time.Millisecond)
	if err := b.Run(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatalf("OnClosed not called; state %s", b.State())
	}
}
