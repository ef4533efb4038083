package checkout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"commerce/internal/platform/auth"
	"commerce/internal/platform/db"
	"commerce/internal/platform/money"
)

// outboxEvent is one row of the outbox.
type outboxEvent struct {
	ID          uuid.UUID
	Topic       string
	AggregateID string
	Payload     []byte
}

// orderPlacedPayload is the payload of an order.placed event. Consumers de-duplicate by
// event_id. A session owner is not named (its id is a credential).
type orderPlacedPayload struct {
	EventID    uuid.UUID       `json:"event_id"`
	Type       string          `json:"type"`
	OrderID    uuid.UUID       `json:"order_id"`
	Number     int64           `json:"number"`
	CheckoutID uuid.UUID       `json:"checkout_id"`
	OwnerType  string          `json:"owner_type"`
	CustomerID string          `json:"customer_id,omitempty"`
	Currency   string          `json:"currency"`
	Total      int64           `json:"total"`
	Lines      []eventLineJSON `json:"lines"`
	PlacedAt   time.Time       `json:"placed_at"`
}

type eventLineJSON struct {
	VariantID uuid.UUID `json:"variant_id"`
	Quantity  int64     `json:"quantity"`
}

// TopicOrderPlaced is the outbox topic of a placed order.
const TopicOrderPlaced = "order.placed"

// placeOrder writes, inside tx, the completing → completed transition of c (fenced by the
// version), the order, its lines and an order.placed outbox row, and returns the checkout
// row and the order as written (a new order has no refunds). Errors: errStale when the
// checkout is no longer completing at version-1 (nothing is written).
func (s store) placeOrder(ctx context.Context, tx db.Tx, c Checkout, version int64, orderID, eventID uuid.UUID) (Checkout, Order, error) {
	done, err := scanCheckout(tx.QueryRow(ctx, `UPDATE checkouts SET state = 'completed', version = $2, order_id = $3,
	payment_status = 'succeeded', updated_at = now()
WHERE id = $1 AND state = 'completing' AND version = $2 - 1
RETURNING `+checkoutCols, c.ID, version, orderID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkout{}, Order{}, errStale
	}
	if err != nil {
		return Checkout{}, Order{}, fmt.Errorf("complete checkout %s: %w", c.ID, err)
	}
	ids := make([]uuid.UUID, len(c.Lines))
	qty := make([]int64, len(c.Lines))
	evLines := make([]eventLineJSON, len(c.Lines))
	for i, l := range c.Lines {
		ids[i], qty[i] = l.VariantID, l.Quantity
		evLines[i] = eventLineJSON{VariantID: l.VariantID, Quantity: l.Quantity}
	}
	// The order and its lines in one statement (the lines' foreign key is checked at its
	// end, when the order row is there).
	o, err := scanOrder(tx.QueryRow(ctx, `
WITH o AS (
INSERT INTO orders (id, checkout_id, owner_type, owner_id, status, email, lines, applied_discounts, currency,
	subtotal, discount_total, total, discount_version, payment_intent_id)
VALUES ($1, $2, $3, $4, 'placed', $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING `+orderCols+`
), order_lines AS (
INSERT INTO order_lines (order_id, variant_id, quantity)
SELECT $1, v, q FROM unnest($14::uuid[], $15::bigint[]) AS t(v, q)
)
SELECT * FROM o`,
		orderID, c.ID, string(c.Owner.Type), c.Owner.ID, nullString(c.Email), toLineRows(c.Lines),
		toAppliedRows(c.Applied), c.Currency, c.Subtotal.Amount, c.DiscountTotal.Amount, c.Total.Amount,
		c.DiscountVersion, nullString(c.PaymentIntentID), ids, qty))
	if err != nil {
		return Checkout{}, Order{}, fmt.Errorf("insert order for checkout %s: %w", c.ID, err)
	}
	number, created := o.Number, o.CreatedAt
	p := orderPlacedPayload{EventID: eventID, Type: TopicOrderPlaced, OrderID: orderID, Number: number,
		CheckoutID: c.ID, OwnerType: string(c.Owner.Type), Currency: c.Currency, Total: c.Total.Amount,
		Lines: evLines, PlacedAt: created.UTC()}
	if c.Owner.Type == auth.OwnerCustomer {
		p.CustomerID = c.Owner.ID
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return Checkout{}, Order{}, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (id, topic, aggregate_id, payload) VALUES ($1, $2, $3, $4)`,
		eventID, TopicOrderPlaced, orderID.String(), payload); err != nil {
		return Checkout{}, Order{}, fmt.Errorf("insert outbox row for checkout %s: %w", c.ID, err)
	}
	return done, o, nil
}

const orderCols = `id, number, checkout_id, owner_type, owner_id, status, COALESCE(email, ''), lines,
	applied_discounts, currency, subtotal, discount_total, total, discount_version,
	COALESCE(payment_intent_id, ''), created_at, refunded_total`

func scanOrder(row pgx.Row) (Order, error) {
	var o Order
	var ownerType string
	var lines []lineRow
	var applied []appliedRow
	var sub, disc, total, refunded int64
	err := row.Scan(&o.ID, &o.Number, &o.CheckoutID, &ownerType, &o.Owner.ID, &o.Status, &o.Email, &lines,
		&applied, &o.Currency, &sub, &disc, &total, &o.DiscountVersion, &o.PaymentIntentID, &o.CreatedAt, &refunded)
	if err != nil {
		return Order{}, err
	}
	o.Owner.Type = auth.OwnerType(ownerType)
	o.Lines = fromLineRows(lines, o.Currency)
	o.Applied = fromAppliedRows(applied, o.Currency)
	o.Subtotal, o.DiscountTotal, o.Total = money.New(sub, o.Currency), money.New(disc, o.Currency), money.New(total, o.Currency)
	o.RefundedTotal = money.New(refunded, o.Currency)
	o.Refunds = []Refund{}
	o.CreatedAt = o.CreatedAt.UTC()
	return o, nil
}

// order returns the order. Errors: ErrNotFound.
func (s store) order(ctx context.Context, id uuid.UUID) (Order, error) {
	o, err := scanOrder(s.pool.QueryRow(ctx, `SELECT `+orderCols+` FROM orders WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, ErrNotFound
	}
	if err != nil {
		return Order{}, fmt.Errorf("get order %s: %w", id, err)
	}
	os := []Order{o}
	if err := s.withRefunds(ctx, nil, os); err != nil {
		return Order{}, err
	}
	return os[0], nil
}

// orderFor returns the checkout's order; found is false when there is none.
func (s store) orderFor(ctx context.Context, checkoutID uuid.UUID) (Order, bool, error) {
	o, err := scanOrder(s.pool.QueryRow(ctx, `SELECT `+orderCols+` FROM orders WHERE checkout_id = $1`, checkoutID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, false, nil
	}
	if err != nil {
		return Order{}, false, fmt.Errorf("order of checkout %s: %w", checkoutID, err)
	}
	os := []Order{o}
	if err := s.withRefunds(ctx, nil, os); err != nil {
		return Order{}, false, err
	}
	return os[0], true, nil
}

// orders returns a page of the owner's orders, newest first, and how many they have.
func (s store) orders(ctx context.Context, o Owner, limit int, offset int64) ([]Order, int64, error) {
	return s.listOrders(ctx, `WHERE owner_type = $1 AND owner_id = $2`, []any{string(o.Type), o.ID}, limit, offset)
}

// listOrders returns a page of the orders that where selects (its parameters are args,
// $1…$n), newest first, with their refunds, and how many match.
func (s store) listOrders(ctx context.Context, where string, args []any, limit int, offset int64) ([]Order, int64, error) {
	var total int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM orders `+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count orders: %w", err)
	}
	n := len(args)
	page := append(append(make([]any, 0, n+2), args...), limit, offset)
	rows, err := s.pool.Query(ctx, `SELECT `+orderCols+` FROM orders `+where+
		fmt.Sprintf(` ORDER BY created_at DESC, number DESC LIMIT $%d OFFSET $%d`, n+1, n+2), page...)
	if err != nil {
		return nil, 0, fmt.Errorf("list orders: %w", err)
	}
	out := []Order{}
	for rows.Next() {
		ord, err := scanOrder(rows)
		if err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("list orders: %w", err)
		}
		out = append(out, ord)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list orders: %w", err)
	}
	if err := s.withRefunds(ctx, nil, out); err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// relay publishes up to limit unpublished outbox rows, oldest first, and marks them
// published, in one transaction holding the rows (SKIP LOCKED: concurrent relays take
// different rows). publish runs before the commit, so a crash in between publishes again
// (at-least-once).
func (s store) relay(ctx context.Context, limit int, publish func(context.Context, []outboxEvent) error) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("outbox relay: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	rows, err := tx.Query(ctx, `SELECT id, topic, aggregate_id, payload FROM outbox WHERE published_at IS NULL
ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
	if err != nil {
		return 0, fmt.Errorf("outbox relay: %w", err)
	}
	var evs []outboxEvent
	for rows.Next() {
		var e outboxEvent
		if err := rows.Scan(&e.ID, &e.Topic, &e.AggregateID, &e.Payload); err != nil {
			rows.Close()
			return 0, fmt.Errorf("outbox relay: %w", err)
		}
		evs = append(evs, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("outbox relay: %w", err)
	}
	if len(evs) == 0 {
		return 0, nil
	}
	if err := publish(ctx, evs); err != nil {
		return 0, err
	}
	ids := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	if _, err := tx.Exec(ctx, `UPDATE outbox SET published_at = now() WHERE id = ANY($1)`, ids); err != nil {
		return 0, fmt.Errorf("outbox relay: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("outbox relay: %w", err)
	}
	return len(evs), nil
}
