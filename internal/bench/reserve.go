package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"commerce/internal/inventory"
	"commerce/scripts/lua"
)

// scriptSource returns lua.Source(name), or an error when the script is not embedded
// (lua.Source panics then).
func scriptSource(name string, libs ...string) (src string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("scripts/lua/%s.lua is not committed yet", name)
		}
	}()
	return lua.Source(name, libs...), nil
}

// reserveHoldTTLms is the hold TTL of the baseline calls: the service's default (15 min),
// so no hold expires and every call takes the same path as a checkout's reserve.
const reserveHoldTTLms = 15 * 60 * 1000

// reserveReclaim is the reclaim batch the inventory service passes (its default).
const reserveReclaim = 100

// reserveCall builds one call of the inventory's reserve script exactly as the inventory
// service sends it (lua.Source("reserve", "inv_lib"); KEYS avail, holds, held, cmt of one variant;
// ARGV holder, quantity 1, TTL, reclaim batch), on a counter made for the run with a stock
// so large that every call succeeds, each call by a new holder (RandToken). The cleanup
// deletes the counter and its holds.
func reserveCall(ctx context.Context, e *Env) (ScriptCall, func(), error) {
	src, err := scriptSource("reserve", "inv_lib")
	if err != nil {
		return ScriptCall{}, func() {}, err
	}
	variant := uuid.New()
	p := e.Space.Key("inv:{", variant.String(), "}:")
	avail, holds, held, cmt, ver := p+"avail", p+"holds", p+"held", p+"cmt", p+"ver"
	rdb := e.App.Redis
	if err := rdb.Set(ctx, avail, int64(1)<<50, 0).Err(); err != nil {
		return ScriptCall{}, func() {}, err
	}
	cleanup := func() { rdb.Unlink(context.Background(), avail, holds, held, cmt, ver) }
	call := ScriptCall{Source: src, Keys: []string{avail, holds, held, cmt},
		Args: []string{RandToken, "1", strconv.Itoa(reserveHoldTTLms), strconv.Itoa(reserveReclaim)}}
	return call, cleanup, nil
}

// ServiceReserve measures the reservation path as the service runs it:
// inventory.Service.Reserve of one unit of a hot variant (stock to spare, loaded from
// PostgreSQL on first use) by a new holder per operation, from l.Concurrency goroutines.
// It is the Redis side of a checkout without HTTP, cart, pricing or the checkout's rows.
func ServiceReserve(ctx context.Context, e *Env, l Load) (Result, error) {
	inv := e.App.Domains().Inventory
	if inv == nil {
		return Result{}, fmt.Errorf("the inventory service is not wired")
	}
	cat, err := CreateProducts(ctx, e.App.Pool, "svc-hot-"+randHex(3), 1, 1, 1_000_000_000, e.Cfg.Currency)
	if err != nil {
		return Result{}, err
	}
	lines := []inventory.Line{{VariantID: cat.Variants[0], Quantity: 1}}
	prefix := "bench-" + randHex(4) + "-"
	l.Name = "Redis reservation path: inventory.Service.Reserve"
	res, err := Drive(ctx, l, func(ctx context.Context, _ int, i int64) (int, error) {
		holder := prefix + strconv.FormatInt(i+1<<40, 36)
		return 0, inv.Reserve(ctx, holder, lines, 15*time.Minute)
	})
	res.Note = "one unit of one hot variant per call, a new holder each time (Lua reserve + hold index), no HTTP"
	return res, err
}
