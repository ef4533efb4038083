package catalog

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
)

func TestSeedDemoCatalog(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	n, err := Seed(ctx, e.svc)
	if err != nil || n != 50 {
		t.Fatalf("seed = %d, %v", n, err)
	}
	var variants, zero, low int64
	if err := e.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE on_hand = 0),
		count(*) FILTER (WHERE on_hand BETWEEN 1 AND 3) FROM inventory`).Scan(&variants, &zero, &low); err != nil {
		t.Fatal(err)
	}
	if variants != 150 || zero < 3 || low < 3 {
		t.Fatalf("variants %d, sold out %d, low %d", variants, zero, low)
	}
	var cats int
	_ = e.pool.QueryRow(ctx, `SELECT count(DISTINCT category) FROM products`).Scan(&cats)
	if cats != 6 {
		t.Fatalf("%d categories", cats)
	}

	// The README's fixed examples.
	rr, err := e.svc.Get(ctx, SeedProductID("red-runner"))
	if err != nil || rr.Slug != "red-runner" || rr.Category != "shoes" || len(rr.Variants) != 3 {
		t.Fatalf("red-runner = %+v, %v", rr, err)
	}
	if rr.Variants[1].SKU != "RR-42" || rr.Variants[1].ID != SeedVariantID("RR-42") || rr.ID.Version() != 7 {
		t.Fatalf("RR-42 = %+v", rr.Variants[1])
	}
	for sku, want := range demoStockOverrides {
		var onHand int64
		if err := e.pool.QueryRow(ctx, `SELECT on_hand FROM inventory WHERE variant_id = $1`, SeedVariantID(sku)).Scan(&onHand); err != nil || onHand != want {
			t.Errorf("%s on_hand = %d, want %d (%v)", sku, onHand, want, err)
		}
	}
	for _, slug := range []string{"preview-parka", "vintage-tote"} {
		if _, err := e.svc.Get(ctx, SeedProductID(slug)); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s is visible: %v", slug, err)
		}
	}
	if pg, _ := e.svc.List(ctx, ListQuery{Page: 1, PerPage: 100}); pg.Total != 48 || pg.Items[0].Slug != "red-runner" {
		t.Fatalf("listing: total %d, first %q", pg.Total, pg.Items[0].Slug)
	}

	// README examples use these literal ids: changing the seed must not move them.
	for name, want := range map[string]string{
		SeedProductID("red-runner").String():    "01941f29-7fe8-79ac-869c-c946c8a3a711",
		SeedVariantID("RR-42").String():         "01941f29-7fea-7a4a-a962-940ee87c799b",
		SeedVariantID("RR-44").String():         "01941f29-7feb-760c-8342-e952694e777f",
		SeedVariantID("RR-40").String():         "01941f29-7fe9-7720-9b7e-64e5136c29ec",
		SeedProductID("oxford-shirt").String():  "01941f29-a310-7b42-87ff-5a65dc330ec9",
		SeedVariantID("OX-M").String():          "01941f29-a312-734c-ab68-c166dbd6d64f",
		SeedProductID("preview-parka").String(): "01941f2a-3f50-70ee-b2ea-654ca188aaed",
	} {
		if name != want {
			t.Errorf("seed id %s, README says %s", name, want)
		}
	}

	// Idempotent: a second seed (or a second replica) creates nothing.
	if n, err := Seed(ctx, e.svc); err != nil || n != 0 {
		t.Fatalf("second seed = %d, %v", n, err)
	}
	// Deterministic ids: unique and the same on every call.
	seen := map[uuid.UUID]bool{}
	for _, np := range demoCatalog("USD") {
		for _, id := range append([]uuid.UUID{np.ID}, variantIDs(np)...) {
			if seen[id] {
				t.Fatalf("duplicate seed id %s", id)
			}
			seen[id] = true
		}
		if np.ID != SeedProductID(np.Slug) {
			t.Fatalf("SeedProductID(%s) differs", np.Slug)
		}
	}
}

func variantIDs(np NewProduct) []uuid.UUID {
	out := make([]uuid.UUID, len(np.Variants))
	for i, v := range np.Variants {
		out[i] = v.ID
	}
	return out
}
