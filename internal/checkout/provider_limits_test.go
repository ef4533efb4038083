package checkout_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"

	"commerce/internal/payment"
)

// A refund the provider accepts as pending (as Stripe does for some payment methods) is
// asked about by the payment relay until it ends, so a lost refund.updated webhook never
// leaves it pending for ever. The first poll waits (it is not due at once); a refund
// still pending is asked about again later; a success and a failure are both recorded,
// the failure giving the amount back to the order.
func TestPendingRefundIsPolledUntilItEnds(t *testing.T) {
	t.Parallel()
	pay := payment.NewTestProvider()
	pay.PendingRefunds = true
	ev := newEnv(t, func(c *envConfig) { c.pay = pay })
	v := ev.variant(10, 1500)
	relayDue := func() {
		t.Helper()
		if _, err := ev.pool.Exec(ev.ctx, `UPDATE payment_actions SET next_attempt_at = now() WHERE status = 'pending'`); err != nil {
			t.Fatal(err)
		}
		if _, err := ev.svc.RelayPayments(ev.ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, end := range []payment.RefundStatus{payment.RefundSucceeded, payment.RefundFailed} {
		polls := pay.Calls(payment.OpRetrieveRefund)
		me := customerOwner("pending-" + uuid.NewString()[:6])
		o := ev.placeOrder(me, map[uuid.UUID]int64{v: 1})
		r := ev.admin(http.MethodPost, refundPath(o.ID), `{"reason":"bank transfer refund"}`)
		got := decode[orderResp](t, r)
		if r.status != http.StatusOK || len(got.Refunds) != 1 || got.Refunds[0].Status != "pending" {
			t.Fatalf("refund: %d %s", r.status, r.body)
		}
		rid := got.Refunds[0].ID
		ref := pay.Refunds()[rid.String()].ProviderID
		if ref == "" {
			t.Fatalf("the provider has no refund %s", rid)
		}
		// Accepted just now: the relay does not ask before the first poll is due.
		if _, err := ev.svc.RelayPayments(ev.ctx); err != nil {
			t.Fatal(err)
		}
		if n := pay.Calls(payment.OpRetrieveRefund) - polls; n != 0 {
			t.Fatalf("%d polls before the first one was due", n)
		}
		// Due, still pending at the provider: asked, and left pending for a later poll.
		relayDue()
		if n := pay.Calls(payment.OpRetrieveRefund) - polls; n != 1 {
			t.Fatalf("%d polls of a due pending refund, want 1", n)
		}
		if s := decode[orderResp](t, ev.admin(http.MethodGet, "/admin/orders/"+o.ID.String(), "")).Refunds[0].Status; s != "pending" {
			t.Fatalf("refund still pending at the provider is %s", s)
		}
		var due bool
		if err := ev.pool.QueryRow(ev.ctx, `SELECT next_attempt_at > now() + interval '30 seconds' FROM payment_actions
WHERE id = $1`, rid).Scan(&due); err != nil || !due {
			t.Fatalf("the next poll of a pending refund is not put off (%v)", err)
		}
		// The bank answers; no webhook comes. The next due poll records the end.
		if !pay.SettleRefund(ref, end) {
			t.Fatalf("refund %s was not pending at the provider", ref)
		}
		relayDue()
		after := decode[orderResp](t, ev.admin(http.MethodGet, "/admin/orders/"+o.ID.String(), ""))
		switch end {
		case payment.RefundSucceeded:
			if after.Refunds[0].Status != "succeeded" || after.RefundedTotal.Amount != 1500 || after.Status != "refunded" {
				t.Fatalf("after the provider confirmed: %+v", after)
			}
		default:
			if after.Refunds[0].Status != "failed" || after.RefundedTotal.Amount != 0 || after.Status != "placed" {
				t.Fatalf("after the provider failed the refund: %+v", after)
			}
		}
		// Ended: never asked about again.
		polls = pay.Calls(payment.OpRetrieveRefund)
		relayDue()
		if n := pay.Calls(payment.OpRetrieveRefund) - polls; n != 0 {
			t.Fatalf("%d polls of an ended refund", n)
		}
	}
}

// A checkout whose total is under the provider's smallest charge (Stripe: 0.50 USD) is a
// 422 naming the total, not a 503: nothing stays held or frozen, the cart can be added
// to, and the larger cart checks out.
func TestTotalUnderProviderMinimumIs422(t *testing.T) {
	t.Parallel()
	pay := payment.NewTestProvider()
	pay.MinAmount = 50
	ev := newEnv(t, func(c *envConfig) { c.pay = pay })
	v := ev.variant(5, 30)
	me := customerOwner("penny-" + uuid.NewString()[:6])
	ev.add(me, v, 1)
	r := ev.do(http.MethodPost, "/v1/checkouts", "{}", ev.who(me))
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("create under the minimum: %d %s", r.status, r.body)
	}
	e := r.json(t)["error"].(map[string]any)
	fields, _ := e["details"].(map[string]any)["fields"].(map[string]any)
	if e["code"] != "validation_failed" || fields["total"] == nil {
		t.Fatalf("error body: %s", r.body)
	}
	ev.wantLevels(v, 5, 5, 0)
	ev.add(me, v, 1) // the cart is not frozen
	r = ev.do(http.MethodPost, "/v1/checkouts", "{}", ev.who(me))
	if r.status != http.StatusCreated {
		t.Fatalf("create at 60: %d %s", r.status, r.body)
	}
	ev.wantLevels(v, 5, 3, 2)
}

// A completion whose payment went through but whose sale transaction fails (here a
// trigger refuses the order once, with disk_full) goes back to awaiting_payment showing the payment as
// succeeded, with its holds intact; the next complete places the order without charging
// again.
func TestPaidCompletionWhoseSaleFailsStaysPaid(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	v := ev.variant(5, 1200)
	me := customerOwner("unlucky-" + uuid.NewString()[:6])
	ev.add(me, v, 1)
	co := ev.createCheckout(me)
	if _, err := ev.pool.Exec(ev.ctx, `
CREATE SEQUENCE refuse_orders; -- nextval is not rolled back: only the first order is refused
CREATE FUNCTION refuse_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF nextval('refuse_orders') = 1 THEN
		RAISE EXCEPTION 'the test stands in for a full disk' USING ERRCODE = '53100';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER refuse_order BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION refuse_order();`); err != nil {
		t.Fatal(err)
	}
	r := ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(me))
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("complete whose sale fails: %d %s", r.status, r.body)
	}
	if n := ev.pay.Captures(); n != 1 {
		t.Fatalf("%d captures, want 1", n)
	}
	got := ev.do(http.MethodGet, "/v1/checkouts/"+co.ID.String(), "", ev.who(me)).json(t)
	intent, _ := got["payment_intent"].(map[string]any)
	if got["state"] != "awaiting_payment" || intent == nil || intent["status"] != "succeeded" {
		t.Fatalf("after the failed sale: %v", got)
	}
	if n := ev.count(`SELECT count(*) FROM orders WHERE checkout_id = $1`, co.ID); n != 0 {
		t.Fatalf("%d orders after the failed sale", n)
	}
	r = ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(me))
	if r.status != http.StatusOK {
		t.Fatalf("complete again: %d %s", r.status, r.body)
	}
	if n := ev.pay.Captures(); n != 1 {
		t.Fatalf("%d captures after completing again, want 1 (charged twice)", n)
	}
	ev.wantLevels(v, 4, 4, 0)
}
