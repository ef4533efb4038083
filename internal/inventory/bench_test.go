package inventory

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// The reservation path against its floor and its alternative, all measured in one run against the same Redis and PostgreSQL:
//
//	go test -run '^$' -bench . -benchtime 5000x ./internal/inventory/
//
// hot: Service.Reserve of 1 unit of one variant (the script, its Go side, the index
// check); 10k: the same spread round-robin over 10,000 variants; evalsha: the reserve
// script alone through go-redis EvalSha (no Go logic: the floor of a Redis reservation);
// pg: the reservation a shop without Redis would do, one conditional UPDATE of a hot row.
// Each serially (latency of one call) and with b.RunParallel at 8 × GOMAXPROCS
// goroutines (throughput under contention; ns/op is wall time per operation).
func BenchmarkReserve(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	s := e.service(Options{})
	const stock = 1 << 50
	hot := e.variant(stock)
	many := e.variants(10000, stock)
	pgHot := e.variant(stock)
	// load every counter and give every variant a first hold, so that the timed loops do
	// the steady-state work (no loads, no first-hold index writes)
	if err := s.Reserve(ctx, "warm", []Line{{hot, 1}}, time.Hour); err != nil {
		b.Fatal(err)
	}
	for _, id := range many {
		if err := s.Reserve(ctx, "warm", []Line{{id, 1}}, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	var seq atomic.Int64
	next := func() string { return "b" + strconv.FormatInt(seq.Add(1), 36) }
	ttlMs := time.Hour.Milliseconds()

	serialAndParallel := func(name string, op func(i int64) error) {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := op(int64(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			b.SetParallelism(8) // 8 × GOMAXPROCS goroutines: the work is I/O bound
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := op(seq.Add(1)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}

	serialAndParallel("hot", func(int64) error {
		return s.Reserve(ctx, next(), []Line{{hot, 1}}, time.Hour)
	})
	serialAndParallel("10k", func(i int64) error {
		return s.Reserve(ctx, next(), []Line{{many[i%int64(len(many))], 1}}, time.Hour)
	})
	k := s.r.keys(hot)
	sha := s.r.reserve.Hash()
	serialAndParallel("evalsha", func(int64) error {
		v, err := e.rdb.EvalSha(ctx, sha, []string{k.avail, k.holds, k.held, k.cmt}, next(), 1, ttlMs, 100).Slice()
		if err == nil && v[0] != codeOK {
			b.Fatalf("reply %v", v)
		}
		return err
	})
	serialAndParallel("pg", func(int64) error {
		tag, err := e.pool.Exec(ctx, `UPDATE inventory SET on_hand = on_hand - 1 WHERE variant_id = $1 AND on_hand >= 1`, pgHot)
		if err == nil && tag.RowsAffected() != 1 {
			b.Fatal("no row updated")
		}
		return err
	})
}
