// Package db opens the PostgreSQL pool and runs the embedded migrations.
package db

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"commerce/migrations"
)

// Open returns a pool for url with maxConns connections (0 keeps pgx's default) after a
// successful ping.
func Open(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	return OpenWithTimeout(ctx, url, maxConns, 0)
}

// OpenWithTimeout is Open with a server-side bound on every statement (statement_timeout)
// and on a transaction left idle (idle_in_transaction_session_timeout), so a stuck query
// or a crashed caller cannot hold locks for longer than timeout (0: no bound).
// Each of opts may change the configuration before the pool is made (a query tracer).
func OpenWithTimeout(ctx context.Context, url string, maxConns int32, timeout time.Duration,
	opts ...func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	for _, o := range opts {
		o(cfg)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	if timeout > 0 {
		ms := strconv.FormatInt(timeout.Milliseconds(), 10)
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = ms
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt(4*timeout.Milliseconds(), 10)
		cfg.ConnConfig.ConnectTimeout = timeout
	}
	// Failover: a multi-host DATABASE_URL (host=a,b with target_session_attrs=read-write)
	// makes every new connection find the current primary. A connection to a primary that
	// died is closed by pgx on its first error and never returns to the pool; one to a
	// server that has become a standby (in_hot_standby, reported by PostgreSQL 14+) is
	// dropped when released, so the next acquire dials the new primary.
	cfg.AfterRelease = func(c *pgx.Conn) bool { return !Standby(c.PgConn()) }
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping postgres: %w", err)
	}
	return pool, nil
}

// Standby reports whether the server of c says it is a hot standby (read-only).
func Standby(c *pgconn.PgConn) bool { return c.ParameterStatus("in_hot_standby") == "on" }

// Migrate applies (up) or rolls back one step (down) of the embedded migrations.
func Migrate(pool *pgxpool.Pool, direction string) error {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return fmt.Errorf("migrations source: %w", err)
	}
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close()
	drv, err := migratepgx.WithInstance(sqlDB, &migratepgx.Config{})
	if err != nil {
		return fmt.Errorf("migrations driver: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer m.Close()
	switch direction {
	case "up":
		err = m.Up()
	case "down":
		err = m.Steps(-1)
	default:
		return fmt.Errorf("migrate: direction must be up or down, not %q", direction)
	}
	if err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate %s: %w", direction, err)
	}
	return nil
}

// Ping measures one round trip.
func Ping(ctx context.Context, pool *pgxpool.Pool) error { return pool.Ping(ctx) }
