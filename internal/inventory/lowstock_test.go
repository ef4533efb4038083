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
