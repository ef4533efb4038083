package checkout_test

import (
	"net/http"
	"sync/atomic"
	"testing"

	"commerce/internal/cart"
)

// BenchmarkCreateAndComplete measures one shopper's whole checkout through the HTTP
// handler, shoppers in parallel on one variant: POST /v1/checkouts (freeze, price, hold,
// payment intent) then …/complete (claim, pay, stock commit with the order, cart clear).
func BenchmarkCreateAndComplete(b *testing.B) {
	ev := newEnv(b)
	v := ev.variant(1_000_000, 1000)
	var failed atomic.Int64
	b.SetParallelism(8) // 8 × GOMAXPROCS shoppers at once
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id, _, err := ev.sessions.Create(ev.ctx, "")
			if err == nil {
				_, err = ev.carts.Add(ev.ctx, cart.SessionOwner(id), v, 1)
			}
			if err != nil {
				failed.Add(1)
				continue
			}
			h := ev.who(sessionOwner(id))
			r := ev.do(http.MethodPost, "/v1/checkouts", "{}", h)
			if r.status != http.StatusCreated {
				failed.Add(1)
				continue
			}
			if r := ev.do(http.MethodPost, completePath(decode[checkoutResp](b, r).ID), tokOK, h); r.status != http.StatusOK {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d checkouts failed", n)
	}
}
