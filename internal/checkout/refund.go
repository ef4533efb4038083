package checkout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"commerce/internal/payment"
	"commerce/internal/platform/money"
)

// Refunds and cancellations. A refund (by an operator, by an order's cancellation, or
// automatic: a checkout that ended with an intent, whose payment is voided, or refunded
// when it took money) is decided in a PostgreSQL transaction that records it as a
// pending payment action, next to what it changes (the order's refunded total and
// status, restocked lines with their inventory rows, an outbox event). The provider is
// called afterwards, by the deciding request once and by the payment relay until the
// provider confirms. The action's id is the provider's idempotency key, so a crash
// between the decision and the call loses nothing (the relay finds the pending action)
// and a repeated call refunds nothing twice.

// Points of a refund where a test hook runs.
const (
	hookRefundDecided = "refund_decided" // decision committed, provider not called
	hookRefundCalled  = "refund_called"  // provider answered, answer not recorded
)

// ValidationError lists invalid request fields (422 validation_failed); nothing changed.
type ValidationError struct{ Fields map[string]string }

func (e *ValidationError) Error() string {
	return fmt.Sprintf("checkout: invalid request: %v", e.Fields)
}

func invalid(field, msg string) error { return &ValidationError{Fields: map[string]string{field: msg}} }

// RefundRequest asks for a refund of an order. Amount nil refunds all that remains;
// Restock puts units of ordered lines back in stock (at most what was ordered and not
// restocked yet).
type RefundRequest struct {
	Amount  *money.Money
	Reason  string
	Restock []StockLine
}

// MaxReason is the longest refund or cancellation reason (characters).
const MaxReason = 200

func validReason(r string) bool {
	n := utf8.RuneCountInString(r)
	return n >= 1 && n <= MaxReason && utf8.ValidString(r)
}

// RefundOrder refunds (part of) an order and restocks what the request names, exactly
// once per call; it returns the order. Errors: ErrNotFound; *ValidationError (more than
// remains, a restock above what is left to restock, a bad reason); ErrConflict (the order
// is cancelled); dependency failures.
func (s *Service) RefundOrder(ctx context.Context, orderID uuid.UUID, req RefundRequest) (Order, error) {
	if !validReason(req.Reason) {
		return Order{}, invalid("reason", "must be 1-200 characters")
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	return s.decide(ctx, orderID, decision{amount: req.Amount, reason: req.Reason, restock: req.Restock,
		cause: causeOperator})
}

// CancelOrder cancels an order in full: what remains of its payment is refunded and every
// line not restocked yet goes back in stock. Cancelling a cancelled order returns it
// unchanged. Errors: ErrNotFound; *ValidationError (bad reason); dependency failures.
func (s *Service) CancelOrder(ctx context.Context, orderID uuid.UUID, reason string) (Order, error) {
	if !validReason(reason) {
		return Order{}, invalid("reason", "must be 1-200 characters")
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	return s.decide(ctx, orderID, decision{reason: reason, cancel: true, cause: causeOrderCancelled})
}

type decision struct {
	amount  *money.Money
	reason  string
	restock []StockLine
	cancel  bool
	cause   string
}

type restocked struct {
	variant uuid.UUID
	qty     int64
	version int64
}

func (s *Service) decide(ctx context.Context, orderID uuid.UUID, d decision) (Order, error) {
	var actionID uuid.UUID
	var done []restocked
	unchanged := false
	err := pgx.BeginFunc(ctx, s.st.pool, func(tx pgx.Tx) error {
		actionID, done, unchanged = uuid.Nil, nil, false
		o, err := scanOrder(tx.QueryRow(ctx, `SELECT `+orderCols+` FROM orders WHERE id = $1 FOR UPDATE`, orderID))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("order %s: %w", orderID, err)
		}
		if o.Status == OrderCancelled {
			if d.cancel {
				unchanged = true
				return nil
			}
			return fmt.Errorf("%w: the order is cancelled", ErrConflict)
		}
		remaining := o.Total.Amount - o.RefundedTotal.Amount
		amount := remaining
		if d.amount != nil {
			if d.amount.Currency != o.Currency {
				return invalid("amount.currency", "must be the order's currency "+o.Currency)
			}
			if d.amount.Amount < 0 {
				return invalid("amount.amount", "must not be negative")
			}
			if d.amount.Amount > remaining {
				return invalid("amount.amount", fmt.Sprintf("at most %d remains to be refunded", remaining))
			}
			amount = d.amount.Amount
		}
		lines, err := orderLines(ctx, tx, orderID)
		if err != nil {
			return err
		}
		restock := map[uuid.UUID]int64{}
		if d.cancel {
			for _, l := range lines {
				if left := l.qty - l.restocked; left > 0 {
					restock[l.variant] = left
				}
			}
		} else {
			byVariant := map[uuid.UUID]orderLine{}
			for _, l := range lines {
				byVariant[l.variant] = l
			}
			for i, r := range d.restock {
				l, ok := byVariant[r.VariantID]
				switch {
				case !ok:
					return invalid(fmt.Sprintf("restock[%d].variant_id", i), "is not a line of the order")
				case r.Quantity < 1:
					return invalid(fmt.Sprintf("restock[%d].quantity", i), "must be at least 1")
				case restock[r.VariantID]+r.Quantity > l.qty-l.restocked:
					return invalid(fmt.Sprintf("restock[%d].quantity", i),
						fmt.Sprintf("at most %d of this line can still be restocked", l.qty-l.restocked))
				}
				restock[r.VariantID] += r.Quantity
			}
			if amount == 0 && len(restock) == 0 {
				return invalid("amount.amount", "nothing to refund: the order is refunded in full")
			}
		}
		if amount > 0 {
			if actionID, err = uuid.NewV7(); err != nil {
				return err
			}
			if o.PaymentIntentID == "" {
				return fmt.Errorf("order %s has no payment intent to refund", orderID)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO payment_actions (id, kind, checkout_id, order_id, payment_intent_id,
	amount, currency, reason, cause, status) VALUES ($1, 'refund', $2, $3, $4, $5, $6, $7, $8, 'pending')`,
				actionID, o.CheckoutID, orderID, o.PaymentIntentID, amount, o.Currency, d.reason, d.cause); err != nil {
				return fmt.Errorf("order %s: decide refund: %w", orderID, err)
			}
		}
		var status string
		var refundedTotal int64
		if err := tx.QueryRow(ctx, `UPDATE orders SET refunded_total = refunded_total + $2, updated_at = now(),
	status = CASE WHEN $3 THEN 'cancelled' ELSE status END,
	cancel_reason = CASE WHEN $3 THEN $4 ELSE cancel_reason END
WHERE id = $1 RETURNING refunded_total`, orderID, amount, d.cancel, d.reason).Scan(&refundedTotal); err != nil {
			return fmt.Errorf("order %s: refunded total: %w", orderID, err)
		}
		if err := tx.QueryRow(ctx, `UPDATE orders SET status = `+orderStatusSQL+` WHERE id = $1 RETURNING status`,
			orderID).Scan(&status); err != nil {
			return fmt.Errorf("order %s: status: %w", orderID, err)
		}
		ids := make([]uuid.UUID, 0, len(restock))
		for v := range restock {
			ids = append(ids, v)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() }) // lock order
		ev := refundEventPayload{OrderID: orderID, Number: o.Number, Amount: amount, Currency: o.Currency,
			RefundedTotal: refundedTotal, Status: status, Reason: d.reason, At: time.Now().UTC()}
		if actionID != uuid.Nil {
			id := actionID
			ev.RefundID = &id
		}
		why := "order refund"
		if d.cancel {
			why = "order cancelled"
		}
		for _, v := range ids {
			q := restock[v]
			if _, err := tx.Exec(ctx, `UPDATE order_lines SET restocked = restocked + $3 WHERE order_id = $1 AND variant_id = $2`,
				orderID, v, q); err != nil {
				return fmt.Errorf("order %s: restocked: %w", orderID, err)
			}
			ver, err := s.inv.RestockInTx(ctx, tx, v, q, why, fmt.Sprintf("order %d", o.Number))
			if err != nil {
				return fmt.Errorf("order %s: restock %s: %w", orderID, v, err)
			}
			done = append(done, restocked{variant: v, qty: q, version: ver})
			ev.Restocked = append(ev.Restocked, eventLineJSON{VariantID: v, Quantity: q})
		}
		topic := TopicOrderRefunded
		if d.cancel {
			topic = TopicOrderCancelled
		}
		return insertOutbox(ctx, tx, topic, orderID, ev)
	})
	if err != nil {
		return Order{}, unavailableUnlessDomain(err)
	}
	if unchanged {
		return s.st.order(ctx, orderID)
	}
	s.at(hookRefundDecided)
	for _, r := range done {
		if err := s.inv.RaiseCounter(ctx, r.variant, r.qty, r.version); err != nil {
			// The counter stays low (the safe direction) until the next reconcile.
			s.log.Warn("checkout: restock counter", slog.String("order", orderID.String()),
				slog.String("error", err.Error()))
		}
	}
	if actionID != uuid.Nil {
		if _, err := s.runAction(ctx, actionID); err != nil {
			s.log.Warn("checkout: refund not confirmed yet; the payment relay retries it",
				slog.String("order", orderID.String()), slog.String("refund", actionID.String()),
				slog.String("error", err.Error()))
		}
	}
	return s.st.order(ctx, orderID)
}

func unavailableUnlessDomain(err error) error {
	var ve *ValidationError
	if errors.As(err, &ve) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		return err
	}
	return unavailable(err)
}

type orderLine struct {
	variant        uuid.UUID
	qty, restocked int64
}

func orderLines(ctx context.Context, tx pgx.Tx, orderID uuid.UUID) ([]orderLine, error) {
	rows, err := tx.Query(ctx, `SELECT variant_id, quantity, restocked FROM order_lines WHERE order_id = $1
ORDER BY variant_id FOR UPDATE`, orderID)
	if err != nil {
		return nil, fmt.Errorf("order lines: %w", err)
	}
	defer rows.Close()
	var out []orderLine
	for rows.Next() {
		var l orderLine
		if err := rows.Scan(&l.variant, &l.qty, &l.restocked); err != nil {
			return nil, fmt.Errorf("order lines: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// ------------------------------------------------------------------- payment relay

// actionLease: a relay that claimed an action and died leaves it for this long.
const actionLease = time.Minute

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
	pctx, cancel := providerCtx(ctx)
	r, err := s.pay.Refund(pctx, payment.RefundParams{ID: a.ID, IntentID: a.IntentID, Amount: a.Amount, Reason: a.Reason})
	cancel()
	s.observe("refund", err)
	switch {
	case err == nil:
		switch r.Status {
		case payment.RefundSucceeded:
			return settle("succeeded", r.ProviderID, "")
		case payment.RefundFailed, payment.RefundCanceled:
			return settle("failed", r.ProviderID, "the provider reports the refund "+string(r.Status))
		default:
			// Accepted; refund.updated reports the end. The relay stops calling.
			s.at(hookRefundCalled)
			if err := s.st.acceptAction(ctx, a.ID, r.ProviderID); err != nil {
				return false, err
			}
			s.m.actions.WithLabelValues(a.Kind, "accepted").Inc()
			return true, nil
		}
	case errors.Is(err, payment.ErrInvalid), errors.Is(err, payment.ErrNotFound):
		return settle("failed", "", err.Error())
	default:
		return retry(err)
	}
}

// refundUpdated records the provider's report on a refund (refund.updated).
func (s *Service) refundUpdated(ctx context.Context, r payment.Refund) error {
	a, ok, err := s.st.actionByRef(ctx, uuidOrNil(r.RefundID), r.ProviderID)
	if err != nil || !ok {
		return err
	}
	switch r.Status {
	case payment.RefundSucceeded:
		return s.st.settleAction(ctx, a.ID, "succeeded", r.ProviderID, "")
	case payment.RefundFailed, payment.RefundCanceled:
		return s.st.settleAction(ctx, a.ID, "failed", r.ProviderID, "the provider reports the refund "+string(r.Status))
	}
	return nil
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

// ------------------------------------------------------------------ operator reads

// AdminOrders returns a page (from 1) of every order matching f, newest first, and how
// many match.
func (s *Service) AdminOrders(ctx context.Context, f OrderFilter, page, perPage int) ([]Order, int64, error) {
	if page < 1 || perPage < 1 {
		return nil, 0, fmt.Errorf("checkout: bad page")
	}
	return s.st.adminOrders(ctx, f, perPage, (int64(page)-1)*int64(perPage))
}

// AdminOrder returns any order. Errors: ErrNotFound.
func (s *Service) AdminOrder(ctx context.Context, id uuid.UUID) (Order, error) {
	return s.st.order(ctx, id)
}

// FlaggedPayment is a payment an operator must look at: an intent whose amount or
// currency differed from its checkout's total (no order was placed; it is refunded).
type FlaggedPayment struct {
	ID         uuid.UUID
	CheckoutID uuid.UUID
	IntentID   string
	Kind       string
	Amount     money.Money
	Status     string
	Reason     string
	LastError  string
	CreatedAt  time.Time
}

// FlaggedPayments returns the newest flagged payments (at most limit).
func (s *Service) FlaggedPayments(ctx context.Context, limit int) ([]FlaggedPayment, error) {
	as, err := s.st.flagged(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]FlaggedPayment, len(as))
	for i, a := range as {
		out[i] = FlaggedPayment{ID: a.ID, CheckoutID: a.CheckoutID, IntentID: a.IntentID, Kind: a.Kind, Amount: a.Amount,
			Status: a.Status, Reason: a.Reason, LastError: a.LastError, CreatedAt: a.CreatedAt}
	}
	return out, nil
}
