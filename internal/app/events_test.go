package app

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"commerce/internal/catalog"
	"commerce/internal/events"
	"commerce/internal/inventory"
)

// TestLowStockEventReachesTheStream: a reservation that crosses a variant's threshold
// puts one inventory.low_stock event on the stream (through the outbox relay), which a
// consumer group reads in the documented shape.
func TestLowStockEventReachesTheStream(t *testing.T) {
	a := newTestApp(t)
	ctx := context.Background()
	if _, err := a.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	id := catalog.SeedVariantID("RR-40") // stock 25
	inv := a.Domains().Inventory
	if err := inv.SetLowStockThreshold(ctx, id, 20); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"h1", "h2"} { // 25 → 22 → 19: the second crosses
		if err := inv.Reserve(ctx, h, []inventory.Line{{VariantID: id, Quantity: 3}}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Domains().Checkout.RelayOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	c := &events.Consumer{Redis: a.Redis, Stream: events.Stream(a.Space), Group: "test", Name: "t", FromStart: true,
		Block: 50 * time.Millisecond}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var got []events.Event
	_ = c.Run(rctx, func(_ context.Context, e events.Event) error {
		got = append(got, e)
		cancel()
		return nil
	})
	if len(got) != 1 || got[0].Type != inventory.TopicLowStock || got[0].AggregateID != id.String() {
		t.Fatalf("stream: %+v", got)
	}
	var p inventory.LowStockEvent
	if err := json.Unmarshal([]byte(got[0].Payload), &p); err != nil {
		t.Fatal(err)
	}
	if p.EventID.String() != got[0].ID || p.Type != inventory.TopicLowStock || p.SKU != "RR-40" || p.Available != 19 || p.Threshold != 20 {
		t.Fatalf("payload: %+v (entry id %s)", p, got[0].ID)
	}
}
