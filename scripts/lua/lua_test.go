package lua_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/testenv"
	"commerce/scripts/lua"
)

// libsOf names the library each script is run with by its Go package (internal/cart
// prepends cart_lib, internal/inventory inv_lib).
func libsOf(name string) []string {
	switch {
	case strings.HasPrefix(name, "cart_"):
		return []string{"cart_lib"}
	case strings.HasPrefix(name, "inv_"):
		return []string{"inv_lib"}
	}
	switch name {
	case "reserve", "release", "commit", "finalize", "load", "reconcile", "sweep", "levels":
		return []string{"inv_lib"}
	}
	return nil
}

// Every script, with its libraries, compiles in the real Redis.
func TestEveryScriptLoads(t *testing.T) {
	rdb, _ := testenv.Redis(t)
	ctx := context.Background()
	names := lua.Names()
	if len(names) < 20 {
		t.Fatalf("only %d scripts found: %v", len(names), names)
	}
	for _, n := range names {
		if err := redis.NewScript(lua.Source(n, libsOf(n)...)).Load(ctx, rdb).Err(); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

func TestSourceRefusesALibraryAsAScript(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Source(\"inv_lib\") did not panic")
		}
	}()
	_ = lua.Source("inv_lib")
}

// The time helpers are shared: no script or library reads TIME except base_lib's now_ms
// and now_us.
func TestOnlyBaseLibReadsTime(t *testing.T) {
	for _, n := range lua.Names() {
		if c := strings.Count(lua.Source(n, libsOf(n)...), "redis.call('TIME')"); c != 2 {
			t.Errorf("%s: %d TIME calls, want only base_lib's two", n, c)
		}
	}
}

// cart_merge, cart_merge_drop and cart_restore write several fields and Lua has no
// rollback: every bad argument must be refused with an error reply before the first
// write. Each case puts a valid part first, so that a script that checked arguments only
// as it used them would already have written something when it met the bad one.
func TestCartScriptsValidateBeforeTheFirstWrite(t *testing.T) {
	rdb, space := testenv.Redis(t)
	ctx := context.Background()
	const ttl = "60000"
	cust := space.Key("cart:{customer:v}")
	sess := space.Key("cart:{session:v}")
	fresh := space.Key("cart:{customer:fresh}")
	setup := func() {
		t.Helper()
		rdb.Del(ctx, cust, sess, fresh)
		rdb.HSet(ctx, cust, "l:a", 1, "updated_at", 100, "r", "1")
		rdb.HSet(ctx, sess, "l:a", 2, "l:b", 3, "updated_at", 200)
	}
	snapshot := func() map[string]map[string]string {
		out := map[string]map[string]string{}
		for _, k := range []string{cust, sess, fresh} {
			out[k] = rdb.HGetAll(ctx, k).Val()
		}
		return out
	}
	cases := []struct {
		script string
		key    string
		argv   []any
	}{
		{"cart_merge", cust, []any{"0", ttl, "m:s1", "200", "", 100, 50, "l:b", 3, 10, "l:c", "x", 10}},
		{"cart_merge", cust, []any{"0", ttl, "m:s1", "200", "", 100, 50, "l:b", 3, 10, "l:c", 1, -1}},
		{"cart_merge", cust, []any{"0", ttl, "m:s1", "200", "", 100, 50, "l:b", 3, 10, "c", 1, 10}},
		{"cart_merge", cust, []any{"0", ttl, "m:s1", "200", "", 100, 50, "l:b", 3, 10, "l:c", 1}},
		{"cart_merge", cust, []any{"0", ttl, "m:s1", "200", "", "x", 50, "l:b", 3, 10}},
		{"cart_merge", cust, []any{"0", ttl, "s1", "200", "", 100, 50, "l:b", 3, 10}},
		{"cart_merge", cust, []any{"0", "0", "m:s1", "200", "", 100, 50, "l:b", 3, 10}},
		{"cart_merge_drop", sess, []any{"0", ttl, "150", "", "l:a", 1, "l:b", "x"}},
		{"cart_merge_drop", sess, []any{"0", ttl, "150", "", "l:a", 1, "l:b", 0}},
		{"cart_merge_drop", sess, []any{"0", ttl, "150", "", "l:a", 1, "l:b"}},
		{"cart_merge_drop", sess, []any{"0", ttl, "", "", "l:a", 1}},
		{"cart_merge_drop", sess, []any{"0", "x", "150", "", "l:a", 1}},
		{"cart_restore", fresh, []any{"0", ttl, "x", "", "l:a", 1}},
		{"cart_restore", fresh, []any{"0", ttl, "100", "", "l:a", 1, "l:b"}},
		{"cart_restore", fresh, []any{"0", ttl, "100", "", "l:a", 1, "", 2}},
		{"cart_restore", fresh, []any{"0", "-5", "100", "", "l:a", 1}},
		{"cart_restore", fresh, []any{"2", ttl, "100", "", "l:a", 1}},
	}
	for _, c := range cases {
		setup()
		before := snapshot()
		err := redis.NewScript(lua.Source(c.script, "cart_lib")).Run(ctx, rdb, []string{c.key}, c.argv...).Err()
		if err == nil || !strings.Contains(err.Error(), "ERR "+c.script+": bad ") {
			t.Errorf("%s %v: err = %v, want an error reply 'ERR %s: bad ...'", c.script, c.argv, err, c.script)
		}
		if after := snapshot(); !equal(before, after) {
			t.Errorf("%s %v: wrote before refusing:\n before %v\n after  %v", c.script, c.argv, before, after)
		}
	}
	// The valid forms of the same calls do write: the cases above fail for their bad part.
	setup()
	for _, c := range []struct {
		script, key string
		argv        []any
		want        string
	}{
		{"cart_merge", cust, []any{"0", ttl, "m:s1", "200", "", 100, 50, "l:b", 3, 10}, "OK"},
		{"cart_merge_drop", sess, []any{"0", ttl, "150", "", "l:a", 1, "l:b", 3}, "SUBTRACTED"},
		{"cart_restore", fresh, []any{"0", ttl, "100", "", "l:a", 1}, "OK"},
	} {
		v, err := redis.NewScript(lua.Source(c.script, "cart_lib")).Run(ctx, rdb, []string{c.key}, c.argv...).Slice()
		if err != nil || len(v) == 0 || v[0] != c.want {
			t.Errorf("%s %v = %v, %v; want status %s", c.script, c.argv, v, err, c.want)
		}
	}
}

func equal(a, b map[string]map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, m := range a {
		n := b[k]
		if len(m) != len(n) {
			return false
		}
		for f, v := range m {
			if n[f] != v {
				return false
			}
		}
	}
	return true
}
