package bulkimport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"commerce/internal/inventory"
	"commerce/internal/platform/httpx"
	"commerce/internal/platform/testenv"
)

// TestImportLostRepliesAndResume imports a CSV of 2 500 delta lines in batches of 1 000
// through a server that (1) applies batch 2 but loses its reply once, and (2) is down for
// batch 3 until the import gives up. Running the import again with the same key
// finishes it. Every line ends applied exactly once: deltas would show a double apply.
func TestImportLostRepliesAndResume(t *testing.T) {
	pool, _ := testenv.DB(t)
	rdb, space := testenv.Redis(t)
	svc, err := inventory.NewService(pool, rdb, space, nil, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
	inventory.NewHandler(svc).Register(e.Group("/v1"), e.Group("/admin"))

	const n = 2500
	ctx := context.Background()
	pid := uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO products (id, slug, name, status) VALUES ($1, 'imp', 'P', 'active')`, pid); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO variants (id, product_id, sku, name, price_amount, currency)
		SELECT gen_random_uuid(), $1, 'IMP-' || g, 'V', 100, 'USD' FROM generate_series(1, $2) g`, pid, n); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO inventory (variant_id, on_hand) SELECT id, 10 FROM variants WHERE product_id = $1`, pid); err != nil {
		t.Fatal(err)
	}
	var file strings.Builder
	file.WriteString("sku,delta,reason\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&file, "IMP-%d,%d,import test\n", i, 1+i%3)
	}
	file.WriteString("NOPE-1,5,\n") // one unknown SKU: reported, not retried

	var batch2Lost, batch3Down atomic.Bool
	batch2Lost.Store(true)
	batch3Down.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if strings.HasSuffix(key, ":3") && batch3Down.Load() {
			http.Error(w, `{"error":{"code":"unavailable","message":"down","details":{}}}`, http.StatusServiceUnavailable)
			return
		}
		if strings.HasSuffix(key, ":2") && batch2Lost.CompareAndSwap(true, false) {
			e.ServeHTTP(httptest.NewRecorder(), r) // applied, but the reply never arrives
			panic(http.ErrAbortHandler)
		}
		e.ServeHTTP(w, r)
	}))
	defer srv.Close()

	opts := Options{BaseURL: srv.URL, AdminToken: "t", Key: "nightly-1", Format: "csv", BatchSize: 1000, Retries: 3}
	rep, err := Run(ctx, strings.NewReader(file.String()), opts)
	if !errors.Is(err, ErrBatch) {
		t.Fatalf("first run: want a batch error, got %v (%+v)", err, rep.Summary)
	}
	if rep.Summary.Applied != 2000 || rep.Batches != 2 || rep.Replayed != 1000 {
		t.Fatalf("first run: %+v, %d batches, %d replayed", rep.Summary, rep.Batches, rep.Replayed)
	}
	batch3Down.Store(false)
	rep, err = Run(ctx, strings.NewReader(file.String()), opts)
	if err != nil {
		t.Fatal(err)
	}
	want := inventory.BulkSummary{Lines: n + 1, Applied: n, Unknown: 1}
	if rep.Summary != want || rep.Replayed != 2000 || len(rep.Problems) != 1 || rep.Problems[0].Record != n+1 {
		t.Fatalf("resumed run: %+v, %d replayed, problems %+v", rep.Summary, rep.Replayed, rep.Problems)
	}
	var bad int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM inventory i JOIN variants v ON v.id = i.variant_id
		WHERE v.product_id = $1 AND i.on_hand <> 10 + 1 + (substr(v.sku, 5)::int % 3)`, pid).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Fatalf("%d variants do not have their delta applied exactly once", bad)
	}
}

// TestJSONBatches splits a JSON array element by element.
func TestJSONBatches(t *testing.T) {
	next := jsonBatches(strings.NewReader(` [ {"a":1}, {"b":[1,2]} ,{"c":"]"} ] `), 2)
	var got []string
	for {
		b, n, err := next()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		got = append(got, fmt.Sprintf("%d:%s", n, b))
	}
	if strings.Join(got, " ") != `2:[{"a":1},{"b":[1,2]}] 1:[{"c":"]"}]` {
		t.Fatalf("batches: %v", got)
	}
}
