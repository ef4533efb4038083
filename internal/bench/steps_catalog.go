package bench

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The catalog read storm: cold, warm, and warm paced at half the closed-loop throughput.

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
