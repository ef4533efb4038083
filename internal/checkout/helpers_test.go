package checkout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"commerce/internal/app"
	"commerce/internal/cart"
	"commerce/internal/catalog"
	"commerce/internal/checkout"
	"commerce/internal/inventory"
	"commerce/internal/payment"
	"commerce/internal/payment/stripepay"
	"commerce/internal/platform/auth"
	"commerce/internal/platform/httpx"
	"commerce/internal/platform/money"
	"commerce/internal/platform/rkey"
	"commerce/internal/platform/testenv"

	"commerce/internal/platform/spectest"
)

const webhookSecret = "whsec-test"

// env is a checkout service on the real PostgreSQL and Redis with the real inventory,
// cart and catalog services, behind an echo router like the app's.
type env struct {
	t        testing.TB
	ctx      context.Context
	pool     *pgxpool.Pool
	rdb      redis.UniversalClient
	space    rkey.Space
	inv      *inventory.Service
	carts    *cart.Service
	catalog  *catalog.Service
	svc      *checkout.Service
	sessions *auth.Sessions
	tokens   *auth.Tokens
	e        *echo.Echo
	pay      *payment.TestProvider // the provider, when it is the test provider

	afterMark, afterTx atomic.Pointer[func() error] // inventory commit hooks
}

type envConfig struct {
	chk     checkout.Options
	inv     inventory.Options
	pricing checkout.Pricing
	pay     checkout.PaymentProvider
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testWriter sends the error funnel's log lines (5xx only) to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(p)))
	return len(p), nil
}

func newEnv(t testing.TB, mutate ...func(*envConfig)) *env {
	t.Helper()
	pool, _ := testenv.DB(t)
	rdb, space := testenv.Redis(t)
	ev := &env{t: t, ctx: context.Background(), pool: pool, rdb: rdb, space: space}
	cfg := envConfig{chk: checkout.Options{Logger: quiet()}, inv: inventory.Options{Logger: quiet()}}
	for _, m := range mutate {
		m(&cfg)
	}
	cfg.inv.Hooks.AfterMark = func() error {
		if f := ev.afterMark.Load(); f != nil {
			return (*f)()
		}
		return nil
	}
	cfg.inv.Hooks.AfterTx = func() error {
		if f := ev.afterTx.Load(); f != nil {
			return (*f)()
		}
		return nil
	}
	if cfg.pay == nil {
		cfg.pay = checkout.NewTestProvider()
	}
	ev.pay, _ = cfg.pay.(*payment.TestProvider)
	var err error
	if ev.inv, err = inventory.NewService(pool, rdb, space, prometheus.NewRegistry(), cfg.inv); err != nil {
		t.Fatal(err)
	}
	store := catalog.NewStore(pool, "USD")
	cache := catalog.NewCache(store, rdb, space, time.Hour, nil)
	ev.catalog = catalog.NewService(store, cache)
	if ev.carts, err = cart.NewService(rdb, space, pool, app.CartCatalog{Src: cache}, ev.inv, nil,
		cart.Options{Logger: quiet()}); err != nil {
		t.Fatal(err)
	}
	if ev.svc, err = checkout.NewService(pool, rdb, space, app.CheckoutInventory{S: ev.inv}, app.CheckoutCarts{S: ev.carts},
		app.CheckoutCatalog{Src: cache}, cfg.pricing, cfg.pay, prometheus.NewRegistry(), cfg.chk); err != nil {
		t.Fatal(err)
	}
	if err := ev.svc.LoadScripts(ev.ctx); err != nil {
		t.Fatal(err)
	}
	ev.sessions = auth.NewSessions(rdb, space, time.Hour, 0)
	ev.tokens = auth.NewTokens("jwt-secret-for-checkout-tests-0123456789")
	ev.e = echo.New()
	ev.e.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	ev.e.Use(httpx.RequestIDMiddleware(), httpx.BodyLimit()) // as the app serves them
	v1 := ev.e.Group("/v1", auth.Identify(ev.tokens, ev.sessions))
	checkout.NewHandler(ev.svc, webhookSecret).WithStripe(stripeVerifier).Register(v1, ev.e.Group("/admin"))
	return ev
}

// variant creates an active product with one variant of the given stock and price.
func (ev *env) variant(stock, price int64) uuid.UUID {
	ev.t.Helper()
	n := uuid.NewString()[:8]
	p, err := ev.catalog.Create(ev.ctx, catalog.NewProduct{Slug: "p-" + n, Name: "Shoe " + n, Category: "shoes",
		Variants: []catalog.NewVariant{{SKU: "SKU-" + n, Name: "42", Price: money.New(price, "USD"), Stock: stock}}})
	if err != nil {
		ev.t.Fatal(err)
	}
	return p.Variants[0].ID
}

func (ev *env) session() string {
	ev.t.Helper()
	id, _, err := ev.sessions.Create(ev.ctx, "")
	if err != nil {
		ev.t.Fatal(err)
	}
	return id
}

func (ev *env) customerToken(id string) string {
	ev.t.Helper()
	tok, err := ev.tokens.Issue(id, time.Hour)
	if err != nil {
		ev.t.Fatal(err)
	}
	return tok
}

func sessionOwner(id string) checkout.Owner  { return checkout.Owner{Type: auth.OwnerSession, ID: id} }
func customerOwner(id string) checkout.Owner { return checkout.Owner{Type: auth.OwnerCustomer, ID: id} }

func (ev *env) add(o checkout.Owner, variant uuid.UUID, qty int64) {
	ev.t.Helper()
	if _, err := ev.carts.Add(ev.ctx, cart.Owner{Type: o.Type, ID: o.ID}, variant, qty); err != nil {
		ev.t.Fatalf("add to cart: %v", err)
	}
}

func (ev *env) cart(o checkout.Owner) cart.Cart {
	ev.t.Helper()
	c, err := ev.carts.Get(ev.ctx, cart.Owner{Type: o.Type, ID: o.ID})
	if err != nil {
		ev.t.Fatal(err)
	}
	return c
}

func (ev *env) levels(variant uuid.UUID) inventory.Levels {
	ev.t.Helper()
	l, err := ev.inv.Levels(ev.ctx, variant)
	if err != nil {
		ev.t.Fatal(err)
	}
	return l
}

// wantLevels checks on_hand, available and held of a variant, and that Redis agrees
// with PostgreSQL (no drift).
func (ev *env) wantLevels(variant uuid.UUID, onHand, available, held int64) {
	ev.t.Helper()
	l := ev.levels(variant)
	if l.OnHand != onHand || l.Available != available || l.Held != held || l.Drift != 0 {
		ev.t.Fatalf("levels of %s: on_hand %d available %d held %d drift %d (holds %+v), want %d/%d/%d/0",
			variant, l.OnHand, l.Available, l.Held, l.Drift, l.Holds, onHand, available, held)
	}
}

func (ev *env) count(sql string, args ...any) int {
	ev.t.Helper()
	var n int
	if err := ev.pool.QueryRow(ev.ctx, sql, args...).Scan(&n); err != nil {
		ev.t.Fatal(err)
	}
	return n
}

// who returns the request headers of an owner.
func (ev *env) who(o checkout.Owner) map[string]string {
	if o.Type == auth.OwnerSession {
		cred, _ := ev.sessions.Credential(o.ID)
		return map[string]string{auth.HeaderSession: cred}
	}
	return map[string]string{"Authorization": "Bearer " + ev.customerToken(o.ID)}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %s", r.status, r.body)
	}
	return m
}

func (r resp) code(t testing.TB) string {
	t.Helper()
	e, ok := r.json(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("response %d has no error: %s", r.status, r.body)
	}
	if _, ok := e["details"].(map[string]any); !ok {
		t.Fatalf("error without details object: %s", r.body)
	}
	return e["code"].(string)
}

func (ev *env) do(method, path, body string, headers map[string]string) resp {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	spectest.Handler(ev.t, ev.e).ServeHTTP(rec, req) // checked against api/openapi.yaml
	return resp{status: rec.Code, header: rec.Header(), body: bytes.Clone(rec.Body.Bytes())}
}

func with(h map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(h)+1)
	for a, b := range h {
		out[a] = b
	}
	out[k] = v
	return out
}

// checkoutResp is the part of the Checkout JSON tests look at.
type checkoutResp struct {
	ID            uuid.UUID  `json:"id"`
	State         string     `json:"state"`
	OrderID       *uuid.UUID `json:"order_id"`
	PaymentIntent *struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"payment_intent"`
	Total struct {
		Amount int64 `json:"amount"`
	} `json:"total"`
}

func decode[T any](t testing.TB, r resp) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %d %s: %v", r.status, r.body, err)
	}
	return v
}

// createCheckout starts a checkout over HTTP and requires 201.
func (ev *env) createCheckout(o checkout.Owner) checkoutResp {
	ev.t.Helper()
	r := ev.do(http.MethodPost, "/v1/checkouts", "{}", ev.who(o))
	if r.status != http.StatusCreated {
		ev.t.Fatalf("create checkout: %d %s", r.status, r.body)
	}
	return decode[checkoutResp](ev.t, r)
}

func completePath(id uuid.UUID) string { return "/v1/checkouts/" + id.String() + "/complete" }
func cancelPath(id uuid.UUID) string   { return "/v1/checkouts/" + id.String() + "/cancel" }

const tokOK = `{"payment_token":"tok_ok"}`

// parallel runs fn(i) for i in [0, n) on workers goroutines.
func parallel(n, workers int, fn func(i int)) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

type completionResp struct {
	Checkout checkoutResp `json:"checkout"`
	Order    orderResp    `json:"order"`
}

type orderResp struct {
	ID         uuid.UUID `json:"id"`
	Number     int64     `json:"number"`
	CheckoutID uuid.UUID `json:"checkout_id"`
	Status     string    `json:"status"`
	Total      struct {
		Amount   int64  `json:"amount"`
		Currency string `json:"currency"`
	} `json:"total"`
	RefundedTotal struct {
		Amount   int64  `json:"amount"`
		Currency string `json:"currency"`
	} `json:"refunded_total"`
	Refunds []struct {
		ID     uuid.UUID `json:"id"`
		Status string    `json:"status"`
		Amount struct {
			Amount int64 `json:"amount"`
		} `json:"amount"`
		Reason string `json:"reason"`
	} `json:"refunds"`
}

// stripeSecret signs the Stripe webhooks of the tests.
const stripeSecret = "whsec_checkout_tests"

func stripeVerifier(body []byte, sig string) (checkout.PaymentEvent, error) {
	ev, err := stripepay.ParseWebhook(body, sig, stripeSecret)
	if errors.Is(err, stripepay.ErrSignature) {
		return checkout.PaymentEvent{}, checkout.ErrBadSignature
	}
	if err != nil {
		return checkout.PaymentEvent{}, err
	}
	return checkout.PaymentEvent{ID: ev.ID, Type: checkout.EventType(ev.Type), IntentID: ev.IntentID, Refund: ev.Refund,
		AmountRefunded: ev.AmountRefunded}, nil
}

// admin sends an operator request (the test router has no admin auth in front).
func (ev *env) admin(method, path, body string, headers ...string) resp {
	h := map[string]string{}
	for i := 0; i+1 < len(headers); i += 2 {
		h[headers[i]] = headers[i+1]
	}
	return ev.do(method, path, body, h)
}

// placeOrder creates and completes a checkout of qty units of each variant for o and
// returns the order.
func (ev *env) placeOrder(o checkout.Owner, lines map[uuid.UUID]int64) orderResp {
	ev.t.Helper()
	for v, q := range lines {
		ev.add(o, v, q)
	}
	co := ev.createCheckout(o)
	r := ev.do(http.MethodPost, completePath(co.ID), tokOK, ev.who(o))
	if r.status != http.StatusOK {
		ev.t.Fatalf("complete: %d %s", r.status, r.body)
	}
	return decode[completionResp](ev.t, r).Order
}

// webhook posts a signed event to the generic provider webhook.
func (ev *env) webhook(body string) resp {
	return ev.do(http.MethodPost, "/v1/payments/webhook", body,
		map[string]string{checkout.HeaderSignature: checkout.Sign(webhookSecret, []byte(body))})
}
