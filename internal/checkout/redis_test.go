package checkout

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/testenv"
)

func TestTransitionScript(t *testing.T) {
	rdb, space := testenv.Redis(t)
	r := newRedisSide(rdb, space)
	ctx := context.Background()
	id := uuid.New()
	const lease, ttl = time.Minute, time.Hour

	claim := func(from, to State, expect int64, lease time.Duration) claimResult {
		t.Helper()
		res, err := r.claim(ctx, id, from, to, expect, lease, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	want := func(got claimResult, code string, st State, v int64) {
		t.Helper()
		if got.code != code || got.state != st || got.version != v {
			t.Fatalf("claim = %+v, want code %s state %s version %d", got, code, st, v)
		}
	}
	load := func(st State, v, own int64, lease time.Duration) {
		t.Helper()
		if err := r.loadHash(ctx, id, st, v, own, lease, ttl); err != nil {
			t.Fatal(err)
		}
	}
	peek := func(st State, pending bool) {
		t.Helper()
		got, p, ok, err := r.peek(ctx, id)
		if err != nil || !ok || got != st || p != pending {
			t.Fatalf("hash = %s pending %v exists %v err %v, want %s pending %v", got, p, ok, err, st, pending)
		}
	}

	// A missing hash must be loaded from PostgreSQL before any claim.
	if res := claim(StateReserving, StateAwaitingPayment, 1, lease); res.code != claimLoadRequired {
		t.Fatalf("claim on a missing hash = %+v, want LOAD_REQUIRED", res)
	}
	load(StateReserving, 1, 0, lease)
	want(claim(StateReserving, StateAwaitingPayment, 1, lease), claimOK, StateAwaitingPayment, 2)
	peek(StateAwaitingPayment, true)
	// While the claim is pending, nobody else may claim anything.
	want(claim(StateAwaitingPayment, StateCompleting, 2, lease), claimBusy, StateAwaitingPayment, 2)
	// A load of an older row does not undo someone else's live claim.
	load(StateReserving, 1, 0, lease)
	peek(StateAwaitingPayment, true)
	if err := r.confirmClaim(ctx, id, 2); err != nil {
		t.Fatal(err)
	}
	peek(StateAwaitingPayment, false)
	// Wrong version or wrong state: mismatch, nothing written.
	want(claim(StateAwaitingPayment, StateCompleting, 1, lease), claimMismatch, StateAwaitingPayment, 2)
	want(claim(StateReserving, StateCancelled, 2, lease), claimMismatch, StateAwaitingPayment, 2)
	// A failed PostgreSQL half: the claimer reloads the row over its own claim.
	want(claim(StateAwaitingPayment, StateCompleting, 2, lease), claimOK, StateCompleting, 3)
	load(StateAwaitingPayment, 2, 3, lease)
	peek(StateAwaitingPayment, false)
	// A claim older than the lease (a crashed claimer) makes the hash stale.
	want(claim(StateAwaitingPayment, StateCompleting, 2, lease), claimOK, StateCompleting, 3)
	if res := claim(StateCompleting, StateCompleted, 3, 0); res.code != claimLoadRequired {
		t.Fatalf("claim over a dead claim = %+v, want LOAD_REQUIRED", res)
	}
	load(StateCompleting, 3, 0, 0) // PostgreSQL had the completing transition
	peek(StateCompleting, false)
	// Loads are monotonic over confirmed state.
	load(StateAwaitingPayment, 2, 0, lease)
	peek(StateCompleting, false)
	load(StateCompleted, 4, 0, lease)
	peek(StateCompleted, false)
	// Confirming a version the hash does not hold changes nothing.
	if err := r.confirmClaim(ctx, id, 9); err != nil {
		t.Fatal(err)
	}
	peek(StateCompleted, false)
}

// TestCartLockIsReleasedOnlyByItsHolder: unlock is a compare-and-delete. A request whose
// lock expired (and was taken by another) must not release the other's lock on its way
// out, or two requests would work on one cart at once.
func TestCartLockIsReleasedOnlyByItsHolder(t *testing.T) {
	rdb, space := testenv.Redis(t)
	r := newRedisSide(rdb, space)
	ctx := context.Background()
	cart := "cart:" + uuid.NewString()
	mine, ok, err := r.lock(ctx, cart, time.Minute)
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	if _, ok, err := r.lock(ctx, cart, time.Minute); err != nil || ok {
		t.Fatalf("a second lock of a held cart: ok %v err %v", ok, err)
	}
	if err := r.unlockCart(ctx, cart, "someone-else"); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.Get(ctx, r.lockKey(cart)).Result(); err != nil || got != mine {
		t.Fatalf("another token released the lock: %q %v", got, err)
	}
	if err := r.unlockCart(ctx, cart, mine); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, r.lockKey(cart)).Val(); n != 0 {
		t.Fatal("the holder's unlock left the lock")
	}
	if _, ok, err := r.lock(ctx, cart, time.Minute); err != nil || !ok {
		t.Fatalf("lock after unlock: %v %v", ok, err)
	}
}

// TestStoreTransitionIsACompareAndSwap: PostgreSQL applies a transition only from the state
// and version it was computed from. Redis's claim is the first fence, but Redis can lose
// the hash and rebuild it; the row's version is the one that always holds.
func TestStoreTransitionIsACompareAndSwap(t *testing.T) {
	pool, _ := testenv.DB(t)
	st := store{pool: pool}
	ctx := context.Background()
	c, err := st.insert(ctx, Checkout{ID: uuid.Must(uuid.NewV7()), Owner: Owner{Type: "session", ID: "s_" + uuid.NewString()[:8]},
		Currency: "USD"}, time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != 1 || c.State != StateReserving {
		t.Fatalf("inserted: %s v%d", c.State, c.Version)
	}
	// From the wrong state, or from a version already moved on: nothing changes.
	if err := st.cas(ctx, pool, c.ID, StateAwaitingPayment, StateCompleting, 2, change{}); !errors.Is(err, errStale) {
		t.Fatalf("transition from a state the row is not in: %v, want errStale", err)
	}
	if err := st.cas(ctx, pool, c.ID, StateReserving, StateAwaitingPayment, 2, change{}); err != nil {
		t.Fatal(err)
	}
	if err := st.cas(ctx, pool, c.ID, StateAwaitingPayment, StateCancelled, 2, change{}); !errors.Is(err, errStale) {
		t.Fatalf("a second transition computed from version 1: %v, want errStale", err)
	}
	if err := st.cas(ctx, pool, c.ID, StateAwaitingPayment, StateCancelled, 9, change{}); !errors.Is(err, errStale) {
		t.Fatalf("a transition from a version the row never had: %v, want errStale", err)
	}
	got, err := st.get(ctx, c.ID)
	if err != nil || got.State != StateAwaitingPayment || got.Version != 2 {
		t.Fatalf("after the refused transitions: %s v%d (%v), want awaiting_payment v2", got.State, got.Version, err)
	}
}
