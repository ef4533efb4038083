package app

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// TestStatementTimeoutAnswers503AndKeyedAdjustAppliesOnce: PostgreSQL cancels the sale
// transaction of a complete and an operator's adjustment with a statement timeout
// (SQLSTATE 57014, here because another session holds the stock row). Both answer 503
// with Retry-After, never 500. The adjustment sent again with its Idempotency-Key, once
// the row is free, is applied exactly once, however often it is retried; the checkout
// then completes.
func TestStatementTimeoutAnswers503AndKeyedAdjustAppliesOnce(t *testing.T) {
	a := newTestApp(t, func(c *Config) { c.PGTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	h := a.Handler()
	send := func(method, path, body string, hdr map[string]string) answer {
		return do(t, h, call{method: method, path: path, body: body, headers: hdr})
	}
	slug := "timeout-" + uuid.NewString()[:8]
	r := send("POST", "/admin/products", fmt.Sprintf(`{"slug":%q,"name":"Shoe","description":"",
		"category":"shoes","status":"active","attributes":{},"variants":[{"sku":%q,"name":"42",
		"price":{"amount":1000,"currency":"USD"},"attributes":{},"stock":10}]}`, slug, "SKU-"+slug), admin())
	if r.status != http.StatusCreated {
		t.Fatalf("create product: %d %s", r.status, r.body)
	}
	variant := r.json(t)["variants"].([]any)[0].(map[string]any)["id"].(string)
	sid := send("POST", "/v1/sessions", "", nil).json(t)["session_id"].(string)
	if r := send("POST", "/v1/cart/items", fmt.Sprintf(`{"variant_id":%q,"quantity":2}`, variant), sess(sid)); r.status != 200 {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	r = send("POST", "/v1/checkouts", `{}`, sess(sid))
	if r.status != http.StatusCreated {
		t.Fatalf("checkout: %d %s", r.status, r.body)
	}
	checkout := r.json(t)["id"].(string)

	// Another session locks the stock row, so the next statement that writes it waits
	// until statement_timeout (PG_TIMEOUT) cancels it.
	lockRow := func() (release func()) {
		t.Helper()
		tx, err := a.Pool.BeginTx(ctx, pgx.TxOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM inventory WHERE variant_id = $1 FOR UPDATE`, variant); err != nil {
			t.Fatal(err)
		}
		done := sync.OnceFunc(func() { _ = tx.Rollback(ctx) })
		t.Cleanup(done) // a failing test must not leave the pool waiting for this connection
		return done
	}
	want503 := func(what string, r answer) {
		t.Helper()
		if r.status != http.StatusServiceUnavailable || r.errorCode(t) != "unavailable" {
			t.Fatalf("%s under a statement timeout: %d %s; want 503 unavailable", what, r.status, r.body)
		}
		if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
			t.Fatalf("%s: Retry-After %q", what, r.header.Get("Retry-After"))
		}
	}
	onHand := func() (n int64) {
		t.Helper()
		if err := a.Pool.QueryRow(ctx, `SELECT on_hand FROM inventory WHERE variant_id = $1`, variant).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	release := lockRow()
	complete := func() answer {
		return send("POST", "/v1/checkouts/"+checkout+"/complete", `{"payment_token":"tok_ok"}`, sess(sid))
	}
	want503("complete", complete())
	key := map[string]string{"Authorization": "Bearer " + testAdminToken, "Idempotency-Key": "restock-" + uuid.NewString()}
	adjust := func() answer {
		return send("POST", "/admin/inventory/"+variant+"/adjust", `{"delta":5,"reason":"restock"}`, key)
	}
	want503("adjust", adjust())
	release()
	if n := onHand(); n != 10 {
		t.Fatalf("on_hand %d after the timed-out writes; want 10 (nothing applied)", n)
	}

	first := adjust()
	if first.status != http.StatusOK {
		t.Fatalf("adjust retried with its key: %d %s", first.status, first.body)
	}
	for range 3 {
		again := adjust()
		if again.status != http.StatusOK || string(again.body) != string(first.body) ||
			again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("adjust retried again: %d %s (replayed %q)", again.status, again.body, again.header.Get("Idempotent-Replayed"))
		}
	}
	// Even with the stored response gone (Redis lost it), PostgreSQL refuses a second
	// application of the same key.
	it := a.Redis.Scan(ctx, 0, a.Space.Key("idem:*"), 100).Iterator()
	dropped := 0
	for it.Next(ctx) {
		dropped += int(a.Redis.Del(ctx, it.Val()).Val())
	}
	if it.Err() != nil || dropped == 0 {
		t.Fatalf("dropping the stored responses: %d keys, %v", dropped, it.Err())
	}
	if r := adjust(); r.status != http.StatusOK {
		t.Fatalf("adjust after the stored response was lost: %d %s", r.status, r.body)
	}
	if n := onHand(); n != 15 {
		t.Fatalf("on_hand %d; want 15: the keyed adjustment applied exactly once", n)
	}
	var rows int
	if err := a.Pool.QueryRow(ctx, `SELECT count(*) FROM stock_ledger WHERE variant_id = $1 AND reason = 'restock'`,
		variant).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("%d ledger rows for the restock, %v", rows, err)
	}

	if r := complete(); r.status != http.StatusOK {
		t.Fatalf("complete after the timeout: %d %s", r.status, r.body)
	}
	if n := onHand(); n != 13 {
		t.Fatalf("on_hand %d after the sale; want 13", n)
	}
}
