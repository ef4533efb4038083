package checkout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"commerce/internal/payment"
	"commerce/internal/platform/money"
)

// actionLease: a relay that claimed an action and died leaves it for this long.
const actionLease = time.Minute

// pendingPoll is how long after the provider accepted a refund (pending) the relay first
// asks how it ended; later polls back off up to ten minutes. The provider's webhook
// usually reports the end sooner, and a lost webhook costs only this wait.
const pendingPoll = time.Minute

// RelayPayments carries out pending refunds and voids at the provider until it confirms
// each (the action id is the idempotency key: a retry never acts twice). It returns how
// many actions it settled or handed to the provider.
func (s *Service) RelayPayments(ctx context.Context) (int, error) {
	n := 0
	for i := 0; i < batch; i++ {
		a, ok, err := s.st.claimAction(ctx, uuid.Nil, actionLease)
		if err != nil || !ok {
			return n, err
		}
		if done, err := s.execute(ctx, a); err == nil && done {
			n++
		}
	}
	return n, nil
}

// runAction tries one pending action now; done is true once the provider confirmed it.
func (s *Service) runAction(ctx context.Context, id uuid.UUID) (bool, error) {
	a, ok, err := s.st.claimAction(ctx, id, actionLease)
	if err != nil || !ok {
		return false, err
	}
	return s.execute(ctx, a)
}

func backoff(attempts int) time.Duration {
	d := time.Second << min(attempts, 10)
	return min(d, 10*time.Minute)
}

// execute calls the provider for a claimed action and records its answer.
func (s *Service) execute(ctx context.Context, a action) (bool, error) {
	retry := func(err error) (bool, error) {
		s.m.actions.WithLabelValues(a.Kind, "retry").Inc()
		if rerr := s.st.retryAction(ctx, a.ID, err, backoff(a.Attempts)); rerr != nil {
			return false, rerr
		}
		return false, err
	}
	settle := func(status, ref, lastErr string) (bool, error) {
		s.at(hookRefundCalled)
		if err := s.st.settleAction(ctx, a.ID, status, ref, lastErr); err != nil {
			return false, err
		}
		outcome := "confirmed"
		if status == "failed" {
			outcome = "failed"
			s.log.Error("checkout: payment action failed at the provider", slog.String("action", a.ID.String()),
				slog.String("kind", a.Kind), slog.String("payment_intent", a.IntentID), slog.String("error", lastErr))
		}
		s.m.actions.WithLabelValues(a.Kind, outcome).Inc()
		return true, nil
	}
	if a.Kind == "void" {
		pctx, cancel := providerCtx(ctx)
		in, err := s.pay.Cancel(pctx, a.IntentID, "void-"+a.ID.String())
		cancel()
		s.observe("cancel", err)
		switch {
		case err == nil && in.Status == payment.StatusCanceled:
			return settle("succeeded", in.ID, "")
		case err == nil, errors.Is(err, payment.ErrInvalidState):
			// Took money after all (or is in between): the intent's status decides.
			in, err = s.retrieve(ctx, a.IntentID)
			if err != nil {
				return retry(err)
			}
			switch in.Status {
			case payment.StatusCanceled:
				return settle("succeeded", in.ID, "")
			case payment.StatusSucceeded:
				amount := in.AmountReceived
				if amount == 0 {
					amount = in.Amount.Amount
				}
				if err := s.st.toRefund(ctx, a.ID, amount); err != nil {
					return false, err
				}
				a.Kind, a.Amount = "refund", money.New(amount, a.Amount.Currency)
				s.log.Warn("checkout: an ended checkout's payment succeeded; refunding it",
					slog.String("checkout", a.CheckoutID.String()), slog.String("payment_intent", a.IntentID))
			default:
				return retry(fmt.Errorf("intent %s is %s; void retried later", a.IntentID, in.Status))
			}
		case errors.Is(err, payment.ErrNotFound):
			return settle("failed", "", err.Error())
		default:
			return retry(err)
		}
	}
	if a.ProviderRef != "" {
		return s.pollRefund(ctx, a, retry, settle)
	}
	pctx, cancel := providerCtx(ctx)
	r, err := s.pay.Refund(pctx, payment.RefundParams{ID: a.ID, IntentID: a.IntentID, Amount: a.Amount, Reason: a.Reason})
	cancel()
	s.observe("refund", err)
	switch {
	case err == nil:
		if status, lastErr, ended := refundEnd(r.Status); ended {
			return settle(status, r.ProviderID, lastErr)
		}
		// Accepted: refund.updated or the relay's poll reports the end.
		s.at(hookRefundCalled)
		if err := s.st.acceptAction(ctx, a.ID, r.ProviderID, pendingPoll); err != nil {
			return false, err
		}
		s.m.actions.WithLabelValues(a.Kind, "accepted").Inc()
		return true, nil
	case errors.Is(err, payment.ErrInvalid), errors.Is(err, payment.ErrNotFound):
		return settle("failed", "", err.Error())
	default:
		return retry(err)
	}
}

// pollRefund asks the provider how a refund it accepted (pending) ended, and records the
// end; a refund still pending is asked about again after a backoff. done is true once
// the end is recorded.
func (s *Service) pollRefund(ctx context.Context, a action, retry func(error) (bool, error),
	settle func(status, ref, lastErr string) (bool, error)) (bool, error) {
	pctx, cancel := providerCtx(ctx)
	r, err := s.pay.RetrieveRefund(pctx, a.ProviderRef)
	cancel()
	s.observe("retrieve_refund", err)
	if err != nil {
		// ErrNotFound included: the provider named this refund itself, so an answer that it
		// does not know it is not taken as its end; the action stays pending, with the error.
		return retry(err)
	}
	if status, lastErr, ended := refundEnd(r.Status); ended {
		return settle(status, a.ProviderRef, lastErr)
	}
	s.m.actions.WithLabelValues(a.Kind, "still_pending").Inc()
	if err := s.st.acceptAction(ctx, a.ID, a.ProviderRef, max(pendingPoll, backoff(a.Attempts))); err != nil {
		return false, err
	}
	return false, nil
}

// refundUpdated records the provider's report on a refund (refund.updated).
func (s *Service) refundUpdated(ctx context.Context, r payment.Refund) error {
	a, ok, err := s.st.actionByRef(ctx, uuidOrNil(r.RefundID), r.ProviderID)
	if err != nil || !ok {
		return err
	}
	if status, lastErr, ended := refundEnd(r.Status); ended {
		return s.st.settleAction(ctx, a.ID, status, r.ProviderID, lastErr)
	}
	return nil
}

// refundEnd maps a refund's status at the provider to the action's end (status and
// last_error), or ended false while it is still pending: one mapping for the refund's
// answer, the relay's poll and the refund.updated webhook.
func refundEnd(st payment.RefundStatus) (status, lastErr string, ended bool) {
	switch st {
	case payment.RefundSucceeded:
		return "succeeded", "", true
	case payment.RefundFailed, payment.RefundCanceled:
		return "failed", "the provider reports the refund " + string(st), true
	}
	return "", "", false
}

// externalRefund records on the intent's order a refund made at the provider directly
// (charge.refunded reporting more refunded than the order knows of).
func (s *Service) externalRefund(ctx context.Context, intentID string, refundedAtProvider int64) error {
	if intentID == "" {
		return nil
	}
	return pgx.BeginFunc(ctx, s.st.pool, func(tx pgx.Tx) error {
		o, err := scanOrder(tx.QueryRow(ctx, `SELECT `+orderCols+` FROM orders WHERE payment_intent_id = $1 FOR UPDATE`, intentID))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		var known int64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(sum(amount), 0) FROM payment_actions
WHERE order_id = $1 AND kind = 'refund' AND status <> 'failed'`, o.ID).Scan(&known); err != nil {
			return err
		}
		extra := min(refundedAtProvider-known, o.Total.Amount-o.RefundedTotal.Amount)
		if extra <= 0 {
			return nil
		}
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO payment_actions (id, kind, checkout_id, order_id, payment_intent_id,
	amount, currency, reason, cause, status, provider_ref) VALUES ($1, 'refund', $2, $3, $4, $5, $6, $7, 'provider', 'succeeded', 'external')`,
			id, o.CheckoutID, o.ID, intentID, extra, o.Currency, causeReason(causeProvider)); err != nil {
			return err
		}
		var status string
		var total int64
		if err := tx.QueryRow(ctx, `UPDATE orders SET refunded_total = refunded_total + $2, updated_at = now() WHERE id = $1
RETURNING refunded_total`, o.ID, extra).Scan(&total); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `UPDATE orders SET status = `+orderStatusSQL+` WHERE id = $1 RETURNING status`, o.ID).
			Scan(&status); err != nil {
			return err
		}
		return insertOutbox(ctx, tx, TopicOrderRefunded, o.ID, refundEventPayload{OrderID: o.ID, Number: o.Number,
			RefundID: &id, Amount: extra, Currency: o.Currency, RefundedTotal: total, Status: status,
			Reason: causeReason(causeProvider), At: time.Now().UTC()})
	})
}
