package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"commerce/internal/catalog"
	"commerce/internal/checkout"
)

// These tests hold the service to what a black-box attacker tried: each one names a class
// of hostile input and only speaks HTTP, so it runs against any version of the service.

func fromAddr(t *testing.T, h http.Handler, addr string, c call) answer {
	t.Helper()
	var body *strings.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	} else {
		body = strings.NewReader("")
	}
	req := httptest.NewRequest(c.method, c.path, body)
	req.RemoteAddr = addr
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return answer{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func customerToken(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testJWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bearerOf(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

// TestValuesPostgreSQLCannotStoreAre422: a NUL, a lone surrogate and a number outside
// jsonb's range are refused with 422 naming the field on every path that writes them to
// PostgreSQL: preferences, signed webhook ids, the inventory reason, discount names,
// product attributes, and query parameters.
func TestValuesPostgreSQLCannotStoreAre422(t *testing.T) {
	a := newTestApp(t)
	h := a.Handler()
	ctx := context.Background()
	if _, err := a.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	variant := catalog.SeedVariantID("RR-40").String()
	cust := bearerOf(customerToken(t, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}))
	hook := func(body string) map[string]string {
		return map[string]string{checkout.HeaderSignature: checkout.Sign(testWebhook, []byte(body))}
	}
	for _, tc := range []struct {
		name, field string
		c           call
	}{
		{"preferences NUL", "nick", call{method: "PATCH", path: "/v1/me/preferences", body: `{"nick":"x\u0000y"}`, headers: cust}},
		{"preferences surrogate", "nick", call{method: "PATCH", path: "/v1/me/preferences", body: `{"nick":"\ud800"}`, headers: cust}},
		{"preferences number", "n", call{method: "PATCH", path: "/v1/me/preferences", body: `{"n":1e1000000}`, headers: cust}},
		{"preferences NUL in a key", `a\x00`, call{method: "PATCH", path: "/v1/me/preferences", body: `{"a\u0000":1}`, headers: cust}},
		{"webhook id", "id", call{method: "POST", path: "/v1/payments/webhook",
			body:    `{"id":"evt_\u0000","type":"payment_intent.succeeded","payment_intent_id":"pi_1"}`,
			headers: hook(`{"id":"evt_\u0000","type":"payment_intent.succeeded","payment_intent_id":"pi_1"}`)}},
		{"webhook intent", "payment_intent_id", call{method: "POST", path: "/v1/payments/webhook",
			body:    `{"id":"evt_1","type":"payment_intent.succeeded","payment_intent_id":"\ud800"}`,
			headers: hook(`{"id":"evt_1","type":"payment_intent.succeeded","payment_intent_id":"\ud800"}`)}},
		{"inventory reason", "reason", call{method: "POST", path: "/admin/inventory/" + variant + "/adjust",
			body: `{"delta":1,"reason":"re\u0000stock"}`, headers: admin()}},
		{"discount name", "name", call{method: "POST", path: "/admin/discounts",
			body: `{"name":"\udc00","kind":"percentage","value":10,"target":"order"}`, headers: admin()}},
		{"product attributes", "attributes.weight", call{method: "POST", path: "/admin/products",
			body: `{"slug":"x","name":"x","category":"x","attributes":{"weight":1e1000000},"variants":[]}`, headers: admin()}},
		{"query parameter", "category", call{method: "GET", path: "/v1/products?category=%00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, h, tc.c)
			if r.status != 422 || r.errorCode(t) != "validation_failed" {
				t.Fatalf("%d %s, want 422 validation_failed", r.status, r.body)
			}
			fields, _ := r.json(t)["error"].(map[string]any)["details"].(map[string]any)["fields"].(map[string]any)
			if _, ok := fields[tc.field]; !ok {
				t.Fatalf("details %s do not name %q", r.body, tc.field)
			}
		})
	}
	// Nothing was written, and the preferences of everyone still reach PostgreSQL.
	if r := do(t, h, call{method: "PATCH", path: "/v1/me/preferences", body: `{"nick":"ok"}`, headers: cust}); r.status != 200 {
		t.Fatalf("a valid patch after the refused ones: %d %s", r.status, r.body)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := a.Domains().Prefs.Stop(sctx); err != nil { // drains the write-behind queue
		t.Fatalf("preferences not written to PostgreSQL: %v", err)
	}
	var nick string
	if err := a.Pool.QueryRow(ctx, `SELECT data->>'nick' FROM preferences WHERE customer_id='alice'`).Scan(&nick); err != nil || nick != "ok" {
		t.Fatalf("preferences in PostgreSQL: %q %v", nick, err)
	}
}

// TestMetricsLabelsNeverComeFromTheRequest: made-up methods and paths add no series to
// /metrics (method "other", route "unmatched"), and paths outside /v1 count toward the
// per-address ceiling.
func TestMetricsLabelsNeverComeFromTheRequest(t *testing.T) {
	a := newTestApp(t, func(c *Config) { c.RateLimitPerAddress = 1000 })
	h := a.Handler()
	metrics := func() string {
		return string(fromAddr(t, h, "192.0.2.200:1", call{method: "GET", path: "/metrics"}).body)
	}
	for i := range 5 {
		m := fmt.Sprintf("RTPROBE%d%s", i, strings.Repeat("X", 2000))
		fromAddr(t, h, "192.0.2.1:1", call{method: m, path: fmt.Sprintf("/anything/%d", i)})
		fromAddr(t, h, "192.0.2.1:1", call{method: m, path: "/v1/products"})
		fromAddr(t, h, "192.0.2.1:1", call{method: "GET", path: fmt.Sprintf("/v1/nothing/%d", i)})
	}
	before := len(metrics())
	for i := range 5 {
		m := fmt.Sprintf("OTHERPROBE%d%s", i, strings.Repeat("Y", 2000))
		fromAddr(t, h, "192.0.2.1:1", call{method: m, path: fmt.Sprintf("/elsewhere/%d", i)})
		fromAddr(t, h, "192.0.2.1:1", call{method: "GET", path: fmt.Sprintf("/v1/void/%d", i)})
	}
	body := metrics()
	if strings.Contains(body, "PROBE") || strings.Contains(body, "/anything") || strings.Contains(body, "/v1/nothing") {
		t.Fatal("a label value came from the request")
	}
	if !strings.Contains(body, `method="other"`) || !strings.Contains(body, `route="unmatched"`) {
		t.Fatal(`no method="other" / route="unmatched" series`)
	}
	if grown := len(body) - before; grown > 2000 {
		t.Fatalf("/metrics grew by %d bytes after 10 made-up requests", grown)
	}

	// Paths outside /v1 are limited too.
	b := newTestApp(t, func(c *Config) { c.RateLimitPerAddress = 5 })
	limited := 0
	for range 40 {
		for _, p := range []string{"/healthz", "/metrics", "/unknown", "/admin/products"} {
			if fromAddr(t, b.Handler(), "192.0.2.9:1", call{method: "GET", path: p}).status == 429 {
				limited++
			}
		}
	}
	if limited == 0 {
		t.Fatal("160 requests outside /v1 from one address drew no 429")
	}
}

// TestPerAddressCeilingSpansSessions: minting sessions does not multiply the allowance of
// one address.
func TestPerAddressCeilingSpansSessions(t *testing.T) {
	const perAddr = 100
	a := newTestApp(t, func(c *Config) { c.RateLimitPerSec = 50; c.RateLimitPerAddress = perAddr })
	h := a.Handler()
	var sids []string
	for range 10 {
		r := fromAddr(t, h, "198.51.100.7:1", call{method: "POST", path: "/v1/sessions"})
		if r.status != 201 {
			t.Fatalf("session: %d %s", r.status, r.body)
		}
		sids = append(sids, r.json(t)["session_id"].(string))
	}
	time.Sleep(2 * time.Second) // let the address's allowance refill
	start := time.Now()
	ok := 0
	for i := range 1500 {
		if fromAddr(t, h, "198.51.100.7:1", call{method: "GET", path: "/v1/cart", headers: sess(sids[i%10])}).status == 200 {
			ok++
		}
	}
	elapsed := time.Since(start)
	// The ceiling admits its burst (twice the rate) plus the rate over the elapsed time.
	if limit := 2*perAddr + int(elapsed.Seconds()*perAddr) + 10; ok > limit {
		t.Fatalf("10 sessions from one address got %d of 1500 requests through in %v (ceiling allows %d)", ok, elapsed, limit)
	}
	// Another address is not affected.
	if r := fromAddr(t, h, "198.51.100.8:1", call{method: "GET", path: "/v1/products"}); r.status != 200 {
		t.Fatalf("another address: %d", r.status)
	}
}

// TestFailedAuthenticationIsLimited: forged sessions, bad tokens and wrong admin tokens
// are limited per address before they are checked.
func TestFailedAuthenticationIsLimited(t *testing.T) {
	a := newTestApp(t, func(c *Config) { c.RateLimitPerAddress = 100; c.AdminFailuresPerMinute = 10 })
	h := a.Handler()
	forged := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	count := map[int]int{}
	for i := range 800 {
		c := call{method: "GET", path: "/v1/cart", headers: sess(forged)}
		if i%2 == 1 {
			c.headers = bearerOf("not.a.jwt")
		}
		count[fromAddr(t, h, "203.0.113.5:1", c).status]++
	}
	if count[429] == 0 || count[200] != 0 {
		t.Fatalf("800 requests with forged credentials: %v, want 401s then 429s", count)
	}
	// Admin: after ADMIN_FAILURES_PER_MINUTE failures, the address gets 429, even with
	// the right token; another address still gets in.
	statuses := map[int]int{}
	for range 15 {
		statuses[fromAddr(t, h, "203.0.113.6:1", call{method: "GET", path: "/admin/cache/stats", headers: bearerOf("wrong-token")}).status]++
	}
	if statuses[401] != 10 || statuses[429] != 5 {
		t.Fatalf("15 wrong admin tokens: %v, want 10 × 401 then 429", statuses)
	}
	if r := fromAddr(t, h, "203.0.113.6:1", call{method: "GET", path: "/admin/cache/stats", headers: admin()}); r.status != 429 {
		t.Fatalf("right token from a locked-out address: %d, want 429", r.status)
	}
	if r := fromAddr(t, h, "203.0.113.7:1", call{method: "GET", path: "/admin/cache/stats", headers: admin()}); r.status != 200 {
		t.Fatalf("right token from another address: %d %s", r.status, r.body)
	}
}

// TestLimiterHoldsWhileRedisIsDown: with Redis gone, anonymous storefront traffic is still
// limited (the anonymous limiter and the address ceiling are in process).
func TestLimiterHoldsWhileRedisIsDown(t *testing.T) {
	e := newChaosEnv(t, chaosOpts{mutate: func(c *Config) { c.RateLimitPerSec = 20 }})
	if _, err := e.a.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.redis.Kill()
	var mu sync.Mutex
	ok := 0
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 30 {
				if fromAddr(t, e.h, "192.0.2.77:1", call{method: "GET", path: "/v1/products?per_page=1"}).status == 200 {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}
			_ = w
		}()
	}
	wg.Wait()
	if limit := 40 + int(time.Since(start).Seconds()*20) + 5; ok > limit {
		t.Fatalf("Redis down: %d of 300 anonymous requests admitted in %v (allowance %d)", ok, time.Since(start), limit)
	}
	if ok == 0 {
		t.Fatal("Redis down: no catalog read was served at all")
	}
}

// TestStrictJSONAtTheEdge: field names are matched exactly and duplicate keys are refused.
func TestStrictJSONAtTheEdge(t *testing.T) {
	a := newTestApp(t)
	h := a.Handler()
	if _, err := a.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	variant := catalog.SeedVariantID("RR-40").String()
	sid := do(t, h, call{method: "POST", path: "/v1/sessions"}).json(t)["session_id"].(string)
	for _, body := range []string{
		`{"VARIANT_ID":"` + variant + `","quantity":1}`,
		`{"variant_id":"` + variant + `","QUANTITY":1}`,
		`{"Variant_ID":"` + variant + `","quantity":1}`,
		`{"variant_id":"` + variant + `","quantity":1,"quantity":90}`,
		`{"variant_id":"` + variant + `","variant_id":"` + variant + `","quantity":1}`,
	} {
		if r := do(t, h, call{method: "POST", path: "/v1/cart/items", body: body, headers: sess(sid)}); r.status != 400 || r.errorCode(t) != "bad_request" {
			t.Errorf("%s: %d %s, want 400 bad_request", body, r.status, r.body)
		}
	}
	if r := do(t, h, call{method: "PUT", path: "/v1/cart/coupon", body: `{"CODE":"welcome10"}`, headers: sess(sid)}); r.status != 400 {
		t.Errorf("CODE: %d, want 400", r.status)
	}
	if r := do(t, h, call{method: "GET", path: "/v1/cart", headers: sess(sid)}); len(r.json(t)["lines"].([]any)) != 0 {
		t.Fatalf("a refused body changed the cart: %s", r.body)
	}
}

// TestHeadAndMethodNotAllowed: HEAD works wherever GET does, and a wrong method on an
// existing path is a 405 with Allow.
func TestHeadAndMethodNotAllowed(t *testing.T) {
	a := newTestApp(t)
	h := a.Handler()
	if _, err := a.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	product := catalog.SeedProductID("red-runner").String()
	for _, p := range []string{"/healthz", "/openapi.yaml", "/metrics", "/v1/products", "/v1/products/" + product} {
		if r := do(t, h, call{method: "HEAD", path: p}); r.status != 200 {
			t.Errorf("HEAD %s: %d, want 200", p, r.status)
		}
	}
	if r := do(t, h, call{method: "HEAD", path: "/admin/cache/stats", headers: admin()}); r.status != 200 {
		t.Errorf("HEAD /admin/cache/stats: %d, want 200", r.status)
	}
	for _, tc := range []struct{ method, path, allow string }{
		{"POST", "/healthz", "GET, HEAD"},
		{"PUT", "/openapi.yaml", "GET, HEAD"},
		{"DELETE", "/v1/products/" + product, "GET, HEAD"},
		{"POST", "/v1/products", "GET, HEAD"},
		{"GET", "/v1/cart/items", "POST"},
		{"PATCH", "/v1/sessions", "POST, DELETE"},
		{"DELETE", "/v1/me/preferences", "GET, HEAD, PATCH"},
	} {
		r := do(t, h, call{method: tc.method, path: tc.path, headers: admin()})
		if r.status != 405 || r.errorCode(t) != "method_not_allowed" {
			t.Errorf("%s %s: %d %s, want 405", tc.method, tc.path, r.status, r.body)
			continue
		}
		if got := r.header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
	// A path one segment deeper than a route is no route, whatever the method: echo's
	// router would otherwise let the last parameter run over the "/" (id "a/b").
	for _, tc := range []struct{ method, path string }{
		{"DELETE", "/admin/products/aa/bb"},
		{"DELETE", "/admin/products/..%2F.ducts/..%2F.%2Fadmin"},
		{"GET", "/admin/products/" + product + "/x"},
		{"PATCH", "/admin/discounts/a/b"},
		{"DELETE", "/v1/cart/items/a/b"},
	} {
		r := do(t, h, call{method: tc.method, path: tc.path, headers: admin()})
		if r.status != 404 || r.errorCode(t) != "not_found" {
			t.Errorf("%s %s: %d %s, want 404", tc.method, tc.path, r.status, r.body)
		}
	}
	// Over a real connection: HEAD sends no body, so the next request on the same
	// keep-alive connection still parses.
	srv := httptest.NewServer(h)
	defer srv.Close()
	hc := srv.Client()
	for range 3 {
		for _, m := range []string{"HEAD", "GET"} {
			req, _ := http.NewRequest(m, srv.URL+"/v1/products/"+product, nil)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("%s over a kept-alive connection: %v", m, err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || (m == "HEAD" && n != 0) || (m == "GET" && n == 0) {
				t.Fatalf("%s: %d with %d body bytes", m, resp.StatusCode, n)
			}
		}
	}
	if r := do(t, h, call{method: "GET", path: "/v1/no-such-thing"}); r.status != 404 {
		t.Errorf("unknown path: %d, want 404", r.status)
	}
}

// TestUnboundedTokensAreRefused: a far-future exp, a string exp and an oversized token.
func TestUnboundedTokensAreRefused(t *testing.T) {
	a := newTestApp(t)
	h := a.Handler()
	for name, tok := range map[string]string{
		"exp 9999-12-31": customerToken(t, jwt.MapClaims{"sub": "alice", "exp": time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).Unix()}),
		"exp as string":  customerToken(t, jwt.MapClaims{"sub": "alice", "exp": fmt.Sprint(time.Now().Add(time.Hour).Unix())}),
		"85 kB":          customerToken(t, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(), "pad": strings.Repeat("p", 85_000)}),
	} {
		if r := do(t, h, call{method: "GET", path: "/v1/cart", headers: bearerOf(tok)}); r.status != 401 {
			t.Errorf("%s: %d, want 401", name, r.status)
		}
	}
	ok := customerToken(t, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	if r := do(t, h, call{method: "GET", path: "/v1/cart", headers: bearerOf(ok)}); r.status != 200 {
		t.Fatalf("a valid token: %d %s", r.status, r.body)
	}
}

// TestSecurityHeaders: nosniff everywhere, no-store on private answers (errors included).
func TestSecurityHeaders(t *testing.T) {
	a := newTestApp(t)
	h := a.Handler()
	sid := do(t, h, call{method: "POST", path: "/v1/sessions"}).json(t)["session_id"].(string)
	cust := bearerOf(customerToken(t, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}))
	for _, c := range []call{
		{method: "GET", path: "/healthz"}, {method: "GET", path: "/v1/products"}, {method: "GET", path: "/nowhere"},
		{method: "GET", path: "/v1/cart", headers: sess(sid)}, {method: "GET", path: "/v1/cart"},
		{method: "GET", path: "/v1/orders", headers: cust}, {method: "GET", path: "/v1/me/preferences", headers: cust},
		{method: "GET", path: "/admin/cache/stats", headers: admin()}, {method: "GET", path: "/admin/cache/stats"},
		{method: "POST", path: "/v1/sessions"},
	} {
		r := do(t, h, c)
		if r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s (%d): no nosniff", c.method, c.path, r.status)
		}
		private := strings.HasPrefix(c.path, "/v1/cart") || strings.HasPrefix(c.path, "/v1/orders") ||
			strings.HasPrefix(c.path, "/v1/me") || strings.HasPrefix(c.path, "/admin") || c.path == "/v1/sessions"
		if private && r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s (%d): Cache-Control %q, want no-store", c.method, c.path, r.status, r.header.Get("Cache-Control"))
		}
	}
}

// TestRedisLossKeepsTheShopperAndTheirCheckout: after a FLUSHALL, an anonymous shopper with
// an open checkout sees it and completes it with the same session id (the session
// credential is verified without Redis; the checkout lives in PostgreSQL).
func TestRedisLossKeepsTheShopperAndTheirCheckout(t *testing.T) {
	e := newChaosEnv(t, chaosOpts{})
	ctx := context.Background()
	if _, err := e.a.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	variant := catalog.SeedVariantID("RR-40").String()
	me := do(t, e.h, call{method: "POST", path: "/v1/sessions"})
	if me.status != 201 {
		t.Fatalf("session: %d %s", me.status, me.body)
	}
	sid := me.json(t)["session_id"].(string)
	if r := do(t, e.h, call{method: "POST", path: "/v1/cart/items", body: `{"variant_id":"` + variant + `","quantity":1}`, headers: sess(sid)}); r.status != 200 {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	co := do(t, e.h, call{method: "POST", path: "/v1/checkouts", body: `{"email":"flush@example.com"}`, headers: sess(sid)})
	if co.status != 201 {
		t.Fatalf("checkout: %d %s", co.status, co.body)
	}
	id := co.json(t)["id"].(string)

	if err := e.redis.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	if r := do(t, e.h, call{method: "GET", path: "/v1/checkouts/" + id, headers: sess(sid)}); r.status != 200 || r.json(t)["state"] != "awaiting_payment" {
		t.Fatalf("the shopper's checkout after FLUSHALL: %d %s", r.status, r.body)
	}
	r := do(t, e.h, call{method: "POST", path: "/v1/checkouts/" + id + "/complete", body: `{"payment_token":"tok_ok"}`, headers: sess(sid)})
	if r.status != 200 {
		t.Fatalf("complete after FLUSHALL: %d %s", r.status, r.body)
	}
	order, _ := r.json(t)["order"].(map[string]any)
	oid, _ := order["id"].(string)
	if oid == "" {
		t.Fatalf("no order in %s", r.body)
	}
	if r := do(t, e.h, call{method: "GET", path: "/v1/orders/" + oid, headers: sess(sid)}); r.status != 200 {
		t.Fatalf("the order, with the same session: %d %s", r.status, r.body)
	}
	// Someone else still cannot see it.
	other := do(t, e.h, call{method: "POST", path: "/v1/sessions"}).json(t)["session_id"].(string)
	if r := do(t, e.h, call{method: "GET", path: "/v1/orders/" + oid, headers: sess(other)}); r.status != 404 {
		t.Fatalf("another session reads the order: %d", r.status)
	}
}

// TestStorefrontBehindAProxy: with TRUSTED_PROXIES, shoppers behind one storefront backend
// each get their own per-address allowance; without it, X-Forwarded-For is ignored. The
// retired TRUST_PROXY_HEADERS is a configuration error.
func TestStorefrontBehindAProxy(t *testing.T) {
	via := func(client string) map[string]string { return map[string]string{"X-Forwarded-For": client} }
	for _, tc := range []struct {
		name          string
		trusted       []string
		secondLimited bool
	}{{"trusted", []string{"10.0.0.0/8"}, false}, {"not trusted", nil, true}} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestApp(t, func(c *Config) { c.RateLimitPerAddress = 5; c.TrustedProxies = tc.trusted })
			h := a.Handler()
			limited := false
			for range 30 {
				if fromAddr(t, h, "10.0.0.5:4000", call{method: "GET", path: "/healthz", headers: via("198.51.100.1")}).status == 429 {
					limited = true
				}
			}
			if !limited {
				t.Fatal("one shopper's 30 requests drew no 429")
			}
			got := fromAddr(t, h, "10.0.0.5:4000", call{method: "GET", path: "/healthz", headers: via("198.51.100.2")}).status
			if (got == 429) != tc.secondLimited {
				t.Fatalf("another shopper behind the same proxy: %d", got)
			}
		})
	}
	cfg := testConfig(t)
	cfg.TrustProxyHeaders = true
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "TRUSTED_PROXIES") {
		t.Fatalf("TRUST_PROXY_HEADERS=true: %v, want an error pointing to TRUSTED_PROXIES", err)
	}
	cfg.TrustProxyHeaders, cfg.TrustedProxies = false, []string{"10.0.0.0/99"}
	if err := cfg.Validate(); err == nil {
		t.Fatal("a malformed TRUSTED_PROXIES was accepted")
	}
}
