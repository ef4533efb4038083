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
	ids := insertFinalCheckouts(t, st, n)
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
	allMarked(t, st, ids)
	if s := statements.Load(); s >= n/2 {
		t.Errorf("%d statements for %d concurrent marks, want batches", s, n)
	}
	t.Logf("%d marks in %d statements", n, statements.Load())
}

// insertFinalCheckouts inserts n completed checkouts and returns their ids.
func insertFinalCheckouts(t *testing.T, st store, n int) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
		if _, err := st.pool.Exec(context.Background(), `INSERT INTO checkouts (id, cart_key, owner_type, owner_id, state, lines,
	applied_discounts, currency, subtotal, discount_total, total, discount_version, version, expires_at)
VALUES ($1, $2, 'session', $2, 'completed', '[]', '[]', 'USD', 0, 0, 0, 0, 3, now())`, ids[i], "s-"+ids[i].String()); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// allMarked waits (up to 10 s: a writer may still be at the queue's tail) until every
// checkout of ids is marked cleaned.
func allMarked(t *testing.T, st store, ids []uuid.UUID) {
	t.Helper()
	var left int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if err := st.pool.QueryRow(context.Background(), `SELECT count(*) FROM checkouts WHERE id = ANY($1) AND cleaned_at IS NULL`,
			ids).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d checkouts never marked", left, len(ids))
		}
	}
}

// A request that writes marks is not held by a queue that other requests keep filling: it
// writes at most writerRounds statements, and the marks queued after that are still
// written (by the writer it hands over to).
func TestCleanMarksWriterIsNotHeldByOthers(t *testing.T) {
	pool, _ := testenv.DB(t)
	ctx := context.Background()
	st := store{pool: pool}
	ids := insertFinalCheckouts(t, st, 41)
	type firstKey struct{}
	var byFirst atomic.Int64 // statements written on the first request's context
	c := &cleanMarks{log: slog.Default(), write: func(ctx context.Context, batch []uuid.UUID) error {
		if ctx.Value(firstKey{}) != nil {
			byFirst.Add(1)
		}
		time.Sleep(5 * time.Millisecond)
		return st.markCleaned(ctx, batch)
	}}
	feeding := make(chan struct{})
	go func() { // other requests, one mark a millisecond, for longer than many statements
		defer close(feeding)
		for _, id := range ids[1:] {
			c.mark(ctx, id)
			time.Sleep(time.Millisecond)
		}
	}()
	c.mark(context.WithValue(ctx, firstKey{}, true), ids[0]) // the first: the queue is empty, so this request writes
	if s := byFirst.Load(); s > writerRounds {
		t.Fatalf("the first request wrote %d statements before it returned, want at most %d", s, writerRounds)
	}
	<-feeding
	allMarked(t, st, ids)
}
