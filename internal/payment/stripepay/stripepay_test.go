package stripepay_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"commerce/internal/payment"
	"commerce/internal/payment/stripepay"
	"commerce/internal/platform/money"
)

// mockURL is stripe-mock's address: STRIPE_MOCK_URL, else the one scripts/dev-services.sh
// starts (make test runs it first).
func mockURL() string {
	if u := os.Getenv("STRIPE_MOCK_URL"); u != "" {
		return u
	}
	return "http://127.0.0.1:12111"
}

// newMockProvider returns a provider on stripe-mock; the test fails (never skips) when
// stripe-mock does not answer.
func newMockProvider(t *testing.T) *stripepay.Provider {
	t.Helper()
	c := &http.Client{Timeout: 3 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, mockURL()+"/v1/balance", nil)
	req.SetBasicAuth("sk_test_123", "")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("stripe-mock is required at %s (scripts/dev-services.sh starts it): %v", mockURL(), err)
	}
	resp.Body.Close()
	p, err := stripepay.New(stripepay.Config{SecretKey: "sk_test_123", APIBase: mockURL(), MaxNetworkRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAgainstStripeMock runs every provider call against Stripe's own API mock, which
// checks that each request has the shape Stripe's API accepts.
func TestAgainstStripeMock(t *testing.T) {
	p := newMockProvider(t)
	ctx := context.Background()
	chk := uuid.New()
	in, err := p.CreateIntent(ctx, payment.CreateParams{CheckoutID: chk, Amount: money.New(4200, "USD"),
		IdempotencyKey: "checkout-" + chk.String() + "-intent"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if in.ID == "" || in.ClientSecret == "" || in.Status == "" {
		t.Fatalf("create answered %+v", in)
	}
	if in.Amount.Amount != 4200 || in.Amount.Currency != "USD" {
		t.Errorf("create: amount %+v, want 4200 USD (stripe-mock reflects the request)", in.Amount)
	}
	got, err := p.Retrieve(ctx, in.ID)
	if err != nil || got.ID != in.ID {
		t.Fatalf("retrieve: %+v, %v", got, err)
	}
	if _, err := p.Confirm(ctx, in.ID, "pm_card_visa", "confirm-"+chk.String()); err != nil &&
		!errors.Is(err, payment.ErrRequiresAction) && !errors.Is(err, payment.ErrDeclined) {
		t.Fatalf("confirm: %v", err)
	}
	if _, err := p.Capture(ctx, in.ID, "capture-"+chk.String()); err != nil {
		t.Fatalf("capture: %v", err)
	}
	if _, err := p.Cancel(ctx, in.ID, "cancel-"+chk.String()); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	rid := uuid.New()
	r, err := p.Refund(ctx, payment.RefundParams{ID: rid, IntentID: in.ID, Amount: money.New(1000, "USD"), Reason: "damaged"})
	if err != nil {
		t.Fatalf("refund: %v", err)
	}
	if r.ProviderID == "" || r.Status == "" {
		t.Fatalf("refund answered %+v", r)
	}
	got2, err := p.RetrieveRefund(ctx, r.ProviderID)
	if err != nil || got2.ProviderID != r.ProviderID || got2.Status == "" {
		t.Fatalf("retrieve refund %s: %+v, %v", r.ProviderID, got2, err)
	}
}

// TestStripeMockErrorsMapToUnknownOrInvalid: an unknown intent id is a 404 at Stripe.
func TestStripeMockNotFound(t *testing.T) {
	p := newMockProvider(t)
	// stripe-mock answers 404 for ids of a malformed shape on some routes and echoes
	// others; a request refused by the API's schema is an invalid request.
	_, err := p.Confirm(context.Background(), "pi_123", "pm_card_visa", "k-"+uuid.NewString())
	if err != nil && !errors.Is(err, payment.ErrInvalid) && !errors.Is(err, payment.ErrNotFound) &&
		!errors.Is(err, payment.ErrDeclined) && !errors.Is(err, payment.ErrRequiresAction) {
		t.Fatalf("confirm of an unknown intent: %v", err)
	}
}

// recorder is a fake Stripe API that records each request (path, idempotency key, form)
// and answers with a scripted status and body.
type recorder struct {
	mu     sync.Mutex
	reqs   []recorded
	status int
	body   string
}

type recorded struct {
	method, path, key string
	form              map[string][]string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	form := map[string][]string{}
	for _, kv := range strings.Split(string(b), "&") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			form[k] = append(form[k], v)
		}
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{req.Method, req.URL.Path, req.Header.Get("Idempotency-Key"), form})
	status, body := r.status, r.body
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// TestIdempotencyKeyOnEveryPost: every POST the provider makes carries the idempotency key
// it was given (refunds: derived from the service's refund id), and the intent's metadata
// names the checkout.
func TestIdempotencyKeyOnEveryPost(t *testing.T) {
	rec := &recorder{status: 200, body: `{"id":"pi_1","object":"payment_intent","status":"succeeded","amount":100,"currency":"usd"}`}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	p, err := stripepay.New(stripepay.Config{SecretKey: "sk_test_x", APIBase: srv.URL, MaxNetworkRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	chk := uuid.New()
	rid := uuid.New()
	_, _ = p.CreateIntent(ctx, payment.CreateParams{CheckoutID: chk, Amount: money.New(100, "USD"), IdempotencyKey: "k-create"})
	_, _ = p.Confirm(ctx, "pi_1", "pm_card_visa", "k-confirm")
	_, _ = p.Capture(ctx, "pi_1", "k-capture")
	_, _ = p.Cancel(ctx, "pi_1", "k-cancel")
	rec.body = `{"id":"re_1","object":"refund","status":"succeeded","amount":50,"currency":"usd","payment_intent":"pi_1"}`
	_, _ = p.Refund(ctx, payment.RefundParams{ID: rid, IntentID: "pi_1", Amount: money.New(50, "USD")})
	_, _ = p.Retrieve(ctx, "pi_1")
	want := map[string]string{"/v1/payment_intents": "k-create", "/v1/payment_intents/pi_1/confirm": "k-confirm",
		"/v1/payment_intents/pi_1/capture": "k-capture", "/v1/payment_intents/pi_1/cancel": "k-cancel",
		"/v1/refunds": "refund-" + rid.String()}
	posts := 0
	for _, r := range rec.reqs {
		if r.method != http.MethodPost {
			continue
		}
		posts++
		if r.key == "" || r.key != want[r.path] {
			t.Errorf("POST %s: Idempotency-Key %q, want %q", r.path, r.key, want[r.path])
		}
		if r.path == "/v1/payment_intents" && (len(r.form["metadata[checkout_id]"]) != 1 || r.form["metadata[checkout_id]"][0] != chk.String()) {
			t.Errorf("create: metadata %v, want checkout_id %s", r.form, chk)
		}
	}
	if posts != len(want) {
		t.Errorf("%d POSTs, want %d", posts, len(want))
	}
}

// TestErrorMapping: Stripe's answers map to the payment package's errors.
func TestErrorMapping(t *testing.T) {
	cases := []struct {
		status int
		body   string
		want   error
	}{
		{402, `{"error":{"type":"card_error","code":"card_declined","decline_code":"generic_decline","message":"declined"}}`, payment.ErrDeclined},
		{400, `{"error":{"type":"invalid_request_error","code":"payment_intent_unexpected_state","message":"x"}}`, payment.ErrInvalidState},
		{404, `{"error":{"type":"invalid_request_error","code":"resource_missing","message":"x"}}`, payment.ErrNotFound},
		{400, `{"error":{"type":"idempotency_error","message":"x"}}`, payment.ErrInvalid},
		{500, `{"error":{"type":"api_error","message":"x"}}`, payment.ErrUnavailable},
		{429, `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"x"}}`, payment.ErrUnavailable},
	}
	for _, c := range cases {
		rec := &recorder{status: c.status, body: c.body}
		srv := httptest.NewServer(rec)
		p, _ := stripepay.New(stripepay.Config{SecretKey: "sk_test_x", APIBase: srv.URL, MaxNetworkRetries: -1})
		_, err := p.Confirm(context.Background(), "pi_1", "pm_x", "k")
		srv.Close()
		if !errors.Is(err, c.want) {
			t.Errorf("status %d %s: got %v, want %v", c.status, c.body, err, c.want)
		}
	}
	// A total under Stripe's minimum charge is refused when the intent is created: it is
	// ErrAmountTooSmall (the caller's to fix), not an outage or an internal fault.
	rec := &recorder{status: 400, body: `{"error":{"type":"invalid_request_error","code":"amount_too_small","param":"amount","message":"Amount must be at least $0.50 usd"}}`}
	small := httptest.NewServer(rec)
	ps, _ := stripepay.New(stripepay.Config{SecretKey: "sk_test_x", APIBase: small.URL, MaxNetworkRetries: -1})
	_, err := ps.CreateIntent(context.Background(), payment.CreateParams{CheckoutID: uuid.New(), Amount: money.New(30, "USD"),
		IdempotencyKey: "k"})
	small.Close()
	if !errors.Is(err, payment.ErrAmountTooSmall) || errors.Is(err, payment.ErrUnavailable) {
		t.Errorf("amount_too_small: got %v, want ErrAmountTooSmall", err)
	}
	// Nothing listening: the outcome is unknown.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	p, _ := stripepay.New(stripepay.Config{SecretKey: "sk_test_x", APIBase: url, MaxNetworkRetries: -1, Timeout: time.Second})
	if _, err := p.Retrieve(context.Background(), "pi_1"); !errors.Is(err, payment.ErrUnavailable) {
		t.Errorf("unreachable: %v, want ErrUnavailable", err)
	}
	// A 3-D Secure answer is an ActionError with what the storefront needs.
	rec = &recorder{status: 200, body: `{"id":"pi_1","object":"payment_intent","status":"requires_action","amount":100,"currency":"usd","client_secret":"pi_1_secret","next_action":{"type":"use_stripe_sdk"}}`}
	srv2 := httptest.NewServer(rec)
	defer srv2.Close()
	p2, _ := stripepay.New(stripepay.Config{SecretKey: "sk_test_x", APIBase: srv2.URL, MaxNetworkRetries: -1})
	_, err = p2.Confirm(context.Background(), "pi_1", "pm_card_threeDSecure2Required", "k")
	var ae *payment.ActionError
	if !errors.As(err, &ae) || ae.Intent.ClientSecret != "pi_1_secret" || ae.Intent.NextAction == nil {
		t.Fatalf("requires_action: %v", err)
	}
}

// TestParseWebhook: a correctly signed event parses; a wrong secret, a changed body or a
// missing header is ErrSignature.
func TestParseWebhook(t *testing.T) {
	const secret = "whsec_test_secret"
	body, _ := json.Marshal(map[string]any{"id": "evt_1", "object": "event", "type": "refund.updated",
		"api_version": "2020-08-27", "data": map[string]any{"object": map[string]any{"id": "re_1", "object": "refund",
			"amount": 500, "currency": "usd", "status": "failed", "payment_intent": "pi_9",
			"metadata": map[string]string{"refund_id": "0190a000-0000-7000-8000-000000000001"}}}})
	h := stripepay.SignPayload(body, secret)
	ev, err := stripepay.ParseWebhook(body, h, secret)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "evt_1" || ev.Refund == nil || ev.Refund.Status != payment.RefundFailed || ev.IntentID != "pi_9" ||
		ev.Refund.RefundID != "0190a000-0000-7000-8000-000000000001" {
		t.Fatalf("parsed %+v (refund %+v)", ev, ev.Refund)
	}
	if _, err := stripepay.ParseWebhook(body, h, "whsec_other"); !errors.Is(err, stripepay.ErrSignature) {
		t.Errorf("wrong secret: %v", err)
	}
	tampered := append([]byte{}, body...)
	tampered[len(tampered)-2] = ' '
	if _, err := stripepay.ParseWebhook(tampered, h, secret); !errors.Is(err, stripepay.ErrSignature) {
		t.Errorf("changed body: %v", err)
	}
	if _, err := stripepay.ParseWebhook(body, "", secret); !errors.Is(err, stripepay.ErrSignature) {
		t.Errorf("no header: %v", err)
	}
}
