package inventory

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// sweeper runs Sweep every interval until the test ends (what the cron job does).
func sweeper(t *testing.T, s *Service, interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
					t.Errorf("sweep: %v", err)
				}
			}
		}
	}()
}

// Expired holds come back within TTL + sweep interval, with keyspace
// notifications off, and without any reserve touching the variant.
func TestExpiredHoldsComeBackWithinTTLPlusSweepInterval(t *testing.T) {
	const ttl, interval = 300 * time.Millisecond, 100 * time.Millisecond
	e, _ := newPrivateEnv(t)
	ctx := context.Background()
	cfg, err := e.rdb.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		t.Fatal(err)
	}
	if cfg["notify-keyspace-events"] != "" {
		t.Fatalf("keyspace notifications are on: %q", cfg["notify-keyspace-events"])
	}
	s := e.service(Options{})
	ids := e.variants(3, 5)
	for i, id := range ids {
		if err := s.Reserve(ctx, holder(i), []Line{{id, int64(i + 1)}}, ttl); err != nil {
			t.Fatal(err)
		}
	}
	reserved := time.Now()
	sweeper(t, s, interval)
	var back time.Duration
	poll(t, 10*time.Second, "expired holds to come back", func() (bool, error) {
		for _, id := range ids {
			if n, _ := e.rawAvail(s, id); n != 5 {
				return false, nil
			}
		}
		back = time.Since(reserved)
		return true, nil
	})
	t.Logf("holds of %v came back after %v (TTL + sweep interval = %v)", ttl, back, ttl+interval)
	// Generous slack for a loaded machine under -race; the bound that matters is that no
	// reserve, release or notification was needed.
	if back > ttl+interval+2*time.Second {
		t.Fatalf("holds came back after %v", back)
	}
	if back < ttl {
		t.Fatalf("holds came back after %v, before their TTL %v", back, ttl)
	}
	for _, id := range ids {
		wantLevels(t, s, id, 5, 5, 0)
	}
	if n, err := e.rdb.ZCard(ctx, s.r.indexKey()).Result(); err != nil || n != 0 {
		t.Fatalf("hold index has %d entries left, %v", n, err)
	}
}

// The index must never lose a variant that has holds, whatever the interleaving of
// reserves, releases and sweeps (several sweepers, as with several replicas).
func TestSweepIndexNeverLosesAHold(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.service(Options{})
	ids := e.variants(4, 1000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[(w+i)%len(ids)]
				h := fmt.Sprintf("w%d-%d", w, i)
				// mixed TTLs so a new hold is sometimes the earliest
				ttl := []time.Duration{5 * time.Millisecond, 40 * time.Millisecond, 200 * time.Millisecond}[i%3]
				if err := s.Reserve(ctx, h, []Line{{id, 1}}, ttl); err != nil {
					t.Error(err)
					return
				}
				if i%4 == 0 {
					if _, err := s.Release(ctx, h, []uuid.UUID{id}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}(w)
	}
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Sweep(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond) // let them race
	close(stop)
	wg.Wait()
	// Once every hold has expired, sweeps driven only by the index must return them all.
	waitRedisPast(t, e.rdb, time.Now().Add(250*time.Millisecond))
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		k := s.r.keys(id)
		if n, _ := e.rdb.ZCard(ctx, k.holds).Result(); n != 0 {
			t.Fatalf("variant %s: %d expired holds not swept (lost from the index)", id, n)
		}
		wantLevels(t, s, id, 1000, 1000, 0)
	}
}

// The interleaving that would lose an index entry, forced: a reserve lands between the
// sweep's read of the earliest deadline and its rewrite of the index entry.
func TestSweepIndexKeepsAHoldReservedDuringTheSweep(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.variant(10)
	var s *Service
	once := sync.Once{}
	s = e.service(Options{Hooks: Hooks{SweepIndex: func(uuid.UUID) {
		once.Do(func() {
			if err := s.Reserve(ctx, "late", []Line{{id, 1}}, 20*time.Millisecond); err != nil {
				t.Error(err)
			}
		})
	}}})
	// a stale entry for a variant with no holds: the sweep will want to remove it
	if err := s.r.indexSet(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	score, err := e.rdb.ZScore(ctx, s.r.indexKey(), id.String()).Result()
	if err != nil {
		t.Fatalf("index entry lost: %v", err)
	}
	exp := levels(t, s, id).Holds[0].ExpiresAt.UnixMilli()
	if int64(score) > exp {
		t.Fatalf("index says %d, after the hold's expiry %d", int64(score), exp)
	}
	waitRedisPast(t, e.rdb, time.UnixMilli(exp))
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v; want the late hold back", n, err)
	}
	wantLevels(t, s, id, 10, 10, 0)
}
