package bench

import "fmt"

// Ratios of scenarios to baselines, and targets that are not ratios.

func (r *runner) ratios() {
	add := func(name string, s, b *Result, target float64) {
		if len(r.opt.Only) > 0 && (s == nil || b == nil) {
			return // a partial run (--only) that did not select both sides
		}
		r.rep.Ratios = append(r.rep.Ratios, newRatio(name, s, b, target))
	}
	evalName := "raw EVALSHA reserve (redis-benchmark)"
	if r.evalBench != nil && r.evalBench == r.evalGo {
		evalName = "raw EVALSHA reserve (go-redis loop)"
	}
	add("checkout creation (hot SKU) / "+evalName, r.creation, r.evalBench, 0)
	add("flash sale checkouts (hot SKU) / "+evalName, r.flash, r.evalBench, 0.15)
	add("product GET warm / GET /healthz", r.warm, r.healthz, 0.70)
	add("product GET cold / GET /healthz", r.cold, r.healthz, 0)
	if r.svcReserve != nil {
		add("Redis reservation path (inventory.Reserve) / PostgreSQL-only", r.svcReserve, r.pgOnly, 5)
		add("raw EVALSHA reserve (go-redis) / PostgreSQL-only", r.evalGo, r.pgOnly, 0)
	} else {
		add("Redis reservation (EVALSHA, go-redis) / PostgreSQL-only", r.evalGo, r.pgOnly, 5)
	}
	add("checkout creation (HTTP, hot SKU) / PostgreSQL-only reserve", r.creation, r.pgOnly, 0)
	add("checkout creation / PostgreSQL commits (a row per client)", r.creation, r.pgCommits, 0.35)
	add("cart churn / GET /healthz", r.churn, r.healthz, 0.4)
	// Floors (informative): how far each scenario is from the cost of its round trips.
	add("floor HTTP + one Redis round trip / GET /healthz", r.floorRedis, r.healthz, 0)
	add("floor GET /v1/cart, empty cart / GET /healthz", r.cartEmpty, r.healthz, 0)
	add(fmt.Sprintf("GET /v1/cart, %d lines / GET /healthz", churnMaxLines), r.cart20, r.healthz, 0)
	add(fmt.Sprintf("cart churn / GET /v1/cart, %d lines", churnMaxLines), r.churn, r.cart20, 0)
	add("floor HTTP + one commit + one Redis round trip / PostgreSQL commits", r.floorCommit, r.pgCommits, 0)
	add("checkout creation / floor HTTP + one commit + one Redis round trip", r.creation, r.floorCommit, 0)
	if r.journey != nil {
		req := *r.journey
		req.RPS *= 4
		add("full journey requests / GET /healthz", &req, r.healthz, 0.1)
		add("full journey checkouts completed / PostgreSQL-only reserve", r.journey, r.pgOnly, 0)
	}
	if r.warm != nil && r.warm.Requests > 0 && r.warm.Errors == 0 {
		r.rep.Targets = append(r.rep.Targets, Target{Name: fmt.Sprintf("p99 warm product GET (ms, %d clients)", r.warm.Concurrency),
			Value: r.warm.P99ms, Bound: "≤ 10 ms", Met: r.warm.P99ms <= 10})
	}
	if r.warm != nil && r.warm.Requests > 0 {
		need := float64(r.warm.Concurrency) / 0.010
		r.note("closed loop: mean latency = clients / throughput (Little's law), so p99 ≤ 10 ms at %d clients needs well over "+
			"%.0f product GETs/s; GET /healthz reached %.0f req/s on this machine in this run. The paced run shows the "+
			"latency below saturation.", r.warm.Concurrency, need, rpsOf(r.healthz))
	}
	if p := r.warmPaced; p != nil && p.Requests > 0 && p.Errors == 0 {
		r.rep.Targets = append(r.rep.Targets, Target{Name: fmt.Sprintf("p99 warm product GET at 50 %% load (ms, %d clients)", p.Concurrency),
			Value: p.P99ms, Bound: "≤ 10 ms, informative", Met: p.P99ms <= 10})
	}
}

func rpsOf(r *Result) float64 {
	if r == nil {
		return 0
	}
	return r.RPS
}
