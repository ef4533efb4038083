package cart

import (
	"errors"
	"sync"
	"testing"

	"github.com/google/uuid"
)

func TestConcurrentAddsToOneLineLoseNothing(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	v := e.variant(t, 1999, 1000)
	for _, o := range []Owner{SessionOwner(newSessionID(t)), CustomerOwner(newCustomerID())} {
		t.Run(string(o.Type), func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan error, 100)
			for range 100 {
				wg.Go(func() {
					if _, err := e.svc.Add(ctx, o, v, 1); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			c := must(e.svc.Get(ctx, o))(t)
			if got := qtyOf(c, v); got != 100 {
				t.Fatalf("quantity after 100 concurrent adds of 1 = %d, want 100", got)
			}
			if c.Subtotal.Amount != 100*1999 || c.Total.Amount != 100*1999 {
				t.Fatalf("subtotal %v total %v", c.Subtotal, c.Total)
			}
			// The 101st unit is refused: the line limit is checked in the same script.
			if _, err := e.svc.Add(ctx, o, v, 1); !errors.Is(err, ErrQuantity) {
				t.Fatalf("101st unit: %v, want ErrQuantity", err)
			}
		})
	}
}

func TestAddChecksEveryLimit(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	o := SessionOwner(newSessionID(t))
	scarce := e.variant(t, 500, 3)

	for _, q := range []int64{0, -1, 101} {
		if _, err := e.svc.Add(ctx, o, scarce, q); !errors.Is(err, ErrQuantity) {
			t.Errorf("add %d: %v, want ErrQuantity", q, err)
		}
	}
	if _, err := e.svc.Add(ctx, o, uuid.Must(uuid.NewV7()), 1); !errors.Is(err, ErrVariantNotFound) {
		t.Errorf("unknown variant: %v", err)
	}
	inactive := e.variant(t, 500, 10)
	v := e.cat.m[inactive]
	v.Active = false
	e.cat.put(v)
	if _, err := e.svc.Add(ctx, o, inactive, 1); !errors.Is(err, ErrVariantNotFound) {
		t.Errorf("inactive variant: %v", err)
	}

	// The line limit is on the resulting quantity: 60 + 41 is refused, 60 + 40 is fine.
	plenty := e.variant(t, 500, 1000)
	other := SessionOwner(newSessionID(t))
	must(e.svc.Add(ctx, other, plenty, 60))(t)
	if _, err := e.svc.Add(ctx, other, plenty, 41); !errors.Is(err, ErrQuantity) {
		t.Errorf("60 + 41 units on one line: %v, want ErrQuantity", err)
	}
	if c := must(e.svc.Add(ctx, other, plenty, 40))(t); qtyOf(c, plenty) != MaxQuantity {
		t.Errorf("60 + 40 units: %d, want %d", qtyOf(c, plenty), MaxQuantity)
	}

	must(e.svc.Add(ctx, o, scarce, 2))(t)
	_, err := e.svc.Add(ctx, o, scarce, 2)
	var se *StockError
	if !errors.As(err, &se) || !errors.Is(err, ErrInsufficientStock) || se.Requested != 4 || se.Available != 3 || se.VariantID != scarce {
		t.Fatalf("over stock: %v (%+v)", err, se)
	}
	if _, err := e.svc.SetQuantity(ctx, o, scarce, 4); !errors.As(err, &se) {
		t.Fatalf("set over stock: %v", err)
	}
	c := must(e.svc.Get(ctx, o))(t)
	if qtyOf(c, scarce) != 2 {
		t.Fatalf("a refused add changed the line: %d", qtyOf(c, scarce))
	}

	// 50 lines, then the 51st is refused while adding to an existing line still works.
	for len(c.Lines) < MaxLines {
		c = must(e.svc.Add(ctx, o, e.variant(t, 100, 10), 1))(t)
	}
	if _, err := e.svc.Add(ctx, o, e.variant(t, 100, 10), 1); !errors.Is(err, ErrTooManyLines) {
		t.Fatalf("51st line: %v", err)
	}
	if _, err := e.svc.SetQuantity(ctx, o, e.variant(t, 100, 10), 1); !errors.Is(err, ErrTooManyLines) {
		t.Fatalf("51st line by set: %v", err)
	}
	if c = must(e.svc.Add(ctx, o, scarce, 1))(t); qtyOf(c, scarce) != 3 {
		t.Fatalf("add to an existing line of a full cart: %d", qtyOf(c, scarce))
	}
}

func TestSetRemoveClearAndCoupon(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	o := CustomerOwner(newCustomerID())
	a, b := e.variant(t, 1000, 50), e.variant(t, 2500, 50)

	c := must(e.svc.Get(ctx, o))(t)
	if len(c.Lines) != 0 || c.Total.Amount != 0 || c.Total.Currency != "USD" {
		t.Fatalf("new cart not empty: %+v", c)
	}
	must(e.svc.Add(ctx, o, a, 2))(t)
	c = must(e.svc.SetQuantity(ctx, o, b, 3))(t)
	if qtyOf(c, a) != 2 || qtyOf(c, b) != 3 || c.Subtotal.Amount != 2*1000+3*2500 {
		t.Fatalf("after add+set: %+v", c)
	}
	if c.ID == "" || c.ID == o.ID || c.Owner != o.Type || c.UpdatedAt.IsZero() || !c.ExpiresAt.After(c.UpdatedAt) {
		t.Fatalf("cart metadata: id=%q owner=%q updated=%v expires=%v", c.ID, c.Owner, c.UpdatedAt, c.ExpiresAt)
	}

	if _, err := e.svc.SetCoupon(ctx, o, "NOPE"); !errors.Is(err, ErrCouponNotFound) {
		t.Fatalf("unknown coupon: %v", err)
	}
	if _, err := e.svc.SetCoupon(ctx, o, "BIG10"); !errors.Is(err, ErrCouponNotApplicable) {
		t.Fatalf("not applicable coupon: %v", err)
	}
	if _, err := e.svc.SetCoupon(ctx, o, "bad code"); !errors.Is(err, ErrInvalidCoupon) {
		t.Fatalf("malformed coupon: %v", err)
	}
	c = must(e.svc.SetCoupon(ctx, o, "SAVE10"))(t)
	if c.Coupon != "SAVE10" || c.DiscountTotal.Amount != 950 || c.Total.Amount != 9500-950 || len(c.Applied) != 1 {
		t.Fatalf("with coupon: %+v", c)
	}
	c = must(e.svc.SetQuantity(ctx, o, b, 0))(t)
	if qtyOf(c, b) != 0 || len(c.Lines) != 1 {
		t.Fatalf("set 0 did not remove: %+v", c.Lines)
	}
	c = must(e.svc.Remove(ctx, o, a))(t)
	if len(c.Lines) != 0 || c.Coupon != "SAVE10" {
		t.Fatalf("after remove: %+v", c)
	}
	c = must(e.svc.RemoveCoupon(ctx, o))(t)
	if c.Coupon != "" {
		t.Fatal("coupon not removed")
	}
	must(e.svc.Add(ctx, o, a, 1))(t)
	must(e.svc.SetCoupon(ctx, o, "SAVE10"))(t)
	c = must(e.svc.Clear(ctx, o))(t)
	if len(c.Lines) != 0 || c.Coupon != "" {
		t.Fatalf("after clear: %+v", c)
	}
}

func TestInactiveVariantsAreHiddenNotLost(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	o := SessionOwner(newSessionID(t))
	a, b := e.variant(t, 1000, 50), e.variant(t, 300, 50)
	must(e.svc.Add(ctx, o, a, 1))(t)
	must(e.svc.Add(ctx, o, b, 2))(t)
	vb := e.cat.m[b]
	vb.Active = false
	e.cat.put(vb)
	c := must(e.svc.Get(ctx, o))(t)
	if len(c.Lines) != 1 || c.Total.Amount != 1000 || len(c.Hidden) != 1 || c.Hidden[0] != b {
		t.Fatalf("inactive line not hidden: %+v", c)
	}
	vb.Active = true
	e.cat.put(vb)
	if c = must(e.svc.Get(ctx, o))(t); qtyOf(c, b) != 2 {
		t.Fatalf("re-activated line lost: %+v", c.Lines)
	}
}

func TestFreezeUnfreezeClearFor(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	o := CustomerOwner(newCustomerID())
	v := e.variant(t, 1000, 50)
	chk, other := uuid.NewString(), uuid.NewString()

	if _, err := e.svc.Freeze(ctx, o, chk); !errors.Is(err, ErrEmpty) {
		t.Fatalf("freeze empty: %v", err)
	}
	must(e.svc.Add(ctx, o, v, 2))(t) // the empty freeze took no lock
	must(e.svc.SetCoupon(ctx, o, "SAVE10"))(t)
	snap := must(e.svc.Freeze(ctx, o, chk))(t)
	if len(snap.Lines) != 1 || snap.Lines[0] != (Line{VariantID: v, Quantity: 2}) || snap.Coupon != "SAVE10" {
		t.Fatalf("snapshot %+v", snap)
	}
	if again := must(e.svc.Freeze(ctx, o, chk))(t); len(again.Lines) != 1 {
		t.Fatalf("refreeze by the same checkout: %+v", again)
	}
	_, err := e.svc.Freeze(ctx, o, other)
	var le *LockedError
	if !errors.As(err, &le) || le.CheckoutID != chk || !errors.Is(err, ErrLocked) {
		t.Fatalf("freeze by another checkout: %v", err)
	}
	mutations := map[string]func() error{
		"add":           func() error { _, err := e.svc.Add(ctx, o, v, 1); return err },
		"set":           func() error { _, err := e.svc.SetQuantity(ctx, o, v, 1); return err },
		"remove":        func() error { _, err := e.svc.Remove(ctx, o, v); return err },
		"clear":         func() error { _, err := e.svc.Clear(ctx, o); return err },
		"set coupon":    func() error { _, err := e.svc.SetCoupon(ctx, o, "SAVE10"); return err },
		"remove coupon": func() error { _, err := e.svc.RemoveCoupon(ctx, o); return err },
	}
	for name, m := range mutations {
		if err := m(); !errors.Is(err, ErrLocked) {
			t.Errorf("%s on a frozen cart: %v, want ErrLocked", name, err)
		}
	}
	c := must(e.svc.Get(ctx, o))(t)
	if c.LockedBy != chk || qtyOf(c, v) != 2 {
		t.Fatalf("frozen cart: %+v", c)
	}

	// Unfreeze by another checkout and ClearFor by another checkout change nothing.
	if err := e.svc.Unfreeze(ctx, o, other); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ClearFor(ctx, o, other); err != nil {
		t.Fatal(err)
	}
	if c = must(e.svc.Get(ctx, o))(t); c.LockedBy != chk || qtyOf(c, v) != 2 {
		t.Fatalf("another checkout changed the cart: %+v", c)
	}
	if err := e.svc.Unfreeze(ctx, o, chk); err != nil {
		t.Fatal(err)
	}
	if c = must(e.svc.Add(ctx, o, v, 1))(t); c.LockedBy != "" || qtyOf(c, v) != 3 {
		t.Fatalf("after unfreeze: %+v", c)
	}

	must(e.svc.Freeze(ctx, o, chk))(t)
	for range 2 { // idempotent
		if err := e.svc.ClearFor(ctx, o, chk); err != nil {
			t.Fatal(err)
		}
	}
	if c = must(e.svc.Get(ctx, o))(t); len(c.Lines) != 0 || c.Coupon != "" || c.LockedBy != "" {
		t.Fatalf("after ClearFor: %+v", c)
	}
	// ClearFor wrote the snapshot at once: no flush needed.
	var lines string
	if err := e.pool.QueryRow(ctx, `SELECT lines::text FROM customer_carts WHERE customer_id = $1`, o.ID).Scan(&lines); err != nil || lines != "[]" {
		t.Fatalf("snapshot after ClearFor: %q %v", lines, err)
	}
}

func TestInvalidOwnersAreRefused(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	for _, o := range []Owner{
		{Type: "session", ID: "short"},
		{Type: "session", ID: "x}:evil{" + newSessionID(t)[:35]},
		{Type: "customer", ID: ""},
		{Type: "customer", ID: "a b"},
		{Type: "admin", ID: "root"},
	} {
		if _, err := e.svc.Get(ctx, o); !errors.Is(err, ErrInvalidOwner) {
			t.Errorf("Get(%+v): %v", o, err)
		}
		if _, err := e.svc.Freeze(ctx, o, uuid.NewString()); !errors.Is(err, ErrInvalidOwner) {
			t.Errorf("Freeze(%+v): %v", o, err)
		}
	}
	if _, err := e.svc.Merge(ctx, "good", "bad"); !errors.Is(err, ErrInvalidOwner) {
		t.Errorf("Merge with a malformed session: %v", err)
	}
}
