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

// thresholds keeps the variants' low-stock thresholds. Its main source is a snapshot of
// every threshold that is set, read in one query: a reservation then asks PostgreSQL
// nothing. The snapshot is used while it is at most ttl old and read again, in the
// background, once it is half that old; a change made through this replica shows at once.
// Until the first snapshot is in, or while it is too old (its reads failing), a variant's
// threshold is read alone and kept for ttl. Either way a threshold changed elsewhere is
// seen within ttl.
type thresholds struct {
	ttl time.Duration // 0: thresholdTTL

	mu      sync.Mutex
	set     map[uuid.UUID]int64 // the snapshot: the variants with a threshold
	setAt   time.Time           // when the snapshot's query started; zero: none yet
	loading bool                // a snapshot is being read
	failed  time.Time           // when the last snapshot read failed
	m       map[uuid.UUID]thresholdEntry
}

func (t *thresholds) maxAge() time.Duration {
	if t.ttl > 0 {
		return t.ttl
	}
	return thresholdTTL
}

// lookup returns id's threshold (ok) from a fresh snapshot or a fresh single read, and
// whether the caller should start reading a new snapshot (it is then marked as loading).
func (t *thresholds) lookup(id uuid.UUID, now time.Time) (v int64, ok, refresh bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ttl := t.maxAge()
	age := now.Sub(t.setAt)
	if !t.loading && (t.setAt.IsZero() || age >= ttl/2) && now.Sub(t.failed) >= ttl/10 {
		t.loading, refresh = true, true
	}
	if !t.setAt.IsZero() && age <= ttl {
		return t.set[id], true, refresh
	}
	e, found := t.m[id]
	if !found || now.Sub(e.fetched) > ttl {
		return 0, false, refresh
	}
	return e.value, true, refresh
}

// put records a threshold read alone or set through this replica (0: none).
func (t *thresholds) put(id uuid.UUID, v int64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil || len(t.m) > 100_000 {
		t.m = make(map[uuid.UUID]thresholdEntry)
	}
	t.m[id] = thresholdEntry{value: v, fetched: now}
	if t.set != nil {
		if v > 0 {
			t.set[id] = v
		} else {
			delete(t.set, id)
		}
	}
}

// loaded installs a snapshot whose query started at startedAt (set nil: the read failed).
func (t *thresholds) loaded(set map[uuid.UUID]int64, startedAt time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.loading = false
	if set == nil {
		t.failed = time.Now()
		return
	}
	// What this replica set or read after the query started is newer than the snapshot.
	for id, e := range t.m {
		if !e.fetched.Before(startedAt) {
			if e.value > 0 {
				set[id] = e.value
			} else {
				delete(set, id)
			}
		}
	}
	t.set, t.setAt = set, startedAt
}

// readThresholds reads the snapshot of every threshold that is set.
func (s *Service) readThresholds(ctx context.Context) (map[uuid.UUID]int64, error) {
	rows, err := s.store.pool.Query(ctx, `SELECT variant_id, low_stock_threshold FROM inventory WHERE low_stock_threshold > 0`)
	if err != nil {
		return nil, err
	}
	set := make(map[uuid.UUID]int64)
	var id uuid.UUID
	var v int64
	_, err = pgx.ForEachRow(rows, []any{&id, &v}, func() error {
		set[id] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return set, nil
}

// refreshThresholds reads a new snapshot; lookup started it and marked it loading.
func (s *Service) refreshThresholds() {
	ctx, cancel := cleanupCtx(context.Background())
	defer cancel()
	started := time.Now()
	set, err := s.readThresholds(ctx)
	if err != nil {
		s.log.Warn("inventory: low-stock thresholds not read; reading them one variant at a time", "error", err)
		s.thr.loaded(nil, started)
		return
	}
	s.thr.loaded(set, started)
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

// threshold returns the threshold of id from the snapshot, or from a single read when
// there is no fresh snapshot.
func (s *Service) threshold(ctx context.Context, id uuid.UUID) (int64, error) {
	now := time.Now()
	v, ok, refresh := s.thr.lookup(id, now)
	if refresh {
		go s.refreshThresholds()
	}
	if ok {
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
