package bench

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SeedProduct is a product the bench created directly in PostgreSQL.
type SeedProduct struct {
	ID       uuid.UUID
	Variants []uuid.UUID
}

// Catalog is a set of products made for one scenario.
type Catalog struct {
	Products []SeedProduct
	Variants []uuid.UUID // every variant, in product order
}

// CreateProducts inserts n active products with variantsPer variants each, every variant
// with onHand units in stock and its 'initial' ledger row (as catalog.Store.Create writes
// them), using COPY: four statements in one transaction whatever n is. Slugs and SKUs start with tag, which must be unique within the database.
func CreateProducts(ctx context.Context, pool *pgxpool.Pool, tag string, n, variantsPer int, onHand int64, currency string) (Catalog, error) {
	if n < 1 || variantsPer < 1 {
		return Catalog{}, fmt.Errorf("bench: need at least one product and one variant")
	}
	cat := Catalog{Products: make([]SeedProduct, n), Variants: make([]uuid.UUID, 0, n*variantsPer)}
	products := make([][]any, 0, n)
	variants := make([][]any, 0, n*variantsPer)
	stock := make([][]any, 0, n*variantsPer)
	ledger := make([][]any, 0, n*variantsPer)
	desc := strings.Repeat("A well made thing that a shop would sell. ", 4)
	categories := []string{"shoes", "shirts", "bags", "hats", "socks", "coats", "toys", "books"}
	for i := range n {
		pid, err := uuid.NewV7()
		if err != nil {
			return Catalog{}, err
		}
		cat.Products[i].ID = pid
		products = append(products, []any{pid, fmt.Sprintf("%s-%d", tag, i), fmt.Sprintf("Bench product %d", i), desc,
			categories[i%len(categories)], "active", map[string]any{"material": "cotton", "origin": "PT"}})
		for v := range variantsPer {
			vid, err := uuid.NewV7()
			if err != nil {
				return Catalog{}, err
			}
			cat.Products[i].Variants = append(cat.Products[i].Variants, vid)
			cat.Variants = append(cat.Variants, vid)
			variants = append(variants, []any{vid, pid, fmt.Sprintf("%s-%d-%d", strings.ToUpper(tag), i, v),
				fmt.Sprintf("Size %d", 38+v), int64(1000 + (i*37+v*11)%9000), currency,
				map[string]any{"size": 38 + v}, v})
			stock = append(stock, []any{vid, onHand})
			ledger = append(ledger, []any{vid, onHand, onHand, int64(1), "initial"})
		}
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return Catalog{}, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	copies := []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"products", []string{"id", "slug", "name", "description", "category", "status", "attributes"}, products},
		{"variants", []string{"id", "product_id", "sku", "name", "price_amount", "currency", "attributes", "position"}, variants},
		{"inventory", []string{"variant_id", "on_hand"}, stock},
		{"stock_ledger", []string{"variant_id", "delta", "on_hand_after", "version", "reason"}, ledger},
	}
	for _, c := range copies {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
			return Catalog{}, fmt.Errorf("copy %s: %w", c.table, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return Catalog{}, err
	}
	return cat, nil
}
