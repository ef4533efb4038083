package bench

import (
	"context"
	"fmt"
)

// floors measures the cheapest requests (see floors.go) and two reads of a cart, an empty
// one and one of the most lines a churn cart holds, so that the report can say how far
// each scenario is from what its round trips cost on this machine.
func (r *runner) floors(ctx context.Context) error {
	if err := r.needs("GET "+FloorRedisPath, "GET "+FloorCommitPath, "POST /v1/sessions", "GET /v1/cart", "POST /v1/cart/items"); err != nil {
		return err
	}
	if len(r.cat.Variants) < churnMaxLines {
		return fmt.Errorf("no catalog")
	}
	c := r.env.Client
	res, err := Drive(ctx, r.timed("floor: GET "+FloorRedisPath+" (HTTP + one Redis round trip)"), getOK(c, FloorRedisPath))
	if err != nil {
		return err
	}
	res.Note = "a route the bench mounts on the service: every middleware of /healthz, then one PING on the service's Redis client"
	r.floorRedis = r.baseline(res)
	res, err = Drive(ctx, r.timed("floor: GET "+FloorCommitPath+" (HTTP + one PostgreSQL commit + one Redis round trip)"), getOK(c, FloorCommitPath))
	if err != nil {
		return err
	}
	res.Note = "a route the bench mounts on the service: one INSERT (its own commit) on the service's pool, then one PING"
	r.floorCommit = r.baseline(res)

	if err := r.loadCounters(ctx); err != nil {
		return err
	}
	empty, _, err := newSession(ctx, c)
	if err != nil {
		return err
	}
	full, _, err := newSession(ctx, c)
	if err != nil {
		return err
	}
	// The full cart takes variants spread over the catalog, as the churn's random ones are.
	step := len(r.cat.Variants) / churnMaxLines
	for i := range churnMaxLines {
		st, err := addToCart(ctx, c, full, r.cat.Variants[i*step], 1)
		if err != nil {
			return err
		}
		if st != 200 {
			return fmt.Errorf("filling the cart: POST /v1/cart/items answered %d", st)
		}
	}
	readCart := func(name, note, sid string) (*Result, error) {
		calls := r.countPerOp()
		res, err := Drive(ctx, r.timed(name), calls.wrap(getOK(c, "/v1/cart", "X-Session-ID", sid)))
		if err != nil {
			return nil, err
		}
		res.Note = note
		res.countedRedis(calls.redisPerOp(0))
		return r.baseline(res), nil
	}
	if r.cartEmpty, err = readCart("floor: GET /v1/cart, empty cart (session, limiter, one cart script)",
		"the cheapest cart request: every request of the churn does this much and more", empty); err != nil {
		return err
	}
	if r.cart20, err = readCart(fmt.Sprintf("GET /v1/cart, %d lines", churnMaxLines),
		"one cart of the most lines a churn cart holds, read and priced", full); err != nil {
		return err
	}
	return nil
}
