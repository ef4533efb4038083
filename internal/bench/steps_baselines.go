package bench

import (
	"context"
	"strings"
	"time"

	"commerce/internal/app"
)

// The catalog every scenario reads, and the baselines of the same machine in the same run.

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
