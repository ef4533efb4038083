package cart

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/testenv"
)

// commandCounter counts the commands a Redis client sends, scripts apart.
type commandCounter struct{ all, scripts atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.all.Add(1)
		switch cmd.Name() {
		case "evalsha", "eval", "evalsha_ro", "eval_ro":
			c.scripts.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.all.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// A cart mutation runs one script and reads each variant from the catalog once: adding
// to or setting a line of a two-line cart asks the catalog for the mutated variant once
// (checked before the script, reused for pricing) and for the other line once, and sends
// exactly one Redis command, the script (the stock and catalog are other domains).
func TestMutationRunsOneScriptAndReadsEachVariantOnce(t *testing.T) {
	_, space := testenv.Redis(t)
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: testenv.RedisAddrs(), IsClusterMode: testenv.Cluster()})
	t.Cleanup(func() { _ = rdb.Close() })
	pool, _ := testenv.DB(t)
	e := newEnvOn(t, rdb, space, pool)
	cnt := &commandCounter{}
	rdb.AddHook(cnt)
	ctx := context.Background()
	o := SessionOwner(newSessionID(t))
	v1, v2 := e.variant(t, 1000, 50), e.variant(t, 2500, 50)
	must(e.svc.Add(ctx, o, v1, 1))(t)
	must(e.svc.Add(ctx, o, v2, 1))(t)

	for name, op := range map[string]func() (Cart, error){
		"add": func() (Cart, error) { return e.svc.Add(ctx, o, v1, 2) },
		"set": func() (Cart, error) { return e.svc.SetQuantity(ctx, o, v1, 5) },
	} {
		e.cat.mu.Lock()
		e.cat.lookups = map[uuid.UUID]int{}
		e.cat.mu.Unlock()
		all, scripts := cnt.all.Load(), cnt.scripts.Load()
		c, err := op()
		if err != nil || len(c.Lines) != 2 {
			t.Fatalf("%s: %+v %v", name, c, err)
		}
		if n := cnt.all.Load() - all; n != 1 || cnt.scripts.Load()-scripts != 1 {
			t.Errorf("%s: %d Redis commands (%d scripts), want the one script", name, n, cnt.scripts.Load()-scripts)
		}
		e.cat.mu.Lock()
		if e.cat.lookups[v1] != 1 || e.cat.lookups[v2] != 1 {
			t.Errorf("%s: catalog lookups %v, want each variant once", name, e.cat.lookups)
		}
		e.cat.mu.Unlock()
	}
}
