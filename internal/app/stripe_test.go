package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"

	"commerce/internal/payment/stripepay"
)

// stripeMockURL is stripe-mock's address (scripts/dev-services.sh starts it for make test).
func stripeMockURL() string {
	if u := os.Getenv("STRIPE_MOCK_URL"); u != "" {
		return u
	}
	return "http://127.0.0.1:12111"
}

// TestStripeProviderWiredAgainstStripeMock runs the service with PAYMENT_PROVIDER=stripe
// against stripe-mock (STRIPE_API_BASE): a checkout opens a Stripe PaymentIntent for its
// total and hands its owner the client secret; complete with a payment method goes
// through retrieve and confirm with requests Stripe's API accepts (stripe-mock keeps no
// state, so its intent stays requires_payment_method: a decline); the Stripe webhook
// route verifies Stripe-Signature. The test fails when stripe-mock is not running.
func TestStripeProviderWiredAgainstStripeMock(t *testing.T) {
	resp, err := http.Get(stripeMockURL() + "/v1/balance")
	if err != nil {
		t.Fatalf("stripe-mock is required at %s (scripts/dev-services.sh starts it): %v", stripeMockURL(), err)
	}
	resp.Body.Close()
	const whsec = "whsec_app_stripe_test"
	a := newTestApp(t, func(c *Config) {
		c.PaymentProvider, c.StripeSecretKey, c.StripeWebhookSecret = ProviderStripe, "sk_test_123", whsec
		c.StripeAPIBase = stripeMockURL()
	})
	h := a.Handler()
	slug := "stripe-" + uuid.NewString()[:8]
	// stripe-mock answers every retrieve with an intent of 1099 usd: price the item so.
	r := do(t, h, call{"POST", "/admin/products", fmt.Sprintf(`{"slug":%q,"name":"Stripe shoe","description":"",
		"category":"shoes","status":"active","attributes":{},"variants":[{"sku":%q,"name":"42",
		"price":{"amount":1099,"currency":"USD"},"attributes":{},"stock":5}]}`, slug, "SKU-"+slug), admin()})
	if r.status != http.StatusCreated {
		t.Fatalf("product: %d %s", r.status, r.body)
	}
	variant := r.json(t)["variants"].([]any)[0].(map[string]any)["id"].(string)
	me := do(t, h, call{"POST", "/v1/sessions", "", nil}).json(t)["session_id"].(string)
	sess := map[string]string{"X-Session-ID": me}
	if r := do(t, h, call{"POST", "/v1/cart/items", `{"variant_id":"` + variant + `","quantity":1}`, sess}); r.status != 200 {
		t.Fatalf("cart: %d %s", r.status, r.body)
	}
	r = do(t, h, call{"POST", "/v1/checkouts", `{}`, sess})
	if r.status != http.StatusCreated {
		t.Fatalf("checkout: %d %s", r.status, r.body)
	}
	var co struct {
		ID            string `json:"id"`
		PaymentIntent struct {
			ID           string `json:"id"`
			ClientSecret string `json:"client_secret"`
			Amount       struct {
				Amount int64 `json:"amount"`
			} `json:"amount"`
		} `json:"payment_intent"`
	}
	if err := json.Unmarshal(r.body, &co); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(co.PaymentIntent.ID, "pi_") || co.PaymentIntent.ClientSecret == "" || co.PaymentIntent.Amount.Amount != 1099 {
		t.Fatalf("checkout's Stripe intent: %s", r.body)
	}
	r = do(t, h, call{"POST", "/v1/checkouts/" + co.ID + "/complete", `{"payment_method":"pm_card_visa"}`, sess})
	if r.status != http.StatusPaymentRequired || r.errorCode(t) != "payment_declined" {
		t.Fatalf("complete against stripe-mock: %d %s", r.status, r.body)
	}

	event, _ := json.Marshal(map[string]any{"id": "evt_" + uuid.NewString()[:8], "object": "event",
		"type": "payment_intent.succeeded", "data": map[string]any{"object": map[string]any{"id": co.PaymentIntent.ID,
			"object": "payment_intent", "amount": 1099, "currency": "usd", "status": "succeeded"}}})
	hook := func(secret string) answer {
		return do(t, h, call{"POST", "/v1/payments/stripe/webhook", string(event),
			map[string]string{"Stripe-Signature": stripepay.SignPayload(event, secret)}})
	}
	if r := hook("whsec_wrong"); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong signature: %d %s", r.status, r.body)
	}
	// Signed: accepted; Stripe (stripe-mock) says the intent is not paid, so no order.
	if r := hook(whsec); r.status != http.StatusOK {
		t.Fatalf("signed event: %d %s", r.status, r.body)
	}
	if r := hook(whsec); r.status != http.StatusOK || r.json(t)["duplicate"] != true {
		t.Fatalf("replayed event: %d %s", r.status, r.body)
	}
	if r := do(t, h, call{"GET", "/v1/checkouts/" + co.ID, "", sess}); r.json(t)["order_id"] != nil {
		t.Fatalf("an order was placed for an intent Stripe does not call paid: %s", r.body)
	}
}

// TestAdminOrderRoutesMatchSpec drives the order admin routes through the app (every
// answer is checked against api/openapi.yaml): a partial refund with restock, the
// listing, a cancellation, and the flagged payments.
func TestAdminOrderRoutesMatchSpec(t *testing.T) {
	a := newTestApp(t)
	h := a.Handler()
	slug := "refund-" + uuid.NewString()[:8]
	r := do(t, h, call{"POST", "/admin/products", fmt.Sprintf(`{"slug":%q,"name":"Refund shoe","description":"",
		"category":"shoes","status":"active","attributes":{},"variants":[{"sku":%q,"name":"42",
		"price":{"amount":1500,"currency":"USD"},"attributes":{},"stock":5}]}`, slug, "SKU-"+slug), admin()})
	if r.status != http.StatusCreated {
		t.Fatalf("product: %d %s", r.status, r.body)
	}
	variant := r.json(t)["variants"].([]any)[0].(map[string]any)["id"].(string)
	me := do(t, h, call{"POST", "/v1/sessions", "", nil}).json(t)["session_id"].(string)
	sess := map[string]string{"X-Session-ID": me}
	do(t, h, call{"POST", "/v1/cart/items", `{"variant_id":"` + variant + `","quantity":2}`, sess})
	co := do(t, h, call{"POST", "/v1/checkouts", `{}`, sess}).json(t)["id"].(string)
	r = do(t, h, call{"POST", "/v1/checkouts/" + co + "/complete", `{"payment_token":"tok_ok"}`, sess})
	if r.status != 200 {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
	order := r.json(t)["order"].(map[string]any)["id"].(string)
	adm := admin()
	adm["Idempotency-Key"] = "refund-spec-1"
	r = do(t, h, call{"POST", "/admin/orders/" + order + "/refund",
		`{"amount":{"amount":500,"currency":"USD"},"reason":"scuffed","restock":[{"variant_id":"` + variant + `","quantity":1}]}`, adm})
	if r.status != 200 || r.json(t)["status"] != "partially_refunded" {
		t.Fatalf("refund: %d %s", r.status, r.body)
	}
	if r := do(t, h, call{"POST", "/admin/orders/" + order + "/refund", `{"amount":{"amount":9999,"currency":"USD"},"reason":"x"}`, admin()}); r.status != 422 {
		t.Fatalf("over-refund: %d %s", r.status, r.body)
	}
	if r := do(t, h, call{"GET", "/admin/orders?status=partially_refunded", "", admin()}); r.status != 200 || r.json(t)["total"].(float64) != 1 {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	r = do(t, h, call{"POST", "/admin/orders/" + order + "/cancel", `{"reason":"out of business"}`, admin()})
	if r.status != 200 || r.json(t)["status"] != "cancelled" || r.json(t)["refunded_total"].(map[string]any)["amount"].(float64) != 3000 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if r := do(t, h, call{"GET", "/admin/orders/" + order, "", admin()}); r.status != 200 {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	if r := do(t, h, call{"GET", "/v1/orders/" + order, "", sess}); r.status != 200 || r.json(t)["status"] != "cancelled" {
		t.Fatalf("the shopper's view: %d %s", r.status, r.body)
	}
	if r := do(t, h, call{"GET", "/admin/payments/flagged", "", admin()}); r.status != 200 {
		t.Fatalf("flagged: %d %s", r.status, r.body)
	}
	if r := do(t, h, call{"GET", "/admin/orders", "", nil}); r.status != http.StatusUnauthorized {
		t.Fatalf("without the admin token: %d", r.status)
	}
}
