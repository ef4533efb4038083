package inventory

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// N ≥ 500 goroutines each reserving 1 unit of a variant with stock S ≪ N:
// exactly S succeed and available + held == on_hand afterwards.
func TestConcurrentReservationsNeverOversell(t *testing.T) {
	const n, stock = 600, 37
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	id := e.variant(stock)
	// The first reserve loads the counter; let every goroutine race for it instead.
	var ok, short atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			err := s.Reserve(ctx, holder(i), []Line{{id, 1}}, time.Minute)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrInsufficientStock):
				short.Add(1)
			default:
				errs <- err
			}
		}(i)
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if ok.Load() != stock || short.Load() != n-stock {
		t.Fatalf("%d reservations succeeded, %d were refused; want %d and %d", ok.Load(), short.Load(), stock, n-stock)
	}
	l := levels(t, s, id)
	if l.Available != 0 || l.Held != stock || l.Available+l.Held != l.OnHand || len(l.Holds) != stock {
		t.Fatalf("levels = available %d held %d (%d holds) on_hand %d", l.Available, l.Held, len(l.Holds), l.OnHand)
	}
}

// Reserve, release and commit racing on the same holds: every unit is either still
// available, held, or sold exactly once.
func TestReleaseAndCommitRace(t *testing.T) {
	const holders, stock = 60, 100
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	id := e.variant(stock)
	for i := 0; i < holders; i++ {
		if err := s.Reserve(ctx, holder(i), []Line{{id, 1}}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	var sold, released atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < holders; i++ {
		wg.Add(2)
		go func(h string) {
			defer wg.Done()
			err := s.Commit(ctx, h, []Line{{id, 1}}, "sale", nil)
			if err == nil {
				sold.Add(1)
			} else if !errors.Is(err, ErrHoldMissing) && !errors.Is(err, ErrHoldBusy) {
				t.Error(err)
			}
		}(holder(i))
		go func(h string) {
			defer wg.Done()
			n, err := s.Release(ctx, h, []uuid.UUID{id})
			if err != nil {
				t.Error(err)
			}
			released.Add(n)
		}(holder(i))
	}
	wg.Wait()
	l := levels(t, s, id)
	// Each hold ends exactly one way: a release that finds it committing returns nothing
	// and the commit sells it; a commit that finds it released sells nothing.
	if sold.Load()+released.Load() != holders {
		t.Fatalf("sold %d + released %d != %d holds", sold.Load(), released.Load(), holders)
	}
	if l.OnHand != stock-sold.Load() || l.Drift != 0 {
		t.Fatalf("on_hand %d (sold %d), drift %d", l.OnHand, sold.Load(), l.Drift)
	}
	if ledgerSum(t, e.pool, id, "sale") != -sold.Load() {
		t.Fatalf("ledger disagrees with %d sales", sold.Load())
	}
	if l.Held != 0 {
		t.Fatalf("holds left: %+v", l.Holds)
	}
}
