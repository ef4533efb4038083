package inventory

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/db"
	"commerce/internal/platform/fault"
	"commerce/internal/platform/testenv"
)

func TestReserveAndRelease(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	id := e.variant(10)

	if err := s.Reserve(ctx, "c1", []Line{{id, 3}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	wantLevels(t, s, id, 10, 7, 3)
	l := levels(t, s, id)
	if len(l.Holds) != 1 || l.Holds[0].Holder != "c1" || l.Holds[0].Quantity != 3 || l.Holds[0].Committing ||
		time.Until(l.Holds[0].ExpiresAt) < 50*time.Second {
		t.Fatalf("holds = %+v", l.Holds)
	}
	n, err := s.Release(ctx, "c1", []uuid.UUID{id})
	if err != nil || n != 3 {
		t.Fatalf("release = %d, %v; want 3", n, err)
	}
	wantLevels(t, s, id, 10, 10, 0)
	// a hold that is gone returns nothing
	if n, err := s.Release(ctx, "c1", []uuid.UUID{id}); err != nil || n != 0 {
		t.Fatalf("second release = %d, %v; want 0", n, err)
	}
	wantLevels(t, s, id, 10, 10, 0)
}

func TestReserveReplacesTheHoldersHold(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	id := e.variant(10)
	for _, q := range []int64{3, 3, 5, 2, 10} {
		if err := s.Reserve(ctx, "c1", []Line{{id, q}}, time.Minute); err != nil {
			t.Fatalf("reserve %d: %v", q, err)
		}
		wantLevels(t, s, id, 10, 10-q, q)
	}
	// more than exists: refused, and (all or nothing) the holder holds nothing after
	err := s.Reserve(ctx, "c1", []Line{{id, 11}}, time.Minute)
	var ise *InsufficientStockError
	if !errors.As(err, &ise) || len(ise.Shortages) != 1 || ise.Shortages[0].Available != 10 {
		t.Fatalf("err = %v; want a shortage with available 10 (what the holder could hold)", err)
	}
	wantLevels(t, s, id, 10, 10, 0)
}

// sortedIDs returns ids in the order Reserve takes them.
func sortedIDs(ids []uuid.UUID) []uuid.UUID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

func TestReserveAllOrNothingReportsEveryShortLine(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	ids := sortedIDs(e.variants(4, 5))
	// ids[0] fine, ids[1] short (fails first), ids[2] fine, ids[3] short
	if err := s.Reserve(ctx, "other", []Line{{ids[1], 4}, {ids[3], 5}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	err := s.Reserve(ctx, "c1", []Line{{ids[3], 2}, {ids[2], 5}, {ids[1], 2}, {ids[0], 1}}, time.Minute)
	var ise *InsufficientStockError
	if !errors.As(err, &ise) || !errors.Is(err, ErrInsufficientStock) {
		t.Fatalf("err = %v; want *InsufficientStockError", err)
	}
	want := []Shortage{{ids[1], 2, 1}, {ids[3], 2, 0}}
	if !slices.Equal(ise.Shortages, want) {
		t.Fatalf("shortages = %+v; want %+v", ise.Shortages, want)
	}
	for i, id := range ids {
		held := []int64{0, 4, 0, 5}[i]
		wantLevels(t, s, id, 5, 5-held, held)
	}
}

func TestReserveErrors(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	id := e.variant(5)
	for name, tc := range map[string]struct {
		holder string
		lines  []Line
		want   error
	}{
		"no lines":        {"c1", nil, ErrInvalid},
		"zero quantity":   {"c1", []Line{{id, 0}}, ErrInvalid},
		"bad holder":      {"c:1", []Line{{id, 1}}, ErrInvalid},
		"empty holder":    {"", []Line{{id, 1}}, ErrInvalid},
		"unknown variant": {"c1", []Line{{id, 1}, {uuid.New(), 1}}, ErrNotFound},
	} {
		t.Run(name, func(t *testing.T) {
			if err := s.Reserve(ctx, tc.holder, tc.lines, time.Minute); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v; want %v", err, tc.want)
			}
			wantLevels(t, s, id, 5, 5, 0)
		})
	}
}

func TestDuplicateLinesAreMerged(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	id := e.variant(5)
	if err := s.Reserve(ctx, "c1", []Line{{id, 1}, {id, 2}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	wantLevels(t, s, id, 5, 2, 3)
	if err := s.Commit(ctx, "c1", []Line{{id, 2}, {id, 1}}, "sale", nil); err != nil {
		t.Fatal(err)
	}
	wantLevels(t, s, id, 2, 2, 0)
}

func TestCounterLoadsLazilyAfterRedisLoss(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	id := e.variant(10)
	if err := s.Reserve(ctx, "c1", []Line{{id, 4}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := testenv.DeleteSpace(ctx, e.rdb, e.space); err != nil { // Redis lost everything: the hold too
		t.Fatal(err)
	}
	if _, ok := e.rawAvail(s, id); ok {
		t.Fatal("counter survived DeleteSpace")
	}
	if err := s.Reserve(ctx, "c2", []Line{{id, 10}}, time.Minute); err != nil {
		t.Fatalf("reserve after loss: %v", err)
	}
	wantLevels(t, s, id, 10, 0, 10)
	// c1's hold is gone: committing it fails and changes nothing
	if err := s.Commit(ctx, "c1", []Line{{id, 4}}, "sale", nil); !errors.Is(err, ErrHoldMissing) {
		t.Fatalf("commit of a lost hold: %v; want ErrHoldMissing", err)
	}
	wantLevels(t, s, id, 10, 0, 10)
}

func TestLoadSubtractsHoldsStillInRedis(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	id := e.variant(10)
	if err := s.Reserve(ctx, "c1", []Line{{id, 4}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	e.rdb.Del(ctx, s.r.keys(id).avail) // only the counter is lost
	av, err := s.Available(ctx, []uuid.UUID{id})
	if err != nil || av[id] != 6 {
		t.Fatalf("available = %v, %v; want 6", av, err)
	}
	wantLevels(t, s, id, 10, 6, 4)
}

func TestCommit(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	ids := e.variants(2, 10)
	lines := []Line{{ids[0], 2}, {ids[1], 3}}
	if err := s.Reserve(ctx, "chk1", lines, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `CREATE TABLE t_orders (holder text PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	inTx := func(ctx context.Context, tx db.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO t_orders VALUES ('chk1')`)
		return err
	}
	if err := s.Commit(ctx, "chk1", lines, "sale", inTx); err != nil {
		t.Fatal(err)
	}
	wantLevels(t, s, ids[0], 8, 8, 0)
	wantLevels(t, s, ids[1], 7, 7, 0)
	for _, l := range lines {
		var n int64
		var ref string
		if err := e.pool.QueryRow(ctx, `SELECT delta, reference FROM stock_ledger WHERE variant_id = $1 AND reason = 'sale'`,
			l.VariantID).Scan(&n, &ref); err != nil {
			t.Fatal(err)
		}
		if n != -l.Quantity || ref != "chk1" {
			t.Fatalf("ledger: delta %d reference %q", n, ref)
		}
	}
	// Selling again: the holds are gone.
	if err := s.Commit(ctx, "chk1", lines, "sale", inTx); !errors.Is(err, ErrHoldMissing) {
		t.Fatalf("second commit: %v; want ErrHoldMissing", err)
	}
}

// TestCommitRefusedWhenPostgreSQLHasLessThanHeld: PostgreSQL is the truth. When Redis holds
// more than on_hand (Redis lost data, or on_hand was changed behind its back), the sale is
// refused with ErrInsufficientStock, nothing is written and the holds stay held: on_hand
// never goes below zero, whatever Redis believed.
func TestCommitRefusedWhenPostgreSQLHasLessThanHeld(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	ids := e.variants(1, 10)
	lines := []Line{{ids[0], 4}}
	if err := s.Reserve(ctx, "chk-short", lines, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE inventory SET on_hand = 3 WHERE variant_id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	err := s.Commit(ctx, "chk-short", lines, "sale", func(context.Context, db.Tx) error { return nil })
	if !errors.Is(err, ErrInsufficientStock) {
		t.Fatalf("commit of 4 with on_hand 3: %v; want ErrInsufficientStock", err)
	}
	var onHand, sales int64
	if err := e.pool.QueryRow(ctx, `SELECT on_hand, (SELECT count(*) FROM stock_ledger WHERE variant_id = $1 AND reason = 'sale')
		FROM inventory WHERE variant_id = $1`, ids[0]).Scan(&onHand, &sales); err != nil {
		t.Fatal(err)
	}
	if onHand != 3 || sales != 0 {
		t.Fatalf("after the refused sale: on_hand %d, %d sale rows; want 3, 0", onHand, sales)
	}
	l := levels(t, s, ids[0])
	if l.Held != 4 {
		t.Fatalf("the hold after the refused sale: held %d, want 4 (held again)", l.Held)
	}
}

func TestCommitWhoseTransactionFailsKeepsTheHolds(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	id := e.variant(10)
	if err := s.Reserve(ctx, "chk1", []Line{{id, 2}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	before := levels(t, s, id).Holds[0].ExpiresAt
	boom := errors.New("order insert failed")
	err := s.Commit(ctx, "chk1", []Line{{id, 2}}, "sale", func(ctx context.Context, tx db.Tx) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v; want the inTx error", err)
	}
	wantLevels(t, s, id, 10, 8, 2)
	l := levels(t, s, id)
	if l.Holds[0].Committing || !l.Holds[0].ExpiresAt.Equal(before) {
		t.Fatalf("hold after a failed commit = %+v; want held with expiry %v", l.Holds[0], before)
	}
	if err := s.Commit(ctx, "chk1", []Line{{id, 2}}, "sale", nil); err != nil {
		t.Fatalf("retry: %v", err)
	}
	wantLevels(t, s, id, 8, 8, 0)
}

func TestCommitWithAMissingHoldChangesNothing(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	ids := sortedIDs(e.variants(2, 10))
	if err := s.Reserve(ctx, "chk1", []Line{{ids[0], 2}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	// ids[0] is marked first, then ids[1] has no hold: ids[0] must be unmarked
	err := s.Commit(ctx, "chk1", []Line{{ids[0], 2}, {ids[1], 1}}, "sale", nil)
	if !errors.Is(err, ErrHoldMissing) {
		t.Fatalf("err = %v; want ErrHoldMissing", err)
	}
	// wrong quantity
	if err := s.Commit(ctx, "chk1", []Line{{ids[0], 1}}, "sale", nil); !errors.Is(err, ErrHoldMissing) {
		t.Fatalf("err = %v; want ErrHoldMissing", err)
	}
	wantLevels(t, s, ids[0], 10, 8, 2)
	if levels(t, s, ids[0]).Holds[0].Committing {
		t.Fatal("hold left committing")
	}
	// and it can still be released
	if n, err := s.Release(ctx, "chk1", ids); err != nil || n != 2 {
		t.Fatalf("release = %d, %v", n, err)
	}
}

func TestCommitOfAnExpiredHoldFails(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	id := e.variant(10)
	if err := s.Reserve(ctx, "chk1", []Line{{id, 2}}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitRedisPast(t, e.rdb, levels(t, s, id).Holds[0].ExpiresAt)
	if err := s.Commit(ctx, "chk1", []Line{{id, 2}}, "sale", nil); !errors.Is(err, ErrHoldMissing) {
		t.Fatalf("err = %v; want ErrHoldMissing", err)
	}
	wantLevels(t, s, id, 10, 10, 0)
}

func TestReserveReclaimsExpiredHoldsLazily(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	id := e.variant(3)
	if err := s.Reserve(ctx, "a", []Line{{id, 3}}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitRedisPast(t, e.rdb, levels(t, s, id).Holds[0].ExpiresAt)
	// no sweep: the reserve itself returns the expired hold first
	if err := s.Reserve(ctx, "b", []Line{{id, 3}}, time.Minute); err != nil {
		t.Fatalf("reserve after expiry: %v", err)
	}
	wantLevels(t, s, id, 3, 0, 3)
}

func TestCommittingHoldsAreNotReleasedOrReserved(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.variant(10)
	dead := e.service(Options{Hooks: Hooks{AfterMark: func() error { return errCrash }}})
	if err := dead.Reserve(ctx, "chk1", []Line{{id, 2}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := dead.Commit(ctx, "chk1", []Line{{id, 2}}, "sale", nil); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	s := e.service(Options{})
	if n, err := s.Release(ctx, "chk1", []uuid.UUID{id}); err != nil || n != 0 {
		t.Fatalf("release of a committing hold = %d, %v; want 0", n, err)
	}
	if err := s.Reserve(ctx, "chk1", []Line{{id, 1}}, time.Minute); !errors.Is(err, ErrHoldBusy) {
		t.Fatalf("reserve over a committing hold: %v; want ErrHoldBusy", err)
	}
	if err := s.Commit(ctx, "chk1", []Line{{id, 2}}, "sale", nil); !errors.Is(err, ErrHoldBusy) {
		t.Fatalf("second commit attempt: %v; want ErrHoldBusy", err)
	}
	wantLevels(t, s, id, 10, 8, 2)
}

func TestAdjust(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	id := e.variant(10)
	l, err := s.Adjust(ctx, id, 5, "restock", "po-1")
	if err != nil || l.OnHand != 15 || l.Available != 15 {
		t.Fatalf("adjust +5 = %+v, %v", l, err)
	}
	if err := s.Reserve(ctx, "c1", []Line{{id, 12}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	_, err = s.Adjust(ctx, id, -4, "shrinkage", "")
	var bh *BelowHeldError
	if !errors.As(err, &bh) || !errors.Is(err, ErrBelowHeld) || bh.Available != 3 {
		t.Fatalf("adjust -4 with 12 of 15 held: %v; want BelowHeldError available 3", err)
	}
	wantLevels(t, s, id, 15, 3, 12)
	if _, err := s.Adjust(ctx, id, -3, "shrinkage", "count-7"); err != nil {
		t.Fatal(err)
	}
	wantLevels(t, s, id, 12, 0, 12)
	if got := ledgerSum(t, e.pool, id, "shrinkage"); got != -3 {
		t.Fatalf("shrinkage ledger = %d", got)
	}
	if got := ledgerSum(t, e.pool, id, "restock"); got != 5 {
		t.Fatalf("restock ledger = %d", got)
	}
	var ref string
	if err := e.pool.QueryRow(ctx, `SELECT reference FROM stock_ledger WHERE variant_id = $1 AND reason = 'shrinkage'`, id).Scan(&ref); err != nil || ref != "count-7" {
		t.Fatalf("reference = %q, %v", ref, err)
	}
	for _, bad := range []int64{0, MaxAdjust + 1, -MaxAdjust - 1} {
		if _, err := s.Adjust(ctx, id, bad, "x", ""); !errors.Is(err, ErrInvalid) {
			t.Fatalf("adjust %d: %v", bad, err)
		}
	}
	if _, err := s.Adjust(ctx, id, 1, "", ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty reason: %v", err)
	}
	if _, err := s.Adjust(ctx, uuid.New(), 1, "restock", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown variant: %v", err)
	}
}

func TestSet(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	id := e.variant(10)
	if err := s.Reserve(ctx, "c1", []Line{{id, 3}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if l, err := s.Set(ctx, id, 20, "correction"); err != nil || l.OnHand != 20 || l.Available != 17 {
		t.Fatalf("set 20 = %+v, %v", l, err)
	}
	if _, err := s.Set(ctx, id, 3, "correction"); err != nil {
		t.Fatal(err)
	}
	wantLevels(t, s, id, 3, 0, 3)
	if _, err := s.Set(ctx, id, 2, "correction"); !errors.Is(err, ErrBelowHeld) {
		t.Fatalf("set below held: %v", err)
	}
	if _, err := s.Set(ctx, id, 3, "correction"); err != nil {
		t.Fatal(err)
	}
	wantLevels(t, s, id, 3, 0, 3)
	if got := ledgerSum(t, e.pool, id, ""); got != -7 {
		t.Fatalf("ledger sum = %d; want -7", got)
	}
}

// The rules of finalize, adjust and load that keep the counter from ever being raised
// above the truth, each driven step by step.
func TestVersionRules(t *testing.T) {
	ctx := context.Background()

	t.Run("increase already included by a reconcile is not applied twice", func(t *testing.T) {
		e := newEnv(t)
		s := e.service(Options{})
		id := e.variant(10)
		wantLevels(t, s, id, 10, 10, 0)
		row, err := s.store.add(ctx, id, 5, nil, "restock", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Reconcile(ctx, []uuid.UUID{id}, false); err != nil { // reads on_hand 15
			t.Fatal(err)
		}
		code, err := s.r.adjustOne(ctx, id, 5, row.Version)
		if err != nil || code != codeSkip {
			t.Fatalf("apply = %q, %v; want SKIP", code, err)
		}
		wantLevels(t, s, id, 15, 15, 0)
	})

	t.Run("an increase that reached a missing counter makes an older load stale", func(t *testing.T) {
		e := newEnv(t)
		s := e.service(Options{})
		id := e.variant(10)
		old, err := s.store.stock(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		row, err := s.store.add(ctx, id, 5, nil, "restock", "")
		if err != nil {
			t.Fatal(err)
		}
		if code, err := s.r.adjustOne(ctx, id, 5, row.Version); err != nil || code != codeMissing {
			t.Fatalf("apply = %q, %v; want MISSING", code, err)
		}
		if code, _, err := s.r.loadOne(ctx, id, old.OnHand, old.Version, "e1"); err != nil || code != codeStale {
			t.Fatalf("load of the older read = %q, %v; want STALE", code, err)
		}
		wantLevels(t, s, id, 15, 15, 0)
	})

	t.Run("a sale computed into the counter before finalize gets its hold back", func(t *testing.T) {
		e := newEnv(t)
		paused := make(chan struct{})
		resume := make(chan struct{})
		s := e.service(Options{Hooks: Hooks{AfterTx: func() error { close(paused); <-resume; return nil }}})
		id := e.variant(10)
		if err := s.Reserve(ctx, "chk", []Line{{id, 4}}, time.Minute); err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		go func() { done <- s.Commit(ctx, "chk", []Line{{id, 4}}, "sale", nil) }()
		<-paused
		// on_hand is 6 and the hold (4) is still there: reconcile sets 6 - 4 = 2 (low)
		if _, err := s.Reconcile(ctx, []uuid.UUID{id}, false); err != nil {
			t.Fatal(err)
		}
		if n, _ := e.rawAvail(s, id); n != 2 {
			t.Fatalf("avail between tx and finalize = %d; want 2", n)
		}
		close(resume)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		wantLevels(t, s, id, 6, 6, 0)
	})

	t.Run("a hold lost with Redis is subtracted when the reload predates the sale", func(t *testing.T) {
		e := newEnv(t)
		paused := make(chan struct{})
		resume := make(chan struct{})
		s := e.service(Options{Hooks: Hooks{AfterMark: func() error { close(paused); <-resume; return nil }}})
		other := e.service(Options{})
		id := e.variant(10)
		if err := s.Reserve(ctx, "chk", []Line{{id, 4}}, time.Minute); err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		go func() { done <- s.Commit(ctx, "chk", []Line{{id, 4}}, "sale", nil) }()
		<-paused
		if err := testenv.DeleteSpace(ctx, e.rdb, e.space); err != nil { // the committing hold is lost
			t.Fatal(err)
		}
		if av, err := other.Available(ctx, []uuid.UUID{id}); err != nil || av[id] != 10 {
			t.Fatalf("reload before the sale = %v, %v; want 10", av, err)
		}
		close(resume)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		wantLevels(t, s, id, 6, 6, 0)
	})

	t.Run("finalize by recovery and by the commit only subtracts once", func(t *testing.T) {
		e := newEnv(t)
		s := e.service(Options{})
		id := e.variant(10)
		if err := s.Reserve(ctx, "chk", []Line{{id, 4}}, time.Minute); err != nil {
			t.Fatal(err)
		}
		rep, err := s.r.markOne(ctx, id, "chk", "att1", 4, 60000)
		if err != nil || rep.code != codeOK {
			t.Fatal(rep.code, err)
		}
		epoch := rep.epoch
		vs, err := s.store.sell(ctx, saleSpec{attempt: "att1", holder: "chk", lines: []Line{{id, 4}}, reason: "sale", reference: "chk"})
		if err != nil {
			t.Fatal(err)
		}
		for i, ep := range []string{"", epoch, epoch} { // recovery, then the commit, then again
			if _, _, err := s.r.finalizeOne(ctx, id, "chk", "att1", 4, vs[id], ep); err != nil {
				t.Fatal(i, err)
			}
			wantLevels(t, s, id, 6, 6, 0)
		}
	})
}

func TestAvailableFallsBackToPostgresWhenRedisIsDown(t *testing.T) {
	e, srv := newPrivateEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	id := e.variant(10)
	if err := s.Reserve(ctx, "c1", []Line{{id, 4}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	av, err := s.Available(ctx, []uuid.UUID{id, uuid.New()})
	if err != nil || len(av) != 1 || av[id] != 10 {
		t.Fatalf("available with Redis down = %v, %v; want on_hand 10 only", av, err)
	}
	// reservations never degrade
	err = s.Reserve(ctx, "c2", []Line{{id, 1}}, time.Minute)
	if err == nil || !fault.IsUnavailable(err) {
		t.Fatalf("reserve with Redis down: %v; want an unavailable error", err)
	}
	if _, err := s.Adjust(ctx, id, 5, "restock", ""); err == nil || !fault.IsUnavailable(err) {
		t.Fatalf("adjust with Redis down: %v", err)
	}
	if n := e.onHand(id); n != 10 {
		t.Fatalf("on_hand = %d after a refused adjust", n)
	}
	srv.Start() // empty: heals lazily
	wantLevels(t, s, id, 10, 10, 0)
}
