package payment_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"commerce/internal/payment"
	"commerce/internal/platform/money"
)

func TestVerify(t *testing.T) {
	want := money.New(4200, "USD")
	cases := []struct {
		in payment.Intent
		ok bool
	}{
		{payment.Intent{Amount: money.New(4200, "usd")}, true}, // providers write currencies in lower case
		{payment.Intent{Amount: money.New(4200, "USD"), Status: payment.StatusSucceeded, AmountReceived: 4200}, true},
		{payment.Intent{Amount: money.New(4199, "USD")}, false},
		{payment.Intent{Amount: money.New(4200, "EUR")}, false},
		{payment.Intent{Amount: money.New(4200, "USD"), Status: payment.StatusSucceeded, AmountReceived: 100}, false},
	}
	for _, c := range cases {
		err := c.in.Verify(want)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, payment.ErrAmountMismatch)) {
			t.Errorf("Verify(%+v) = %v, want ok=%v", c.in, err, c.ok)
		}
	}
}

// TestTestProviderIdempotency: a repeated idempotency key answers the first outcome
// without acting again, as Stripe does; a refund id refunds once.
func TestTestProviderIdempotency(t *testing.T) {
	ctx := context.Background()
	p := payment.NewTestProvider()
	chk := uuid.New()
	a, err := p.CreateIntent(ctx, payment.CreateParams{CheckoutID: chk, Amount: money.New(500, "USD"), IdempotencyKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.CreateIntent(ctx, payment.CreateParams{CheckoutID: chk, Amount: money.New(500, "USD"), IdempotencyKey: "k1"})
	if a.ID != b.ID {
		t.Fatalf("a repeated creation opened a second intent: %s, %s", a.ID, b.ID)
	}
	if _, err := p.Confirm(ctx, a.ID, payment.TokenOK, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Confirm(ctx, a.ID, payment.TokenOK, "c1"); err != nil {
		t.Fatalf("replayed confirm: %v", err)
	}
	if _, err := p.Confirm(ctx, a.ID, payment.TokenOK, "c2"); !errors.Is(err, payment.ErrInvalidState) {
		t.Fatalf("confirming a succeeded intent: %v", err)
	}
	if p.Captures() != 1 || p.CapturesOf(a.ID) != 1 {
		t.Fatalf("captures %d", p.Captures())
	}
	if _, err := p.Cancel(ctx, a.ID, "x"); !errors.Is(err, payment.ErrInvalidState) {
		t.Fatalf("voiding a paid intent: %v", err)
	}
	rid := uuid.New()
	for i := 0; i < 2; i++ {
		if _, err := p.Refund(ctx, payment.RefundParams{ID: rid, IntentID: a.ID, Amount: money.New(300, "USD")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Refund(ctx, payment.RefundParams{ID: uuid.New(), IntentID: a.ID, Amount: money.New(300, "USD")}); !errors.Is(err, payment.ErrInvalid) {
		t.Fatalf("refunding more than was received: %v", err)
	}
	if n := len(p.Refunds()); n != 1 {
		t.Fatalf("%d refunds", n)
	}
}

// TestTestProviderScripts: declines, 3-D Secure, manual capture and scripted failures.
func TestTestProviderScripts(t *testing.T) {
	ctx := context.Background()
	p := payment.NewTestProvider()
	p.ManualCapture = true
	in, _ := p.CreateIntent(ctx, payment.CreateParams{CheckoutID: uuid.New(), Amount: money.New(900, "USD")})
	if _, err := p.Confirm(ctx, in.ID, payment.TokenDeclined, ""); !errors.Is(err, payment.ErrDeclined) {
		t.Fatalf("decline: %v", err)
	}
	var ae *payment.ActionError
	if _, err := p.Confirm(ctx, in.ID, payment.Token3DS, ""); !errors.As(err, &ae) || ae.Intent.ClientSecret == "" {
		t.Fatalf("3DS: %v", err)
	}
	if got, err := p.ConfirmClientSide(in.ID, payment.Token3DS); err != nil || got.Status != payment.StatusRequiresCapture {
		t.Fatalf("client-side 3DS: %+v %v", got, err)
	}
	if p.Captures() != 0 {
		t.Fatal("an authorization took money")
	}
	p.FailNext(payment.OpCapture, payment.FailAfter)
	if _, err := p.Capture(ctx, in.ID, "cap"); !errors.Is(err, payment.ErrUnavailable) {
		t.Fatalf("lost reply: %v", err)
	}
	if got, _ := p.Retrieve(ctx, in.ID); got.Status != payment.StatusSucceeded || p.Captures() != 1 {
		t.Fatalf("after a lost capture reply: %+v, %d captures", got, p.Captures())
	}
	p.FailNext(payment.OpRetrieve, payment.FailBefore)
	if _, err := p.Retrieve(ctx, in.ID); !errors.Is(err, payment.ErrUnavailable) || p.Calls(payment.OpRetrieve) != 1 {
		t.Fatalf("scripted outage: %v (%d calls)", err, p.Calls(payment.OpRetrieve))
	}
	// Another replica's intent: known from its id.
	q := payment.NewTestProvider()
	got, err := q.Retrieve(ctx, in.ID)
	if err != nil || got.Amount != money.New(900, "USD") {
		t.Fatalf("an intent of another replica: %+v %v", got, err)
	}
	if _, err := q.Retrieve(ctx, "pi_nonsense"); !errors.Is(err, payment.ErrNotFound) {
		t.Fatalf("malformed id: %v", err)
	}
}
