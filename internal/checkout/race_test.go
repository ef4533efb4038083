package checkout_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"commerce/internal/cart"
)

// TestCompletionRacesHoldExpiry: many checkouts complete while their holds (40 ms) and
// the checkouts themselves (80 ms) expire, with the inventory sweeper, its recovery and
// the checkout expiry job running all the time, and more demand than stock. Whatever
// interleaving happens, every hold ends committed or returned, never both: PostgreSQL's
// on_hand equals the stock minus what the orders hold, nothing stays held, Redis agrees
// with PostgreSQL, and each order decremented the stock exactly once.
func TestCompletionRacesHoldExpiry(t *testing.T) {
	ev := newEnv(t, func(c *envConfig) {
		c.chk.HoldTTL = 40 * time.Millisecond
		c.chk.CheckoutTTL = 80 * time.Millisecond
		c.inv.CommitTimeout = 20 * time.Millisecond
	})
	const stock, trials, workers = 30, 60, 8
	v := ev.variant(stock, 700)

	ctx, stop := context.WithCancel(ev.ctx)
	var bg sync.WaitGroup
	var swept atomic.Int64
	bg.Add(1)
	go func() { // the jobs, back to back
		defer bg.Done()
		for ctx.Err() == nil {
			if n, err := ev.inv.Sweep(ctx); err == nil {
				swept.Add(n)
			}
			_, _ = ev.inv.Recover(ctx)
			_, _ = ev.svc.ExpireDue(ctx)
		}
	}()

	var placed, expired, short, other atomic.Int64
	parallel(trials, workers, func(i int) {
		id, _, err := ev.sessions.Create(ev.ctx, "")
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := ev.carts.Add(ev.ctx, cart.SessionOwner(id), v, int64(1+i%2)); err != nil {
			short.Add(1) // the soft stock check already says no
			return
		}
		h := ev.who(sessionOwner(id))
		r := ev.do(http.MethodPost, "/v1/checkouts", "{}", h)
		if r.status == http.StatusConflict {
			short.Add(1)
			return
		}
		if r.status != http.StatusCreated {
			t.Errorf("create: %d %s", r.status, r.body)
			return
		}
		co := decode[checkoutResp](t, r)
		time.Sleep(time.Duration(i%6) * 15 * time.Millisecond) // before, around and after the expiries
		r = ev.do(http.MethodPost, completePath(co.ID), tokOK, h)
		switch {
		case r.status == http.StatusOK:
			placed.Add(1)
		case r.status == http.StatusGone:
			expired.Add(1)
		case r.status == http.StatusConflict:
			other.Add(1) // e.g. in progress: the checkout expires later
		default:
			t.Errorf("complete: %d %s", r.status, r.body)
		}
	})
	stop()
	bg.Wait()
	t.Logf("placed %d, expired %d, short %d, other %d; %d holds swept", placed.Load(), expired.Load(),
		short.Load(), other.Load(), swept.Load())
	if placed.Load() == 0 || expired.Load()+short.Load() == 0 {
		t.Fatalf("the race did not happen: placed %d, expired %d, short %d", placed.Load(), expired.Load(), short.Load())
	}

	// Let everything lapse, then run the jobs once more.
	time.Sleep(100 * time.Millisecond)
	if _, err := ev.inv.Sweep(ev.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ev.inv.Recover(ev.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ev.svc.ExpireDue(ev.ctx); err != nil {
		t.Fatal(err)
	}
	sold := int64(ev.count(`SELECT coalesce(sum(quantity), 0) FROM order_lines WHERE variant_id = $1`, v))
	orders := ev.count(`SELECT count(*) FROM orders`)
	if int64(orders) != placed.Load() {
		t.Fatalf("%d orders, %d completes answered 200", orders, placed.Load())
	}
	ev.wantLevels(v, stock-sold, stock-sold, 0)
	if n := ev.count(`SELECT count(*) FROM stock_ledger WHERE variant_id = $1 AND delta < 0`, v); n != orders {
		t.Fatalf("%d stock decrements for %d orders", n, orders)
	}
	if n := ev.count(`SELECT count(*) FROM checkouts c WHERE (c.state = 'completed') <> EXISTS (SELECT 1 FROM orders o WHERE o.checkout_id = c.id)`); n != 0 {
		t.Fatalf("%d checkouts whose state disagrees with their order", n)
	}
	if n := ev.count(`SELECT count(*) FROM checkouts WHERE state IN ('reserving', 'awaiting_payment', 'completing')`); n != 0 {
		t.Fatalf("%d checkouts still active after expiry", n)
	}
}
