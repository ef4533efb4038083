package checkout

import (
	"context"
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

// store is checkout's PostgreSQL side, the truth. Only the store files (store*.go) and
// the refund transactions (refund.go, payrelay.go) use pgx; the Inventory interface
// hands out a db.Tx. Driver errors other than connection failures never leave it
// unwrapped into domain meaning.
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

// insert stores a new checkout in c.State (reserving when unset) at version 1, expiring
// ttl from now (PostgreSQL clock), with c's payment intent, its holds noted as lapsing
// holdTTL from now (the caller passes what is left of them, so the note is never later
// than the truth), and answers with the stored row. Errors: errActiveExists when the cart
// has an active checkout.
func (s store) insert(ctx context.Context, c Checkout, ttl, holdTTL time.Duration) (Checkout, error) {
	state := c.State
	if state == "" {
		state = StateReserving
	}
	row := s.pool.QueryRow(ctx, `
INSERT INTO checkouts (id, cart_key, owner_type, owner_id, state, email, lines, applied_discounts,
	coupon_code, currency, subtotal, discount_total, total, discount_version, version, expires_at,
	holds_expire_at, payment_intent_id, payment_status, payment_client_secret)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1, now() + $15 * interval '1 millisecond',
	now() + $16 * interval '1 millisecond', $17, $18, $19)
RETURNING `+checkoutCols,
		c.ID, c.Owner.CartKey(), string(c.Owner.Type), c.Owner.ID, string(state), nullString(c.Email),
		toLineRows(c.Lines), toAppliedRows(c.Applied), nullString(c.Coupon), c.Currency, c.Subtotal.Amount,
		c.DiscountTotal.Amount, c.Total.Amount, c.DiscountVersion, ms(ttl), ms(holdTTL),
		nullString(c.PaymentIntentID), nullString(string(c.PaymentStatus)), nullString(c.ClientSecret))
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

// markCleaned records that the side effects of the checkouts' final states are done.
func (s store) markCleaned(ctx context.Context, ids []uuid.UUID) error {
	_, err := s.pool.Exec(ctx, `UPDATE checkouts SET cleaned_at = now() WHERE id = ANY($1) AND cleaned_at IS NULL
AND state IN ('completed', 'cancelled', 'expired')`, ids)
	if err != nil {
		return fmt.Errorf("mark %d checkouts cleaned: %w", len(ids), err)
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
