package inventory

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The process dies after each step of Commit; recovery (another process)
// ends with the right on_hand and available and no leaked hold.

// recoverAll polls Recover until it decided want committing holds.
func recoverAll(t *testing.T, s *Service, want int) {
	t.Helper()
	got := 0
	poll(t, 10*time.Second, "recovery", func() (bool, error) {
		n, err := s.Recover(context.Background())
		got += n
		return got >= want, err
	})
	if got != want {
		t.Fatalf("recovered %d committing holds; want %d", got, want)
	}
}

func outcome(t *testing.T, e *env, holder string) string {
	t.Helper()
	var o string
	err := e.pool.QueryRow(context.Background(), `SELECT outcome FROM inventory_commits WHERE holder = $1`, holder).Scan(&o)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestCrashAfterMarkReturnsTheStock(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ids := e.variants(2, 10)
	lines := []Line{{ids[0], 2}, {ids[1], 3}}
	dead := e.service(Options{CommitTimeout: 50 * time.Millisecond, Hooks: Hooks{AfterMark: func() error { return errCrash }}})
	if err := dead.Reserve(ctx, "chk1", lines, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := dead.Commit(ctx, "chk1", lines, "sale", nil); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	s := e.service(Options{})
	for _, id := range ids {
		if l := levels(t, s, id); !l.Holds[0].Committing || l.Drift != 0 {
			t.Fatalf("after the crash: %+v", l)
		}
	}
	recoverAll(t, s, 2)
	wantLevels(t, s, ids[0], 10, 10, 0)
	wantLevels(t, s, ids[1], 10, 10, 0)
	if o := outcome(t, e, "chk1"); o != outcomeAborted {
		t.Fatalf("attempt outcome = %q", o)
	}
	if n, _ := s.Recover(ctx); n != 0 {
		t.Fatalf("a second recovery decided %d more", n)
	}
}

func TestCrashAfterTransactionFinishesTheSale(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ids := e.variants(2, 10)
	lines := []Line{{ids[0], 2}, {ids[1], 3}}
	dead := e.service(Options{CommitTimeout: 50 * time.Millisecond, Hooks: Hooks{AfterTx: func() error { return errCrash }}})
	if err := dead.Reserve(ctx, "chk1", lines, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := dead.Commit(ctx, "chk1", lines, "sale", nil); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	s := e.service(Options{})
	// sold in PostgreSQL, still held in Redis: available is low, never high
	l := levels(t, s, ids[0])
	if l.OnHand != 8 || l.Available != 8 || l.Held != 2 || l.Drift != 2 {
		t.Fatalf("between the transaction and step 3: %+v", l)
	}
	recoverAll(t, s, 2)
	wantLevels(t, s, ids[0], 8, 8, 0)
	wantLevels(t, s, ids[1], 7, 7, 0)
	if o := outcome(t, e, "chk1"); o != outcomeCommitted {
		t.Fatalf("attempt outcome = %q", o)
	}
}

func TestCrashDuringFinalize(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ids := sortedIDs(e.variants(2, 10))
	lines := []Line{{ids[0], 2}, {ids[1], 3}}
	// step 3 done for the first line only: recovery finishes the second
	var s *Service
	dead := e.service(Options{CommitTimeout: 50 * time.Millisecond, Hooks: Hooks{AfterTx: func() error {
		var attempt string
		if err := e.pool.QueryRow(ctx, `SELECT attempt FROM inventory_commits WHERE holder = 'chk1'`).Scan(&attempt); err != nil {
			return err
		}
		var v int64
		if err := e.pool.QueryRow(ctx, `SELECT version FROM inventory WHERE variant_id = $1`, ids[0]).Scan(&v); err != nil {
			return err
		}
		if _, _, err := s.r.finalizeOne(ctx, ids[0], "chk1", attempt, 2, v, ""); err != nil {
			return err
		}
		return errCrash
	}}})
	s = e.service(Options{})
	if err := dead.Reserve(ctx, "chk1", lines, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := dead.Commit(ctx, "chk1", lines, "sale", nil); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	recoverAll(t, s, 1)
	wantLevels(t, s, ids[0], 8, 8, 0)
	wantLevels(t, s, ids[1], 7, 7, 0)
}

func TestCommitThatCompletedNeedsNoRecovery(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.variant(10)
	s := e.service(Options{CommitTimeout: 50 * time.Millisecond})
	if err := s.Reserve(ctx, "chk1", []Line{{id, 2}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "chk1", []Line{{id, 2}}, "sale", nil); err != nil {
		t.Fatal(err)
	}
	waitRedisPast(t, e.rdb, time.Now().Add(60*time.Millisecond)) // past the commit timeout: nothing left to decide
	if n, err := s.Recover(ctx); err != nil || n != 0 {
		t.Fatalf("recover = %d, %v", n, err)
	}
	wantLevels(t, s, id, 8, 8, 0)
}

// A commit so slow that recovery decided it first: its transaction must not commit.
func TestLateTransactionIsFencedByRecovery(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.variant(10)
	s := e.service(Options{})
	recovered := make(chan struct{})
	slow := e.service(Options{CommitTimeout: 50 * time.Millisecond, Hooks: Hooks{AfterMark: func() error {
		<-recovered // the process stalls past its commit timeout
		return nil
	}}})
	if err := slow.Reserve(ctx, "chk1", []Line{{id, 2}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- slow.Commit(ctx, "chk1", []Line{{id, 2}}, "sale", nil) }()
	poll(t, 10*time.Second, "the slow commit to be marked", func() (bool, error) {
		l, err := s.Levels(ctx, id)
		return err == nil && len(l.Holds) == 1 && l.Holds[0].Committing, err
	})
	recoverAll(t, s, 1)
	close(recovered)
	if err := <-done; !errors.Is(err, ErrHoldMissing) {
		t.Fatalf("late commit: %v; want ErrHoldMissing", err)
	}
	wantLevels(t, s, id, 10, 10, 0)
	if got := ledgerSum(t, e.pool, id, "sale"); got != 0 {
		t.Fatalf("ledger has a sale of %d", got)
	}
}

// A decrease is held first and sold like a commit: a crash is recovered the same way.
func TestCrashDuringDecrease(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.variant(10)
	dead := e.service(Options{CommitTimeout: 50 * time.Millisecond, Hooks: Hooks{AfterMark: func() error { return errCrash }}})
	if _, err := dead.Adjust(ctx, id, -4, "shrinkage", ""); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	s := e.service(Options{})
	if l := levels(t, s, id); l.Available != 6 || l.Held != 4 {
		t.Fatalf("after the crash: %+v", l)
	}
	recoverAll(t, s, 1)
	wantLevels(t, s, id, 10, 10, 0)

	dead2 := e.service(Options{CommitTimeout: 50 * time.Millisecond, Hooks: Hooks{AfterTx: func() error { return errCrash }}})
	if _, err := dead2.Adjust(ctx, id, -4, "shrinkage", ""); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	recoverAll(t, s, 1)
	wantLevels(t, s, id, 6, 6, 0)
}
