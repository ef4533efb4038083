package checkout_test

import (
	"net/http"
	"testing"
)

// TestOtherOwnersGet404: nobody reads or changes a checkout or an order of someone else:
// another session, another customer, or the same person's other identity that did not
// create it.
func TestOtherOwnersGet404(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	v := ev.variant(10, 1000)
	sess := sessionOwner(ev.session())
	cust := customerOwner("owner-a")
	ev.add(sess, v, 1)
	ev.add(cust, v, 1)
	sessCo := ev.createCheckout(sess)
	custCo := ev.createCheckout(cust)
	r := ev.do(http.MethodPost, completePath(custCo.ID), tokOK, ev.who(cust))
	if r.status != http.StatusOK {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
	orderID := r.json(t)["order"].(map[string]any)["id"].(string)

	strangers := map[string]map[string]string{
		"another session":  ev.who(sessionOwner(ev.session())),
		"another customer": ev.who(customerOwner("owner-b")),
	}
	for name, h := range strangers {
		for _, c := range []struct{ method, path, body string }{
			{http.MethodGet, "/v1/checkouts/" + sessCo.ID.String(), ""},
			{http.MethodGet, "/v1/checkouts/" + custCo.ID.String(), ""},
			{http.MethodPost, completePath(sessCo.ID), tokOK},
			{http.MethodPost, cancelPath(sessCo.ID), ""},
			{http.MethodPost, cancelPath(custCo.ID), ""},
			{http.MethodGet, "/v1/orders/" + orderID, ""},
		} {
			if r := ev.do(c.method, c.path, c.body, h); r.status != http.StatusNotFound || r.code(t) != "not_found" {
				t.Errorf("%s: %s %s: %d %s", name, c.method, c.path, r.status, r.body)
			}
		}
		if r := ev.do(http.MethodGet, "/v1/orders", "", h); r.status == http.StatusOK && len(r.json(t)["items"].([]any)) != 0 {
			t.Errorf("%s lists someone else's orders: %s", name, r.body)
		}
	}
	// Nothing changed: the session's checkout is still payable and held.
	ev.wantLevels(v, 9, 8, 1)
	if r := ev.do(http.MethodGet, "/v1/checkouts/"+sessCo.ID.String(), "", ev.who(sess)); decode[checkoutResp](t, r).State != "awaiting_payment" {
		t.Fatalf("session checkout: %s", r.body)
	}
	// A customer who also presents the session that owns an order may read it.
	both := ev.who(cust)
	both["X-Session-ID"] = ev.who(sess)["X-Session-ID"]
	if r := ev.do(http.MethodGet, "/v1/checkouts/"+sessCo.ID.String(), "", both); r.status != http.StatusOK {
		t.Fatalf("own session's checkout with a customer token too: %d %s", r.status, r.body)
	}
	// GET /v1/orders is for customers only.
	if r := ev.do(http.MethodGet, "/v1/orders", "", ev.who(sess)); r.status != http.StatusUnauthorized {
		t.Fatalf("session listing orders: %d", r.status)
	}
	if r := ev.do(http.MethodGet, "/v1/orders/not-a-uuid", "", ev.who(cust)); r.status != http.StatusBadRequest {
		t.Fatalf("malformed order id: %d", r.status)
	}
}

// TestOrdersList: a customer's orders, newest first, paginated.
func TestOrdersList(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	v := ev.variant(10, 100)
	me := customerOwner("lister")
	var ids []string
	for i := 0; i < 3; i++ {
		ev.add(me, v, 1)
		co := ev.createCheckout(me)
		r := ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(me))
		if r.status != http.StatusOK {
			t.Fatalf("complete: %d %s", r.status, r.body)
		}
		ids = append(ids, r.json(t)["order"].(map[string]any)["id"].(string))
	}
	r := ev.do(http.MethodGet, "/v1/orders?per_page=2", "", ev.who(me))
	items := r.json(t)["items"].([]any)
	if r.status != http.StatusOK || len(items) != 2 || items[0].(map[string]any)["id"] != ids[2] ||
		items[1].(map[string]any)["id"] != ids[1] {
		t.Fatalf("page 1: %s", r.body)
	}
	r = ev.do(http.MethodGet, "/v1/orders?per_page=2&page=2", "", ev.who(me))
	if items := r.json(t)["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != ids[0] {
		t.Fatalf("page 2: %s", r.body)
	}
	if total := r.json(t)["total"]; total != float64(3) {
		t.Fatalf("page 2: total %v, want 3: %s", total, r.body)
	}
	// The paging rule of every list: not an integer 400, out of range 422.
	for q, want := range map[string]int{"per_page=0": 422, "per_page=101": 422, "page=0": 422,
		"page=99999999999999999999": 422, "page=x": 400, "per_page=1.5": 400} {
		if r := ev.do(http.MethodGet, "/v1/orders?"+q, "", ev.who(me)); r.status != want {
			t.Errorf("%s: %d, want %d: %s", q, r.status, want, r.body)
		}
	}
}
