package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Cart churn and the full shopper journey.

func (r *runner) cartChurn(ctx context.Context) error {
	if err := r.needs("POST /v1/sessions", "POST /v1/cart/items", "PUT /v1/cart/items/:variant_id",
		"DELETE /v1/cart/items/:variant_id"); err != nil {
		return err
	}
	if len(r.cat.Variants) == 0 {
		return fmt.Errorf("no catalog")
	}
	if err := r.loadCounters(ctx); err != nil {
		return err
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
	calls := r.countPerOp()
	res, err := Drive(ctx, r.timed(fmt.Sprintf("cart churn: add/set/remove on %d carts", n)),
		calls.wrap(cartChurn(r.env.Client, carts, r.cat.Variants, 3)))
	if err != nil {
		return err
	}
	res.Note = "each client owns its carts: ~40 % POST /v1/cart/items, ~30 % PUT quantity, ~30 % DELETE line, ≤ 20 lines per cart"
	res.countedRedis(calls.redisPerOp(0))
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
	if err := r.loadCounters(ctx); err != nil {
		return err
	}
	steps := make([][4][]time.Duration, r.opt.Concurrency)
	calls := r.countPerOp()
	res, err := Drive(ctx, r.timed("full journey: session → add → checkout → complete"),
		calls.wrap(journey(r.env.Client, r.cat.Variants, steps, 4)))
	if err != nil {
		return err
	}
	res.Note = fmt.Sprintf("one operation = 4 requests (%.0f req/s); random variant of the catalog, payment tok_ok", 4*res.RPS)
	res.countedRedis(calls.redisPerOp(0))
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

// loadCounters brings every catalog variant's inventory counter into Redis before a
// timed cart phase. A running shop has its counters loaded (each is loaded from
// PostgreSQL on first use and kept); a catalog created a moment ago has none, and its
// first touches would be timed as PostgreSQL reads.
func (r *runner) loadCounters(ctx context.Context) error {
	if r.countersLoaded {
		return nil
	}
	inv := r.env.App.Domains().Inventory
	t := time.Now()
	for i := 0; i < len(r.cat.Variants); i += 1000 {
		if _, err := inv.Available(ctx, r.cat.Variants[i:min(i+1000, len(r.cat.Variants))]); err != nil {
			return fmt.Errorf("load inventory counters: %w", err)
		}
	}
	r.countersLoaded = true
	r.printf("  (setup) %d inventory counters loaded in %s\n", len(r.cat.Variants), time.Since(t).Round(time.Millisecond))
	return nil
}
