package catalog

import (
	"context"
	"testing"
	"time"
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

// BenchmarkGetProductEncoded is what GET /v1/products/{id} costs the catalog when the
// product is warm: "l2" reads Redis and re-encodes, "near" serves the near-cache's bytes.
// Compare the two with benchstat (go test -bench GetProductEncoded -count 6).
func BenchmarkGetProductEncoded(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []CacheOption
	}{{"l2", nil}, {"near", []CacheOption{WithNearCache(time.Minute, 1000, 1<<20)}}} {
		b.Run(c.name, func(b *testing.B) {
			e := newEnv(b)
			in := newInstance(b, e.pool, e.rdb, e.space, c.opts...)
			ctx := context.Background()
			p := mustCreate(b, in.svc, sampleProduct(3))
			if _, err := in.cache.GetActiveEncoded(ctx, p.ID); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := in.cache.GetActiveEncoded(ctx, p.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
