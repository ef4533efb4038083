package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"commerce/internal/catalog"
	"commerce/internal/platform/spectest"
)

// client talks to a real server over TCP.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func (c client) req(method, path, body string, headers map[string]string) answer {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read the body: %v", method, path, err)
	}
	return answer{status: res.StatusCode, header: res.Header, body: b}
}

func (c client) must(status int, method, path, body string, headers map[string]string) map[string]any {
	c.t.Helper()
	r := c.req(method, path, body, headers)
	if r.status != status {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, status, r.body)
	}
	if len(r.body) == 0 {
		return nil
	}
	return r.json(c.t)
}

// TestEndToEnd starts the real server on :0 and walks a shopper through the shop: catalog,
// cart with a coupon, checkout with an idempotency key, a declined and an accepted payment,
// the order, and what another shopper can (not) see; then a graceful shutdown. Every
// exchange is checked against api/openapi.yaml (spectest.Transport).
func TestEndToEnd(t *testing.T) {
	a := newTestApp(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := a.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, l) }()
	c := client{t: t, base: "http://" + l.Addr().String(), hc: &http.Client{Timeout: 10 * time.Second, Transport: spectest.Transport(t, nil)}}

	product := catalog.SeedProductID("red-runner").String()
	variant := catalog.SeedVariantID("RR-40").String() // stock 25

	list := c.must(200, "GET", "/v1/products?category=shoes&per_page=5", "", nil)
	if items, _ := list["items"].([]any); len(items) == 0 {
		t.Fatalf("no shoes listed: %v", list)
	}
	p := c.must(200, "GET", "/v1/products/"+product, "", nil)
	if p["slug"] != "red-runner" {
		t.Fatalf("product: %v", p)
	}

	me := c.must(201, "POST", "/v1/sessions", "", nil)["session_id"].(string)
	other := c.must(201, "POST", "/v1/sessions", "", nil)["session_id"].(string)

	cart := c.must(200, "POST", "/v1/cart/items", `{"variant_id":"`+variant+`","quantity":2}`, sess(me))
	if lines := cart["lines"].([]any); len(lines) != 1 {
		t.Fatalf("cart lines: %v", cart)
	}
	cart = c.must(200, "PUT", "/v1/cart/coupon", `{"code":"welcome10"}`, sess(me))
	sub := cart["subtotal"].(map[string]any)["amount"].(float64)
	disc := cart["discount_total"].(map[string]any)["amount"].(float64)
	total := cart["total"].(map[string]any)["amount"].(float64)
	if disc <= 0 || total != sub-disc {
		t.Fatalf("coupon not applied: subtotal %v discount %v total %v", sub, disc, total)
	}
	// The other shopper's cart is empty: carts never cross.
	if lines := c.must(200, "GET", "/v1/cart", "", sess(other))["lines"].([]any); len(lines) != 0 {
		t.Fatalf("another session sees lines: %v", lines)
	}

	idem := map[string]string{"X-Session-ID": me, "Idempotency-Key": "e2e-checkout-1"}
	first := c.req("POST", "/v1/checkouts", `{"email":"a@example.com"}`, idem)
	if first.status != 201 {
		t.Fatalf("checkout: %d %s", first.status, first.body)
	}
	replay := c.req("POST", "/v1/checkouts", `{"email":"a@example.com"}`, idem)
	if replay.status != 201 || !bytes.Equal(replay.body, first.body) {
		t.Fatalf("idempotent replay differs: %d %s", replay.status, replay.body)
	}
	if r := c.req("POST", "/v1/checkouts", `{"email":"b@example.com"}`, idem); r.status != 422 || r.errorCode(t) != "idempotency_key_reused" {
		t.Fatalf("same key, other body: %d %s", r.status, r.body)
	}
	co := first.json(t)
	id := co["id"].(string)
	if co["state"] != "awaiting_payment" || co["total"].(map[string]any)["amount"].(float64) != total {
		t.Fatalf("checkout: %v", co)
	}
	if r := c.req("POST", "/v1/cart/items", `{"variant_id":"`+variant+`","quantity":1}`, sess(me)); r.status != 409 || r.errorCode(t) != "cart_locked" {
		t.Fatalf("cart mutation during checkout: %d %s", r.status, r.body)
	}
	lv := c.must(200, "GET", "/admin/inventory/"+variant, "", admin())
	if lv["on_hand"].(float64) != 25 || lv["available"].(float64) != 23 || lv["held"].(float64) != 2 {
		t.Fatalf("levels while held: %v", lv)
	}

	// Someone else's checkout is not found, whatever they try.
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/checkouts/" + id, ""},
		{"POST", "/v1/checkouts/" + id + "/complete", `{"payment_token":"tok_ok"}`},
		{"POST", "/v1/checkouts/" + id + "/cancel", ""},
	} {
		if got := c.req(r.method, r.path, r.body, sess(other)); got.status != 404 {
			t.Fatalf("other session %s %s: %d %s", r.method, r.path, got.status, got.body)
		}
		if got := c.req(r.method, r.path, r.body, nil); got.status != 401 {
			t.Fatalf("anonymous %s %s: %d %s", r.method, r.path, got.status, got.body)
		}
	}

	if r := c.req("POST", "/v1/checkouts/"+id+"/complete", `{"payment_token":"tok_declined"}`, sess(me)); r.status != 402 || r.errorCode(t) != "payment_declined" {
		t.Fatalf("declined payment: %d %s", r.status, r.body)
	}
	res := c.must(200, "POST", "/v1/checkouts/"+id+"/complete", `{"payment_token":"tok_ok"}`, sess(me))
	order := res["order"].(map[string]any)
	again := c.must(200, "POST", "/v1/checkouts/"+id+"/complete", `{"payment_token":"tok_ok"}`, sess(me))
	if again["order"].(map[string]any)["id"] != order["id"] {
		t.Fatalf("second complete placed another order: %v vs %v", again["order"], order)
	}
	oid := order["id"].(string)
	if got := c.must(200, "GET", "/v1/orders/"+oid, "", sess(me)); got["total"].(map[string]any)["amount"].(float64) != total {
		t.Fatalf("order total: %v", got)
	}
	if got := c.req("GET", "/v1/orders/"+oid, "", sess(other)); got.status != 404 {
		t.Fatalf("other session reads the order: %d", got.status)
	}
	lv = c.must(200, "GET", "/admin/inventory/"+variant, "", admin())
	if lv["on_hand"].(float64) != 23 || lv["available"].(float64) != 23 || lv["held"].(float64) != 0 {
		t.Fatalf("levels after the sale: %v", lv)
	}
	if lines := c.must(200, "GET", "/v1/cart", "", sess(me))["lines"].([]any); len(lines) != 0 {
		t.Fatalf("cart not cleared after the order: %v", lines)
	}
	var avail struct {
		Available int64 `json:"available"`
	}
	if err := json.Unmarshal(c.req("GET", "/v1/variants/"+variant+"/availability", "", nil).body, &avail); err != nil || avail.Available != 23 {
		t.Fatalf("availability: %+v %v", avail, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("graceful shutdown did not finish")
	}
}
