package inventory

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPruneCommitsKeepsRecentRecords: pruning deletes the commit records older than the
// retention, in batches, and leaves the recent ones; sales keep working and stay
// fenced; a retention not above the commit timeout is refused.
func TestPruneCommitsKeepsRecentRecords(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	v := e.variant(20)
	for i := range 3 {
		holder := "prune-" + string(rune('a'+i))
		if err := s.Reserve(ctx, holder, []Line{{VariantID: v, Quantity: 1}}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, holder, []Line{{VariantID: v, Quantity: 1}}, "order", nil); err != nil {
			t.Fatal(err)
		}
	}
	count := func(where string) int {
		var n int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM inventory_commits WHERE `+where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count("outcome = 'committed'"); n != 3 {
		t.Fatalf("%d commit records after three sales, want 3", n)
	}
	// Age two of them past a week, and add more old ones than one batch holds.
	if _, err := e.pool.Exec(ctx, `UPDATE inventory_commits SET created_at = now() - interval '8 days'
		WHERE holder IN ('prune-a', 'prune-b')`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO inventory_commits (attempt, holder, outcome, created_at)
		SELECT 'old-' || g, 'old', 'aborted', now() - interval '30 days' FROM generate_series(1, $1) g`, pruneBatch+7); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PruneCommits(ctx, s.opts.CommitTimeout); !errors.Is(err, ErrInvalid) {
		t.Fatalf("retention equal to the commit timeout: %v, want ErrInvalid", err)
	}
	n, err := s.PruneCommits(ctx, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(pruneBatch+9) {
		t.Fatalf("pruned %d, want %d", n, pruneBatch+9)
	}
	if left := count("true"); left != 1 || count("holder = 'prune-c'") != 1 {
		t.Fatalf("%d records left, want only the recent sale's", left)
	}
	if err := s.Reserve(ctx, "prune-d", []Line{{VariantID: v, Quantity: 1}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "prune-d", []Line{{VariantID: v, Quantity: 1}}, "order", nil); err != nil {
		t.Fatal(err)
	}
	if got := e.onHand(v); got != 16 {
		t.Fatalf("on_hand %d after four sales of 20, want 16", got)
	}
}
