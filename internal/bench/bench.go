// Package bench is the load generator and report of `commerce bench`: it starts the real
// service in-process on a database and a Redis key space created for the run, drives it
// over HTTP on 127.0.0.1 with closed-loop clients, measures the baselines of the same
// machine in the same run (redis-benchmark EVALSHA of the reserve script, GET /healthz,
// a PostgreSQL-only reservation), and reports every scenario as a ratio to its baseline.
// Every run is bounded in operations and time and removes what it created.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"commerce/internal/app"
)

// Options size a run. DefaultOptions gives the quick and the full run.
type Options struct {
	Quick            bool
	OutDir           string        // where latest.json and latest.md go ("" = do not write)
	Concurrency      int           // closed-loop clients of every phase
	Phase            time.Duration // measured duration of a timed phase
	Warmup           time.Duration // unrecorded warm-up before a timed phase
	Products         int           // catalog size of the read storm
	VariantsPer      int
	FlashShoppers    int   // shoppers racing for the hot SKU
	FlashStock       int64 // units of the hot SKU
	CreationShoppers int   // shoppers of the "every checkout succeeds" run
	CartsPerWorker   int   // carts each churn client owns
	RedisBenchmarkN  int   // requests of redis-benchmark
	PGPool           int32 // pool of the PostgreSQL-only baseline (0 = the app's PG_MAX_CONNS)
	Deadline         time.Duration
	Out              io.Writer // progress and results; nil = io.Discard
	// Only, when not empty, runs just these steps (StepNames); the catalog is always loaded.
	Only []string
	// CPUProfile, when set, is where a CPU profile of the whole run (service and generator
	// share the process) is written.
	CPUProfile string
}

// StepNames are the steps of a run, in order, as Options.Only names them.
var StepNames = []string{"healthz", "reserve", "pg", "flash", "creation", "catalog", "churn", "journey", "memory"}

// DefaultOptions returns the full run (a few minutes) or, with quick, the run that
// completes in under a minute on a 2-core machine.
func DefaultOptions(quick bool) Options {
	if quick {
		return Options{Quick: true, OutDir: "bench/results", Concurrency: 64, Phase: 1500 * time.Millisecond,
			Warmup: 200 * time.Millisecond, Products: 2000, VariantsPer: 2, FlashShoppers: 1000, FlashStock: 200,
			CreationShoppers: 500, CartsPerWorker: 4, RedisBenchmarkN: 20000, Deadline: 100 * time.Second}
	}
	return Options{OutDir: "bench/results", Concurrency: 64, Phase: 10 * time.Second, Warmup: time.Second,
		Products: 10000, VariantsPer: 2, FlashShoppers: 5000, FlashStock: 1000, CreationShoppers: 3000,
		CartsPerWorker: 8, RedisBenchmarkN: 300000, Deadline: 15 * time.Minute}
}

// runner holds the state of one run.
type runner struct {
	opt   Options
	env   *Env
	out   io.Writer
	rep   *Report
	cat   Catalog
	paths []string // /v1/products/{id} of cat, most popular first

	healthz, evalBench, evalGo, pgOnly *Result
	pgCommits, svcReserve              *Result
	flash, creation, cold, warm        *Result
	warmPaced                          *Result
	churn, journey                     *Result
	churnCarts                         [][]*churnCart
	flashVariant, creationVariant      uuid.UUID
	flashCheckouts                     []string
	sessions                           []string
}

// Run executes the whole bench against a service built from base (its database server,
// Redis and tuning; the database, key prefix, secrets, listener and rate limits are
// replaced, see BenchConfig), prints progress and results to opt.Out, writes the report
// to opt.OutDir, and removes the database and keys it created. A scenario whose routes are
// not wired, or that fails, is reported as skipped; Run returns an error only when the
// service cannot be started or the report cannot be written.
func Run(ctx context.Context, base app.Config, log *slog.Logger, opt Options) (*Report, error) {
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	if opt.Concurrency < 1 {
		return nil, fmt.Errorf("bench: concurrency must be at least 1")
	}
	parent := ctx
	if opt.Deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opt.Deadline)
		defer cancel()
	}
	began := time.Now()
	env, err := StartEnv(ctx, base, Quiet(log), opt.Concurrency*2)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	if opt.PGPool <= 0 {
		opt.PGPool = env.Cfg.PGMaxConns
	}
	r := &runner{opt: opt, env: env, out: opt.Out}
	r.rep = &Report{Date: stampNow(), Quick: opt.Quick,
		Machine: describeMachine(ctx, env.App.Redis, env.App.Pool, redisAddr(env.Cfg)),
		Settings: Settings{Concurrency: opt.Concurrency, PhaseSec: opt.Phase.Seconds(), WarmupSec: opt.Warmup.Seconds(),
			Products: opt.Products, VariantsPer: opt.VariantsPer, FlashShoppers: opt.FlashShoppers, FlashStock: opt.FlashStock,
			CreationShoppers: opt.CreationShoppers, Carts: opt.Concurrency * opt.CartsPerWorker,
			RedisBenchmarkN: opt.RedisBenchmarkN, PGPool: opt.PGPool, AppPGMaxConns: env.Cfg.PGMaxConns,
			AppRedisPool: env.Cfg.RedisPoolSize, RateLimitPerSec: env.Cfg.RateLimitPerSec,
			SessionsPerMin: env.Cfg.SessionsPerMinute, Database: env.DBName, RedisPrefix: env.Cfg.RedisPrefix}}
	m := r.rep.Machine
	r.printf("commerce bench (%s) on %d CPU, %s, Go %s, Redis %s, PostgreSQL %s\n", modeName(opt.Quick), m.NProc,
		m.MemTotal, m.GoVersion, m.Redis, m.Postgres)
	r.printf("service on %s, database %s, Redis prefix %q, load average %s\n", env.BaseURL, env.DBName,
		env.Cfg.RedisPrefix, orDash(m.LoadAvgStart))

	if opt.CPUProfile != "" {
		f, err := os.Create(opt.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
		r.note("CPU profile of the run written to %s", opt.CPUProfile)
	}
	steps := []struct {
		key, name string
		fn        func(context.Context) error
	}{
		{"", "catalog data", r.loadCatalog},
		{"healthz", "baseline GET /healthz", r.baselineHealthz},
		{"reserve", "baseline reserve EVALSHA", r.baselineReserve},
		{"pg", "baseline PostgreSQL-only reserve", r.baselinePG},
		{"flash", "flash sale", r.flashSale},
		{"creation", "checkout creation", r.checkoutCreation},
		{"catalog", "catalog read storm", r.catalogStorm},
		{"churn", "cart churn", r.cartChurn},
		{"journey", "full journey", r.fullJourney},
		{"memory", "memory", r.memory},
	}
	for _, s := range steps {
		if s.key != "" && len(opt.Only) > 0 && !slices.Contains(opt.Only, s.key) {
			continue
		}
		if ctx.Err() != nil {
			why := fmt.Sprintf("the run's deadline (%s) passed", opt.Deadline)
			if parent.Err() != nil {
				why = "interrupted"
			}
			r.skip(s.name, why)
			continue
		}
		if err := s.fn(ctx); err != nil {
			r.skip(s.name, err.Error())
		}
	}
	r.ratios()
	r.rep.Machine.LoadAvgEnd = loadAvg()
	r.rep.TotalSec = time.Since(began).Seconds()
	r.printf("\n")
	for _, x := range r.rep.Ratios {
		r.printf("%s\n", x.Line())
	}
	for _, t := range r.rep.Targets {
		r.printf("%s\n", t.Line())
	}
	if f := r.rep.FlashSale; f != nil {
		r.printf("flash sale verification: %s: %s\n", okWord(f.OK), f.Detail)
	}
	for _, s := range r.rep.Skipped {
		r.printf("skipped: %s\n", s)
	}
	if err := parent.Err(); err != nil {
		r.printf("interrupted: report not written\n")
		return r.rep, err
	}
	if opt.OutDir != "" {
		if err := r.rep.Write(opt.OutDir); err != nil {
			return r.rep, fmt.Errorf("write report: %w", err)
		}
		r.printf("report: %s/latest.json, %s/latest.md (%.1f s)\n", opt.OutDir, opt.OutDir, r.rep.TotalSec)
	}
	return r.rep, nil
}

func modeName(quick bool) string {
	if quick {
		return "quick"
	}
	return "full"
}

func okWord(ok bool) string {
	if ok {
		return "OK"
	}
	return "FAILED"
}

func (r *runner) printf(format string, a ...any) { fmt.Fprintf(r.out, format, a...) }

func (r *runner) skip(what, why string) {
	r.rep.Skipped = append(r.rep.Skipped, what+": "+why)
	r.printf("  %s: skipped: %s\n", what, why)
}

func (r *runner) note(format string, a ...any) {
	r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, a...))
}

func (r *runner) timed(name string) Load {
	return Load{Name: name, Concurrency: r.opt.Concurrency, Warmup: r.opt.Warmup, Duration: r.opt.Phase}
}

func (r *runner) baseline(res Result) *Result {
	res.Load1 = load1()
	r.rep.Baselines = append(r.rep.Baselines, res)
	r.printf("%s\n", res.Line())
	return &r.rep.Baselines[len(r.rep.Baselines)-1]
}

func (r *runner) scenario(res Result) *Result {
	res.Load1 = load1()
	r.rep.Scenarios = append(r.rep.Scenarios, res)
	r.printf("%s\n", res.Line())
	return &r.rep.Scenarios[len(r.rep.Scenarios)-1]
}

func (r *runner) setup(res Result) {
	r.rep.Setup = append(r.rep.Setup, res)
	r.printf("  (setup) %s\n", res.Line())
}

// needs returns an error naming the routes that are not wired yet.
func (r *runner) needs(routes ...string) error {
	if missing := r.env.MissingRoutes(routes...); len(missing) > 0 {
		return fmt.Errorf("routes not wired yet: %s", strings.Join(missing, ", "))
	}
	return nil
}

func redisAddr(c app.Config) string {
	if len(c.RedisAddrs) > 0 {
		return strings.Join(c.RedisAddrs, ",") + " (cluster)"
	}
	if i := strings.Index(c.RedisURL, "@"); i >= 0 {
		return "redis://" + c.RedisURL[i+1:]
	}
	return c.RedisURL
}

// Steps ------------------------------------------------------------------------------

func (r *runner) loadCatalog(ctx context.Context) error {
	t := time.Now()
	cat, err := CreateProducts(ctx, r.env.App.Pool, "p", r.opt.Products, r.opt.VariantsPer, 1_000_000, r.env.Cfg.Currency)
	if err != nil {
		return err
	}
	r.cat = cat
	r.paths = make([]string, len(cat.Products))
	for i, p := range cat.Products {
		r.paths[i] = "/v1/products/" + p.ID.String()
	}
	r.printf("  catalog: %d products, %d variants inserted with COPY in %s\n", len(cat.Products), len(cat.Variants),
		time.Since(t).Round(time.Millisecond))
	r.note("catalog of %d products × %d variants (1,000,000 units each) inserted with COPY in %s",
		len(cat.Products), r.opt.VariantsPer, time.Since(t).Round(time.Millisecond))
	return nil
}

func (r *runner) baselineHealthz(ctx context.Context) error {
	res, err := Healthz(ctx, r.env.Client, r.timed(""))
	if err != nil {
		return err
	}
	r.healthz = r.baseline(res)
	return nil
}

func (r *runner) baselinePG(ctx context.Context) error {
	res, err := PGReserve(ctx, r.env.Cfg.DatabaseURL, r.opt.PGPool, r.env.Cfg.Currency, r.timed(""))
	if err != nil {
		return err
	}
	r.pgOnly = r.baseline(res)
	res, err = PGCommits(ctx, r.env.Cfg.DatabaseURL, r.opt.PGPool, r.env.Cfg.Currency, r.timed(""))
	if err != nil {
		return err
	}
	r.pgCommits = r.baseline(res)
	return nil
}

func (r *runner) baselineReserve(ctx context.Context) error {
	call, cleanup, err := reserveCall(ctx, r.env)
	if err != nil {
		return err
	}
	defer cleanup()
	sha, err := LoadScript(ctx, r.env.App.Redis, call.Source)
	if err != nil {
		return err
	}
	host := redisHost(r.env.Cfg)
	res, err := RedisBenchmark(ctx, host, r.env.Cfg.RedisPassword, len(r.env.Cfg.RedisAddrs) > 0, sha, call,
		r.opt.RedisBenchmarkN, r.opt.Concurrency)
	if err != nil {
		r.note("redis-benchmark unavailable (%v): the Redis limit is the Go EVALSHA loop instead", err)
	} else {
		r.evalBench = r.baseline(res)
	}
	l := r.timed("baseline: go-redis EVALSHA reserve")
	gres, err := GoEvalSha(ctx, r.env.App.Redis, sha, call, l)
	if err != nil {
		return err
	}
	gres.Note = "the same script call through go-redis, one round trip per operation (= -P 1)"
	r.evalGo = r.baseline(gres)
	sres, err := ServiceReserve(ctx, r.env, r.timed(""))
	if err != nil {
		r.note("inventory.Service.Reserve not measured: %v", err)
	} else {
		r.svcReserve = r.baseline(sres)
	}
	if r.evalBench == nil {
		r.evalBench = r.evalGo
	}
	return nil
}

func redisHost(c app.Config) string {
	if len(c.RedisAddrs) > 0 {
		return c.RedisAddrs[0]
	}
	rest := c.RedisURL
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

var checkoutRoutes = []string{"POST /v1/sessions", "POST /v1/cart/items", "POST /v1/checkouts"}

func (r *runner) flashSale(ctx context.Context) error {
	if err := r.needs(checkoutRoutes...); err != nil {
		return err
	}
	cat, err := CreateProducts(ctx, r.env.App.Pool, "flash", 1, 1, r.opt.FlashStock, r.env.Cfg.Currency)
	if err != nil {
		return err
	}
	r.flashVariant = cat.Variants[0]
	sids, setup, err := makeShoppers(ctx, r.env.Client, "flash sale shoppers (session + add)", r.opt.FlashShoppers,
		r.opt.Concurrency, r.flashVariant)
	r.setup(setup)
	if err != nil {
		return err
	}
	res, ids, counts, err := checkoutAll(ctx, r.env.Client, "flash sale: POST /v1/checkouts (hot SKU)", sids, r.opt.Concurrency)
	if err != nil {
		return err
	}
	res.Note = fmt.Sprintf("%d shoppers, one checkout each, on %d units of one SKU; 409 insufficient_stock is expected",
		len(sids), r.opt.FlashStock)
	r.flash = r.scenario(res)
	r.flashCheckouts = ids
	r.sessions = append(r.sessions, sids[:min(len(sids), 200)]...)
	f := &FlashSale{Shoppers: len(sids), Stock: r.opt.FlashStock, Created: counts[0], SoldOut: counts[1],
		Other: counts[2], Variant: r.flashVariant.String()}
	f.verify(ctx, r.env)
	r.rep.FlashSale = f
	r.printf("flash sale verification: %s: %s\n", okWord(f.OK), f.Detail)
	return nil
}

func (r *runner) checkoutCreation(ctx context.Context) error {
	if err := r.needs(checkoutRoutes...); err != nil {
		return err
	}
	cat, err := CreateProducts(ctx, r.env.App.Pool, "hot", 1, 1, 1_000_000_000, r.env.Cfg.Currency)
	if err != nil {
		return err
	}
	r.creationVariant = cat.Variants[0]
	sids, setup, err := makeShoppers(ctx, r.env.Client, "checkout creation shoppers (session + add)", r.opt.CreationShoppers,
		r.opt.Concurrency, r.creationVariant)
	r.setup(setup)
	if err != nil {
		return err
	}
	res, _, counts, err := checkoutAll(ctx, r.env.Client, "checkout creation: POST /v1/checkouts (hot SKU)", sids, r.opt.Concurrency)
	if err != nil {
		return err
	}
	res.Note = fmt.Sprintf("%d shoppers, one checkout each, one SKU with stock to spare: every checkout reserves (201)", len(sids))
	if counts[0] != int64(len(sids)) {
		res.Note += fmt.Sprintf("; only %d of %d got 201", counts[0], len(sids))
	}
	r.creation = r.scenario(res)
	return nil
}

func (r *runner) catalogStorm(ctx context.Context) error {
	if err := r.needs("GET /v1/products/:id"); err != nil {
		return err
	}
	if len(r.paths) == 0 {
		return fmt.Errorf("no catalog")
	}
	how, err := r.dropProductCache(ctx)
	if err != nil {
		return fmt.Errorf("drop product cache: %w", err)
	}
	l := r.timed(fmt.Sprintf("catalog storm cold: GET /v1/products/{id} (Zipf over %d)", len(r.paths)))
	l.Warmup = 0
	res, err := Drive(ctx, l, productGets(r.env.Client, r.paths, r.opt.Concurrency, 1))
	if err != nil {
		return err
	}
	loaded := r.cachedProducts(ctx)
	res.Note = fmt.Sprintf("cache emptied first (%s), no warm-up; %d distinct products were in the cache afterwards", how, loaded)
	r.cold = r.scenario(res)

	how, err = r.warmProductCache(ctx)
	if err != nil {
		return fmt.Errorf("warm product cache: %w", err)
	}
	res, err = Drive(ctx, r.timed(fmt.Sprintf("catalog storm warm: GET /v1/products/{id} (Zipf over %d)", len(r.paths))),
		productGets(r.env.Client, r.paths, r.opt.Concurrency, 2))
	if err != nil {
		return err
	}
	res.Note = "after " + how
	r.warm = r.scenario(res)

	// The same reads offered at half the closed-loop throughput: the latency a shop sees
	// when the service is not saturated (a closed loop of 64 clients always is: mean
	// latency = clients / throughput).
	l = r.timed(fmt.Sprintf("catalog storm warm, paced at 50 %% (%.0f req/s offered)", r.warm.RPS/2))
	l.Rate = r.warm.RPS / 2
	l.Warmup = 0
	res, err = Drive(ctx, l, productGets(r.env.Client, r.paths, r.opt.Concurrency, 5))
	if err != nil {
		return err
	}
	res.Note = "open-loop pacing from 64 clients; latency measured from each request's due time"
	r.warmPaced = r.scenario(res)
	return nil
}

// dropProductCache empties the product cache through the operator route when it is wired,
// else by deleting the product keys of the run's key space.
func (r *runner) dropProductCache(ctx context.Context) (string, error) {
	if r.env.HasRoute(http.MethodDelete, "/admin/cache") {
		resp, err := r.env.Client.AdminDo(ctx, http.MethodDelete, "/admin/cache?namespace=product", nil)
		if err != nil {
			return "", err
		}
		if err := resp.Expect(http.StatusOK); err != nil {
			return "", err
		}
		return "DELETE /admin/cache?namespace=product → " + truncate(strings.TrimSpace(string(resp.Body)), 60), nil
	}
	idx, err := scanSpace(ctx, r.env.App.Redis, r.env.Space)
	if err != nil {
		return "", err
	}
	var keys []string
	for _, p := range r.cat.Products {
		keys = append(keys, idx.keysFor(p.ID.String())...)
	}
	for i := 0; i < len(keys); i += 500 {
		if err := r.env.App.Redis.Unlink(ctx, keys[i:min(i+500, len(keys))]...).Err(); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("UNLINK of %d product keys", len(keys)), nil
}

// warmProductCache runs the product warmer through the operator route when it is wired,
// else reads every product once.
func (r *runner) warmProductCache(ctx context.Context) (string, error) {
	t := time.Now()
	if r.env.HasRoute(http.MethodPost, "/admin/cache/warm") {
		resp, err := r.env.Client.AdminDo(ctx, http.MethodPost, "/admin/cache/warm", `{"targets":["products"]}`)
		if err != nil {
			return "", err
		}
		if err := resp.Expect(http.StatusOK); err != nil {
			return "", err
		}
		return fmt.Sprintf("POST /admin/cache/warm {products} in %s → %s", time.Since(t).Round(time.Millisecond),
			truncate(strings.TrimSpace(string(resp.Body)), 80)), nil
	}
	res, err := Drive(ctx, Load{Name: "warm by reading", Concurrency: r.opt.Concurrency, MaxOps: int64(len(r.paths))},
		func(ctx context.Context, _ int, i int64) (int, error) {
			resp, err := r.env.Client.Do(ctx, http.MethodGet, r.paths[i], nil)
			if err != nil {
				return 0, err
			}
			return resp.Status, resp.Expect(http.StatusOK)
		})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("reading every product once (%d GETs, /admin/cache/warm not wired) in %s", res.Requests,
		time.Since(t).Round(time.Millisecond)), nil
}

// cachedProducts counts the catalog products that have a key in Redis.
func (r *runner) cachedProducts(ctx context.Context) int {
	idx, err := scanSpace(ctx, r.env.App.Redis, r.env.Space)
	if err != nil {
		return -1
	}
	n := 0
	for _, p := range r.cat.Products {
		if len(idx.keysFor(p.ID.String())) > 0 {
			n++
		}
	}
	return n
}

func (r *runner) cartChurn(ctx context.Context) error {
	if err := r.needs("POST /v1/sessions", "POST /v1/cart/items", "PUT /v1/cart/items/:variant_id",
		"DELETE /v1/cart/items/:variant_id"); err != nil {
		return err
	}
	if len(r.cat.Variants) == 0 {
		return fmt.Errorf("no catalog")
	}
	n := r.opt.Concurrency * r.opt.CartsPerWorker
	sids := make([]string, n)
	setup, err := Drive(ctx, Load{Name: "cart churn sessions", Concurrency: r.opt.Concurrency, MaxOps: int64(n)},
		func(ctx context.Context, _ int, i int64) (int, error) {
			sid, st, err := newSession(ctx, r.env.Client)
			sids[i] = sid
			return st, err
		})
	r.setup(setup)
	if err != nil {
		return err
	}
	if setup.Errors > 0 {
		return fmt.Errorf("creating sessions: %v", setup.ErrorSamples)
	}
	carts := make([][]*churnCart, r.opt.Concurrency)
	for i, sid := range sids {
		w := i % r.opt.Concurrency
		carts[w] = append(carts[w], &churnCart{sid: sid, lines: map[uuid.UUID]int64{}})
	}
	// Churn over the less popular half of the catalog, so that it does not share lines with
	// the journey's carts in a way that matters.
	res, err := Drive(ctx, r.timed(fmt.Sprintf("cart churn: add/set/remove on %d carts", n)),
		cartChurn(r.env.Client, carts, r.cat.Variants, 3))
	if err != nil {
		return err
	}
	res.Note = "each client owns its carts: ~40 % POST /v1/cart/items, ~30 % PUT quantity, ~30 % DELETE line, ≤ 20 lines per cart"
	r.churn = r.scenario(res)
	r.churnCarts = carts
	return nil
}

func (r *runner) fullJourney(ctx context.Context) error {
	if err := r.needs("POST /v1/sessions", "POST /v1/cart/items", "POST /v1/checkouts", "POST /v1/checkouts/:id/complete"); err != nil {
		return err
	}
	if len(r.cat.Variants) == 0 {
		return fmt.Errorf("no catalog")
	}
	steps := make([][4][]time.Duration, r.opt.Concurrency)
	res, err := Drive(ctx, r.timed("full journey: session → add → checkout → complete"),
		journey(r.env.Client, r.cat.Variants, steps, 4))
	if err != nil {
		return err
	}
	res.Note = fmt.Sprintf("one operation = 4 requests (%.0f req/s); random variant of the catalog, payment tok_ok", 4*res.RPS)
	r.journey = r.scenario(res)
	for s, name := range journeySteps {
		var all []time.Duration
		for w := range steps {
			all = append(all, steps[w][s]...)
		}
		var sr Result
		sr.Name = "  journey step: " + name
		sr.Concurrency = r.opt.Concurrency
		sr.summarise(all, time.Duration(res.ElapsedSec*float64(time.Second)))
		sr.Note = "latency of this step inside the journey (req/s = journeys/s)"
		r.scenario(sr)
	}
	return nil
}

// Ratios and targets -------------------------------------------------------------------

func (r *runner) ratios() {
	add := func(name string, s, b *Result, target float64) {
		if x, ok := newRatio(name, s, b, target); ok {
			r.rep.Ratios = append(r.rep.Ratios, x)
		}
	}
	evalName := "raw EVALSHA reserve (redis-benchmark)"
	if r.evalBench != nil && r.evalBench == r.evalGo {
		evalName = "raw EVALSHA reserve (go-redis loop)"
	}
	add("checkout creation (hot SKU) / "+evalName, r.creation, r.evalBench, 0.25)
	add("flash sale checkouts (hot SKU) / "+evalName, r.flash, r.evalBench, 0)
	add("product GET warm / GET /healthz", r.warm, r.healthz, 0.70)
	add("product GET cold / GET /healthz", r.cold, r.healthz, 0)
	if r.svcReserve != nil {
		add("Redis reservation path (inventory.Reserve) / PostgreSQL-only", r.svcReserve, r.pgOnly, 5)
		add("raw EVALSHA reserve (go-redis) / PostgreSQL-only", r.evalGo, r.pgOnly, 0)
	} else {
		add("Redis reservation (EVALSHA, go-redis) / PostgreSQL-only", r.evalGo, r.pgOnly, 5)
	}
	add("checkout creation (HTTP, hot SKU) / PostgreSQL-only reserve", r.creation, r.pgOnly, 0)
	add("checkout creation / PostgreSQL commits (a row per client)", r.creation, r.pgCommits, 0)
	add("cart churn / GET /healthz", r.churn, r.healthz, 0)
	if r.journey != nil {
		req := *r.journey
		req.RPS *= 4
		add("full journey requests / GET /healthz", &req, r.healthz, 0)
		add("full journey checkouts completed / PostgreSQL-only reserve", r.journey, r.pgOnly, 0)
	}
	if r.warm != nil && r.warm.Requests > 0 {
		r.rep.Targets = append(r.rep.Targets, Target{Name: fmt.Sprintf("p99 warm product GET (ms, %d clients)", r.warm.Concurrency),
			Value: r.warm.P99ms, Bound: "< 5 ms", Met: r.warm.P99ms < 5})
	}
	if r.warm != nil && r.warm.Requests > 0 {
		need := float64(r.warm.Concurrency) / 0.005
		r.note("closed loop: mean latency = clients / throughput (Little's law), so p99 < 5 ms at %d clients needs well over "+
			"%.0f product GETs/s; GET /healthz reached %.0f req/s on this machine in this run. The paced run shows the "+
			"latency below saturation.", r.warm.Concurrency, need, rpsOf(r.healthz))
	}
	if p := r.warmPaced; p != nil && p.Requests > 0 {
		r.rep.Targets = append(r.rep.Targets, Target{Name: fmt.Sprintf("p99 warm product GET at 50 %% load (ms, %d clients)", p.Concurrency),
			Value: p.P99ms, Bound: "< 5 ms, informative", Met: p.P99ms < 5})
	}
}

func rpsOf(r *Result) float64 {
	if r == nil {
		return 0
	}
	return r.RPS
}
