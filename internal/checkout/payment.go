package checkout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"commerce/internal/payment"
	"commerce/internal/platform/fault"
)

// PaymentProvider is the payment provider a Service charges through (payment.Provider).
type PaymentProvider = payment.Provider

// Test provider payment methods (payment.TestProvider).
const (
	TokenOK       = payment.TokenOK
	TokenDeclined = payment.TokenDeclined
	Token3DS      = payment.Token3DS
)

// NewTestProvider returns the built-in test provider.
func NewTestProvider() *payment.TestProvider { return payment.NewTestProvider() }

// Payment errors of Complete.
var (
	// ErrPaymentRequiresAction: the shopper must authenticate (3-D Secure); see
	// *ActionRequiredError (402 payment_requires_action).
	ErrPaymentRequiresAction = errors.New("checkout: payment requires action")
	// ErrPaymentMethodRequired: the intent is not confirmed and complete carried no
	// payment method (422).
	ErrPaymentMethodRequired = errors.New("checkout: a payment method is required")
	// ErrPaymentMethodInvalid: the provider refused the payment method as malformed (422).
	ErrPaymentMethodInvalid = errors.New("checkout: the payment method is not usable")
	// ErrAmountMismatch: the provider's intent does not charge the checkout's total; no
	// order is placed, the checkout is cancelled and the payment refunded (409).
	ErrAmountMismatch = errors.New("checkout: payment amount does not match the checkout")
	// ErrPaymentProcessing: the provider is still processing the payment (409, retry).
	ErrPaymentProcessing = errors.New("checkout: payment is processing")
)

// ActionRequiredError carries what the storefront needs to finish a 3-D Secure
// authentication. errors.Is(err, ErrPaymentRequiresAction) holds.
type ActionRequiredError struct {
	IntentID     string
	ClientSecret string
	NextAction   string
	RedirectURL  string
}

func (e *ActionRequiredError) Error() string {
	return "checkout: payment intent " + e.IntentID + " requires action"
}

// Is makes errors.Is(err, ErrPaymentRequiresAction) true.
func (e *ActionRequiredError) Is(target error) bool { return target == ErrPaymentRequiresAction }

func actionRequired(in payment.Intent) *ActionRequiredError {
	e := &ActionRequiredError{IntentID: in.ID, ClientSecret: in.ClientSecret}
	if in.NextAction != nil {
		e.NextAction, e.RedirectURL = in.NextAction.Type, in.NextAction.RedirectURL
	}
	return e
}

// providerCtx bounds one provider call.
func providerCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, payment.DefaultTimeout)
}

func (s *Service) observe(op string, err error) {
	s.m.provider.WithLabelValues(op, payment.Outcome(err)).Inc()
}

func (s *Service) retrieve(ctx context.Context, intentID string) (payment.Intent, error) {
	ctx, cancel := providerCtx(ctx)
	defer cancel()
	in, err := s.pay.Retrieve(ctx, intentID)
	s.observe("retrieve", err)
	return in, err
}

// charge makes sure c's intent took the checkout's total, by the request that claimed
// awaiting_payment → completing (so only one caller at a time gets here for a
// checkout). It always retrieves the intent first: an intent the storefront confirmed
// (Stripe.js) or a webhook reported is never confirmed twice. An authorized intent is
// captured; an unconfirmed one is confirmed with method. An unknown outcome is settled by
// retrieving the intent again. On any failure the checkout goes back to awaiting_payment
// (payable), or, when the intent charged another amount, it is cancelled and the payment
// refunded.
func (s *Service) charge(ctx context.Context, c Checkout, method string) error {
	in, err := s.retrieve(ctx, c.PaymentIntentID)
	if err != nil {
		return s.backToAwaitingStatus(ctx, c, "", unavailable(fmt.Errorf("payment provider: %w", err)))
	}
	confirmed, captured, unknown := false, false, false
	for step := 0; step < 6; step++ {
		switch in.Status {
		case payment.StatusSucceeded:
			if err := in.Verify(c.Total); err != nil {
				return s.mismatch(ctx, c, in, err)
			}
			// Recorded by the sale's transaction, or by the revert if the sale fails
			// (backToAwaiting); a crash in between leaves it to the provider, which
			// recovery asks.
			return nil
		case payment.StatusRequiresCapture:
			if err := in.Verify(c.Total); err != nil {
				return s.mismatch(ctx, c, in, err)
			}
			if captured {
				in, err = s.retrieve(ctx, c.PaymentIntentID)
				if err != nil || in.Status == payment.StatusRequiresCapture {
					return s.backToAwaitingStatus(ctx, c, "", unavailable(fmt.Errorf("capture did not settle: %v", err)))
				}
				continue
			}
			captured = true
			pctx, cancel := providerCtx(ctx)
			var out payment.Intent
			out, err = s.pay.Capture(pctx, c.PaymentIntentID, "capture-"+c.ID.String())
			cancel()
			s.observe("capture", err)
			if err == nil {
				in = out
				continue
			}
			// Whatever happened, the intent's status says it.
			if in, err = s.retrieve(ctx, c.PaymentIntentID); err != nil {
				return s.backToAwaitingStatus(ctx, c, "", unavailable(fmt.Errorf("payment provider: %w", err)))
			}
		case payment.StatusRequiresPaymentMethod, payment.StatusRequiresConfirmation, payment.StatusRequiresAction:
			if in.Status == payment.StatusRequiresAction && (method == "" || confirmed) {
				// Waiting for the shopper's authentication (a new payment method may
				// replace it: confirmed below).
				return s.backToAwaitingStatus(ctx, c, PaymentStatus(in.Status), actionRequired(in))
			}
			if unknown && in.DeclineReason == "" {
				// Our confirmation's outcome was unknown and the intent shows no attempt:
				// it did not reach the provider. Not a decline: the caller retries.
				return s.backToAwaitingStatus(ctx, c, "", unavailable(fmt.Errorf("payment intent %s: confirmation did not reach the provider", in.ID)))
			}
			if confirmed || method == "" {
				if confirmed { // confirmed and back to needing a method: declined
					return s.backToAwaitingStatus(ctx, c, PaymentFailed, ErrPaymentDeclined)
				}
				return s.backToAwaitingStatus(ctx, c, PaymentStatus(in.Status), ErrPaymentMethodRequired)
			}
			confirmed = true
			pctx, cancel := providerCtx(ctx)
			var out payment.Intent
			// One key per claim (the version): a retry of this claim's confirmation is
			// answered from Stripe's record; a later claim may try another method.
			out, err = s.pay.Confirm(pctx, c.PaymentIntentID, method, fmt.Sprintf("confirm-%s-v%d", c.ID, c.Version))
			cancel()
			s.observe("confirm", err)
			var ae *payment.ActionError
			switch {
			case err == nil:
				in = out
			case errors.As(err, &ae):
				return s.backToAwaitingStatus(ctx, c, PaymentStatus(payment.StatusRequiresAction), actionRequired(ae.Intent))
			case errors.Is(err, payment.ErrDeclined):
				return s.backToAwaitingStatus(ctx, c, PaymentFailed, ErrPaymentDeclined)
			case errors.Is(err, payment.ErrInvalid):
				return s.backToAwaitingStatus(ctx, c, "", ErrPaymentMethodInvalid)
			default:
				// Unknown outcome (or a state the intent left meanwhile): ask the provider.
				unknown = true
				if in, err = s.retrieve(ctx, c.PaymentIntentID); err != nil {
					return s.backToAwaitingStatus(ctx, c, "", unavailable(fmt.Errorf("payment provider: %w", err)))
				}
			}
		case payment.StatusProcessing:
			return s.backToAwaitingStatus(ctx, c, PaymentStatus(in.Status), ErrPaymentProcessing)
		case payment.StatusCanceled:
			return s.backToAwaitingStatus(ctx, c, PaymentStatus(in.Status),
				fmt.Errorf("%w: the payment intent was cancelled", ErrConflict))
		default:
			return s.backToAwaitingStatus(ctx, c, "", fmt.Errorf("payment intent %s: unknown status %q", in.ID, in.Status))
		}
	}
	return s.backToAwaitingStatus(ctx, c, "", unavailable(fmt.Errorf("payment intent %s did not settle", c.PaymentIntentID)))
}

// backToAwaitingStatus undoes the completing claim, recording the intent's status when
// st is set, and returns err.
func (s *Service) backToAwaitingStatus(ctx context.Context, c Checkout, st PaymentStatus, err error) error {
	ch := change{}
	if st != "" {
		ch.paymentStatus = &st
	}
	s.revert(ctx, c, ch)
	return err
}

// mismatch handles an intent that charged something other than the checkout's total:
// no order; the checkout is cancelled with a flagged refund decided in the same
// transaction; an operator sees it in the flagged payments.
func (s *Service) mismatch(ctx context.Context, c Checkout, in payment.Intent, cause error) error {
	s.m.amountMismatch.Inc()
	s.log.Error("checkout: payment intent amount or currency differs from the checkout total; no order, refunding",
		slog.String("checkout", c.ID.String()), slog.String("payment_intent", in.ID),
		slog.Int64("intent_amount", in.Amount.Amount), slog.String("intent_currency", in.Amount.Currency),
		slog.Int64("checkout_total", c.Total.Amount), slog.String("checkout_currency", c.Currency))
	if _, err := s.end(ctx, c, StateCancelled, causeAmountMismatch); err != nil {
		s.log.Warn("checkout: cancel after amount mismatch", slog.String("checkout", c.ID.String()),
			slog.String("error", err.Error()))
	}
	return fmt.Errorf("%w: %w", ErrAmountMismatch, cause)
}

// ------------------------------------------------------------------- payment events

// EventType is the type of a payment provider event.
type EventType string

// Payment event types.
const (
	EventIntentSucceeded EventType = "payment_intent.succeeded"
	EventIntentFailed    EventType = "payment_intent.payment_failed"
	EventChargeRefunded  EventType = "charge.refunded"
	EventRefundUpdated   EventType = "refund.updated"
)

// PaymentEvent is a provider callback, verified by its route.
type PaymentEvent struct {
	ID       string
	Type     EventType
	IntentID string
	// Refund: for refund.updated, the provider's view of the refund.
	Refund *payment.Refund
	// AmountRefunded: for charge.refunded, all that the provider refunded of the charge.
	AmountRefunded int64
}

// HandlePaymentEvent applies a provider event once per event id (applied is false for a
// replay, which changes nothing).
//   - payment_intent.succeeded: the checkout's order is placed, as a complete without a
//     payment method would (the intent is retrieved and its status, amount and currency
//     checked first). When a complete is already at it, that one places the order.
//   - payment_intent.payment_failed: the payment is marked failed; the checkout stays
//     payable.
//   - refund.updated: the refund's status is recorded on its order.
//   - charge.refunded: a refund made at the provider (not through this service) is
//     recorded on the order.
//
// An event about an unknown intent is acknowledged. Errors are dependency failures (the
// provider should deliver the event again).
func (s *Service) HandlePaymentEvent(ctx context.Context, ev PaymentEvent) (applied bool, err error) {
	if ev.ID == "" || len(ev.ID) > 255 || len(ev.IntentID) > 255 {
		return false, fmt.Errorf("checkout: malformed payment event")
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	seen, err := s.st.eventSeen(ctx, ev.ID)
	if err != nil || seen {
		return false, err
	}
	switch ev.Type {
	case EventIntentSucceeded:
		err = s.settle(ctx, ev.IntentID)
	case EventIntentFailed:
		err = s.st.paymentFailed(ctx, ev.IntentID)
	case EventRefundUpdated:
		if ev.Refund != nil {
			err = s.refundUpdated(ctx, *ev.Refund)
		}
	case EventChargeRefunded:
		err = s.externalRefund(ctx, ev.IntentID, ev.AmountRefunded)
	default:
		// Not an event this service acts on: acknowledged and recorded.
	}
	if err != nil {
		return false, err
	}
	return s.st.recordEvent(ctx, ev)
}

// settle places the order of the checkout whose intent the provider reports succeeded.
// Answers that leave nothing to do (in progress elsewhere, expired, declined, ...) are
// not errors; dependency failures are.
func (s *Service) settle(ctx context.Context, intentID string) error {
	c, ok, err := s.st.byIntent(ctx, intentID)
	if err != nil || !ok {
		return err
	}
	if c.State != StateAwaitingPayment {
		// completing: its claimant charges and places the order; final: over (an ended
		// checkout's payment is voided or refunded by its payment action).
		return nil
	}
	// Only a payment the provider confirms is worth claiming the checkout for (the
	// completion retrieves it again under the claim before placing the order).
	in, err := s.retrieve(ctx, intentID)
	if err != nil {
		if errors.Is(err, payment.ErrNotFound) {
			return nil
		}
		return unavailable(fmt.Errorf("payment provider: %w", err))
	}
	if in.Status != payment.StatusSucceeded && in.Status != payment.StatusRequiresCapture {
		return nil
	}
	_, err = s.complete(ctx, c, "", false)
	if err == nil || errors.Is(err, fault.ErrUnavailable) {
		return err
	}
	var se *stateError
	switch {
	case errors.As(err, &se), errors.Is(err, ErrInProgress), errors.Is(err, ErrConflict), errors.Is(err, ErrExpired),
		errors.Is(err, ErrPaymentDeclined), errors.Is(err, ErrPaymentRequiresAction),
		errors.Is(err, ErrPaymentMethodRequired), errors.Is(err, ErrAmountMismatch), errors.Is(err, ErrPaymentProcessing):
		s.log.Info("checkout: payment event left nothing to do", slog.String("checkout", c.ID.String()),
			slog.String("outcome", err.Error()))
		return nil
	}
	return err
}

// Complete with a deadline for waiting on others; used by settle too.
func (s *Service) waitDeadline(wait bool) time.Time {
	if !wait {
		return time.Now()
	}
	return time.Now().Add(s.opts.CompleteWait)
}

// uuidOrNil parses s, uuid.Nil when it is not a UUID.
func uuidOrNil(s string) uuid.UUID {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil
	}
	return id
}
