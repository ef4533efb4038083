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

// Commits the design needs, at the least: a creation inserts its row; a journey adds the
// completion's claim and its sale transaction. PostgreSQL reads are not counted.
const (
	creationCommits = 1
	journeyCommits  = 3
)

// clean reports whether res was measured without errors (as a ratio needs it).
func clean(res *Result) bool { return unusable("", res) == "" }

// floorNotes sets each missed-or-met target beside what the same run's floors allow: the
// machine time of a request that makes only its round trips. With th the time per
// /healthz (the inverse of its rate, all CPUs together), tr what one Redis round trip
// adds (the Redis floor's time less th) and tc what one commit adds (the commit floor's
// time less the Redis floor's), a request with R round trips and C commits cannot go
// faster than 1 / (th + R·tr + C·tc), taking the costs as adding up. Everything else it
// does (scripts, pricing, JSON, reads) only makes it slower.
func (r *runner) floorNotes() {
	if !clean(r.healthz) || !clean(r.floorRedis) || !clean(r.floorCommit) {
		return
	}
	th := 1 / r.healthz.RPS
	tr := 1/r.floorRedis.RPS - th
	tc := 1/r.floorCommit.RPS - 1/r.floorRedis.RPS
	if tr <= 0 || tc <= 0 {
		return
	}
	us := func(s float64) float64 { return s * 1e6 }
	r.note("Floors of this run (machine time per request, all CPUs): the HTTP exchange of /healthz %.0f µs; one Redis "+
		"round trip adds %.0f µs; one PostgreSQL commit adds %.0f µs.", us(th), us(tr), us(tc))
	if clean(r.cartEmpty) && clean(r.churn) {
		target := 0.4 * r.healthz.RPS
		verdict := "below it: within reach"
		if r.cartEmpty.RPS < target {
			verdict = "above it: no cart request reaches the target on this machine"
		}
		r.note("cart churn: the target 0.4 × /healthz is %.0f req/s; the cheapest cart request (GET of an empty cart, "+
			"one round trip) reached %.0f req/s, so the target is %s. The churn reached %.0f req/s (%.0f %% of the "+
			"empty cart, %.0f %% of a %d-line cart).", target, r.cartEmpty.RPS, verdict, r.churn.RPS,
			100*r.churn.RPS/r.cartEmpty.RPS, 100*r.churn.RPS/rpsOf(r.cart20), churnMaxLines)
	}
	bound := func(name string, res *Result, requests, commits float64, target float64, targetText string) {
		if !clean(res) || res.RedisPerOp <= 0 {
			return
		}
		cost := requests*th + res.RedisPerOp*tr + commits*tc // per operation
		rps := requests / cost
		verdict := fmt.Sprintf("%.0f %% of the floor: reachable only if everything else (scripts, statements, pricing, "+
			"JSON) adds at most %.0f %% to the floor's time", 100*target/rps, 100*(rps/target-1))
		if rps < target {
			verdict = "above the floor: out of reach with these round trips"
		}
		plural := "s"
		if commits == 1 {
			plural = ""
		}
		r.note("%s: %.1f Redis round trips (counted) and %.0f commit%s per operation cost at least %.0f µs, a floor of "+
			"%.0f req/s; the target (%s) is %.0f req/s, %s. Measured: %.0f req/s, %.0f %% of the floor.",
			name, res.RedisPerOp, commits, plural, us(cost), rps,
			targetText, target, verdict, requests*res.RPS, 100*requests*res.RPS/rps)
	}
	if clean(r.pgCommits) {
		bound("checkout creation", r.creation, 1, creationCommits, 0.35*r.pgCommits.RPS, "0.35 × PostgreSQL commits")
	}
	bound("full journey (4 requests)", r.journey, 4, journeyCommits, 0.1*r.healthz.RPS, "requests ≥ 0.1 × /healthz")
}
