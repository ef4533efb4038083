package ratelimit

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"commerce/internal/platform/httpx"
	"commerce/internal/platform/testenv"
)

// TestAddressCeilingHoldsAcrossReplicas: two replicas each admit an address's burst on
// their own; once their counts are shared, the address is refused by both for the rest
// of the window, and another address is not.
func TestAddressCeilingHoldsAcrossReplicas(t *testing.T) {
	rdb, space := testenv.Redis(t)
	const rate, burst = 10, 20 // one window (1 s) allows 10 + 20 = 30 requests
	replica := func() (*Address, *echo.Echo) {
		a := NewAddress(rate, burst, prometheus.NewRegistry()).Shared(rdb, space, rate, burst)
		e := echo.New()
		e.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
		e.IPExtractor = echo.ExtractIPDirect()
		e.Use(a.Middleware())
		e.GET("/x", func(c echo.Context) error { return c.NoContent(204) })
		return a, e
	}
	get := func(e *echo.Echo, addr string) int {
		req := httptest.NewRequest("GET", "/x", nil)
		req.RemoteAddr = addr + ":1"
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec.Code
	}
	a1, e1 := replica()
	a2, e2 := replica()
	// 16 each: within either replica's own burst (20), over the shared allowance (30).
	admitted := 0
	for range 16 {
		for _, e := range []*echo.Echo{e1, e2} {
			if get(e, "192.0.2.50") == 204 {
				admitted++
			}
		}
	}
	if admitted != 32 {
		t.Fatalf("before sharing, each replica admits within its own burst: %d, want 32", admitted)
	}
	ctx := context.Background()
	// One round each, then the first replica's next round re-reads the total.
	for _, a := range []*Address{a1, a2, a1} {
		if err := a.share.sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// 32 > 30 across the two: both refuse the address now, though each alone would admit.
	for i, e := range []*echo.Echo{e1, e2} {
		if code := get(e, "192.0.2.50"); code != 429 {
			t.Fatalf("replica %d after sharing: %d, want 429", i+1, code)
		}
		if code := get(e, "192.0.2.51"); code != 204 {
			t.Fatalf("replica %d, another address: %d, want 204", i+1, code)
		}
	}
}

// TestAnonymousCallersCostNoRedisCall: an anonymous request (a catalog read) is limited
// in process, with its per-caller allowance kept; a session's request still asks Redis.
func TestAnonymousCallersCostNoRedisCall(t *testing.T) {
	rdb, space := testenv.Redis(t)
	hook := &testenv.CommandCounter{}
	rdb.AddHook(hook)
	l := newLimiter(t, rdb, space, Config{PerSecond: 1, Burst: 3}, nil)
	e := echo.New()
	e.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
	e.IPExtractor = echo.ExtractIPDirect()
	e.GET("/v1/products", func(c echo.Context) error { return c.NoContent(204) }, l.Middleware(nil))
	codes := map[int]int{}
	for range 10 {
		req := httptest.NewRequest("GET", "/v1/products", nil)
		req.RemoteAddr = "192.0.2.99:1"
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		codes[rec.Code]++
	}
	if n := hook.N(); n != 0 {
		t.Fatalf("10 anonymous requests made %d Redis calls, want 0", n)
	}
	if codes[204] != 3 || codes[429] != 7 {
		t.Fatalf("anonymous allowance: %v, want 3 admitted (the burst) and 7 refused", codes)
	}
	if d := l.Allow(context.Background(), "s:someone"); !d.Allowed || hook.N() == 0 {
		t.Fatalf("a session's request: %+v after %d Redis calls, want allowed by Redis", d, hook.N())
	}
}

// TestWindowedCallersCostNoRedisCall: in windowed mode a session's requests are decided in
// process (no Redis call on the request path, its burst kept per replica), and once two
// replicas have shared their counts, a session over the window's allowance across both
// is refused by both while another session is not.
func TestWindowedCallersCostNoRedisCall(t *testing.T) {
	rdb, space := testenv.Redis(t)
	hook := &testenv.CommandCounter{}
	rdb.AddHook(hook)
	const rate, burst = 10, 20 // one window allows 10 + 20 = 30 requests
	a := newLimiter(t, rdb, space, Config{PerSecond: rate, Burst: burst}, nil).Windowed()
	b := newLimiter(t, rdb, space, Config{PerSecond: rate, Burst: burst}, nil).Windowed()
	admitted := 0
	for range 16 {
		for _, l := range []*Limiter{a, b} {
			if l.AllowWindowed("s:busy").Allowed {
				admitted++
			}
		}
	}
	if n := hook.N(); n != 0 {
		t.Fatalf("32 windowed requests made %d Redis calls, want 0", n)
	}
	if admitted != 32 {
		t.Fatalf("before sharing, each replica admits within its own burst: %d, want 32", admitted)
	}
	ctx := context.Background()
	for _, l := range []*Limiter{a, b, a, b} {
		if err := l.share.sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i, l := range []*Limiter{a, b} {
		if d := l.AllowWindowed("s:busy"); d.Allowed || d.RetryAfter <= 0 {
			t.Fatalf("replica %d after sharing: %+v, want refused with a Retry-After", i+1, d)
		}
		if d := l.AllowWindowed("s:calm"); !d.Allowed {
			t.Fatalf("replica %d, another session: %+v, want allowed", i+1, d)
		}
	}
	// A burst beyond the replica's own allowance is refused without sharing too.
	c := newLimiter(t, rdb, space, Config{PerSecond: 1, Burst: 3}, nil).Windowed()
	n := 0
	for range 10 {
		if c.AllowWindowed("c:solo").Allowed {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("one replica admitted %d of 10 at a burst of 3", n)
	}
}
