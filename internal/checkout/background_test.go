package checkout_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"commerce/internal/app"
	"commerce/internal/checkout"
	"commerce/internal/discount"
	"commerce/internal/platform/testenv"
)

// eventually polls cond every 10 ms for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestExpireDue: a checkout past CHECKOUT_TTL expires: holds returned, cart unlocked; a
// complete then answers 410 checkout_expired.
func TestExpireDue(t *testing.T) {
	t.Parallel()
	ev := newEnv(t, func(c *envConfig) {
		c.chk.HoldTTL = 150 * time.Millisecond
		c.chk.CheckoutTTL = 150 * time.Millisecond
	})
	v := ev.variant(4, 300)
	me := sessionOwner(ev.session())
	ev.add(me, v, 2)
	co := ev.createCheckout(me)
	eventually(t, "the checkout to expire", func() bool {
		n, err := ev.svc.ExpireDue(ev.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
	ev.wantLevels(v, 4, 4, 0)
	if c := ev.cart(me); c.LockedBy != "" || len(c.Lines) != 1 {
		t.Fatalf("cart after expiry: %+v", c)
	}
	r := ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(me))
	if r.status != http.StatusGone || r.code(t) != "checkout_expired" {
		t.Fatalf("complete expired: %d %s", r.status, r.body)
	}
	if r := ev.do(http.MethodPost, cancelPath(co.ID), "", ev.who(me)); r.status != http.StatusConflict {
		t.Fatalf("cancel expired: %d %s", r.status, r.body)
	}
	if n, err := ev.svc.ExpireDue(ev.ctx); err != nil || n != 0 {
		t.Fatalf("second pass expired %d, %v", n, err)
	}
	// A new checkout of the same cart.
	ev.createCheckout(me)
	ev.wantLevels(v, 4, 2, 2)
}

// TestCreateReplacesAnOverdueCheckout: a cart whose checkout is past its expiry but not
// yet swept gets a new checkout (the old one expires on the spot).
func TestCreateReplacesAnOverdueCheckout(t *testing.T) {
	t.Parallel()
	ev := newEnv(t, func(c *envConfig) {
		c.chk.HoldTTL = 100 * time.Millisecond
		c.chk.CheckoutTTL = 100 * time.Millisecond
	})
	v := ev.variant(4, 300)
	me := sessionOwner(ev.session())
	ev.add(me, v, 1)
	old := ev.createCheckout(me)
	eventually(t, "the checkout's expiry to pass", func() bool {
		return ev.count(`SELECT count(*) FROM checkouts WHERE id = $1 AND expires_at <= now()`, old.ID) == 1
	})
	co := ev.createCheckout(me)
	if co.ID == old.ID {
		t.Fatal("the overdue checkout was returned")
	}
	got, err := ev.svc.Get(ev.ctx, checkout.Identity{SessionID: me.ID}, old.ID)
	if err != nil || got.State != checkout.StateExpired {
		t.Fatalf("old checkout: %v %v", got.State, err)
	}
	ev.wantLevels(v, 4, 3, 1)
}

// TestCompleteRetakesLapsedHolds: holds that lapsed before the checkout expired are
// taken again at completion when stock allows; when someone else bought the stock
// meanwhile the answer is 410 and the cart is unlocked. The holds live 1.5 s: c's hold
// must outlive the steps between its creation and d's completion even on a loaded machine
// (with 100 ms it could lapse first, and d would take the unit back).
func TestCompleteRetakesLapsedHolds(t *testing.T) {
	t.Parallel()
	ev := newEnv(t, func(c *envConfig) {
		c.chk.HoldTTL = 1500 * time.Millisecond
		c.chk.CheckoutTTL = time.Minute
	})
	v := ev.variant(2, 300)
	a, b := sessionOwner(ev.session()), sessionOwner(ev.session())
	ev.add(a, v, 1)
	ev.add(b, v, 2)
	coA := ev.createCheckout(a)
	lapse := func() {
		eventually(t, "the holds to lapse", func() bool {
			if _, err := ev.inv.Sweep(ev.ctx); err != nil {
				t.Fatal(err)
			}
			return ev.levels(v).Held == 0
		})
	}
	lapse()
	if r := ev.do(http.MethodPost, completePath(coA.ID), tokOK, ev.who(a)); r.status != http.StatusOK {
		t.Fatalf("complete after the holds lapsed: %d %s", r.status, r.body)
	}
	ev.wantLevels(v, 1, 1, 0)

	// One unit left: b wants two (refused); d holds it, lets it lapse, c takes it.
	c := sessionOwner(ev.session())
	ev.add(c, v, 1)
	r := ev.do(http.MethodPost, "/v1/checkouts", "{}", ev.who(b))
	if r.status != http.StatusConflict || r.code(t) != "insufficient_stock" {
		t.Fatalf("b wants 2 of 1: %d %s", r.status, r.body)
	}
	d := sessionOwner(ev.session())
	ev.add(d, v, 1)
	coD := ev.createCheckout(d)
	lapse()
	coC := ev.createCheckout(c) // takes the unit d's lapsed hold gave back
	r = ev.do(http.MethodPost, completePath(coD.ID), tokOK, ev.who(d))
	if r.status != http.StatusGone || r.code(t) != "checkout_expired" {
		t.Fatalf("complete without stock: %d %s", r.status, r.body)
	}
	if cart := ev.cart(d); cart.LockedBy != "" {
		t.Fatalf("d's cart still locked")
	}
	if r := ev.do(http.MethodPost, completePath(coC.ID), tokOK, ev.who(c)); r.status != http.StatusOK {
		t.Fatalf("c completes: %d %s", r.status, r.body)
	}
	ev.wantLevels(v, 0, 0, 0)
}

// TestWebhook: the provider callback is authenticated by HMAC-SHA256 of the raw body;
// a replayed event id is acknowledged without effect; payment_failed keeps the checkout
// payable; payment_intent.succeeded is recorded and the next complete does not charge
// again.
func TestWebhook(t *testing.T) {
	t.Parallel()
	pay := checkout.NewTestProvider()
	ev := newEnv(t, func(c *envConfig) { c.pay = pay })
	v := ev.variant(3, 800)
	me := customerOwner("hooked")
	ev.add(me, v, 1)
	co := ev.createCheckout(me)
	intent := co.PaymentIntent.ID
	send := func(body string, sig string) resp {
		h := map[string]string{}
		if sig != "" {
			h[checkout.HeaderSignature] = sig
		}
		return ev.do(http.MethodPost, "/v1/payments/webhook", body, h)
	}
	event := func(id, typ string) string {
		b, _ := json.Marshal(map[string]string{"id": id, "type": typ, "payment_intent_id": intent})
		return string(b)
	}
	state := func() checkoutResp {
		r := ev.do(http.MethodGet, "/v1/checkouts/"+co.ID.String(), "", ev.who(me))
		return decode[checkoutResp](t, r)
	}
	failed := event("evt_1", "payment_intent.payment_failed")

	for name, sig := range map[string]string{
		"missing":      "",
		"wrong secret": checkout.Sign("other-secret", []byte(failed)),
		"other body":   checkout.Sign(webhookSecret, []byte(failed+" ")),
		"not hex":      "sha256=" + string(make([]byte, 64)),
		"no prefix":    checkout.Sign(webhookSecret, []byte(failed))[7:],
	} {
		if r := send(failed, sig); r.status != http.StatusUnauthorized {
			t.Errorf("%s signature: %d %s", name, r.status, r.body)
		}
	}
	if st := state(); st.PaymentIntent.Status != "requires_payment_method" {
		t.Fatalf("an unsigned event had an effect: %+v", st)
	}

	if r := send(failed, checkout.Sign(webhookSecret, []byte(failed))); r.status != http.StatusOK || r.json(t)["duplicate"] != false {
		t.Fatalf("failed event: %d %s", r.status, r.body)
	}
	if st := state(); st.State != "awaiting_payment" || st.PaymentIntent.Status != "failed" {
		t.Fatalf("after payment_failed: %+v", st)
	}
	// A forged "succeeded" (signed, but the provider says the intent is not paid) places
	// nothing: the service retrieves the intent before acting.
	forged := event("evt_forged", "payment_intent.succeeded")
	if r := send(forged, checkout.Sign(webhookSecret, []byte(forged))); r.status != http.StatusOK {
		t.Fatalf("forged succeeded event: %d %s", r.status, r.body)
	}
	if st := state(); st.State != "awaiting_payment" || st.OrderID != nil {
		t.Fatalf("an event the provider does not back placed an order: %+v", st)
	}
	// The storefront confirms the intent itself (client-side); the succeeded event then
	// places the order.
	if _, err := pay.ConfirmClientSide(intent, checkout.TokenOK); err != nil {
		t.Fatal(err)
	}
	ok := event("evt_2", "payment_intent.succeeded")
	if r := send(ok, checkout.Sign(webhookSecret, []byte(ok))); r.status != http.StatusOK {
		t.Fatalf("succeeded event: %d %s", r.status, r.body)
	}
	// Replaying evt_1 changes nothing.
	if r := send(failed, checkout.Sign(webhookSecret, []byte(failed))); r.status != http.StatusOK || r.json(t)["duplicate"] != true {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	st := state()
	if st.State != "completed" || st.PaymentIntent.Status != "succeeded" || st.OrderID == nil {
		t.Fatalf("after succeeded + replayed failure: %+v", st)
	}
	ev.wantLevels(v, 2, 2, 0)
	// complete afterwards answers the same order and does not charge again (even with a
	// declining token).
	r := ev.do(http.MethodPost, completePath(co.ID), `{"payment_token":"tok_declined"}`, ev.who(me))
	if r.status != http.StatusOK || decode[completionResp](t, r).Order.ID != *st.OrderID {
		t.Fatalf("complete after the succeeded event: %d %s", r.status, r.body)
	}
	if n := pay.Captures(); n != 1 {
		t.Fatalf("%d captures, want 1", n)
	}

	for _, body := range []string{`{"id":"x"`, `{"id":"e","type":"charge.refunded","payment_intent_id":"pi"}`,
		`{"id":"","type":"payment_intent.succeeded","payment_intent_id":"pi"}`, `{"id":"e","type":"payment_intent.succeeded","payment_intent_id":"pi","x":1}`} {
		if r := send(body, checkout.Sign(webhookSecret, []byte(body))); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s", body, r.status, r.body)
		}
	}
	unknown := `{"id":"evt_9","type":"payment_intent.succeeded","payment_intent_id":"pi_unknown"}`
	if r := send(unknown, checkout.Sign(webhookSecret, []byte(unknown))); r.status != http.StatusOK {
		t.Fatalf("unknown intent: %d %s", r.status, r.body)
	}
	if n := ev.count(`SELECT count(*) FROM payment_events`); n != 4 {
		t.Fatalf("%d payment events recorded", n)
	}
}

// TestRelayOutbox: order.placed rows reach the Redis Stream once each, with their event
// ids; the relay marks them published.
func TestRelayOutbox(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	v := ev.variant(10, 100)
	var orders []string
	for i := 0; i < 3; i++ {
		me := sessionOwner(ev.session())
		ev.add(me, v, 1)
		co := ev.createCheckout(me)
		r := ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(me))
		orders = append(orders, r.json(t)["order"].(map[string]any)["id"].(string))
	}
	// Two relays at once: SKIP LOCKED gives each row to one of them.
	res := make([]int, 2)
	parallel(2, 2, func(i int) {
		n, err := ev.svc.RelayOutbox(ev.ctx)
		if err != nil {
			t.Error(err)
		}
		res[i] = n
	})
	if res[0]+res[1] != 3 {
		t.Fatalf("relayed %v, want 3 in all", res)
	}
	if n, err := ev.svc.RelayOutbox(ev.ctx); err != nil || n != 0 {
		t.Fatalf("second relay: %d %v", n, err)
	}
	msgs, err := ev.rdb.XRange(ev.ctx, checkout.StreamKey(ev.svc), "-", "+").Result()
	if err != nil || len(msgs) != 3 {
		t.Fatalf("stream: %d entries, %v", len(msgs), err)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		var p struct {
			EventID string `json:"event_id"`
			OrderID string `json:"order_id"`
			Type    string `json:"type"`
		}
		if err := json.Unmarshal([]byte(m.Values["payload"].(string)), &p); err != nil {
			t.Fatal(err)
		}
		if p.EventID != m.Values["id"] || p.Type != "order.placed" || m.Values["topic"] != "order.placed" ||
			m.Values["aggregate_id"] != p.OrderID {
			t.Fatalf("entry %v", m.Values)
		}
		if n := ev.count(`SELECT count(*) FROM outbox WHERE id = $1 AND published_at IS NOT NULL`, uuid.MustParse(p.EventID)); n != 1 {
			t.Fatalf("event %s not marked published", p.EventID)
		}
		seen[p.OrderID] = true
	}
	for _, o := range orders {
		if !seen[o] {
			t.Fatalf("order %s not published", o)
		}
	}
}

// TestRedisLostCheckoutState: the checkout's Redis hash is only a fast path: when it is
// lost (or all of Redis is), completion rebuilds it from PostgreSQL, retakes the holds
// from the PostgreSQL stock and places the order once.
func TestRedisLostCheckoutState(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	v := ev.variant(5, 100)
	me := customerOwner("amnesia")
	who := checkout.Identity{CustomerID: me.ID}
	ev.add(me, v, 1)
	co := ev.createCheckout(me)
	if err := ev.rdb.Del(ev.ctx, checkout.HashKey(ev.svc, co.ID)).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := ev.svc.Complete(ev.ctx, who, co.ID, "tok_ok"); err != nil {
		t.Fatalf("complete without the hash: %v", err)
	}
	ev.wantLevels(v, 4, 4, 0)

	ev.add(me, v, 2)
	co2 := ev.createCheckout(me)
	if err := testenv.DeleteSpace(ev.ctx, ev.rdb, ev.space); err != nil { // Redis lost everything: holds, counters, hashes
		t.Fatal(err)
	}
	res, err := ev.svc.Complete(ev.ctx, who, co2.ID, "tok_ok")
	if err != nil {
		t.Fatalf("complete after Redis lost everything: %v", err)
	}
	if res.Order.Lines[0].Quantity != 2 {
		t.Fatalf("order: %+v", res.Order)
	}
	ev.wantLevels(v, 2, 2, 0)
	if n := ev.count(`SELECT count(*) FROM orders`); n != 2 {
		t.Fatalf("%d orders", n)
	}
}

type staticRules struct{ rs discount.Ruleset }

func (s staticRules) Load(context.Context) (discount.Ruleset, error) { return s.rs, nil }

// TestPricedWithDiscounts: the checkout prices with the current ruleset, records its
// version and the applied discounts, and the order carries them.
func TestPricedWithDiscounts(t *testing.T) {
	t.Parallel()
	rule := discount.Rule{ID: uuid.New(), Name: "Ten percent", Kind: discount.KindPercentage, Value: 10,
		Scope: discount.Scope{Type: discount.ScopeCart}, Stackable: true, Active: true}
	ev := newEnv(t, func(c *envConfig) {
		c.pricing = app.CheckoutPricing{Rules: staticRules{discount.Ruleset{Version: 42, Rules: []discount.Rule{rule}}}}
	})
	v := ev.variant(5, 1999)
	me := customerOwner("bargain")
	ev.add(me, v, 2)
	r := ev.do(http.MethodPost, "/v1/checkouts", "{}", ev.who(me))
	body := r.json(t)
	if body["subtotal"].(map[string]any)["amount"].(float64) != 3998 || body["discount_total"].(map[string]any)["amount"].(float64) != 400 ||
		body["total"].(map[string]any)["amount"].(float64) != 3598 {
		t.Fatalf("priced checkout: %s", r.body)
	}
	applied := body["applied_discounts"].([]any)
	if len(applied) != 1 || applied[0].(map[string]any)["id"] != rule.ID.String() || applied[0].(map[string]any)["code"] != nil {
		t.Fatalf("applied: %v", applied)
	}
	if line := body["lines"].([]any)[0].(map[string]any); line["discount"].(map[string]any)["amount"].(float64) != 400 {
		t.Fatalf("line discount: %v", line)
	}
	id := body["id"].(string)
	if body["payment_intent"].(map[string]any)["amount"].(map[string]any)["amount"].(float64) != 3598 {
		t.Fatalf("intent amount: %s", r.body)
	}
	r = ev.do(http.MethodPost, completePath(uuid.MustParse(id)), tokOK, ev.who(me))
	if r.status != http.StatusOK {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
	var version, total int64
	if err := ev.pool.QueryRow(ev.ctx, `SELECT discount_version, total FROM orders WHERE checkout_id = $1`, uuid.MustParse(id)).
		Scan(&version, &total); err != nil {
		t.Fatal(err)
	}
	if version != 42 || total != 3598 {
		t.Fatalf("order: version %d total %d", version, total)
	}
}
