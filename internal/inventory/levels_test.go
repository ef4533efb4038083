package inventory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Levels is O(1) plus a page: with 250 holds on one variant it returns the held total and
// the hold count of all of them, but only the 100 holds with the soonest deadlines, in
// that order. The kept total follows every change (reserve, re-reserve, release, a sale)
// and is rebuilt when it is missing (holds written before it was kept).
func TestLevelsPageAndKeptTotal(t *testing.T) {
	e := newEnv(t)
	s := e.service(Options{})
	ctx := context.Background()
	id := e.variant(10_000)
	var held int64
	for i := range 250 {
		q := int64(1 + i%3)
		// Longer TTLs for later holders: holder h000 expires first.
		if err := s.Reserve(ctx, fmt.Sprintf("h%03d", i), []Line{{id, q}}, time.Hour+time.Duration(i)*time.Second); err != nil {
			t.Fatal(err)
		}
		held += q
	}
	l := levels(t, s, id)
	if l.HoldsCount != 250 || l.Held != held || len(l.Holds) != 100 || l.Drift != 0 {
		t.Fatalf("count %d held %d (want %d) page %d drift %d", l.HoldsCount, l.Held, held, len(l.Holds), l.Drift)
	}
	for i, h := range l.Holds {
		if h.Holder != fmt.Sprintf("h%03d", i) || (i > 0 && h.ExpiresAt.Before(l.Holds[i-1].ExpiresAt)) {
			t.Fatalf("page[%d] = %+v: not the soonest deadlines in order", i, h)
		}
	}

	// Re-reserving replaces a hold (3 → 7), a release returns one, a sale finalizes one.
	if err := s.Reserve(ctx, "h002", []Line{{id, 7}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	held += 7 - 3
	if _, err := s.Release(ctx, "h001", []uuid.UUID{id}); err != nil {
		t.Fatal(err)
	}
	held -= 2
	if err := s.Commit(ctx, "h000", []Line{{id, 1}}, "sale", nil); err != nil {
		t.Fatal(err)
	}
	held--
	wantLevels(t, s, id, 10_000-1, 10_000-1-held, held)
	if l := levels(t, s, id); l.HoldsCount != 248 {
		t.Fatalf("count %d after a release and a sale, want 248", l.HoldsCount)
	}

	// A held hash without the kept total (holds written before it existed) still reads
	// right, and the next change keeps it again, counted from every hold.
	k := s.r.keys(id)
	if err := e.rdb.HDel(ctx, k.held, "#sum").Err(); err != nil {
		t.Fatal(err)
	}
	wantLevels(t, s, id, 10_000-1, 10_000-1-held, held)
	if _, err := s.Release(ctx, "h003", []uuid.UUID{id}); err != nil {
		t.Fatal(err)
	}
	held-- // h003 held 1 + 3%3 = 1 unit
	if v, err := e.rdb.HGet(ctx, k.held, "#sum").Int64(); err != nil || v != held {
		t.Fatalf("kept total %d %v, want %d", v, err, held)
	}
	wantLevels(t, s, id, 10_000-1, 10_000-1-held, held)

	// Releasing every hold leaves no held hash behind.
	for i := 2; i < 250; i++ {
		if _, err := s.Release(ctx, fmt.Sprintf("h%03d", i), []uuid.UUID{id}); err != nil {
			t.Fatal(err)
		}
	}
	wantLevels(t, s, id, 10_000-1, 10_000-1, 0)
	if n, err := e.rdb.Exists(ctx, k.held).Result(); err != nil || n != 0 {
		t.Fatalf("held hash still exists (%d, %v): %v", n, err, e.rdb.HGetAll(ctx, k.held).Val())
	}
}
