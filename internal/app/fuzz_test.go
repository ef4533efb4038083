package app

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/spectest"
)

// fuzzApp builds the app the fuzz inputs run against, with a session, a customer token
// and, when the catalog routes are wired, a product with stock and a discount.
type fuzzApp struct {
	a        *App
	h        http.Handler
	session  string
	customer string
	ids      map[string]string // kind (product, variant, checkout, discount) → an existing id
	spec     *spectest.Validator
}

func newFuzzApp(tb testing.TB) *fuzzApp {
	tb.Helper()
	a, err := New(context.Background(), testConfig(tb), slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("app.New: %v", err)
	}
	tb.Cleanup(func() { a.Close(context.Background()) })
	fa := &fuzzApp{a: a, h: a.Handler(), ids: map[string]string{}, spec: spectest.Must(tb)}
	// Every setup step must succeed with exactly the documented status and a body that
	// decodes: a seed that silently failed would fuzz an app without the ids it needs.
	setup := func(what string, want int, method, target string, body []byte, headers map[string]string, into any) {
		tb.Helper()
		status, resp, err := fa.send(method, target, body, headers)
		if err != nil {
			tb.Fatalf("%s: %v", what, err)
		}
		if status != want {
			tb.Fatalf("%s: %d, want %d: %s", what, status, want, resp)
		}
		if into != nil {
			if err := json.Unmarshal(resp, into); err != nil {
				tb.Fatalf("%s: decode %s: %v", what, resp, err)
			}
		}
	}
	var s struct {
		SessionID string `json:"session_id"`
	}
	setup("create session", http.StatusCreated, "POST", "/v1/sessions", nil, nil, &s)
	fa.session = s.SessionID
	if fa.customer, err = a.Tokens.Issue("fuzz-customer", 24*time.Hour); err != nil {
		tb.Fatal(err)
	}
	adminH := map[string]string{"Authorization": "Bearer " + testAdminToken}
	var p struct {
		ID       string `json:"id"`
		Variants []struct {
			ID string `json:"id"`
		} `json:"variants"`
	}
	setup("seed product", http.StatusCreated, "POST", "/admin/products", []byte(`{"slug":"fuzz-shoe","name":"Fuzz shoe","description":"d",
		"category":"shoes","status":"active","attributes":{},"variants":[{"sku":"FZ-1","name":"42",
		"price":{"amount":4999,"currency":"USD"},"attributes":{},"stock":1000}]}`), adminH, &p)
	if p.ID == "" || len(p.Variants) != 1 || p.Variants[0].ID == "" {
		tb.Fatalf("seed product: no ids in %+v", p)
	}
	fa.ids["product"] = p.ID
	fa.ids["variant"] = p.Variants[0].ID
	var d struct {
		ID string `json:"id"`
	}
	setup("seed discount", http.StatusCreated, "POST", "/admin/discounts", []byte(`{"name":"Fuzz","code":"FUZZ10","kind":"percentage",
		"value":10,"scope":{"type":"cart","ids":[]},"priority":1,"stackable":true,"active":true}`), adminH, &d)
	if d.ID == "" {
		tb.Fatal("seed discount: no id")
	}
	fa.ids["discount"] = d.ID
	sh := map[string]string{"X-Session-ID": fa.session}
	setup("seed cart", http.StatusOK, "POST", "/v1/cart/items", []byte(`{"variant_id":"`+fa.ids["variant"]+`","quantity":1}`), sh, nil)
	var c struct {
		ID string `json:"id"`
	}
	setup("seed checkout", http.StatusCreated, "POST", "/v1/checkouts", []byte(`{}`), sh, &c)
	if c.ID == "" {
		tb.Fatal("seed checkout: no id")
	}
	fa.ids["checkout"] = c.ID
	tb.Logf("fuzzing with ids %v", fa.ids)
	return fa
}

// send serves one request and checks the exchange against api/openapi.yaml: the error
// says how the answer breaks the document (status 0: the request could not be built).
func (fa *fuzzApp) send(method, target string, body []byte, headers map[string]string) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://shop.test"+target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil
	}
	req.RemoteAddr = "192.0.2.10:4000"
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	fa.h.ServeHTTP(rec, req)
	res := rec.Result()
	err = fa.spec.Check(context.Background(), spectest.Exchange{Request: req, RequestBody: body,
		Status: res.StatusCode, Header: res.Header, Body: rec.Body.Bytes()})
	return rec.Code, rec.Body.Bytes(), err
}

var routeParam = regexp.MustCompile(`:[A-Za-z_]+`)

// goodBodies are valid requests per route (echo pattern with params as {}), so that seeds
// reach past validation into the handlers.
var goodBodies = map[string]string{
	"POST /v1/cart/items":                   `{"variant_id":"{variant}","quantity":1}`,
	"PUT /v1/cart/items/{}":                 `{"quantity":2}`,
	"PUT /v1/cart/coupon":                   `{"code":"FUZZ10"}`,
	"POST /v1/checkouts":                    `{"email":"a@example.com"}`,
	"POST /v1/checkouts/{}/complete":        `{"payment_token":"tok_ok"}`,
	"PATCH /v1/me/preferences":              `{"theme":"dark","sizes":[42]}`,
	"POST /v1/payments/webhook":             `{"id":"evt_1","type":"payment_intent.succeeded","payment_intent_id":"pi_1"}`,
	"POST /admin/products":                  `{"slug":"s-{rand}","name":"N","description":"","category":"c","status":"active","attributes":{},"variants":[{"sku":"SKU-{rand}","name":"v","price":{"amount":100,"currency":"USD"},"attributes":{},"stock":5}]}`,
	"PATCH /admin/products/{}":              `{"name":"Renamed","status":"active"}`,
	"PATCH /admin/variants/{}":              `{"price":{"amount":1234,"currency":"USD"}}`,
	"POST /admin/inventory/{}/adjust":       `{"delta":5,"reason":"restock"}`,
	"PUT /admin/inventory/{}":               `{"on_hand":50,"reason":"correction"}`,
	"POST /admin/inventory/reconcile":       `{"variant_ids":["{variant}"]}`,
	"POST /admin/discounts":                 `{"name":"D","code":null,"kind":"fixed_amount","value":100,"currency":"USD","scope":{"type":"cart","ids":[]},"priority":0,"stackable":true,"active":true}`,
	"PATCH /admin/discounts/{}":             `{"active":false}`,
	"POST /admin/cache/warm":                `{"targets":["products","discounts"]}`,
	"POST /v1/cart/merge":                   ``,
	"POST /v1/sessions":                     ``,
	"POST /admin/inventory/sweep":           ``,
	"POST /v1/checkouts/{}/cancel":          ``,
	"DELETE /admin/cache?namespace=product": ``,
}

// badBodies are the malformed inputs every route with a body is seeded with.
var badBodies = []string{
	``, `{}`, `{`, `[]`, `null`, `"str"`, `{"unknown_field":1}`, `{"quantity":"2"}`, `{"quantity":-5}`,
	`{"quantity":0}`, `{"quantity":1e309}`, `{"quantity":99999999999999999999}`, `{"delta":-9223372036854775808}`,
	`{"on_hand":-1,"reason":""}`, `{"variant_id":"not-a-uuid","quantity":1}`, `{"variant_id":"{variant}","quantity":101}`,
	`{"price":{"amount":-1,"currency":"XXX"}}`, `{"name":"` + strings.Repeat("ü", 300) + `"}`, `{"code":"💥\u0000'; DROP TABLE orders;--"}`,
	`{"variant_ids":[1,2]}`, `{"targets":["everything"]}`, `{"kind":"percentage","value":1000}`, `{"a":1}{"b":2}`,
}

// badParams are path parameter values every parameterised route is seeded with.
var badParams = []string{"not-a-uuid", "00000000-0000-0000-0000-000000000000", "%F0%9F%92%A5", "..%2F..%2Fadmin",
	"0190A6F2-7C1E-7B4E-9D1A-3F2B8C9D0E1F", "{0190a6f2-7c1e-7b4e-9d1a-3f2b8c9d0e1f}", strings.Repeat("a", 300), "%00"}

func (fa *fuzzApp) paramFor(path string) string {
	for _, k := range []string{"variant", "checkout", "discount", "product"} {
		if strings.Contains(path, k) && fa.ids[k] != "" {
			return fa.ids[k]
		}
	}
	return uuid.NewString()
}

func (fa *fuzzApp) fill(s string) string {
	s = strings.ReplaceAll(s, "{variant}", fa.ids["variant"])
	return strings.ReplaceAll(s, "{rand}", strings.ToLower(uuid.NewString()[:8]))
}

// identities: 0 anonymous, 1 session, 2 customer, 3 customer and session, 4 admin, 5
// admin token on a storefront route / customer token on an admin route (wrong audience).
func (fa *fuzzApp) headers(identity uint8, raw string) map[string]string {
	h := map[string]string{}
	switch identity % 6 {
	case 1:
		h["X-Session-ID"] = fa.session
	case 2:
		h["Authorization"] = "Bearer " + fa.customer
	case 3:
		h["Authorization"] = "Bearer " + fa.customer
		h["X-Session-ID"] = fa.session
	case 4:
		h["Authorization"] = "Bearer " + testAdminToken
	case 5:
		h["Authorization"] = "Bearer " + fa.customer + "x"
	}
	for _, line := range strings.Split(raw, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !validHeader(k, v) {
			continue
		}
		h[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return h
}

// validHeader keeps what could arrive over HTTP/1.1: a token name and a value without
// control characters (net/http's server rejects the rest before a handler runs).
func validHeader(k, v string) bool {
	k = strings.TrimSpace(k)
	if k == "" || len(k) > 64 {
		return false
	}
	for _, r := range k {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	for _, r := range v {
		if (r < ' ' && r != '\t') || r == 0x7f {
			return false
		}
	}
	return true
}

// FuzzHandlers sends arbitrary requests, seeded from every registered route with valid,
// malformed and hostile inputs, through the whole app (middleware, auth, handlers, the
// real PostgreSQL and Redis). No input may panic or get a 5xx: with both dependencies up,
// every bad input is the caller's mistake and must be a 4xx in the contract's shape.
func FuzzHandlers(f *testing.F) {
	fa := newFuzzApp(f)
	seen := map[string]bool{}
	for _, r := range fa.a.Echo.Routes() {
		if r.Method == "echo_route_any" || strings.HasSuffix(r.Path, "/*") || seen[r.Method+r.Path] {
			continue
		}
		seen[r.Method+r.Path] = true
		pattern := r.Method + " " + routeParam.ReplaceAllString(r.Path, "{}")
		identity := uint8(1)
		switch {
		case strings.HasPrefix(r.Path, "/admin"):
			identity = 4
		case strings.Contains(r.Path, "/me/") || strings.HasSuffix(r.Path, "/merge") || strings.Contains(r.Path, "/orders"):
			identity = 3
		}
		good := fa.fill(goodBodies[pattern])
		path := func(param string) string { return routeParam.ReplaceAllString(r.Path, param) }
		hasParam := routeParam.MatchString(r.Path)
		f.Add(r.Method, path(fa.paramFor(r.Path)), []byte(good), identity, "")
		f.Add(r.Method, path(fa.paramFor(r.Path)), []byte(good), uint8(0), "")
		f.Add(r.Method, path(fa.paramFor(r.Path)), []byte(good), uint8(5), "Idempotency-Key: k-"+uuid.NewString())
		if hasParam {
			for _, p := range badParams {
				f.Add(r.Method, path(p), []byte(good), identity, "")
			}
		}
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			for _, b := range badBodies {
				f.Add(r.Method, path(fa.paramFor(r.Path)), []byte(fa.fill(b)), identity, "")
			}
			f.Add(r.Method, path(fa.paramFor(r.Path)), []byte(good), identity, "Content-Type: text/plain")
			f.Add(r.Method, path(fa.paramFor(r.Path)), []byte(good), identity, "Idempotency-Key: "+strings.Repeat("k", 300))
		}
	}
	for _, q := range []string{"/v1/products?page=-1&per_page=1000", "/v1/products?page=99999999999999999999",
		"/v1/products?category=%F0%9F%92%A5&per_page=abc", "/admin/inventory/reconcile?dry_run=maybe",
		"/admin/cache?namespace=../../*", "/v1/nope", "/v1/products/"} {
		f.Add("GET", q, []byte(nil), uint8(1), "")
	}
	f.Add("DELETE", "/admin/cache?namespace=*", []byte(nil), uint8(4), "")
	f.Add("POST", "/v1/payments/webhook", []byte(`{"id":"e"}`), uint8(0), "X-Signature: sha256=zz")
	f.Add("GET", "/v1/cart", []byte(nil), uint8(0), "X-Session-ID: forged\nAuthorization: Basic eA==")

	f.Fuzz(func(t *testing.T, method, target string, body []byte, identity uint8, rawHeaders string) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		if _, err := url.ParseRequestURI(target); err != nil {
			return // not something an HTTP server would route
		}
		status, resp, specErr := fa.send(method, target, body, fa.headers(identity, rawHeaders))
		if status == 0 {
			return // http.NewRequest refused the method or URL
		}
		if specErr != nil {
			t.Fatalf("identity %d, headers %q, body %q: %v", identity, rawHeaders, body, specErr)
		}
		if status >= 500 {
			t.Fatalf("%s %s (identity %d, headers %q, body %q) → %d %s", method, target, identity, rawHeaders, body, status, resp)
		}
		if status >= 400 && method != http.MethodHead {
			var e struct {
				Error *struct {
					Code    string         `json:"code"`
					Message string         `json:"message"`
					Details map[string]any `json:"details"`
				} `json:"error"`
			}
			if err := json.Unmarshal(resp, &e); err != nil || e.Error == nil || e.Error.Code == "" || e.Error.Details == nil {
				t.Fatalf("%s %s → %d without the contract's error shape: %s", method, target, status, resp)
			}
		}
	})
}
