package ratelimit

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/auth"
	"commerce/internal/platform/httpx"
	"commerce/internal/platform/resilience"
	"commerce/internal/platform/rkey"
	"commerce/internal/platform/testenv"
	"commerce/scripts/lua"
)

func newLimiter(t *testing.T, rdb redis.UniversalClient, space rkey.Space, cfg Config, b *resilience.Breaker) *Limiter {
	t.Helper()
	l, err := New(rdb, space, cfg, b, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestBurstThenLimited(t *testing.T) {
	rdb, space := testenv.Redis(t)
	l := newLimiter(t, rdb, space, Config{PerSecond: 1, Burst: 3}, nil)
	ctx := context.Background()
	for i, want := range []int{2, 1, 0} {
		d := l.Allow(ctx, "s:a")
		if !d.Allowed || d.FailedOpen || d.Remaining != want {
			t.Fatalf("request %d: %+v, want allowed with %d remaining", i+1, d, want)
		}
	}
	d := l.Allow(ctx, "s:a")
	if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > time.Second {
		t.Fatalf("4th request: %+v, want refused with 0 < RetryAfter <= 1s", d)
	}
	if d := l.Allow(ctx, "s:b"); !d.Allowed {
		t.Fatalf("another caller was limited by the first one's requests: %+v", d)
	}
	if got := testutil.ToFloat64(l.results.WithLabelValues("limited")); got != 1 {
		t.Fatalf("limited counter %v, want 1", got)
	}
}

func TestAllowanceRefills(t *testing.T) {
	rdb, space := testenv.Redis(t)
	l := newLimiter(t, rdb, space, Config{PerSecond: 200, Burst: 1}, nil)
	ctx := context.Background()
	if d := l.Allow(ctx, "k"); !d.Allowed {
		t.Fatalf("first request refused: %+v", d)
	}
	var refused Decision
	for i := 0; i < 1000 && refused.RetryAfter == 0; i++ { // the next one within 5 ms is refused
		if d := l.Allow(ctx, "k"); !d.Allowed {
			refused = d
		}
	}
	if refused.RetryAfter <= 0 || refused.RetryAfter > 5*time.Millisecond {
		t.Fatalf("refusal %+v, want RetryAfter in (0, 5ms]", refused)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !l.Allow(ctx, "k").Allowed {
		if time.Now().After(deadline) {
			t.Fatal("allowance did not refill")
		}
		time.Sleep(time.Millisecond)
	}
	// The key expires once the allowance is full again: an idle caller costs no memory.
	deadline = time.Now().Add(2 * time.Second)
	for rdb.Exists(ctx, space.Key("rl:{k}")).Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("limiter key did not expire")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConcurrentCallersShareOneAllowance: two limiters (two replicas) and 60 concurrent
// requests of one caller admit exactly the burst; the script is atomic.
func TestConcurrentCallersShareOneAllowance(t *testing.T) {
	rdb, space := testenv.Redis(t)
	cfg := Config{PerSecond: 0.5, Burst: 10, Timeout: 10 * time.Second} // no fail-open on a slow first dial
	a := newLimiter(t, rdb, space, cfg, nil)
	b := newLimiter(t, rdb, space, cfg, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func(l *Limiter) {
			defer wg.Done()
			d := l.Allow(context.Background(), "c:shared")
			if d.FailedOpen {
				t.Error("Redis could not decide")
			}
			if d.Allowed {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		}([]*Limiter{a, b}[i%2])
	}
	wg.Wait()
	if allowed != 10 {
		t.Fatalf("%d admitted, want exactly the burst of 10", allowed)
	}
}

func TestScriptValidatesBeforeWriting(t *testing.T) {
	rdb, space := testenv.Redis(t)
	s := redis.NewScript(lua.Source("ratelimit"))
	key := space.Key("rl:{bad}")
	for _, args := range [][]any{{0, 1, 1}, {1000, 0, 1}, {1000, 2, 3}, {"x", 1, 1}, {1000, 1, 0}} {
		if err := s.Run(context.Background(), rdb, []string{key}, args...).Err(); err == nil {
			t.Fatalf("args %v accepted", args)
		}
	}
	if rdb.Exists(context.Background(), key).Val() != 0 {
		t.Fatal("a refused call wrote the key")
	}
}

func TestDisabledLimiterAdmitsEverything(t *testing.T) {
	rdb, space := testenv.Redis(t)
	l := newLimiter(t, rdb, space, Config{PerSecond: 0}, nil)
	for i := 0; i < 100; i++ {
		if !l.Allow(context.Background(), "k").Allowed {
			t.Fatal("disabled limiter refused")
		}
	}
	if _, err := New(rdb, space, Config{PerSecond: 2e6}, nil, nil); err == nil {
		t.Fatal("a rate above 1e6/s was accepted")
	}
}

// TestLocalAllowanceDecidesWhenRedisIsDown: with Redis killed, the in-process allowance of
// the same key decides (a Redis outage never switches limiting off), the breaker opens so
// later requests do not wait on Redis, and Redis decides again when it returns.
func TestLocalAllowanceDecidesWhenRedisIsDown(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 100 * time.Millisecond,
		ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	br := resilience.NewBreaker(resilience.BreakerConfig{Name: "ratelimit", OpenTimeout: 50 * time.Millisecond}, nil)
	l := newLimiter(t, rdb, "", Config{PerSecond: 1, Burst: 1}, br)
	ctx := context.Background()
	if d := l.Allow(ctx, "k"); !d.Allowed || d.FailedOpen {
		t.Fatalf("first: %+v", d)
	}
	if d := l.Allow(ctx, "k"); d.Allowed {
		t.Fatalf("second within a second: %+v, want refused", d)
	}
	srv.Kill()
	admitted := 0
	for i := 0; i < 20; i++ {
		d := l.Allow(ctx, "k")
		if !d.FailedOpen {
			t.Fatalf("request %d with Redis down: %+v, want decided in process (FailedOpen)", i, d)
		}
		if d.Allowed {
			admitted++
		}
	}
	if admitted < 1 || admitted > 2 {
		t.Fatalf("Redis down: %d of 20 requests admitted at 1/s with a burst of 1", admitted)
	}
	if br.State() != resilience.StateOpen {
		t.Fatalf("breaker %s, want open", br.State())
	}
	if got := testutil.ToFloat64(l.results.WithLabelValues("failed_open")); got != 20 {
		t.Fatalf("failed_open counter %v, want 20", got)
	}
	srv.Start()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d1 := l.Allow(ctx, "k")
		d2 := l.Allow(ctx, "k")
		if !d1.FailedOpen && !d2.FailedOpen && d1.Allowed && !d2.Allowed {
			break // limiting again
		}
		if time.Now().After(deadline) {
			t.Fatalf("limiter did not resume: %+v %+v", d1, d2)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMiddleware(t *testing.T) {
	rdb, space := testenv.Redis(t)
	tokens := auth.NewTokens("secret-0123456789-0123456789-0123456789")
	sessions := auth.NewSessions(rdb, space, time.Hour, 0)
	l := newLimiter(t, rdb, space, Config{PerSecond: 0.1, Burst: 2}, nil)
	e := echo.New()
	e.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
	e.IPExtractor = echo.ExtractIPDirect()
	v1 := e.Group("/v1", auth.Identify(tokens, sessions), l.Middleware(nil))
	v1.GET("/products", func(c echo.Context) error { return c.JSON(200, map[string]string{"ok": "1"}) })
	sess, err := sessions.New(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	sid := sess.Credential
	alice, _ := tokens.Issue("alice", time.Hour)
	bob, _ := tokens.Issue("bob", time.Hour)
	get := func(remote string, h map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/v1/products", nil)
		req.RemoteAddr = remote
		for k, v := range h {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	callers := []struct {
		name   string
		remote string
		h      map[string]string
	}{
		{"ipv4", "192.0.2.1:1000", nil},
		{"ipv6SamePrefixSharesAllowance", "[2001:db8::1]:1000", nil},
		{"session", "192.0.2.1:1000", map[string]string{"X-Session-ID": sid}},
		{"customer", "192.0.2.1:1000", map[string]string{"Authorization": "Bearer " + alice}},
		{"otherCustomer", "192.0.2.1:1000", map[string]string{"Authorization": "Bearer " + bob}},
	}
	for _, c := range callers {
		t.Run(c.name, func(t *testing.T) {
			remote := c.remote
			for i := 0; i < 2; i++ {
				if c.name == "ipv6SamePrefixSharesAllowance" && i == 1 {
					remote = "[2001:db8::ffff]:2000" // same /64
				}
				if rec := get(remote, c.h); rec.Code != 200 {
					t.Fatalf("request %d: %d %s", i+1, rec.Code, rec.Body)
				}
			}
			rec := get(remote, c.h)
			if rec.Code != http.StatusTooManyRequests {
				t.Fatalf("3rd request: %d, want 429", rec.Code)
			}
			ra, err := strconv.Atoi(rec.Header().Get("Retry-After"))
			if err != nil || ra < 1 || ra > 10 {
				t.Fatalf("Retry-After %q, want 1..10 seconds", rec.Header().Get("Retry-After"))
			}
			var body struct {
				Error struct {
					Code    string         `json:"code"`
					Details map[string]any `json:"details"`
				} `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != "rate_limited" || body.Error.Details == nil {
				t.Fatalf("body %s, want the contract's rate_limited error", rec.Body)
			}
		})
	}
}

func TestKeyOf(t *testing.T) {
	e := echo.New()
	e.IPExtractor = echo.ExtractIPDirect()
	tests := []struct{ remote, want string }{
		{"192.0.2.7:1", "ip:192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:1", "ip:2001:db8:1:2::"},
		{"[::ffff:192.0.2.7]:1", "ip:192.0.2.7"},
		{"garbage", "ip:unknown"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = tt.remote
		if got := KeyOf(e.NewContext(req, httptest.NewRecorder())); got != tt.want {
			t.Errorf("KeyOf(%s) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}
