package app

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"commerce/internal/catalog"
)

// TestBulkRouteTakesBodiesOverOneMiB: the bulk sync is exempt from the service-wide 1 MiB
// body limit (it sets its own), and every other route still has it.
func TestBulkRouteTakesBodiesOverOneMiB(t *testing.T) {
	a := newTestApp(t)
	if _, err := a.Seed(t.Context()); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("sku,on_hand,reason\n")
	reason := strings.Repeat("r", 190)
	for b.Len() < 3<<20/2 {
		fmt.Fprintf(&b, "RR-40,7,%s\n", reason)
	}
	lines := strings.Count(b.String(), "\n") - 1
	req := httptest.NewRequest("POST", "/admin/inventory/bulk", strings.NewReader(b.String()))
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), fmt.Sprintf(`"lines":%d,"applied":1,"unchanged":%d`, lines, lines-1)) {
		t.Fatalf("bulk of %d bytes: %d %.300s", b.Len(), rec.Code, rec.Body.String())
	}
	variant := catalog.SeedVariantID("RR-40").String()
	if lv := do(t, a.Handler(), call{method: "GET", path: "/admin/inventory/" + variant, headers: admin()}).json(t); lv["on_hand"].(float64) != 7 {
		t.Fatalf("levels: %v", lv)
	}
	big := `{"delta":1,"reason":"` + strings.Repeat("x", 1<<20) + `"}`
	if r := do(t, a.Handler(), call{method: "POST", path: "/admin/inventory/" + variant + "/adjust", body: big, headers: admin()}); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("adjust with a 1 MiB body: %d", r.status)
	}
	if r := do(t, a.Handler(), call{method: "POST", path: "/admin/inventory/bulk", body: "[]", headers: map[string]string{}}); r.status != http.StatusUnauthorized {
		t.Fatalf("bulk without the admin token: %d", r.status)
	}
}

// TestPatchVariantLowStockThreshold: PATCH /admin/variants/{id} sets the threshold the
// inventory reads, refuses a negative one, and 404s an unknown variant.
func TestPatchVariantLowStockThreshold(t *testing.T) {
	a := newTestApp(t)
	if _, err := a.Seed(t.Context()); err != nil {
		t.Fatal(err)
	}
	id := catalog.SeedVariantID("RR-40")
	path := "/admin/variants/" + id.String()
	if r := do(t, a.Handler(), call{method: "PATCH", path: path, body: `{"low_stock_threshold":5}`, headers: admin()}); r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	if got, err := a.Domains().Inventory.LowStockThreshold(t.Context(), id); err != nil || got != 5 {
		t.Fatalf("threshold %d, %v", got, err)
	}
	if lv := do(t, a.Handler(), call{method: "GET", path: "/admin/inventory/" + id.String(), headers: admin()}).json(t); lv["low_stock_threshold"] != float64(5) {
		t.Fatalf("levels do not show the threshold: %v", lv)
	}
	if r := do(t, a.Handler(), call{method: "PATCH", path: path, body: `{"low_stock_threshold":-1}`, headers: admin()}); r.status != 422 {
		t.Fatalf("negative threshold: %d %s", r.status, r.body)
	}
	if r := do(t, a.Handler(), call{method: "PATCH", path: "/admin/variants/00000000-0000-4000-8000-000000000001", body: `{"low_stock_threshold":1}`, headers: admin()}); r.status != 404 {
		t.Fatalf("unknown variant: %d %s", r.status, r.body)
	}
}
