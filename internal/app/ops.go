package app

import (
	"context"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"commerce/api"
)

type depStatus struct {
	OK        bool    `json:"ok"`
	LatencyMS float64 `json:"latency_ms"`
}

type readiness struct {
	Postgres depStatus `json:"postgres"`
	Redis    depStatus `json:"redis"`
}

// registerOps mounts /healthz, /readyz, /metrics and /openapi.yaml.
func registerOps(e *echo.Echo, pool *pgxpool.Pool, rdb redis.UniversalClient, gatherer prometheus.Gatherer) {
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), time.Second)
		defer cancel()
		var r readiness
		t := time.Now()
		r.Postgres.OK = pool.Ping(ctx) == nil
		r.Postgres.LatencyMS = ms(time.Since(t))
		t = time.Now()
		r.Redis.OK = rdb.Ping(ctx).Err() == nil
		r.Redis.LatencyMS = ms(time.Since(t))
		status := http.StatusOK
		if !r.Postgres.OK || !r.Redis.OK {
			status = http.StatusServiceUnavailable
			c.Response().Header().Set("Retry-After", "1") // as every 503 of the service
		}
		return c.JSON(status, r)
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})))
	e.GET("/openapi.yaml", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", api.Spec)
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
