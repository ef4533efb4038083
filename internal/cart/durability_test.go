package cart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/rkey"
	"commerce/internal/platform/testenv"
)

func TestCustomerCartSurvivesRedisLoss(t *testing.T) {
	pool, _ := testenv.DB(t)
	shared, space := testenv.Redis(t)
	private := testenv.StartRedis(t)
	cases := []struct {
		name  string
		env   func(t *testing.T) *env
		wipe  func(ctx context.Context, e *env) error
		flush func(ctx context.Context, e *env) error
	}{
		{
			name: "FLUSHALL",
			env:  func(t *testing.T) *env { return newEnvOn(t, failFast(t, private.Addr), "", pool) },
			wipe: func(ctx context.Context, e *env) error {
				if err := e.rdb.FlushAll(ctx).Err(); err != nil {
					return err
				}
				return e.rdb.ScriptFlush(ctx).Err()
			},
			flush: func(ctx context.Context, e *env) error { return e.svc.Flush(ctx) },
		},
		{
			name: "key space deleted after a graceful stop",
			env:  func(t *testing.T) *env { return newEnvOn(t, shared, space, pool) },
			wipe: func(ctx context.Context, e *env) error { return testenv.DeleteSpace(ctx, e.rdb, e.space) },
			// Stop drains the queue; a service started afresh restores from PostgreSQL.
			flush: func(ctx context.Context, e *env) error { return e.svc.Stop(ctx) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.env(t)
			ctx := ctxT(t)
			o := CustomerOwner(newCustomerID())
			a, b := e.variant(t, 1250, 50), e.variant(t, 399, 50)
			must(e.svc.Add(ctx, o, a, 3))(t)
			must(e.svc.Add(ctx, o, b, 1))(t)
			before := must(e.svc.SetCoupon(ctx, o, "SAVE10"))(t)
			if err := tc.flush(ctx, e); err != nil {
				t.Fatal(err)
			}
			if err := tc.wipe(ctx, e); err != nil {
				t.Fatal(err)
			}
			if n := e.rdb.Exists(ctx, e.svc.r.cartKey(o)).Val(); n != 0 {
				t.Fatal("the wipe left the cart in Redis")
			}
			fresh := newEnvOn(t, e.rdb, e.space, pool)
			fresh.cat, fresh.stock = e.cat, e.stock
			fresh.svc.catalog, fresh.svc.stock = e.cat, e.stock
			after := must(fresh.svc.Get(ctx, o))(t)
			if fmt.Sprint(after.Lines) != fmt.Sprint(before.Lines) || after.Coupon != "SAVE10" ||
				after.Total != before.Total || !after.UpdatedAt.Equal(before.UpdatedAt) {
				t.Fatalf("restored cart differs:\nbefore %+v\n after %+v", before, after)
			}
			// The restored cart is live again: writes go on from it.
			if c := must(fresh.svc.Add(ctx, o, a, 1))(t); qtyOf(c, a) != 4 || qtyOf(c, b) != 1 {
				t.Fatalf("write after restore: %+v", c.Lines)
			}
		})
	}
}

func TestMutationOfAWipedCustomerCartStartsFromTheSnapshot(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	o := CustomerOwner(newCustomerID())
	a, b := e.variant(t, 100, 50), e.variant(t, 100, 50)
	must(e.svc.Add(ctx, o, a, 2))(t)
	if err := e.svc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := testenv.DeleteSpace(ctx, e.rdb, e.space); err != nil {
		t.Fatal(err)
	}
	// The first request after the loss is a write, not a read: it must not start from an
	// empty cart and then overwrite the snapshot.
	c := must(e.svc.Add(ctx, o, b, 1))(t)
	if qtyOf(c, a) != 2 || qtyOf(c, b) != 1 {
		t.Fatalf("add after loss: %+v", c.Lines)
	}
}

func TestExpiredSnapshotIsNotRestored(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	o := CustomerOwner(newCustomerID())
	must(e.svc.Add(ctx, o, e.variant(t, 100, 50), 2))(t)
	if err := e.svc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE customer_carts SET updated_at = now() - interval '31 days' WHERE customer_id = $1`, o.ID); err != nil {
		t.Fatal(err)
	}
	if err := testenv.DeleteSpace(ctx, e.rdb, e.space); err != nil {
		t.Fatal(err)
	}
	if c := must(e.svc.Get(ctx, o))(t); len(c.Lines) != 0 {
		t.Fatalf("a cart idle longer than its TTL came back: %+v", c.Lines)
	}
}

func TestSnapshotNeverGoesBackInTime(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	s := store{pool: e.pool}
	v := e.variant(t, 100, 10)
	newer := wbItem[cartSnapshot]{key: "c1", version: 2000, value: cartSnapshot{Lines: []Line{{VariantID: v, Quantity: 5}}}}
	older := wbItem[cartSnapshot]{key: "c1", version: 1000, value: cartSnapshot{Lines: []Line{{VariantID: v, Quantity: 1}}}}
	if err := s.saveCarts(ctx, []wbItem[cartSnapshot]{newer}); err != nil {
		t.Fatal(err)
	}
	if err := s.saveCarts(ctx, []wbItem[cartSnapshot]{older}); err != nil {
		t.Fatal(err)
	}
	snap, version, found, err := s.loadCart(ctx, "c1")
	if err != nil || !found || version != 2000 || snap.Lines[0].Quantity != 5 {
		t.Fatalf("snapshot %+v version %d found %v err %v", snap, version, found, err)
	}
}

// ---------------------------------------------------------------- preferences

func newPrefs(t *testing.T, opts PrefsOptions) (*Preferences, *env) {
	t.Helper()
	e := newEnv(t)
	return newPrefsOn(t, e, opts), e
}

func newPrefsOn(t *testing.T, e *env, opts PrefsOptions) *Preferences {
	t.Helper()
	p := NewPreferences(e.rdb, e.space, e.pool, opts)
	p.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("stop preferences: %v", err)
		}
	})
	return p
}

func patchOf(t *testing.T, js string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPreferencesMergeShallowly(t *testing.T) {
	p, _ := newPrefs(t, PrefsOptions{})
	ctx := ctxT(t)
	c := newCustomerID()
	if got := string(must(p.Get(ctx, c))(t)); got != "{}" {
		t.Fatalf("new customer: %s", got)
	}
	got := must(p.Patch(ctx, c, patchOf(t, `{"theme": "dark", "sizes": {"shoe": 42}, "n": 1}`)))(t)
	if string(got) != `{"n":1,"sizes":{"shoe":42},"theme":"dark"}` {
		t.Fatalf("first patch: %s", got)
	}
	got = must(p.Patch(ctx, c, patchOf(t, `{"sizes": {"shirt": "M"}, "theme": null, "lang": "fr"}`)))(t)
	want := `{"lang":"fr","n":1,"sizes":{"shirt":"M"}}`
	if string(got) != want {
		t.Fatalf("second patch: %s, want %s", got, want)
	}
	if got := string(must(p.Get(ctx, c))(t)); got != want {
		t.Fatalf("get: %s", got)
	}
	if got := string(must(p.Get(ctx, newCustomerID()))(t)); got != "{}" {
		t.Fatalf("another customer sees %s", got)
	}
}

func TestPreferencesSizeLimit(t *testing.T) {
	p, _ := newPrefs(t, PrefsOptions{})
	ctx := ctxT(t)
	c := newCustomerID()
	// {"k":"<s>"} is 8 bytes plus s.
	exact := fmt.Sprintf(`{"k": %q}`, strings.Repeat("x", MaxPreferencesBytes-8))
	if got := must(p.Patch(ctx, c, patchOf(t, exact)))(t); len(got) != MaxPreferencesBytes {
		t.Fatalf("exactly 4 KiB: %d bytes", len(got))
	}
	if _, err := p.Patch(ctx, c, patchOf(t, `{"j": 1}`)); !errors.Is(err, ErrPreferencesTooLarge) {
		t.Fatalf("4 KiB + a key: %v", err)
	}
	// Replacing the big key with a small one is fine: the limit is on the merged object.
	if got := must(p.Patch(ctx, c, patchOf(t, `{"k": 1, "j": 2}`)))(t); string(got) != `{"j":2,"k":1}` {
		t.Fatalf("after shrinking: %s", got)
	}
}

func TestConcurrentPreferencePatchesKeepEveryKey(t *testing.T) {
	p, _ := newPrefs(t, PrefsOptions{})
	ctx := ctxT(t)
	c := newCustomerID()
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			if _, err := p.Patch(ctx, c, patchOf(t, fmt.Sprintf(`{"k%02d": %d}`, i, i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var m map[string]int
	if err := json.Unmarshal(must(p.Get(ctx, c))(t), &m); err != nil || len(m) != 30 {
		t.Fatalf("%d keys after 30 concurrent patches (%v)", len(m), err)
	}
}

func TestPreferencesPatchedJustBeforeStopAreInPostgreSQL(t *testing.T) {
	// A flush interval of an hour: only Stop's drain can have written them.
	p, e := newPrefs(t, PrefsOptions{Interval: time.Hour, Batch: 1000})
	ctx := ctxT(t)
	want := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			c := newCustomerID()
			got, err := p.Patch(ctx, c, patchOf(t, fmt.Sprintf(`{"i": %d, "name": "c%d"}`, i, i)))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			want[c] = string(got)
			mu.Unlock()
		})
	}
	wg.Wait()
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM preferences`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows before Stop: %d %v (the test needs them unwritten)", n, err)
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := e.pool.Query(ctx, `SELECT customer_id, data::text FROM preferences`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var c, data string
		if err := rows.Scan(&c, &data); err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatalf("snapshot of %s: %v: %s", c, err, data)
		}
		got[c] = string(renderPrefs(encodeFields(m)))
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("PostgreSQL after Stop:\n got %v\nwant %v", got, want)
	}
	// After Stop a patch writes through.
	c := newCustomerID()
	must(p.Patch(ctx, c, patchOf(t, `{"late": true}`)))(t)
	var data string
	if err := e.pool.QueryRow(ctx, `SELECT data::text FROM preferences WHERE customer_id = $1`, c).Scan(&data); err != nil || data != `{"late": true}` {
		t.Fatalf("patch after Stop: %q %v", data, err)
	}
}

func TestPreferencesFallBackToPostgreSQL(t *testing.T) {
	p, e := newPrefs(t, PrefsOptions{})
	ctx := ctxT(t)
	c := newCustomerID()
	must(p.Patch(ctx, c, patchOf(t, `{"a": 1, "b": [1, 2]}`)))(t)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := testenv.DeleteSpace(ctx, e.rdb, e.space); err != nil {
		t.Fatal(err)
	}
	if got := string(must(p.Get(ctx, c))(t)); got != `{"a":1,"b":[1,2]}` {
		t.Fatalf("read after Redis loss: %s", got)
	}
	if n := e.rdb.Exists(ctx, p.r.prefsKey(c)).Val(); n != 1 {
		t.Fatal("the read did not restore the Redis copy")
	}
	// A patch after the loss merges into what PostgreSQL had, not into nothing.
	if err := testenv.DeleteSpace(ctx, e.rdb, e.space); err != nil {
		t.Fatal(err)
	}
	if got := string(must(p.Patch(ctx, c, patchOf(t, `{"c": 3}`)))(t)); got != `{"a":1,"b":[1,2],"c":3}` {
		t.Fatalf("patch after Redis loss: %s", got)
	}
}

func TestPreferencesReadFromPostgreSQLWhileRedisIsDown(t *testing.T) {
	pool, _ := testenv.DB(t)
	srv := testenv.StartRedis(t)
	e := &env{rdb: failFast(t, srv.Addr), space: rkey.Space("p:"), pool: pool}
	p := newPrefsOn(t, e, PrefsOptions{})
	ctx := ctxT(t)
	c := newCustomerID()
	must(p.Patch(ctx, c, patchOf(t, `{"a": 1}`)))(t)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if got := string(must(p.Get(ctx, c))(t)); got != `{"a":1}` {
		t.Fatalf("read with Redis down: %s", got)
	}
	if _, err := p.Patch(ctx, c, patchOf(t, `{"b": 1}`)); err == nil {
		t.Fatal("a patch succeeded with Redis down")
	}
}

func TestWriteBehindRetriesAndDrains(t *testing.T) {
	var (
		mu    sync.Mutex
		saved = map[string]int64{}
		fails atomic.Int32
	)
	fails.Store(3)
	save := func(_ context.Context, items []wbItem[int]) error {
		if fails.Add(-1) >= 0 {
			return errors.New("postgres down")
		}
		mu.Lock()
		defer mu.Unlock()
		for _, it := range items {
			if it.version > saved[it.key] {
				saved[it.key] = it.version
			}
		}
		return nil
	}
	w := newWriteBehind("test", 8, 3, time.Hour, true, slog.New(slog.DiscardHandler), save)
	w.minBackoff = time.Millisecond
	w.start()
	ctx := ctxT(t)
	for i := range 20 {
		w.enqueue(ctx, wbItem[int]{key: fmt.Sprint("k", i%5), version: int64(i + 1)})
	}
	if err := w.stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"k0": 16, "k1": 17, "k2": 18, "k3": 19, "k4": 20}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(saved) != fmt.Sprint(want) {
		t.Fatalf("saved %v, want %v (latest version of every key)", saved, want)
	}
	if w.dropped.Load() != 0 {
		t.Fatalf("%d dropped", w.dropped.Load())
	}
}

// failFast is a client for a private redis-server that gives up at once when the server
// is down (the defaults retry for seconds).
func failFast(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestOneRefusedPreferenceNeverDelaysAnother: a record PostgreSQL refuses (here a NUL in
// a jsonb value, which the HTTP boundary never lets through, written below it) is set
// aside with a count and a log line, and another customer's change, patched after it,
// reaches PostgreSQL within one flush, then both keep working.
func TestOneRefusedPreferenceNeverDelaysAnother(t *testing.T) {
	const interval = 200 * time.Millisecond
	p, e := newPrefs(t, PrefsOptions{Interval: interval})
	ctx := ctxT(t)
	bad, good := newCustomerID(), newCustomerID()
	if _, err := p.Patch(ctx, bad, map[string]json.RawMessage{"nick": json.RawMessage(`"x\u0000y"`)}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := p.Patch(ctx, good, patchOf(t, `{"nick":"ok"}`)); err != nil {
		t.Fatal(err)
	}
	var got string
	deadline := start.Add(2*interval + 100*time.Millisecond) // one flush period, plus the one in progress
	for time.Now().Before(deadline) {
		err := e.pool.QueryRow(ctx, `SELECT data->>'nick' FROM preferences WHERE customer_id=$1`, good).Scan(&got)
		if err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got != "ok" {
		t.Fatalf("the good customer's preferences were not in PostgreSQL %v after the patch (one bad record blocks the queue)", time.Since(start))
	}
	if n := p.wb.setAside.Load(); n != 1 {
		t.Fatalf("set aside %d records, want 1", n)
	}
	// The queue is not stuck: a later change of the good customer is written too.
	if _, err := p.Patch(ctx, good, patchOf(t, `{"nick":"again"}`)); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("flush after a set-aside record: %v", err)
	}
	if err := e.pool.QueryRow(ctx, `SELECT data->>'nick' FROM preferences WHERE customer_id=$1`, good).Scan(&got); err != nil || got != "again" {
		t.Fatalf("second change: %q, %v", got, err)
	}
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM preferences WHERE customer_id=$1`, bad).Scan(&n); err != nil || n != 0 {
		t.Fatalf("bad record rows: %d, %v", n, err)
	}
}
