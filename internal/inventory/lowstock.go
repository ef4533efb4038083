package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// TopicLowStock is the outbox topic (and the stream's event type) of a variant whose
// available stock went below its low-stock threshold.
const TopicLowStock = "inventory.low_stock"

// thresholdTTL is how long a replica keeps a variant's threshold before reading it again:
// a changed threshold reaches every replica within it.
const thresholdTTL = 30 * time.Second

// lowStockNamespace derives event ids: the same crossing (variant, holder, hold expiry)
// always gets the same id, so a retried insert never makes a second event.
var lowStockNamespace = uuid.MustParse("6f1c7a52-5b0e-4a4f-9d53-9b8f3c0e7a11")

// LowStockEvent is the payload of an inventory.low_stock event.
type LowStockEvent struct {
	EventID    uuid.UUID `json:"event_id"`
	Type       string    `json:"type"`
	VariantID  uuid.UUID `json:"variant_id"`
	SKU        string    `json:"sku"`
	Available  int64     `json:"available"`
	Threshold  int64     `json:"threshold"`
	OccurredAt time.Time `json:"occurred_at"`
}

type thresholdEntry struct {
	value   int64 // 0: none
	fetched time.Time
}

// thresholds caches each variant's threshold for thresholdTTL.
type thresholds struct {
	mu sync.Mutex
	m  map[uuid.UUID]thresholdEntry
}

func (t *thresholds) get(id uuid.UUID, now time.Time) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[id]
	if !ok || now.Sub(e.fetched) > thresholdTTL {
		return 0, false
	}
	return e.value, true
}

func (t *thresholds) put(id uuid.UUID, v int64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil || len(t.m) > 100_000 {
		t.m = make(map[uuid.UUID]thresholdEntry)
	}
	t.m[id] = thresholdEntry{value: v, fetched: now}
}

// SetLowStockThreshold sets a variant's low-stock threshold (0 turns the event off).
// Errors: ErrNotFound; ErrInvalid (negative or above MaxOnHand); PostgreSQL errors.
func (s *Service) SetLowStockThreshold(ctx context.Context, id uuid.UUID, threshold int64) error {
	if threshold < 0 || threshold > MaxOnHand {
		return fmt.Errorf("low_stock_threshold must be between 0 and %d: %w", MaxOnHand, ErrInvalid)
	}
	var v *int64
	if threshold > 0 {
		v = &threshold
	}
	tag, err := s.store.pool.Exec(ctx, `UPDATE inventory SET low_stock_threshold = $2 WHERE variant_id = $1`, id, v)
	if err != nil {
		return fmt.Errorf("inventory: set low-stock threshold: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("variant %s: %w", id, ErrNotFound)
	}
	s.thr.put(id, threshold, time.Now())
	return nil
}

// LowStockThreshold returns a variant's threshold (0: none). Errors: ErrNotFound.
func (s *Service) LowStockThreshold(ctx context.Context, id uuid.UUID) (int64, error) {
	var v *int64
	err := s.store.pool.QueryRow(ctx, `SELECT low_stock_threshold FROM inventory WHERE variant_id = $1`, id).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("variant %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("inventory: low-stock threshold: %w", err)
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}

// threshold returns the cached threshold of id, reading PostgreSQL when it is stale.
func (s *Service) threshold(ctx context.Context, id uuid.UUID) (int64, error) {
	now := time.Now()
	if v, ok := s.thr.get(id, now); ok {
		return v, nil
	}
	v, err := s.LowStockThreshold(ctx, id)
	if err != nil {
		return 0, err
	}
	s.thr.put(id, v, now)
	return v, nil
}

// noteReserved writes an inventory.low_stock event to the outbox when this reservation
// took the counter from at least the variant's threshold to below it. The crossing is
// decided from the reserve script's atomic before/after, so of any number of concurrent
// reservations exactly one sees it; the event id is derived from the hold, so a repeated
// insert is a no-op. A failure here is logged, never returned: the reservation stands.
func (s *Service) noteReserved(ctx context.Context, id uuid.UUID, holder string, rep reserveReply) {
	if rep.after >= rep.before {
		return
	}
	thr, err := s.threshold(ctx, id)
	if err != nil {
		s.log.Warn("inventory: low-stock threshold not read; no event for this reservation", "variant_id", id, "error", err)
		return
	}
	if thr <= 0 || rep.before < thr || rep.after >= thr {
		return
	}
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	evID := uuid.NewSHA1(lowStockNamespace, []byte(id.String()+"\x00"+holder+"\x00"+strconv.FormatInt(rep.expiry, 10)))
	var sku string
	if err := s.store.pool.QueryRow(ctx, `SELECT sku FROM variants WHERE id = $1`, id).Scan(&sku); err != nil {
		s.log.Error("inventory: low-stock event lost", "variant_id", id, "error", err)
		return
	}
	payload, err := json.Marshal(LowStockEvent{EventID: evID, Type: TopicLowStock, VariantID: id, SKU: sku, Available: max(rep.after, 0), Threshold: thr,
		OccurredAt: time.Now().UTC()})
	if err != nil {
		return
	}
	if _, err := s.store.pool.Exec(ctx, `INSERT INTO outbox (id, topic, aggregate_id, payload) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO NOTHING`, evID, TopicLowStock, id.String(), payload); err != nil {
		s.log.Error("inventory: low-stock event lost", "variant_id", id, "error", err)
		return
	}
	s.m.lowStock.Inc()
}
