package bench

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

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
