package checkout_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"commerce/internal/checkout"
	"commerce/internal/platform/testenv"
)

// TestSoldOutIsAnsweredFromMemory: once a reservation found a variant sold out, another
// checkout of it on the same replica is refused after one cart read (no lock, no freeze,
// no reservation), with the contract's 409; a shopper whose cart is frozen for an active
// checkout still gets that checkout back; and once the memory has lapsed, stock that came
// back is sold again.
func TestSoldOutIsAnsweredFromMemory(t *testing.T) {
	ev := newEnv(t)
	hook := &testenv.CommandCounter{}
	ev.rdb.AddHook(hook)
	v := ev.variant(1, 1000)
	winner, late, later := sessionOwner(ev.session()), sessionOwner(ev.session()), sessionOwner(ev.session())
	for _, o := range []checkout.Owner{winner, late, later} {
		ev.add(o, v, 1) // while the unit is there (adding checks stock too)
	}
	won := ev.createCheckout(winner)
	if _, _, err := ev.svc.Create(ev.ctx, late, ""); !errors.Is(err, checkout.ErrInsufficientStock) {
		t.Fatalf("the first sold-out shopper: %v, want insufficient stock", err)
	}
	before := hook.N()
	_, _, err := ev.svc.Create(ev.ctx, later, "")
	var se *checkout.StockError
	if !errors.As(err, &se) || len(se.Shortages) != 1 || se.Shortages[0].VariantID != v || se.Shortages[0].Available != 0 {
		t.Fatalf("a shopper after the sell-out: %v, want a StockError for the variant", err)
	}
	if n := hook.N() - before; n != 1 {
		t.Fatalf("the refusal took %d Redis commands, want 1 (the cart read)", n)
	}
	if r := ev.do(http.MethodPost, "/v1/checkouts", "{}", ev.who(later)); r.status != http.StatusConflict || r.code(t) != "insufficient_stock" {
		t.Fatalf("over HTTP: %d %s, want 409 insufficient_stock", r.status, r.body)
	}
	if c := ev.cart(later); c.LockedBy != "" {
		t.Fatalf("a refused shopper's cart is frozen by %s", c.LockedBy)
	}
	// The winner's cart is frozen for its checkout: asking again hands it back.
	r := ev.do(http.MethodPost, "/v1/checkouts", "{}", ev.who(winner))
	if r.status != http.StatusOK || decode[checkoutResp](t, r).ID != won.ID {
		t.Fatalf("the winner asking again: %d %s, want 200 with its checkout", r.status, r.body)
	}
	// A unit comes back; after the memory lapses, it sells.
	if _, err := ev.inv.Adjust(ev.ctx, v, 1, "restock", "test"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, created, err := ev.svc.Create(ev.ctx, later, ""); err != nil || !created {
		t.Fatalf("after a restock and the memory's lapse: created %v, %v", created, err)
	}
	ev.wantLevels(v, 2, 0, 2)
}
