package app

// Fault injection: the service between a real redis-server it can kill and
// restart, and toxiproxy proxies (in process) in front of Redis and PostgreSQL that lose
// replies, add latency or go away. Each test states the line of the degradation matrix
// (docs/architecture.md) it proves.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"commerce/internal/platform/db"
	"commerce/internal/platform/testenv"
)

// chaosEnv is one app wired to a private redis-server, optionally through toxiproxy
// proxies, plus a direct pool on its database for the assertions.
type chaosEnv struct {
	t      *testing.T
	a      *App
	h      http.Handler
	pool   *pgxpool.Pool // straight to PostgreSQL, never through a proxy
	redis  *testenv.RedisServer
	rproxy *toxiproxy.Proxy // nil unless asked for
	pproxy *toxiproxy.Proxy // nil unless asked for

	mu        sync.Mutex
	noscripts []string // responses that leaked NOSCRIPT
}

type chaosOpts struct {
	redisProxy, pgProxy bool
	mutate              func(*Config)
}

func newChaosEnv(t *testing.T, o chaosOpts) *chaosEnv {
	t.Helper()
	cfg := testConfig(t)
	e := &chaosEnv{t: t, redis: testenv.StartRedis(t)}
	pool, err := db.Open(context.Background(), cfg.DatabaseURL, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e.pool = pool
	toxi := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	redisAddr := e.redis.Addr
	if o.redisProxy {
		e.rproxy = startProxy(t, toxi, "redis", e.redis.Addr)
		redisAddr = e.rproxy.Listen
	}
	if o.pgProxy {
		u, err := url.Parse(cfg.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		e.pproxy = startProxy(t, toxi, "postgres", u.Host)
		u.Host = e.pproxy.Listen
		cfg.DatabaseURL = u.String()
	}
	cfg.RedisAddrs, cfg.RedisURL, cfg.RedisPrefix = nil, "redis://"+redisAddr+"/0", ""
	cfg.RedisTimeout, cfg.PGTimeout = 300*time.Millisecond, time.Second
	if o.mutate != nil {
		o.mutate(&cfg)
	}
	a, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	e.a, e.h = a, a.Handler()
	return e
}

func startProxy(t *testing.T, srv *toxiproxy.ApiServer, name, upstream string) *toxiproxy.Proxy {
	t.Helper()
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("start %s proxy: %v", name, err)
	}
	t.Cleanup(p.Stop)
	return p
}

func addToxic(t *testing.T, p *toxiproxy.Proxy, spec string) string {
	t.Helper()
	w, err := p.Toxics.AddToxicJson(strings.NewReader(spec))
	if err != nil {
		t.Fatalf("add toxic %s: %v", spec, err)
	}
	return w.Name
}

func removeToxic(t *testing.T, p *toxiproxy.Proxy, name string) {
	t.Helper()
	if err := p.Toxics.RemoveToxic(context.Background(), name); err != nil {
		t.Fatalf("remove toxic %s: %v", name, err)
	}
}

// requireRoutes skips a chaos test whose routes are not wired yet (the domains land one by
// one); once they are, the test runs in full.
func (e *chaosEnv) requireRoutes(routes ...string) {
	e.t.Helper()
	have := map[string]bool{}
	for _, r := range e.a.Echo.Routes() {
		have[r.Method+" "+routeParam.ReplaceAllString(r.Path, "{}")] = true
	}
	var missing []string
	for _, r := range routes {
		if !have[r] {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		e.t.Fatalf("routes not wired: %s", strings.Join(missing, ", "))
	}
}

// send is goroutine-safe (no t.Fatal) and records any answer that leaks NOSCRIPT.
func (e *chaosEnv) send(method, path, body string, h map[string]string) answer {
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	for k, v := range h {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	a := answer{status: rec.Code, header: rec.Header(), body: bytes.Clone(rec.Body.Bytes())}
	if bytes.Contains(bytes.ToUpper(a.body), []byte("NOSCRIPT")) {
		e.mu.Lock()
		e.noscripts = append(e.noscripts, fmt.Sprintf("%s %s → %d %s", method, path, a.status, a.body))
		e.mu.Unlock()
	}
	return a
}

func field(a answer, path ...string) string {
	var v any
	if json.Unmarshal(a.body, &v) != nil {
		return ""
	}
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return fmt.Sprint(int64(x))
	}
	return ""
}

func (e *chaosEnv) createProduct(stock int) (productID, variantID string) {
	e.t.Helper()
	slug := "chaos-" + uuid.NewString()[:8]
	r := e.send("POST", "/admin/products", fmt.Sprintf(`{"slug":%q,"name":"Chaos shoe","description":"",
		"category":"shoes","status":"active","attributes":{},"variants":[{"sku":%q,"name":"42",
		"price":{"amount":1000,"currency":"USD"},"attributes":{},"stock":%d}]}`, slug, "SKU-"+slug, stock), admin())
	if r.status != http.StatusCreated {
		e.t.Fatalf("create product: %d %s", r.status, r.body)
	}
	var p struct {
		ID       string `json:"id"`
		Variants []struct {
			ID string `json:"id"`
		} `json:"variants"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil || len(p.Variants) != 1 {
		e.t.Fatalf("create product: %s", r.body)
	}
	return p.ID, p.Variants[0].ID
}

func sess(sid string) map[string]string { return map[string]string{"X-Session-ID": sid} }

func withIdem(h map[string]string, key string) map[string]string {
	c := map[string]string{"Idempotency-Key": key}
	for k, v := range h {
		c[k] = v
	}
	return c
}

// shop runs one purchase step by step: session, cart line, checkout, completion.
type shop struct {
	e                   *chaosEnv
	sid, checkout       string
	checkoutKey, payKey string
	variant             string
	heldAt              time.Time // when the checkout answered 201: the hold exists from then
}

func (s *shop) newSession() answer {
	r := s.e.send("POST", "/v1/sessions", "", nil)
	if r.status == http.StatusCreated {
		s.sid = field(r, "session_id")
	}
	return r
}

func (s *shop) add(variant string, qty int) answer {
	return s.e.send("POST", "/v1/cart/items", fmt.Sprintf(`{"variant_id":%q,"quantity":%d}`, variant, qty), sess(s.sid))
}

func (s *shop) startCheckout() answer {
	if s.checkoutKey == "" {
		s.checkoutKey = uuid.NewString()
	}
	r := s.e.send("POST", "/v1/checkouts", `{}`, withIdem(sess(s.sid), s.checkoutKey))
	if r.status == http.StatusCreated || r.status == http.StatusOK {
		s.checkout = field(r, "id")
		if s.heldAt.IsZero() {
			s.heldAt = time.Now()
		}
	}
	return r
}

func (s *shop) complete() answer {
	if s.payKey == "" {
		s.payKey = uuid.NewString()
	}
	return s.e.send("POST", "/v1/checkouts/"+s.checkout+"/complete", `{"payment_token":"tok_ok"}`,
		withIdem(sess(s.sid), s.payKey))
}

// inventory is GET /admin/inventory/{variant} after a reconcile of that variant.
type invLevels struct {
	OnHand    int64 `json:"on_hand"`
	Available int64 `json:"available"`
	Held      int64 `json:"held"`
	Drift     int64 `json:"drift"`
}

func (e *chaosEnv) reconciledLevels(variant string) invLevels {
	e.t.Helper()
	if r := e.send("POST", "/admin/inventory/reconcile?dry_run=false", fmt.Sprintf(`{"variant_ids":[%q]}`, variant), admin()); r.status != 200 {
		e.t.Fatalf("reconcile: %d %s", r.status, r.body)
	}
	r := e.send("GET", "/admin/inventory/"+variant, "", admin())
	if r.status != 200 {
		e.t.Fatalf("inventory: %d %s", r.status, r.body)
	}
	var l invLevels
	if err := json.Unmarshal(r.body, &l); err != nil {
		e.t.Fatalf("inventory: %s", r.body)
	}
	return l
}

// sold returns the units of variant in orders and its on_hand, from PostgreSQL.
func (e *chaosEnv) sold(variant string) (sold, onHand int64) {
	e.t.Helper()
	err := e.pool.QueryRow(context.Background(), `SELECT
		(SELECT coalesce(sum(quantity), 0) FROM order_lines WHERE variant_id = $1),
		(SELECT on_hand FROM inventory WHERE variant_id = $1)`, variant).Scan(&sold, &onHand)
	if err != nil {
		e.t.Fatal(err)
	}
	return sold, onHand
}

// checkNoOversell: units sold never exceed the stock, on_hand is the stock minus the units
// sold, and after a reconcile Redis agrees with PostgreSQL (no drift, avail+held=on_hand).
func (e *chaosEnv) checkNoOversell(variant string, stock int64) {
	e.t.Helper()
	sold, onHand := e.sold(variant)
	if sold > stock {
		e.t.Errorf("variant %s oversold: %d units sold of %d", variant, sold, stock)
	}
	if onHand != stock-sold {
		e.t.Errorf("variant %s: on_hand %d, want stock %d − sold %d", variant, onHand, stock, sold)
	}
	l := e.reconciledLevels(variant)
	if l.Drift != 0 || l.Available+l.Held != l.OnHand || l.OnHand != onHand || l.Available < 0 {
		e.t.Errorf("variant %s after reconcile: %+v (PostgreSQL on_hand %d), want no drift and available+held = on_hand",
			variant, l, onHand)
	}
}

func (e *chaosEnv) checkNoScriptLeak() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.noscripts) > 0 {
		e.t.Errorf("NOSCRIPT reached callers %d times, e.g. %s", len(e.noscripts), e.noscripts[0])
	}
}

// ordersExist counts the given order ids in PostgreSQL.
func (e *chaosEnv) ordersExist(ids []string) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM orders WHERE id::text = ANY($1)`, ids).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *chaosEnv) orderCount() int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM orders`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

var checkoutRoutes = []string{"POST /admin/products", "POST /v1/cart/items", "POST /v1/checkouts",
	"POST /v1/checkouts/{}/complete", "GET /admin/inventory/{}", "POST /admin/inventory/reconcile"}

// event is one answer seen by the load, with when it was asked and answered.
type event struct {
	kind       string // catalog, redis (session/cart/checkout/complete)
	what       string
	status     int
	start, end time.Time
	retryAfter string
}

type eventLog struct {
	mu     sync.Mutex
	events []event
	orders map[string]bool // order ids answered with 200
	// broken: shoppers told 201 at checkout (stock held for them) and then 409 or 410 at
	// completion. Outside the one documented window this must never happen: a hold is a
	// promise of stock.
	broken []brokenPromise
}

type brokenPromise struct {
	variant string
	heldAt  time.Time
	status  int
	code    string
}

// completed records the completion answer of a shopper who held stock.
func (l *eventLog) completed(s *shop, r answer) {
	switch r.status {
	case http.StatusOK:
		l.order(field(r, "order", "id"))
	case http.StatusConflict, http.StatusGone:
		l.mu.Lock()
		l.broken = append(l.broken, brokenPromise{variant: s.variant, heldAt: s.heldAt, status: r.status,
			code: field(r, "error", "code")})
		l.mu.Unlock()
	}
}

func (l *eventLog) add(ev event) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
}

func (l *eventLog) order(id string) {
	l.mu.Lock()
	l.orders[id] = true
	l.mu.Unlock()
}

func (l *eventLog) snapshot() ([]event, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]string, 0, len(l.orders))
	for id := range l.orders {
		ids = append(ids, id)
	}
	return append([]event(nil), l.events...), ids
}

// timed runs one request and logs it.
func (l *eventLog) timed(kind, what string, fn func() answer) answer {
	start := time.Now()
	r := fn()
	l.add(event{kind: kind, what: what, status: r.status, start: start, end: time.Now(), retryAfter: r.header.Get("Retry-After")})
	return r
}

// TestChaosRedisKilledUnderReservationLoad: shoppers buy two variants (one plentiful, one
// scarce) while readers browse; Redis is killed for 1.5 s and restarted empty (script
// cache included). Matrix: catalog reads and availability keep answering 200; sessions,
// carts and reservations answer 503 with Retry-After while Redis is down (never 500, never
// 200 with a guess); reservations succeed again within 5 s of its return; no unit is
// oversold, no order a shopper was told about is lost, no NOSCRIPT reaches a caller; and no
// shopper told 201 at checkout is refused at completion (409/410), except those whose
// scarce hold Redis lost. A flash sale after the restart checks that the reservation
// alone refuses what is not there (PostgreSQL's on_hand >= q would hide an oversold hold
// as a failed completion).
func TestChaosRedisKilledUnderReservationLoad(t *testing.T) {
	e := newChaosEnv(t, chaosOpts{})
	e.requireRoutes(append(checkoutRoutes, "GET /v1/products/{}", "GET /v1/variants/{}/availability", "GET /v1/products")...)
	const plenty, scarce = 100000, 6
	productA, variantA := e.createProduct(plenty)
	_, variantB := e.createProduct(scarce)
	log := &eventLog{orders: map[string]bool{}}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	var pending sync.Map // checkout shops whose completion answered 503: finished after the run

	// Readers: the catalog must answer throughout.
	for _, path := range []string{"/v1/products/" + productA, "/v1/products?per_page=5", "/v1/variants/" + variantA + "/availability"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				log.timed("catalog", path, func() answer { return e.send("GET", path, "", nil) })
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	// Shoppers: each step is repeated after a 503 (what a storefront does with Retry-After);
	// a 401 (session lost with Redis) starts over.
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				variant := variantA
				if (i+n)%3 == 0 {
					variant = variantB
				}
				s := &shop{e: e, variant: variant}
				step := func(what string, fn func() answer, ok ...int) answer {
					for ctx.Err() == nil {
						r := log.timed("redis", what, fn)
						// 503, and 409 checkout_in_progress (a transition of the same
						// checkout is still in flight), both say "retry shortly".
						if r.status == http.StatusServiceUnavailable ||
							(r.status == http.StatusConflict && field(r, "error", "code") == "checkout_in_progress") {
							time.Sleep(20 * time.Millisecond)
							continue
						}
						return r
					}
					return answer{}
				}
				if r := step("session", s.newSession); r.status != http.StatusCreated {
					continue
				}
				if r := step("cart", func() answer { return s.add(variant, 1) }); r.status != http.StatusOK && r.status != http.StatusCreated {
					continue
				}
				if r := step("checkout", s.startCheckout); r.status != http.StatusCreated && r.status != http.StatusOK {
					continue
				}
				r := step("complete", s.complete)
				if r.status == 0 { // stopped while Redis was down: finish it afterwards
					pending.Store(s, true)
				} else {
					log.completed(s, r)
				}
			}
		}(i)
	}

	waitFor(t, 20*time.Second, "3 orders before the fault", func() bool {
		_, ids := log.snapshot()
		return len(ids) >= 3
	})
	// A shopper ready to check out when Redis dies.
	probe := &shop{e: e}
	if r := probe.newSession(); r.status != http.StatusCreated {
		t.Fatalf("probe session: %d %s", r.status, r.body)
	}
	if r := probe.add(variantA, 1); r.status >= 300 {
		t.Fatalf("probe cart: %d %s", r.status, r.body)
	}

	e.redis.Kill()
	downAt := time.Now()
	probes := 0
	for time.Since(downAt) < 1500*time.Millisecond {
		r := log.timed("redis", "probe-checkout", probe.startCheckout)
		probes++
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Errorf("checkout with Redis down: %d (Retry-After %q) %s, want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	upAt := time.Now() // the window [downAt, upAt] is the outage
	e.redis.Start()
	back := time.Now()

	// Reservations succeed again within 5 s of Redis's return (its script cache is empty).
	var recovered time.Duration
	for {
		s := &shop{e: e, variant: variantA}
		if r := s.newSession(); r.status == http.StatusCreated {
			if r := s.add(variantA, 1); r.status < 300 {
				if r := s.startCheckout(); r.status == http.StatusCreated {
					recovered = time.Since(back)
					log.completed(s, s.complete())
					break
				}
			}
		}
		if time.Since(back) > 5*time.Second {
			t.Fatalf("no reservation succeeded within 5 s of Redis's return")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("reservations recovered %v after Redis answered again", recovered.Round(time.Millisecond))

	// A flash sale on a fresh scarce variant after the restart, alongside the load: every
	// shopper has it in the cart (the soft check passes: stock remains), then all check out
	// at once. The reservation alone decides: exactly flash checkouts get 201, every one
	// of them completes, the rest get 409 at checkout.
	const flash, flashShoppers = 3, 12
	_, variantC := e.createProduct(flash)
	flashShops := make([]*shop, flashShoppers)
	for i := range flashShops {
		s := &shop{e: e, variant: variantC}
		if r := s.newSession(); r.status != http.StatusCreated {
			t.Fatalf("flash session: %d %s", r.status, r.body)
		}
		if r := s.add(variantC, 1); r.status != http.StatusOK {
			t.Fatalf("flash cart: %d %s", r.status, r.body)
		}
		flashShops[i] = s
	}
	var flashWG sync.WaitGroup
	var held atomic.Int64
	gate := make(chan struct{})
	for _, s := range flashShops {
		flashWG.Add(1)
		go func() {
			defer flashWG.Done()
			<-gate
			r := s.startCheckout()
			switch r.status {
			case http.StatusCreated:
				held.Add(1)
				r := s.complete()
				if r.status != http.StatusOK {
					t.Errorf("flash completion after a 201: %d %s", r.status, r.body)
				}
				log.completed(s, r)
			case http.StatusConflict:
			default:
				t.Errorf("flash checkout: %d %s", r.status, r.body)
			}
		}()
	}
	close(gate)
	flashWG.Wait()
	if held.Load() != flash {
		t.Errorf("flash sale of %d units to %d shoppers: %d checkouts held stock, want exactly %d", flash, flashShoppers, held.Load(), flash)
	}
	time.Sleep(300 * time.Millisecond) // a little load after recovery
	stop()
	wg.Wait()

	// Shoppers interrupted mid-completion finish now (same idempotency key).
	pending.Range(func(k, _ any) bool {
		s := k.(*shop)
		log.completed(s, s.complete())
		return true
	})

	events, orders := log.snapshot()
	var inWindow, catalogInWindow, fiveHundreds int
	var slowestDown, slowestCatalog time.Duration // answers to requests that started in the outage
	for _, ev := range events {
		if ev.start.After(downAt) && ev.start.Before(upAt) {
			if d := ev.end.Sub(ev.start); ev.kind == "catalog" {
				slowestCatalog = max(slowestCatalog, d)
			} else {
				slowestDown = max(slowestDown, d)
			}
		}
		if ev.status >= 500 && ev.status != http.StatusServiceUnavailable {
			fiveHundreds++
			t.Errorf("%s %s answered %d", ev.kind, ev.what, ev.status)
		}
		during := ev.start.After(downAt) && ev.end.Before(upAt)
		switch {
		case ev.kind == "catalog":
			if ev.status != http.StatusOK {
				t.Errorf("catalog read %s answered %d (Redis down: %v)", ev.what, ev.status, during)
			}
			if during {
				catalogInWindow++
			}
		case during:
			inWindow++
			if ev.status != http.StatusServiceUnavailable || ev.retryAfter == "" {
				t.Errorf("%s while Redis was down answered %d (Retry-After %q), want 503 with Retry-After", ev.what, ev.status, ev.retryAfter)
			}
		}
	}
	if inWindow == 0 || catalogInWindow == 0 || probes == 0 {
		t.Fatalf("the outage saw %d Redis-backed and %d catalog requests: nothing was proven", inWindow, catalogInWindow)
	}
	if n := e.ordersExist(orders); n != len(orders) {
		t.Errorf("%d orders confirmed to shoppers, %d in PostgreSQL: orders were lost", len(orders), n)
	}
	// An order may exist that its shopper never heard of: its completion answered 503 and
	// the session that could have asked again died with Redis. Report, do not fail.
	unconfirmed := e.orderCount() - len(orders)
	// A promise broken: 201 at checkout, then 409 or 410 at completion. With stock to spare
	// (A) or after Redis's return (C) it must never happen. The one allowed case is the
	// documented window (internal/inventory/doc.go, README Operating): Redis lost the
	// holds, so a scarce variant's units held before the outage could be reserved again by
	// someone else and the first holder's completion cannot re-take them. So only B
	// shoppers whose hold existed when Redis died may be here.
	log.mu.Lock()
	broken := append([]brokenPromise(nil), log.broken...)
	log.mu.Unlock()
	inWindowB, stuckCompleting := 0, 0
	for _, b := range broken {
		if b.variant == variantB && b.heldAt.Before(downAt) {
			inWindowB++
			continue
		}
		// A completion in flight when Redis died leaves its checkout in completing until
		// the recovery job reverts it (checkout.Options.StaleAfter); meanwhile complete
		// answers 409 checkout_in_progress ("retry shortly"): delayed, not refused. Such
		// shoppers now keep their session across the Redis loss and so meet this state.
		if b.code == "checkout_in_progress" && b.heldAt.Before(upAt) {
			stuckCompleting++
			continue
		}
		name := map[string]string{variantA: "plentiful A", variantB: "scarce B", variantC: "flash C"}[b.variant]
		t.Errorf("variant %s: a shopper got 201 at checkout (%v after the restart) and then %d %s at completion",
			name, b.heldAt.Sub(back).Round(time.Millisecond), b.status, b.code)
	}
	e.checkNoOversell(variantA, plenty)
	e.checkNoOversell(variantB, scarce)
	e.checkNoOversell(variantC, flash)
	if soldC, _ := e.sold(variantC); soldC != flash {
		t.Errorf("flash variant: %d sold, want all %d (every hold completes)", soldC, flash)
	}
	e.checkNoScriptLeak()
	soldB, _ := e.sold(variantB)
	t.Logf("%d completions in flight when Redis died wait for checkout recovery (409 checkout_in_progress)", stuckCompleting)
	t.Logf("%d requests (%d Redis-backed and %d catalog reads during the outage), %d orders confirmed (%d more unconfirmed), scarce variant sold %d/%d, %d holds of B lost with Redis and not honoured",
		len(events), inWindow, catalogInWindow, len(orders), unconfirmed, soldB, scarce, inWindowB)
	t.Logf("slowest answer to a request made during the outage: %v Redis-backed (503), %v catalog read (200)",
		slowestDown.Round(time.Millisecond), slowestCatalog.Round(time.Millisecond))
}

// TestChaosStorefrontReadsWithSessionWhileRedisDown: storefronts send X-Session-ID on
// every call, so the matrix line "catalog reads and availability keep answering" must
// hold for them too, not only for anonymous callers: with Redis down the session cannot
// be checked, and a read must not fail for that.
func TestChaosStorefrontReadsWithSessionWhileRedisDown(t *testing.T) {
	e := newChaosEnv(t, chaosOpts{})
	e.requireRoutes("POST /admin/products", "GET /v1/products/{}", "GET /v1/products", "GET /v1/variants/{}/availability")
	product, variant := e.createProduct(5)
	s := &shop{e: e}
	if r := s.newSession(); r.status != http.StatusCreated {
		t.Fatalf("session: %d %s", r.status, r.body)
	}
	reads := []string{"/v1/products/" + product, "/v1/products?per_page=5", "/v1/variants/" + variant + "/availability"}
	for _, p := range reads {
		if r := e.send("GET", p, "", sess(s.sid)); r.status != http.StatusOK {
			t.Fatalf("GET %s with Redis up: %d %s", p, r.status, r.body)
		}
	}
	e.redis.Kill()
	for _, p := range reads {
		if r := e.send("GET", p, "", sess(s.sid)); r.status != http.StatusOK {
			t.Errorf("GET %s with a session and Redis down: %d %s, want 200 from PostgreSQL", p, r.status, r.body)
		}
	}
	if r := e.send("POST", "/v1/cart/items", fmt.Sprintf(`{"variant_id":%q,"quantity":1}`, variant), sess(s.sid)); r.status != http.StatusServiceUnavailable {
		t.Errorf("cart write with Redis down: %d %s, want 503", r.status, r.body)
	}
}

// TestChaosLostReplyAfterReservation: toxiproxy's limit_data cuts Redis's replies after
// K bytes, for K swept across everything a request reads from Redis, so that among the
// cuts are replies lost after a script ran (Redis applied it, the service never heard;
// go-redis may even have sent it again on a new connection). Whatever the cut, the
// service answers 503 or a contract 4xx, never 500. Checkouts: a retry with the same
// idempotency key settles each one, and after a reconcile there is no drift and no unit
// is sold twice. Cart adds: one request never adds its quantity twice.
func TestChaosLostReplyAfterReservation(t *testing.T) {
	e := newChaosEnv(t, chaosOpts{redisProxy: true, mutate: func(c *Config) { c.RedisPoolSize = 1 }})
	e.requireRoutes(append(checkoutRoutes, "GET /v1/cart")...)
	const stock = 1000
	_, variant := e.createProduct(stock)
	direct := e.redis.Client()
	netOut := func() int64 {
		info := direct.Info(context.Background(), "stats").Val()
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
				var n int64
				fmt.Sscan(v, &n)
				return n
			}
		}
		t.Fatal("no total_net_output_bytes in INFO")
		return 0
	}
	// replyBytes is how many bytes act reads from Redis (INFO's own reply subtracted).
	replyBytes := func(act func() answer, want int) int64 {
		t.Helper()
		i0 := netOut()
		before := netOut()
		if r := act(); r.status != want {
			t.Fatalf("calibration: %d %s, want %d", r.status, r.body, want)
		}
		return netOut() - before - (before - i0)
	}
	// sweep runs act with the replies cut after k bytes, for k across span.
	sweep := func(span int64, act func(k int64)) (cuts int) {
		for k := int64(0); k <= span; k += max(1, span/40) {
			act(k)
			cuts++
		}
		return cuts
	}
	cut := func(k int64, fn func() answer) answer {
		name := addToxic(t, e.rproxy, fmt.Sprintf(`{"name":"cut","type":"limit_data","stream":"downstream","attributes":{"bytes":%d}}`, k))
		defer removeToxic(t, e.rproxy, name)
		return fn()
	}
	ready := func(qty int) *shop {
		s := &shop{e: e}
		if r := s.newSession(); r.status != http.StatusCreated {
			t.Fatalf("session: %d %s", r.status, r.body)
		}
		if qty > 0 {
			if r := s.add(variant, qty); r.status >= 300 {
				t.Fatalf("cart: %d %s", r.status, r.body)
			}
		}
		return s
	}

	// Checkouts (reserve, freeze, lock, idempotency record…).
	s := ready(1)
	span := replyBytes(s.startCheckout, http.StatusCreated)
	r := s.complete()
	if r.status != http.StatusOK {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
	confirmed := []string{field(r, "order", "id")}
	var unavailable, blocked int
	cuts := sweep(span, func(k int64) {
		s := ready(1)
		r := cut(k, s.startCheckout)
		if r.status == http.StatusServiceUnavailable {
			unavailable++
			// The storefront retries with the same key. A lost reply may leave the key "in
			// flight" or the cart locked by an attempt that died (409 until their TTLs run
			// out): a safe refusal, after which this shopper gives up.
			for i := 0; r.status == http.StatusServiceUnavailable || r.status == http.StatusConflict; i++ {
				if r.status == http.StatusServiceUnavailable && i > 50 {
					t.Fatalf("cut at %d bytes: checkout still 503 with Redis healthy: %s", k, r.body)
				}
				if r.status == http.StatusConflict && i > 20 {
					blocked++
					return
				}
				time.Sleep(10 * time.Millisecond)
				r = s.startCheckout()
			}
		}
		if r.status >= 500 {
			t.Fatalf("cut at %d bytes: checkout answered %d %s", k, r.status, r.body)
		}
		if s.checkout == "" {
			return
		}
		r = s.complete()
		if r.status >= 500 {
			t.Fatalf("cut at %d bytes: complete answered %d %s", k, r.status, r.body)
		}
		if r.status == http.StatusOK {
			confirmed = append(confirmed, field(r, "order", "id"))
		}
	})
	if unavailable == 0 {
		t.Fatalf("%d cuts and none made a checkout fail: the toxic did not bite", cuts)
	}
	if n := e.ordersExist(confirmed); n != len(confirmed) {
		t.Errorf("%d orders confirmed, %d in PostgreSQL", len(confirmed), n)
	}
	sold, _ := e.sold(variant)
	if sold != int64(len(confirmed)) {
		t.Errorf("%d units sold for %d one-unit orders: a unit was sold twice or an order lost", sold, len(confirmed))
	}
	e.checkNoOversell(variant, stock)
	t.Logf("checkout: %d cuts over %d reply bytes, %d hit a lost reply (%d left blocked by 409 until a TTL), %d orders",
		cuts, span, unavailable, blocked, len(confirmed))

	// Cart adds: one request adds its quantity once, whatever reply is lost.
	s = ready(0)
	addSpan := replyBytes(func() answer { return s.add(variant, 1) }, http.StatusOK)
	var addFailures int
	cuts = sweep(addSpan, func(k int64) {
		s := ready(0)
		r := cut(k, func() answer { return s.add(variant, 1) })
		if r.status >= 500 && r.status != http.StatusServiceUnavailable {
			t.Fatalf("cut at %d bytes: add answered %d %s", k, r.status, r.body)
		}
		if r.status == http.StatusServiceUnavailable {
			addFailures++
		}
		var got answer
		for i := 0; ; i++ { // the session's own Redis keys may need a moment after the cut
			if got = e.send("GET", "/v1/cart", "", sess(s.sid)); got.status != http.StatusServiceUnavailable || i > 50 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		var cart struct {
			Lines []struct {
				Quantity int `json:"quantity"`
			} `json:"lines"`
		}
		if err := json.Unmarshal(got.body, &cart); err != nil || got.status != http.StatusOK {
			t.Fatalf("cut at %d bytes: cart: %d %s", k, got.status, got.body)
		}
		qty := 0
		for _, l := range cart.Lines {
			qty += l.Quantity
		}
		if qty > 1 || (r.status == http.StatusOK && qty != 1) {
			t.Errorf("cut at %d bytes: add of 1 answered %d and the cart holds %d units", k, r.status, qty)
		}
	})
	if addFailures == 0 {
		t.Fatalf("%d cuts and no cart add failed: the toxic did not bite", cuts)
	}
	e.checkNoScriptLeak()
	t.Logf("cart add: %d cuts over %d reply bytes, %d answered 503", cuts, addSpan, addFailures)
}

// TestChaosPostgresDownForTwoSeconds: the PostgreSQL proxy goes away for 2 s while
// shoppers complete checkouts and an operator restocks. Every answer is 2xx or 503 with
// Retry-After (never 500); every 2xx write is committed; afterwards each checkout
// completes exactly once.
func TestChaosPostgresDownForTwoSeconds(t *testing.T) {
	e := newChaosEnv(t, chaosOpts{pgProxy: true})
	e.requireRoutes(append(checkoutRoutes, "POST /admin/inventory/{}/adjust")...)
	const stock = 100
	_, variant := e.createProduct(stock)
	shops := make([]*shop, 6)
	for i := range shops {
		s := &shop{e: e}
		s.newSession()
		if r := s.add(variant, 1); r.status >= 300 {
			t.Fatalf("cart: %d %s", r.status, r.body)
		}
		if r := s.startCheckout(); r.status != http.StatusCreated {
			t.Fatalf("checkout: %d %s", r.status, r.body)
		}
		shops[i] = s
	}

	type write struct {
		what   string
		status int
		during bool
		ref    string // order id, or the adjust's reason
	}
	var mu sync.Mutex
	var writes []write
	e.pproxy.Stop()
	downAt := time.Now()
	var wg sync.WaitGroup
	var adjustN atomic.Int32
	for i, s := range shops {
		wg.Add(2)
		go func() { // a shopper pays during the outage
			defer wg.Done()
			start := time.Now()
			r := s.complete()
			mu.Lock()
			writes = append(writes, write{"complete", r.status, start.After(downAt), field(r, "order", "id")})
			mu.Unlock()
			if r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
		}()
		go func() { // the operator restocks during the outage
			defer wg.Done()
			reason := fmt.Sprintf("chaos-restock-%d-%d", i, adjustN.Add(1))
			r := e.send("POST", "/admin/inventory/"+variant+"/adjust", fmt.Sprintf(`{"delta":1,"reason":%q}`, reason), admin())
			mu.Lock()
			writes = append(writes, write{"adjust", r.status, true, reason})
			mu.Unlock()
		}()
	}
	wg.Wait()
	if rest := 2*time.Second - time.Since(downAt); rest > 0 {
		time.Sleep(rest) // the outage lasts 2 s
	}
	if err := e.pproxy.Start(); err != nil {
		t.Fatalf("restart PostgreSQL proxy: %v", err)
	}

	var unavailable int
	for _, w := range writes {
		switch {
		case w.status == http.StatusServiceUnavailable:
			unavailable++
		case w.status >= 200 && w.status < 300:
		default:
			t.Errorf("%s during the PostgreSQL outage answered %d, want 2xx or 503", w.what, w.status)
		}
	}
	if unavailable == 0 {
		t.Fatal("no write answered 503 while PostgreSQL was down: the outage was not observed")
	}
	// Every 2xx was committed.
	for _, w := range writes {
		if w.status < 200 || w.status >= 300 {
			continue
		}
		var n int
		q := `SELECT count(*) FROM orders WHERE id::text = $1`
		if w.what == "adjust" {
			q = `SELECT count(*) FROM stock_ledger WHERE reason = $1`
		}
		if err := e.pool.QueryRow(context.Background(), q, w.ref).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%s answered %d but PostgreSQL has %d rows for %q", w.what, w.status, n, w.ref)
		}
	}
	// After the outage every checkout completes, exactly once.
	waitFor(t, 10*time.Second, "PostgreSQL back", func() bool {
		return e.send("GET", "/readyz", "", nil).status == http.StatusOK
	})
	orders := map[string]bool{}
	for _, s := range shops {
		var r answer
		for i := 0; i < 50; i++ {
			if r = s.complete(); r.status != http.StatusServiceUnavailable && r.status != http.StatusConflict {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if r.status != http.StatusOK {
			t.Fatalf("complete after the outage: %d %s", r.status, r.body)
		}
		orders[field(r, "order", "id")] = true
	}
	if len(orders) != len(shops) || e.orderCount() != len(shops) {
		t.Errorf("%d checkouts gave %d distinct orders, %d in PostgreSQL; want one each", len(shops), len(orders), e.orderCount())
	}
	var restocked int64
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM stock_ledger WHERE reason LIKE 'chaos-restock-%'`).Scan(&restocked); err != nil {
		t.Fatal(err)
	}
	e.checkNoOversell(variant, stock+restocked)
	t.Logf("%d writes during the outage, %d answered 503", len(writes), unavailable)
}

// TestChaosRedisLatency: every Redis reply is delayed 10 s. Requests answer within the
// configured timeouts instead of hanging: Redis-backed ones 503 with Retry-After, catalog
// reads 200 from PostgreSQL; once the latency goes, carts work again.
func TestChaosRedisLatency(t *testing.T) {
	e := newChaosEnv(t, chaosOpts{redisProxy: true})
	e.requireRoutes(append(checkoutRoutes, "GET /v1/products/{}", "GET /v1/variants/{}/availability", "GET /v1/cart")...)
	product, variant := e.createProduct(10)
	s := &shop{e: e}
	s.newSession()
	if r := s.add(variant, 1); r.status >= 300 {
		t.Fatalf("cart: %d %s", r.status, r.body)
	}
	name := addToxic(t, e.rproxy, `{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":10000}}`)
	// A hang would last the 10 s of the toxic; the service's own bound is a few Redis
	// timeouts (300 ms each here) plus PostgreSQL's.
	const bound = 5 * time.Second
	tests := []struct {
		what, method, path, body string
		h                        map[string]string
		want                     int
	}{
		{"product", "GET", "/v1/products/" + product, "", nil, 200},
		{"availability", "GET", "/v1/variants/" + variant + "/availability", "", nil, 200},
		{"listing", "GET", "/v1/products", "", nil, 200},
		{"cart", "GET", "/v1/cart", "", sess(s.sid), 503},
		{"add", "POST", "/v1/cart/items", fmt.Sprintf(`{"variant_id":%q,"quantity":1}`, variant), sess(s.sid), 503},
		{"checkout", "POST", "/v1/checkouts", `{}`, sess(s.sid), 503},
		{"session", "POST", "/v1/sessions", "", nil, 503},
	}
	var wg sync.WaitGroup
	for _, tt := range tests {
		for i := 0; i < 3; i++ { // concurrent callers share the slow pool
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				r := e.send(tt.method, tt.path, tt.body, tt.h)
				took := time.Since(start)
				if took > bound {
					t.Errorf("%s took %v with Redis slow: it hung instead of timing out", tt.what, took)
				}
				if r.status != tt.want {
					t.Errorf("%s with Redis slow: %d %s, want %d", tt.what, r.status, r.body, tt.want)
				}
				if r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
					t.Errorf("%s: 503 without Retry-After", tt.what)
				}
			}()
		}
	}
	wg.Wait()
	removeToxic(t, e.rproxy, name)
	waitFor(t, 10*time.Second, "carts back after the latency", func() bool {
		return e.send("GET", "/v1/cart", "", sess(s.sid)).status == http.StatusOK
	})
	e.checkNoScriptLeak()
}

// TestChaosReadinessAndSessions: /readyz reports each dependency on its own, sessions
// (Redis) answer 503 with Retry-After while Redis is down or slow and recover by
// themselves, /healthz stays 200 throughout.
func TestChaosReadinessAndSessions(t *testing.T) {
	e := newChaosEnv(t, chaosOpts{redisProxy: true, pgProxy: true})
	type dep struct {
		OK bool `json:"ok"`
	}
	ready := func() (int, dep, dep) {
		r := e.send("GET", "/readyz", "", nil)
		var body struct{ Postgres, Redis dep }
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatalf("readyz: %d: %v: %s", r.status, err, r.body)
		}
		return r.status, body.Postgres, body.Redis
	}
	expect := func(phase string, wantReady, pgOK, redisOK bool, wantSession int) {
		t.Helper()
		status, pg, rd := ready()
		if (status == 200) != wantReady || pg.OK != pgOK || rd.OK != redisOK {
			t.Errorf("%s: /readyz %d postgres=%v redis=%v, want ready=%v postgres=%v redis=%v", phase, status, pg.OK, rd.OK, wantReady, pgOK, redisOK)
		}
		if r := e.send("GET", "/healthz", "", nil); r.status != 200 {
			t.Errorf("%s: /healthz %d", phase, r.status)
		}
		r := e.send("POST", "/v1/sessions", "", nil)
		if r.status != wantSession {
			t.Errorf("%s: POST /v1/sessions %d %s, want %d", phase, r.status, r.body, wantSession)
		}
		if r.status == 503 && r.header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", phase)
		}
	}
	expect("healthy", true, true, true, 201)

	e.redis.Kill()
	expect("Redis killed", false, true, false, 503)
	e.redis.Start()
	waitFor(t, 5*time.Second, "sessions after Redis's return", func() bool {
		return e.send("POST", "/v1/sessions", "", nil).status == http.StatusCreated
	})
	expect("Redis back", true, true, true, 201)

	name := addToxic(t, e.rproxy, `{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":10000}}`)
	start := time.Now()
	expect("Redis slow", false, true, false, 503)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("requests with Redis slow took %v: they hung instead of timing out", took)
	}
	removeToxic(t, e.rproxy, name)
	waitFor(t, 5*time.Second, "sessions after the latency", func() bool {
		return e.send("POST", "/v1/sessions", "", nil).status == http.StatusCreated
	})

	e.pproxy.Stop()
	expect("PostgreSQL gone", false, false, true, 201)
	if err := e.pproxy.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "readiness after PostgreSQL's return", func() bool {
		s, _, _ := ready()
		return s == http.StatusOK
	})
}

// waitFor polls cond every 10 ms until it holds or d passes (then the test fails).
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
