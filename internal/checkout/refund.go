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
