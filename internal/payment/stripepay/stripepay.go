// Package stripepay is the Stripe payment provider, on Stripe's official Go SDK
// (github.com/stripe/stripe-go): PaymentIntents and Refunds, an idempotency key on every
// POST, Stripe's errors mapped to the payment package's, and webhook events verified by
// the SDK's Stripe-Signature check.
package stripepay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"

	"commerce/internal/payment"
	"commerce/internal/platform/money"
)

// Config configures the provider.
type Config struct {
	SecretKey string // STRIPE_SECRET_KEY (sk_live_..., sk_test_...)
	APIBase   string // STRIPE_API_BASE: "" for https://api.stripe.com, or a mock's URL
	Timeout   time.Duration
	// MaxNetworkRetries: how often the SDK repeats a request that failed in transit
	// (with the same idempotency key, so never twice in effect). Default 2.
	MaxNetworkRetries int64
}

// Provider is the Stripe payment provider.
type Provider struct {
	c *stripe.Client
}

var _ payment.Provider = (*Provider)(nil)

// New returns a Stripe provider.
func New(cfg Config) (*Provider, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("stripe: STRIPE_SECRET_KEY is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = payment.DefaultTimeout
	}
	if cfg.MaxNetworkRetries == 0 {
		cfg.MaxNetworkRetries = 2
	}
	bc := &stripe.BackendConfig{
		HTTPClient:        &http.Client{Timeout: cfg.Timeout},
		MaxNetworkRetries: stripe.Int64(cfg.MaxNetworkRetries),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if cfg.APIBase != "" {
		bc.URL = stripe.String(strings.TrimRight(cfg.APIBase, "/"))
	}
	return &Provider{c: stripe.NewClient(cfg.SecretKey, stripe.WithBackends(stripe.NewBackendsWithConfig(bc)))}, nil
}

// Name is "stripe".
func (p *Provider) Name() string { return "stripe" }

// CreateIntent creates a PaymentIntent for the checkout's total (automatic capture,
// automatic payment methods without redirects so a server-side confirmation needs no
// return URL), with the checkout id in its metadata.
func (p *Provider) CreateIntent(ctx context.Context, cp payment.CreateParams) (payment.Intent, error) {
	params := &stripe.PaymentIntentCreateParams{
		Amount:   stripe.Int64(cp.Amount.Amount),
		Currency: stripe.String(strings.ToLower(cp.Amount.Currency)),
		AutomaticPaymentMethods: &stripe.PaymentIntentCreateAutomaticPaymentMethodsParams{
			Enabled: stripe.Bool(true), AllowRedirects: stripe.String("never")},
	}
	for k, v := range cp.Metadata {
		params.AddMetadata(k, v)
	}
	params.AddMetadata("checkout_id", cp.CheckoutID.String())
	params.SetIdempotencyKey(cp.IdempotencyKey)
	pi, err := p.c.V1PaymentIntents.Create(ctx, params)
	if err != nil {
		return payment.Intent{}, mapError("create intent", err)
	}
	return toIntent(pi), nil
}

// Confirm confirms the intent with a payment method. A requires_action answer is
// returned as *payment.ActionError.
func (p *Provider) Confirm(ctx context.Context, intentID, method, key string) (payment.Intent, error) {
	params := &stripe.PaymentIntentConfirmParams{PaymentMethod: stripe.String(method)}
	params.SetIdempotencyKey(key)
	pi, err := p.c.V1PaymentIntents.Confirm(ctx, intentID, params)
	if err != nil {
		return payment.Intent{}, mapError("confirm intent", err)
	}
	in := toIntent(pi)
	switch in.Status {
	case payment.StatusRequiresAction:
		return in, &payment.ActionError{Intent: in}
	case payment.StatusRequiresPaymentMethod:
		return in, fmt.Errorf("intent %s: %w", intentID, payment.ErrDeclined)
	}
	return in, nil
}

// Capture captures an authorized intent.
func (p *Provider) Capture(ctx context.Context, intentID, key string) (payment.Intent, error) {
	params := &stripe.PaymentIntentCaptureParams{}
	params.SetIdempotencyKey(key)
	pi, err := p.c.V1PaymentIntents.Capture(ctx, intentID, params)
	if err != nil {
		return payment.Intent{}, mapError("capture intent", err)
	}
	return toIntent(pi), nil
}

// Cancel cancels (voids) an intent that took no money.
func (p *Provider) Cancel(ctx context.Context, intentID, key string) (payment.Intent, error) {
	params := &stripe.PaymentIntentCancelParams{}
	params.SetIdempotencyKey(key)
	pi, err := p.c.V1PaymentIntents.Cancel(ctx, intentID, params)
	if err != nil {
		return payment.Intent{}, mapError("cancel intent", err)
	}
	return toIntent(pi), nil
}

// Refund refunds rp.Amount of the intent; the service's refund id is the idempotency
// key and is kept in the refund's metadata (refund.updated events carry it back).
func (p *Provider) Refund(ctx context.Context, rp payment.RefundParams) (payment.Refund, error) {
	params := &stripe.RefundCreateParams{PaymentIntent: stripe.String(rp.IntentID), Amount: stripe.Int64(rp.Amount.Amount)}
	params.AddMetadata("refund_id", rp.ID.String())
	if rp.Reason != "" {
		params.AddMetadata("reason", truncate(rp.Reason, 500))
	}
	params.SetIdempotencyKey("refund-" + rp.ID.String())
	r, err := p.c.V1Refunds.Create(ctx, params)
	if err != nil {
		return payment.Refund{}, mapError("refund", err)
	}
	out := toRefund(r)
	if out.IntentID == "" {
		out.IntentID = rp.IntentID
	}
	return out, nil
}

// Retrieve returns the intent as Stripe sees it.
func (p *Provider) Retrieve(ctx context.Context, intentID string) (payment.Intent, error) {
	pi, err := p.c.V1PaymentIntents.Retrieve(ctx, intentID, nil)
	if err != nil {
		return payment.Intent{}, mapError("retrieve intent", err)
	}
	return toIntent(pi), nil
}

// RetrieveRefund returns the refund as Stripe sees it, by Stripe's refund id (re_...).
func (p *Provider) RetrieveRefund(ctx context.Context, providerRefundID string) (payment.Refund, error) {
	r, err := p.c.V1Refunds.Retrieve(ctx, providerRefundID, nil)
	if err != nil {
		return payment.Refund{}, mapError("retrieve refund", err)
	}
	return toRefund(r), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func toIntent(pi *stripe.PaymentIntent) payment.Intent {
	in := payment.Intent{ID: pi.ID, Status: payment.Status(pi.Status),
		Amount:         money.New(pi.Amount, strings.ToUpper(string(pi.Currency))),
		AmountReceived: pi.AmountReceived, ClientSecret: pi.ClientSecret, CheckoutID: pi.Metadata["checkout_id"]}
	if pi.NextAction != nil {
		in.NextAction = &payment.NextAction{Type: string(pi.NextAction.Type)}
		if pi.NextAction.RedirectToURL != nil {
			in.NextAction.RedirectURL = pi.NextAction.RedirectToURL.URL
		}
	}
	if pi.LastPaymentError != nil {
		in.DeclineReason = string(pi.LastPaymentError.Code)
		if pi.LastPaymentError.DeclineCode != "" {
			in.DeclineReason = string(pi.LastPaymentError.DeclineCode)
		}
	}
	return in
}

func toRefund(r *stripe.Refund) payment.Refund {
	out := payment.Refund{ProviderID: r.ID, RefundID: r.Metadata["refund_id"],
		Amount: money.New(r.Amount, strings.ToUpper(string(r.Currency)))}
	switch r.Status {
	case stripe.RefundStatusSucceeded:
		out.Status = payment.RefundSucceeded
	case stripe.RefundStatusFailed:
		out.Status = payment.RefundFailed
	case stripe.RefundStatusCanceled:
		out.Status = payment.RefundCanceled
	default: // pending, requires_action
		out.Status = payment.RefundPending
	}
	if r.PaymentIntent != nil {
		out.IntentID = r.PaymentIntent.ID
	}
	return out
}

// mapError maps a Stripe error to the payment package's: a card error is a decline;
// payment_intent_unexpected_state is ErrInvalidState; resource_missing ErrNotFound; other
// 4xx are ErrInvalid; 5xx, 429, and anything that is not a Stripe answer (the network)
// leave the outcome unknown (ErrUnavailable).
func mapError(op string, err error) error {
	var se *stripe.Error
	if !errors.As(err, &se) {
		// Not an answer from Stripe (network, timeout, a body that is not Stripe's): the
		// request may or may not have been processed.
		return fmt.Errorf("stripe %s: %w: %w", op, payment.ErrUnavailable, err)
	}
	msg := fmt.Sprintf("stripe %s: %s (%s, status %d, request %s)", op, se.Msg, se.Code, se.HTTPStatusCode, se.RequestID)
	switch {
	case se.HTTPStatusCode >= 500 || se.HTTPStatusCode == http.StatusTooManyRequests || se.HTTPStatusCode == 0 ||
		se.Type == stripe.ErrorTypeAPI:
		return fmt.Errorf("%s: %w", msg, payment.ErrUnavailable)
	case se.Type == stripe.ErrorTypeCard:
		return fmt.Errorf("%s: %w", msg, payment.ErrDeclined)
	case se.Code == stripe.ErrorCodeAmountTooSmall:
		return fmt.Errorf("%s: %w", msg, payment.ErrAmountTooSmall)
	case se.Code == stripe.ErrorCodePaymentIntentUnexpectedState:
		return fmt.Errorf("%s: %w", msg, payment.ErrInvalidState)
	case se.Code == stripe.ErrorCodeResourceMissing || se.HTTPStatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: %w", msg, payment.ErrNotFound)
	case se.Type == stripe.ErrorTypeIdempotency:
		// The key was used with other parameters: a bug on our side, not a decline.
		return fmt.Errorf("%s: %w", msg, payment.ErrInvalid)
	}
	return fmt.Errorf("%s: %w", msg, payment.ErrInvalid)
}

// ------------------------------------------------------------------------ webhooks

// EventType is a Stripe event type this service acts on.
const (
	EventIntentSucceeded = "payment_intent.succeeded"
	EventIntentFailed    = "payment_intent.payment_failed"
	EventChargeRefunded  = "charge.refunded"
	EventRefundUpdated   = "refund.updated"
)

// Event is the part of a Stripe event the service uses.
type Event struct {
	ID       string
	Type     string
	IntentID string
	// Refund is set for refund.updated.
	Refund *payment.Refund
	// AmountRefunded and Currency are set for charge.refunded: the charge's refunded total.
	AmountRefunded int64
	Currency       string
}

// ErrSignature is returned when the Stripe-Signature header does not verify.
var ErrSignature = errors.New("stripe: invalid Stripe-Signature")

// ParseWebhook verifies the Stripe-Signature header of payload with the endpoint's signing
// secret (the SDK's check, default 5 minute tolerance) and returns the event. The event's
// API version may differ from the SDK's: only stable fields are read. Errors:
// ErrSignature; a malformed payload.
func ParseWebhook(payload []byte, header, secret string) (Event, error) {
	if secret == "" {
		return Event{}, ErrSignature
	}
	ev, err := webhook.ConstructEventWithOptions(payload, header, secret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		if errors.Is(err, webhook.ErrNotSigned) || errors.Is(err, webhook.ErrInvalidHeader) ||
			errors.Is(err, webhook.ErrNoValidSignature) || errors.Is(err, webhook.ErrTooOld) {
			return Event{}, ErrSignature
		}
		return Event{}, fmt.Errorf("stripe webhook: %w", err)
	}
	out := Event{ID: ev.ID, Type: string(ev.Type)}
	if ev.Data == nil {
		return out, errors.New("stripe webhook: event without data")
	}
	switch out.Type {
	case EventIntentSucceeded, EventIntentFailed:
		var pi struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(ev.Data.Raw, &pi); err != nil {
			return out, fmt.Errorf("stripe webhook: %w", err)
		}
		out.IntentID = pi.ID
	case EventChargeRefunded:
		var ch stripe.Charge
		if err := json.Unmarshal(ev.Data.Raw, &ch); err != nil {
			return out, fmt.Errorf("stripe webhook: %w", err)
		}
		if ch.PaymentIntent != nil {
			out.IntentID = ch.PaymentIntent.ID
		}
		out.AmountRefunded, out.Currency = ch.AmountRefunded, strings.ToUpper(string(ch.Currency))
	case EventRefundUpdated:
		var r stripe.Refund
		if err := json.Unmarshal(ev.Data.Raw, &r); err != nil {
			return out, fmt.Errorf("stripe webhook: %w", err)
		}
		rf := toRefund(&r)
		out.Refund = &rf
		out.IntentID = rf.IntentID
	}
	return out, nil
}

// SignPayload returns a Stripe-Signature header for payload under secret, as Stripe would
// send it (for tests and tooling).
func SignPayload(payload []byte, secret string) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret}).Header
}
