package checkout_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"commerce/internal/checkout"
	"commerce/internal/payment"
)

// TestIdempotency: Stripe's rules for POST /v1/checkouts and …/complete: the first
// response is replayed byte for byte with its status; the same key with another body is
// 422 idempotency_key_reused (except a complete whose checkout has its order: that
// answers 200 with the order, whatever the key); the same key while the first request
// runs is 409 idempotency_key_in_use; keys are per caller.
func TestIdempotency(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	type blocker struct {
		point           string
		reached, resume chan struct{}
	}
	var block atomic.Pointer[blocker]
	checkout.SetHook(ev.svc, func(p string) {
		if b := block.Load(); b != nil && b.point == p {
			block.Store(nil)
			close(b.reached)
			<-b.resume
		}
	})

	tests := []struct {
		name         string
		complete     bool // POST …/complete (else POST /v1/checkouts)
		first, again string
		otherCaller  bool // the second request comes from another shopper
		inFlight     bool // the second request arrives while the first runs
		wantFirst    int
		wantAgain    int
		wantCode     string // of the second answer when it is an error of its own
		wantReplay   bool
	}{
		{name: "create replayed", first: `{}`, again: `{ }`, wantFirst: 201, wantAgain: 201, wantReplay: true},
		{name: "create replayed with email", first: `{"email":"a@example.com"}`, again: `{"email":"a@example.com"}`,
			wantFirst: 201, wantAgain: 201, wantReplay: true},
		{name: "create other body", first: `{}`, again: `{"email":"a@example.com"}`, wantFirst: 201,
			wantAgain: 422, wantCode: "idempotency_key_reused"},
		{name: "create in flight", first: `{}`, again: `{}`, inFlight: true, wantFirst: 201, wantAgain: 409,
			wantCode: "idempotency_key_in_use"},
		{name: "create other caller", first: `{}`, again: `{}`, otherCaller: true, wantFirst: 201, wantAgain: 201},
		{name: "complete replayed", complete: true, first: tokOK, again: tokOK, wantFirst: 200, wantAgain: 200,
			wantReplay: true},
		// A checkout with an order answers with it whatever the key says.
		{name: "complete other body", complete: true, first: tokOK, again: `{"payment_token":"tok_other"}`,
			wantFirst: 200, wantAgain: 200, wantReplay: true},
		{name: "complete in flight", complete: true, first: tokOK, again: tokOK, inFlight: true, wantFirst: 200,
			wantAgain: 409, wantCode: "idempotency_key_in_use"},
		{name: "complete declined replayed", complete: true, first: `{"payment_token":"tok_declined"}`,
			again: `{"payment_token":"tok_declined"}`, wantFirst: 402, wantAgain: 402, wantReplay: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := ev.variant(10, 1200)
			me, other := sessionOwner(ev.session()), sessionOwner(ev.session())
			ev.add(me, v, 1)
			ev.add(other, v, 1)
			key := "key-" + uuid.NewString()
			path := "/v1/checkouts"
			if tt.complete {
				path = completePath(ev.createCheckout(me).ID)
			}
			second := with(ev.who(me), checkout.HeaderIdempotencyKey, key)
			if tt.otherCaller {
				second = with(ev.who(other), checkout.HeaderIdempotencyKey, key)
			}

			var first resp
			var again resp
			if tt.inFlight {
				b := &blocker{point: checkout.HookCreateAfterReserve, reached: make(chan struct{}), resume: make(chan struct{})}
				if tt.complete {
					b.point = checkout.HookAfterClaim
				}
				block.Store(b)
				done := make(chan resp)
				go func() {
					done <- ev.do(http.MethodPost, path, tt.first, with(ev.who(me), checkout.HeaderIdempotencyKey, key))
				}()
				<-b.reached
				again = ev.do(http.MethodPost, path, tt.again, second)
				close(b.resume)
				first = <-done
			} else {
				first = ev.do(http.MethodPost, path, tt.first, with(ev.who(me), checkout.HeaderIdempotencyKey, key))
				again = ev.do(http.MethodPost, path, tt.again, second)
			}
			if first.status != tt.wantFirst {
				t.Fatalf("first: %d %s", first.status, first.body)
			}
			if again.status != tt.wantAgain {
				t.Fatalf("second: %d %s, want %d", again.status, again.body, tt.wantAgain)
			}
			if tt.wantCode != "" && again.code(t) != tt.wantCode {
				t.Fatalf("second: %s, want code %s", again.body, tt.wantCode)
			}
			replayed := again.header.Get(checkout.HeaderReplayed) == "true"
			if replayed != tt.wantReplay {
				t.Fatalf("replayed = %v, want %v", replayed, tt.wantReplay)
			}
			if tt.wantReplay && !bytes.Equal(first.body, again.body) {
				t.Fatalf("replay differs:\n%s\n%s", first.body, again.body)
			}
			if tt.otherCaller && decode[checkoutResp](t, first).ID == decode[checkoutResp](t, again).ID {
				t.Fatal("another caller's key replayed my checkout")
			}
		})
	}

	t.Run("malformed key", func(t *testing.T) {
		me := sessionOwner(ev.session())
		for _, k := range []string{strings.Repeat("k", 256), "tab\tkey"} {
			if r := ev.do(http.MethodPost, "/v1/checkouts", "{}", with(ev.who(me), checkout.HeaderIdempotencyKey, k)); r.status != 400 {
				t.Fatalf("key %q: %d %s", k, r.status, r.body)
			}
		}
		// Also on a checkout that already has its order, which complete answers before
		// it looks the key up: a malformed key is refused there too.
		v := ev.variant(2, 700)
		ev.add(me, v, 1)
		path := completePath(ev.createCheckout(me).ID)
		if r := ev.do(http.MethodPost, path, tokOK, ev.who(me)); r.status != 200 {
			t.Fatalf("complete: %d %s", r.status, r.body)
		}
		for _, k := range []string{strings.Repeat("k", 300), "tab\tkey"} {
			if r := ev.do(http.MethodPost, path, tokOK, with(ev.who(me), checkout.HeaderIdempotencyKey, k)); r.status != 400 {
				t.Fatalf("complete again with key %q: %d %s", k, r.status, r.body)
			}
		}
	})
}

// flakyProvider is the test provider with a switch that makes the provider unreachable.
type flakyProvider struct {
	*payment.TestProvider
	down atomic.Bool
}

func (p *flakyProvider) Retrieve(ctx context.Context, intentID string) (payment.Intent, error) {
	if p.down.Load() {
		return payment.Intent{}, fmt.Errorf("provider timeout: %w", payment.ErrUnavailable)
	}
	return p.TestProvider.Retrieve(ctx, intentID)
}

func (p *flakyProvider) Confirm(ctx context.Context, intentID, token, key string) (payment.Intent, error) {
	if p.down.Load() {
		return payment.Intent{}, fmt.Errorf("provider timeout: %w", payment.ErrUnavailable)
	}
	return p.TestProvider.Confirm(ctx, intentID, token, key)
}

// TestIdempotencyServerErrorNotStored: a 5xx is not stored; the client retries with the
// same key and gets the real outcome.
func TestIdempotencyServerErrorNotStored(t *testing.T) {
	t.Parallel()
	pay := &flakyProvider{TestProvider: checkout.NewTestProvider()}
	ev := newEnv(t, func(c *envConfig) { c.pay = pay })
	v := ev.variant(3, 900)
	me := customerOwner("retrier")
	ev.add(me, v, 1)
	co := ev.createCheckout(me)
	h := with(ev.who(me), checkout.HeaderIdempotencyKey, "pay-once")
	pay.down.Store(true)
	r := ev.do(http.MethodPost, completePath(co.ID), tokOK, h)
	if r.status != http.StatusServiceUnavailable || r.code(t) != "unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("provider down: %d %s", r.status, r.body)
	}
	ev.wantLevels(v, 3, 2, 1) // still held, still payable
	pay.down.Store(false)
	r = ev.do(http.MethodPost, completePath(co.ID), tokOK, h)
	if r.status != http.StatusOK || r.header.Get(checkout.HeaderReplayed) != "" {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	ev.wantLevels(v, 2, 2, 0)
}
