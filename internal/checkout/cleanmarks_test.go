package checkout

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/testenv"
)

// Concurrent cleanup marks are written in few statements, and none is lost: when every
// caller has returned, every checkout is marked (a caller that found another writing
// returns at once; the writer takes its mark along before it stops).
func TestCleanMarksBatchAndLoseNone(t *testing.T) {
	pool, _ := testenv.DB(t)
	ctx := context.Background()
	st := store{pool: pool}
	const n = 64
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
		if _, err := pool.Exec(ctx, `INSERT INTO checkouts (id, cart_key, owner_type, owner_id, state, lines,
	applied_discounts, currency, subtotal, discount_total, total, discount_version, version, expires_at)
VALUES ($1, $2, 'session', $2, 'completed', '[]', '[]', 'USD', 0, 0, 0, 0, 3, now())`, ids[i], "s-"+ids[i].String()); err != nil {
			t.Fatal(err)
		}
	}
	var statements atomic.Int64
	c := &cleanMarks{log: slog.Default(), write: func(ctx context.Context, batch []uuid.UUID) error {
		statements.Add(1)
		time.Sleep(5 * time.Millisecond) // a statement takes a while: marks queue up behind it
		return st.markCleaned(ctx, batch)
	}}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.mark(ctx, id)
		}()
	}
	wg.Wait()
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM checkouts WHERE id = ANY($1) AND cleaned_at IS NULL`, ids).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d of %d checkouts not marked after every caller returned", left, n)
	}
	if s := statements.Load(); s >= n/2 {
		t.Errorf("%d statements for %d concurrent marks, want batches", s, n)
	}
	t.Logf("%d marks in %d statements", n, statements.Load())
}
