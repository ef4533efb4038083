package inventory

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

func lowStockEvents(t *testing.T, e *env, id uuid.UUID) []LowStockEvent {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT payload FROM outbox WHERE topic = $1 AND aggregate_id = $2
		ORDER BY created_at`, TopicLowStock, id.String())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []LowStockEvent
	for rows.Next() {
		var b []byte
		var ev LowStockEvent
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// TestLowStockOncePerCrossingUnderConcurrentReservations: 300 concurrent reservations of
// 1 unit on a stock of 100 with threshold 20 cross the threshold once, so exactly one
// event; releasing above the threshold and reserving below it again is a second
// crossing and a second event. Reservations that stay below, or a variant without a
// threshold, make none.
func TestLowStockOncePerCrossingUnderConcurrentReservations(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	ids := e.variants(2, 100)
	id, plain := ids[0], ids[1]
	if err := s.SetLowStockThreshold(ctx, id, 20); err != nil {
		t.Fatal(err)
	}
	reserveAll := func(v uuid.UUID, from, n int) int {
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for i := from; i < from+n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if err := s.Reserve(ctx, holder(i), []Line{{VariantID: v, Quantity: 1}}, time.Minute); err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}(i)
		}
		wg.Wait()
		return ok
	}
	if got := reserveAll(id, 0, 300); got != 100 {
		t.Fatalf("%d reservations succeeded, want 100", got)
	}
	reserveAll(plain, 0, 300)
	evs := lowStockEvents(t, e, id)
	if len(evs) != 1 {
		t.Fatalf("%d low-stock events for one crossing, want 1: %+v", len(evs), evs)
	}
	if evs[0].Available != 19 || evs[0].Threshold != 20 || evs[0].SKU == "" || evs[0].VariantID != id {
		t.Fatalf("event: %+v", evs[0])
	}
	if n := len(lowStockEvents(t, e, plain)); n != 0 {
		t.Fatalf("a variant without a threshold got %d events", n)
	}
	// Back above the threshold (30 released: available 30), then below again.
	for _, h := range levels(t, s, id).Holds[:30] {
		if _, err := s.Release(ctx, h.Holder, []uuid.UUID{id}); err != nil {
			t.Fatal(err)
		}
	}
	if got := reserveAll(id, 1000, 50); got != 30 {
		t.Fatalf("%d reservations after the release, want 30", got)
	}
	if evs := lowStockEvents(t, e, id); len(evs) != 2 {
		t.Fatalf("%d events after a second crossing, want 2", len(evs))
	}
}

// TestLowStockThresholdsFromOneSnapshot: once the snapshot of thresholds is in, a
// reservation reads no threshold of its own, so a threshold written behind the service's
// back (another replica) is not seen until the next snapshot, which comes within the TTL;
// one set through this replica shows at once.
func TestLowStockThresholdsFromOneSnapshot(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	setTTL := func(d time.Duration) {
		s.thr.mu.Lock()
		defer s.thr.mu.Unlock()
		s.thr.ttl = d
	}
	setTTL(600 * time.Millisecond)
	ctx := context.Background()
	ids := e.variants(3, 100)
	first, behind, own := ids[0], ids[1], ids[2]
	setBehind := func(id uuid.UUID, v int64) {
		t.Helper()
		if _, err := e.pool.Exec(ctx, `UPDATE inventory SET low_stock_threshold = $2 WHERE variant_id = $1`, id, v); err != nil {
			t.Fatal(err)
		}
	}
	snapshot := func() (time.Time, int64) {
		s.thr.mu.Lock()
		defer s.thr.mu.Unlock()
		return s.thr.setAt, s.thr.set[behind]
	}
	waitSnapshot := func(after time.Time) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for at, _ := snapshot(); !at.After(after); at, _ = snapshot() {
			if time.Now().After(deadline) {
				t.Fatal("no snapshot of the thresholds was read")
			}
			if _, err := s.threshold(ctx, first); err != nil { // a lookup starts the read when one is due
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	cross := func(id uuid.UUID, h string) {
		t.Helper()
		if err := s.Reserve(ctx, h, []Line{{VariantID: id, Quantity: 90}}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Release(ctx, h, []uuid.UUID{id}); err != nil {
			t.Fatal(err)
		}
	}
	// No snapshot yet: the first reservation reads its threshold alone and starts one.
	setBehind(first, 20)
	cross(first, "first-1")
	if n := len(lowStockEvents(t, e, first)); n != 1 {
		t.Fatalf("%d events before any snapshot, want 1", n)
	}
	waitSnapshot(time.Time{})
	// While the snapshot is fresh (the TTL made long), a threshold written behind the
	// service's back is not seen: the reservation read no threshold of its own.
	setTTL(time.Hour)
	at, _ := snapshot()
	setBehind(behind, 20)
	cross(behind, "behind-1")
	if n := len(lowStockEvents(t, e, behind)); n != 0 {
		t.Fatalf("a threshold written after the snapshot was read on its own (%d events)", n)
	}
	// Set through this replica: seen at once.
	if err := s.SetLowStockThreshold(ctx, own, 20); err != nil {
		t.Fatal(err)
	}
	cross(own, "own-1")
	if n := len(lowStockEvents(t, e, own)); n != 1 {
		t.Fatalf("%d events for a threshold set through this replica, want 1", n)
	}
	// Once half the TTL has passed, the next lookup reads a new snapshot, which carries
	// the threshold written behind.
	setTTL(600 * time.Millisecond)
	waitSnapshot(at)
	if _, v := snapshot(); v != 20 {
		t.Fatalf("the next snapshot has threshold %d for the variant, want 20", v)
	}
	cross(behind, "behind-2")
	evs := lowStockEvents(t, e, behind)
	if len(evs) != 1 || evs[0].Threshold != 20 || evs[0].Available != 10 {
		t.Fatalf("after the next snapshot: %+v, want one event at 10 available, threshold 20", evs)
	}
}
