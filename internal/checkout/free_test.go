package checkout_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"

	"commerce/internal/app"
	"commerce/internal/discount"
	"commerce/internal/payment"
)

// A checkout whose discounts cover everything has nothing to pay: it opens no payment
// intent (a provider refuses one for zero) and completes with `{}`, without any call to
// the provider; the order is placed with a total of 0 and the stock is sold. A payment
// method sent anyway is not used. Cancelling such an order restocks it and refunds
// nothing.
func TestFreeCheckoutNeedsNoPayment(t *testing.T) {
	t.Parallel()
	rule := discount.Rule{ID: uuid.New(), Name: "On the house", Kind: discount.KindPercentage, Value: 100,
		Scope: discount.Scope{Type: discount.ScopeCart}, Stackable: true, Active: true}
	ev := newEnv(t, func(c *envConfig) {
		c.pricing = app.CheckoutPricing{Rules: staticRules{discount.Ruleset{Version: 7, Rules: []discount.Rule{rule}}}}
	})
	v := ev.variant(5, 1999)
	var orderID uuid.UUID
	for i, body := range []string{"{}", tokOK} {
		me := customerOwner("freebie-" + uuid.NewString()[:6])
		ev.add(me, v, 2)
		r := ev.do(http.MethodPost, "/v1/checkouts", "{}", ev.who(me))
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		co := r.json(t)
		if co["total"].(map[string]any)["amount"].(float64) != 0 || co["payment_intent"] != nil {
			t.Fatalf("free checkout: %s", r.body)
		}
		id := uuid.MustParse(co["id"].(string))
		r = ev.do(http.MethodPost, completePath(id), body, ev.who(me))
		if r.status != http.StatusOK {
			t.Fatalf("complete with %s: %d %s", body, r.status, r.body)
		}
		var total int64
		if err := ev.pool.QueryRow(ev.ctx, `SELECT id, total FROM orders WHERE checkout_id = $1`, id).Scan(&orderID, &total); err != nil {
			t.Fatal(err)
		}
		if total != 0 {
			t.Fatalf("order total %d, want 0", total)
		}
		ev.wantLevels(v, int64(5-2*(i+1)), int64(5-2*(i+1)), 0)
	}
	if r := ev.admin(http.MethodPost, cancelOrderPath(orderID), `{"reason":"giveaway withdrawn"}`); r.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	ev.wantLevels(v, 3, 3, 0)
	for _, op := range []payment.Op{payment.OpCreate, payment.OpConfirm, payment.OpCapture, payment.OpRetrieve,
		payment.OpCancel, payment.OpRefund} {
		if n := ev.pay.Calls(op); n != 0 {
			t.Errorf("%d %s calls to the payment provider for free checkouts, want 0", n, op)
		}
	}
}
