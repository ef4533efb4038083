package checkout_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/google/uuid"

	"commerce/internal/checkout"
	"commerce/internal/payment"
	"commerce/internal/payment/stripepay"
	"commerce/internal/platform/testenv"
)

// fakeStripeRefunds is Stripe's refunds endpoint as far as idempotency goes: a POST with an
// Idempotency-Key it saw before gets the first answer again and refunds nothing; a new
// key creates a refund. It outlives the crashed child (it runs in the parent), so it
// counts every refund either process asked for.
type fakeStripeRefunds struct {
	mu      sync.Mutex
	posts   int
	byKey   map[string]string
	created int
}

func (f *fakeStripeRefunds) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/refunds" {
		http.Error(w, `{"error":{"type":"invalid_request_error","message":"unexpected"}}`, http.StatusNotFound)
		return
	}
	b, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(b))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.posts++
	key := r.Header.Get("Idempotency-Key")
	body, ok := f.byKey[key]
	if !ok || key == "" {
		f.created++
		body = fmt.Sprintf(`{"id":"re_%d","object":"refund","status":"succeeded","amount":%s,"currency":"usd","payment_intent":%q,"metadata":{"refund_id":%q}}`,
			f.created, form.Get("amount"), form.Get("payment_intent"), form.Get("metadata[refund_id]"))
		f.byKey[key] = body
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, body)
}

func (f *fakeStripeRefunds) counts() (posts, created int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.posts, f.created
}

// refundsViaStripe is the test provider for intents and the Stripe provider (on a fake
// Stripe) for refunds.
type refundsViaStripe struct {
	*payment.TestProvider
	stripe *stripepay.Provider
}

func (p refundsViaStripe) Refund(ctx context.Context, rp payment.RefundParams) (payment.Refund, error) {
	return p.stripe.Refund(ctx, rp)
}

// TestCrashBetweenRefundDecisionAndProvider: the process deciding a refund dies (os.Exit in
// a child process, so no deferred cleanup runs) between "refund decided" and the provider
// call, or between the provider's answer and recording it. After restart the relay
// refunds the order exactly once: one refund at the provider, recorded as succeeded.
func TestCrashBetweenRefundDecisionAndProvider(t *testing.T) {
	for _, point := range []string{checkout.HookRefundDecided, checkout.HookRefundCalled} {
		t.Run(point, func(t *testing.T) { crashRefund(t, point) })
	}
}

func crashRefund(t *testing.T, point string) {
	fake := &fakeStripeRefunds{byKey: map[string]string{}}
	base := testenv.CrashVar("stripe")
	if !testenv.CrashChild() {
		srv := httptest.NewServer(fake)
		t.Cleanup(srv.Close)
		base = srv.URL
	}
	sp, err := stripepay.New(stripepay.Config{SecretKey: "sk_test_crash", APIBase: base, MaxNetworkRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ev := newEnv(t, func(c *envConfig) { c.pay = refundsViaStripe{TestProvider: checkout.NewTestProvider(), stripe: sp} })
	if testenv.CrashChild() {
		checkout.SetHook(ev.svc, testenv.CrashAt)
		_, err := ev.svc.RefundOrder(ev.ctx, uuid.MustParse(testenv.CrashVar("order")),
			checkout.RefundRequest{Reason: "crash test"})
		t.Fatalf("the refund returned (%v) instead of dying at %s", err, point)
	}

	v := ev.variant(4, 2500)
	me := customerOwner("crash-refund")
	ev.add(me, v, 1)
	co := ev.createCheckout(me)
	res, err := ev.svc.Complete(ev.ctx, checkout.Identity{CustomerID: me.ID}, co.ID, checkout.TokenOK)
	if err != nil {
		t.Fatal(err)
	}
	orderID := res.Order.ID

	testenv.RunCrash(t, point, map[string]string{"order": orderID.String(), "stripe": base})

	// What the crash left: the refund decided, recorded pending.
	o, err := ev.svc.AdminOrder(ev.ctx, orderID)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Refunds) != 1 || o.Refunds[0].Status != "pending" || o.RefundedTotal.Amount != 2500 {
		t.Fatalf("after the crash: %+v", o)
	}
	posts, created := fake.counts()
	wantPosts := 0
	if point == checkout.HookRefundCalled {
		wantPosts = 1
	}
	if posts != wantPosts || created != wantPosts {
		t.Fatalf("after the crash at %s: %d refund calls, %d refunds; want %d", point, posts, created, wantPosts)
	}

	// Restart: the relay finds the pending refund (its lease, taken by the dead process
	// when it called the provider, is over) and carries it out.
	if _, err := ev.pool.Exec(ev.ctx, `UPDATE payment_actions SET next_attempt_at = now() WHERE next_attempt_at > now()`); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := ev.svc.RelayPayments(ev.ctx); err != nil {
			t.Fatal(err)
		}
	}
	o, err = ev.svc.AdminOrder(ev.ctx, orderID)
	if err != nil {
		t.Fatal(err)
	}
	if o.Refunds[0].Status != "succeeded" || o.Status != checkout.OrderRefunded {
		t.Fatalf("after the relay: %+v", o)
	}
	posts, created = fake.counts()
	if created != 1 {
		t.Fatalf("%d refunds at the provider (from %d calls), want exactly 1", created, posts)
	}
	if posts != wantPosts+1 {
		t.Fatalf("%d refund calls, want %d", posts, wantPosts+1)
	}
}
