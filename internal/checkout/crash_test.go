package checkout_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"commerce/internal/checkout"
)

// crashEnv is an env whose recovery thresholds are ~0, so recovery may act on whatever a
// "crashed" request left right after the crash.
func crashEnv(t *testing.T) *env {
	return newEnv(t, func(c *envConfig) {
		c.chk.ClaimLease = time.Millisecond
		c.chk.StaleAfter = time.Millisecond
		c.inv.CommitTimeout = time.Millisecond
	})
}

// recoverAll runs what the recovery jobs run, inventory first, until the inventory has
// decided every committing hold of the variants.
func (ev *env) recoverAll(variants ...uuid.UUID) checkout.RecoverStats {
	ev.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := ev.inv.Recover(ev.ctx); err != nil {
			ev.t.Fatal(err)
		}
		busy := false
		for _, v := range variants {
			for _, h := range ev.levels(v).Holds {
				busy = busy || h.Committing
			}
		}
		if !busy {
			break
		}
		if time.Now().After(deadline) {
			ev.t.Fatalf("committing holds still undecided: %+v", ev.levels(variants[0]).Holds)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Millisecond) // past StaleAfter
	st, err := ev.svc.Recover(ev.ctx)
	if err != nil {
		ev.t.Fatal(err)
	}
	return st
}

// TestCrashDuringCompletion stops a completion at every step (a panic is a process that
// died there: no cleanup runs), runs recovery, and checks that there is exactly one
// order or none, that the stock is consistent and no hold leaked, and that the checkout
// can then be completed exactly once.
func TestCrashDuringCompletion(t *testing.T) {
	tests := []struct {
		name      string
		point     string // checkout hook, or "" with an inventory hook
		invMark   bool   // inventory: after the holds are marked committing
		invTx     bool   // inventory: after the PostgreSQL transaction committed
		wantOrder bool   // the order exists after the crash
	}{
		{name: "after claim", point: checkout.HookAfterClaim},
		// The payment went through before these crashes: recovery finds it at the
		// provider and places the order (the shopper may never come back).
		{name: "after payment", point: checkout.HookAfterPayment, wantOrder: true},
		{name: "after holds marked", invMark: true, wantOrder: true},
		{name: "after stock transaction", invTx: true, wantOrder: true},
		{name: "after commit", point: checkout.HookAfterCommit, wantOrder: true},
		{name: "after redis confirm", point: checkout.HookAfterConfirm, wantOrder: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := crashEnv(t)
			v := ev.variant(5, 1000)
			me := customerOwner("crash-buyer")
			ev.add(me, v, 2)
			co := ev.createCheckout(me)
			who := checkout.Identity{CustomerID: me.ID}

			crash := func() error { panic(errCrash) }
			switch {
			case tt.invMark:
				ev.afterMark.Store(&crash)
			case tt.invTx:
				ev.afterTx.Store(&crash)
			default:
				checkout.SetHook(ev.svc, func(p string) {
					if p == tt.point {
						panic(errCrash)
					}
				})
			}
			if !crashed(func() { _, _ = ev.svc.Complete(ev.ctx, who, co.ID, "tok_ok") }) {
				t.Fatal("the completion did not reach the crash point")
			}
			ev.afterMark.Store(nil)
			ev.afterTx.Store(nil)
			checkout.SetHook(ev.svc, nil)

			ev.recoverAll(v)
			orders := ev.count(`SELECT count(*) FROM orders WHERE checkout_id = $1`, co.ID)
			got, err := ev.svc.Get(ev.ctx, who, co.ID)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantOrder {
				if orders != 1 || got.State != checkout.StateCompleted {
					t.Fatalf("after recovery: %d orders, state %s; want the order and completed", orders, got.State)
				}
				ev.wantLevels(v, 3, 3, 0)
				if c := ev.cart(me); len(c.Lines) != 0 || c.LockedBy != "" {
					t.Fatalf("recovery did not clear the cart: %+v", c)
				}
			} else {
				if orders != 0 || got.State != checkout.StateAwaitingPayment {
					t.Fatalf("after recovery: %d orders, state %s; want none and awaiting_payment", orders, got.State)
				}
				ev.wantLevels(v, 5, 5, 0) // the holds went back: nothing leaked
			}

			// The checkout completes, once. A payment that went through before the crash
			// is not asked for again: even a declining token completes it then.
			token := `{"payment_token":"tok_declined"}`
			if tt.point == checkout.HookAfterClaim {
				token = tokOK // crashed before paying
			}
			r := ev.do(http.MethodPost, completePath(co.ID), token, ev.who(me))
			if r.status != http.StatusOK {
				t.Fatalf("complete after recovery: %d %s", r.status, r.body)
			}
			if n := ev.count(`SELECT count(*) FROM orders WHERE checkout_id = $1`, co.ID); n != 1 {
				t.Fatalf("%d orders", n)
			}
			ev.wantLevels(v, 3, 3, 0)
			if n := ev.count(`SELECT count(*) FROM stock_ledger WHERE variant_id = $1 AND delta < 0`, v); n != 1 {
				t.Fatalf("%d stock decrements", n)
			}
			if c := ev.cart(me); len(c.Lines) != 0 || c.LockedBy != "" {
				t.Fatalf("cart after the order: %+v", c)
			}
		})
	}
}

// TestCrashDuringCreation: a creation that dies after freezing the cart or after taking
// the holds is abandoned by recovery: holds returned, cart unfrozen, a new checkout can
// start.
func TestCrashDuringCreation(t *testing.T) {
	for _, point := range []string{checkout.HookCreateAfterInsert, checkout.HookCreateAfterReserve} {
		t.Run(point, func(t *testing.T) {
			ev := crashEnv(t)
			v := ev.variant(4, 1000)
			me := sessionOwner(ev.session())
			ev.add(me, v, 3)
			checkout.SetHook(ev.svc, func(p string) {
				if p == point {
					panic(errCrash)
				}
			})
			if !crashed(func() { _, _, _ = ev.svc.Create(ev.ctx, me, "") }) {
				t.Fatal("the creation did not reach the crash point")
			}
			checkout.SetHook(ev.svc, nil)
			if st := ev.recoverAll(v); st.Abandoned != 1 {
				t.Fatalf("recover: %+v, want one abandoned checkout", st)
			}
			ev.wantLevels(v, 4, 4, 0)
			if c := ev.cart(me); c.LockedBy != "" {
				t.Fatalf("cart still locked by %s", c.LockedBy)
			}
			co := ev.createCheckout(me)
			if r := ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(me)); r.status != http.StatusOK {
				t.Fatalf("complete: %d %s", r.status, r.body)
			}
			ev.wantLevels(v, 1, 1, 0)
		})
	}
}

// TestNewCheckoutFinishesCrashedCleanup: when the process died after placing an order
// but before clearing the cart, a new checkout of that cart (before any recovery job)
// finishes the cleanup instead of selling the same lines again.
func TestNewCheckoutFinishesCrashedCleanup(t *testing.T) {
	ev := newEnv(t)
	v := ev.variant(5, 1000)
	me := sessionOwner(ev.session())
	ev.add(me, v, 2)
	co := ev.createCheckout(me)
	checkout.SetHook(ev.svc, func(p string) {
		if p == checkout.HookAfterConfirm {
			panic(errCrash)
		}
	})
	if !crashed(func() { _, _ = ev.svc.Complete(ev.ctx, checkout.Identity{SessionID: me.ID}, co.ID, "tok_ok") }) {
		t.Fatal("no crash")
	}
	checkout.SetHook(ev.svc, nil)
	if c := ev.cart(me); c.LockedBy != co.ID.String() || len(c.Lines) != 1 {
		t.Fatalf("cart after the crash: %+v", c)
	}
	r := ev.do(http.MethodPost, "/v1/checkouts", "{}", ev.who(me))
	if r.status != http.StatusUnprocessableEntity || r.code(t) != "cart_empty" {
		t.Fatalf("new checkout of the bought cart: %d %s", r.status, r.body)
	}
	ev.wantLevels(v, 3, 3, 0)
	if n := ev.count(`SELECT count(*) FROM checkouts WHERE cleaned_at IS NULL`); n != 0 {
		t.Fatalf("%d checkouts left uncleaned", n)
	}
}
