// Package bench is the load generator and report of `commerce-bench` (make bench): it starts the real
// service in-process on a database and a Redis key space created for the run, drives it
// over HTTP on 127.0.0.1 with closed-loop clients, measures the baselines of the same
// machine in the same run (redis-benchmark EVALSHA of the reserve script, GET /healthz,
// a PostgreSQL-only reservation), and reports every scenario as a ratio to its baseline.
// Every run is bounded in operations and time and removes what it created.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
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
	// BulkSKUs is the size of the bulk stock sync (0: 100 000, or 20 000 quick).
	BulkSKUs int
	// Scale sizes the scale curves (DefaultOptions: 100 000 holds and products in a full
	// run, 10 000 in a quick one).
	Scale ScaleOptions
	// CPUProfile, when set, is where a CPU profile of the whole run (service and generator
	// share the process) is written.
	CPUProfile string
	// ProfileStep, when set with CPUProfile, limits the profile to that step (a key of
	// StepNames), so that its costs are not mixed with the others'.
	ProfileStep string
}

// DefaultOptions returns the full run (a few minutes) or, with quick, the run that
// completes in under a minute on a 2-core machine.
func DefaultOptions(quick bool) Options {
	if quick {
		return Options{Quick: true, OutDir: "bench/results", Concurrency: 64, Phase: 1500 * time.Millisecond,
			Warmup: 200 * time.Millisecond, Products: 2000, VariantsPer: 2, FlashShoppers: 1000, FlashStock: 200,
			CreationShoppers: 500, CartsPerWorker: 4, RedisBenchmarkN: 20000, Deadline: 4 * time.Minute,
			Scale: defaultScale(true)}
	}
	return Options{OutDir: "bench/results", Concurrency: 64, Phase: 10 * time.Second, Warmup: time.Second,
		Products: 10000, VariantsPer: 2, FlashShoppers: 5000, FlashStock: 1000, CreationShoppers: 10000,
		CartsPerWorker: 8, RedisBenchmarkN: 300000, Deadline: 25 * time.Minute, Scale: defaultScale(false)}
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
	floorRedis, floorCommit            *Result
	cartEmpty, cart20                  *Result
	churnCarts                         [][]*churnCart
	flashVariant, creationVariant      uuid.UUID
	flashCheckouts                     []string
	sessions                           []string
	countersLoaded                     bool
	profileStep                        func(key string, run func()) // nil: no per-step profile
}

// step is one section of a run. To add a scenario, write a method of runner in a file
// of its own (steps_*.go) and list it here; Options.Only and --only name it by key.
type step struct {
	key, name string
	run       func(*runner, context.Context) error
}

// steps are the sections of a run, in order. The catalog (key "") always runs: every
// later step reads it.
var steps = []step{
	{"", "catalog data", (*runner).loadCatalog},
	{"healthz", "baseline GET /healthz", (*runner).baselineHealthz},
	{"floors", "floors", (*runner).floors},
	{"reserve", "baseline reserve EVALSHA", (*runner).baselineReserve},
	{"pg", "baseline PostgreSQL-only reserve", (*runner).baselinePG},
	{"flash", "flash sale", (*runner).flashSale},
	{"creation", "checkout creation", (*runner).checkoutCreation},
	{"catalog", "catalog read storm", (*runner).catalogStorm},
	{"churn", "cart churn", (*runner).cartChurn},
	{"journey", "full journey", (*runner).fullJourney},
	{"scale", "scale curves", (*runner).scale},
	{"bulk", "bulk stock sync", (*runner).bulkSync},
	{"memory", "memory", (*runner).memory},
}

// StepNames are the steps of a run, in order, as Options.Only names them.
var StepNames = stepKeys()

func stepKeys() []string {
	var out []string
	for _, s := range steps {
		if s.key != "" {
			out = append(out, s.key)
		}
	}
	return out
}

// ErrNotClean is returned (wrapped) by Run when a step failed or a measured figure had
// errors: the report is still written, and says what went wrong.
var ErrNotClean = errors.New("bench: the run is not clean")

// Run executes the bench against a service built from base (its database server, Redis
// and tuning; the database, key prefix, secrets, listener and rate limits are replaced,
// see BenchConfig), prints progress and results to opt.Out, writes the report to
// opt.OutDir, and removes the database and keys it created. Every selected step must be
// measured: a step that cannot run (a route missing, a setup error, the deadline) is
// recorded as failed, and a figure with errors gets no ratio. Run returns an error
// wrapping ErrNotClean when anything failed or erred, and another error when the service
// cannot be started or the report cannot be written.
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
	r.printf("commerce-bench (%s) on %d CPU, %s, Go %s, Redis %s, PostgreSQL %s\n", modeName(opt.Quick), m.NProc,
		m.MemTotal, m.GoVersion, m.Redis, m.Postgres)
	r.printf("service on %s, database %s, Redis prefix %q, load average %s\n", env.BaseURL, env.DBName,
		env.Cfg.RedisPrefix, orDash(m.LoadAvgStart))

	var stopProfile func()
	if opt.CPUProfile != "" {
		f, err := os.Create(opt.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		startProfile := func() error {
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			stopProfile = sync.OnceFunc(pprof.StopCPUProfile)
			return nil
		}
		defer func() {
			if stopProfile != nil {
				stopProfile()
			}
		}()
		if opt.ProfileStep == "" {
			if err := startProfile(); err != nil {
				return nil, err
			}
			r.note("CPU profile of the run written to %s", opt.CPUProfile)
		} else {
			r.profileStep = func(key string, run func()) {
				if key != opt.ProfileStep {
					run()
					return
				}
				if err := startProfile(); err != nil {
					r.printf("cpu profile: %v\n", err)
				}
				run()
				if stopProfile != nil {
					stopProfile()
				}
			}
			r.note("CPU profile of step %s written to %s", opt.ProfileStep, opt.CPUProfile)
		}
	}
	for _, s := range steps {
		if s.key != "" && len(opt.Only) > 0 && !slices.Contains(opt.Only, s.key) {
			continue
		}
		if ctx.Err() != nil {
			why := fmt.Sprintf("not run: the run's deadline (%s) passed", opt.Deadline)
			if parent.Err() != nil {
				why = "not run: interrupted"
			}
			r.fail(s.name, why)
			continue
		}
		var err error
		if r.profileStep != nil {
			r.profileStep(s.key, func() { err = s.run(r, ctx) })
		} else {
			err = s.run(r, ctx)
		}
		if err != nil {
			r.fail(s.name, err.Error())
		}
	}
	r.ratios()
	r.floorNotes()
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
	for _, s := range r.rep.Failed {
		r.printf("FAILED: %s\n", s)
	}
	erred := r.rep.Erred()
	for _, s := range erred {
		r.printf("ERRORS: %s\n", s)
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
	if len(r.rep.Failed) > 0 || len(erred) > 0 {
		return r.rep, fmt.Errorf("%w: %d step(s) failed, %d figure(s) with errors", ErrNotClean, len(r.rep.Failed), len(erred))
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

// fail records that a step could not be measured.
func (r *runner) fail(what, why string) {
	r.rep.Failed = append(r.rep.Failed, what+": "+why)
	r.printf("  %s: FAILED: %s\n", what, why)
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

// needs returns an error naming the routes the service does not serve.
func (r *runner) needs(routes ...string) error {
	if missing := r.env.MissingRoutes(routes...); len(missing) > 0 {
		return fmt.Errorf("routes missing: %s", strings.Join(missing, ", "))
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
