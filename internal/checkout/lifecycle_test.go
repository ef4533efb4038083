package checkout_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"commerce/internal/cart"
	"commerce/internal/checkout"
)

func TestCheckoutLifecycle(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	v := ev.variant(10, 1999)
	me := customerOwner("cust-1")
	ev.add(me, v, 2)

	// Create: 201, the cart frozen, the stock held.
	r := ev.do(http.MethodPost, "/v1/checkouts", `{"email":"shopper@example.com"}`, ev.who(me))
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	co := decode[checkoutResp](t, r)
	if co.State != "awaiting_payment" || co.Total.Amount != 3998 || co.PaymentIntent == nil ||
		co.PaymentIntent.Status != "requires_payment_method" || co.OrderID != nil {
		t.Fatalf("new checkout: %s", r.body)
	}
	body := r.json(t)
	line := body["lines"].([]any)[0].(map[string]any)
	if line["quantity"].(float64) != 2 || line["sku"] == "" || line["name"] == "" ||
		line["unit_price"].(map[string]any)["amount"].(float64) != 1999 {
		t.Fatalf("line: %v", line)
	}
	if body["email"] != "shopper@example.com" || body["expires_at"] == nil {
		t.Fatalf("checkout: %s", r.body)
	}
	ev.wantLevels(v, 10, 8, 2)
	if got := ev.cart(me).LockedBy; got != co.ID.String() {
		t.Fatalf("cart locked by %q, want %s", got, co.ID)
	}
	if _, err := ev.carts.Add(ev.ctx, cart.CustomerOwner("cust-1"), v, 1); !errors.Is(err, cart.ErrLocked) {
		t.Fatalf("cart mutation during checkout: %v, want ErrLocked", err)
	}

	// Again: the active checkout, 200.
	r = ev.do(http.MethodPost, "/v1/checkouts", "", ev.who(me))
	if r.status != http.StatusOK || decode[checkoutResp](t, r).ID != co.ID {
		t.Fatalf("second create: %d %s", r.status, r.body)
	}
	ev.wantLevels(v, 10, 8, 2)

	// GET.
	r = ev.do(http.MethodGet, "/v1/checkouts/"+co.ID.String(), "", ev.who(me))
	if r.status != http.StatusOK || decode[checkoutResp](t, r).State != "awaiting_payment" {
		t.Fatalf("get: %d %s", r.status, r.body)
	}

	// Declined: 402, still payable, nothing sold.
	r = ev.do(http.MethodPost, completePath(co.ID), `{"payment_token":"tok_declined"}`, ev.who(me))
	if r.status != http.StatusPaymentRequired || r.code(t) != "payment_declined" {
		t.Fatalf("declined: %d %s", r.status, r.body)
	}
	r = ev.do(http.MethodGet, "/v1/checkouts/"+co.ID.String(), "", ev.who(me))
	if got := decode[checkoutResp](t, r); got.State != "awaiting_payment" || got.PaymentIntent.Status != "failed" {
		t.Fatalf("after decline: %s", r.body)
	}
	ev.wantLevels(v, 10, 8, 2)

	// Paid: 200 with the order; stock sold; cart emptied and unlocked.
	r = ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(me))
	if r.status != http.StatusOK {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
	done := r.json(t)
	chk := done["checkout"].(map[string]any)
	ord := done["order"].(map[string]any)
	if chk["state"] != "completed" || chk["order_id"] != ord["id"] || ord["status"] != "placed" ||
		ord["checkout_id"] != co.ID.String() || ord["number"].(float64) < 100001 ||
		ord["total"].(map[string]any)["amount"].(float64) != 3998 || ord["email"] != "shopper@example.com" ||
		chk["payment_intent"].(map[string]any)["status"] != "succeeded" {
		t.Fatalf("completion: %s", r.body)
	}
	ev.wantLevels(v, 8, 8, 0)
	if c := ev.cart(me); len(c.Lines) != 0 || c.LockedBy != "" {
		t.Fatalf("cart after the order: %+v", c)
	}
	// Repeat: the same order.
	r2 := ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(me))
	if r2.status != http.StatusOK || r2.json(t)["order"].(map[string]any)["id"] != ord["id"] {
		t.Fatalf("repeat complete: %d %s", r2.status, r2.body)
	}
	ev.wantLevels(v, 8, 8, 0)
	if n := ev.count(`SELECT count(*) FROM orders`); n != 1 {
		t.Fatalf("%d orders", n)
	}
	if n := ev.count(`SELECT count(*) FROM outbox WHERE topic = 'order.placed'`); n != 1 {
		t.Fatalf("%d outbox rows", n)
	}
	if n := ev.count(`SELECT count(*) FROM order_lines WHERE quantity = 2`); n != 1 {
		t.Fatalf("%d order lines", n)
	}

	// Orders routes.
	r = ev.do(http.MethodGet, "/v1/orders/"+ord["id"].(string), "", ev.who(me))
	if r.status != http.StatusOK || r.json(t)["id"] != ord["id"] {
		t.Fatalf("get order: %d %s", r.status, r.body)
	}
	r = ev.do(http.MethodGet, "/v1/orders", "", ev.who(me))
	if items := r.json(t)["items"].([]any); r.status != http.StatusOK || len(items) != 1 {
		t.Fatalf("list orders: %d %s", r.status, r.body)
	}
	// Cancel after completion: 409 conflict.
	r = ev.do(http.MethodPost, cancelPath(co.ID), "", ev.who(me))
	if r.status != http.StatusConflict || r.code(t) != "conflict" {
		t.Fatalf("cancel completed: %d %s", r.status, r.body)
	}

	// A new checkout of the (now empty) cart: 422 cart_empty.
	r = ev.do(http.MethodPost, "/v1/checkouts", "{}", ev.who(me))
	if r.status != http.StatusUnprocessableEntity || r.code(t) != "cart_empty" {
		t.Fatalf("empty cart: %d %s", r.status, r.body)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	v := ev.variant(5, 500)
	me := sessionOwner(ev.session())
	ev.add(me, v, 3)
	co := ev.createCheckout(me)
	ev.wantLevels(v, 5, 2, 3)
	r := ev.do(http.MethodPost, cancelPath(co.ID), "", ev.who(me))
	if r.status != http.StatusOK || decode[checkoutResp](t, r).State != "cancelled" {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	ev.wantLevels(v, 5, 5, 0)
	if c := ev.cart(me); c.LockedBy != "" || len(c.Lines) != 1 {
		t.Fatalf("cart after cancel: %+v", c)
	}
	// Idempotent; and the cancelled checkout cannot be completed.
	if r := ev.do(http.MethodPost, cancelPath(co.ID), "{}", ev.who(me)); r.status != http.StatusOK {
		t.Fatalf("cancel again: %d %s", r.status, r.body)
	}
	if r := ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(me)); r.status != http.StatusConflict {
		t.Fatalf("complete cancelled: %d %s", r.status, r.body)
	}
	// A new checkout starts from the same cart.
	co2 := ev.createCheckout(me)
	if co2.ID == co.ID {
		t.Fatal("the cancelled checkout came back")
	}
	ev.wantLevels(v, 5, 2, 3)
}

func TestCreateErrors(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	v := ev.variant(2, 100)
	w := ev.variant(10, 100)
	me := sessionOwner(ev.session())

	if r := ev.do(http.MethodPost, "/v1/checkouts", "{}", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("anonymous: %d", r.status)
	}
	if r := ev.do(http.MethodPost, "/v1/checkouts", "{}", ev.who(me)); r.status != 422 || r.code(t) != "cart_empty" {
		t.Fatalf("empty: %d %s", r.status, r.body)
	}
	ev.add(me, w, 1)
	ev.add(me, v, 2)
	// Another shopper's checkout takes one of v's two units meanwhile.
	other := sessionOwner(ev.session())
	ev.add(other, v, 1)
	ev.createCheckout(other)

	r := ev.do(http.MethodPost, "/v1/checkouts", "{}", ev.who(me))
	if r.status != http.StatusConflict || r.code(t) != "insufficient_stock" {
		t.Fatalf("short: %d %s", r.status, r.body)
	}
	vs := r.json(t)["error"].(map[string]any)["details"].(map[string]any)["variants"].([]any)
	if len(vs) != 1 {
		t.Fatalf("details: %s", r.body)
	}
	s := vs[0].(map[string]any)
	if s["variant_id"] != v.String() || s["requested"].(float64) != 2 || s["available"].(float64) != 1 {
		t.Fatalf("shortage: %v", s)
	}
	ev.wantLevels(w, 10, 10, 0) // nothing left held
	ev.wantLevels(v, 2, 1, 1)   // only the other shopper's hold
	if c := ev.cart(me); c.LockedBy != "" {
		t.Fatalf("cart left locked by %s", c.LockedBy)
	}
	// Sold out before anything was written: no checkout row at all (the flash-sale test
	// covers the reservation losing a race after this check passed).
	if n := ev.count(`SELECT count(*) FROM checkouts WHERE state <> 'awaiting_payment'`); n != 0 {
		t.Fatalf("a sold-out checkout left %d rows", n)
	}

	for _, tc := range []struct{ body, code string }{
		{`{"email":"not-an-email"}`, "validation_failed"},
		{`{"emial":"a@b.c"}`, "bad_request"},
		{`{"email":`, "bad_request"},
	} {
		if r := ev.do(http.MethodPost, "/v1/checkouts", tc.body, ev.who(me)); r.code(t) != tc.code {
			t.Errorf("%s: %d %s", tc.body, r.status, r.body)
		}
	}
	for _, tc := range []struct{ path, body string }{
		{"/v1/checkouts/not-a-uuid/complete", tokOK},
		{completePath(uuid.New()), `{"payment_token":""}`},
		{completePath(uuid.New()), `{"payment_method":""}`},
		{completePath(uuid.New()), `{"payment_method":"pm_card_visa","payment_token":"tok_ok"}`},
	} {
		if r := ev.do(http.MethodPost, tc.path, tc.body, ev.who(me)); r.status != 400 && r.status != 422 {
			t.Errorf("%s %s: %d %s", tc.path, tc.body, r.status, r.body)
		}
	}
	if r := ev.do(http.MethodPost, completePath(uuid.New()), tokOK, ev.who(me)); r.status != 404 {
		t.Errorf("unknown checkout: %d %s", r.status, r.body)
	}

	// Another request holds the cart's checkout lock: 409 checkout_in_progress.
	if err := ev.rdb.Set(ev.ctx, checkout.LockKey(ev.svc, me), "someone", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r = ev.do(http.MethodPost, "/v1/checkouts", "{}", ev.who(me))
	if r.status != http.StatusConflict || r.code(t) != "checkout_in_progress" {
		t.Fatalf("locked: %d %s", r.status, r.body)
	}
}
