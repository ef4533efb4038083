package catalog

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

type errBody struct {
	Error struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	} `json:"error"`
}

const validCreate = `{"slug":"red-shoe","name":"Red shoe","description":"A shoe","category":"shoes","status":"active",
 "attributes":{"brand":"Acme"},"variants":[{"sku":"RS-42","name":"42","price":{"amount":4999,"currency":"USD"},
 "attributes":{"size":42},"stock":10},{"sku":"RS-43","name":"43","price":{"amount":5499,"currency":"USD"}}]}`

func TestHandlers(t *testing.T) {
	e := newEnv(t)
	active := mustCreate(t, e.svc, sampleProduct(2))
	d := sampleProduct(1)
	d.Status = StatusDraft
	draft := mustCreate(t, e.svc, d)
	taken := mustCreate(t, e.svc, sampleProduct(1))
	unknown := uuid.Must(uuid.NewV7()).String()
	big := `{"slug":"big","name":"` + strings.Repeat("a", 1<<20) + `"}`
	attrs9k := `{"k":"` + strings.Repeat("x", 9<<10) + `"}`

	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string   // error code, "" for success
		fields                   []string // validation fields expected in details
	}{
		{"get200", "GET", "/v1/products/" + active.ID.String(), "", 200, "", nil},
		{"get404Inactive", "GET", "/v1/products/" + draft.ID.String(), "", 404, "not_found", nil},
		{"get404Unknown", "GET", "/v1/products/" + unknown, "", 404, "not_found", nil},
		{"get400MalformedID", "GET", "/v1/products/not-a-uuid", "", 400, "bad_request", nil},
		{"list200", "GET", "/v1/products?category=shoes&page=1&per_page=2", "", 200, "", nil},
		{"list200Defaults", "GET", "/v1/products", "", 200, "", nil},
		{"list400NonIntegerPage", "GET", "/v1/products?page=abc", "", 400, "bad_request", nil},
		{"list400NonIntegerPerPage", "GET", "/v1/products?per_page=1.5", "", 400, "bad_request", nil},
		{"list422PerPageTooBig", "GET", "/v1/products?per_page=101", "", 422, "validation_failed", []string{"per_page"}},
		{"list422HugePage", "GET", "/v1/products?page=99999999999999999999999", "", 422, "validation_failed", []string{"page"}},
		{"list422PageZero", "GET", "/v1/products?page=0&per_page=0", "", 422, "validation_failed", []string{"page", "per_page"}},
		{"adminGet200Draft", "GET", "/admin/products/" + draft.ID.String(), "", 200, "", nil},
		{"adminGet404", "GET", "/admin/products/" + unknown, "", 404, "not_found", nil},
		{"adminGet400MalformedID", "GET", "/admin/products/123", "", 400, "bad_request", nil},
		{"create201", "POST", "/admin/products", validCreate, 201, "", nil},
		{"create400UnknownField", "POST", "/admin/products", `{"slug":"x","name":"x","version":9,"variants":[]}`, 400, "bad_request", nil},
		{"create400UnknownVariantField", "POST", "/admin/products", strings.Replace(validCreate, `"stock":10`, `"stock":10,"id":"x"`, 1), 400, "bad_request", nil},
		{"create400MalformedJSON", "POST", "/admin/products", `{"slug":`, 400, "bad_request", nil},
		{"create400FloatPrice", "POST", "/admin/products", strings.Replace(validCreate, `4999`, `49.99`, 1), 400, "bad_request", nil},
		{"create400EmptyBody", "POST", "/admin/products", "", 400, "bad_request", nil},
		{"create413", "POST", "/admin/products", big, 413, "payload_too_large", nil},
		{"create409Slug", "POST", "/admin/products", strings.Replace(validCreate, `"red-shoe"`, `"`+taken.Slug+`"`, 1), 409, "conflict", nil},
		{"create409SKU", "POST", "/admin/products", strings.Replace(strings.Replace(validCreate, `"red-shoe"`, `"other-shoe"`, 1), `"RS-42"`, `"`+taken.Variants[0].SKU+`"`, 1), 409, "conflict", nil},
		{"create422", "POST", "/admin/products",
			`{"slug":"Bad Slug","name":"","status":"sold","variants":[{"sku":"bad sku","name":"x","price":{"amount":-1,"currency":"EUR"},"stock":-5},{"sku":"A","name":"y"}]}`,
			422, "validation_failed", []string{"slug", "name", "status", "variants[0].sku", "variants[0].price.amount",
				"variants[0].price.currency", "variants[0].stock", "variants[1].price"}},
		{"create422NoVariants", "POST", "/admin/products", `{"slug":"ok","name":"Ok","variants":[]}`, 422, "validation_failed", []string{"variants"}},
		{"create422MissingCurrency", "POST", "/admin/products", strings.Replace(validCreate, `,"currency":"USD"}`, `}`, 1), 422, "validation_failed", []string{"variants[0].price.currency"}},
		{"create422DuplicateSKU", "POST", "/admin/products", strings.Replace(validCreate, `"RS-43"`, `"RS-42"`, 1), 422, "validation_failed", []string{"variants[1].sku"}},
		{"create422BigAttributes", "POST", "/admin/products", strings.Replace(validCreate, `{"brand":"Acme"}`, attrs9k, 1), 422, "validation_failed", []string{"attributes"}},
		{"create422NulInName", "POST", "/admin/products", strings.Replace(validCreate, `"Red shoe"`, `"Red\u0000shoe"`, 1), 422, "validation_failed", []string{"name"}},
		{"patch200", "PATCH", "/admin/products/" + active.ID.String(), `{"description":"new","attributes":{"a":1}}`, 200, "", nil},
		{"patch400UnknownField", "PATCH", "/admin/products/" + active.ID.String(), `{"price":1}`, 400, "bad_request", nil},
		{"patch400Version", "PATCH", "/admin/products/" + active.ID.String(), `{"version":99}`, 400, "bad_request", nil},
		{"patch400MalformedID", "PATCH", "/admin/products/zzz", `{"name":"x"}`, 400, "bad_request", nil},
		{"patch404", "PATCH", "/admin/products/" + unknown, `{"name":"x"}`, 404, "not_found", nil},
		{"patch422", "PATCH", "/admin/products/" + active.ID.String(), `{"name":"","status":"gone"}`, 422, "validation_failed", []string{"name", "status"}},
		{"patchVariant200", "PATCH", "/admin/variants/" + active.Variants[0].ID.String(), `{"name":"XL","price":{"amount":100,"currency":"USD"}}`, 200, "", nil},
		{"patchVariant400UnknownField", "PATCH", "/admin/variants/" + active.Variants[0].ID.String(), `{"sku":"X"}`, 400, "bad_request", nil},
		{"patchVariant404", "PATCH", "/admin/variants/" + unknown, `{"name":"x"}`, 404, "not_found", nil},
		{"patchVariant422Currency", "PATCH", "/admin/variants/" + active.Variants[0].ID.String(), `{"price":{"amount":100,"currency":"EUR"}}`, 422, "validation_failed", []string{"price.currency"}},
		{"patchVariant422MissingAmount", "PATCH", "/admin/variants/" + active.Variants[0].ID.String(), `{"price":{"currency":"USD"}}`, 422, "validation_failed", []string{"price.amount"}},
		{"archive204", "DELETE", "/admin/products/" + taken.ID.String(), "", 204, "", nil},
		{"archive204Again", "DELETE", "/admin/products/" + taken.ID.String(), "", 204, "", nil},
		{"archive404", "DELETE", "/admin/products/" + unknown, "", 404, "not_found", nil},
		{"archive400MalformedID", "DELETE", "/admin/products/x", "", 400, "bad_request", nil},
		{"getArchived404", "GET", "/v1/products/" + taken.ID.String(), "", 404, "not_found", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do(t, tt.method, tt.path, tt.body)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if rec.Header().Get("X-Request-ID") == "" {
				t.Error("no X-Request-ID")
			}
			if tt.code == "" {
				return
			}
			var eb errBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
				t.Fatalf("error body %q: %v", rec.Body, err)
			}
			if eb.Error.Code != tt.code || eb.Error.Message == "" {
				t.Fatalf("error = %+v, want code %s", eb.Error, tt.code)
			}
			if tt.fields != nil {
				got, _ := eb.Error.Details["fields"].(map[string]any)
				for _, f := range tt.fields {
					if _, ok := got[f]; !ok {
						t.Errorf("field %q not reported; got %v", f, got)
					}
				}
				if len(got) != len(tt.fields) {
					t.Errorf("fields = %v, want exactly %v", got, tt.fields)
				}
			}
		})
	}
}

// The Product JSON is exactly the contract's shape (api/openapi.yaml, Product).
func TestHandlerProductShape(t *testing.T) {
	e := newEnv(t)
	rec := e.do(t, "POST", "/admin/products", validCreate)
	if rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	var created map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &created); err != nil {
		t.Fatalf("create: %v: %s", err, rec.Body)
	}
	id := created["id"].(string)

	rec = e.do(t, "GET", "/v1/products/"+id, "")
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return strings.Join(ks, ",")
	}
	if k := keys(got); k != "attributes,category,description,id,name,slug,status,updated_at,variants,version" {
		t.Fatalf("product keys = %s", k)
	}
	if got["version"].(float64) != 1 || got["status"] != "active" || got["slug"] != "red-shoe" {
		t.Fatalf("product = %v", got)
	}
	ts, err := time.Parse(time.RFC3339, got["updated_at"].(string))
	if err != nil || ts.Location() != time.UTC || !strings.HasSuffix(got["updated_at"].(string), "Z") {
		t.Fatalf("updated_at %v: %v", got["updated_at"], err)
	}
	vs := got["variants"].([]any)
	v0, v1 := vs[0].(map[string]any), vs[1].(map[string]any)
	if k := keys(v0); k != "attributes,id,name,price,sku" {
		t.Fatalf("variant keys = %s", k)
	}
	price := v0["price"].(map[string]any)
	if price["amount"].(float64) != 4999 || price["currency"] != "USD" || v0["sku"] != "RS-42" {
		t.Fatalf("variant 0 = %v", v0)
	}
	if a, ok := v1["attributes"].(map[string]any); !ok || len(a) != 0 {
		t.Fatalf("absent attributes must be {}: %v", v1["attributes"])
	}
	if rec.Body.String() != e.do(t, "GET", "/v1/products/"+id, "").Body.String() {
		t.Fatal("a cached read renders differently from the first read")
	}

	// The listing page shape.
	rec = e.do(t, "GET", "/v1/products?category=shoes&per_page=5", "")
	var pg map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &pg); err != nil {
		t.Fatalf("page: %v: %s", err, rec.Body)
	}
	if keys(pg) != "items,page,per_page,total" || pg["page"].(float64) != 1 || pg["per_page"].(float64) != 5 || pg["total"].(float64) != 1 {
		t.Fatalf("page = %v", pg)
	}
	rec = e.do(t, "GET", "/v1/products?category=none", "")
	if !strings.Contains(rec.Body.String(), `"items":[]`) {
		t.Fatalf("empty listing must have items []: %s", rec.Body)
	}

	// PATCH returns the product with the bumped version; PATCH of a variant its product.
	rec = e.do(t, "PATCH", "/admin/products/"+id, `{"status":"draft"}`)
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	if got["version"].(float64) != 2 || got["status"] != "draft" {
		t.Fatalf("patched = %v", got)
	}
	if rec := e.do(t, "GET", "/v1/products/"+id, ""); rec.Code != 404 {
		t.Fatalf("draft visible: %d", rec.Code)
	}
	rec = e.do(t, "PATCH", "/admin/variants/"+v1["id"].(string), `{"attributes":{"color":"red"}}`)
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	if got["id"] != id || got["version"].(float64) != 3 {
		t.Fatalf("variant patch returned %v", got)
	}
}
