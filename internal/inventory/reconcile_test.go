package inventory

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
)

// A reconcile that read PostgreSQL before a concurrent commit never raises
// available above the truth. The interleavings are forced with hooks.
func TestReconcileReadBeforeCommitIsSkipped(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.variant(10)
	committer := e.service(Options{})
	if err := committer.Reserve(ctx, "chk1", []Line{{id, 3}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	var during int64
	s := e.service(Options{Hooks: Hooks{ReconcileRead: func(uuid.UUID) {
		// reconcile has read on_hand 10 (version 1); the whole sale happens now
		if err := committer.Commit(ctx, "chk1", []Line{{id, 3}}, "sale", nil); err != nil {
			t.Error(err)
		}
		during, _ = e.rawAvail(committer, id)
	}}})
	rep, err := s.Reconcile(ctx, []uuid.UUID{id}, false)
	if err != nil {
		t.Fatal(err)
	}
	// Without the version check it would set 10 - 0 = 10 with only 7 on hand.
	if rep.Skipped != 1 || rep.Fixed != 0 {
		t.Fatalf("report = %+v; want the stale read skipped", rep)
	}
	if during != 7 {
		t.Fatalf("available after the sale = %d", during)
	}
	wantLevels(t, s, id, 7, 7, 0)
}

func TestReconcileReadBeforeTransactionAppliedBeforeFinalize(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.variant(10)
	txDone := make(chan struct{})
	finish := make(chan struct{})
	committer := e.service(Options{Hooks: Hooks{AfterTx: func() error { close(txDone); <-finish; return nil }}})
	if err := committer.Reserve(ctx, "chk1", []Line{{id, 3}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	s := e.service(Options{Hooks: Hooks{ReconcileRead: func(uuid.UUID) {
		// read on_hand 10 before the sale; the transaction commits, step 3 not yet
		go func() { done <- committer.Commit(ctx, "chk1", []Line{{id, 3}}, "sale", nil) }()
		<-txDone
	}}})
	if _, err := s.Reconcile(ctx, []uuid.UUID{id}, false); err != nil {
		t.Fatal(err)
	}
	// The counter was computed from on_hand 10 minus the hold 3 still present: 7, which
	// is exactly the truth (7 on hand, nothing else held).
	if n, _ := e.rawAvail(s, id); n > 7 {
		t.Fatalf("available = %d > 7 on hand", n)
	}
	close(finish)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantLevels(t, s, id, 7, 7, 0)
}

func TestReconcileReadAfterTransactionBeforeFinalize(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.variant(10)
	txDone := make(chan struct{})
	finish := make(chan struct{})
	committer := e.service(Options{Hooks: Hooks{AfterTx: func() error { close(txDone); <-finish; return nil }}})
	if err := committer.Reserve(ctx, "chk1", []Line{{id, 3}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- committer.Commit(ctx, "chk1", []Line{{id, 3}}, "sale", nil) }()
	<-txDone
	s := e.service(Options{})
	if _, err := s.Reconcile(ctx, []uuid.UUID{id}, false); err != nil { // reads on_hand 7, hold 3 still there
		t.Fatal(err)
	}
	if n, _ := e.rawAvail(s, id); n != 4 {
		t.Fatalf("available = %d; want 4 (low by the hold, the safe side)", n)
	}
	close(finish)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantLevels(t, s, id, 7, 7, 0) // finalize gave the hold back
}

func TestReconcileRepairsDrift(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ids := e.variants(5, 10)
	s := e.service(Options{ReconcilePage: 2})
	if err := s.Reserve(ctx, "c1", []Line{{ids[0], 4}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		levels(t, s, id) // load every counter
	}
	e.rdb.Set(ctx, s.r.keys(ids[0]).avail, 100, 0)
	e.rdb.Set(ctx, s.r.keys(ids[1]).avail, 3, 0)
	e.rdb.Del(ctx, s.r.keys(ids[2]).avail)

	rep, err := s.Reconcile(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checked != 5 || rep.Drifted != 2 || rep.Fixed != 0 || len(rep.Variants) != 2 {
		t.Fatalf("dry run = %+v", rep)
	}
	if n, _ := e.rawAvail(s, ids[0]); n != 100 {
		t.Fatal("dry run wrote")
	}
	for _, v := range rep.Variants {
		if v.VariantID == ids[0] && (*v.RedisAvailable != 100 || v.ExpectedAvailable != 6 || v.Held != 4 || v.OnHand != 10) {
			t.Fatalf("variant report = %+v", v)
		}
	}
	rep, err = s.Reconcile(ctx, nil, false)
	if err != nil || rep.Checked != 5 || rep.Fixed != 2 {
		t.Fatalf("reconcile = %+v, %v", rep, err)
	}
	if _, ok := e.rawAvail(s, ids[2]); ok {
		t.Fatal("reconcile created a missing counter (the lazy load does that)")
	}
	wantLevels(t, s, ids[0], 10, 6, 4)
	wantLevels(t, s, ids[1], 10, 10, 0)
	rep, err = s.Reconcile(ctx, []uuid.UUID{ids[0], uuid.New(), ids[0]}, false)
	if err != nil || rep.Checked != 1 || rep.Drifted != 0 {
		t.Fatalf("reconcile of ids = %+v, %v", rep, err)
	}
}
