package cart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// store is the PostgreSQL side: customer-cart snapshots and preferences. Every upsert
// keeps the newer version (updated_at, the Redis ms version), so batches written out of
// order, by several replicas, never move a record back in time.
type store struct{ pool *pgxpool.Pool }

// cartSnapshot is the durable part of a customer cart (the checkout lock is not).
type cartSnapshot struct {
	Lines  []Line
	Coupon string
}

// snapshotLine is one element of customer_carts.lines: a JSON array, so the lines come
// back in the order the shopper added them.
type snapshotLine struct {
	VariantID uuid.UUID `json:"variant_id"`
	Quantity  int64     `json:"quantity"`
}

func (s store) saveCarts(ctx context.Context, items []wbItem[cartSnapshot]) error {
	b := &pgx.Batch{}
	for _, it := range items {
		lines := make([]snapshotLine, len(it.value.Lines))
		for i, l := range it.value.Lines {
			lines[i] = snapshotLine{VariantID: l.VariantID, Quantity: l.Quantity}
		}
		js, err := json.Marshal(lines)
		if err != nil {
			return encodeError{err}
		}
		var coupon *string
		if it.value.Coupon != "" {
			coupon = &it.value.Coupon
		}
		b.Queue(`INSERT INTO customer_carts (customer_id, lines, coupon_code, updated_at)
			VALUES ($1, $2, $3, $4)
			ON CONFLICT (customer_id) DO UPDATE
			SET lines = EXCLUDED.lines, coupon_code = EXCLUDED.coupon_code, updated_at = EXCLUDED.updated_at
			WHERE customer_carts.updated_at <= EXCLUDED.updated_at`,
			it.key, js, coupon, time.UnixMilli(it.version).UTC())
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("save cart snapshots: %w", err)
	}
	return nil
}

// loadCart returns the snapshot of customer's cart and its version (ms); found is false
// when there is none.
func (s store) loadCart(ctx context.Context, customer string) (snap cartSnapshot, version int64, found bool, err error) {
	var (
		js     []byte
		coupon *string
		at     time.Time
	)
	err = s.pool.QueryRow(ctx, `SELECT lines, coupon_code, updated_at FROM customer_carts WHERE customer_id = $1`,
		customer).Scan(&js, &coupon, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return cartSnapshot{}, 0, false, nil
	}
	if err != nil {
		return cartSnapshot{}, 0, false, fmt.Errorf("load cart snapshot: %w", err)
	}
	var lines []snapshotLine
	if err := json.Unmarshal(js, &lines); err != nil {
		// Not an array (the column's default is '{}'): an empty cart.
		lines = nil
	}
	for _, l := range lines {
		if l.VariantID == uuid.Nil || l.Quantity < 1 || l.Quantity > MaxQuantity {
			continue // never restore what the cart could not hold
		}
		snap.Lines = append(snap.Lines, Line{VariantID: l.VariantID, Quantity: l.Quantity})
	}
	if coupon != nil {
		snap.Coupon = *coupon
	}
	return snap, at.UnixMilli(), true, nil
}

func (s store) savePrefs(ctx context.Context, items []wbItem[[]byte]) error {
	b := &pgx.Batch{}
	for _, it := range items {
		b.Queue(`INSERT INTO preferences (customer_id, data, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (customer_id) DO UPDATE SET data = EXCLUDED.data, updated_at = EXCLUDED.updated_at
			WHERE preferences.updated_at <= EXCLUDED.updated_at`,
			it.key, string(it.value), time.UnixMilli(it.version).UTC())
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("save preferences: %w", err)
	}
	return nil
}

// loadPrefs returns customer's preferences object and its version (ms); found is false
// when there are none.
func (s store) loadPrefs(ctx context.Context, customer string) (data map[string]json.RawMessage, version int64, found bool, err error) {
	var (
		js []byte
		at time.Time
	)
	err = s.pool.QueryRow(ctx, `SELECT data, updated_at FROM preferences WHERE customer_id = $1`, customer).Scan(&js, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return map[string]json.RawMessage{}, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("load preferences: %w", err)
	}
	if err := json.Unmarshal(js, &data); err != nil {
		return nil, 0, false, fmt.Errorf("load preferences: %w", err)
	}
	if data == nil {
		data = map[string]json.RawMessage{}
	}
	return data, at.UnixMilli(), true, nil
}
