package catalog

import (
	"context"
	"testing"
)

// BenchmarkGetProductWarm reads one product through the warm L2 cache (one Redis GET,
// JSON decode); compare with BenchmarkGetProductStore.
func BenchmarkGetProductWarm(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	p := mustCreate(b, e.svc, sampleProduct(3))
	if _, err := e.cache.GetActive(ctx, p.ID); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.cache.GetActive(ctx, p.ID); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if e.src.gets.Load() != 0 {
		b.Fatal("warm reads went to the store")
	}
}

// BenchmarkGetProductStore reads the same product from PostgreSQL (one statement).
func BenchmarkGetProductStore(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	p := mustCreate(b, e.svc, sampleProduct(3))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.store.GetActive(ctx, p.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetProductWarmParallel is the warm read under concurrency (the hit path has
// no lock of its own).
func BenchmarkGetProductWarmParallel(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	p := mustCreate(b, e.svc, sampleProduct(3))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.cache.GetActive(ctx, p.ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGetProductStoreParallel is the PostgreSQL read under concurrency.
func BenchmarkGetProductStoreParallel(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	p := mustCreate(b, e.svc, sampleProduct(3))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.store.GetActive(ctx, p.ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
