// Package payment is the boundary to payment providers: the Provider interface the
// checkout needs (create an intent, confirm, capture, cancel, refund, retrieve), the
// errors every provider maps its outcomes to, the built-in test provider (a scripted,
// counting fake usable from development and tests) and, in package payment/stripe, the
// Stripe provider.
//
// Unknown outcomes. A call that fails with ErrUnavailable may or may not have happened
// at the provider. Callers never guess: they Retrieve the intent (whose status says what
// happened) or repeat the call with the same idempotency key (which the provider answers
// with the first outcome, never acting twice).
package payment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/money"
)

// Errors a Provider maps its outcomes to.
var (
	// ErrDeclined: the payment method was declined; the intent stays payable with
	// another payment method.
	ErrDeclined = errors.New("payment: declined")
	// ErrRequiresAction: the shopper must finish an authentication (3-D Secure) in the
	// storefront; see *ActionError for what the storefront needs.
	ErrRequiresAction = errors.New("payment: requires action")
	// ErrAmountMismatch: the intent's amount or currency is not what the checkout
	// charges.
	ErrAmountMismatch = errors.New("payment: amount or currency mismatch")
	// ErrUnavailable: the provider could not be reached or failed; the outcome of the call
	// is unknown (resolve it with Retrieve, or by repeating the call with the same
	// idempotency key).
	ErrUnavailable = errors.New("payment: provider unavailable, outcome unknown")
	// ErrInvalidState: the intent's status does not allow the call (e.g. cancelling an
	// intent that already succeeded).
	ErrInvalidState = errors.New("payment: the intent's state does not allow this")
	// ErrNotFound: the provider does not know the intent.
	ErrNotFound = errors.New("payment: no such intent")
	// ErrInvalid: the provider refused the request as malformed (a bug or a bad
	// payment method id), not a decline.
	ErrInvalid = errors.New("payment: invalid request")
	// ErrAmountTooSmall: the amount is below the smallest charge the provider takes in
	// that currency (Stripe: 0.50 USD or EUR, 0.30 GBP, ...). Nothing was opened.
	ErrAmountTooSmall = errors.New("payment: amount below the provider's minimum charge")
)

// Status is a payment intent's status, as Stripe names them.
type Status string

// Intent statuses.
const (
	StatusRequiresPaymentMethod Status = "requires_payment_method"
	StatusRequiresConfirmation  Status = "requires_confirmation"
	StatusRequiresAction        Status = "requires_action"
	StatusProcessing            Status = "processing"
	StatusRequiresCapture       Status = "requires_capture"
	StatusSucceeded             Status = "succeeded"
	StatusCanceled              Status = "canceled"
)

// NextAction is what the storefront must do to finish a requires_action intent.
type NextAction struct {
	Type        string // e.g. use_stripe_sdk, redirect_to_url
	RedirectURL string // for redirect_to_url
}

// Intent is the provider's view of a payment intent.
type Intent struct {
	ID             string
	Status         Status
	Amount         money.Money // what the intent charges
	AmountReceived int64       // minor units captured so far
	ClientSecret   string      // for client-side confirmation (Stripe.js); secret to the shopper
	NextAction     *NextAction // set when Status is requires_action
	CheckoutID     string      // the checkout id from the intent's metadata
	DeclineReason  string      // the last payment error, when there was one
}

// Paid reports whether the intent's money was taken (succeeded).
func (in Intent) Paid() bool { return in.Status == StatusSucceeded }

// Verify returns ErrAmountMismatch unless the intent charges exactly want (amount and
// currency; currencies compare case-insensitively, as providers write them lower case).
func (in Intent) Verify(want money.Money) error {
	if in.Amount.Amount != want.Amount || !sameCurrency(in.Amount.Currency, want.Currency) {
		return fmt.Errorf("%w: intent %s charges %d %s, the checkout %d %s", ErrAmountMismatch, in.ID,
			in.Amount.Amount, in.Amount.Currency, want.Amount, want.Currency)
	}
	if in.Status == StatusSucceeded && in.AmountReceived != 0 && in.AmountReceived != want.Amount {
		return fmt.Errorf("%w: intent %s received %d, the checkout charges %d", ErrAmountMismatch, in.ID,
			in.AmountReceived, want.Amount)
	}
	return nil
}

func sameCurrency(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// ActionError is returned (with errors.Is(err, ErrRequiresAction)) when the intent needs
// the shopper to authenticate; Intent carries the client secret and the next action.
type ActionError struct{ Intent Intent }

func (e *ActionError) Error() string { return "payment: intent " + e.Intent.ID + " requires action" }

// Is makes errors.Is(err, ErrRequiresAction) true.
func (e *ActionError) Is(target error) bool { return target == ErrRequiresAction }

// CreateParams open an intent.
type CreateParams struct {
	CheckoutID uuid.UUID
	Amount     money.Money
	// IdempotencyKey is derived from the checkout, so a retried creation never opens a
	// second intent.
	IdempotencyKey string
	Metadata       map[string]string // checkout_id is always added
}

// RefundStatus is the status of a refund at the provider.
type RefundStatus string

// Refund statuses.
const (
	RefundPending   RefundStatus = "pending"
	RefundSucceeded RefundStatus = "succeeded"
	RefundFailed    RefundStatus = "failed"
	RefundCanceled  RefundStatus = "canceled"
)

// RefundParams ask for a refund of Amount of the intent. ID is the service's own refund id:
// the idempotency key, so asking again for the same ID never refunds twice.
type RefundParams struct {
	ID       uuid.UUID
	IntentID string
	Amount   money.Money
	Reason   string
}

// Refund is the provider's view of a refund.
type Refund struct {
	ProviderID string
	RefundID   string // the service's refund id (metadata), when the provider knows it
	IntentID   string
	Amount     money.Money
	Status     RefundStatus
}

// Provider is a payment provider. Every method is safe for concurrent use. Every call that
// changes something takes an idempotency key: repeating it with the same key answers the
// first outcome without acting again.
type Provider interface {
	// Name is the provider's name (stripe, test).
	Name() string
	// CreateIntent opens an intent for p.Amount with the checkout id in its metadata.
	CreateIntent(ctx context.Context, p CreateParams) (Intent, error)
	// Confirm charges the intent with the payment method (server-side confirmation).
	// Errors: ErrDeclined, *ActionError (ErrRequiresAction), ErrInvalidState,
	// ErrUnavailable (outcome unknown).
	Confirm(ctx context.Context, intentID, paymentMethod, idempotencyKey string) (Intent, error)
	// Capture takes the money of an authorized (requires_capture) intent.
	Capture(ctx context.Context, intentID, idempotencyKey string) (Intent, error)
	// Cancel voids an intent that took no money. Errors: ErrInvalidState when it
	// succeeded already (refund it instead).
	Cancel(ctx context.Context, intentID, idempotencyKey string) (Intent, error)
	// Refund refunds p.Amount of a succeeded intent, once per p.ID.
	Refund(ctx context.Context, p RefundParams) (Refund, error)
	// Retrieve returns the provider's current view of the intent.
	Retrieve(ctx context.Context, intentID string) (Intent, error)
	// RetrieveRefund returns the provider's current view of a refund, by the provider's
	// own refund id (a refund it answered pending is polled this way until it ends).
	// Errors: ErrNotFound, ErrUnavailable.
	RetrieveRefund(ctx context.Context, providerRefundID string) (Refund, error)
}

// Outcome classifies a provider error for metrics and logs.
func Outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrDeclined):
		return "declined"
	case errors.Is(err, ErrRequiresAction):
		return "requires_action"
	case errors.Is(err, ErrInvalidState):
		return "invalid_state"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrInvalid):
		return "invalid"
	case errors.Is(err, ErrAmountTooSmall):
		return "amount_too_small"
	default:
		return "unavailable"
	}
}

// DefaultTimeout bounds one provider call.
const DefaultTimeout = 20 * time.Second
