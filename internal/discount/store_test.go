package discount

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/money"
	"commerce/internal/platform/testenv"
)

// newRule is a valid percentage rule named name.
func newRule(name string) Rule {
	return Rule{ID: uuid.Must(uuid.NewV7()), Name: name, Kind: KindPercentage, Value: 10,
		Scope: Scope{Type: ScopeCart, IDs: []string{}}, Stackable: true, Active: true}
}

func TestStoreCRUDBumpsVersion(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.DB(t)
	s := NewStore(pool)

	_, v0, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	starts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	r := newRule("full")
	r.Code, r.Kind, r.Value, r.Currency = "SUMMER10", KindFixedAmount, 500, "USD"
	r.Scope = Scope{Type: ScopeCategory, IDs: []string{"shoes", "hats"}}
	r.MinSubtotal = &money.Money{Amount: 1000, Currency: "USD"}
	r.StartsAt, r.Priority, r.Stackable = &starts, 7, false

	d, v1, err := s.Create(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if v1 != v0+1 {
		t.Fatalf("create: version %d, want %d", v1, v0+1)
	}
	if d.Code != "SUMMER10" || d.Currency != "USD" || d.MinSubtotal == nil || *d.MinSubtotal != *r.MinSubtotal ||
		d.StartsAt == nil || !d.StartsAt.Equal(starts) || d.StartsAt.Location() != time.UTC || d.EndsAt != nil ||
		d.Priority != 7 || d.Stackable || !d.Active || len(d.Scope.IDs) != 2 || d.CreatedAt.IsZero() {
		t.Fatalf("create returned %+v", d)
	}
	got, err := s.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "full" || got.Scope.Type != ScopeCategory || got.Scope.IDs[1] != "hats" {
		t.Fatalf("get returned %+v", got)
	}

	auto := newRule("automatic")
	if _, _, err := s.Create(ctx, auto); err != nil {
		t.Fatal(err)
	}
	d, v3, err := s.Update(ctx, r.ID, func(x *Rule) error { x.Value = 700; x.Code = ""; x.MinSubtotal = nil; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if v3 != v0+3 || d.Value != 700 || d.Code != "" || d.MinSubtotal != nil || d.ID != r.ID {
		t.Fatalf("update: version %d, discount %+v", v3, d)
	}
	abort := errors.New("abort")
	if _, _, err := s.Update(ctx, r.ID, func(*Rule) error { return abort }); !errors.Is(err, abort) {
		t.Fatalf("update aborted by fn: %v", err)
	}

	rs, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Version != v3 || len(rs.Rules) != 2 {
		t.Fatalf("load: version %d (want %d), %d rules", rs.Version, v3, len(rs.Rules))
	}
	// Priority 7 first.
	if rs.Rules[0].ID != r.ID {
		t.Fatalf("load order: %v first", rs.Rules[0].Name)
	}

	v4, err := s.Delete(ctx, r.ID)
	if err != nil || v4 != v0+4 {
		t.Fatalf("delete: version %d err %v", v4, err)
	}
	if _, err := s.Get(ctx, r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if _, err := s.Delete(ctx, r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, _, err := s.Update(ctx, r.ID, func(*Rule) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update deleted: %v", err)
	}
	if _, err := s.Get(ctx, uuid.New()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	rs, err = s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Version != v4 || len(rs.Rules) != 1 || rs.Rules[0].ID != auto.ID {
		t.Fatalf("load after delete: %+v", rs)
	}
	// Failed writes did not bump the version.
	if _, v, _ := s.List(ctx); v != v4 {
		t.Fatalf("version after failed writes %d, want %d", v, v4)
	}
}

func TestStoreCodeUniqueAmongLive(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.DB(t)
	s := NewStore(pool)
	a := newRule("a")
	a.Code = "DUP10"
	if _, _, err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	_, v, _ := s.List(ctx)
	b := newRule("b")
	b.Code = "DUP10"
	if _, _, err := s.Create(ctx, b); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate code: %v", err)
	}
	c := newRule("c")
	if _, _, err := s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Update(ctx, c.ID, func(r *Rule) error { r.Code = "DUP10"; return nil }); !errors.Is(err, ErrConflict) {
		t.Fatalf("update to a duplicate code: %v", err)
	}
	if _, v2, _ := s.List(ctx); v2 != v+1 {
		t.Fatalf("version %d after one successful write from %d", v2, v)
	}
	// A deleted discount frees its code.
	if _, err := s.Delete(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, b); err != nil {
		t.Fatalf("reuse the code of a deleted discount: %v", err)
	}
}

// TestStoreLoadIsOneSnapshot: with writers creating rules concurrently, every Load sees
// exactly the rules of the version it reports (only creates here, so rules = version − v0).
func TestStoreLoadIsOneSnapshot(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.DB(t)
	s := NewStore(pool)
	_, v0, _ := s.List(ctx)
	const writers, perWriter = 4, 15
	var wg sync.WaitGroup
	versions := make(chan int64, writers*perWriter)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				_, v, err := s.Create(ctx, newRule(fmt.Sprintf("w%d-%d", w, i)))
				if err != nil {
					t.Error(err)
					return
				}
				versions <- v
			}
		})
	}
	done := make(chan struct{})
	loads := 0
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		rs, err := s.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		loads++
		if int64(len(rs.Rules)) != rs.Version-v0 {
			t.Fatalf("load: version %d with %d rules (base %d)", rs.Version, len(rs.Rules), v0)
		}
	}
	close(versions)
	seen := map[int64]bool{}
	for v := range versions {
		if seen[v] {
			t.Fatalf("version %d produced twice", v)
		}
		seen[v] = true
	}
	if len(seen) != writers*perWriter || loads == 0 {
		t.Fatalf("%d distinct versions, %d loads", len(seen), loads)
	}
}
