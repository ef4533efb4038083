package cart

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/rkey"
	"commerce/internal/platform/testenv"
)

// redisStock keeps each variant's available units in a counter key of the real Redis,
// as the inventory domain does, and names that key through CounterKeys. A missing key is
// "not loaded": Available loads it from want (the stand-in for PostgreSQL).
type redisStock struct {
	rdb   redis.UniversalClient
	space rkey.Space
	want  map[uuid.UUID]int64
	reads atomic.Int64 // calls of Available
}

func (s *redisStock) CounterKey(id uuid.UUID) (string, bool) {
	return s.space.Key("stock:{", id.String(), "}"), true
}

func (s *redisStock) Available(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]int64, error) {
	s.reads.Add(1)
	out := map[uuid.UUID]int64{}
	for _, id := range ids {
		key, _ := s.CounterKey(id)
		n, err := s.rdb.Get(ctx, key).Int64()
		if errors.Is(err, redis.Nil) {
			n = s.want[id]
			err = s.rdb.Set(ctx, key, n, 0).Err()
		}
		if err != nil {
			return nil, err
		}
		out[id] = max(n, 0)
	}
	return out, nil
}

func newCounterEnv(t *testing.T) (*env, *redisStock, *commandCounter) {
	t.Helper()
	_, space := testenv.Redis(t)
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: testenv.RedisAddrs(), IsClusterMode: testenv.Cluster()})
	t.Cleanup(func() { _ = rdb.Close() })
	pool, _ := testenv.DB(t)
	st := &redisStock{rdb: rdb, space: space, want: map[uuid.UUID]int64{}}
	e := newEnvWithStock(t, rdb, space, pool, st)
	cnt := &commandCounter{}
	rdb.AddHook(cnt)
	return e, st, cnt
}

// When the stock's counters live in the carts' Redis, add and set check the counter inside
// their script: one round trip, and the check is as strict as reading it first (a
// negative counter counts as 0, a change shows at once). A counter that is not loaded
// is read through Available, which loads it. Under Redis Cluster the counter may be on
// another node, so the service always reads Available first.
func TestStockCheckReadsTheCounterInTheScript(t *testing.T) {
	e, st, cnt := newCounterEnv(t)
	ctx := ctxT(t)
	cluster := testenv.Cluster()
	v := e.variant(t, 1000, 0)
	st.want[v] = 3
	o := SessionOwner(newSessionID(t))
	key, _ := st.CounterKey(v)

	// Not loaded: the script answers NO_COUNTER (or is not asked), Available loads it.
	must(e.svc.Add(ctx, o, v, 1))(t)
	if st.reads.Load() != 1 {
		t.Fatalf("first add read Available %d times, want 1 (the counter was not loaded)", st.reads.Load())
	}

	check := func(name string, op func() (Cart, error), wantQty, wantAvail int64) {
		t.Helper()
		reads, all := st.reads.Load(), cnt.all.Load()
		c, err := op()
		if wantAvail >= 0 {
			var se *StockError
			if !errors.As(err, &se) || se.Available != wantAvail || se.Requested != wantQty {
				t.Fatalf("%s: %+v %v, want a stock error (%d requested, %d available)", name, c, err, wantQty, wantAvail)
			}
		} else if err != nil || qtyOf(c, v) != wantQty {
			t.Fatalf("%s: %+v %v, want quantity %d", name, c, err, wantQty)
		}
		reads, cmds := st.reads.Load()-reads, cnt.all.Load()-all
		if cluster {
			if reads != 1 {
				t.Errorf("%s (Cluster): Available read %d times, want 1", name, reads)
			}
		} else if reads != 0 || cmds != 1 {
			t.Errorf("%s: Available read %d times and %d Redis commands, want 0 and the one script", name, reads, cmds)
		}
	}
	check("add within stock", func() (Cart, error) { return e.svc.Add(ctx, o, v, 2) }, 3, -1)
	check("add beyond stock", func() (Cart, error) { return e.svc.Add(ctx, o, v, 1) }, 4, 3)
	check("set beyond stock", func() (Cart, error) { return e.svc.SetQuantity(ctx, o, v, 5) }, 5, 3)
	if err := e.rdb.Set(ctx, key, 6, 0).Err(); err != nil {
		t.Fatal(err)
	}
	check("set after a restock", func() (Cart, error) { return e.svc.SetQuantity(ctx, o, v, 5) }, 5, -1)
	if err := e.rdb.Set(ctx, key, -2, 0).Err(); err != nil {
		t.Fatal(err)
	}
	check("add with a negative counter", func() (Cart, error) { return e.svc.Add(ctx, o, v, 1) }, 6, 0)
	check("set with a negative counter", func() (Cart, error) { return e.svc.SetQuantity(ctx, o, v, 1) }, 1, 0)
	if got := qtyOf(must(e.svc.Get(ctx, o))(t), v); got != 5 {
		t.Fatalf("the refused changes wrote: quantity %d, want 5", got)
	}
}
