package inventory

import (
	"commerce/internal/platform/testenv"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
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

// Crash points of a Commit: the child process (testenv.RunCrash) ends with os.Exit
// there, so nothing a live process does on its way out (unmark, release, rollback) runs.
const (
	crashAfterMark   = "after_mark"
	crashAfterTx     = "after_tx"
	crashMidFinalize = "mid_finalize"
)

// dyingService is the crash child's service: its Commit ends the process at the points.
func dyingService(e *env) *Service {
	var s *Service
	s = e.service(Options{CommitTimeout: 50 * time.Millisecond, Hooks: Hooks{
		AfterMark: func() error { testenv.CrashAt(crashAfterMark); return nil },
		AfterTx: func() error {
			testenv.CrashAt(crashAfterTx)
			if testenv.CrashPoint() == crashMidFinalize {
				// Step 3 done for the first line only, then the process dies.
				first := uuid.MustParse(testenv.CrashVar("first"))
				ctx := context.Background()
				var attempt string
				if err := e.pool.QueryRow(ctx, `SELECT attempt FROM inventory_commits WHERE holder = 'chk1'`).Scan(&attempt); err != nil {
					return err
				}
				var v int64
				if err := e.pool.QueryRow(ctx, `SELECT version FROM inventory WHERE variant_id = $1`, first).Scan(&v); err != nil {
					return err
				}
				if _, _, err := s.r.finalizeOne(ctx, first, "chk1", attempt, 2, v, ""); err != nil {
					return err
				}
				testenv.CrashAt(crashMidFinalize)
			}
			return nil
		},
	}})
	return s
}

// variantVars passes variant ids to the crash child.
func variantVars(ids ...uuid.UUID) map[string]string {
	m := map[string]string{}
	for i, id := range ids {
		m[fmt.Sprint("v", i)] = id.String()
	}
	if len(ids) > 0 {
		m["first"] = ids[0].String()
	}
	return m
}

func childVariants() []uuid.UUID {
	var ids []uuid.UUID
	for i := 0; ; i++ {
		v := testenv.CrashVar(fmt.Sprint("v", i))
		if v == "" {
			return ids
		}
		ids = append(ids, uuid.MustParse(v))
	}
}

// commitChild is the crash child of the commit tests: it commits chk1's holds.
func commitChild(t *testing.T, e *env) {
	ids := childVariants()
	lines := []Line{{ids[0], 2}, {ids[1], 3}}
	_ = dyingService(e).Commit(context.Background(), "chk1", lines, "sale", nil)
	t.Fatal("the commit did not reach its crash point")
}

func TestCrashAfterMarkReturnsTheStock(t *testing.T) {
	e := newEnv(t)
	if testenv.CrashChild() {
		commitChild(t, e)
	}
	ctx := context.Background()
	ids := e.variants(2, 10)
	lines := []Line{{ids[0], 2}, {ids[1], 3}}
	s := e.service(Options{CommitTimeout: 50 * time.Millisecond})
	if err := s.Reserve(ctx, "chk1", lines, time.Hour); err != nil {
		t.Fatal(err)
	}
	testenv.RunCrash(t, crashAfterMark, variantVars(ids...))
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
	if testenv.CrashChild() {
		commitChild(t, e)
	}
	ctx := context.Background()
	ids := e.variants(2, 10)
	lines := []Line{{ids[0], 2}, {ids[1], 3}}
	s := e.service(Options{CommitTimeout: 50 * time.Millisecond})
	if err := s.Reserve(ctx, "chk1", lines, time.Hour); err != nil {
		t.Fatal(err)
	}
	testenv.RunCrash(t, crashAfterTx, variantVars(ids...))
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
	if testenv.CrashChild() {
		commitChild(t, e)
	}
	ctx := context.Background()
	ids := sortedIDs(e.variants(2, 10))
	lines := []Line{{ids[0], 2}, {ids[1], 3}}
	s := e.service(Options{CommitTimeout: 50 * time.Millisecond})
	if err := s.Reserve(ctx, "chk1", lines, time.Hour); err != nil {
		t.Fatal(err)
	}
	// step 3 done for the first line only: recovery finishes the second
	testenv.RunCrash(t, crashMidFinalize, variantVars(ids...))
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
	if testenv.CrashChild() {
		_, _ = dyingService(e).Adjust(context.Background(), childVariants()[0], -4, "shrinkage", "")
		t.Fatal("the decrease did not reach its crash point")
	}
	id := e.variant(10)
	s := e.service(Options{})
	t.Run("after mark", func(t *testing.T) {
		if testenv.CrashChild() {
			return
		}
		testenv.RunCrash(t, crashAfterMark, variantVars(id))
		if l := levels(t, s, id); l.Available != 6 || l.Held != 4 {
			t.Fatalf("after the crash: %+v", l)
		}
		recoverAll(t, s, 1)
		wantLevels(t, s, id, 10, 10, 0)
	})
	t.Run("after transaction", func(t *testing.T) {
		if testenv.CrashChild() {
			return
		}
		testenv.RunCrash(t, crashAfterTx, variantVars(id))
		recoverAll(t, s, 1)
		wantLevels(t, s, id, 6, 6, 0)
	})
}
