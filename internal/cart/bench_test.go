package cart

import (
	"context"
	"errors"
	"testing"
)

// BenchmarkAdd measures one add (catalog + stock fakes, one Lua script on the real Redis,
// pricing of the result) from parallel callers on distinct session carts.
func BenchmarkAdd(b *testing.B) {
	e := newEnv(b)
	v := e.variant(b, 100, 1<<40)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		o := SessionOwner(newSessionID(b))
		for pb.Next() {
			_, err := e.svc.Add(ctx, o, v, 1)
			if errors.Is(err, ErrQuantity) { // the line is full: start again
				_, err = e.svc.Clear(ctx, o)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGet measures reading and pricing a 10-line customer cart.
func BenchmarkGet(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	o := CustomerOwner(newCustomerID())
	for range 10 {
		if _, err := e.svc.Add(ctx, o, e.variant(b, 100, 100), 2); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.svc.Get(ctx, o); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
