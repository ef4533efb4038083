//go:build ha

package app

// High availability against real processes: a Redis master, its replica and three
// sentinels (scripts/ha-redis.sh), and a PostgreSQL primary with a streaming standby
// (scripts/ha-postgres.sh), all from Debian's packages on private ports. `make test-ha`
// runs them (go test -tags ha). Each test puts 32 shoppers and three catalog readers on
// the service, fails a node over, and checks what the shoppers were told against what
// PostgreSQL kept.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/db"
	"commerce/internal/platform/jobs"
)

const haShoppers = 32

// haScript runs scripts/NAME with args and returns the KEY=VALUE lines it printed.
func haScript(t *testing.T, name string, args ...string) map[string]string {
	t.Helper()
	cmd := exec.Command("../../scripts/"+name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s%s", name, args, err, stdout.String(), stderr.String())
	}
	out := map[string]string{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			out[k] = v
		}
	}
	return out
}

// haPort reads a base port from the environment (make test-ha passes them) or uses def.
func haPort(name string, def int) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return strconv.Itoa(def)
}

// haLoad is the checkout load: shoppers buying one unit of a plentiful or a scarce variant
// (every step repeated after a 503, as a storefront does with Retry-After; a shopper whose
// session or checkout vanished starts over), and readers of the catalog.
type haLoad struct {
	e               *chaosEnv
	product         string
	plenty, scarce  string
	log             *eventLog
	stop            context.CancelFunc
	ctx             context.Context
	wg              sync.WaitGroup
	pending         sync.Map // shops stopped mid-completion
	mu              sync.Mutex
	completeLatency []time.Duration // completions answered 200 at the first try
}

func startHALoad(e *chaosEnv, product, plenty, scarce string) *haLoad {
	ctx, stop := context.WithCancel(context.Background())
	l := &haLoad{e: e, product: product, plenty: plenty, scarce: scarce, log: &eventLog{orders: map[string]bool{}}, ctx: ctx, stop: stop}
	for _, path := range []string{"/v1/products/" + product, "/v1/products?per_page=5", "/v1/variants/" + plenty + "/availability"} {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				l.log.timed("catalog", path, func() answer { return e.send("GET", path, "", nil) })
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	for i := 0; i < haShoppers; i++ {
		l.wg.Add(1)
		go func(i int) {
			defer l.wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				variant := plenty
				if (i+n)%3 == 0 {
					variant = scarce
				}
				l.journey(variant)
			}
		}(i)
	}
	return l
}

func (l *haLoad) journey(variant string) {
	s := &shop{e: l.e}
	step := func(what string, fn func() answer) answer {
		for l.ctx.Err() == nil {
			r := l.log.timed("redis", what, fn)
			if r.status == http.StatusServiceUnavailable {
				time.Sleep(25 * time.Millisecond)
				continue
			}
			return r
		}
		return answer{}
	}
	if r := step("session", s.newSession); r.status != http.StatusCreated {
		return
	}
	if r := step("cart", func() answer { return s.add(variant, 1) }); r.status != http.StatusOK && r.status != http.StatusCreated {
		return
	}
	if r := step("checkout", s.startCheckout); r.status != http.StatusCreated && r.status != http.StatusOK {
		return
	}
	first := true
	start := time.Now()
	r := step("complete", func() answer {
		r := s.complete()
		if r.status == http.StatusServiceUnavailable {
			first = false
		}
		return r
	})
	switch {
	case r.status == http.StatusOK:
		l.log.order(field(r, "order", "id"))
		if first {
			l.mu.Lock()
			l.completeLatency = append(l.completeLatency, time.Since(start))
			l.mu.Unlock()
		}
	case r.status == 0:
		l.pending.Store(s, true)
	}
}

// waitOrders waits until the shoppers have n confirmed orders.
func (l *haLoad) waitOrders(t *testing.T, n int, within time.Duration) {
	t.Helper()
	waitFor(t, within, fmt.Sprintf("%d orders", n), func() bool {
		_, ids := l.log.snapshot()
		return len(ids) >= n
	})
}

// firstSuccessAfter returns when the first request of kind what that started after t0
// succeeded (ok), and whether one did.
func (l *haLoad) firstSuccessAfter(t0 time.Time, what string, ok func(int) bool) (time.Time, bool) {
	events, _ := l.log.snapshot()
	var first time.Time
	for _, ev := range events {
		if ev.what == what && ok(ev.status) && ev.start.After(t0) && (first.IsZero() || ev.end.Before(first)) {
			first = ev.end
		}
	}
	return first, !first.IsZero()
}

// finish stops the load and completes the shoppers that were stopped mid-completion.
func (l *haLoad) finish() {
	l.stop()
	l.wg.Wait()
	l.pending.Range(func(k, _ any) bool {
		s := k.(*shop)
		for i := 0; i < 100; i++ {
			r := s.complete()
			if r.status == http.StatusOK {
				l.log.order(field(r, "order", "id"))
			}
			if r.status != http.StatusServiceUnavailable && r.status != http.StatusConflict {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		return true
	})
}

// verify checks the load's answers: catalog reads 200 throughout, no 5xx but 503, and
// every confirmed order in PostgreSQL exactly once; it returns the confirmed orders that
// PostgreSQL does not have (lostOK: whether that is reported rather than failed).
func (l *haLoad) verify(t *testing.T, lostOK bool) (confirmed, lost int) {
	t.Helper()
	events, orders := l.log.snapshot()
	var catalogReads, redisCalls, unavailable int
	for _, ev := range events {
		if ev.kind == "catalog" {
			catalogReads++
			if ev.status != http.StatusOK {
				t.Errorf("catalog read %s answered %d at %s", ev.what, ev.status, ev.start.Format("15:04:05.000"))
			}
			continue
		}
		redisCalls++
		if ev.status == http.StatusServiceUnavailable {
			unavailable++
		}
		if ev.status >= 500 && ev.status != http.StatusServiceUnavailable {
			t.Errorf("%s answered %d", ev.what, ev.status)
		}
	}
	n := l.e.ordersExist(orders)
	if n != len(orders) && !lostOK {
		t.Errorf("%d orders confirmed to shoppers, %d in PostgreSQL: acknowledged orders were lost", len(orders), n)
	}
	var dup int
	if err := l.e.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM (SELECT checkout_id FROM orders GROUP BY checkout_id HAVING count(*) > 1) d`).Scan(&dup); err != nil {
		t.Fatal(err)
	}
	if dup != 0 {
		t.Errorf("%d checkouts have more than one order", dup)
	}
	t.Logf("load: %d catalog reads, %d shopper requests (%d answered 503), %d orders confirmed", catalogReads, redisCalls, unavailable, len(orders))
	return len(orders), len(orders) - n
}

func (l *haLoad) completeP50() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := slices.Clone(l.completeLatency)
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// newHAEnv builds an app from cfg and a direct pool on its database for the assertions.
func newHAEnv(t *testing.T, cfg Config) *chaosEnv {
	t.Helper()
	cfg.RedisTimeout, cfg.PGTimeout = 300*time.Millisecond, time.Second
	a, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(haLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	pool, err := db.Open(context.Background(), cfg.DatabaseURL, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &chaosEnv{t: t, a: a, h: a.Handler(), pool: pool}
}

// sentinelMaster asks a sentinel for the current master's address.
func sentinelMaster(ctx context.Context, s *redis.SentinelClient, name string) string {
	a, err := s.GetMasterAddrByName(ctx, name).Result()
	if err != nil || len(a) != 2 {
		return ""
	}
	return a[0] + ":" + a[1]
}

// TestHARedisSentinelFailover: 32 shoppers buy while Sentinel fails the master over, once
// on request (SENTINEL FAILOVER: the old master is demoted to a replica) and once by
// losing it (kill -9). Each time: reservations succeed again within 10 s of the new
// master, catalog reads answer 200 throughout, no 5xx but 503, every confirmed order is
// in PostgreSQL once, nothing is oversold, and after a reconcile Redis and PostgreSQL
// agree (drift 0).
func TestHARedisSentinelFailover(t *testing.T) {
	for _, tt := range []struct {
		name string
		port int
		kill bool
	}{{"sentinel-failover", 7101, false}, {"kill-9-master", 7121, true}} {
		t.Run(tt.name, func(t *testing.T) {
			base := haPort("HA_REDIS_BASE_PORT_"+strings.ReplaceAll(tt.name, "-", "_"), tt.port)
			env := haScript(t, "ha-redis.sh", "start", base)
			t.Cleanup(func() { haScript(t, "ha-redis.sh", "stop", base) })
			sentinels, name := strings.Split(env["REDIS_SENTINEL_ADDRS"], ","), env["REDIS_MASTER_NAME"]
			sc := redis.NewSentinelClient(&redis.Options{Addr: sentinels[0]})
			defer sc.Close()
			ctx := context.Background()
			oldMaster := sentinelMaster(ctx, sc, name)
			if oldMaster == "" {
				t.Fatal("the sentinels name no master")
			}

			cfg := testConfig(t)
			cfg.RedisURL, cfg.RedisAddrs, cfg.RedisPrefix = "", nil, ""
			cfg.RedisSentinelAddrs, cfg.RedisMasterName, cfg.RedisReplicaAcks = sentinels, name, 1
			e := newHAEnv(t, cfg)
			const plenty, scarce = 100000, 40
			product, variantA := e.createProduct(plenty)
			_, variantB := e.createProduct(scarce)
			l := startHALoad(e, product, variantA, variantB)
			defer l.stop()
			l.waitOrders(t, 20, 60*time.Second)

			faultAt := time.Now()
			if tt.kill {
				old := redis.NewClient(&redis.Options{Addr: oldMaster})
				pid, err := processID(ctx, old)
				old.Close()
				if err != nil {
					t.Fatal(err)
				}
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Fatalf("kill -9 %d: %v", pid, err)
				}
			} else if err := sc.Failover(ctx, name).Err(); err != nil {
				t.Fatalf("SENTINEL FAILOVER: %v", err)
			}
			var newMasterAt time.Time
			waitFor(t, 30*time.Second, "a new master", func() bool {
				if m := sentinelMaster(ctx, sc, name); m != "" && m != oldMaster {
					newMasterAt = time.Now()
					return true
				}
				return false
			})
			// The load goes on until a reservation made after the switch succeeded (or the
			// 10 s bound passed), then a little more.
			ok := func(s int) bool { return s == http.StatusCreated || s == http.StatusOK }
			deadline := newMasterAt.Add(10 * time.Second)
			var back time.Time
			for time.Now().Before(deadline) {
				if at, found := l.firstSuccessAfter(newMasterAt, "checkout", ok); found {
					back = at
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(time.Second)
			l.finish()
			if back.IsZero() {
				t.Fatalf("no reservation succeeded within 10 s of the new master")
			}
			if _, found := l.firstSuccessAfter(newMasterAt, "complete", func(s int) bool { return s == http.StatusOK }); !found {
				t.Errorf("no completion succeeded after the new master")
			}
			l.verify(t, false)
			e.sweep()
			overA, healA := e.checkNotOversold(variantA, plenty)
			overB, healB := e.checkNotOversold(variantB, scarce)
			over, heal := overA+overB, max(healA, healB)
			soldB, _ := e.sold(variantB)
			t.Logf("%s: sentinels named the new master %v after the fault; reservations succeeded again %v after that (%v after the fault); scarce variant sold %d/%d; %d units held beyond on_hand after the failover, settled by the sweep %v later",
				tt.name, newMasterAt.Sub(faultAt).Round(time.Millisecond), back.Sub(newMasterAt).Round(time.Millisecond),
				back.Sub(faultAt).Round(time.Millisecond), soldB, scarce, over, heal.Round(time.Second))
		})
	}
}

// checkNotOversold is checkNoOversell for a Redis failover: units sold never exceed the
// stock, on_hand is the stock minus the units sold, and after a reconcile Redis agrees with
// PostgreSQL (drift 0, available+held = on_hand, available ≥ 0). Redis replicates
// asynchronously: a write the promoted replica never received (a finalize after a sale, a
// release) can come back as a hold of a checkout whose sale PostgreSQL already settled.
// Such a hold is committing, so the sweep settles it from PostgreSQL once its commit lease
// is over; until then available can be negative (units held twice, never sold twice). The
// check waits for that (sweeping and reconciling as the jobs would) and returns how many
// units were over-held at first and how long they took to heal.
func (e *chaosEnv) checkNotOversold(variant string, stock int64) (overHeld int64, healed time.Duration) {
	e.t.Helper()
	sold, onHand := e.sold(variant)
	if sold > stock {
		e.t.Errorf("variant %s oversold: %d units sold of %d", variant, sold, stock)
	}
	if onHand != stock-sold {
		e.t.Errorf("variant %s: on_hand %d, want stock %d − sold %d", variant, onHand, stock, sold)
	}
	start := time.Now()
	for {
		l := e.reconciledLevels(variant)
		if l.Drift != 0 || l.Available+l.Held != l.OnHand || l.OnHand != onHand {
			e.t.Errorf("variant %s after reconcile: %+v (PostgreSQL on_hand %d), want no drift and available+held = on_hand",
				variant, l, onHand)
			return overHeld, 0
		}
		if l.Available >= 0 {
			return overHeld, time.Since(start)
		}
		if overHeld == 0 {
			overHeld = -l.Available
			e.explainHolds(variant)
		}
		if time.Since(start) > time.Minute {
			e.t.Errorf("variant %s: %d units still held beyond on_hand a minute after the failover", variant, -l.Available)
			return overHeld, time.Since(start)
		}
		time.Sleep(time.Second)
		e.sweep()
	}
}

// explainHolds logs each hold of variant with the state of its checkout in PostgreSQL.
func (e *chaosEnv) explainHolds(variant string) {
	ctx := context.Background()
	holds, err := e.a.Redis.ZRangeWithScores(ctx, e.a.Space.Key("inv:{", variant, "}:holds"), 0, -1).Result()
	if err != nil {
		e.t.Logf("holds of %s: %v", variant, err)
		return
	}
	for _, z := range holds {
		holder, v := fmt.Sprint(z.Member), time.UnixMilli(int64(z.Score)).Format("15:04:05.000")
		var state string
		var order int
		_ = e.pool.QueryRow(ctx, `SELECT state, (SELECT count(*) FROM orders WHERE checkout_id = c.id) FROM checkouts c WHERE id::text = $1`, holder).Scan(&state, &order)
		e.t.Logf("hold of %s by %s (until %s): checkout state %q, orders %d", variant, holder, v, state, order)
	}
}

// sweep runs the sweep job once, as its schedule would within SWEEP_INTERVAL: expired holds
// return, and commits cut off by the failover are settled from PostgreSQL (a sale that
// committed there is finalized in Redis, one that did not gives its hold back).
func (e *chaosEnv) sweep() {
	e.t.Helper()
	for _, job := range []string{"checkout_recovery", "checkout_expiry", "hold_sweep"} {
		err := e.a.Domains().Jobs.RunNow(context.Background(), job)
		for i := 0; errors.Is(err, jobs.ErrLocked) && i < 100; i++ { // its scheduled run is on
			time.Sleep(50 * time.Millisecond)
			err = e.a.Domains().Jobs.RunNow(context.Background(), job)
		}
		if err != nil {
			e.t.Fatalf("%s: %v", job, err)
		}
	}
}

// processID reads a Redis server's pid from INFO server.
func processID(ctx context.Context, c *redis.Client) (int, error) {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("no process_id in INFO server")
}

// TestHAPostgresFailover: 32 shoppers buy while the PostgreSQL primary is killed (kill -9
// of the postmaster and every backend) and its streaming standby promoted. With
// synchronous replication no confirmed order may be lost; with asynchronous replication
// the number lost is measured and reported. Writes are back within 15 s of the
// promotion; nothing is duplicated or oversold on the new primary; the catalog answers 200
// throughout (from the L2 cache while PostgreSQL is away).
func TestHAPostgresFailover(t *testing.T) {
	for _, tt := range []struct {
		mode string
		port int
	}{{"sync", 7201}, {"async", 7211}} {
		t.Run(tt.mode, func(t *testing.T) {
			base := haPort("HA_PG_BASE_PORT_"+tt.mode, tt.port)
			env := haScript(t, "ha-postgres.sh", "start", base, tt.mode)
			t.Cleanup(func() { haScript(t, "ha-postgres.sh", "stop", base) })
			cfg := testConfig(t)
			cfg.DatabaseURL, cfg.MigrateOnStart = env["DATABASE_URL"], true
			e := newHAEnv(t, cfg)
			commit := commitLatency(t, e)
			const plenty, scarce = 100000, 40
			product, variantA := e.createProduct(plenty)
			_, variantB := e.createProduct(scarce)
			// Catalog reads must not depend on PostgreSQL while it fails over: warm them.
			for _, p := range []string{"/v1/products/" + product, "/v1/products?per_page=5"} {
				e.send("GET", p, "", nil)
			}
			l := startHALoad(e, product, variantA, variantB)
			defer l.stop()
			l.waitOrders(t, 30, 60*time.Second)
			p50 := l.completeP50()

			killAt := time.Now()
			haScript(t, "ha-postgres.sh", "kill-primary", base)
			time.Sleep(time.Second) // a failover manager's detection time, at its shortest
			haScript(t, "ha-postgres.sh", "promote", base, tt.mode)
			promotedAt := time.Now()
			ok := func(s int) bool { return s == http.StatusCreated || s == http.StatusOK }
			var back time.Time
			for time.Now().Before(promotedAt.Add(15 * time.Second)) {
				if at, found := l.firstSuccessAfter(promotedAt, "complete", ok); found {
					back = at
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(time.Second)
			l.finish()
			if back.IsZero() {
				t.Fatalf("no write (order completion) succeeded within 15 s of the promotion")
			}
			// The assertions read the new primary through a fresh pool.
			e.pool.Close()
			pool, err := db.Open(context.Background(), cfg.DatabaseURL, 4)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			e.pool = pool
			confirmed, lost := l.verify(t, tt.mode == "async")
			e.sweep()
			if tt.mode == "sync" && lost != 0 {
				t.Errorf("synchronous replication lost %d of %d confirmed orders", lost, confirmed)
			}
			e.checkNoOversell(variantA, plenty)
			e.checkNoOversell(variantB, scarce)
			t.Logf("%s replication: %d orders confirmed, %d lost at failover; writes back %v after the promotion (%v after the kill); "+
				"single-row commit %v; order completion p50 %v under %d shoppers",
				tt.mode, confirmed, lost, back.Sub(promotedAt).Round(time.Millisecond), back.Sub(killAt).Round(time.Millisecond),
				commit.Round(time.Microsecond), p50.Round(time.Microsecond), haShoppers)
		})
	}
}

// commitLatency is the mean of 200 single-row commits (what synchronous replication adds
// to every write transaction).
func commitLatency(t *testing.T, e *chaosEnv) time.Duration {
	t.Helper()
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS ha_commit_probe (n int)`); err != nil {
		t.Fatal(err)
	}
	const n = 200
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := e.pool.Exec(ctx, `INSERT INTO ha_commit_probe VALUES ($1)`, i); err != nil {
			t.Fatal(err)
		}
	}
	return time.Since(start) / n
}

// haLogWriter sends the service's error log lines to the test log (the cause of any 5xx
// but the expected 503s).
type haLogWriter struct{ t *testing.T }

func (w haLogWriter) Write(p []byte) (int, error) {
	if line := strings.TrimSpace(string(p)); !strings.Contains(line, "status=503") {
		w.t.Log(line)
	}
	return len(p), nil
}
