package checkout_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"commerce/internal/checkout"
	"commerce/internal/payment"
	"commerce/internal/payment/stripepay"
	"commerce/internal/platform/money"
)

func refundPath(id uuid.UUID) string      { return "/admin/orders/" + id.String() + "/refund" }
func cancelOrderPath(id uuid.UUID) string { return "/admin/orders/" + id.String() + "/cancel" }

// ledgerSum is the sum of a variant's ledger deltas.
func (ev *env) ledgerSum(v uuid.UUID) int64 {
	ev.t.Helper()
	var n int64
	if err := ev.pool.QueryRow(ev.ctx, `SELECT COALESCE(sum(delta), 0) FROM stock_ledger WHERE variant_id = $1`, v).Scan(&n); err != nil {
		ev.t.Fatal(err)
	}
	return n
}

// TestCancelOrderRestocks: cancelling an order refunds all of it once and puts every line
// back through the inventory's adjust path: on_hand, available, the ledger and the order
// agree, and Redis does not drift. Cancelling again answers the same order unchanged.
func TestCancelOrderRestocks(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	a, b := ev.variant(10, 1200), ev.variant(5, 700)
	me := customerOwner("canceller")
	o := ev.placeOrder(me, map[uuid.UUID]int64{a: 3, b: 2})
	ev.wantLevels(a, 7, 7, 0)
	ev.wantLevels(b, 3, 3, 0)
	ledgerA, ledgerB := ev.ledgerSum(a), ev.ledgerSum(b)

	r := ev.admin(http.MethodPost, cancelOrderPath(o.ID), `{"reason":"customer changed their mind"}`)
	if r.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	got := decode[orderResp](t, r)
	if got.Status != "cancelled" || got.RefundedTotal.Amount != o.Total.Amount || len(got.Refunds) != 1 ||
		got.Refunds[0].Status != "succeeded" || got.Refunds[0].Amount.Amount != o.Total.Amount {
		t.Fatalf("cancelled order: %s", r.body)
	}
	// Stock: back to where it was, through the ledger, and Redis agrees (drift 0).
	ev.wantLevels(a, 10, 10, 0)
	ev.wantLevels(b, 5, 5, 0)
	if d := ev.ledgerSum(a) - ledgerA; d != 3 {
		t.Fatalf("ledger of a moved by %d, want +3", d)
	}
	if d := ev.ledgerSum(b) - ledgerB; d != 2 {
		t.Fatalf("ledger of b moved by %d, want +2", d)
	}
	for v, want := range map[uuid.UUID]int64{a: 3, b: 2} {
		if n := ev.count(`SELECT restocked FROM order_lines WHERE order_id = $1 AND variant_id = $2`, o.ID, v); int64(n) != want {
			t.Fatalf("order line %s restocked %d, want %d", v, n, want)
		}
	}
	// The ledger, on_hand and the inventory version agree: the last ledger row of a says
	// on_hand_after 10 at the current version.
	var after, ver, cur int64
	if err := ev.pool.QueryRow(ev.ctx, `SELECT l.on_hand_after, l.version, i.version FROM stock_ledger l
JOIN inventory i USING (variant_id) WHERE l.variant_id = $1 ORDER BY l.id DESC LIMIT 1`, a).Scan(&after, &ver, &cur); err != nil {
		t.Fatal(err)
	}
	if after != 10 || ver != cur {
		t.Fatalf("last ledger row of a: on_hand_after %d at version %d; inventory version %d", after, ver, cur)
	}
	if n := len(ev.pay.Refunds()); n != 1 {
		t.Fatalf("%d refunds at the provider, want 1", n)
	}
	if n := ev.count(`SELECT count(*) FROM outbox WHERE topic = 'order.cancelled' AND aggregate_id = $1`, o.ID.String()); n != 1 {
		t.Fatalf("%d order.cancelled events", n)
	}

	// Again: 200, unchanged, nothing more refunded or restocked.
	r2 := ev.admin(http.MethodPost, cancelOrderPath(o.ID), `{"reason":"again"}`)
	if r2.status != http.StatusOK || !bytes.Equal(r2.body, ev.admin(http.MethodGet, "/admin/orders/"+o.ID.String(), "").body) {
		t.Fatalf("cancel again: %d %s", r2.status, r2.body)
	}
	if g := decode[orderResp](t, r2); g.Status != "cancelled" || len(g.Refunds) != 1 {
		t.Fatalf("cancel again changed the order: %s", r2.body)
	}
	ev.wantLevels(a, 10, 10, 0)
	if n := len(ev.pay.Refunds()); n != 1 {
		t.Fatalf("%d refunds at the provider after a second cancel", n)
	}
	// A refund of a cancelled order is a conflict.
	if r := ev.admin(http.MethodPost, refundPath(o.ID), `{"reason":"x"}`); r.status != http.StatusConflict {
		t.Fatalf("refund of a cancelled order: %d %s", r.status, r.body)
	}
}

// TestRefundOrder: partial refunds with restock, the 422s (more than remains, a restock
// above what is left, another currency) that change nothing, Idempotency-Key replay,
// and the order's status through placed → partially_refunded → refunded.
func TestRefundOrder(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	v := ev.variant(10, 1000)
	me := customerOwner("refundee")
	o := ev.placeOrder(me, map[uuid.UUID]int64{v: 3}) // total 3000
	path := refundPath(o.ID)

	before := ev.admin(http.MethodGet, "/admin/orders/"+o.ID.String(), "").body
	for name, body := range map[string]string{
		"more than remains":  `{"amount":{"amount":3001,"currency":"USD"},"reason":"x"}`,
		"other currency":     `{"amount":{"amount":100,"currency":"EUR"},"reason":"x"}`,
		"restock too many":   fmt.Sprintf(`{"reason":"x","restock":[{"variant_id":%q,"quantity":4}]}`, v),
		"restock twice over": fmt.Sprintf(`{"reason":"x","restock":[{"variant_id":%q,"quantity":2},{"variant_id":%q,"quantity":2}]}`, v, v),
		"restock stranger":   fmt.Sprintf(`{"reason":"x","restock":[{"variant_id":%q,"quantity":1}]}`, uuid.New()),
		"no reason":          `{"amount":{"amount":100,"currency":"USD"}}`,
		"long reason":        fmt.Sprintf(`{"reason":%q}`, string(bytes.Repeat([]byte("r"), 201))),
		"negative":           `{"amount":{"amount":-1,"currency":"USD"},"reason":"x"}`,
	} {
		if r := ev.admin(http.MethodPost, path, body); r.status != http.StatusUnprocessableEntity || r.code(t) != "validation_failed" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if after := ev.admin(http.MethodGet, "/admin/orders/"+o.ID.String(), "").body; !bytes.Equal(before, after) {
		t.Fatalf("a refused refund changed the order:\n%s\n%s", before, after)
	}
	ev.wantLevels(v, 7, 7, 0)

	// 1000 back and one unit restocked, with a key: replayed byte for byte, once.
	body := fmt.Sprintf(`{"amount":{"amount":1000,"currency":"USD"},"reason":"one arrived broken","restock":[{"variant_id":%q,"quantity":1}]}`, v)
	r := ev.admin(http.MethodPost, path, body, checkout.HeaderIdempotencyKey, "refund-1")
	if r.status != http.StatusOK {
		t.Fatalf("refund: %d %s", r.status, r.body)
	}
	got := decode[orderResp](t, r)
	if got.Status != "partially_refunded" || got.RefundedTotal.Amount != 1000 || len(got.Refunds) != 1 ||
		got.Refunds[0].Reason != "one arrived broken" || got.Refunds[0].Status != "succeeded" {
		t.Fatalf("after a partial refund: %s", r.body)
	}
	r2 := ev.admin(http.MethodPost, path, body, checkout.HeaderIdempotencyKey, "refund-1")
	if r2.status != http.StatusOK || !bytes.Equal(r.body, r2.body) || r2.header.Get(checkout.HeaderReplayed) != "true" {
		t.Fatalf("replay: %d %s", r2.status, r2.body)
	}
	if n := len(ev.pay.Refunds()); n != 1 {
		t.Fatalf("%d refunds at the provider, want 1", n)
	}
	ev.wantLevels(v, 8, 8, 0)
	// Now 2 units are left to restock, 2000 to refund.
	if r := ev.admin(http.MethodPost, path, fmt.Sprintf(`{"reason":"x","restock":[{"variant_id":%q,"quantity":3}]}`, v)); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("restock above what is left: %d %s", r.status, r.body)
	}
	// The rest (amount omitted).
	r = ev.admin(http.MethodPost, path, `{"reason":"goodwill"}`)
	if got := decode[orderResp](t, r); r.status != http.StatusOK || got.Status != "refunded" || got.RefundedTotal.Amount != 3000 || len(got.Refunds) != 2 {
		t.Fatalf("refund the rest: %d %s", r.status, r.body)
	}
	if r := ev.admin(http.MethodPost, path, `{"reason":"more"}`); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("nothing left: %d %s", r.status, r.body)
	}
	var sum int64
	for _, rf := range ev.pay.Refunds() {
		sum += rf.Amount.Amount
	}
	if sum != 3000 {
		t.Fatalf("the provider refunded %d, want 3000", sum)
	}
	if n := ev.count(`SELECT count(*) FROM outbox WHERE topic = 'order.refunded' AND aggregate_id = $1`, o.ID.String()); n != 2 {
		t.Fatalf("%d order.refunded events, want 2", n)
	}
	// Listing.
	r = ev.admin(http.MethodGet, "/admin/orders?status=refunded&customer_id="+me.ID, "")
	var list struct {
		Items []orderResp `json:"items"`
		Total int64       `json:"total"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil || r.status != 200 || list.Total != 1 || list.Items[0].ID != o.ID {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if r := ev.admin(http.MethodGet, "/admin/orders?status=lost", ""); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad status filter: %d %s", r.status, r.body)
	}
	if r := ev.admin(http.MethodGet, "/admin/orders/"+uuid.NewString(), ""); r.status != http.StatusNotFound {
		t.Fatalf("unknown order: %d", r.status)
	}
}

// TestRefundRetriedUntilConfirmed: a provider that fails the refund call (unreachable, or
// its reply lost after refunding) leaves the refund pending; the relay repeats the call
// with the same refund id until the provider confirms, and the money goes back once.
func TestRefundRetriedUntilConfirmed(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	v := ev.variant(5, 900)
	me := customerOwner("patient")
	o := ev.placeOrder(me, map[uuid.UUID]int64{v: 1})
	ev.pay.FailNext(payment.OpRefund, payment.FailBefore)
	ev.pay.FailNext(payment.OpRefund, payment.FailAfter)
	r := ev.admin(http.MethodPost, refundPath(o.ID), `{"reason":"late delivery"}`)
	got := decode[orderResp](t, r)
	if r.status != http.StatusOK || got.Status != "refunded" || got.Refunds[0].Status != "pending" {
		t.Fatalf("refund with the provider down: %d %s", r.status, r.body)
	}
	for i := 0; i < 2; i++ {
		if _, err := ev.pool.Exec(ev.ctx, `UPDATE payment_actions SET next_attempt_at = now()`); err != nil {
			t.Fatal(err)
		}
		if _, err := ev.svc.RelayPayments(ev.ctx); err != nil {
			t.Fatal(err)
		}
	}
	o2 := decode[orderResp](t, ev.admin(http.MethodGet, "/admin/orders/"+o.ID.String(), ""))
	if o2.Refunds[0].Status != "succeeded" {
		t.Fatalf("after the relay: %+v", o2)
	}
	if n := len(ev.pay.Refunds()); n != 1 || ev.pay.Calls(payment.OpRefund) != 2 {
		t.Fatalf("%d refunds from %d calls reaching the provider; want 1 from 2", n, ev.pay.Calls(payment.OpRefund))
	}
}

// TestPaymentFlows: decline, 3-D Secure, a lost confirmation reply, and an intent whose
// amount was changed at the provider.
func TestPaymentFlows(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	v := ev.variant(20, 1100)

	t.Run("declined then paid", func(t *testing.T) {
		me := customerOwner("decliner")
		ev.add(me, v, 1)
		co := ev.createCheckout(me)
		r := ev.do(http.MethodPost, completePath(co.ID), `{"payment_method":"pm_card_chargeDeclined"}`, ev.who(me))
		if r.status != http.StatusPaymentRequired || r.code(t) != "payment_declined" {
			t.Fatalf("decline: %d %s", r.status, r.body)
		}
		if r := ev.do(http.MethodPost, completePath(co.ID), `{"payment_method":"pm_card_visa"}`, ev.who(me)); r.status != http.StatusOK {
			t.Fatalf("pay after a decline: %d %s", r.status, r.body)
		}
	})
	t.Run("3-D Secure", func(t *testing.T) {
		me := customerOwner("threeds")
		ev.add(me, v, 1)
		co := ev.createCheckout(me)
		r := ev.do(http.MethodPost, completePath(co.ID), `{"payment_method":"pm_card_threeDSecure2Required"}`, ev.who(me))
		if r.status != http.StatusPaymentRequired || r.code(t) != "payment_requires_action" {
			t.Fatalf("3DS: %d %s", r.status, r.body)
		}
		d := r.json(t)["error"].(map[string]any)["details"].(map[string]any)
		if d["client_secret"] == "" || d["payment_intent_id"] != co.PaymentIntent.ID || d["next_action"] != "use_stripe_sdk" {
			t.Fatalf("3DS details: %s", r.body)
		}
		// Still payable; without the authentication, {} is not enough.
		if r := ev.do(http.MethodPost, completePath(co.ID), `{}`, ev.who(me)); r.status != http.StatusPaymentRequired {
			t.Fatalf("complete before authenticating: %d %s", r.status, r.body)
		}
		// Another payment method replaces the one that needs authentication.
		me2 := customerOwner("threeds-switch")
		ev.add(me2, v, 1)
		co2 := ev.createCheckout(me2)
		if r := ev.do(http.MethodPost, completePath(co2.ID), `{"payment_token":"tok_3ds"}`, ev.who(me2)); r.status != http.StatusPaymentRequired {
			t.Fatalf("3DS: %d %s", r.status, r.body)
		}
		if r := ev.do(http.MethodPost, completePath(co2.ID), tokOK, ev.who(me2)); r.status != http.StatusOK {
			t.Fatalf("another method after 3DS: %d %s", r.status, r.body)
		}
		// The storefront finishes the challenge (Stripe.js); complete places the order.
		if _, err := ev.pay.ConfirmClientSide(co.PaymentIntent.ID, checkout.Token3DS); err != nil {
			t.Fatal(err)
		}
		if r := ev.do(http.MethodPost, completePath(co.ID), `{}`, ev.who(me)); r.status != http.StatusOK {
			t.Fatalf("complete after authenticating: %d %s", r.status, r.body)
		}
	})
	t.Run("unconfirmed intent", func(t *testing.T) {
		me := customerOwner("nomethod")
		ev.add(me, v, 1)
		co := ev.createCheckout(me)
		if r := ev.do(http.MethodPost, completePath(co.ID), `{}`, ev.who(me)); r.status != http.StatusUnprocessableEntity {
			t.Fatalf("complete without a method: %d %s", r.status, r.body)
		}
	})
	t.Run("lost confirmation reply", func(t *testing.T) {
		me := customerOwner("lostreply")
		ev.add(me, v, 1)
		co := ev.createCheckout(me)
		before := ev.pay.Captures()
		ev.pay.FailNext(payment.OpConfirm, payment.FailAfter) // charged, but the answer never came
		r := ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(me))
		if r.status != http.StatusOK {
			t.Fatalf("complete after a lost reply: %d %s", r.status, r.body)
		}
		if got := ev.pay.Captures() - before; got != 1 {
			t.Fatalf("charged %d times", got)
		}
	})
	t.Run("provider unreachable", func(t *testing.T) {
		me := customerOwner("unreachable")
		ev.add(me, v, 1)
		co := ev.createCheckout(me)
		// The confirmation never reaches the provider: unknown, settled by retrieving
		// the intent (not attempted), so 503 and not a decline.
		ev.pay.FailNext(payment.OpConfirm, payment.FailBefore)
		r := ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(me))
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("provider down: %d %s", r.status, r.body)
		}
		// The provider cannot even be asked about the intent: 503.
		ev.pay.FailNext(payment.OpRetrieve, payment.FailBefore)
		r = ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(me))
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("provider down for retrieve: %d %s", r.status, r.body)
		}
		if r := ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(me)); r.status != http.StatusOK {
			t.Fatalf("retry: %d %s", r.status, r.body)
		}
	})
	t.Run("amount mismatch", func(t *testing.T) {
		me := customerOwner("tampered")
		ev.add(me, v, 2)
		co := ev.createCheckout(me)
		if _, err := ev.pay.ConfirmClientSide(co.PaymentIntent.ID, checkout.TokenOK); err != nil {
			t.Fatal(err)
		}
		ev.pay.Tamper(co.PaymentIntent.ID, money.New(100, "USD"))
		r := ev.do(http.MethodPost, completePath(co.ID), `{}`, ev.who(me))
		if r.status != http.StatusConflict {
			t.Fatalf("mismatched amount: %d %s", r.status, r.body)
		}
		if n := ev.count(`SELECT count(*) FROM orders WHERE checkout_id = $1`, co.ID); n != 0 {
			t.Fatal("an order was placed for a mismatched payment")
		}
		fl := ev.admin(http.MethodGet, "/admin/payments/flagged", "")
		if fl.status != 200 || !bytes.Contains(fl.body, []byte(co.PaymentIntent.ID)) {
			t.Fatalf("flagged: %d %s", fl.status, fl.body)
		}
		if _, err := ev.svc.RelayPayments(ev.ctx); err != nil {
			t.Fatal(err)
		}
		refunded := false
		for _, rf := range ev.pay.Refunds() {
			refunded = refunded || rf.IntentID == co.PaymentIntent.ID
		}
		if !refunded {
			t.Fatal("the mismatched payment was not refunded")
		}
	})
}

// TestEndedPaidCheckoutIsRefunded: a due checkout whose intent the storefront paid is
// completed by the sweep instead of expired; an unpaid one expires and its intent is
// voided; one whose intent is paid after it ended (cancelled) is refunded by the relay,
// once.
func TestEndedPaidCheckoutIsRefunded(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	v := ev.variant(5, 1300)
	paid, unpaid, late := customerOwner("paid-late"), customerOwner("walked-away"), customerOwner("paid-too-late")
	ev.add(paid, v, 1)
	ev.add(unpaid, v, 1)
	ev.add(late, v, 1)
	c1, c2, c3 := ev.createCheckout(paid), ev.createCheckout(unpaid), ev.createCheckout(late)
	if _, err := ev.pay.ConfirmClientSide(c1.PaymentIntent.ID, checkout.TokenOK); err != nil {
		t.Fatal(err)
	}
	if _, err := ev.pool.Exec(ev.ctx, `UPDATE checkouts SET expires_at = now() - interval '1 second' WHERE id = ANY($1)`,
		[]uuid.UUID{c1.ID, c2.ID}); err != nil {
		t.Fatal(err)
	}
	if n, err := ev.svc.ExpireDue(ev.ctx); err != nil || n != 1 {
		t.Fatalf("expired %d (want 1: the paid one completes): %v", n, err)
	}
	if n := ev.count(`SELECT count(*) FROM orders WHERE checkout_id = $1`, c1.ID); n != 1 {
		t.Fatal("the paid checkout was not completed by the sweep")
	}
	// The third is cancelled by its owner, and then paid in the storefront anyway.
	if r := ev.do(http.MethodPost, cancelPath(c3.ID), "", ev.who(late)); r.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if _, err := ev.pay.ConfirmClientSide(c3.PaymentIntent.ID, checkout.TokenOK); err != nil {
		t.Fatal(err)
	}
	ev.wantLevels(v, 4, 4, 0)
	for i := 0; i < 2; i++ {
		if _, err := ev.svc.RelayPayments(ev.ctx); err != nil {
			t.Fatal(err)
		}
	}
	rs := ev.pay.Refunds()
	if len(rs) != 1 {
		t.Fatalf("%d refunds, want 1", len(rs))
	}
	for _, r := range rs {
		if r.IntentID != c3.PaymentIntent.ID || r.Amount.Amount != 1300 {
			t.Fatalf("refund %+v", r)
		}
	}
	in, err := ev.pay.Retrieve(ev.ctx, c2.PaymentIntent.ID)
	if err != nil || in.Status != payment.StatusCanceled {
		t.Fatalf("the unpaid intent: %+v %v", in, err)
	}
	if n := ev.count(`SELECT count(*) FROM payment_actions WHERE status = 'succeeded'`); n != 2 {
		t.Fatalf("%d settled payment actions, want 2", n)
	}
}

// TestStripeWebhookRefundEvents: Stripe's refund.updated settles a refund (and a failed one
// gives the amount back to what can be refunded); charge.refunded records a refund made in
// Stripe's dashboard; a bad signature is 401 and a replay has no effect.
func TestStripeWebhookRefundEvents(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	v := ev.variant(5, 2000)
	me := customerOwner("stripe-hooks")
	o := ev.placeOrder(me, map[uuid.UUID]int64{v: 1})
	var pi string
	if err := ev.pool.QueryRow(ev.ctx, `SELECT payment_intent_id FROM orders WHERE id = $1`, o.ID).Scan(&pi); err != nil {
		t.Fatal(err)
	}
	send := func(event map[string]any, secret string) resp {
		b, _ := json.Marshal(event)
		return ev.do(http.MethodPost, "/v1/payments/stripe/webhook", string(b),
			map[string]string{"Stripe-Signature": stripepay.SignPayload(b, secret)})
	}
	// An operator refund, reported pending (as Stripe often does at first).
	r := ev.admin(http.MethodPost, refundPath(o.ID), `{"amount":{"amount":500,"currency":"USD"},"reason":"partial"}`)
	if r.status != 200 {
		t.Fatalf("refund: %d %s", r.status, r.body)
	}
	rid := decode[orderResp](t, r).Refunds[0].ID
	if _, err := ev.pool.Exec(ev.ctx, `UPDATE payment_actions SET status = 'pending' WHERE id = $1`, rid); err != nil {
		t.Fatal(err)
	}
	failed := map[string]any{"id": "evt_r1", "object": "event", "type": "refund.updated", "data": map[string]any{
		"object": map[string]any{"id": "re_x", "object": "refund", "amount": 500, "currency": "usd", "status": "failed",
			"payment_intent": pi, "metadata": map[string]string{"refund_id": rid.String()}}}}
	if r := send(failed, "whsec_wrong"); r.status != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d %s", r.status, r.body)
	}
	if r := send(failed, stripeSecret); r.status != 200 || r.json(t)["duplicate"] != false {
		t.Fatalf("refund.updated: %d %s", r.status, r.body)
	}
	got := decode[orderResp](t, ev.admin(http.MethodGet, "/admin/orders/"+o.ID.String(), ""))
	if got.Refunds[0].Status != "failed" || got.RefundedTotal.Amount != 0 || got.Status != "placed" {
		t.Fatalf("after a failed refund: %+v", got)
	}
	if r := send(failed, stripeSecret); r.status != 200 || r.json(t)["duplicate"] != true {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	// A refund of 700 made in Stripe's dashboard.
	charged := map[string]any{"id": "evt_c1", "object": "event", "type": "charge.refunded", "data": map[string]any{
		"object": map[string]any{"id": "ch_1", "object": "charge", "amount": 2000, "amount_refunded": 700,
			"currency": "usd", "payment_intent": pi}}}
	if r := send(charged, stripeSecret); r.status != 200 {
		t.Fatalf("charge.refunded: %d %s", r.status, r.body)
	}
	got = decode[orderResp](t, ev.admin(http.MethodGet, "/admin/orders/"+o.ID.String(), ""))
	if got.RefundedTotal.Amount != 700 || got.Status != "partially_refunded" || len(got.Refunds) != 2 {
		t.Fatalf("after charge.refunded: %+v", got)
	}
}
