package inventory

import (
	"commerce/internal/platform/db"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

var errInTx = errors.New("order insert failed")

type propStats struct {
	reserved, short, committed, commitFailed, crashed, oversoldWindow, released atomic.Int64
	adjusted, belowHeld, sweeps, reconciles, flushes, scriptFlushes             atomic.Int64
	counterDels, evictions                                                      atomic.Int64
}

// Many workers doing reserve/release/commit/adjust/sweep/reconcile on a
// few variants while Redis loses data at random points (a private redis-server): all of
// it (FLUSHALL), its script cache (SCRIPT FLUSH), or part of it: one variant's counter
// DELeted while its holds remain, and keys evicted under maxmemory with allkeys-lru. A
// partial loss is what tells a load that subtracts the holds still in Redis from one that
// does not (a total flush leaves no holds behind). Plus commits that "crash" after step 1
// and commits slow enough for recovery to fence them. At the end: before any reconcile, no counter is above the
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
	availKey := func(id uuid.UUID) string { return e.space.Key("inv:{", id.String(), "}:avail") }
	heldKey := func(id uuid.UUID) string { return e.space.Key("inv:{", id.String(), "}:held") }
	// withHolds returns a variant that has holds in Redis now, if one has.
	withHolds := func(r *rand.Rand) (uuid.UUID, bool) {
		start := r.IntN(nv)
		for k := 0; k < nv; k++ {
			id := ids[(start+k)%nv]
			if n, err := e.rdb.HLen(ctx, heldKey(id)).Result(); err == nil && n > 0 {
				return id, true
			}
		}
		return ids[start], false
	}
	// lostCounter (quiescent): DEL the counter of a variant that holds stock, then read
	// its levels, which loads the counter again: exact, the holds still in Redis counted.
	lostCounter := func(r *rand.Rand) {
		id, _ := withHolds(r)
		if err := e.rdb.Del(ctx, availKey(id)).Err(); err != nil {
			t.Errorf("del counter: %v", err)
			return
		}
		st.counterDels.Add(1)
		checkpoint("counter DELeted with its holds in Redis")
	}
	// evict (quiescent): cap Redis's memory with allkeys-lru and write filler until
	// inventory keys are evicted. What is left may be any mix of counters, holds and
	// versions. Reading the levels loads missing counters; no counter may then be above
	// the truth (holds lost under a counter that survived leave it below). A FLUSHALL
	// then returns Redis to a state the protocol makes exact.
	evicted := func() int64 {
		v, err := e.rdb.InfoMap(ctx, "stats").Result()
		if err != nil {
			t.Errorf("info: %v", err)
			return 0
		}
		n, _ := strconv.ParseInt(v["Stats"]["evicted_keys"], 10, 64)
		return n
	}
	evict := func(r *rand.Rand) {
		mem, err := e.rdb.InfoMap(ctx, "memory").Result()
		if err != nil {
			t.Errorf("info memory: %v", err)
			return
		}
		usedMem, _ := strconv.ParseInt(mem["Memory"]["used_memory"], 10, 64)
		before := evicted()
		if err := e.rdb.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
			t.Errorf("config: %v", err)
			return
		}
		if err := e.rdb.ConfigSet(ctx, "maxmemory", strconv.FormatInt(usedMem+256<<10, 10)).Err(); err != nil {
			t.Errorf("config: %v", err)
			return
		}
		filler := make([]byte, 1024)
		for i := 0; i < 4000 && evicted()-before < int64(8+r.IntN(16)); i++ {
			if err := e.rdb.Set(ctx, fmt.Sprintf("filler:%d", i), filler, 0).Err(); err != nil {
				if !strings.HasPrefix(err.Error(), "OOM") { // OOM: nothing left to evict
					t.Errorf("filler: %v", err)
				}
				break
			}
		}
		st.evictions.Add(evicted() - before)
		if err := e.rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
			t.Errorf("config: %v", err)
		}
		if err := e.rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
			t.Errorf("config: %v", err)
		}
		for _, id := range ids {
			l, err := s.Levels(ctx, id)
			if err != nil {
				t.Errorf("after eviction: levels: %v", err)
				return
			}
			if l.Drift > 0 {
				t.Errorf("after eviction: variant %s: available %d + held %d > on_hand %d: a counter above the truth",
					id, l.Available, l.Held, l.OnHand)
			}
		}
		if err := e.rdb.FlushAll(ctx).Err(); err != nil {
			t.Errorf("flushall: %v", err)
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
				inTx := func(ctx context.Context, tx db.Tx) error {
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
			switch p := r.IntN(10); {
			case p < 4:
				if err := e.rdb.FlushAll(ctx).Err(); err != nil {
					t.Errorf("flushall: %v", err)
				}
				st.flushes.Add(1)
			case p < 7: // one counter lost while its holds (and commits) carry on
				id, _ := withHolds(r)
				if err := e.rdb.Del(ctx, availKey(id)).Err(); err != nil {
					t.Errorf("del counter: %v", err)
				}
				st.counterDels.Add(1)
			default:
				if err := e.rdb.ScriptFlush(ctx).Err(); err != nil {
					t.Errorf("script flush: %v", err)
				}
				st.scriptFlushes.Add(1)
			}
			gate.RUnlock()
		}
	}()
	wg.Add(1)
	go func() { // checkpoints, and the partial losses that need a quiescent system to judge
		defer wg.Done()
		r := rand.New(rand.NewPCG(seed, 998))
		for time.Now().Before(deadline) {
			time.Sleep(time.Duration(100+r.IntN(200)) * time.Millisecond)
			gate.Lock()
			checkpoint("checkpoint")
			checkpoints++
			switch r.IntN(3) {
			case 0:
				lostCounter(r)
			case 1:
				evict(r)
			}
			gate.Unlock()
		}
	}()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("reserved %d (short %d), committed %d (failed %d, crashed %d, refused by PostgreSQL %d), released %d units, "+
		"adjusted %d (refused %d), sweeps %d, reconciles %d, FLUSHALL %d, SCRIPT FLUSH %d, counters DELeted %d, "+
		"keys evicted %d, checkpoints %d",
		st.reserved.Load(), st.short.Load(), st.committed.Load(), st.commitFailed.Load(), st.crashed.Load(),
		st.oversoldWindow.Load(), st.released.Load(), st.adjusted.Load(), st.belowHeld.Load(), st.sweeps.Load(),
		st.reconciles.Load(), st.flushes.Load(), st.scriptFlushes.Load(), st.counterDels.Load(), st.evictions.Load(),
		checkpoints)
	if st.committed.Load() == 0 || st.flushes.Load() == 0 || st.adjusted.Load() == 0 || st.counterDels.Load() == 0 ||
		st.evictions.Load() == 0 {
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
