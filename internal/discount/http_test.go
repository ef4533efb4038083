package discount

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"commerce/internal/platform/httpx"

	"commerce/internal/platform/spectest"
)

type httpEnv struct {
	serviceEnv
	e *echo.Echo
}

func newHTTPEnv(t *testing.T) httpEnv {
	t.Helper()
	se := newServiceEnv(t)
	e := echo.New()
	e.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
	e.Use(httpx.RequestIDMiddleware(), httpx.BodyLimit()) // as the app serves them
	NewHandler(se.svc).Register(e.Group("/v1"), e.Group("/admin"))
	return httpEnv{serviceEnv: se, e: e}
}

func (h httpEnv) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	spectest.Handler(t, h.e).ServeHTTP(rec, req) // checked against api/openapi.yaml
	var out map[string]any
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, path, rec.Body.String(), err)
		}
	}
	return rec.Code, out
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func errFields(body map[string]any) map[string]any {
	e, _ := body["error"].(map[string]any)
	d, _ := e["details"].(map[string]any)
	f, _ := d["fields"].(map[string]any)
	return f
}

const validPct = `{"name":"Summer","code":"summer10","kind":"percentage","value":10,"scope":{"type":"cart","ids":[]}}`

func TestAdminDiscountRoutes(t *testing.T) {
	h := newHTTPEnv(t)

	status, created := h.do(t, "POST", "/admin/discounts", validPct)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, created)
	}
	id, _ := created["id"].(string)
	if created["code"] != "SUMMER10" || created["currency"] != nil || created["min_subtotal"] != nil ||
		created["starts_at"] != nil || created["stackable"] != true || created["active"] != true ||
		created["priority"] != float64(0) || created["ruleset_version"] == nil || created["created_at"] == nil {
		t.Fatalf("created body %v", created)
	}
	if ids, ok := created["scope"].(map[string]any)["ids"].([]any); !ok || len(ids) != 0 {
		t.Fatalf("scope.ids must be [] not null: %v", created["scope"])
	}
	status, full := h.do(t, "POST", "/admin/discounts", `{"name":"Big","code":null,"kind":"fixed_amount","value":500,
		"currency":"USD","scope":{"type":"category","ids":["shoes"]},"min_subtotal":{"amount":10000,"currency":"USD"},
		"starts_at":"2026-01-01T00:00:00+02:00","ends_at":"2027-01-01T00:00:00Z","priority":5,"stackable":false,"active":false}`)
	if status != http.StatusCreated || full["code"] != nil || full["starts_at"] != "2025-12-31T22:00:00Z" ||
		full["min_subtotal"].(map[string]any)["amount"] != float64(10000) || full["stackable"] != false {
		t.Fatalf("create full: %d %v", status, full)
	}
	fullID := full["id"].(string)

	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
		fields                   []string // expected keys of details.fields
	}{
		{"create422missing", "POST", "/admin/discounts", `{}`, 422, "validation_failed", []string{"name", "kind", "value", "scope"}},
		{"create422pct", "POST", "/admin/discounts", `{"name":"x","kind":"percentage","value":101,"scope":{"type":"cart"}}`, 422, "validation_failed", []string{"value"}},
		{"create422fixedNoCurrency", "POST", "/admin/discounts", `{"name":"x","kind":"fixed_amount","value":5,"scope":{"type":"cart"}}`, 422, "validation_failed", []string{"currency"}},
		{"create422kindScope", "POST", "/admin/discounts", `{"name":"x","kind":"bogus","value":5,"scope":{"type":"planet","ids":["a"]}}`, 422, "validation_failed", []string{"kind", "scope.type"}},
		{"create422scopeIDs", "POST", "/admin/discounts", `{"name":"x","kind":"percentage","value":5,"scope":{"type":"product","ids":["nope"]}}`, 422, "validation_failed", []string{"scope.ids"}},
		{"create422time", "POST", "/admin/discounts", `{"name":"x","kind":"percentage","value":5,"scope":{"type":"cart"},"starts_at":"tomorrow"}`, 422, "validation_failed", []string{"starts_at"}},
		{"create422window", "POST", "/admin/discounts", `{"name":"x","kind":"percentage","value":5,"scope":{"type":"cart"},"starts_at":"2026-02-01T00:00:00Z","ends_at":"2026-01-01T00:00:00Z"}`, 422, "validation_failed", []string{"ends_at"}},
		{"create422blankCode", "POST", "/admin/discounts", `{"name":"x","code":"  ","kind":"percentage","value":5,"scope":{"type":"cart"}}`, 422, "validation_failed", []string{"code"}},
		{"create422badCode", "POST", "/admin/discounts", `{"name":"x","code":"a b!","kind":"percentage","value":5,"scope":{"type":"cart"}}`, 422, "validation_failed", []string{"code"}},
		{"create422nullName", "POST", "/admin/discounts", `{"name":null,"kind":"percentage","value":5,"scope":{"type":"cart"},"active":null}`, 422, "validation_failed", []string{"name", "active"}},
		{"create422minSubtotal", "POST", "/admin/discounts", `{"name":"x","kind":"percentage","value":5,"scope":{"type":"cart"},"min_subtotal":{"amount":-1,"currency":"USD"}}`, 422, "validation_failed", []string{"min_subtotal"}},
		{"create400unknownField", "POST", "/admin/discounts", `{"name":"x","kind":"percentage","value":5,"scope":{"type":"cart"},"id":"x"}`, 400, "bad_request", nil},
		{"create400unknownNested", "POST", "/admin/discounts", `{"name":"x","kind":"percentage","value":5,"scope":{"type":"cart","extra":1}}`, 400, "bad_request", nil},
		{"create400malformed", "POST", "/admin/discounts", `{"name":`, 400, "bad_request", nil},
		{"create400floatValue", "POST", "/admin/discounts", `{"name":"x","kind":"percentage","value":5.5,"scope":{"type":"cart"}}`, 400, "bad_request", nil},
		{"create400empty", "POST", "/admin/discounts", ``, 400, "bad_request", nil},
		{"create409code", "POST", "/admin/discounts", strings.Replace(validPct, "summer10", "SUMMER10", 1), 409, "conflict", nil},
		{"get200", "GET", "/admin/discounts/" + id, ``, 200, "", nil},
		{"get404", "GET", "/admin/discounts/0190b3a4-7b1c-7cc0-8a0e-000000000000", ``, 404, "not_found", nil},
		{"get400", "GET", "/admin/discounts/not-a-uuid", ``, 400, "bad_request", nil},
		{"patch422", "PATCH", "/admin/discounts/" + id, `{"kind":"fixed_amount","value":300}`, 422, "validation_failed", []string{"currency"}},
		{"patch422null", "PATCH", "/admin/discounts/" + id, `{"value":null}`, 422, "validation_failed", []string{"value"}},
		{"patch400unknown", "PATCH", "/admin/discounts/" + id, `{"deleted_at":null}`, 400, "bad_request", nil},
		{"patch404", "PATCH", "/admin/discounts/0190b3a4-7b1c-7cc0-8a0e-000000000000", `{"value":5}`, 404, "not_found", nil},
		{"patch400id", "PATCH", "/admin/discounts/123", `{"value":5}`, 400, "bad_request", nil},
		{"patch409code", "PATCH", "/admin/discounts/" + fullID, `{"code":"summer10"}`, 409, "conflict", nil},
		{"delete400", "DELETE", "/admin/discounts/zzz", ``, 400, "bad_request", nil},
		{"delete404", "DELETE", "/admin/discounts/0190b3a4-7b1c-7cc0-8a0e-000000000000", ``, 404, "not_found", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.pointer(t)
			status, body := h.do(t, tc.method, tc.path, tc.body)
			if status != tc.status || errCode(body) != tc.code {
				t.Fatalf("%d %q, want %d %q: %v", status, errCode(body), tc.status, tc.code, body)
			}
			if tc.fields != nil {
				f := errFields(body)
				if len(f) != len(tc.fields) {
					t.Fatalf("fields %v, want %v", f, tc.fields)
				}
				for _, k := range tc.fields {
					if f[k] == nil {
						t.Fatalf("fields %v lack %q", f, k)
					}
				}
			}
			if after := h.pointer(t); status >= 400 && after != before {
				t.Fatalf("a refused request moved the ruleset version %d → %d", before, after)
			}
		})
	}

	// PATCH changes only what is present; null clears; the merged rule is validated.
	status, patched := h.do(t, "PATCH", "/admin/discounts/"+id,
		`{"value":25,"code":null,"currency":"USD","min_subtotal":{"amount":100,"currency":"USD"},"priority":3}`)
	if status != 200 || patched["value"] != float64(25) || patched["code"] != nil || patched["currency"] != "USD" ||
		patched["name"] != "Summer" || patched["priority"] != float64(3) ||
		patched["ruleset_version"].(float64) != float64(h.pointer(t)) {
		t.Fatalf("patch: %d %v", status, patched)
	}
	status, patched = h.do(t, "PATCH", "/admin/discounts/"+id, `{"min_subtotal":null,"currency":null}`)
	if status != 200 || patched["min_subtotal"] != nil || patched["currency"] != nil || patched["value"] != float64(25) {
		t.Fatalf("patch clearing: %d %v", status, patched)
	}

	status, list := h.do(t, "GET", "/admin/discounts", "")
	items, _ := list["items"].([]any)
	if status != 200 || len(items) != 2 || list["total"] != float64(2) || list["page"] != float64(1) ||
		list["per_page"] != float64(20) {
		t.Fatalf("list: %d %v", status, list)
	}
	// Priority 5 first.
	if items[0].(map[string]any)["id"] != fullID {
		t.Fatalf("list order: %v", items)
	}
	status, list = h.do(t, "GET", "/admin/discounts?per_page=1&page=2", "")
	if items, _ := list["items"].([]any); status != 200 || len(items) != 1 || items[0].(map[string]any)["id"] == fullID ||
		list["total"] != float64(2) {
		t.Fatalf("list page 2: %d %v", status, list)
	}
	status, list = h.do(t, "GET", "/admin/discounts?page=3&per_page=1", "")
	if items, _ := list["items"].([]any); status != 200 || items == nil || len(items) != 0 || list["total"] != float64(2) {
		t.Fatalf("list past the end: %d %v", status, list)
	}
	for q, want := range map[string]int{"page=0": 422, "per_page=101": 422, "page=x": 400} {
		if status, body := h.do(t, "GET", "/admin/discounts?"+q, ""); status != want {
			t.Errorf("list ?%s: %d, want %d: %v", q, status, want, body)
		}
	}

	if status, body := h.do(t, "DELETE", "/admin/discounts/"+id, ""); status != 204 || body != nil {
		t.Fatalf("delete: %d %v", status, body)
	}
	if status, body := h.do(t, "GET", "/admin/discounts/"+id, ""); status != 404 {
		t.Fatalf("get deleted: %d %v", status, body)
	}
	if status, body := h.do(t, "DELETE", "/admin/discounts/"+id, ""); status != 404 {
		t.Fatalf("delete twice: %d %v", status, body)
	}
	// The code of the deleted discount is free again.
	if status, body := h.do(t, "POST", "/admin/discounts", validPct); status != 201 {
		t.Fatalf("reuse code: %d %v", status, body)
	}
}
