package checkout_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"commerce/internal/cart"
	"commerce/internal/checkout"
)

// TestCreationThatLostItsLock: a creation whose cart lock lapsed while it ran (a pause
// longer than LockTTL) keeps its checkout when nobody took the cart over, and cancels it
// (holds returned, ErrInProgress) when another request did: two checkouts never stand
// on one cart.
func TestCreationThatLostItsLock(t *testing.T) {
	for _, takenOver := range []bool{false, true} {
		name := "lock lapsed, cart still frozen for it"
		if takenOver {
			name = "cart taken over by another request"
		}
		t.Run(name, func(t *testing.T) {
			ev := newEnv(t)
			v := ev.variant(5, 1000)
			me := sessionOwner(ev.session())
			ev.add(me, v, 2)
			other := uuid.Must(uuid.NewV7()).String()
			checkout.SetHook(ev.svc, func(point string) {
				if point != checkout.HookCreateAfterReserve {
					return
				}
				if err := ev.rdb.Del(ev.ctx, checkout.LockKey(ev.svc, me)).Err(); err != nil { // the lease lapses
					t.Error(err)
				}
				if takenOver { // and the next attempt unfreezes the cart and freezes it for itself
					co := cart.Owner{Type: me.Type, ID: me.ID}
					if err := ev.carts.Unfreeze(ev.ctx, co, ev.cart(me).LockedBy); err != nil {
						t.Error(err)
					}
					if _, err := ev.carts.Freeze(ev.ctx, co, other); err != nil {
						t.Error(err)
					}
				}
			})
			c, created, err := ev.svc.Create(ev.ctx, me, "")
			if !takenOver {
				if err != nil || !created || c.State != checkout.StateAwaitingPayment {
					t.Fatalf("create: %+v created %v: %v, want the checkout to stand", c, created, err)
				}
				ev.wantLevels(v, 5, 3, 2)
				return
			}
			if !errors.Is(err, checkout.ErrInProgress) || created {
				t.Fatalf("create after a takeover: created %v, %v; want ErrInProgress", created, err)
			}
			if n := ev.count(`SELECT count(*) FROM checkouts WHERE state = 'cancelled'`); n != 1 {
				t.Fatalf("%d cancelled checkouts, want the one that lost its lock", n)
			}
			ev.wantLevels(v, 5, 5, 0)
			if got := ev.cart(me).LockedBy; got != other {
				t.Fatalf("cart frozen by %q, want the request that took it over (%s)", got, other)
			}
		})
	}
}

// TestCreationNeverHandsBackAnotherOwnersCheckout: a cart marked frozen for a checkout of
// another owner (a state no code path writes; Redis could only hold it by corruption)
// never shows that checkout: the stray mark is cleared and the caller gets its own.
func TestCreationNeverHandsBackAnotherOwnersCheckout(t *testing.T) {
	ev := newEnv(t)
	v := ev.variant(5, 1000)
	victim, me := sessionOwner(ev.session()), sessionOwner(ev.session())
	ev.add(victim, v, 1)
	ev.add(me, v, 1)
	theirs := ev.createCheckout(victim)
	if _, err := ev.carts.Freeze(ev.ctx, cart.Owner{Type: me.Type, ID: me.ID}, theirs.ID.String()); err != nil {
		t.Fatal(err)
	}
	c, created, err := ev.svc.Create(ev.ctx, me, "")
	if err != nil || !created || c.ID == theirs.ID || c.Owner != me {
		t.Fatalf("create: %s owned by %+v, created %v, %v; want a new checkout of my own", c.ID, c.Owner, created, err)
	}
	if got := ev.cart(me).LockedBy; got != c.ID.String() {
		t.Fatalf("my cart is frozen for %q, want my checkout %s", got, c.ID)
	}
	ev.wantLevels(v, 5, 3, 2) // both checkouts hold their unit; nothing of theirs was released
}
