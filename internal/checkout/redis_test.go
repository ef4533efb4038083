package checkout

import (
	"context"
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
