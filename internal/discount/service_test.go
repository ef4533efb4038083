package discount

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/cachestats"
	"commerce/internal/platform/money"
	"commerce/internal/platform/rkey"
	"commerce/internal/platform/testenv"
)

// testClock is a settable clock.
type testClock struct{ t atomic.Pointer[time.Time] }

func (c *testClock) now() time.Time       { return *c.t.Load() }
func (c *testClock) set(t time.Time)      { c.t.Store(&t) }
func newTestClock(t time.Time) *testClock { c := &testClock{}; c.set(t); return c }

type serviceEnv struct {
	svc   *Service
	store *Store
	rdb   redis.UniversalClient
	space rkey.Space
	clock *testClock
	stats *cachestats.Registry
}

func newServiceEnv(t *testing.T) serviceEnv {
	t.Helper()
	pool, _ := testenv.DB(t)
	rdb, space := testenv.Redis(t)
	store := NewStore(pool)
	stats := cachestats.New(nil)
	clock := newTestClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	svc := NewService(store, NewCache(rdb, space, store, stats, CacheOptions{}), clock.now, nil)
	return serviceEnv{svc: svc, store: store, rdb: rdb, space: space, clock: clock, stats: stats}
}

func (e serviceEnv) pointer(t *testing.T) int64 {
	t.Helper()
	v, err := e.rdb.Get(context.Background(), e.space.Key("discount:ruleset:version")).Int64()
	if err != nil {
		t.Fatalf("read pointer: %v", err)
	}
	return v
}

func shoe(qty, unit int64) Line {
	return Line{VariantID: uuid.UUID{1}, ProductID: uuid.UUID{2}, Category: "shoes", SKU: "S", Name: "shoe",
		Quantity: qty, UnitPrice: money.New(unit, "USD")}
}

func hat(qty, unit int64) Line {
	return Line{VariantID: uuid.UUID{3}, ProductID: uuid.UUID{4}, Category: "hats", SKU: "H", Name: "hat",
		Quantity: qty, UnitPrice: money.New(unit, "USD")}
}

// TestServiceWritesPublish: every write leaves the pointer at the version it produced, so
// another replica sees the write on its next check.
func TestServiceWritesPublish(t *testing.T) {
	ctx := context.Background()
	e := newServiceEnv(t)
	replica := NewCache(e.rdb, e.space, e.store, cachestats.New(nil), CacheOptions{LocalTTL: -1})

	d, v, err := e.svc.Create(ctx, Rule{Name: "ten", Code: " summer10 ", Kind: KindPercentage, Value: 10,
		Scope: Scope{Type: ScopeCart}, Active: true, Stackable: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Code != "SUMMER10" || d.ID == uuid.Nil || d.ID.Version() != 7 {
		t.Fatalf("created %+v", d)
	}
	if p := e.pointer(t); p != v {
		t.Fatalf("pointer %d after create, want %d", p, v)
	}
	rs, err := replica.Load(ctx)
	if err != nil || rs.Version != v || len(rs.Rules) != 1 {
		t.Fatalf("replica after create: %d rules v%d %v", len(rs.Rules), rs.Version, err)
	}

	_, v2, err := e.svc.Update(ctx, d.ID, func(r *Rule) error { r.Value = 20; return nil })
	if err != nil || v2 != v+1 || e.pointer(t) != v2 {
		t.Fatalf("update: v%d (pointer %d) %v", v2, e.pointer(t), err)
	}
	if rs, _ := replica.Load(ctx); rs.Version != v2 || rs.Rules[0].Value != 20 {
		t.Fatalf("replica after update: %+v", rs)
	}
	var ve *ValidationError
	if _, _, err := e.svc.Update(ctx, d.ID, func(r *Rule) error { r.Value = 101; return nil }); !errors.As(err, &ve) || ve.Fields["value"] == "" {
		t.Fatalf("invalid update: %v", err)
	}
	v3, err := e.svc.Delete(ctx, d.ID)
	if err != nil || v3 != v2+1 || e.pointer(t) != v3 {
		t.Fatalf("delete: v%d %v", v3, err)
	}
	if rs, _ := replica.Load(ctx); rs.Version != v3 || len(rs.Rules) != 0 {
		t.Fatalf("replica after delete: %+v", rs)
	}
	if _, _, err := e.svc.Create(ctx, Rule{Name: "", Kind: "bogus"}); !errors.As(err, &ve) ||
		ve.Fields["name"] == "" || ve.Fields["kind"] == "" || ve.Fields["scope.type"] == "" {
		t.Fatalf("invalid create: %v", err)
	}
}

func TestServicePriceAndCoupons(t *testing.T) {
	ctx := context.Background()
	e := newServiceEnv(t)
	if n, err := Seed(ctx, e.svc, "USD"); err != nil || n != 3 {
		t.Fatalf("seed: %d %v", n, err)
	}
	if n, err := Seed(ctx, e.svc, "USD"); err != nil || n != 0 {
		t.Fatalf("second seed: %d %v", n, err)
	}
	// Shoes 2 × 4000 + hat 1 × 2000 = 10000: shoe sale 15% on 8000 = 1200 (priority 20),
	// WELCOME10 10% of the 8800 left = 880 (priority 10), 500 off (subtotal ≥ 10000).
	lines := []Line{shoe(2, 4000), hat(1, 2000)}
	p, err := e.svc.Price(ctx, lines, "welcome10", "USD")
	if err != nil {
		t.Fatal(err)
	}
	if p.Subtotal.Amount != 10000 || p.DiscountTotal.Amount != 1200+880+500 || p.Total.Amount != 10000-2580 ||
		len(p.Applied) != 3 || !p.CouponApplied || p.RulesetVersion != e.pointer(t) {
		t.Fatalf("priced %+v", p)
	}
	if p.Applied[0].Name != "Shoe sale 15% off" || p.Applied[1].Code != "WELCOME10" || p.Applied[2].Amount.Amount != 500 {
		t.Fatalf("applied %+v", p.Applied)
	}
	// An unknown coupon is ignored by Price and refused by CheckCoupon.
	p, err = e.svc.Price(ctx, []Line{hat(1, 2000)}, "NOPE", "USD")
	if err != nil || p.DiscountTotal.Amount != 0 || p.CouponApplied {
		t.Fatalf("unknown coupon priced %+v %v", p, err)
	}
	if err := e.svc.CheckCoupon(ctx, lines, "nope", "USD"); !errors.Is(err, ErrCouponNotFound) {
		t.Fatalf("unknown coupon: %v", err)
	}
	if err := e.svc.CheckCoupon(ctx, lines, "welcome10", "USD"); err != nil {
		t.Fatalf("WELCOME10: %v", err)
	}
	if err := e.svc.CheckCoupon(ctx, nil, "WELCOME10", "USD"); !errors.Is(err, ErrCouponNotApplicable) {
		t.Fatalf("coupon on an empty cart: %v", err)
	}

	// The service clock decides the window: a coupon starting tomorrow applies tomorrow.
	tomorrow := e.clock.now().Add(24 * time.Hour)
	if _, _, err := e.svc.Create(ctx, Rule{Name: "later", Code: "LATER5", Kind: KindPercentage, Value: 5,
		Scope: Scope{Type: ScopeCart}, StartsAt: &tomorrow, Active: true, Stackable: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.CheckCoupon(ctx, lines, "LATER5", "USD"); !errors.Is(err, ErrCouponNotApplicable) {
		t.Fatalf("coupon before its start: %v", err)
	}
	e.clock.set(tomorrow)
	if err := e.svc.CheckCoupon(ctx, lines, "LATER5", "USD"); err != nil {
		t.Fatalf("coupon after its start: %v", err)
	}
	p, err = e.svc.Price(ctx, []Line{hat(1, 2000)}, "later5", "USD")
	if err != nil || p.DiscountTotal.Amount != 100 || !p.CouponApplied {
		t.Fatalf("LATER5 priced %+v %v", p, err)
	}
	if _, err := e.svc.Price(ctx, []Line{hat(1, 2000)}, "", "EUR"); !errors.Is(err, ErrInvalidLine) {
		t.Fatalf("line in another currency: %v", err)
	}
}
