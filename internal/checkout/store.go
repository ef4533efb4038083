package checkout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"commerce/internal/platform/auth"
	"commerce/internal/platform/money"
)

// Errors internal to the store.
var (
	// errStale: a conditional UPDATE matched no row (state or version moved on).
	errStale = errors.New("checkout: state changed concurrently")
	// errActiveExists: the cart already has an active checkout (partial unique index).
	errActiveExists = errors.New("checkout: the cart has an active checkout")
)

// store is checkout's PostgreSQL side, the truth. Only this file imports pgx (besides the
// Inventory interface, whose Commit hands out a pgx.Tx). Driver errors other than
// connection failures never leave it unwrapped into domain meaning.
type store struct{ pool *pgxpool.Pool }

// lineRow and appliedRow are the JSON shapes of checkouts.lines / orders.lines and of
// applied_discounts; amounts are minor units of the row's currency.
type lineRow struct {
	VariantID uuid.UUID `json:"variant_id"`
	ProductID uuid.UUID `json:"product_id"`
	SKU       string    `json:"sku"`
	Name      string    `json:"name"`
	Category  string    `json:"category"`
	Quantity  int64     `json:"quantity"`
	UnitPrice int64     `json:"unit_price"`
	LineTotal int64     `json:"line_total"`
	Discount  int64     `json:"discount"`
}

type appliedRow struct {
	ID     uuid.UUID `json:"id"`
	Name   string    `json:"name"`
	Code   string    `json:"code,omitempty"`
	Amount int64     `json:"amount"`
}

func toLineRows(ls []Line) []lineRow {
	out := make([]lineRow, len(ls))
	for i, l := range ls {
		out[i] = lineRow{VariantID: l.VariantID, ProductID: l.ProductID, SKU: l.SKU, Name: l.Name,
			Category: l.Category, Quantity: l.Quantity, UnitPrice: l.UnitPrice.Amount,
			LineTotal: l.LineTotal.Amount, Discount: l.Discount.Amount}
	}
	return out
}

func fromLineRows(rs []lineRow, cur string) []Line {
	out := make([]Line, len(rs))
	for i, r := range rs {
		out[i] = Line{VariantID: r.VariantID, ProductID: r.ProductID, SKU: r.SKU, Name: r.Name,
			Category: r.Category, Quantity: r.Quantity, UnitPrice: money.New(r.UnitPrice, cur),
			LineTotal: money.New(r.LineTotal, cur), Discount: money.New(r.Discount, cur)}
	}
	return out
}

func toAppliedRows(as []AppliedDiscount) []appliedRow {
	out := make([]appliedRow, len(as))
	for i, a := range as {
		out[i] = appliedRow{ID: a.ID, Name: a.Name, Code: a.Code, Amount: a.Amount.Amount}
	}
	return out
}

func fromAppliedRows(rs []appliedRow, cur string) []AppliedDiscount {
	out := make([]AppliedDiscount, len(rs))
	for i, r := range rs {
		out[i] = AppliedDiscount{ID: r.ID, Name: r.Name, Code: r.Code, Amount: money.New(r.Amount, cur)}
	}
	return out
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

const checkoutCols = `id, owner_type, owner_id, state, COALESCE(email, ''), lines, applied_discounts,
	COALESCE(coupon_code, ''), currency, subtotal, discount_total, total, discount_version,
	COALESCE(payment_intent_id, ''), COALESCE(payment_status, ''), order_id, version, expires_at,
	holds_expire_at, created_at, updated_at, cleaned_at, now(), COALESCE(payment_client_secret, '')`

func scanCheckout(row pgx.Row) (Checkout, error) {
	var c Checkout
	var ownerType, state, payStatus string
	var lines []lineRow
	var applied []appliedRow
	var orderID *uuid.UUID
	var holds, cleaned *time.Time
	var sub, disc, total int64
	err := row.Scan(&c.ID, &ownerType, &c.Owner.ID, &state, &c.Email, &lines, &applied, &c.Coupon,
		&c.Currency, &sub, &disc, &total, &c.DiscountVersion, &c.PaymentIntentID, &payStatus, &orderID,
		&c.Version, &c.ExpiresAt, &holds, &c.CreatedAt, &c.UpdatedAt, &cleaned, &c.dbNow, &c.ClientSecret)
	if err != nil {
		return Checkout{}, err
	}
	c.Owner.Type = auth.OwnerType(ownerType)
	c.State = State(state)
	c.PaymentStatus = PaymentStatus(payStatus)
	c.Lines = fromLineRows(lines, c.Currency)
	c.Applied = fromAppliedRows(applied, c.Currency)
	c.Subtotal, c.DiscountTotal, c.Total = money.New(sub, c.Currency), money.New(disc, c.Currency), money.New(total, c.Currency)
	if orderID != nil {
		c.OrderID = *orderID
	}
	if holds != nil {
		c.HoldsExpireAt = holds.UTC()
	}
	if cleaned != nil {
		c.CleanedAt = cleaned.UTC()
	}
	c.ExpiresAt, c.CreatedAt, c.UpdatedAt, c.dbNow = c.ExpiresAt.UTC(), c.CreatedAt.UTC(), c.UpdatedAt.UTC(), c.dbNow.UTC()
	return c, nil
}

// insert stores a new checkout in state reserving, version 1, expiring ttl from now
// (PostgreSQL clock), its holds noted as lapsing holdTTL from now (before they are taken:
// the note is never later than the truth). Errors: errActiveExists when the cart has an
// active checkout.
func (s store) insert(ctx context.Context, c Checkout, ttl, holdTTL time.Duration) (Checkout, error) {
	row := s.pool.QueryRow(ctx, `
INSERT INTO checkouts (id, cart_key, owner_type, owner_id, state, email, lines, applied_discounts,
	coupon_code, currency, subtotal, discount_total, total, discount_version, version, expires_at,
	holds_expire_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1, now() + $15 * interval '1 millisecond',
	now() + $16 * interval '1 millisecond')
RETURNING `+checkoutCols,
		c.ID, c.Owner.CartKey(), string(c.Owner.Type), c.Owner.ID, string(StateReserving), nullString(c.Email),
		toLineRows(c.Lines), toAppliedRows(c.Applied), nullString(c.Coupon), c.Currency, c.Subtotal.Amount,
		c.DiscountTotal.Amount, c.Total.Amount, c.DiscountVersion, ms(ttl), ms(holdTTL))
	out, err := scanCheckout(row)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "checkouts_active_cart_idx" {
		return Checkout{}, errActiveExists
	}
	if err != nil {
		return Checkout{}, fmt.Errorf("insert checkout: %w", err)
	}
	return out, nil
}

// get returns the checkout. Errors: ErrNotFound.
func (s store) get(ctx context.Context, id uuid.UUID) (Checkout, error) {
	c, err := scanCheckout(s.pool.QueryRow(ctx, `SELECT `+checkoutCols+` FROM checkouts WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkout{}, ErrNotFound
	}
	if err != nil {
		return Checkout{}, fmt.Errorf("get checkout %s: %w", id, err)
	}
	return c, nil
}

// active returns the cart's active checkout (reserving, awaiting_payment or completing).
func (s store) active(ctx context.Context, cartKey string) (Checkout, bool, error) {
	c, err := scanCheckout(s.pool.QueryRow(ctx, `SELECT `+checkoutCols+` FROM checkouts
WHERE cart_key = $1 AND state IN ('reserving', 'awaiting_payment', 'completing')`, cartKey))
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkout{}, false, nil
	}
	if err != nil {
		return Checkout{}, false, fmt.Errorf("active checkout: %w", err)
	}
	return c, true, nil
}

// change is what a transition writes besides state and version (nil: unchanged).
type change struct {
	paymentIntentID *string
	paymentStatus   *PaymentStatus
	holdsTTL        *time.Duration // holds_expire_at = now() + holdsTTL
	holdsLapsed     bool           // holds_expire_at = now(): the next complete re-takes them
	checkoutTTL     *time.Duration // expires_at = now() + checkoutTTL
	cleaned         bool           // cleaned_at = now()
	clientSecret    *string
}

// cas is the PostgreSQL half of a transition: from → to, version-1 → version, with ch.
// Errors: errStale when the row is not in `from` at version-1.
func (s store) cas(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, id uuid.UUID, from, to State, version int64, ch change) error {
	var holds, ttl *int64
	if ch.holdsTTL != nil {
		v := ms(*ch.holdsTTL)
		holds = &v
	}
	if ch.holdsLapsed {
		v := int64(0)
		holds = &v
	}
	if ch.checkoutTTL != nil {
		v := ms(*ch.checkoutTTL)
		ttl = &v
	}
	var pay *string
	if ch.paymentStatus != nil {
		v := string(*ch.paymentStatus)
		pay = &v
	}
	tag, err := q.Exec(ctx, `
UPDATE checkouts SET state = $3, version = $4, updated_at = now(),
	payment_intent_id = COALESCE($5, payment_intent_id),
	payment_status = COALESCE($6, payment_status),
	holds_expire_at = CASE WHEN $7::bigint IS NULL THEN holds_expire_at ELSE now() + $7 * interval '1 millisecond' END,
	expires_at = CASE WHEN $8::bigint IS NULL THEN expires_at ELSE now() + $8 * interval '1 millisecond' END,
	cleaned_at = CASE WHEN $9 THEN now() ELSE cleaned_at END,
	payment_client_secret = COALESCE($10, payment_client_secret)
WHERE id = $1 AND state = $2 AND version = $4 - 1`,
		id, string(from), string(to), version, ch.paymentIntentID, pay, holds, ttl, ch.cleaned, ch.clientSecret)
	if err != nil {
		return fmt.Errorf("checkout %s %s→%s: %w", id, from, to, err)
	}
	if tag.RowsAffected() == 0 {
		return errStale
	}
	return nil
}

// setPaymentStatus records the intent's status on a checkout in one of states.
func (s store) setPaymentStatus(ctx context.Context, id uuid.UUID, st PaymentStatus, states ...State) error {
	ss := make([]string, len(states))
	for i, v := range states {
		ss[i] = string(v)
	}
	_, err := s.pool.Exec(ctx, `UPDATE checkouts SET payment_status = $2, updated_at = now()
WHERE id = $1 AND state = ANY($3)`, id, string(st), ss)
	if err != nil {
		return fmt.Errorf("checkout %s: payment status: %w", id, err)
	}
	return nil
}

// setHoldsExpiry notes, before holds are taken again for a completing checkout, that they
// lapse holdTTL from now.
func (s store) setHoldsExpiry(ctx context.Context, id uuid.UUID, holdTTL time.Duration) error {
	_, err := s.pool.Exec(ctx, `UPDATE checkouts SET holds_expire_at = now() + $2 * interval '1 millisecond'
WHERE id = $1 AND state = 'completing'`, id, ms(holdTTL))
	if err != nil {
		return fmt.Errorf("checkout %s: holds expiry: %w", id, err)
	}
	return nil
}

// markCleaned records that the side effects of the checkout's final state are done.
func (s store) markCleaned(ctx context.Context, id uuid.UUID) error {
	_, err := s.pool.Exec(ctx, `UPDATE checkouts SET cleaned_at = now() WHERE id = $1 AND cleaned_at IS NULL
AND state IN ('completed', 'cancelled', 'expired')`, id)
	if err != nil {
		return fmt.Errorf("checkout %s: mark cleaned: %w", id, err)
	}
	return nil
}

func (s store) list(ctx context.Context, sql string, args ...any) ([]Checkout, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+checkoutCols+` FROM checkouts `+sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list checkouts: %w", err)
	}
	defer rows.Close()
	var out []Checkout
	for rows.Next() {
		c, err := scanCheckout(rows)
		if err != nil {
			return nil, fmt.Errorf("list checkouts: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list checkouts: %w", err)
	}
	return out, nil
}

// due returns up to limit checkouts in reserving or awaiting_payment past their expiry.
func (s store) due(ctx context.Context, limit int) ([]Checkout, error) {
	return s.list(ctx, `WHERE state IN ('reserving', 'awaiting_payment') AND expires_at <= now()
ORDER BY expires_at LIMIT $1`, limit)
}

// stuck returns up to limit checkouts in reserving or completing untouched for olderThan.
func (s store) stuck(ctx context.Context, olderThan time.Duration, limit int) ([]Checkout, error) {
	return s.list(ctx, `WHERE state IN ('reserving', 'completing')
AND updated_at <= now() - $1 * interval '1 millisecond' ORDER BY updated_at LIMIT $2`, ms(olderThan), limit)
}

// uncleaned returns up to limit final checkouts whose side effects are not recorded as
// done, untouched for olderThan.
func (s store) uncleaned(ctx context.Context, olderThan time.Duration, limit int) ([]Checkout, error) {
	return s.list(ctx, `WHERE cleaned_at IS NULL AND state IN ('completed', 'cancelled', 'expired')
AND updated_at <= now() - $1 * interval '1 millisecond' ORDER BY updated_at LIMIT $2`, ms(olderThan), limit)
}

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
// version), the order, its lines and an order.placed outbox row. Errors: errStale when the
// checkout is no longer completing at version-1 (nothing is written).
func (s store) placeOrder(ctx context.Context, tx pgx.Tx, c Checkout, version int64, orderID, eventID uuid.UUID) error {
	tag, err := tx.Exec(ctx, `UPDATE checkouts SET state = 'completed', version = $2, order_id = $3,
	payment_status = 'succeeded', updated_at = now()
WHERE id = $1 AND state = 'completing' AND version = $2 - 1`, c.ID, version, orderID)
	if err != nil {
		return fmt.Errorf("complete checkout %s: %w", c.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return errStale
	}
	var number int64
	var created time.Time
	err = tx.QueryRow(ctx, `
INSERT INTO orders (id, checkout_id, owner_type, owner_id, status, email, lines, applied_discounts, currency,
	subtotal, discount_total, total, discount_version, payment_intent_id)
VALUES ($1, $2, $3, $4, 'placed', $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING number, created_at`,
		orderID, c.ID, string(c.Owner.Type), c.Owner.ID, nullString(c.Email), toLineRows(c.Lines),
		toAppliedRows(c.Applied), c.Currency, c.Subtotal.Amount, c.DiscountTotal.Amount, c.Total.Amount,
		c.DiscountVersion, nullString(c.PaymentIntentID)).Scan(&number, &created)
	if err != nil {
		return fmt.Errorf("insert order for checkout %s: %w", c.ID, err)
	}
	ids := make([]uuid.UUID, len(c.Lines))
	qty := make([]int64, len(c.Lines))
	evLines := make([]eventLineJSON, len(c.Lines))
	for i, l := range c.Lines {
		ids[i], qty[i] = l.VariantID, l.Quantity
		evLines[i] = eventLineJSON{VariantID: l.VariantID, Quantity: l.Quantity}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO order_lines (order_id, variant_id, quantity)
SELECT $1, v, q FROM unnest($2::uuid[], $3::bigint[]) AS t(v, q)`, orderID, ids, qty); err != nil {
		return fmt.Errorf("insert order lines for checkout %s: %w", c.ID, err)
	}
	p := orderPlacedPayload{EventID: eventID, Type: TopicOrderPlaced, OrderID: orderID, Number: number,
		CheckoutID: c.ID, OwnerType: string(c.Owner.Type), Currency: c.Currency, Total: c.Total.Amount,
		Lines: evLines, PlacedAt: created.UTC()}
	if c.Owner.Type == auth.OwnerCustomer {
		p.CustomerID = c.Owner.ID
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (id, topic, aggregate_id, payload) VALUES ($1, $2, $3, $4)`,
		eventID, TopicOrderPlaced, orderID.String(), payload); err != nil {
		return fmt.Errorf("insert outbox row for checkout %s: %w", c.ID, err)
	}
	return nil
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
	var total int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM orders WHERE owner_type = $1 AND owner_id = $2`,
		string(o.Type), o.ID).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count orders: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+orderCols+` FROM orders WHERE owner_type = $1 AND owner_id = $2
ORDER BY created_at DESC, number DESC LIMIT $3 OFFSET $4`, string(o.Type), o.ID, limit, offset)
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
