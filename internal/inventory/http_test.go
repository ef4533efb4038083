package inventory

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"commerce/internal/platform/httpx"

	"commerce/internal/platform/spectest"
)

type httpEnv struct {
	*env
	svc  *Service
	echo *echo.Echo
}

func newHTTPEnv(t *testing.T, e *env) *httpEnv {
	h := &httpEnv{env: e, svc: e.service(Options{}), echo: echo.New()}
	h.echo.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
	h.echo.Use(httpx.RequestIDMiddleware())
	NewHandler(h.svc).Register(h.echo.Group("/v1"), h.echo.Group("/admin"))
	return h
}

func (h *httpEnv) do(method, path, body string) (int, map[string]any, http.Header) {
	h.t.Helper()
	var req *http.Request
	if body == "" {
		req = httptest.NewRequest(method, path, nil)
	} else {
		req = httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	spectest.Handler(h.t, h.echo).ServeHTTP(rec, req) // checked against api/openapi.yaml
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		h.t.Fatalf("%s %s: %d %q: %v", method, path, rec.Code, rec.Body.String(), err)
	}
	return rec.Code, out, rec.Header()
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func fieldsOf(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, ",")
}

func TestHTTPAvailability(t *testing.T) {
	h := newHTTPEnv(t, newEnv(t))
	id := h.variant(7)
	if err := h.svc.Reserve(context.Background(), "c1", []Line{{id, 2}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	code, body, _ := h.do("GET", "/v1/variants/"+id.String()+"/availability", "")
	if code != 200 || fieldsOf(body) != "available,in_stock,variant_id" || body["available"] != 5.0 ||
		body["in_stock"] != true || body["variant_id"] != id.String() {
		t.Fatalf("availability = %d %v", code, body)
	}
	if code, body, _ := h.do("GET", "/v1/variants/"+uuid.NewString()+"/availability", ""); code != 404 || errCode(body) != "not_found" {
		t.Fatalf("unknown = %d %v", code, body)
	}
	if code, body, _ := h.do("GET", "/v1/variants/nope/availability", ""); code != 400 || errCode(body) != "bad_request" {
		t.Fatalf("malformed = %d %v", code, body)
	}
	if err := h.svc.Reserve(context.Background(), "c2", []Line{{id, 5}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, body, _ := h.do("GET", "/v1/variants/"+id.String()+"/availability", ""); body["available"] != 0.0 || body["in_stock"] != false {
		t.Fatalf("sold out = %v", body)
	}
}

func TestHTTPAvailabilityWhenRedisIsDown(t *testing.T) {
	e, srv := newPrivateEnv(t)
	h := newHTTPEnv(t, e)
	id := h.variant(7)
	srv.Kill()
	code, body, _ := h.do("GET", "/v1/variants/"+id.String()+"/availability", "")
	if code != 200 || body["available"] != 7.0 {
		t.Fatalf("availability from PostgreSQL = %d %v", code, body)
	}
	// operations that cannot degrade answer 503 with Retry-After
	code, body, hdr := h.do("POST", "/admin/inventory/"+id.String()+"/adjust", `{"delta": 3, "reason": "restock"}`)
	if code != 503 || errCode(body) != "unavailable" || hdr.Get("Retry-After") == "" {
		t.Fatalf("adjust with Redis down = %d %v", code, body)
	}
	if code, _, _ := h.do("GET", "/admin/inventory/"+id.String(), ""); code != 503 {
		t.Fatalf("levels with Redis down = %d", code)
	}
}

func TestHTTPLevelsAdjustSet(t *testing.T) {
	h := newHTTPEnv(t, newEnv(t))
	ctx := context.Background()
	id := h.variant(10)
	if err := h.svc.Reserve(ctx, "chk-1", []Line{{id, 4}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	path := "/admin/inventory/" + id.String()
	code, body, _ := h.do("GET", path, "")
	if code != 200 || fieldsOf(body) != "available,drift,held,holds,holds_count,low_stock_threshold,on_hand,variant_id" || body["on_hand"] != 10.0 ||
		body["available"] != 6.0 || body["held"] != 4.0 || body["drift"] != 0.0 {
		t.Fatalf("levels = %d %v", code, body)
	}
	holds := body["holds"].([]any)
	hold := holds[0].(map[string]any)
	if len(holds) != 1 || fieldsOf(hold) != "expires_at,holder,quantity" || hold["holder"] != "chk-1" || hold["quantity"] != 4.0 {
		t.Fatalf("holds = %v", holds)
	}
	if _, err := time.Parse(time.RFC3339, hold["expires_at"].(string)); err != nil || !strings.HasSuffix(hold["expires_at"].(string), "Z") {
		t.Fatalf("expires_at = %v (%v)", hold["expires_at"], err)
	}

	code, body, _ = h.do("POST", path+"/adjust", `{"delta": 5, "reason": "restock"}`)
	if code != 200 || body["on_hand"] != 15.0 || body["available"] != 11.0 {
		t.Fatalf("adjust = %d %v", code, body)
	}
	var ref string
	if err := h.pool.QueryRow(ctx, `SELECT reference FROM stock_ledger WHERE variant_id = $1`, id).Scan(&ref); err != nil ||
		!strings.HasPrefix(ref, "admin:") {
		t.Fatalf("ledger reference = %q, %v", ref, err)
	}
	code, body, _ = h.do("POST", path+"/adjust", `{"delta": -12, "reason": "shrinkage"}`)
	if code != 409 || errCode(body) != "conflict" {
		t.Fatalf("adjust below held = %d %v", code, body)
	}
	code, body, _ = h.do("PUT", path, `{"on_hand": 4, "reason": "correction"}`)
	if code != 200 || body["on_hand"] != 4.0 || body["available"] != 0.0 || body["held"] != 4.0 {
		t.Fatalf("set = %d %v", code, body)
	}
	code, body, _ = h.do("PUT", path, `{"on_hand": 3, "reason": "correction"}`)
	if code != 409 || errCode(body) != "conflict" {
		t.Fatalf("set below held = %d %v", code, body)
	}

	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", path + "/adjust", `{"delta": 0, "reason": "restock"}`, 422, "validation_failed"},
		{"POST", path + "/adjust", `{"delta": 1000001, "reason": "restock"}`, 422, "validation_failed"},
		{"POST", path + "/adjust", `{"delta": -1000001, "reason": "restock"}`, 422, "validation_failed"},
		{"POST", path + "/adjust", `{"delta": 1}`, 422, "validation_failed"},
		{"POST", path + "/adjust", `{"delta": 1, "reason": ""}`, 422, "validation_failed"},
		{"POST", path + "/adjust", `{"delta": 1, "reason": "` + strings.Repeat("x", 201) + `"}`, 422, "validation_failed"},
		{"POST", path + "/adjust", `{"reason": "restock"}`, 422, "validation_failed"},
		{"POST", path + "/adjust", `{"delta": 1.5, "reason": "restock"}`, 400, "bad_request"},
		{"POST", path + "/adjust", `{"delta": 1, "reason": "restock", "on_hand": 3}`, 400, "bad_request"},
		{"POST", path + "/adjust", `{"delta": 1`, 400, "bad_request"},
		{"POST", path + "/adjust", ``, 400, "bad_request"},
		{"POST", "/admin/inventory/xyz/adjust", `{"delta": 1, "reason": "restock"}`, 400, "bad_request"},
		{"POST", "/admin/inventory/" + uuid.NewString() + "/adjust", `{"delta": 1, "reason": "restock"}`, 404, "not_found"},
		{"PUT", path, `{"on_hand": -1, "reason": "correction"}`, 422, "validation_failed"},
		{"PUT", path, `{"on_hand": 5}`, 422, "validation_failed"},
		{"PUT", "/admin/inventory/" + uuid.NewString(), `{"on_hand": 5, "reason": "correction"}`, 404, "not_found"},
		{"GET", "/admin/inventory/" + uuid.NewString(), ``, 404, "not_found"},
		{"GET", "/admin/inventory/12", ``, 400, "bad_request"},
	} {
		code, body, _ := h.do(tc.method, tc.path, tc.body)
		if code != tc.status || errCode(body) != tc.code {
			t.Errorf("%s %s %s = %d %v; want %d %s", tc.method, tc.path, tc.body, code, body, tc.status, tc.code)
		}
	}
	if n := h.onHand(id); n != 4 {
		t.Fatalf("on_hand = %d after refused requests", n)
	}
}

func TestHTTPReconcileAndSweep(t *testing.T) {
	h := newHTTPEnv(t, newEnv(t))
	ctx := context.Background()
	ids := h.variants(3, 10)
	for _, id := range ids {
		levels(t, h.svc, id)
	}
	h.rdb.Set(ctx, h.svc.r.keys(ids[1]).avail, 42, 0)
	code, body, _ := h.do("POST", "/admin/inventory/reconcile?dry_run=true", "")
	if code != 200 || fieldsOf(body) != "checked,drifted,duration_ms,fixed,variants" || body["checked"] != 3.0 ||
		body["drifted"] != 1.0 || body["fixed"] != 0.0 {
		t.Fatalf("dry run = %d %v", code, body)
	}
	v := body["variants"].([]any)[0].(map[string]any)
	if fieldsOf(v) != "expected_available,held,on_hand,redis_available,variant_id" || v["variant_id"] != ids[1].String() ||
		v["redis_available"] != 42.0 || v["expected_available"] != 10.0 {
		t.Fatalf("variant = %v", v)
	}
	code, body, _ = h.do("POST", "/admin/inventory/reconcile", `{"variant_ids": ["`+ids[1].String()+`"]}`)
	if code != 200 || body["checked"] != 1.0 || body["fixed"] != 1.0 {
		t.Fatalf("reconcile = %d %v", code, body)
	}
	code, body, _ = h.do("POST", "/admin/inventory/reconcile?dry_run=false", `{}`)
	if code != 200 || body["drifted"] != 0.0 || len(body["variants"].([]any)) != 0 {
		t.Fatalf("reconcile all = %d %v", code, body)
	}
	for _, bad := range []struct{ q, body string }{{"?dry_run=maybe", ""}, {"", `{"variant_ids": ["x"]}`}, {"", `{"ids": []}`}} {
		if code, body, _ := h.do("POST", "/admin/inventory/reconcile"+bad.q, bad.body); code != 400 || errCode(body) != "bad_request" {
			t.Fatalf("reconcile %v = %d %v", bad, code, body)
		}
	}

	if err := h.svc.Reserve(ctx, "c1", []Line{{ids[0], 3}}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitRedisPast(t, h.rdb, levels(t, h.svc, ids[0]).Holds[0].ExpiresAt)
	code, body, _ = h.do("POST", "/admin/inventory/sweep", "")
	if code != 200 || fieldsOf(body) != "reclaimed" || body["reclaimed"] != 1.0 {
		t.Fatalf("sweep = %d %v", code, body)
	}
	if code, body, _ := h.do("POST", "/admin/inventory/sweep", `{"x":1}`); code != 400 {
		t.Fatalf("sweep with a body = %d %v", code, body)
	}
}
