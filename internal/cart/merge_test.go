package cart

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
)

// TestMergeTwiceEqualsMergeOnce: a merge retried by a client whose first reply was lost
// (the session cart still there, same version) changes nothing. The session cart is put
// back exactly as it was before the retry, so the retry runs the whole path into
// cart_merge.lua, where only the merge marker stops the quantities being added again.
func TestMergeTwiceEqualsMergeOnce(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	cust, sid := newCustomerID(), newSessionID(t)
	a, b, c := e.variant(t, 100, 500), e.variant(t, 200, 500), e.variant(t, 300, 500)
	must(e.svc.Add(ctx, CustomerOwner(cust), a, 2))(t)
	must(e.svc.Add(ctx, CustomerOwner(cust), b, 1))(t)
	must(e.svc.Add(ctx, SessionOwner(sid), b, 4))(t)
	must(e.svc.Add(ctx, SessionOwner(sid), c, 5))(t)
	must(e.svc.SetCoupon(ctx, SessionOwner(sid), "SAVE10"))(t)
	sessKey := e.svc.r.cartKey(SessionOwner(sid))
	snapshot, err := e.rdb.HGetAll(ctx, sessKey).Result()
	if err != nil || len(snapshot) == 0 {
		t.Fatalf("session cart before the merge: %v %v", snapshot, err)
	}

	once := must(e.svc.Merge(ctx, cust, sid))(t)
	want := map[uuid.UUID]int64{a: 2, b: 5, c: 5}
	for id, q := range want {
		if got := qtyOf(once, id); got != q {
			t.Errorf("after merge: %s = %d, want %d", id, got, q)
		}
	}
	if once.Coupon != "SAVE10" || once.Owner != "customer" {
		t.Errorf("merged cart: coupon %q owner %q (session coupon is taken when the customer has none)", once.Coupon, once.Owner)
	}
	if s := must(e.svc.Get(ctx, SessionOwner(sid)))(t); len(s.Lines) != 0 || !s.ExpiresAt.IsZero() {
		t.Errorf("session cart not deleted: %+v", s)
	}

	for retry := 1; retry <= 2; retry++ {
		// The session cart as the lost first attempt saw it (same version).
		fields := make([]any, 0, 2*len(snapshot))
		for k, v := range snapshot {
			fields = append(fields, k, v)
		}
		if err := e.rdb.HSet(ctx, sessKey, fields...).Err(); err != nil {
			t.Fatal(err)
		}
		again := must(e.svc.Merge(ctx, cust, sid))(t)
		if fmt.Sprint(again.Lines) != fmt.Sprint(once.Lines) || again.Coupon != once.Coupon || !again.UpdatedAt.Equal(once.UpdatedAt) {
			t.Fatalf("retry %d of the merge changed the cart:\n once %+v\nretry %+v", retry, once, again)
		}
		// The retry went all the way: it also dropped the session cart again.
		if n := e.rdb.Exists(ctx, sessKey).Val(); n != 0 {
			t.Fatalf("retry %d did not reach the drop: the session cart is still there", retry)
		}
	}
	// And a merge with nothing left to merge returns the same cart.
	twice := must(e.svc.Merge(ctx, cust, sid))(t)
	if fmt.Sprint(twice.Lines) != fmt.Sprint(once.Lines) || twice.Coupon != once.Coupon || !twice.UpdatedAt.Equal(once.UpdatedAt) {
		t.Fatalf("second merge changed the cart:\n once %+v\ntwice %+v", once, twice)
	}
}

func TestMergeRetryAfterPartialRunIsIdempotent(t *testing.T) {
	// A crash after cart_merge but before the session cart was dropped: the retry must not
	// add the session's quantities a second time.
	e := newEnv(t)
	ctx := ctxT(t)
	cust, sid := newCustomerID(), newSessionID(t)
	a := e.variant(t, 100, 500)
	must(e.svc.Add(ctx, SessionOwner(sid), a, 3))(t)
	before := must(e.svc.read(ctx, SessionOwner(sid)))(t)
	must(e.svc.Merge(ctx, cust, sid))(t)
	// Put the session cart back exactly as it was (same version), as if the drop never ran.
	if err := e.rdb.HSet(ctx, e.svc.r.cartKey(SessionOwner(sid)),
		"updated_at", before.updatedAt, lineField(a), 3).Err(); err != nil {
		t.Fatal(err)
	}
	c := must(e.svc.Merge(ctx, cust, sid))(t)
	if qtyOf(c, a) != 3 {
		t.Fatalf("retried merge added again: %d, want 3", qtyOf(c, a))
	}
	if n := e.rdb.Exists(ctx, e.svc.r.cartKey(SessionOwner(sid))).Val(); n != 0 {
		t.Fatal("retried merge left the session cart")
	}
}

func TestMergeDropKeepsChangesMadeAfterTheRead(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	sid := newSessionID(t)
	a, b := e.variant(t, 100, 500), e.variant(t, 100, 500)
	s := SessionOwner(sid)
	must(e.svc.Add(ctx, s, a, 2))(t)
	read := must(e.svc.read(ctx, s))(t)
	must(e.svc.Add(ctx, s, a, 1))(t) // concurrent adds after the merge read the cart
	must(e.svc.Add(ctx, s, b, 1))(t)
	key := e.svc.r.cartKey(s)
	for range 2 { // the drop is idempotent too
		if _, err := e.svc.r.run(ctx, e.svc.r.mergeDrop, key, false, e.svc.opts.SessionTTL,
			fmt.Sprint(read.updatedAt), "", lineField(a), 2); err != nil {
			t.Fatal(err)
		}
	}
	left := must(e.svc.Get(ctx, s))(t)
	if qtyOf(left, a) != 1 || qtyOf(left, b) != 1 {
		t.Fatalf("after drop: %+v, want a=1 b=1", left.Lines)
	}
}

func TestMergeCapsAtLineLimitAndStock(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	cust, sid := newCustomerID(), newSessionID(t)
	big := e.variant(t, 100, 1000)  // capped by the line limit: 70 + 60 -> 100
	few := e.variant(t, 100, 100)   // capped by stock: 3 + 4 -> 5 once stock drops to 5
	gone := e.variant(t, 100, 100)  // only in the session, stock drops to 0 -> not added
	over := e.variant(t, 100, 100)  // customer has 8, stock drops to 5 -> kept at 8
	fresh := e.variant(t, 100, 100) // only in the session: 2 -> 2
	co, so := CustomerOwner(cust), SessionOwner(sid)
	must(e.svc.Add(ctx, co, big, 70))(t)
	must(e.svc.Add(ctx, co, few, 3))(t)
	must(e.svc.Add(ctx, co, over, 8))(t)
	must(e.svc.Add(ctx, so, big, 60))(t)
	must(e.svc.Add(ctx, so, few, 4))(t)
	must(e.svc.Add(ctx, so, gone, 1))(t)
	must(e.svc.Add(ctx, so, over, 1))(t)
	must(e.svc.Add(ctx, so, fresh, 2))(t)
	e.stock.set(few, 5)
	e.stock.set(gone, 0)
	e.stock.set(over, 5)

	c := must(e.svc.Merge(ctx, cust, sid))(t)
	for id, q := range map[uuid.UUID]int64{big: 100, few: 5, gone: 0, over: 8, fresh: 2} {
		if got := qtyOf(c, id); got != q {
			t.Errorf("merged quantity %d, want %d", got, q)
		}
	}
}

func TestMergeStopsAtTheLineLimit(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	cust, sid := newCustomerID(), newSessionID(t)
	for range MaxLines - 1 {
		must(e.svc.Add(ctx, CustomerOwner(cust), e.variant(t, 100, 10), 1))(t)
	}
	for range 3 {
		must(e.svc.Add(ctx, SessionOwner(sid), e.variant(t, 100, 10), 1))(t)
	}
	c := must(e.svc.Merge(ctx, cust, sid))(t)
	if len(c.Lines) != MaxLines {
		t.Fatalf("merged cart has %d lines, want %d", len(c.Lines), MaxLines)
	}
}

func TestMergeOfMissingSessionCartReturnsCustomerCart(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	cust := newCustomerID()
	a := e.variant(t, 100, 10)
	must(e.svc.SetCoupon(ctx, CustomerOwner(cust), "SAVE10"))(t)
	before := must(e.svc.Add(ctx, CustomerOwner(cust), a, 2))(t)
	after := must(e.svc.Merge(ctx, cust, newSessionID(t)))(t)
	if fmt.Sprint(after.Lines) != fmt.Sprint(before.Lines) || after.Coupon != "SAVE10" || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("merge of a missing session cart changed the customer cart:\n%+v\n%+v", before, after)
	}
	// A customer without any cart gets an empty one.
	if c := must(e.svc.Merge(ctx, newCustomerID(), newSessionID(t)))(t); len(c.Lines) != 0 || c.Owner != "customer" {
		t.Fatalf("empty merge: %+v", c)
	}
}

func TestMergeKeepsTheCustomersCoupon(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	cust, sid := newCustomerID(), newSessionID(t)
	a := e.variant(t, 20000, 10)
	must(e.svc.Add(ctx, CustomerOwner(cust), a, 1))(t)
	must(e.svc.SetCoupon(ctx, CustomerOwner(cust), "BIG10"))(t)
	must(e.svc.Add(ctx, SessionOwner(sid), a, 1))(t)
	must(e.svc.SetCoupon(ctx, SessionOwner(sid), "SAVE10"))(t)
	if c := must(e.svc.Merge(ctx, cust, sid))(t); c.Coupon != "BIG10" || qtyOf(c, a) != 2 {
		t.Fatalf("coupon %q qty %d", c.Coupon, qtyOf(c, a))
	}
}

func TestMergeRefusedWhileEitherCartIsFrozen(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	a := e.variant(t, 100, 10)
	for _, frozen := range []string{"session", "customer"} {
		t.Run(frozen, func(t *testing.T) {
			cust, sid := newCustomerID(), newSessionID(t)
			must(e.svc.Add(ctx, CustomerOwner(cust), a, 1))(t)
			must(e.svc.Add(ctx, SessionOwner(sid), a, 2))(t)
			o := SessionOwner(sid)
			if frozen == "customer" {
				o = CustomerOwner(cust)
			}
			chk := uuid.NewString()
			must(e.svc.Freeze(ctx, o, chk))(t)
			_, err := e.svc.Merge(ctx, cust, sid)
			var le *LockedError
			if !errors.As(err, &le) || le.CheckoutID != chk {
				t.Fatalf("merge with a frozen %s cart: %v", frozen, err)
			}
			if c := must(e.svc.Get(ctx, CustomerOwner(cust)))(t); qtyOf(c, a) != 1 {
				t.Fatalf("refused merge changed the customer cart: %d", qtyOf(c, a))
			}
			if c := must(e.svc.Get(ctx, SessionOwner(sid)))(t); qtyOf(c, a) != 2 {
				t.Fatalf("refused merge changed the session cart: %d", qtyOf(c, a))
			}
		})
	}
}
