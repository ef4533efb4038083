package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/testenv"
)

// TestServiceKilledMidSweepHoldsAndCheckoutsStillExpire: a real service process (HTTP
// server and jobs, as `commerce serve` runs them) is killed with SIGKILL in the middle
// of a hold sweep, with holds due and its job lease held. A new process on the same
// PostgreSQL and Redis returns every hold within hold TTL + sweep interval + one lease,
// and expires the unpaid checkouts on time (checkout TTL + sweep interval + one lease).
func TestServiceKilledMidSweepHoldsAndCheckoutsStillExpire(t *testing.T) {
	const (
		holdTTL     = 3 * time.Second
		checkoutTTL = 6 * time.Second
		sweepEvery  = time.Second
		lease       = time.Second
		slack       = 750 * time.Millisecond // scheduling on a loaded 2-core machine
		variants    = 4
		shoppers    = 3 // per variant
	)
	short := func(c *Config) {
		c.HoldTTL, c.CheckoutTTL, c.SweepInterval, c.JobLease = holdTTL, checkoutTTL, sweepEvery, lease
	}
	if testenv.CrashChild() {
		paused := false
		var mu sync.Mutex
		a := newTestApp(t, short, func(c *Config) {
			// Stop for good in the sweep of the second due variant: the first one's holds
			// are back, the others' are not, and the run holds its lease.
			c.inventoryHooks.SweepIndex = func(uuid.UUID) {
				mu.Lock()
				second := paused
				paused = true
				mu.Unlock()
				if second {
					testenv.PauseAt("mid-sweep")
				}
			}
		})
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_ = a.Serve(context.Background(), l)
		t.Fatal("the service stopped without pausing in a sweep")
	}

	a := newTestApp(t, short)
	ctx := context.Background()
	h := a.Handler()
	send := func(method, path, body string, hdr map[string]string) answer {
		return do(t, h, call{method: method, path: path, body: body, headers: hdr})
	}
	ids := make([]uuid.UUID, variants)
	checkouts := []string{}
	var lastHold time.Time
	for i := range ids {
		slug := "kill-" + uuid.NewString()[:8]
		r := send("POST", "/admin/products", fmt.Sprintf(`{"slug":%q,"name":"Shoe","description":"",
			"category":"shoes","status":"active","attributes":{},"variants":[{"sku":%q,"name":"42",
			"price":{"amount":1000,"currency":"USD"},"attributes":{},"stock":10}]}`, slug, "SKU-"+slug), admin())
		if r.status != http.StatusCreated {
			t.Fatalf("create product: %d %s", r.status, r.body)
		}
		ids[i] = uuid.MustParse(r.json(t)["variants"].([]any)[0].(map[string]any)["id"].(string))
		for range shoppers {
			sid := send("POST", "/v1/sessions", "", nil).json(t)["session_id"].(string)
			if r := send("POST", "/v1/cart/items", fmt.Sprintf(`{"variant_id":%q,"quantity":2}`, ids[i]), sess(sid)); r.status != 200 {
				t.Fatalf("add: %d %s", r.status, r.body)
			}
			r := send("POST", "/v1/checkouts", `{}`, sess(sid))
			if r.status != http.StatusCreated {
				t.Fatalf("checkout: %d %s", r.status, r.body)
			}
			checkouts = append(checkouts, r.json(t)["id"].(string))
			lastHold = time.Now()
		}
	}
	holdsDue := lastHold.Add(holdTTL)
	checkoutsDue := lastHold.Add(checkoutTTL)

	child := testenv.StartCrash(t, "mid-sweep", nil)
	child.WaitPaused(holdTTL + 30*time.Second)
	held := 0
	for _, id := range ids {
		l, err := a.Domains().Inventory.Levels(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		held += int(l.Held)
	}
	if held == 0 {
		t.Fatal("every hold was back before the kill: the sweep was not interrupted")
	}
	child.Kill()
	killedAt := time.Now()
	t.Logf("killed %v after the holds were due, %d units still held", killedAt.Sub(holdsDue).Round(time.Millisecond), held)
	// The surviving or restarted replica.
	if err := a.startBackground(ctx); err != nil {
		t.Fatal(err)
	}

	deadline := holdsDue.Add(sweepEvery + lease + slack)
	for {
		held = 0
		for _, id := range ids {
			l, err := a.Domains().Inventory.Levels(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			held += int(l.Held)
			if l.Held == 0 && l.Available != 10 {
				t.Fatalf("variant %s: available %d with nothing held", id, l.Available)
			}
		}
		if held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d units still held %v after the holds were due (bound: sweep interval %v + lease %v + slack %v)",
				held, time.Since(holdsDue).Round(time.Millisecond), sweepEvery, lease, slack)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("every hold back %v after it was due (%v after the kill)", time.Since(holdsDue).Round(time.Millisecond),
		time.Since(killedAt).Round(time.Millisecond))

	deadline = checkoutsDue.Add(sweepEvery + lease + slack)
	for {
		var open int
		if err := a.Pool.QueryRow(ctx, `SELECT count(*) FROM checkouts WHERE id = ANY($1::uuid[]) AND state <> 'expired'`,
			checkouts).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().Before(checkoutsDue) {
			// not yet due: none may have expired early either
		} else if time.Now().After(deadline) {
			t.Fatalf("%d checkouts not expired %v after they were due", open, time.Since(checkoutsDue).Round(time.Millisecond))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if time.Now().Before(checkoutsDue) {
		t.Fatalf("checkouts expired %v before their TTL", time.Until(checkoutsDue))
	}
	t.Logf("every checkout expired %v after it was due", time.Since(checkoutsDue).Round(time.Millisecond))
}
