package inventory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

var errInTx = errors.New("order insert failed")

type propStats struct {
	reserved, short, committed, commitFailed, crashed, oversoldWindow, released atomic.Int64
	adjusted, belowHeld, sweeps, reconciles, flushes, scriptFlushes             atomic.Int64
}

// Many workers doing reserve/release/commit/adjust/sweep/reconcile on a
// few variants while Redis is FLUSHALLed and SCRIPT FLUSHed at random points (a private
// redis-server), plus commits that "crash" after step 1 and commits slow enough for
// recovery to fence them. At the end: before any reconcile, no counter is above the
// truth; after one reconcile, available + held == on_hand for every variant; no hold was
// sold twice; and on_hand == initial + adjustments − sold, with sold counted by a row the
// sale's own transaction inserted. Seeded (INVENTORY_PROP_SEED), bounded
// (INVENTORY_PROP_DURATION, default 3s).
func TestPropertyRandomOperationsWithRedisLoss(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("INVENTORY_PROP_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = n
	}
	dur := 3 * time.Second
	if v := os.Getenv("INVENTORY_PROP_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		dur = d
	}
	t.Logf("seed %d (rerun with INVENTORY_PROP_SEED=%d), duration %v", seed, seed, dur)

	e, _ := newPrivateEnv(t)
	ctx := context.Background()
	const commitTimeout = 150 * time.Millisecond
	// Reconcile pauses between its PostgreSQL read and its script, widening the race
	// with commits and adjustments that its version check must win.
	widen := rand.New(rand.NewPCG(seed, 2000))
	var widenMu sync.Mutex
	s := e.service(Options{CommitTimeout: commitTimeout, ReclaimBatch: 5, LoadRetries: 20,
		Hooks: Hooks{ReconcileRead: func(uuid.UUID) {
			widenMu.Lock()
			d := time.Duration(widen.IntN(3000)) * time.Microsecond
			widenMu.Unlock()
			time.Sleep(d)
		}}})
	crashRand := rand.New(rand.NewPCG(seed, 1000))
	var crashMu sync.Mutex
	var crashes atomic.Int64
	// a second "process" whose commits die after step 1, now and then
	crasher := e.service(Options{CommitTimeout: commitTimeout, Hooks: Hooks{AfterMark: func() error {
		crashMu.Lock()
		defer crashMu.Unlock()
		if crashRand.IntN(2) == 0 {
			crashes.Add(1)
			return errCrash
		}
		return nil
	}}})
	if _, err := e.pool.Exec(ctx, `CREATE TABLE prop_sales (holder text NOT NULL, variant_id uuid NOT NULL,
		quantity bigint NOT NULL, PRIMARY KEY (holder, variant_id))`); err != nil {
		t.Fatal(err)
	}
	const nv = 4
	ids := e.variants(nv, 0)
	initial := map[uuid.UUID]int64{}
	r0 := rand.New(rand.NewPCG(seed, 0))
	for _, id := range ids {
		initial[id] = 10 + r0.Int64N(30)
		if _, err := e.pool.Exec(ctx, `UPDATE inventory SET on_hand = $2 WHERE variant_id = $1`, id, initial[id]); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	adjustments := map[uuid.UUID]int64{}
	soldByReturn := map[string][]Line{} // Commit returned nil
	var st propStats
	deadline := time.Now().Add(dur)
	// Every operation runs under gate.RLock; a checkpoint takes gate.Lock, so it sees a
	// quiescent system, where the invariant must hold exactly (no operation is half done;
	// a crashed commit's committing hold counts as held and sold nothing).
	var gate sync.RWMutex
	checkpoints := 0
	checkpoint := func(when string) {
		for _, id := range ids {
			l, err := s.Levels(ctx, id)
			if err != nil {
				t.Errorf("%s: levels: %v", when, err)
				return
			}
			if l.Drift != 0 {
				t.Errorf("%s: variant %s: available %d + held %d != on_hand %d (holds %+v)",
					when, id, l.Available, l.Held, l.OnHand, l.Holds)
			}
		}
	}

	type held struct {
		holder string
		lines  []Line
	}
	worker := func(w int) {
		r := rand.New(rand.NewPCG(seed, uint64(w+1)))
		var live []held
		take := func() (held, bool) {
			if len(live) == 0 {
				return held{}, false
			}
			j := r.IntN(len(live))
			h := live[j]
			live = append(live[:j], live[j+1:]...)
			return h, true
		}
		op := func(i int) bool {
			switch p := r.IntN(100); {
			case p < 40: // reserve 1-2 lines
				h := held{holder: fmt.Sprintf("w%d_%d", w, i)}
				first := r.IntN(nv)
				for k := 0; k < 1+r.IntN(2); k++ {
					h.lines = append(h.lines, Line{ids[(first+k)%nv], 1 + r.Int64N(3)})
				}
				ttl := time.Duration(20+r.IntN(400)) * time.Millisecond
				err := s.Reserve(ctx, h.holder, h.lines, ttl)
				switch {
				case err == nil:
					st.reserved.Add(1)
					live = append(live, h)
				case errors.Is(err, ErrInsufficientStock):
					st.short.Add(1)
				default:
					t.Errorf("reserve: %v", err)
					return false
				}
			case p < 60: // commit (sometimes failing inside the transaction, sometimes crashing)
				h, ok := take()
				if !ok {
					return true
				}
				fail := r.IntN(8) == 0
				inTx := func(ctx context.Context, tx pgx.Tx) error {
					for _, l := range h.lines {
						if _, err := tx.Exec(ctx, `INSERT INTO prop_sales VALUES ($1, $2, $3)`, h.holder, l.VariantID, l.Quantity); err != nil {
							return err
						}
					}
					if fail {
						return errInTx
					}
					return nil
				}
				svc := s
				if r.IntN(10) == 0 {
					svc = crasher
				}
				err := svc.Commit(ctx, h.holder, h.lines, "sale", inTx)
				switch {
				case err == nil:
					st.committed.Add(1)
					mu.Lock()
					soldByReturn[h.holder] = h.lines
					mu.Unlock()
				case errors.Is(err, errCrash):
					st.crashed.Add(1)
				case errors.Is(err, errInTx):
					st.commitFailed.Add(1)
					live = append(live, h) // held again: commit or release it later
				case errors.Is(err, ErrHoldMissing), errors.Is(err, ErrHoldBusy):
					st.commitFailed.Add(1)
				case errors.Is(err, ErrInsufficientStock):
					// only after Redis lost a committing hold (the documented window):
					// PostgreSQL refused the sale, nothing was oversold
					st.oversoldWindow.Add(1)
					live = append(live, h)
				default:
					t.Errorf("commit: %v", err)
					return false
				}
			case p < 75: // release
				h, ok := take()
				if !ok {
					return true
				}
				ids := make([]uuid.UUID, len(h.lines))
				for k, l := range h.lines {
					ids[k] = l.VariantID
				}
				n, err := s.Release(ctx, h.holder, ids)
				if err != nil {
					t.Errorf("release: %v", err)
					return false
				}
				st.released.Add(n)
			case p < 85: // adjust
				id := ids[r.IntN(nv)]
				delta := int64(r.IntN(16) - 5)
				if delta == 0 {
					delta = 1
				}
				_, err := s.Adjust(ctx, id, delta, "correction", fmt.Sprintf("w%d_%d", w, i))
				switch {
				case err == nil:
					st.adjusted.Add(1)
					mu.Lock()
					adjustments[id] += delta
					mu.Unlock()
				case errors.Is(err, ErrBelowHeld), errors.Is(err, ErrConcurrentChange):
					st.belowHeld.Add(1)
				default:
					t.Errorf("adjust %+d: %v", delta, err)
					return false
				}
			case p < 91:
				if _, err := s.Sweep(ctx); err != nil {
					t.Errorf("sweep: %v", err)
					return false
				}
				st.sweeps.Add(1)
			case p < 96:
				var sub []uuid.UUID
				if r.IntN(2) == 0 {
					sub = ids[:1+r.IntN(nv)]
				}
				if _, err := s.Reconcile(ctx, sub, r.IntN(3) == 0); err != nil {
					t.Errorf("reconcile: %v", err)
					return false
				}
				st.reconciles.Add(1)
			default:
				if _, err := s.Available(ctx, ids); err != nil {
					t.Errorf("available: %v", err)
					return false
				}
			}
			return true
		}
		for i := 0; time.Now().Before(deadline); i++ {
			gate.RLock()
			ok := op(i)
			gate.RUnlock()
			if !ok {
				return
			}
		}
	}

	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) { defer wg.Done(); worker(w) }(w)
	}
	wg.Add(1)
	go func() { // chaos
		defer wg.Done()
		r := rand.New(rand.NewPCG(seed, 999))
		for time.Now().Before(deadline) {
			time.Sleep(time.Duration(50+r.IntN(250)) * time.Millisecond)
			gate.RLock()
			if r.IntN(5) < 3 {
				if err := e.rdb.FlushAll(ctx).Err(); err != nil {
					t.Errorf("flushall: %v", err)
				}
				st.flushes.Add(1)
			} else {
				if err := e.rdb.ScriptFlush(ctx).Err(); err != nil {
					t.Errorf("script flush: %v", err)
				}
				st.scriptFlushes.Add(1)
			}
			gate.RUnlock()
		}
	}()
	wg.Add(1)
	go func() { // checkpoints
		defer wg.Done()
		r := rand.New(rand.NewPCG(seed, 998))
		for time.Now().Before(deadline) {
			time.Sleep(time.Duration(100+r.IntN(200)) * time.Millisecond)
			gate.Lock()
			checkpoint("checkpoint")
			checkpoints++
			gate.Unlock()
		}
	}()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("reserved %d (short %d), committed %d (failed %d, crashed %d, refused by PostgreSQL %d), released %d units, "+
		"adjusted %d (refused %d), sweeps %d, reconciles %d, FLUSHALL %d, SCRIPT FLUSH %d, checkpoints %d",
		st.reserved.Load(), st.short.Load(), st.committed.Load(), st.commitFailed.Load(), st.crashed.Load(),
		st.oversoldWindow.Load(), st.released.Load(), st.adjusted.Load(), st.belowHeld.Load(), st.sweeps.Load(),
		st.reconciles.Load(), st.flushes.Load(), st.scriptFlushes.Load(), checkpoints)
	if st.committed.Load() == 0 || st.flushes.Load() == 0 || st.adjusted.Load() == 0 {
		t.Fatal("the run exercised too little to mean anything")
	}

	// Quiescent. Let recovery decide the crashed commits still in Redis.
	waitRedisPast(t, e.rdb, time.Now().Add(commitTimeout+50*time.Millisecond))
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	// Before any reconcile: the invariant, and no hold left committing.
	checkpoint("before the final reconcile")
	for _, id := range ids {
		l := levels(t, s, id)
		for _, h := range l.Holds {
			if h.Committing {
				t.Errorf("variant %s: hold %+v still committing after recovery", id, h)
			}
		}
	}
	rep, err := s.Reconcile(ctx, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("final reconcile: %+v", rep)
	if rep.Skipped != 0 {
		t.Errorf("the final reconcile skipped %d variants", rep.Skipped)
	}
	for _, id := range ids {
		l := levels(t, s, id)
		if l.Drift != 0 || l.Available+l.Held != l.OnHand {
			t.Errorf("variant %s after reconcile: available %d held %d on_hand %d", id, l.Available, l.Held, l.OnHand)
		}
		var sold, saleLedger, allLedger int64
		if err := e.pool.QueryRow(ctx, `SELECT COALESCE(sum(quantity), 0) FROM prop_sales WHERE variant_id = $1`, id).Scan(&sold); err != nil {
			t.Fatal(err)
		}
		saleLedger = ledgerSum(t, e.pool, id, "sale")
		allLedger = ledgerSum(t, e.pool, id, "")
		if want := initial[id] + adjustments[id] - sold; l.OnHand != want {
			t.Errorf("variant %s: on_hand %d; want initial %d + adjustments %d - sold %d = %d",
				id, l.OnHand, initial[id], adjustments[id], sold, want)
		}
		if saleLedger != -sold {
			t.Errorf("variant %s: sale ledger %d, sales %d", id, saleLedger, sold)
		}
		if allLedger != l.OnHand-initial[id] {
			t.Errorf("variant %s: ledger sums to %d, on_hand moved by %d", id, allLedger, l.OnHand-initial[id])
		}
	}
	// No hold sold twice: one sale row per (holder, variant) in the ledger.
	var dup int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM stock_ledger WHERE reason = 'sale'
		GROUP BY reference, variant_id HAVING count(*) > 1) d`).Scan(&dup); err != nil {
		t.Fatal(err)
	}
	if dup != 0 {
		t.Errorf("%d holds were sold more than once", dup)
	}
	// Every commit that returned nil sold exactly its lines.
	for h, lines := range soldByReturn {
		for _, l := range lines {
			var q int64
			err := e.pool.QueryRow(ctx, `SELECT quantity FROM prop_sales WHERE holder = $1 AND variant_id = $2`, h, l.VariantID).Scan(&q)
			if err != nil || q != l.Quantity {
				t.Errorf("commit of %s returned nil but sold %d of %s (%v)", h, q, l.VariantID, err)
			}
		}
	}
}
