package checkout_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"commerce/internal/checkout"
	"commerce/internal/platform/testenv"
)

// Crash tests run the request in a child process (testenv.RunCrash) that ends with
// os.Exit at the crash point: no deferred unlock, release or rollback runs, as after
// kill -9. The parent then recovers and checks what the death left.

// Inventory commit points (the checkout's own points are its hook names).
const (
	crashInvAfterMark = "inventory_after_mark"
	crashInvAfterTx   = "inventory_after_tx"
)

// crashEnv is an env whose recovery thresholds are ~0, so recovery may act on whatever a
// crashed request left right after the crash, and whose cart lock lease is short.
func crashEnv(t *testing.T) *env {
	return newEnv(t, func(c *envConfig) {
		c.chk.ClaimLease = time.Millisecond
		c.chk.StaleAfter = time.Millisecond
		c.chk.LockTTL = time.Second
		c.inv.CommitTimeout = time.Millisecond
	})
}

// dieAt makes every crash point of ev's services call testenv.CrashAt (which ends a
// crash child started for that point, and does nothing anywhere else).
func (ev *env) dieAt() {
	checkout.SetHook(ev.svc, testenv.CrashAt)
	mark := func() error { testenv.CrashAt(crashInvAfterMark); return nil }
	tx := func() error { testenv.CrashAt(crashInvAfterTx); return nil }
	ev.afterMark.Store(&mark)
	ev.afterTx.Store(&tx)
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

const crashKey = "crash-complete-key"

// TestCrashDuringCompletion kills a completion (sent over HTTP with an Idempotency-Key)
// at every step, runs recovery, and checks that there is exactly one order or none, that
// the stock is consistent and no hold leaked, and that the checkout can then be
// completed exactly once. When the order committed before the death, a retry of complete
// with the same key (still in flight) or without one answers 200 with that order at once,
// well within REQUEST_TIMEOUT, before any recovery.
func TestCrashDuringCompletion(t *testing.T) {
	tests := []struct {
		name      string
		point     string
		wantOrder bool // the order exists after the crash
	}{
		{name: "after claim", point: checkout.HookAfterClaim},
		{name: "after payment", point: checkout.HookAfterPayment},
		{name: "after holds marked", point: crashInvAfterMark},
		{name: "after stock transaction", point: crashInvAfterTx, wantOrder: true},
		{name: "after commit", point: checkout.HookAfterCommit, wantOrder: true},
		{name: "after redis confirm", point: checkout.HookAfterConfirm, wantOrder: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := crashEnv(t)
			me := customerOwner("crash-buyer")
			if testenv.CrashChild() {
				ev.dieAt()
				id := uuid.MustParse(testenv.CrashVar("checkout"))
				ev.do(http.MethodPost, completePath(id), tokOK, with(ev.who(me), checkout.HeaderIdempotencyKey, crashKey))
				return // never reached the point: the parent fails
			}
			v := ev.variant(5, 1000)
			ev.add(me, v, 2)
			co := ev.createCheckout(me)
			who := checkout.Identity{CustomerID: me.ID}
			testenv.RunCrash(t, tt.point, map[string]string{"checkout": co.ID.String()})

			if tt.wantOrder {
				var orderID uuid.UUID
				if err := ev.pool.QueryRow(ev.ctx, `SELECT id FROM orders WHERE checkout_id = $1`, co.ID).Scan(&orderID); err != nil {
					t.Fatalf("the order of the crashed completion: %v", err)
				}
				for _, h := range []map[string]string{with(ev.who(me), checkout.HeaderIdempotencyKey, crashKey), ev.who(me)} {
					start := time.Now()
					r := ev.do(http.MethodPost, completePath(co.ID), tokOK, h)
					if r.status != http.StatusOK {
						t.Fatalf("retry of complete (key %q) right after the crash: %d %s", h[checkout.HeaderIdempotencyKey], r.status, r.body)
					}
					got := decode[struct {
						Order struct {
							ID uuid.UUID `json:"id"`
						} `json:"order"`
					}](t, r)
					if got.Order.ID != orderID {
						t.Fatalf("retry answered another order: %s", r.body)
					}
					if d := time.Since(start); d > 10*time.Second {
						t.Fatalf("retry took %v, more than REQUEST_TIMEOUT", d)
					}
				}
			}

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

			// The checkout completes, once. (The test payment provider keeps its intents in
			// the memory of the process that died, so this one pays again: whether a
			// payment made before the crash is charged twice is the provider's idempotency
			// per intent, tested with the payment code.)
			r := ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(me))
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

// TestCrashDuringCreation: a creation that dies after taking the holds (before its row
// is written) or after writing its row blocks its cart for at most one lock lease
// (LockTTL), with no recovery job. After the holds: the next attempt finds the cart
// frozen by a checkout PostgreSQL does not have, returns that creation's holds, unfreezes
// the cart and creates a checkout that completes. After the row: the creation is done,
// and the next attempt hands that checkout back (200), which completes.
func TestCrashDuringCreation(t *testing.T) {
	for _, point := range []string{checkout.HookCreateAfterReserve, checkout.HookCreateAfterInsert} {
		t.Run(point, func(t *testing.T) {
			ev := crashEnv(t)
			if testenv.CrashChild() {
				ev.dieAt()
				_, _, _ = ev.svc.Create(ev.ctx, sessionOwner(testenv.CrashVar("session")), "")
				return
			}
			v := ev.variant(4, 1000)
			me := sessionOwner(ev.session())
			ev.add(me, v, 3)
			testenv.RunCrash(t, point, map[string]string{"session": me.ID})
			died := time.Now()
			lease := ev.svc.Options().LockTTL
			ev.wantLevels(v, 4, 1, 3) // the dead creation's holds

			want := http.StatusCreated
			if point == checkout.HookCreateAfterInsert {
				want = http.StatusOK
			}
			var co checkoutResp
			for {
				r := ev.do(http.MethodPost, "/v1/checkouts", "{}", ev.who(me))
				if r.status == want {
					co = decode[checkoutResp](t, r)
					break
				}
				if r.status != http.StatusConflict || r.code(t) != "checkout_in_progress" {
					t.Fatalf("checkout after the crash: %d %s, want %d", r.status, r.body, want)
				}
				if time.Since(died) > lease+time.Second {
					t.Fatalf("the cart was still blocked %v after the crash (lock lease %v)", time.Since(died), lease)
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("checkout %d %v after the crash (lock lease %v)", want, time.Since(died).Round(time.Millisecond), lease)
			ev.wantLevels(v, 4, 1, 3) // one checkout's holds, not two
			if n := ev.count(`SELECT count(*) FROM checkouts`); n != 1 {
				t.Fatalf("%d checkouts, want 1", n)
			}
			// A creation that committed keeps its registration until Recover sees the row.
			if st := ev.recoverAll(v); st.Creations != 0 {
				t.Fatalf("recovery returned %d creations, want none: the live checkout's holds must stay", st.Creations)
			}
			if n := ev.rdb.ZCard(ev.ctx, checkout.CreatingKey(ev.svc)).Val(); n != 0 {
				t.Fatalf("%d creations still registered after recovery", n)
			}
			ev.wantLevels(v, 4, 1, 3)
			if r := ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(me)); r.status != http.StatusOK {
				t.Fatalf("complete: %d %s", r.status, r.body)
			}
			ev.wantLevels(v, 1, 1, 0)
		})
	}
}

// TestRecoverReturnsDeadCreation: a creation that died after taking its holds, whose
// shopper never comes back, has its holds returned and its cart unfrozen by Recover once
// the dead creator's cart lock has lapsed, not when the holds expire; before the lock
// lapses Recover leaves it alone (its creator could still be running).
func TestRecoverReturnsDeadCreation(t *testing.T) {
	ev := crashEnv(t)
	if testenv.CrashChild() {
		ev.dieAt()
		_, _, _ = ev.svc.Create(ev.ctx, sessionOwner(testenv.CrashVar("session")), "")
		return
	}
	v := ev.variant(4, 1000)
	me := sessionOwner(ev.session())
	ev.add(me, v, 3)
	testenv.RunCrash(t, checkout.HookCreateAfterReserve, map[string]string{"session": me.ID})
	ev.wantLevels(v, 4, 1, 3)
	// While the cart's lock is held (its creator could still be running; here the lock is
	// set anew so that the check does not race the dead child's 1 s lease), nothing moves.
	if err := ev.rdb.Set(ev.ctx, checkout.LockKey(ev.svc, me), "alive", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if st := ev.recoverAll(v); st.Creations != 0 {
		t.Fatalf("recovered %d creations while the creator's lock was held", st.Creations)
	}
	ev.wantLevels(v, 4, 1, 3)
	if err := ev.rdb.Del(ev.ctx, checkout.LockKey(ev.svc, me)).Err(); err != nil { // the lease lapses
		t.Fatal(err)
	}
	if st := ev.recoverAll(v); st.Creations != 1 {
		t.Fatalf("recovered %d creations, want the dead one", st.Creations)
	}
	ev.wantLevels(v, 4, 4, 0)
	if c := ev.cart(me); c.LockedBy != "" || len(c.Lines) != 1 {
		t.Fatalf("cart after recovery: %+v", c)
	}
	if n := ev.rdb.ZCard(ev.ctx, checkout.CreatingKey(ev.svc)).Val(); n != 0 {
		t.Fatalf("%d creations still registered", n)
	}
	if st := ev.recoverAll(v); st.Creations != 0 {
		t.Fatalf("a second recovery found %d creations", st.Creations)
	}
}

// TestNewCheckoutFinishesCrashedCleanup: when the process died after placing an order
// but before clearing the cart, a new checkout of that cart (before any recovery job)
// finishes the cleanup instead of selling the same lines again.
func TestNewCheckoutFinishesCrashedCleanup(t *testing.T) {
	ev := newEnv(t)
	if testenv.CrashChild() {
		ev.dieAt()
		id := uuid.MustParse(testenv.CrashVar("checkout"))
		_, _ = ev.svc.Complete(ev.ctx, checkout.Identity{SessionID: testenv.CrashVar("session")}, id, "tok_ok")
		return
	}
	v := ev.variant(5, 1000)
	me := sessionOwner(ev.session())
	ev.add(me, v, 2)
	co := ev.createCheckout(me)
	testenv.RunCrash(t, checkout.HookAfterConfirm, map[string]string{"checkout": co.ID.String(), "session": me.ID})
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
