package cart

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"commerce/internal/platform/auth"
	"commerce/internal/platform/httpx"
	"commerce/internal/platform/testenv"

	"commerce/internal/platform/spectest"
)

const jwtSecret = "test-secret-0123456789"

type api struct {
	*env
	echo     *echo.Echo
	tokens   *auth.Tokens
	sessions *auth.Sessions
	prefs    *Preferences
}

// newAPI builds the /v1 routes the way the app does: the error funnel, auth.Identify on
// /v1, and this package's handler.
func newAPI(t *testing.T, e *env) *api {
	t.Helper()
	a := &api{env: e, echo: echo.New(), tokens: auth.NewTokens(jwtSecret),
		sessions: auth.NewSessions(e.rdb, e.space, time.Hour, 0)}
	a.prefs = newPrefsOn(t, e, PrefsOptions{})
	a.echo.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
	a.echo.Use(httpx.RequestIDMiddleware(), httpx.BodyLimit()) // as the app serves them
	v1 := a.echo.Group("/v1", auth.Identify(a.tokens, a.sessions))
	NewHandler(e.svc, a.prefs).Register(v1, a.echo.Group("/admin"))
	return a
}

func (a *api) session(t *testing.T) string {
	t.Helper()
	id, _, err := a.sessions.Create(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (a *api) token(t *testing.T, customer string, ttl time.Duration) string {
	t.Helper()
	tok, err := a.tokens.Issue(customer, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ident is how a request identifies itself.
type ident struct {
	session string // the session whose credential is sent in X-Session-ID
	raw     string // X-Session-ID sent as it is (a forged credential)
	bearer  string // Authorization: Bearer
}

type result struct {
	status int
	body   []byte
	header http.Header
}

func (r result) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (r result) code() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (a *api) do(t *testing.T, method, path string, id ident, body string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if id.session != "" {
		cred, _ := a.sessions.Credential(id.session)
		req.Header.Set(auth.HeaderSession, cred)
	}
	if id.raw != "" {
		req.Header.Set(auth.HeaderSession, id.raw)
	}
	if id.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+id.bearer)
	}
	rec := httptest.NewRecorder()
	spectest.Handler(t, a.echo).ServeHTTP(rec, req) // checked against api/openapi.yaml
	return result{status: rec.Code, body: rec.Body.Bytes(), header: rec.Header()}
}

func TestCartRoutesFollowTheContract(t *testing.T) {
	e := newEnv(t)
	a := newAPI(t, e)
	sid := a.session(t)
	me := ident{session: sid}
	v := e.variant(t, 4999, 5)

	r := a.do(t, "GET", "/v1/cart", me, "")
	empty := r.json(t)
	if r.status != 200 || empty["owner"] != "session" || len(empty["lines"].([]any)) != 0 ||
		empty["coupon_code"] != nil || empty["locked_by_checkout"] != nil || empty["updated_at"] != nil || empty["expires_at"] != nil {
		t.Fatalf("empty cart: %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), sid) {
		t.Fatal("the cart body carries the session id")
	}

	r = a.do(t, "POST", "/v1/cart/items", me, `{"variant_id": "`+v.String()+`", "quantity": 2}`)
	if r.status != 200 {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	c := r.json(t)
	line := c["lines"].([]any)[0].(map[string]any)
	for _, k := range []string{"variant_id", "sku", "name", "quantity", "unit_price", "line_total", "discount"} {
		if _, ok := line[k]; !ok {
			t.Errorf("line lacks %q: %v", k, line)
		}
	}
	for _, k := range []string{"id", "owner", "lines", "coupon_code", "applied_discounts", "subtotal", "discount_total",
		"total", "locked_by_checkout", "updated_at", "expires_at"} {
		if _, ok := c[k]; !ok {
			t.Errorf("cart lacks %q", k)
		}
	}
	if total := c["total"].(map[string]any); total["amount"] != 9998.0 || total["currency"] != "USD" {
		t.Errorf("total %v", total)
	}
	if line["name"] != "Shoe 42" || line["quantity"] != 2.0 {
		t.Errorf("line %v", line)
	}

	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"malformed variant in path", "PUT", "/v1/cart/items/nope", `{"quantity": 1}`, 400, "bad_request"},
		{"malformed variant in body", "POST", "/v1/cart/items", `{"variant_id": "x", "quantity": 1}`, 400, "bad_request"},
		{"unknown field", "POST", "/v1/cart/items", `{"variant_id": "` + v.String() + `", "quantity": 1, "price": 1}`, 400, "bad_request"},
		{"fractional quantity", "POST", "/v1/cart/items", `{"variant_id": "` + v.String() + `", "quantity": 1.5}`, 400, "bad_request"},
		{"malformed JSON", "POST", "/v1/cart/items", `{"variant_id": `, 400, "bad_request"},
		{"missing quantity", "POST", "/v1/cart/items", `{"variant_id": "` + v.String() + `"}`, 422, "validation_failed"},
		{"quantity 0", "POST", "/v1/cart/items", `{"variant_id": "` + v.String() + `", "quantity": 0}`, 422, "validation_failed"},
		{"quantity 101", "PUT", "/v1/cart/items/" + v.String(), `{"quantity": 101}`, 422, "validation_failed"},
		{"unknown variant", "POST", "/v1/cart/items", `{"variant_id": "` + uuid.NewString() + `", "quantity": 1}`, 404, "not_found"},
		{"over stock", "POST", "/v1/cart/items", `{"variant_id": "` + v.String() + `", "quantity": 4}`, 409, "insufficient_stock"},
		{"unknown coupon", "PUT", "/v1/cart/coupon", `{"code": "NOPE"}`, 404, "not_found"},
		{"coupon not applicable", "PUT", "/v1/cart/coupon", `{"code": "BIG10"}`, 422, "coupon_not_applicable"},
		{"coupon missing", "PUT", "/v1/cart/coupon", `{}`, 422, "validation_failed"},
		{"merge without a customer", "POST", "/v1/cart/merge", ``, 401, "unauthorized"},
		{"preferences without a customer", "GET", "/v1/me/preferences", ``, 401, "unauthorized"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do(t, tc.method, tc.path, me, tc.body)
			if r.status != tc.status || r.code() != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	r = a.do(t, "POST", "/v1/cart/items", me, `{"variant_id": "`+v.String()+`", "quantity": 4}`)
	details := r.json(t)["error"].(map[string]any)["details"].(map[string]any)
	if details["variant_id"] != v.String() || details["requested"] != 6.0 || details["available"] != 5.0 {
		t.Fatalf("insufficient_stock details %v", details)
	}

	// Frozen by a checkout: every mutation is 409 cart_locked, reads still work.
	chk := uuid.NewString()
	if _, err := e.svc.Freeze(context.Background(), SessionOwner(sid), chk); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ method, path, body string }{
		{"POST", "/v1/cart/items", `{"variant_id": "` + v.String() + `", "quantity": 1}`},
		{"PUT", "/v1/cart/items/" + v.String(), `{"quantity": 1}`},
		{"DELETE", "/v1/cart/items/" + v.String(), ``},
		{"DELETE", "/v1/cart", ``},
		{"PUT", "/v1/cart/coupon", `{"code": "SAVE10"}`},
		{"DELETE", "/v1/cart/coupon", ``},
	} {
		if r := a.do(t, m.method, m.path, me, m.body); r.status != 409 || r.code() != "cart_locked" {
			t.Errorf("%s %s on a frozen cart: %d %s", m.method, m.path, r.status, r.body)
		}
	}
	r = a.do(t, "GET", "/v1/cart", me, "")
	if r.json(t)["locked_by_checkout"] != chk {
		t.Fatalf("locked_by_checkout: %s", r.body)
	}
}

func TestMergeRoute(t *testing.T) {
	e := newEnv(t)
	a := newAPI(t, e)
	sid, cust := a.session(t), newCustomerID()
	tok := a.token(t, cust, time.Hour)
	v := e.variant(t, 100, 50)
	a.do(t, "POST", "/v1/cart/items", ident{session: sid}, `{"variant_id": "`+v.String()+`", "quantity": 2}`)
	a.do(t, "POST", "/v1/cart/items", ident{bearer: tok}, `{"variant_id": "`+v.String()+`", "quantity": 1}`)

	if r := a.do(t, "POST", "/v1/cart/merge", ident{bearer: tok}, ""); r.status != 400 || r.code() != "bad_request" {
		t.Fatalf("merge without X-Session-ID: %d %s", r.status, r.body)
	}
	if r := a.do(t, "POST", "/v1/cart/merge", ident{session: sid}, ""); r.status != 401 {
		t.Fatalf("merge without a customer: %d %s", r.status, r.body)
	}
	for range 2 {
		r := a.do(t, "POST", "/v1/cart/merge", ident{session: sid, bearer: tok}, "")
		c := r.json(t)
		if r.status != 200 || c["owner"] != "customer" || c["lines"].([]any)[0].(map[string]any)["quantity"] != 3.0 {
			t.Fatalf("merge: %d %s", r.status, r.body)
		}
	}
	// With both identities, "the caller's cart" is the customer's.
	if r := a.do(t, "GET", "/v1/cart", ident{session: sid, bearer: tok}, ""); r.json(t)["owner"] != "customer" {
		t.Fatalf("cart with both identities: %s", r.body)
	}
	if r := a.do(t, "GET", "/v1/cart", ident{session: sid}, ""); len(r.json(t)["lines"].([]any)) != 0 {
		t.Fatalf("session cart after merge: %s", r.body)
	}
}

func TestPreferencesRoutes(t *testing.T) {
	e := newEnv(t)
	a := newAPI(t, e)
	me := ident{bearer: a.token(t, newCustomerID(), time.Hour)}
	if r := a.do(t, "GET", "/v1/me/preferences", me, ""); r.status != 200 || string(r.body) != "{}" {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	if r := a.do(t, "PATCH", "/v1/me/preferences", me, `{"theme": "dark", "n": null}`); r.status != 200 || string(r.body) != `{"theme":"dark"}` {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	big := `{"blob": "` + strings.Repeat("x", MaxPreferencesBytes) + `"}`
	for _, tc := range []struct {
		body   string
		status int
		code   string
	}{
		{big, 422, "validation_failed"},
		{`[1, 2]`, 400, "bad_request"},
		{`"dark"`, 400, "bad_request"},
		{`null`, 400, "bad_request"},
		{`{"a": }`, 400, "bad_request"},
		{``, 400, "bad_request"},
	} {
		if r := a.do(t, "PATCH", "/v1/me/preferences", me, tc.body); r.status != tc.status || r.code() != tc.code {
			t.Errorf("patch %.20q: %d %s, want %d %s", tc.body, r.status, r.body, tc.status, tc.code)
		}
	}
	if r := a.do(t, "GET", "/v1/me/preferences", me, ""); string(r.body) != `{"theme":"dark"}` {
		t.Fatalf("a refused patch changed the preferences: %s", r.body)
	}
}

// TestCartRoutesNeverCrossOwners: another session, another customer, no identity, a forged
// session id, an expired or foreign-signed JWT never read or change someone else's cart or
// preferences: they get 401, or their own (empty) cart.
func TestCartRoutesNeverCrossOwners(t *testing.T) {
	e := newEnv(t)
	a := newAPI(t, e)
	ctx := context.Background()
	v := e.variant(t, 1234, 100)
	victimSession := a.session(t)
	victimCustomer := newCustomerID()
	victimToken := a.token(t, victimCustomer, time.Hour)
	for _, id := range []ident{{session: victimSession}, {bearer: victimToken}} {
		if r := a.do(t, "POST", "/v1/cart/items", id, `{"variant_id": "`+v.String()+`", "quantity": 7}`); r.status != 200 {
			t.Fatalf("victim add: %d %s", r.status, r.body)
		}
		if r := a.do(t, "PUT", "/v1/cart/coupon", id, `{"code": "SAVE10"}`); r.status != 200 {
			t.Fatalf("victim coupon: %d %s", r.status, r.body)
		}
	}
	if r := a.do(t, "PATCH", "/v1/me/preferences", ident{bearer: victimToken}, `{"secret": "victim"}`); r.status != 200 {
		t.Fatal(r.status)
	}
	snapshot := func() string {
		s := must(e.svc.Get(ctx, SessionOwner(victimSession)))(t)
		c := must(e.svc.Get(ctx, CustomerOwner(victimCustomer)))(t)
		s.ExpiresAt, c.ExpiresAt = time.Time{}, time.Time{} // reading slides them
		p := must(a.prefs.Get(ctx, victimCustomer))(t)
		return jsonString(t, toCartJSON(s)) + jsonString(t, toCartJSON(c)) + string(p)
	}
	before := snapshot()
	victimIDs := []string{SessionOwner(victimSession).CartID(), CustomerOwner(victimCustomer).CartID()}

	forged := newSessionID(t) // well-formed, never issued
	otherSecret := auth.NewTokens("another-secret-0123456789")
	foreign, _ := otherSecret.Issue(victimCustomer, time.Hour)
	attackers := []struct {
		name   string
		id     ident
		unauth bool // every route must answer 401
	}{
		{"another session", ident{session: a.session(t)}, false},
		{"another customer", ident{bearer: a.token(t, newCustomerID(), time.Hour)}, false},
		{"another customer with its own session", ident{bearer: a.token(t, newCustomerID(), time.Hour), session: a.session(t)}, false},
		{"no identity", ident{}, true},
		{"forged session id", ident{raw: forged}, true},
		{"forged session credential", ident{raw: forged + ".9999999999.AAAAAAAAAAAAAAAAAAAAAA"}, true},
		{"forged session id with a customer", ident{raw: forged, bearer: a.token(t, newCustomerID(), time.Hour)}, true},
		{"malformed session id", ident{session: victimSession + "x"}, true},
		{"expired JWT of the victim", ident{bearer: a.token(t, victimCustomer, -time.Hour)}, true},
		{"victim's id signed with another secret", ident{bearer: foreign}, true},
		{"expired JWT with the victim's session", ident{bearer: a.token(t, victimCustomer, -time.Hour), session: victimSession}, true},
	}
	routes := []struct{ method, path, body string }{
		{"GET", "/v1/cart", ""},
		{"POST", "/v1/cart/items", `{"variant_id": "` + v.String() + `", "quantity": 1}`},
		{"PUT", "/v1/cart/items/" + v.String(), `{"quantity": 1}`},
		{"DELETE", "/v1/cart/items/" + v.String(), ""},
		{"PUT", "/v1/cart/coupon", `{"code": "SAVE10"}`},
		{"DELETE", "/v1/cart/coupon", ""},
		{"DELETE", "/v1/cart", ""},
		{"POST", "/v1/cart/merge", ""},
		{"GET", "/v1/me/preferences", ""},
		{"PATCH", "/v1/me/preferences", `{"secret": "attacker"}`},
	}
	for _, at := range attackers {
		for _, rt := range routes {
			r := a.do(t, rt.method, rt.path, at.id, rt.body)
			switch {
			case at.unauth && r.status != 401:
				t.Errorf("%s: %s %s = %d %s, want 401", at.name, rt.method, rt.path, r.status, r.body)
			case r.status >= 500:
				t.Errorf("%s: %s %s = %d %s", at.name, rt.method, rt.path, r.status, r.body)
			}
			for _, leak := range append(victimIDs, "victim", victimSession) {
				if bytes.Contains(r.body, []byte(leak)) {
					t.Errorf("%s: %s %s shows the victim's data (%q): %s", at.name, rt.method, rt.path, leak, r.body)
				}
			}
		}
	}
	if after := snapshot(); after != before {
		t.Fatalf("the victims' data changed:\nbefore %s\n after %s", before, after)
	}
}

func jsonString(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCartRoutesAnswer503WhileRedisIsDown(t *testing.T) {
	pool, _ := testenv.DB(t)
	srv := testenv.StartRedis(t)
	e := newEnvOn(t, failFast(t, srv.Addr), "", pool)
	a := newAPI(t, e)
	me := ident{bearer: a.token(t, newCustomerID(), time.Hour)}
	v := e.variant(t, 100, 10)
	if r := a.do(t, "POST", "/v1/cart/items", me, `{"variant_id": "`+v.String()+`", "quantity": 1}`); r.status != 200 {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	if r := a.do(t, "PATCH", "/v1/me/preferences", me, `{"a": 1}`); r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	if err := a.prefs.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	for _, rt := range []struct{ method, path, body string }{
		{"GET", "/v1/cart", ""},
		{"POST", "/v1/cart/items", `{"variant_id": "` + v.String() + `", "quantity": 1}`},
		{"DELETE", "/v1/cart", ""},
		{"PATCH", "/v1/me/preferences", `{"b": 1}`},
	} {
		r := a.do(t, rt.method, rt.path, me, rt.body)
		if r.status != 503 || r.code() != "unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s with Redis down: %d %s", rt.method, rt.path, r.status, r.body)
		}
		if bytes.Contains(r.body, []byte("127.0.0.1")) || bytes.Contains(r.body, []byte("dial")) {
			t.Errorf("the error leaks internals: %s", r.body)
		}
	}
	if r := a.do(t, "GET", "/v1/me/preferences", me, ""); r.status != 200 || string(r.body) != `{"a":1}` {
		t.Fatalf("preferences with Redis down: %d %s", r.status, r.body)
	}
}
