package catalog

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"commerce/internal/platform/money"
)

func TestStoreCreateWritesInventoryAndLedgerInOneTransaction(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	np := sampleProduct(3)
	p, err := e.store.Create(ctx, np)
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 1 || p.Status != StatusActive || len(p.Variants) != 3 || p.ID.Version() != 7 {
		t.Fatalf("created %+v", p)
	}
	for i, v := range p.Variants {
		if v.Position != i || v.SKU != np.Variants[i].SKU || v.Price != np.Variants[i].Price || v.ID.Version() != 7 {
			t.Fatalf("variant %d = %+v", i, v)
		}
		var onHand, ver, delta, after int64
		var reason string
		if err := e.pool.QueryRow(ctx, `SELECT on_hand, version FROM inventory WHERE variant_id = $1`, v.ID).Scan(&onHand, &ver); err != nil {
			t.Fatal(err)
		}
		if onHand != np.Variants[i].Stock || ver != 1 {
			t.Fatalf("inventory of %s = %d v%d", v.SKU, onHand, ver)
		}
		if err := e.pool.QueryRow(ctx, `SELECT delta, on_hand_after, reason FROM stock_ledger WHERE variant_id = $1`, v.ID).
			Scan(&delta, &after, &reason); err != nil {
			t.Fatal(err)
		}
		if delta != np.Variants[i].Stock || after != delta || reason != "initial" {
			t.Fatalf("ledger of %s = %d %d %s", v.SKU, delta, after, reason)
		}
	}
	got, err := e.store.Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != np.Name || got.Attributes["brand"] != "Acme" || got.Variants[2].Attributes["size"] != float64(42) {
		t.Fatalf("get = %+v", got)
	}

	// A SKU taken by another product fails the whole transaction: nothing of it remains.
	np2 := sampleProduct(2)
	np2.Variants[1].SKU = np.Variants[0].SKU
	_, err = e.store.Create(ctx, np2)
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Field != "sku" || !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate sku: %v", err)
	}
	np3 := sampleProduct(1)
	np3.Slug = np.Slug
	if _, err = e.store.Create(ctx, np3); !errors.As(err, &ce) || ce.Field != "slug" {
		t.Fatalf("duplicate slug: %v", err)
	}
	for table, want := range map[string]int64{"products": 1, "variants": 3, "inventory": 3, "stock_ledger": 3} {
		var n int64
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s has %d rows, want %d", table, n, want)
		}
	}
}

func TestStoreRejectsForeignCurrency(t *testing.T) {
	e := newEnv(t)
	np := sampleProduct(1)
	np.Variants[0].Price = money.New(100, "EUR")
	_, err := e.store.Create(context.Background(), np)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Fields["variants[0].price.currency"] == "" {
		t.Fatalf("err = %v", err)
	}
}

func TestStoreUpdatesBumpVersion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p, err := e.store.Create(ctx, sampleProduct(2))
	if err != nil {
		t.Fatal(err)
	}

	u, err := e.store.Update(ctx, p.ID, ProductPatch{Name: ptr("Renamed"), Attributes: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if u.Version != 2 || u.Name != "Renamed" || len(u.Attributes) != 0 || u.Description != p.Description ||
		!u.UpdatedAt.After(p.UpdatedAt) && !u.UpdatedAt.Equal(p.UpdatedAt) {
		t.Fatalf("update = %+v", u)
	}
	if same, _ := e.store.Update(ctx, p.ID, ProductPatch{}); same.Version != 2 {
		t.Fatalf("empty patch bumped the version to %d", same.Version)
	}

	price := money.New(4242, "USD")
	v, err := e.store.UpdateVariant(ctx, p.Variants[1].ID, VariantPatch{Price: &price})
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != 3 || v.Variants[1].Price != price || v.Variants[0].Price != p.Variants[0].Price ||
		v.Variants[1].Name != p.Variants[1].Name {
		t.Fatalf("variant update = %+v", v)
	}
	eur := money.New(1, "EUR")
	if _, err := e.store.UpdateVariant(ctx, p.Variants[0].ID, VariantPatch{Price: &eur}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("EUR price: %v", err)
	}

	a, err := e.store.Archive(ctx, p.ID)
	if err != nil || a.Status != StatusArchived || a.Version != 4 {
		t.Fatalf("archive = %+v, %v", a, err)
	}
	if a2, err := e.store.Archive(ctx, p.ID); err != nil || a2.Version != 4 {
		t.Fatalf("second archive = v%d, %v", a2.Version, err)
	}
	if _, err := e.store.GetActive(ctx, p.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetActive of archived: %v", err)
	}

	unknown := uuid.Must(uuid.NewV7())
	for name, err := range map[string]error{
		"get":     func() error { _, err := e.store.Get(ctx, unknown); return err }(),
		"update":  func() error { _, err := e.store.Update(ctx, unknown, ProductPatch{Name: ptr("x")}); return err }(),
		"variant": func() error { _, err := e.store.UpdateVariant(ctx, unknown, VariantPatch{Name: ptr("x")}); return err }(),
		"archive": func() error { _, err := e.store.Archive(ctx, unknown); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s unknown: %v", name, err)
		}
	}
}

func TestStoreListActivePagesInCreationOrder(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var shoes []Product
	for i := 0; i < 5; i++ {
		shoes = append(shoes, mustCreate(t, e.svc, sampleProduct(1)))
	}
	hat := sampleProduct(1)
	hat.Category = "hats"
	mustCreate(t, e.svc, hat)
	draft := sampleProduct(1)
	draft.Status = StatusDraft
	mustCreate(t, e.svc, draft)

	pg, err := e.store.ListActive(ctx, ListQuery{Category: "shoes", Page: 2, PerPage: 2})
	if err != nil {
		t.Fatal(err)
	}
	if pg.Total != 5 || len(pg.Items) != 2 || pg.Items[0].ID != shoes[2].ID || pg.Items[1].ID != shoes[3].ID {
		t.Fatalf("page 2 of shoes = total %d, %d items", pg.Total, len(pg.Items))
	}
	if len(pg.Items[0].Variants) != 1 {
		t.Fatal("listing lost the variants")
	}
	all, _ := e.store.ListActive(ctx, ListQuery{Page: 1, PerPage: 100})
	if all.Total != 6 || len(all.Items) != 6 {
		t.Fatalf("all active = %d/%d", all.Total, len(all.Items))
	}
	past, _ := e.store.ListActive(ctx, ListQuery{Page: 9, PerPage: 100})
	if past.Total != 6 || past.Items == nil || len(past.Items) != 0 {
		t.Fatalf("past the end = %+v", past)
	}
	ids, err := e.store.AllActiveIDs(ctx)
	if err != nil || len(ids) != 6 {
		t.Fatalf("active ids = %d, %v", len(ids), err)
	}
}

func TestStoreVariantsLookup(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := mustCreate(t, e.svc, sampleProduct(2))
	d := sampleProduct(1)
	d.Status = StatusDraft
	dp := mustCreate(t, e.svc, d)
	unknown := uuid.Must(uuid.NewV7())
	vs, err := e.store.Variants(ctx, []uuid.UUID{p.Variants[0].ID, dp.Variants[0].ID, unknown})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 {
		t.Fatalf("got %d variants", len(vs))
	}
	v := vs[p.Variants[0].ID]
	if v.ProductID != p.ID || v.SKU != p.Variants[0].SKU || v.ProductName != p.Name || v.Category != "shoes" ||
		v.Price != p.Variants[0].Price || !v.Active || v.VariantName != p.Variants[0].Name {
		t.Fatalf("variant info = %+v", v)
	}
	if vs[dp.Variants[0].ID].Active {
		t.Fatal("a draft product's variant is active")
	}
	ps, err := e.store.ProductsOfVariants(ctx, []uuid.UUID{p.Variants[0].ID, p.Variants[1].ID, unknown})
	if err != nil || len(ps) != 1 || ps[0].ID != p.ID {
		t.Fatalf("products of variants = %d, %v", len(ps), err)
	}
}
