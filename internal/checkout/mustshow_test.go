package checkout_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"commerce/internal/cart"
	"commerce/internal/checkout"
	"commerce/internal/payment"
)

// TestFlashSale: 1000 sessions with one unit each of a variant with 100 in stock all start
// a checkout at once through the HTTP handler: exactly 100 get 201, the other 900 get
// 409 insufficient_stock; completing 50 and cancelling 50 leaves on_hand 50, available
// 50, nothing held and 50 orders.
func TestFlashSale(t *testing.T) {
	ev := newEnv(t)
	v := ev.variant(100, 2500)
	const shoppers, workers = 1000, 64
	owners := make([]checkout.Owner, shoppers)
	parallel(shoppers, 32, func(i int) {
		id, _, err := ev.sessions.Create(ev.ctx, "")
		if err != nil {
			t.Error(err)
			return
		}
		owners[i] = sessionOwner(id)
		if _, err := ev.carts.Add(ev.ctx, cart.SessionOwner(id), v, 1); err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	results := make([]resp, shoppers)
	parallel(shoppers, workers, func(i int) {
		results[i] = ev.do(http.MethodPost, "/v1/checkouts", "{}", ev.who(owners[i]))
	})
	var won []int
	short := 0
	for i, r := range results {
		switch {
		case r.status == http.StatusCreated:
			won = append(won, i)
		case r.status == http.StatusConflict && r.code(t) == "insufficient_stock":
			short++
		default:
			t.Fatalf("shopper %d: %d %s", i, r.status, r.body)
		}
	}
	if len(won) != 100 || short != 900 {
		t.Fatalf("%d created, %d insufficient_stock; want 100 and 900", len(won), short)
	}
	ev.wantLevels(v, 100, 0, 100)

	// Complete the first 50 winners and cancel the other 50, all at once.
	var wg sync.WaitGroup
	for k, i := range won {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := decode[checkoutResp](t, results[i]).ID
			path, body, want := completePath(id), tokOK, http.StatusOK
			if k >= 50 {
				path, body = cancelPath(id), ""
			}
			if r := ev.do(http.MethodPost, path, body, ev.who(owners[i])); r.status != want {
				t.Errorf("%s: %d %s", path, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	ev.wantLevels(v, 50, 50, 0)
	if n := ev.count(`SELECT count(*) FROM orders`); n != 50 {
		t.Fatalf("%d orders, want 50", n)
	}
	if n := ev.count(`SELECT coalesce(sum(quantity), 0) FROM order_lines WHERE variant_id = $1`, v); n != 50 {
		t.Fatalf("%d units ordered, want 50", n)
	}
	if n := ev.count(`SELECT count(*) FROM checkouts WHERE state IN ('reserving', 'awaiting_payment', 'completing')`); n != 0 {
		t.Fatalf("%d checkouts still active", n)
	}
	if n := ev.count(`SELECT count(*) FROM checkouts WHERE cleaned_at IS NULL`); n != 0 {
		t.Fatalf("%d checkouts without cleanup", n)
	}
	// Losers' carts are unlocked and keep their line.
	for _, i := range []int{0, 500, 999} {
		if c := ev.cart(owners[i]); c.LockedBy != "" && results[i].status != http.StatusCreated {
			t.Fatalf("loser %d cart still locked", i)
		}
	}
}

// TestConcurrentCompletes: 50 concurrent completes of one checkout, racing the payment
// provider's webhooks, place exactly one order, decrement the stock once, charge once
// (the provider counts the calls that reach it and the money it takes), and every
// complete answers the same order, byte for byte. Both flows: server-side confirmation
// (every complete carries the payment method) and client-side confirmation (the
// storefront authorized the intent; the completes and the webhooks only capture it).
func TestConcurrentCompletes(t *testing.T) {
	for _, clientSide := range []bool{false, true} {
		name := "server-side confirmation"
		if clientSide {
			name = "client-side confirmation"
		}
		t.Run(name, func(t *testing.T) {
			pay := checkout.NewTestProvider()
			pay.ManualCapture = true // authorize, then capture: every capture is a charge
			// Slow the provider down so the callers pile up on the checkout. And while the
			// first capture is in flight (its completion holds the claim), the provider's
			// webhook arrives: that one always finds the checkout claimed, whatever the
			// scheduling, so it must not charge again.
			var ev *env
			var inFlight atomic.Bool
			var inFlightHook resp
			var intent string
			pay.SetHook(func(op payment.Op, _ string) {
				if op == payment.OpCapture {
					if inFlight.CompareAndSwap(false, true) { // once, and never waiting on itself
						inFlightHook = ev.webhook(fmt.Sprintf(
							`{"id":"evt_in_flight","type":"payment_intent.succeeded","payment_intent_id":%q}`, intent))
					}
				}
				if op == payment.OpConfirm || op == payment.OpCapture {
					time.Sleep(20 * time.Millisecond)
				}
			})
			ev = newEnv(t, func(c *envConfig) { c.pay = pay })
			v := ev.variant(10, 1500)
			me := customerOwner("buyer-50")
			ev.add(me, v, 3)
			co := ev.createCheckout(me)
			intent = co.PaymentIntent.ID
			body := tokOK
			if clientSide {
				if _, err := pay.ConfirmClientSide(co.PaymentIntent.ID, checkout.TokenOK); err != nil {
					t.Fatal(err)
				}
				body = `{}`
			}
			h := ev.who(me)
			const n, hooks = 50, 3
			results := make([]resp, n)
			webhooks := make([]resp, hooks)
			parallel(n+hooks, n+hooks, func(i int) {
				if i >= n {
					webhooks[i-n] = ev.webhook(fmt.Sprintf(
						`{"id":"evt_race_%d","type":"payment_intent.succeeded","payment_intent_id":%q}`, i-n, co.PaymentIntent.ID))
					return
				}
				results[i] = ev.do(http.MethodPost, completePath(co.ID), body, h)
			})
			if inFlightHook.status != http.StatusOK {
				t.Fatalf("the webhook during the charge: %d %s", inFlightHook.status, inFlightHook.body)
			}
			for i, r := range webhooks {
				if r.status != http.StatusOK {
					t.Fatalf("webhook %d: %d %s", i, r.status, r.body)
				}
			}
			for i, r := range results {
				if r.status != http.StatusOK {
					t.Fatalf("complete %d: %d %s", i, r.status, r.body)
				}
				if !bytes.Equal(r.body, results[0].body) {
					t.Fatalf("response %d differs:\n%s\n%s", i, r.body, results[0].body)
				}
			}
			if n := ev.count(`SELECT count(*) FROM orders WHERE checkout_id = $1`, co.ID); n != 1 {
				t.Fatalf("%d orders", n)
			}
			if n := ev.count(`SELECT count(*) FROM stock_ledger WHERE variant_id = $1 AND delta < 0`, v); n != 1 {
				t.Fatalf("%d stock decrements", n)
			}
			ev.wantLevels(v, 7, 7, 0)
			if got := pay.Captures(); got != 1 {
				t.Fatalf("money taken %d times, want once", got)
			}
			if got := pay.Calls(payment.OpCapture); got != 1 {
				t.Fatalf("%d capture calls reached the provider, want 1", got)
			}
			if !clientSide {
				if got := pay.Calls(payment.OpConfirm); got != 1 {
					t.Fatalf("%d confirm calls reached the provider, want 1", got)
				}
			}
			if id := results[0].json(t)["order"].(map[string]any)["id"].(string); uuid.MustParse(id) == uuid.Nil {
				t.Fatal("no order id")
			}
		})
	}
}

// TestWebhookBehindAClaimDoesNotCharge: the provider's webhook reads the checkout while it
// is still awaiting payment, and a complete claims it before the webhook does. The
// webhook loses the claim and must leave the charge to the claimant: the money is taken
// once, by one capture call, and one order is placed. The steps are forced in this order
// by the provider's hook (the webhook's look at the intent starts the complete; the
// complete's capture waits until the webhook has answered or a second capture started),
// so the outcome does not depend on scheduling.
func TestWebhookBehindAClaimDoesNotCharge(t *testing.T) {
	pay := checkout.NewTestProvider()
	pay.ManualCapture = true
	ev := newEnv(t, func(c *envConfig) { c.pay = pay })
	v := ev.variant(10, 1500)
	me := customerOwner("buyer-webhook")
	ev.add(me, v, 2)
	co := ev.createCheckout(me)
	if _, err := pay.ConfirmClientSide(co.PaymentIntent.ID, checkout.TokenOK); err != nil {
		t.Fatal(err)
	}
	var retrieves, captures atomic.Int32
	claimantCapturing, webhookDone, secondCapture := make(chan struct{}), make(chan struct{}), make(chan struct{})
	completeDone := make(chan resp, 1)
	pay.SetHook(func(op payment.Op, _ string) {
		switch op {
		case payment.OpRetrieve:
			if retrieves.Add(1) == 1 {
				// The webhook has read the checkout (awaiting payment) and looks at the
				// intent: now a complete claims the checkout and starts charging.
				go func() { completeDone <- ev.do(http.MethodPost, completePath(co.ID), `{}`, ev.who(me)) }()
				<-claimantCapturing
			}
		case payment.OpCapture:
			switch captures.Add(1) {
			case 1:
				close(claimantCapturing)
				select {
				case <-webhookDone:
				case <-secondCapture:
				}
			case 2:
				close(secondCapture)
			}
		}
	})
	hook := ev.webhook(fmt.Sprintf(`{"id":"evt_behind","type":"payment_intent.succeeded","payment_intent_id":%q}`,
		co.PaymentIntent.ID))
	close(webhookDone)
	done := <-completeDone
	if hook.status != http.StatusOK || done.status != http.StatusOK {
		t.Fatalf("webhook %d %s; complete %d %s", hook.status, hook.body, done.status, done.body)
	}
	if got := pay.Calls(payment.OpCapture); got != 1 {
		t.Fatalf("%d capture calls reached the provider, want 1", got)
	}
	if got := pay.Captures(); got != 1 {
		t.Fatalf("money taken %d times, want once", got)
	}
	if n := ev.count(`SELECT count(*) FROM orders WHERE checkout_id = $1`, co.ID); n != 1 {
		t.Fatalf("%d orders", n)
	}
	ev.wantLevels(v, 8, 8, 0)
}
