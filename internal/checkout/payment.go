package checkout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"commerce/internal/platform/money"
)

// Intent is a payment intent: what the provider will charge, and how far it got.
type Intent struct {
	ID     string
	Status PaymentStatus
	Amount money.Money
}

// PaymentProvider charges shoppers. Implementations must make Confirm idempotent per
// intent: once an intent succeeded, confirming it again returns it succeeded without
// charging twice.
type PaymentProvider interface {
	// CreateIntent opens an intent to charge amount for the checkout; its status is
	// requires_confirmation.
	CreateIntent(ctx context.Context, checkoutID uuid.UUID, amount money.Money) (Intent, error)
	// Confirm charges the intent with the payment token. Errors: ErrDeclined (the intent
	// stays confirmable with another token); any other error means the provider could not
	// be reached and the outcome is unknown.
	Confirm(ctx context.Context, intentID, token string) (Intent, error)
}

// Test provider tokens.
const (
	TokenOK       = "tok_ok"
	TokenDeclined = "tok_declined"
)

// TestProvider is the built-in payment provider for development and tests: tok_ok
// succeeds, every other token (tok_declined included) is declined. It keeps intents in
// memory; an intent it does not know (created by another replica or before a restart) is
// confirmed like a fresh one, so it works behind a load balancer too.
type TestProvider struct {
	mu      sync.Mutex
	intents map[string]Intent
}

// NewTestProvider returns an empty test provider.
func NewTestProvider() *TestProvider { return &TestProvider{intents: map[string]Intent{}} }

// CreateIntent returns a new intent pi_<24 hex> for amount.
func (p *TestProvider) CreateIntent(_ context.Context, _ uuid.UUID, amount money.Money) (Intent, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Intent{}, fmt.Errorf("test provider: %w", err)
	}
	in := Intent{ID: "pi_" + hex.EncodeToString(b[:]), Status: PaymentRequiresConfirmation, Amount: amount}
	p.mu.Lock()
	p.intents[in.ID] = in
	p.mu.Unlock()
	return in, nil
}

// Confirm succeeds for tok_ok and returns ErrDeclined for any other token. An intent
// that already succeeded stays succeeded whatever the token (idempotent).
func (p *TestProvider) Confirm(_ context.Context, intentID, token string) (Intent, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	in, ok := p.intents[intentID]
	if !ok {
		in = Intent{ID: intentID, Status: PaymentRequiresConfirmation}
	}
	if in.Status == PaymentSucceeded {
		return in, nil
	}
	if token != TokenOK {
		in.Status = PaymentFailed
		p.intents[intentID] = in
		return in, fmt.Errorf("intent %s: %w", intentID, ErrDeclined)
	}
	in.Status = PaymentSucceeded
	p.intents[intentID] = in
	return in, nil
}
