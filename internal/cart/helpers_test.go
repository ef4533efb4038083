package cart

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/money"
	"commerce/internal/platform/rkey"
	"commerce/internal/platform/testenv"
)

// fakeCatalog, fakeStock and fakePricer stand in for the other domains (never for
// PostgreSQL or Redis, which are always the real services).
type fakeCatalog struct {
	mu      sync.Mutex
	m       map[uuid.UUID]VariantInfo
	lookups map[uuid.UUID]int // how many times each variant was asked for
}

func (f *fakeCatalog) Variants(_ context.Context, ids []uuid.UUID) (map[uuid.UUID]VariantInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[uuid.UUID]VariantInfo{}
	for _, id := range ids {
		if f.lookups != nil {
			f.lookups[id]++
		}
		if v, ok := f.m[id]; ok {
			out[id] = v
		}
	}
	return out, nil
}

func (f *fakeCatalog) put(v VariantInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[v.ID] = v
}

type fakeStock struct {
	mu sync.Mutex
	m  map[uuid.UUID]int64
}

func (f *fakeStock) Available(_ context.Context, ids []uuid.UUID) (map[uuid.UUID]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[uuid.UUID]int64{}
	for _, id := range ids {
		if n, ok := f.m[id]; ok {
			out[id] = n
		}
	}
	return out, nil
}

func (f *fakeStock) set(id uuid.UUID, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[id] = n
}

// fakePricer knows two coupons: SAVE10 (10% off every line) and BIG10 (10% off, only for
// a subtotal of at least 100.00).
type fakePricer struct{}

func (fakePricer) CheckCoupon(_ context.Context, lines []PriceLine, code string) error {
	switch code {
	case "SAVE10":
		return nil
	case "BIG10":
		var sub int64
		for _, l := range lines {
			sub += l.UnitPrice.Amount * l.Quantity
		}
		if sub < 10000 {
			return fmt.Errorf("pricing: %w", ErrCouponNotApplicable)
		}
		return nil
	}
	return fmt.Errorf("pricing: %w", ErrCouponNotFound)
}

func (p fakePricer) Price(ctx context.Context, lines []PriceLine, coupon string) (Priced, error) {
	out, _ := NoDiscounts{Currency: "USD"}.Price(ctx, lines, "")
	if coupon == "" || p.CheckCoupon(ctx, lines, coupon) != nil {
		return out, nil
	}
	var total int64
	for _, l := range lines {
		d := money.DivRoundHalfEven(l.UnitPrice.Amount*l.Quantity, 10)
		out.LineDiscounts = append(out.LineDiscounts, money.New(d, "USD"))
		total += d
	}
	out.Applied = []AppliedDiscount{{ID: uuid.MustParse("00000000-0000-7000-8000-000000000010"), Name: "Ten off",
		Code: coupon, Amount: money.New(total, "USD")}}
	out.DiscountTotal = money.New(total, "USD")
	out.Total = money.New(out.Subtotal.Amount-total, "USD")
	return out, nil
}

type env struct {
	rdb   redis.UniversalClient
	space rkey.Space
	pool  *pgxpool.Pool
	cat   *fakeCatalog
	stock *fakeStock
	svc   *Service
}

// newEnv returns a started Service on the real Redis (private key space) and a fresh
// PostgreSQL database, with fake catalog/stock/pricer.
func newEnv(t testing.TB) *env {
	t.Helper()
	rdb, space := testenv.Redis(t)
	pool, _ := testenv.DB(t)
	return newEnvOn(t, rdb, space, pool)
}

func newEnvOn(t testing.TB, rdb redis.UniversalClient, space rkey.Space, pool *pgxpool.Pool) *env {
	t.Helper()
	return newEnvWithStock(t, rdb, space, pool, nil)
}

// newEnvWithStock is newEnvOn with st as the stock domain (nil: e.stock, a fake).
func newEnvWithStock(t testing.TB, rdb redis.UniversalClient, space rkey.Space, pool *pgxpool.Pool, st Stock) *env {
	t.Helper()
	e := &env{rdb: rdb, space: space, pool: pool, cat: &fakeCatalog{m: map[uuid.UUID]VariantInfo{}},
		stock: &fakeStock{m: map[uuid.UUID]int64{}}}
	if st == nil {
		st = e.stock
	}
	svc, err := NewService(rdb, space, pool, e.cat, st, fakePricer{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	e.svc = svc
	return e
}

// variant registers an active variant priced at cents with stock units available.
func (e *env) variant(t testing.TB, cents, stock int64) uuid.UUID {
	t.Helper()
	id := uuid.Must(uuid.NewV7())
	e.cat.put(VariantInfo{ID: id, ProductID: uuid.Must(uuid.NewV7()), SKU: "SKU-" + id.String()[:8],
		ProductName: "Shoe", VariantName: "42", Category: "shoes", Price: money.New(cents, "USD"), Active: true})
	e.stock.set(id, stock)
	return id
}

func newSessionID(t testing.TB) string {
	t.Helper()
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func newCustomerID() string { return "cust_" + uuid.NewString()[:8] }

func qtyOf(c Cart, id uuid.UUID) int64 {
	for _, l := range c.Lines {
		if l.VariantID == id {
			return l.Quantity
		}
	}
	return 0
}

// must(f())(t) returns f's value, failing the test on f's error.
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
