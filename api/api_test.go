package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(Spec)
	if err != nil {
		t.Fatalf("load spec: %v", err)
	}
	return doc
}

func TestSpecValidates(t *testing.T) {
	doc := loadSpec(t)
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate spec: %v", err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
}

// contract is every route the service promises, written out by hand: a route added to or
// dropped from the spec must also be added or dropped here, so that it is a deliberate
// change and not an accident of editing the YAML.
var contract = []struct{ method, path string }{
	{http.MethodGet, "/healthz"},
	{http.MethodGet, "/readyz"},
	{http.MethodGet, "/metrics"},
	{http.MethodGet, "/openapi.yaml"},
	{http.MethodPost, "/v1/sessions"},
	{http.MethodGet, "/v1/products"},
	{http.MethodGet, "/v1/products/{id}"},
	{http.MethodGet, "/v1/variants/{id}/availability"},
	{http.MethodGet, "/v1/cart"},
	{http.MethodDelete, "/v1/cart"},
	{http.MethodPost, "/v1/cart/items"},
	{http.MethodPut, "/v1/cart/items/{variant_id}"},
	{http.MethodDelete, "/v1/cart/items/{variant_id}"},
	{http.MethodPut, "/v1/cart/coupon"},
	{http.MethodDelete, "/v1/cart/coupon"},
	{http.MethodPost, "/v1/cart/merge"},
	{http.MethodPost, "/v1/checkouts"},
	{http.MethodGet, "/v1/checkouts/{id}"},
	{http.MethodPost, "/v1/checkouts/{id}/complete"},
	{http.MethodPost, "/v1/checkouts/{id}/cancel"},
	{http.MethodPost, "/v1/payments/webhook"},
	{http.MethodGet, "/v1/orders"},
	{http.MethodGet, "/v1/orders/{id}"},
	{http.MethodGet, "/v1/me/preferences"},
	{http.MethodPatch, "/v1/me/preferences"},
	{http.MethodPost, "/admin/products"},
	{http.MethodGet, "/admin/products/{id}"},
	{http.MethodPatch, "/admin/products/{id}"},
	{http.MethodDelete, "/admin/products/{id}"},
	{http.MethodPatch, "/admin/variants/{id}"},
	{http.MethodGet, "/admin/inventory/{variant_id}"},
	{http.MethodPut, "/admin/inventory/{variant_id}"},
	{http.MethodPost, "/admin/inventory/{variant_id}/adjust"},
	{http.MethodPost, "/admin/inventory/reconcile"},
	{http.MethodPost, "/admin/inventory/sweep"},
	{http.MethodPost, "/admin/inventory/bulk"},
	{http.MethodGet, "/admin/discounts"},
	{http.MethodPost, "/admin/discounts"},
	{http.MethodGet, "/admin/discounts/{id}"},
	{http.MethodPatch, "/admin/discounts/{id}"},
	{http.MethodDelete, "/admin/discounts/{id}"},
	{http.MethodPost, "/admin/cache/warm"},
	{http.MethodGet, "/admin/cache/stats"},
	{http.MethodDelete, "/admin/cache"},
	{http.MethodGet, "/admin/cache/slowlog"},
	{http.MethodDelete, "/v1/sessions"},
	{http.MethodPost, "/v1/payments/stripe/webhook"},
	{http.MethodGet, "/admin/orders"},
	{http.MethodGet, "/admin/orders/{id}"},
	{http.MethodPost, "/admin/orders/{id}/refund"},
	{http.MethodPost, "/admin/orders/{id}/cancel"},
	{http.MethodGet, "/admin/payments/flagged"},
}

func TestSpecCoversContract(t *testing.T) {
	doc := loadSpec(t)
	want := map[string]bool{}
	for _, r := range contract {
		want[r.method+" "+r.path] = true
		item := doc.Paths.Value(r.path)
		if item == nil {
			t.Errorf("%s %s: path missing from spec", r.method, r.path)
			continue
		}
		if item.GetOperation(r.method) == nil {
			t.Errorf("%s %s: method missing from spec", r.method, r.path)
		}
	}
	// Nothing beyond the contract either.
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !want[method+" "+path] {
				t.Errorf("%s %s: in the spec but not in the contract list", method, path)
			}
		}
	}
}

func TestSpecConventions(t *testing.T) {
	doc := loadSpec(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", name)
			}
			if op.Security == nil {
				t.Errorf("%s: security not stated (use [] for public routes)", name)
			}
			wantAuth := 0
			switch {
			case strings.HasPrefix(path, "/admin/"):
				wantAuth = 1
				if !slices.EqualFunc(*op.Security, openapi3.SecurityRequirements{{"adminToken": {}}},
					func(a, b openapi3.SecurityRequirement) bool { return len(a) == len(b) && a["adminToken"] != nil }) {
					t.Errorf("%s: admin route must require adminToken only", name)
				}
			case op.Security != nil && len(*op.Security) > 0:
				wantAuth = 1
			}
			for code, ref := range op.Responses.Map() {
				resp := ref.Value
				if resp.Headers["X-Request-ID"] == nil {
					t.Errorf("%s %s: response does not document X-Request-ID", name, code)
				}
				if (code == "429" || code == "503") && resp.Headers["Retry-After"] == nil {
					t.Errorf("%s %s: response does not document Retry-After", name, code)
				}
				if code == "default" || code[0] == '4' || (code[0] == '5' && path != "/readyz") {
					mt := resp.Content.Get("application/json")
					if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Error" {
						t.Errorf("%s %s: error response is not the Error shape", name, code)
					}
				}
			}
			if op.Responses.Value("403") != nil {
				t.Errorf("%s: documents 403, which no route answers", name)
			}
			if wantAuth == 1 && op.Responses.Value("401") == nil {
				t.Errorf("%s: authenticated route without 401", name)
			}
			if op.Responses.Default() == nil {
				t.Errorf("%s: no default error response", name)
			}
			if rb := op.RequestBody; rb != nil {
				s := rb.Value.Content.Get("application/json").Schema.Value
				if s.Items != nil { // an array body: each element must be a closed object
					s = s.Items.Value
				}
				// Open bodies: preferences (a free-form object) and Stripe's events (Stripe's
				// schema, which grows; the signature, not the shape, authenticates them).
				open := path == "/v1/me/preferences" || path == "/v1/payments/stripe/webhook"
				if !open && (s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has) {
					t.Errorf("%s: request body must set additionalProperties: false", name)
				}
				if op.Responses.Value("413") == nil {
					t.Errorf("%s: route with a body without 413", name)
				}
				if op.Responses.Value("415") == nil {
					t.Errorf("%s: route with a body without 415", name)
				}
			}
		}
	}
}

func TestMoneyIsIntegerMinorUnits(t *testing.T) {
	doc := loadSpec(t)
	m := doc.Components.Schemas["Money"].Value
	if err := m.VisitJSON(map[string]any{"amount": 1999.0, "currency": "USD"}); err != nil {
		t.Errorf("valid money rejected: %v", err)
	}
	for _, bad := range []map[string]any{
		{"amount": 19.99, "currency": "USD"},
		{"amount": 1999.0, "currency": "usd"},
		{"amount": 1999.0},
		{"amount": 1999.0, "currency": "USD", "extra": true},
	} {
		if err := m.VisitJSON(bad); err == nil {
			t.Errorf("money %v accepted", bad)
		}
	}
	nm := doc.Components.Schemas["NullableMoney"].Value
	if err := nm.VisitJSON(nil); err != nil {
		t.Errorf("NullableMoney rejects null: %v", err)
	}
	if err := nm.VisitJSON(map[string]any{"amount": 1.5, "currency": "USD"}); err == nil {
		t.Errorf("NullableMoney accepts a float amount")
	}
}
