package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Shopper helpers --------------------------------------------------------------------

type sessionResp struct {
	SessionID string `json:"session_id"`
}

// newSession creates an anonymous session and returns its id.
func newSession(ctx context.Context, c *Client) (string, int, error) {
	r, err := c.Do(ctx, http.MethodPost, "/v1/sessions", nil)
	if err != nil {
		return "", 0, err
	}
	if err := r.Expect(http.StatusCreated); err != nil {
		return "", r.Status, fmt.Errorf("POST /v1/sessions: %w", err)
	}
	var s sessionResp
	if err := r.Decode(&s); err != nil {
		return "", r.Status, err
	}
	if s.SessionID == "" {
		return "", r.Status, errors.New("POST /v1/sessions: no session_id")
	}
	return s.SessionID, r.Status, nil
}

type addItem struct {
	VariantID string `json:"variant_id"`
	Quantity  int64  `json:"quantity"`
}

type setQty struct {
	Quantity int64 `json:"quantity"`
}

// addToCart adds qty units of variant to the session's cart.
func addToCart(ctx context.Context, c *Client, sid string, variant uuid.UUID, qty int64) (int, error) {
	r, err := c.Do(ctx, http.MethodPost, "/v1/cart/items", addItem{VariantID: variant.String(), Quantity: qty},
		"X-Session-ID", sid)
	if err != nil {
		return 0, err
	}
	if err := r.Expect(http.StatusOK, http.StatusCreated); err != nil {
		return r.Status, fmt.Errorf("POST /v1/cart/items: %w", err)
	}
	return r.Status, nil
}

type checkoutResp struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

// makeShoppers creates n sessions, each with qty units of variant in its cart, from
// concurrency workers, and returns their ids (in creation order).
func makeShoppers(ctx context.Context, c *Client, name string, n, concurrency int, variant uuid.UUID) ([]string, Result, error) {
	sids := make([]string, n)
	res, err := Drive(ctx, Load{Name: name, Concurrency: concurrency, MaxOps: int64(n)},
		func(ctx context.Context, _ int, i int64) (int, error) {
			sid, st, err := newSession(ctx, c)
			if err != nil {
				return st, err
			}
			st, err = addToCart(ctx, c, sid, variant, 1)
			if err == nil {
				sids[i] = sid
			}
			return st, err
		})
	res.Note = "setup: POST /v1/sessions + POST /v1/cart/items per shopper (one operation = two requests)"
	if err != nil {
		return nil, res, err
	}
	if res.Errors > 0 {
		return nil, res, fmt.Errorf("%s: %d of %d shoppers failed: %v", name, res.Errors, n, res.ErrorSamples)
	}
	return sids, res, nil
}

// Flash sale ------------------------------------------------------------------------

// FlashSale is the outcome of the flash-sale scenario and its verification.
type FlashSale struct {
	Shoppers  int    `json:"shoppers"`
	Stock     int64  `json:"stock"`
	Created   int64  `json:"created_201"`
	SoldOut   int64  `json:"sold_out_409"`
	Other     int64  `json:"other"`
	Variant   string `json:"variant_id"`
	OnHand    *int64 `json:"admin_on_hand,omitempty"`
	Held      *int64 `json:"admin_held,omitempty"`
	Available *int64 `json:"admin_available,omitempty"`
	OK        bool   `json:"ok"`
	Detail    string `json:"detail"`
}

// checkoutAll has every shopper POST /v1/checkouts once, concurrently, and counts the
// outcomes: 201 created, 409 insufficient_stock, anything else.
func checkoutAll(ctx context.Context, c *Client, name string, sids []string, concurrency int) (Result, []string, [3]int64, error) {
	var mu sync.Mutex
	var counts [3]int64
	ids := make([]string, 0, len(sids))
	res, err := Drive(ctx, Load{Name: name, Concurrency: concurrency, MaxOps: int64(len(sids))},
		func(ctx context.Context, _ int, i int64) (int, error) {
			r, err := c.Do(ctx, http.MethodPost, "/v1/checkouts", "{}", "X-Session-ID", sids[i])
			if err != nil {
				mu.Lock()
				counts[2]++
				mu.Unlock()
				return 0, err
			}
			switch {
			case r.Status == http.StatusCreated:
				var co checkoutResp
				err = r.Decode(&co)
				mu.Lock()
				counts[0]++
				if co.ID != "" {
					ids = append(ids, co.ID)
				}
				mu.Unlock()
				return r.Status, err
			case r.Status == http.StatusConflict && r.ErrorCode() == "insufficient_stock":
				mu.Lock()
				counts[1]++
				mu.Unlock()
				return r.Status, nil
			}
			mu.Lock()
			counts[2]++
			mu.Unlock()
			return r.Status, fmt.Errorf("POST /v1/checkouts: %w", r.Expect(http.StatusCreated))
		})
	return res, ids, counts, err
}

type adminInventory struct {
	OnHand    int64 `json:"on_hand"`
	Available int64 `json:"available"`
	Held      int64 `json:"held"`
}

// verifyFlashSale checks the counts against the stock and, when the admin inventory route
// is wired, that Redis and PostgreSQL agree: on_hand = stock, held = stock, available = 0.
func (f *FlashSale) verify(ctx context.Context, e *Env) {
	f.OK = f.Created == f.Stock && f.SoldOut == int64(f.Shoppers)-f.Stock && f.Other == 0
	f.Detail = fmt.Sprintf("stock %d, shoppers %d: %d × 201, %d × 409 insufficient_stock, %d other",
		f.Stock, f.Shoppers, f.Created, f.SoldOut, f.Other)
	if !e.HasRoute(http.MethodGet, "/admin/inventory/:variant_id") {
		f.Detail += "; GET /admin/inventory not wired, holds not cross-checked"
		return
	}
	r, err := e.Client.AdminDo(ctx, http.MethodGet, "/admin/inventory/"+f.Variant, nil)
	if err == nil {
		err = r.Expect(http.StatusOK)
	}
	var inv adminInventory
	if err == nil {
		err = r.Decode(&inv)
	}
	if err != nil {
		f.OK = false
		f.Detail += "; admin inventory: " + err.Error()
		return
	}
	f.OnHand, f.Held, f.Available = &inv.OnHand, &inv.Held, &inv.Available
	holdsOK := inv.OnHand == f.Stock && inv.Held == f.Stock && inv.Available == 0
	f.OK = f.OK && holdsOK
	f.Detail += fmt.Sprintf("; admin inventory: on_hand %d, held %d, available %d", inv.OnHand, inv.Held, inv.Available)
}

// Zipf keys ----------------------------------------------------------------------------

// zipfPicker draws indexes in [0, n) with a Zipf distribution (s = 1.1, v = 1): index 0
// is the most popular. One per worker (not safe for concurrent use).
type zipfPicker struct{ z *rand.Zipf }

func newZipf(n int, seed uint64) zipfPicker {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return zipfPicker{z: rand.NewZipf(r, 1.1, 1, uint64(n-1))}
}

func (p zipfPicker) next() int { return int(p.z.Uint64()) }

// productGets returns an Op reading /v1/products/{id} for Zipf-chosen products.
func productGets(c *Client, paths []string, concurrency int, seed uint64) Op {
	pickers := make([]zipfPicker, concurrency)
	for w := range pickers {
		pickers[w] = newZipf(len(paths), seed+uint64(w))
	}
	return func(ctx context.Context, w int, _ int64) (int, error) {
		r, err := c.Do(ctx, http.MethodGet, paths[pickers[w].next()], nil)
		if err != nil {
			return 0, err
		}
		return r.Status, r.Expect(http.StatusOK)
	}
}

// Cart churn ------------------------------------------------------------------------------

// churnCart is a cart owned by one worker, with the worker's view of its lines.
type churnCart struct {
	sid   string
	lines map[uuid.UUID]int64
	order []uuid.UUID
}

func (c *churnCart) remove(v uuid.UUID) {
	delete(c.lines, v)
	for i, x := range c.order {
		if x == v {
			c.order = append(c.order[:i], c.order[i+1:]...)
			return
		}
	}
}

// cartChurn returns an Op that, on one of the worker's own carts, adds a line (or a unit),
// sets a line's quantity, or removes a line, about 40/30/30. Each worker owns its carts,
// so its view of them stays exact and every request is expected to succeed.
// churnMaxLines is the most lines a churn cart holds: adds (40 %) outnumber removes
// (30 %), so carts grow towards it (about 14 lines on average at the end of a full run).
const churnMaxLines = 20

func cartChurn(c *Client, carts [][]*churnCart, variants []uuid.UUID, seed uint64) Op {
	rngs := make([]*rand.Rand, len(carts))
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(seed, uint64(w)))
	}
	return func(ctx context.Context, w int, _ int64) (int, error) {
		rng := rngs[w]
		cart := carts[w][rng.IntN(len(carts[w]))]
		roll := rng.IntN(100)
		var r Response
		var err error
		switch {
		case len(cart.order) == 0 || (roll < 40 && len(cart.order) < churnMaxLines):
			v := variants[rng.IntN(len(variants))]
			if cart.lines[v] >= 90 {
				v = variants[rng.IntN(len(variants))]
			}
			r, err = c.Do(ctx, http.MethodPost, "/v1/cart/items", addItem{VariantID: v.String(), Quantity: 1}, "X-Session-ID", cart.sid)
			if err == nil && r.Status == http.StatusOK {
				if _, ok := cart.lines[v]; !ok {
					cart.order = append(cart.order, v)
				}
				cart.lines[v]++
			}
		case roll < 70:
			v := cart.order[rng.IntN(len(cart.order))]
			q := int64(1 + rng.IntN(5))
			r, err = c.Do(ctx, http.MethodPut, "/v1/cart/items/"+v.String(), setQty{Quantity: q}, "X-Session-ID", cart.sid)
			if err == nil && r.Status == http.StatusOK {
				cart.lines[v] = q
			}
		default:
			v := cart.order[rng.IntN(len(cart.order))]
			r, err = c.Do(ctx, http.MethodDelete, "/v1/cart/items/"+v.String(), nil, "X-Session-ID", cart.sid)
			if err == nil && r.Status == http.StatusOK {
				cart.remove(v)
			}
		}
		if err != nil {
			return 0, err
		}
		return r.Status, r.Expect(http.StatusOK)
	}
}

// Full journey ------------------------------------------------------------------------

// journeySteps names the four requests of a journey, in order.
var journeySteps = [4]string{"POST /v1/sessions", "POST /v1/cart/items", "POST /v1/checkouts", "POST /v1/checkouts/{id}/complete"}

type completeReq struct {
	PaymentToken string `json:"payment_token"`
}

// journey returns an Op doing session → add → checkout → complete, recording each step's
// latency in steps[worker][step].
func journey(c *Client, variants []uuid.UUID, steps [][4][]time.Duration, seed uint64) Op {
	rngs := make([]*rand.Rand, len(steps))
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(seed, uint64(w)+7))
	}
	return func(ctx context.Context, w int, i int64) (int, error) {
		record := func(step int, t time.Time) {
			if i >= 0 {
				steps[w][step] = append(steps[w][step], time.Since(t))
			}
		}
		t := time.Now()
		sid, st, err := newSession(ctx, c)
		if err != nil {
			return st, err
		}
		record(0, t)
		t = time.Now()
		if st, err = addToCart(ctx, c, sid, variants[rngs[w].IntN(len(variants))], 1); err != nil {
			return st, err
		}
		record(1, t)
		t = time.Now()
		r, err := c.Do(ctx, http.MethodPost, "/v1/checkouts", "{}", "X-Session-ID", sid, "Idempotency-Key", uuid.NewString())
		if err != nil {
			return 0, err
		}
		if err := r.Expect(http.StatusCreated); err != nil {
			return r.Status, fmt.Errorf("POST /v1/checkouts: %w", err)
		}
		var co checkoutResp
		if err := r.Decode(&co); err != nil {
			return r.Status, err
		}
		record(2, t)
		t = time.Now()
		r, err = c.Do(ctx, http.MethodPost, "/v1/checkouts/"+co.ID+"/complete", completeReq{PaymentToken: "tok_ok"},
			"X-Session-ID", sid, "Idempotency-Key", uuid.NewString())
		if err != nil {
			return 0, err
		}
		if err := r.Expect(http.StatusOK); err != nil {
			return r.Status, fmt.Errorf("complete: %w", err)
		}
		record(3, t)
		return r.Status, nil
	}
}
