package fault_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"commerce/internal/platform/fault"
	"commerce/internal/platform/testenv"
)

// TestRedisOutOfMemoryIsUnavailable: a Redis at maxmemory that refuses writes is a
// dependency that cannot serve now (503), not a bug of the caller's (500).
func TestRedisOutOfMemoryIsUnavailable(t *testing.T) {
	srv := testenv.StartRedis(t)
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	err := c.Set(ctx, "k", strings.Repeat("x", 1024), 0).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "OOM") {
		t.Fatalf("SET at maxmemory: got %v, want an OOM error", err)
	}
	if !fault.IsUnavailable(err) {
		t.Fatalf("IsUnavailable(%v) = false, want true", err)
	}
}
