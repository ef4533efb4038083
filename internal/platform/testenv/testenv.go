// Package testenv gives integration tests the real services: a fresh, migrated PostgreSQL
// database per test and a private Redis key space per test, on the machine's PostgreSQL
// and Redis (started by `make test` through scripts/dev-services.sh). A missing service
// fails the test; it never skips.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/db"
	"commerce/internal/platform/rkey"
	"commerce/migrations"
)

// AdminURL is the PostgreSQL server used by tests (TEST_DATABASE_URL, default the local
// server's postgres database).
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// RedisAddrs are the Redis addresses used by tests: REDIS_ADDRS (comma separated; several
// means Cluster) or TEST_REDIS_ADDR, default 127.0.0.1:6379.
func RedisAddrs() []string {
	if a := os.Getenv("REDIS_ADDRS"); a != "" {
		return strings.Split(a, ",")
	}
	if a := os.Getenv("TEST_REDIS_ADDR"); a != "" {
		return []string{a}
	}
	return []string{"127.0.0.1:6379"}
}

// Cluster reports whether tests run against a Redis Cluster.
func Cluster() bool { return len(RedisAddrs()) > 1 }

var (
	tplOnce sync.Once
	tplName string
	tplErr  error
)

// template returns the name of a database migrated with the current migrations, created
// once per migration set (its name carries their hash) and shared by all test processes.
func template(ctx context.Context) (string, error) {
	tplOnce.Do(func() {
		h := sha256.New()
		names, _ := fs.Glob(migrations.FS, "*.sql")
		sort.Strings(names)
		for _, n := range names {
			b, _ := fs.ReadFile(migrations.FS, n)
			h.Write([]byte(n))
			h.Write(b)
		}
		tplName = "commerce_tpl_" + hex.EncodeToString(h.Sum(nil))[:16]
		tplErr = ensureTemplate(ctx, tplName)
	})
	return tplName, tplErr
}

func ensureTemplate(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL at %s (run `make test`, which starts it): %w", AdminURL(), err)
	}
	defer conn.Close(ctx)
	// Serialise template creation across the test processes of one `go test ./...`.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(727274)"); err != nil {
		return err
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock(727274)") //nolint:errcheck
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := name + "_building"
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{building}.Sanitize()+" WITH (FORCE)")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{building}.Sanitize()); err != nil {
		return err
	}
	pool, err := db.Open(ctx, withDB(AdminURL(), building), 2)
	if err != nil {
		return err
	}
	err = db.Migrate(pool, "up")
	pool.Close()
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{building}.Sanitize()+" RENAME TO "+pgx.Identifier{name}.Sanitize())
	return err
}

func withDB(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

// DB returns a pool on a fresh database with every migration applied, dropped when the
// test ends. Its URL is returned too, for code that opens its own pool. In a crash child
// (see crash.go) it opens the parent's database instead.
func DB(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if CrashChild() { // the parent's database, left to the parent to drop
		dsn := inherited(t, envDSNs)
		pool, err := db.Open(ctx, dsn, 20)
		if err != nil {
			t.Fatalf("testenv: open the parent's database: %v", err)
		}
		return pool, dsn
	}
	tpl, err := template(ctx)
	if err != nil {
		t.Fatalf("testenv: PostgreSQL is required: %v", err)
	}
	name := "t_" + randHex(8)
	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("testenv: PostgreSQL is required: %v", err)
	}
	defer conn.Close(ctx)
	// CREATE DATABASE ... TEMPLATE fails while another session is copying the same
	// template; retry briefly.
	for i := 0; ; i++ {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{tpl}.Sanitize())
		if err == nil || i > 50 || !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(time.Duration(50+i*10) * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	dsn := withDB(AdminURL(), name)
	record(envDSNs, t, dsn)
	pool, err := db.Open(ctx, dsn, 20)
	if err != nil {
		t.Fatalf("testenv: open %s: %v", name, err)
	}
	t.Cleanup(func() {
		// A database that cannot be dropped fails the test: left behind, they pile up
		// until PostgreSQL runs out of room and unrelated tests fail instead.
		pool.Close()
		c, err := pgx.Connect(context.Background(), AdminURL())
		if err != nil {
			t.Errorf("testenv: drop database %s: connect: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	return pool, dsn
}

// Redis returns a client on the test Redis (standalone or Cluster) and a key space of its
// own; the keys of that space are deleted when the test ends. In a crash child it returns
// the parent's key space.
func Redis(t testing.TB) (redis.UniversalClient, rkey.Space) {
	t.Helper()
	addrs := RedisAddrs()
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, IsClusterMode: len(addrs) > 1,
		PoolSize: 64})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("testenv: Redis is required at %v (run `make test`, which starts it): %v", addrs, err)
	}
	if CrashChild() { // the parent's key space, left to the parent to delete
		return c, rkey.Space(inherited(t, envSpaces))
	}
	space := rkey.Space("t" + randHex(6) + ":")
	record(envSpaces, t, string(space))
	t.Cleanup(func() {
		if err := DeleteSpace(context.Background(), c, space); err != nil {
			t.Errorf("testenv: delete the keys of %s: %v", space, err)
		}
		_ = c.Close()
	})
	return c, space
}

// DeleteSpace deletes every key of space with SCAN (on every master in Cluster). It is
// how tests simulate "Redis lost everything" without disturbing other tests.
func DeleteSpace(ctx context.Context, c redis.UniversalClient, space rkey.Space) error {
	del := func(ctx context.Context, cl *redis.Client) error {
		it := cl.Scan(ctx, 0, string(space)+"*", 500).Iterator()
		for it.Next(ctx) {
			if err := cl.Del(ctx, it.Val()).Err(); err != nil {
				return err
			}
		}
		return it.Err()
	}
	switch cc := c.(type) {
	case *redis.ClusterClient:
		return cc.ForEachMaster(ctx, del)
	case *redis.Client:
		return del(ctx, cc)
	}
	return fmt.Errorf("testenv: DeleteSpace: unsupported client %T", c)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
