package bench

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"commerce/internal/app"
)

// Floors: what the cheapest request of each kind costs on this machine, through the
// service's own HTTP stack. The bench mounts two routes of its own on the service it
// runs (never in the service itself), so that every middleware of /healthz runs for them
// too:
//   - GET FloorRedisPath: one Redis round trip (PING) on the service's Redis client;
//   - GET FloorCommitPath: one PostgreSQL commit (an INSERT into a table of the bench's
//     database, on the service's pool) and one Redis round trip.
// A scenario that needs a Redis round trip per request cannot be faster than the first,
// and one that needs a commit and a round trip cannot be faster than the second.

const (
	FloorRedisPath  = "/bench/floor/redis"
	FloorCommitPath = "/bench/floor/commit"
)

// mountFloors adds the floor routes to a, before it serves.
func mountFloors(ctx context.Context, a *app.App) error {
	if _, err := a.Pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, at timestamptz NOT NULL)`); err != nil {
		return fmt.Errorf("floor table: %w", err)
	}
	ok := map[string]string{"status": "ok"}
	a.Echo.GET(FloorRedisPath, func(c echo.Context) error {
		if err := a.Redis.Ping(c.Request().Context()).Err(); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, ok)
	})
	a.Echo.GET(FloorCommitPath, func(c echo.Context) error {
		ctx := c.Request().Context()
		if _, err := a.Pool.Exec(ctx, `INSERT INTO bench_floor (at) VALUES ($1)`, time.Now()); err != nil {
			return err
		}
		if err := a.Redis.Ping(ctx).Err(); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, ok)
	})
	return nil
}

// getOK drives GET path (with headers) and expects 200.
func getOK(c *Client, path string, headers ...string) Op {
	return func(ctx context.Context, _ int, _ int64) (int, error) {
		r, err := c.Do(ctx, http.MethodGet, path, nil, headers...)
		if err != nil {
			return 0, err
		}
		return r.Status, r.Expect(http.StatusOK)
	}
}

// callCounter is a go-redis hook that counts the round trips the service makes: one per
// command sent alone, one per pipeline (or MULTI block). Background jobs count too; they
// make a few calls a second against thousands a scenario makes.
type callCounter struct{ n atomic.Int64 }

func (c *callCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *callCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *callCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// countCalls hooks c into every distinct Redis client of a.
func countCalls(a *app.App, c *callCounter) {
	a.Redis.AddHook(c)
	if a.Cache != nil && a.Cache != a.Redis {
		a.Cache.AddHook(c)
	}
}

// perOp counts the operations of op and the service's Redis round trips while they run.
type perOp struct {
	calls *callCounter
	start int64
	ops   atomic.Int64
}

func (r *runner) countPerOp() *perOp {
	return &perOp{calls: r.env.calls, start: r.env.calls.n.Load()}
}

// wrap counts each call of op.
func (p *perOp) wrap(op Op) Op {
	return func(ctx context.Context, w int, i int64) (int, error) {
		p.ops.Add(1)
		return op(ctx, w, i)
	}
}

// redisPerOp is the service's Redis round trips per operation since countPerOp; ops ≤ 0
// takes the operations counted by wrap.
func (p *perOp) redisPerOp(ops int64) float64 {
	if ops <= 0 {
		ops = p.ops.Load()
	}
	if ops == 0 {
		return 0
	}
	return float64(p.calls.n.Load()-p.start) / float64(ops)
}
