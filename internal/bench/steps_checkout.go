package bench

import (
	"context"
	"fmt"
)

// Checkout scenarios: the flash sale on a scarce SKU, and creation on a SKU with stock to spare.

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
	calls := r.countPerOp()
	res, _, counts, err := checkoutAll(ctx, r.env.Client, "checkout creation: POST /v1/checkouts (hot SKU)", sids, r.opt.Concurrency)
	if err != nil {
		return err
	}
	res.Note = fmt.Sprintf("%d shoppers, one checkout each, one SKU with stock to spare: every checkout reserves (201)", len(sids))
	if counts[0] != int64(len(sids)) {
		res.Note += fmt.Sprintf("; only %d of %d got 201", counts[0], len(sids))
	}
	res.countedRedis(calls.redisPerOp(int64(len(sids))))
	r.creation = r.scenario(res)
	return nil
}
