package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"commerce/internal/inventory"
	"commerce/internal/inventory/bulkimport"
)

// The bulk stock sync: an ERP pushing absolute on_hand values for every SKU through
// `commerce inventory import` (POST /admin/inventory/bulk, batches of 10 000), first with
// every value changed, then the same file again (every line unchanged).

func (r *runner) bulkSync(ctx context.Context) error {
	if err := r.needs("POST " + inventory.BulkPath); err != nil {
		return err
	}
	n := r.opt.BulkSKUs
	if n <= 0 {
		n = 100_000
		if r.opt.Quick {
			n = 20_000
		}
	}
	pool := r.env.App.Pool
	pid := uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO products (id, slug, name, status) VALUES ($1, $2, 'Bulk sync', 'draft')`,
		pid, "bulk-"+pid.String()[:8]); err != nil {
		return err
	}
	// In chunks: each statement stays well inside the service's PG_TIMEOUT.
	for from := 1; from <= n; from += 10_000 {
		to := min(from+10_000-1, n)
		if _, err := pool.Exec(ctx, `WITH v AS (INSERT INTO variants (id, product_id, sku, name, price_amount, currency)
			SELECT gen_random_uuid(), $1, 'BULK-' || g, 'V', 100, 'USD' FROM generate_series($2::int, $3::int) g RETURNING id)
			INSERT INTO inventory (variant_id, on_hand) SELECT id, 0 FROM v`, pid, from, to); err != nil {
			return fmt.Errorf("bulk sync setup: %w", err)
		}
	}
	var file strings.Builder
	file.WriteString("sku,on_hand\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&file, "BULK-%d,%d\n", i, 1+i%100)
	}
	for pass, want := range []string{"every line changes", "the same file again: every line unchanged"} {
		var slowest, last time.Duration
		start := time.Now()
		rep, err := bulkimport.Run(ctx, strings.NewReader(file.String()), bulkimport.Options{BaseURL: r.env.BaseURL,
			AdminToken: r.env.Client.Admin, Key: fmt.Sprintf("bench-%s-%d", pid, pass), Format: "csv",
			BatchSize: inventory.MaxBulkLines, Progress: func(int, inventory.BulkSummary) {
				now := time.Since(start)
				slowest, last = max(slowest, now-last), now
			}})
		elapsed := time.Since(start)
		if err != nil {
			return err
		}
		s := rep.Summary
		ok := s.Applied
		if pass == 1 {
			ok = s.Unchanged
		}
		res := Result{Name: fmt.Sprintf("bulk stock sync: %d SKUs by CSV, %s", n, want), Concurrency: 1,
			Requests: int64(ok), Errors: int64(s.Lines - ok), ElapsedSec: elapsed.Seconds(),
			RPS: float64(ok) / elapsed.Seconds(),
			Note: fmt.Sprintf("%.1f s for %d SKUs in %d requests of %d lines (slowest %.1f s); rps = lines per second; summary %+v",
				elapsed.Seconds(), n, rep.Batches, inventory.MaxBulkLines, slowest.Seconds(), s)}
		r.scenario(res)
	}
	var wrong int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM inventory i JOIN variants v ON v.id = i.variant_id
		WHERE v.product_id = $1 AND i.on_hand <> 1 + substr(v.sku, 6)::int % 100`, pid).Scan(&wrong); err != nil {
		return err
	}
	if wrong != 0 {
		return fmt.Errorf("bulk sync: %d variants do not have the synced on_hand", wrong)
	}
	return nil
}
