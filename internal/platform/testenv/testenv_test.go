package testenv

import (
	"context"
	"testing"
)

func TestDBIsFreshAndMigrated(t *testing.T) {
	a, _ := DB(t)
	b, _ := DB(t)
	ctx := context.Background()
	if _, err := a.Exec(ctx, "INSERT INTO discount_ruleset (id, version) VALUES (1, 5) ON CONFLICT (id) DO UPDATE SET version = 5"); err != nil {
		t.Fatal(err)
	}
	var v int64
	if err := b.QueryRow(ctx, "SELECT version FROM discount_ruleset WHERE id = 1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != 1 {
		t.Fatalf("second database saw the first one's write: version %d", v)
	}
}

func TestRedisSpacesAreSeparate(t *testing.T) {
	c, s1 := Redis(t)
	_, s2 := Redis(t)
	if s1 == s2 {
		t.Fatal("two tests got the same key space")
	}
	ctx := context.Background()
	if err := c.Set(ctx, s1.Key("k"), "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := DeleteSpace(ctx, c, s1); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, s1.Key("k")).Val(); n != 0 {
		t.Fatalf("DeleteSpace left %d keys", n)
	}
}

func TestPrivateRedisRestarts(t *testing.T) {
	s := StartRedis(t)
	c := s.Client()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded on a killed server")
	}
	s.Start()
	if n := c.Exists(ctx, "k").Val(); n != 0 {
		t.Fatal("a restarted server kept data it should have lost")
	}
}
