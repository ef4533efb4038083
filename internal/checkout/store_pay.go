package checkout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"commerce/internal/platform/money"
)

// action is a row of payment_actions: a refund or void decided in PostgreSQL and carried
// out at the provider by the relay.
type action struct {
	ID          uuid.UUID
	Kind        string // refund, void
	CheckoutID  uuid.UUID
	OrderID     uuid.UUID // uuid.Nil for a checkout's own action
	IntentID    string
	Amount      money.Money
	Reason      string
	Cause       string
	Status      string // pending, succeeded, failed
	Flagged     bool
	ProviderRef string
	Attempts    int
	LastError   string
	CreatedAt   time.Time
}

const actionCols = `id, kind, checkout_id, order_id, payment_intent_id, amount, currency, reason, cause, status,
	flagged, COALESCE(provider_ref, ''), attempts, COALESCE(last_error, ''), created_at`

func scanAction(row pgx.Row) (action, error) {
	var a action
	var orderID *uuid.UUID
	var amount int64
	var cur string
	err := row.Scan(&a.ID, &a.Kind, &a.CheckoutID, &orderID, &a.IntentID, &amount, &cur, &a.Reason, &a.Cause,
		&a.Status, &a.Flagged, &a.ProviderRef, &a.Attempts, &a.LastError, &a.CreatedAt)
	if err != nil {
		return action{}, err
	}
	if orderID != nil {
		a.OrderID = *orderID
	}
	a.Amount = money.New(amount, cur)
	a.CreatedAt = a.CreatedAt.UTC()
	return a, nil
}

// Causes of a payment action.
const (
	causeOperator       = "operator"        // POST /admin/orders/{id}/refund
	causeOrderCancelled = "order_cancelled" // POST /admin/orders/{id}/cancel
	causeCheckoutEnded  = "checkout_ended"  // a checkout with an intent was cancelled or expired
	causeStockGone      = "stock_gone"      // a paid checkout whose stock could not be taken again
	causeAmountMismatch = "amount_mismatch" // the intent charged another amount than the checkout
	causeProvider       = "provider"        // a refund made at the provider, reported by webhook
)

func causeReason(cause string) string {
	switch cause {
	case causeStockGone:
		return "paid checkout whose stock could not be held again"
	case causeAmountMismatch:
		return "payment amount or currency differed from the checkout total"
	case causeProvider:
		return "refunded at the payment provider"
	}
	return "checkout ended without an order"
}

// casWithAction is the PostgreSQL half of ending checkout c (from → to at version) and,
// in the same transaction, the decision to void its intent (refunded instead if it took
// money). At most one such action per checkout (a unique index).
func (s store) casWithAction(ctx context.Context, c Checkout, from, to State, version int64, ch change, cause string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.cas(ctx, tx, c.ID, from, to, version, ch); err != nil {
			return err
		}
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO payment_actions (id, kind, checkout_id, payment_intent_id, amount, currency,
	reason, cause, status, flagged)
VALUES ($1, 'void', $2, $3, $4, $5, $6, $7, 'pending', $8)
ON CONFLICT (checkout_id) WHERE order_id IS NULL DO NOTHING`,
			id, c.ID, c.PaymentIntentID, c.Total.Amount, c.Currency, causeReason(cause), cause, cause == causeAmountMismatch)
		if err != nil {
			return fmt.Errorf("checkout %s: decide void: %w", c.ID, err)
		}
		return nil
	})
}

// byIntent returns the checkout of a payment intent.
func (s store) byIntent(ctx context.Context, intentID string) (Checkout, bool, error) {
	c, err := scanCheckout(s.pool.QueryRow(ctx, `SELECT `+checkoutCols+` FROM checkouts WHERE payment_intent_id = $1
ORDER BY created_at DESC LIMIT 1`, intentID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkout{}, false, nil
	}
	if err != nil {
		return Checkout{}, false, fmt.Errorf("checkout of intent: %w", err)
	}
	return c, true, nil
}

// eventSeen reports whether a provider event id was applied before.
func (s store) eventSeen(ctx context.Context, id string) (bool, error) {
	var one int
	err := s.pool.QueryRow(ctx, `SELECT 1 FROM payment_events WHERE id = $1`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("payment event %s: %w", id, err)
	}
	return true, nil
}

// recordEvent records an applied event id; applied is false when another delivery of it
// was recorded first (its effect is idempotent, so both applying is harmless).
func (s store) recordEvent(ctx context.Context, ev PaymentEvent) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO payment_events (id, type, payment_intent_id) VALUES ($1, $2, $3)
ON CONFLICT (id) DO NOTHING`, ev.ID, string(ev.Type), ev.IntentID)
	if err != nil {
		return false, fmt.Errorf("payment event %s: %w", ev.ID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// paymentFailed marks a not yet paid awaiting_payment checkout's payment failed.
func (s store) paymentFailed(ctx context.Context, intentID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE checkouts SET payment_status = 'failed', updated_at = now()
WHERE payment_intent_id = $1 AND state = 'awaiting_payment' AND payment_status IS DISTINCT FROM 'succeeded'`, intentID)
	if err != nil {
		return fmt.Errorf("payment failed event: %w", err)
	}
	return nil
}

// withRefunds fills in the refunds of the orders.
func (s store) withRefunds(ctx context.Context, q pgx.Tx, os []Order) error {
	if len(os) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(os))
	idx := make(map[uuid.UUID]int, len(os))
	for i, o := range os {
		ids[i] = o.ID
		idx[o.ID] = i
	}
	const sql = `SELECT order_id, id, amount, currency, status, reason, created_at FROM payment_actions
WHERE order_id = ANY($1) AND kind = 'refund' ORDER BY created_at, id`
	var rows pgx.Rows
	var err error
	if q != nil {
		rows, err = q.Query(ctx, sql, ids)
	} else {
		rows, err = s.pool.Query(ctx, sql, ids)
	}
	if err != nil {
		return fmt.Errorf("order refunds: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var oid uuid.UUID
		var r Refund
		var amount int64
		var cur string
		if err := rows.Scan(&oid, &r.ID, &amount, &cur, &r.Status, &r.Reason, &r.CreatedAt); err != nil {
			return fmt.Errorf("order refunds: %w", err)
		}
		r.Amount, r.CreatedAt = money.New(amount, cur), r.CreatedAt.UTC()
		if i, ok := idx[oid]; ok {
			os[i].Refunds = append(os[i].Refunds, r)
		}
	}
	return rows.Err()
}

// OrderFilter selects orders for the operator's listing.
type OrderFilter struct {
	Status     string // "" for every status
	CustomerID string // "" for every owner
}

// adminOrders returns a page of orders, newest first, and how many match.
func (s store) adminOrders(ctx context.Context, f OrderFilter, limit int, offset int64) ([]Order, int64, error) {
	return s.listOrders(ctx, `WHERE ($1 = '' OR status = $1) AND ($2 = '' OR (owner_type = 'customer' AND owner_id = $2))`,
		[]any{f.Status, f.CustomerID}, limit, offset)
}

// flagged returns the flagged payment actions, newest first.
func (s store) flagged(ctx context.Context, limit int) ([]action, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+actionCols+` FROM payment_actions WHERE flagged
ORDER BY created_at DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("flagged payments: %w", err)
	}
	defer rows.Close()
	out := []action{}
	for rows.Next() {
		a, err := scanAction(rows)
		if err != nil {
			return nil, fmt.Errorf("flagged payments: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// claimAction leases a pending action the provider has not confirmed (id: that one, if
// the provider has not accepted it yet; uuid.Nil: the most overdue one, an accepted
// refund whose next poll is due included) for lease: a relay that dies mid-call leaves it
// to be retried after the lease. ok is false when there is none.
func (s store) claimAction(ctx context.Context, id uuid.UUID, lease time.Duration) (action, bool, error) {
	a, err := scanAction(s.pool.QueryRow(ctx, `
UPDATE payment_actions SET attempts = attempts + 1, updated_at = now(),
	next_attempt_at = now() + $2 * interval '1 millisecond'
WHERE id = (SELECT id FROM payment_actions
	WHERE status = 'pending'
		AND ((id = $1 AND provider_ref IS NULL)
			OR ($1 = '00000000-0000-0000-0000-000000000000'::uuid AND next_attempt_at <= now()))
	ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING `+actionCols, id, ms(lease)))
	if errors.Is(err, pgx.ErrNoRows) {
		return action{}, false, nil
	}
	if err != nil {
		return action{}, false, fmt.Errorf("claim payment action: %w", err)
	}
	return a, true, nil
}

// retryAction records a failed attempt; the action is tried again after backoff.
func (s store) retryAction(ctx context.Context, id uuid.UUID, cause error, backoff time.Duration) error {
	msg := cause.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	_, err := s.pool.Exec(ctx, `UPDATE payment_actions SET last_error = $2, updated_at = now(),
	next_attempt_at = now() + $3 * interval '1 millisecond' WHERE id = $1 AND status = 'pending'`, id, msg, ms(backoff))
	if err != nil {
		return fmt.Errorf("payment action %s: %w", id, err)
	}
	return nil
}

// toRefund turns a void into a refund of amount (the intent took the money after all).
func (s store) toRefund(ctx context.Context, id uuid.UUID, amount int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE payment_actions SET kind = 'refund', amount = $2, updated_at = now()
WHERE id = $1 AND kind = 'void' AND status = 'pending'`, id, amount)
	if err != nil {
		return fmt.Errorf("payment action %s: %w", id, err)
	}
	return nil
}

// orderStatusSQL recomputes an order's status from its refunded total.
const orderStatusSQL = `CASE WHEN status = 'cancelled' THEN 'cancelled' WHEN refunded_total = 0 THEN 'placed'
	WHEN refunded_total >= total THEN 'refunded' ELSE 'partially_refunded' END`

// settleAction records the provider's answer on the action: status succeeded or failed,
// or pending with providerRef (accepted, the provider reports the end by webhook). A
// failed refund of an order gives its amount back to what can be refunded.
func (s store) settleAction(ctx context.Context, id uuid.UUID, status, providerRef, lastError string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var prev string
		var orderID *uuid.UUID
		var amount int64
		err := tx.QueryRow(ctx, `SELECT status, order_id, amount FROM payment_actions WHERE id = $1 FOR UPDATE`, id).
			Scan(&prev, &orderID, &amount)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if prev != "pending" {
			return nil // settled before (a webhook and the relay both reported it)
		}
		if _, err := tx.Exec(ctx, `UPDATE payment_actions SET status = $2, provider_ref = COALESCE(NULLIF($3, ''), provider_ref),
	last_error = NULLIF($4, ''), updated_at = now() WHERE id = $1`, id, status, providerRef, lastError); err != nil {
			return err
		}
		if status == "failed" && orderID != nil && amount > 0 {
			if _, err := tx.Exec(ctx, `UPDATE orders SET refunded_total = refunded_total - $2, updated_at = now()
WHERE id = $1`, *orderID, amount); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE orders SET status = `+orderStatusSQL+` WHERE id = $1`, *orderID); err != nil {
				return err
			}
		}
		return nil
	})
}

// actionByRef finds the action of a provider refund: by the service's refund id, else by
// the provider's id.
func (s store) actionByRef(ctx context.Context, refundID uuid.UUID, providerRef string) (action, bool, error) {
	a, err := scanAction(s.pool.QueryRow(ctx, `SELECT `+actionCols+` FROM payment_actions
WHERE id = $1 OR (provider_ref = $2 AND $2 <> '') LIMIT 1`, refundID, providerRef))
	if errors.Is(err, pgx.ErrNoRows) {
		return action{}, false, nil
	}
	if err != nil {
		return action{}, false, fmt.Errorf("payment action by ref: %w", err)
	}
	return a, true, nil
}

// refundEventPayload is the payload of order.refunded and order.cancelled events.
type refundEventPayload struct {
	EventID       uuid.UUID       `json:"event_id"`
	Type          string          `json:"type"`
	OrderID       uuid.UUID       `json:"order_id"`
	Number        int64           `json:"number"`
	RefundID      *uuid.UUID      `json:"refund_id"`
	Amount        int64           `json:"amount"`
	Currency      string          `json:"currency"`
	RefundedTotal int64           `json:"refunded_total"`
	Status        string          `json:"status"`
	Reason        string          `json:"reason"`
	Restocked     []eventLineJSON `json:"restocked"`
	At            time.Time       `json:"at"`
}

// Outbox topics of refunds and cancellations.
const (
	TopicOrderRefunded  = "order.refunded"
	TopicOrderCancelled = "order.cancelled"
)

func insertOutbox(ctx context.Context, tx pgx.Tx, topic string, orderID uuid.UUID, p refundEventPayload) error {
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	p.EventID, p.Type = id, topic
	if p.Restocked == nil {
		p.Restocked = []eventLineJSON{}
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (id, topic, aggregate_id, payload) VALUES ($1, $2, $3, $4)`,
		id, topic, orderID.String(), payload); err != nil {
		return fmt.Errorf("outbox %s: %w", topic, err)
	}
	return nil
}

// acceptAction records that the provider accepted the action (providerRef) without
// settling it yet: the relay stops asking for it, and asks how it ended after poll
// instead (the provider's webhook may report the end first).
func (s store) acceptAction(ctx context.Context, id uuid.UUID, providerRef string, poll time.Duration) error {
	_, err := s.pool.Exec(ctx, `UPDATE payment_actions SET provider_ref = $2, last_error = NULL, updated_at = now(),
	next_attempt_at = now() + $3 * interval '1 millisecond'
WHERE id = $1 AND status = 'pending'`, id, providerRef, ms(poll))
	if err != nil {
		return fmt.Errorf("payment action %s: %w", id, err)
	}
	return nil
}
