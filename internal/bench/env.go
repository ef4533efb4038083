package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"commerce/internal/app"
	"commerce/internal/platform/rkey"
)

// Env is one running replica of the service on a database and a Redis key space created
// for the run, serving HTTP on a loopback port.
type Env struct {
	App     *app.App
	Cfg     app.Config
	BaseURL string
	Client  *Client
	DBName  string
	Space   rkey.Space

	calls    *callCounter // the service's Redis round trips
	adminURL string
	cancel   context.CancelFunc
	served   chan error
	closed   bool
}

// BenchConfig derives the configuration of a bench run from base: a fresh database name on
// the same PostgreSQL server, a private Redis key prefix on the same Redis, fresh secrets,
// a loopback listener, and rate limits (RATE_LIMIT_PER_SECOND, SESSIONS_PER_MINUTE) of
// 1,000,000 so that they never answer 429 to the generator, which is one client address.
func BenchConfig(base app.Config, stamp string) (app.Config, string) {
	cfg := base
	dbName := "commerce_bench_" + stamp
	cfg.DatabaseURL = withDB(base.DatabaseURL, dbName)
	cfg.MigrateOnStart = true
	cfg.SeedDemo = false
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.RedisPrefix = base.RedisPrefix + "bench_" + stamp + ":"
	cfg.AdminToken = "bench-admin-" + randHex(16)
	cfg.JWTSecret = "bench-jwt-" + randHex(24)
	cfg.WebhookSecret = "bench-webhook-" + randHex(8)
	// High enough never to answer 429 to the one client address of the generator, but not
	// 0: the limiter stays in the request path (its Redis call is part of what a request
	// costs in production). ratelimit.New refuses rates above 1e6 per second.
	cfg.RateLimitPerSec = 1_000_000
	cfg.SessionsPerMinute = 1_000_000
	cfg.RateLimitPerAddress = 1_000_000
	return cfg, dbName
}

// Stamp names one run: UTC time plus a few random characters.
func Stamp() string { return time.Now().UTC().Format("20060102_150405") + "_" + randHex(3) }

// StartEnv creates the database, builds the service with app.New on it (which migrates
// it), and serves HTTP on 127.0.0.1:0 until Close. conns is the number of keep-alive
// connections the client keeps. On error everything created so far is removed.
func StartEnv(ctx context.Context, base app.Config, log *slog.Logger, conns int) (*Env, error) {
	cfg, dbName := BenchConfig(base, Stamp())
	e := &Env{Cfg: cfg, DBName: dbName, Space: rkey.Space(cfg.RedisPrefix), adminURL: withDB(base.DatabaseURL, "postgres")}
	if err := e.createDB(ctx); err != nil {
		return nil, err
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		e.dropDB()
		return nil, fmt.Errorf("app.New: %w", err)
	}
	e.App = a
	e.calls = &callCounter{}
	countCalls(a, e.calls)
	if err := mountFloors(ctx, a); err != nil {
		a.Close(ctx)
		e.cleanup()
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		a.Close(ctx)
		e.cleanup()
		return nil, err
	}
	e.BaseURL = "http://" + l.Addr().String()
	sctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.served = make(chan error, 1)
	go func() { e.served <- a.Serve(sctx, l) }()
	if e.Client, err = NewClient(e.BaseURL, conns, cfg.AdminToken); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.waitHealthy(ctx); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func (e *Env) waitHealthy(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := e.Client.Do(ctx, http.MethodGet, "/healthz", nil)
		if err == nil && r.Status == http.StatusOK {
			return nil
		}
		select {
		case err := <-e.served:
			e.served <- err
			return fmt.Errorf("service stopped before it was healthy: %v", err)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("service not healthy after 10s: %v (status %d)", err, r.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// HasRoute reports whether the service registers method path (echo syntax, e.g.
// "/v1/products/:id"). Scenarios use it to skip what is not wired yet.
func (e *Env) HasRoute(method, path string) bool {
	for _, r := range e.App.Echo.Routes() {
		if r.Method == method && r.Path == path {
			return true
		}
	}
	return false
}

// MissingRoutes returns the routes of want ("METHOD /path") that are not registered.
func (e *Env) MissingRoutes(want ...string) []string {
	var missing []string
	for _, w := range want {
		method, path, _ := strings.Cut(w, " ")
		if !e.HasRoute(method, path) {
			missing = append(missing, w)
		}
	}
	return missing
}

// Close stops the service, drops the database and deletes the run's Redis keys. It is
// safe to call more than once.
func (e *Env) Close() {
	if e.closed {
		return
	}
	e.closed = true
	if e.Client != nil {
		e.Client.Close()
	}
	if e.cancel != nil {
		e.cancel()
		select {
		case <-e.served:
		case <-time.After(e.Cfg.ShutdownTimeout + 5*time.Second):
		}
	}
	e.cleanup()
}

func (e *Env) cleanup() {
	e.dropDB()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb, err := app.OpenRedis(e.Cfg)
	if err != nil {
		return
	}
	defer rdb.Close()
	_, _ = DeleteSpace(ctx, rdb, e.Space)
}

func (e *Env) createDB(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL (%s): %w", maskedURL(e.adminURL), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{e.DBName}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", e.DBName, err)
	}
	return nil
}

func (e *Env) dropDB() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{e.DBName}.Sanitize()+" WITH (FORCE)")
}

// DeleteSpace deletes every key of space with SCAN (on every master in Cluster) and
// returns how many it deleted.
func DeleteSpace(ctx context.Context, c redis.UniversalClient, space rkey.Space) (int64, error) {
	if space == "" {
		return 0, errors.New("bench: refusing to delete the empty key space")
	}
	var n atomic.Int64
	del := func(ctx context.Context, cl *redis.Client) error {
		it := cl.Scan(ctx, 0, escapeGlob(string(space))+"*", 1000).Iterator()
		var batch []string
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			pipe := cl.Pipeline()
			for _, k := range batch {
				pipe.Unlink(ctx, k)
			}
			_, err := pipe.Exec(ctx)
			n.Add(int64(len(batch)))
			batch = batch[:0]
			return err
		}
		for it.Next(ctx) {
			batch = append(batch, it.Val())
			if len(batch) == 500 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		return flush()
	}
	switch cc := c.(type) {
	case *redis.ClusterClient:
		err := cc.ForEachMaster(ctx, del)
		return n.Load(), err
	case *redis.Client:
		err := del(ctx, cc)
		return n.Load(), err
	}
	return 0, fmt.Errorf("bench: unsupported Redis client %T", c)
}

// escapeGlob escapes the glob metacharacters of a literal key prefix for SCAN MATCH.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func withDB(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + name
	return u.String()
}

func maskedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "****"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
