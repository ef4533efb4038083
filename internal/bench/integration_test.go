package bench

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"commerce/internal/app"
	"commerce/internal/platform/rkey"
	"commerce/internal/platform/testenv"
)

const incrScript = "return redis.call('INCRBY', KEYS[1], ARGV[1])"

// TestRedisBenchmarkAndGoEvalSha: both Redis baselines run a script call that must always
// succeed, and they do run it the number of times they say.
func TestRedisBenchmarkAndGoEvalSha(t *testing.T) {
	rdb, space := testenv.Redis(t)
	ctx := context.Background()
	key := space.Key("ctr:{x}")
	call := ScriptCall{Source: incrScript, Keys: []string{key}, Args: []string{"1"}}
	sha, err := LoadScript(ctx, rdb, call.Source)
	if err != nil {
		t.Fatal(err)
	}
	res, err := GoEvalSha(ctx, rdb, sha, call, Load{Name: "go", Concurrency: 8, MaxOps: 500})
	if err != nil || res.Errors != 0 || res.Requests != 500 {
		t.Fatalf("GoEvalSha: %v %+v", err, res)
	}
	if n, _ := rdb.Get(ctx, key).Int64(); n != 500 {
		t.Fatalf("counter %d after 500 calls", n)
	}
	if testenv.Cluster() {
		return // redis-benchmark --cluster is exercised by commerce-bench itself
	}
	res, err = RedisBenchmark(ctx, testenv.RedisAddrs()[0], "", false, sha, call, 2000, 8)
	if _, lerr := exec.LookPath("redis-benchmark"); lerr != nil {
		if !errors.Is(err, exec.ErrNotFound) {
			t.Fatalf("without redis-benchmark: err = %v, want exec.ErrNotFound", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.RPS <= 0 || res.Errors != 0 || !strings.Contains(res.Note, "EVALSHA") {
		t.Fatalf("redis-benchmark result %+v", res)
	}
	if n, _ := rdb.Get(ctx, key).Int64(); n != 2500 {
		t.Fatalf("counter %d after 500 + 2000 calls", n)
	}
}

func baseConfig() app.Config {
	cfg := app.Config{Env: "test", LogLevel: "error", DatabaseURL: testenv.AdminURL(), PGMaxConns: 10,
		PGTimeout: 3 * time.Second, MigrateOnStart: true, RedisPoolSize: 32, RedisTimeout: 2 * time.Second,
		Currency: "USD", HoldTTL: 15 * time.Minute, CheckoutTTL: 15 * time.Minute, SweepInterval: 30 * time.Second,
		CommitRecordRetention: 168 * time.Hour,
		SessionTTL:            time.Hour, CustomerCartTTL: time.Hour, ProductTTL: time.Hour, DiscountTTL: time.Hour,
		IdempotencyTTL: time.Hour, SessionsPerMinute: 60, RateLimitPerSec: 50, WarmProductsCron: "0 */6 * * *",
		WarmDiscountsCron: "0 */2 * * *", ReconcileCron: "*/15 * * * *", OutboxInterval: time.Second,
		JobTimeout: time.Minute, ShutdownTimeout: 5 * time.Second,
		NearCacheTTL: time.Second, NearCacheMaxEntries: 1000, NearCacheMaxBytes: 16 << 20}
	if addrs := testenv.RedisAddrs(); len(addrs) > 1 {
		cfg.RedisAddrs = addrs
	} else {
		cfg.RedisURL = "redis://" + addrs[0] + "/0"
	}
	return cfg
}

// TestRunSmall runs the whole bench with tiny sizes against the real services: every step
// is measured (none fails), no figure has an error, every ratio has a value, the flash
// sale sells exactly its stock, the report is written, and the run's database and Redis
// keys are gone afterwards.
func TestRunSmall(t *testing.T) {
	ctx := context.Background()
	opt := Options{OutDir: t.TempDir(), Concurrency: 8, Phase: 200 * time.Millisecond, Warmup: 20 * time.Millisecond,
		Products: 300, VariantsPer: 2, FlashShoppers: 120, FlashStock: 30, CreationShoppers: 40, CartsPerWorker: 2,
		RedisBenchmarkN: 2000, Deadline: 4 * time.Minute, Out: io.Discard,
		Scale: ScaleOptions{Holds: []int{1, 50, 500}, Products: 300, Ops: 20}, BulkSKUs: 500}
	if testing.Verbose() {
		opt.Out = os.Stdout
	}
	rep, err := Run(ctx, baseConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)), opt)
	if err != nil {
		t.Fatalf("%v (failed: %v, errors: %v)", err, rep.Failed, rep.Erred())
	}
	if len(rep.Failed) > 0 {
		t.Fatalf("steps failed: %v", rep.Failed)
	}
	measured := map[string]bool{}
	for _, r := range append(append([]Result{}, rep.Baselines...), rep.Scenarios...) {
		measured[r.Name] = true
		if r.Requests == 0 {
			t.Errorf("%s: no requests", r.Name)
		}
		if r.Errors != 0 {
			t.Errorf("%s: %d errors: %v", r.Name, r.Errors, r.ErrorSamples)
		}
	}
	for _, b := range []string{"baseline: GET /healthz", "baseline: PostgreSQL-only reserve (hot row)"} {
		if !measured[b] {
			t.Errorf("baseline %q missing", b)
		}
	}
	for _, step := range []string{"floor: GET " + FloorRedisPath, "floor: GET " + FloorCommitPath, "floor: GET /v1/cart", "GET /v1/cart, ", "flash sale", "checkout creation", "catalog storm cold", "catalog storm warm", "cart churn", "full journey"} {
		found := false
		for name := range measured {
			if strings.HasPrefix(name, step) {
				found = true
			}
		}
		if !found {
			t.Errorf("step %q not measured", step)
		}
	}
	if len(rep.Scale) != 5 {
		t.Errorf("%d scale curves, want 5", len(rep.Scale))
	}
	for _, c := range rep.Scale {
		if len(c.Points) < 2 || c.Growth == "" || c.Why == "" {
			t.Errorf("scale curve %+v", c)
		}
	}
	if f := rep.FlashSale; f != nil {
		if !f.OK || f.Created != opt.FlashStock || f.SoldOut != int64(opt.FlashShoppers)-opt.FlashStock {
			t.Errorf("flash sale: %+v", f)
		}
	}
	if len(rep.Ratios) == 0 {
		t.Error("no ratios")
	}
	memory := map[string]bool{}
	for _, m := range rep.Memory {
		if m.Bytes <= 0 || m.Keys == 0 {
			t.Errorf("memory figure %+v", m)
		}
		memory[m.What] = true
	}
	for _, what := range []string{"per product cache entry", "per hold (flash sale SKU)", "per checkout (1 line)",
		"per cart line (churn carts)", "per cart line (marginal)", "per session"} {
		if !memory[what] {
			t.Errorf("memory figure %q missing (figures %v, notes %v)", what, memory, rep.Notes)
		}
	}
	for _, x := range rep.Ratios {
		if x.Withheld != "" || x.Value <= 0 || !strings.Contains(x.Line(), "ratio") {
			t.Errorf("ratio %+v", x)
		}
	}
	b, err := os.ReadFile(filepath.Join(opt.OutDir, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Machine.NProc < 1 || back.Machine.Redis == "" || back.Machine.Postgres == "" || back.Settings.Database == "" {
		t.Errorf("machine or settings not described: %+v %+v", back.Machine, back.Settings)
	}
	if _, err := os.Stat(filepath.Join(opt.OutDir, "latest.md")); err != nil {
		t.Fatal(err)
	}

	// Nothing is left behind.
	conn, err := pgx.Connect(ctx, testenv.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", rep.Settings.Database).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists", rep.Settings.Database)
	}
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: testenv.RedisAddrs(), IsClusterMode: testenv.Cluster()})
	defer rdb.Close()
	idx, err := scanSpace(ctx, rdb, rkey.Space(rep.Settings.RedisPrefix))
	if err != nil {
		t.Fatal(err)
	}
	if idx.total != 0 {
		t.Errorf("%d keys of %s left", idx.total, rep.Settings.RedisPrefix)
	}
}
