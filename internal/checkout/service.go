package checkout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/prometheus/client_golang/prometheus"

	"commerce/internal/payment"
	"commerce/internal/platform/auth"
	"commerce/internal/platform/db"
	"commerce/internal/platform/fault"
	"commerce/internal/platform/idempotency"
	"commerce/internal/platform/money"
	"commerce/internal/platform/rkey"
)

// detachedTimeout bounds the work a request finishes after its caller went away: a
// checkout is never left half-created or half-completed because a client hung up.
const detachedTimeout = 30 * time.Second

// batch is the number of rows the background methods handle per query.
const batch = 100

// Service runs checkouts and serves orders. It is safe for concurrent use by many
// goroutines and many replicas: every coordination lives in Redis or PostgreSQL.
type Service struct {
	st      store
	r       *redisSide
	inv     Inventory
	carts   Carts
	cat     Catalog
	pricing Pricing
	pay     PaymentProvider
	opts    Options
	log     *slog.Logger
	m       *metrics
	hashTTL time.Duration
	idem    *idempotency.Store

	// hook, when set (tests only), is called at the named points of a creation or a
	// completion (tests end a crash child process there).
	hook func(point string)
}

// Points of a creation or a completion where a test hook runs.
const (
	hookCreateAfterInsert  = "create_after_insert"  // row reserving, cart frozen, nothing held
	hookCreateAfterReserve = "create_after_reserve" // every line held, no payment intent
	hookAfterClaim         = "after_claim"          // checkout is completing in PostgreSQL, nothing charged
	hookAfterPayment       = "after_payment"        // payment succeeded and recorded, stock not committed
	hookAfterCommit        = "after_commit"         // order and stock committed, Redis not yet confirmed
	hookAfterConfirm       = "after_confirm"        // Redis confirmed completed, cart not yet cleared
)

// NewService returns a checkout service. pricing may be nil (no discounts), pay nil (the
// built-in TestProvider), reg nil (metrics not registered). Call LoadScripts at start.
func NewService(pool *pgxpool.Pool, rdb redis.UniversalClient, space rkey.Space, inv Inventory, carts Carts,
	cat Catalog, pricing Pricing, pay PaymentProvider, reg prometheus.Registerer, opts Options) (*Service, error) {
	if pool == nil || rdb == nil || inv == nil || carts == nil || cat == nil {
		return nil, errors.New("checkout: pool, redis, inventory, carts and catalog are required")
	}
	opts = opts.withDefaults()
	if !money.ValidCurrency(opts.Currency) {
		return nil, fmt.Errorf("checkout: invalid currency %q", opts.Currency)
	}
	if pricing == nil {
		pricing = noDiscounts{}
	}
	if pay == nil {
		pay = NewTestProvider()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	idem := opts.Idempotency
	if idem == nil {
		idem = idempotency.New(rdb, space, reg, idempotency.Options{TTL: opts.IdemTTL,
			InFlightTTL: opts.IdemInFlightTTL, Logger: opts.Logger})
	}
	rs := newRedisSide(rdb, space)
	rs.maxLen = opts.EventsMaxLen
	return &Service{st: store{pool: pool}, r: rs, inv: inv, carts: carts, cat: cat,
		pricing: pricing, pay: pay, opts: opts, log: opts.Logger, m: m,
		hashTTL: opts.CheckoutTTL + 24*time.Hour, idem: idem}, nil
}

// LoadScripts loads the Lua scripts into Redis (they are also loaded lazily; an error
// here means Redis is unreachable and the caller may go on).
func (s *Service) LoadScripts(ctx context.Context) error { return s.r.loadScripts(ctx) }

// Options returns the effective options (defaults filled in).
func (s *Service) Options() Options { return s.opts }

func (s *Service) at(point string) {
	if s.hook != nil {
		s.hook(point)
	}
}

// noDiscounts prices without discount rules.
type noDiscounts struct{}

func (noDiscounts) Price(_ context.Context, lines []PriceLine, _ string, currency string) (Priced, error) {
	p := Priced{Subtotal: money.Zero(currency), DiscountTotal: money.Zero(currency)}
	for _, l := range lines {
		var err error
		if p.Subtotal, err = p.Subtotal.Add(l.UnitPrice.Mul(l.Quantity)); err != nil {
			return Priced{}, err
		}
	}
	p.Total = p.Subtotal
	return p, nil
}

// unavailable marks a Redis or PostgreSQL failure as "dependency down" for the error funnel.
func unavailable(err error) error {
	if err == nil || errors.Is(err, fault.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", fault.ErrUnavailable, err)
}

// stateError says a transition did not run because of the checkout's current state
// (busy: another transition is in flight).
type stateError struct {
	state State
	busy  bool
}

func (e *stateError) Error() string {
	if e.busy {
		return "checkout: another transition is in flight (state " + string(e.state) + ")"
	}
	return "checkout: state is " + string(e.state)
}

// Is makes a stateError match ErrConflict, or ErrInProgress when busy.
func (e *stateError) Is(target error) bool {
	if e.busy {
		return target == ErrInProgress
	}
	return target == ErrConflict
}

// transition runs from → to on the checkout at version expect (as the caller read it):
// the Redis compare-and-set claims it, apply writes the
// PostgreSQL half (a conditional UPDATE from `from` at version-1 to `to` at version, or
// errStale), and the Redis claim is confirmed. When apply fails the claim is undone from
// the PostgreSQL row. It returns the new version. Errors: ErrInvalidTransition;
// *stateError (the state is not `from`, or another transition is in flight); apply's
// error; a Redis failure (unavailable).
func (s *Service) transition(ctx context.Context, id uuid.UUID, from, to State, expect int64,
	apply func(ctx context.Context, version int64) error) (int64, error) {
	if !CanTransition(from, to) {
		return 0, fmt.Errorf("%w: %s → %s", ErrInvalidTransition, from, to)
	}
	for attempt := 0; ; attempt++ {
		res, err := s.r.claim(ctx, id, from, to, expect, s.opts.ClaimLease, s.hashTTL)
		if err != nil {
			return 0, err
		}
		switch res.code {
		case claimLoadRequired:
			if attempt >= 3 {
				return 0, fmt.Errorf("checkout %s: state hash keeps missing", id)
			}
			if _, err := s.reload(ctx, id, 0); err != nil {
				return 0, err
			}
			continue
		case claimBusy:
			return 0, &stateError{state: res.state, busy: true}
		case claimMismatch:
			if res.version < expect && attempt < 3 {
				// The hash is behind the row the caller read: bring it forward, claim again.
				if _, err := s.reload(ctx, id, 0); err != nil {
					return 0, err
				}
				continue
			}
			return 0, &stateError{state: res.state}
		case claimOK:
		default:
			return 0, fmt.Errorf("checkout %s: transition: unknown code %q", id, res.code)
		}
		v := res.version
		err = apply(ctx, v)
		if err == nil {
			if cerr := s.r.confirmClaim(ctx, id, v); cerr != nil {
				// The claim lapses after the lease and the hash is rebuilt from PostgreSQL.
				s.log.Warn("checkout: confirm transition", slog.String("checkout", id.String()),
					slog.String("error", cerr.Error()))
			}
			s.m.transitions.WithLabelValues(string(from), string(to)).Inc()
			return v, nil
		}
		row, gerr := s.reload(ctx, id, v)
		if errors.Is(err, errStale) && gerr == nil {
			if row.State == from && row.Version == expect && attempt < 3 {
				continue // Redis was behind the row: the hash is fresh now, claim again
			}
			return 0, &stateError{state: row.State}
		}
		return 0, err
	}
}

// reload writes the PostgreSQL row's state over the Redis hash (undoing the caller's own
// pending claim when claim > 0) and returns the row.
func (s *Service) reload(ctx context.Context, id uuid.UUID, claim int64) (Checkout, error) {
	c, err := s.st.get(ctx, id)
	if err != nil {
		return Checkout{}, err
	}
	if err := s.r.loadHash(ctx, id, c.State, c.Version, claim, s.opts.ClaimLease, s.hashTTL); err != nil {
		return c, err
	}
	return c, nil
}

// cas returns the apply function of a plain transition: the conditional UPDATE with ch.
func (s *Service) cas(id uuid.UUID, from, to State, ch change) func(context.Context, int64) error {
	return func(ctx context.Context, v int64) error { return s.st.cas(ctx, s.st.pool, id, from, to, v, ch) }
}

// detach returns a context that outlives the caller's cancellation, bounded in time.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
}

func stockLines(ls []Line) []StockLine {
	out := make([]StockLine, len(ls))
	for i, l := range ls {
		out[i] = StockLine{VariantID: l.VariantID, Quantity: l.Quantity}
	}
	return out
}

func variantIDs(ls []Line) []uuid.UUID {
	out := make([]uuid.UUID, len(ls))
	for i, l := range ls {
		out[i] = l.VariantID
	}
	return out
}

// ---------------------------------------------------------------------------- create

// Create starts a checkout of owner's cart, or returns the cart's active checkout
// (created false). A new checkout has its cart frozen, its lines priced with the current
// discount ruleset (version recorded), every line held for HoldTTL and a payment intent;
// it is awaiting_payment. Errors: ErrInvalidOwner; ErrCartEmpty; *StockError (nothing is
// left held, the cart is unfrozen); ErrInProgress (another request is creating a checkout
// for this cart); dependency failures wrapped with fault.ErrUnavailable.
func (s *Service) Create(ctx context.Context, owner Owner, email string) (Checkout, bool, error) {
	if err := owner.Validate(); err != nil {
		return Checkout{}, false, err
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	if c, ok, err := s.existing(ctx, owner, false); err != nil || ok {
		return c, false, err
	}
	cartKey := owner.CartKey()
	token, ok, err := s.r.lock(ctx, cartKey, s.opts.LockTTL)
	if err != nil {
		return Checkout{}, false, err
	}
	if !ok {
		s.m.created.WithLabelValues("in_progress").Inc()
		return Checkout{}, false, ErrInProgress
	}
	stopRenew := s.keepLock(ctx, cartKey, token)
	defer func() {
		stopRenew()
		if err := s.r.unlockCart(ctx, cartKey, token); err != nil {
			s.log.Warn("checkout: unlock cart", slog.String("error", err.Error()))
		}
	}()
	// Under the lock: someone may have finished creating one just before we got it, or
	// died while creating one (abandoned here).
	if c, ok, err := s.existing(ctx, owner, true); err != nil || ok {
		return c, false, err
	}
	c, err := s.create(ctx, owner, email)
	if err != nil {
		switch {
		case errors.Is(err, ErrInsufficientStock):
			s.m.created.WithLabelValues("insufficient_stock").Inc()
		case errors.Is(err, ErrCartEmpty):
			s.m.created.WithLabelValues("cart_empty").Inc()
		default:
			s.m.created.WithLabelValues("error").Inc()
		}
		return Checkout{}, false, err
	}
	s.m.created.WithLabelValues("created").Inc()
	return c, true, nil
}

// keepLock renews the per-cart lock every third of LockTTL until the returned stop is
// called, so the lock lives as long as the creation and only LockTTL past a crash.
func (s *Service) keepLock(ctx context.Context, cartKey, token string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.opts.LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			held, err := s.r.renewLock(ctx, cartKey, token, s.opts.LockTTL)
			if err == nil && !held {
				// Another request now owns the cart's creation; the state machine's
				// compare-and-set fences whatever this one still tries to write.
				s.log.Warn("checkout: cart lock lost during a creation")
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// existing returns the cart's active checkout when there is one to hand back. A checkout
// past its expiry is expired on the spot. A checkout still reserving is being created
// by whoever holds the cart's lock: without the lock (locked false) it is left to the
// caller to take the lock (refused while the creator lives); with the lock (locked true)
// its creator is known dead, since a live one renews the lock, and it is abandoned at
// once, so a new one can start: a crashed creation blocks its cart for one LockTTL.
func (s *Service) existing(ctx context.Context, owner Owner, locked bool) (Checkout, bool, error) {
	c, ok, err := s.st.active(ctx, owner.CartKey())
	if err != nil || !ok {
		return Checkout{}, false, err
	}
	switch c.State {
	case StateReserving:
		if !locked {
			// Whoever holds the lock decides: the lock is taken next, or refused.
			return Checkout{}, false, nil
		}
		if _, err := s.finish(ctx, c, StateExpired, change{}); err != nil {
			return Checkout{}, false, ErrInProgress
		}
		return Checkout{}, false, nil
	case StateAwaitingPayment:
		if !c.dbNow.Before(c.ExpiresAt) {
			if _, err := s.finish(ctx, c, StateExpired, change{}); err != nil {
				if errors.Is(err, ErrConflict) || errors.Is(err, ErrInProgress) {
					return Checkout{}, false, ErrInProgress
				}
				return Checkout{}, false, err
			}
			s.m.expired.Inc()
			return Checkout{}, false, nil
		}
	}
	s.m.created.WithLabelValues("existing").Inc()
	return c, true, nil
}

// freeze freezes owner's cart for id. A lock left by a checkout that is over and whose
// cleanup a crash interrupted is finished first (a completed checkout's cart is cleared,
// so its lines are not bought twice); a lock of a checkout that was never stored (a
// request that crashed between freezing and inserting) is cleared.
func (s *Service) freeze(ctx context.Context, owner Owner, id uuid.UUID) (CartSnapshot, error) {
	for attempt := 0; ; attempt++ {
		snap, err := s.carts.Freeze(ctx, owner, id.String())
		var le *CartLockedError
		if attempt > 0 || !errors.As(err, &le) {
			if errors.Is(err, ErrCartLocked) {
				return CartSnapshot{}, ErrInProgress
			}
			return snap, err
		}
		other, perr := uuid.Parse(le.CheckoutID)
		var oc Checkout
		if perr == nil {
			oc, err = s.st.get(ctx, other)
		}
		switch {
		case perr != nil || errors.Is(err, ErrNotFound):
			if err := s.carts.Unfreeze(ctx, owner, le.CheckoutID); err != nil {
				return CartSnapshot{}, err
			}
		case err != nil:
			return CartSnapshot{}, err
		case !oc.State.Final():
			return CartSnapshot{}, ErrInProgress
		default:
			s.cleanup(ctx, oc)
		}
	}
}

func (s *Service) create(ctx context.Context, owner Owner, email string) (Checkout, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Checkout{}, err
	}
	snap, err := s.freeze(ctx, owner, id)
	if err != nil {
		return Checkout{}, err
	}
	unfreeze := func() {
		if err := s.carts.Unfreeze(ctx, owner, id.String()); err != nil {
			s.log.Warn("checkout: unfreeze cart", slog.String("checkout", id.String()), slog.String("error", err.Error()))
		}
	}
	c, err := s.price(ctx, owner, id, email, snap)
	if err != nil {
		unfreeze()
		return Checkout{}, err
	}
	// Sold out is the common answer in a flash sale: give it before writing anything. The
	// figure is soft (the reservation below decides); it only spares a shopper who cannot
	// win the checkout row, its cancellation and the Redis work in between.
	if short := s.shortages(ctx, c.Lines); len(short) > 0 {
		unfreeze()
		return Checkout{}, &StockError{Shortages: short}
	}
	c, err = s.st.insert(ctx, c, s.opts.CheckoutTTL, s.opts.HoldTTL)
	if err != nil {
		unfreeze()
		if errors.Is(err, errActiveExists) {
			return Checkout{}, ErrInProgress
		}
		return Checkout{}, err
	}
	// Best effort: the first transition loads the hash itself when this fails.
	_ = s.r.loadHash(ctx, c.ID, c.State, c.Version, 0, s.opts.ClaimLease, s.hashTTL)
	s.at(hookCreateAfterInsert)

	if err := s.inv.Reserve(ctx, id.String(), stockLines(c.Lines), s.opts.HoldTTL); err != nil {
		s.abandon(ctx, c, !errors.Is(err, ErrInsufficientStock))
		return Checkout{}, err
	}
	s.at(hookCreateAfterReserve)
	pctx, pcancel := providerCtx(ctx)
	// The key is derived from the checkout: a retried creation never opens a second intent.
	intent, err := s.pay.CreateIntent(pctx, payment.CreateParams{CheckoutID: id, Amount: c.Total,
		IdempotencyKey: "checkout-" + id.String() + "-intent"})
	pcancel()
	s.observe("create", err)
	if err == nil {
		err = intent.Verify(c.Total)
	}
	if err != nil {
		s.abandon(ctx, c, true)
		return Checkout{}, unavailable(fmt.Errorf("create payment intent: %w", err))
	}
	status := PaymentStatus(intent.Status)
	if status == "" {
		status = PaymentRequiresPaymentMethod
	}
	secret := intent.ClientSecret
	if _, err := s.transition(ctx, id, StateReserving, StateAwaitingPayment, c.Version, s.cas(id, StateReserving,
		StateAwaitingPayment, change{paymentIntentID: &intent.ID, paymentStatus: &status, clientSecret: &secret})); err != nil {
		s.abandon(ctx, c, true)
		if errors.Is(err, ErrConflict) || errors.Is(err, ErrInProgress) {
			return Checkout{}, ErrInProgress
		}
		return Checkout{}, err
	}
	return s.st.get(ctx, id)
}

// shortages lists the lines that exceed what is available now. When availability cannot
// be read it lists none and leaves the decision to Reserve.
func (s *Service) shortages(ctx context.Context, lines []Line) []Shortage {
	avail, err := s.inv.Available(ctx, variantIDs(lines))
	if err != nil {
		return nil
	}
	var out []Shortage
	for _, l := range lines {
		if a, ok := avail[l.VariantID]; ok && a < l.Quantity {
			out = append(out, Shortage{VariantID: l.VariantID, Requested: l.Quantity, Available: a})
		}
	}
	return out
}

// abandon cancels a checkout that failed while reserving: its holds are released (when
// release, i.e. when some may have been taken) and its cart is unfrozen.
func (s *Service) abandon(ctx context.Context, c Checkout, release bool) {
	if _, err := s.finish(ctx, c, StateCancelled, change{}); err == nil {
		return
	}
	// The transition failed (Redis or PostgreSQL down): undo what we can; Recover cancels
	// the row later, and holds lapse after HoldTTL anyway.
	if release {
		if _, err := s.inv.Release(ctx, c.ID.String(), variantIDs(c.Lines)); err != nil {
			s.log.Warn("checkout: release holds", slog.String("checkout", c.ID.String()), slog.String("error", err.Error()))
		}
	}
	if err := s.carts.Unfreeze(ctx, c.Owner, c.ID.String()); err != nil {
		s.log.Warn("checkout: unfreeze cart", slog.String("checkout", c.ID.String()), slog.String("error", err.Error()))
	}
}

// price builds the checkout of the frozen cart: current catalog prices, lines of unknown
// or inactive variants left out (the cart does not show them either), discounts applied.
func (s *Service) price(ctx context.Context, owner Owner, id uuid.UUID, email string, snap CartSnapshot) (Checkout, error) {
	cur := s.opts.Currency
	ids := make([]uuid.UUID, len(snap.Lines))
	for i, l := range snap.Lines {
		ids[i] = l.VariantID
	}
	vs, err := s.cat.Variants(ctx, ids)
	if err != nil {
		return Checkout{}, fmt.Errorf("checkout: catalog: %w", err)
	}
	var pls []PriceLine
	for _, l := range snap.Lines {
		v, ok := vs[l.VariantID]
		if !ok || !v.Active || v.Price.Currency != cur || l.Quantity <= 0 {
			continue
		}
		name := v.ProductName
		if v.VariantName != "" {
			name += " " + v.VariantName
		}
		pls = append(pls, PriceLine{VariantID: l.VariantID, ProductID: v.ProductID, Category: v.Category,
			SKU: v.SKU, Name: name, Quantity: l.Quantity, UnitPrice: v.Price})
	}
	if len(pls) == 0 {
		return Checkout{}, ErrCartEmpty
	}
	p, err := s.pricing.Price(ctx, pls, snap.Coupon, cur)
	if err != nil {
		return Checkout{}, fmt.Errorf("checkout: pricing: %w", err)
	}
	c := Checkout{ID: id, Owner: owner, State: StateReserving, Email: email, Coupon: snap.Coupon, Currency: cur,
		Subtotal: p.Subtotal, DiscountTotal: p.DiscountTotal, Total: p.Total, DiscountVersion: p.RulesetVersion,
		Applied: p.Applied, Lines: make([]Line, len(pls))}
	for i, l := range pls {
		disc := money.Zero(cur)
		if i < len(p.LineDiscounts) && p.LineDiscounts[i].Currency == cur {
			disc = p.LineDiscounts[i]
		}
		c.Lines[i] = Line{VariantID: l.VariantID, ProductID: l.ProductID, SKU: l.SKU, Name: l.Name,
			Category: l.Category, Quantity: l.Quantity, UnitPrice: l.UnitPrice,
			LineTotal: l.UnitPrice.Mul(l.Quantity), Discount: disc}
	}
	if c.Applied == nil {
		c.Applied = []AppliedDiscount{}
	}
	return c, nil
}

// ------------------------------------------------------------------------ read, cancel

// Get returns the checkout if who owns it. Errors: ErrNotFound.
func (s *Service) Get(ctx context.Context, who Identity, id uuid.UUID) (Checkout, error) {
	c, err := s.st.get(ctx, id)
	if err != nil {
		return Checkout{}, err
	}
	if !who.Owns(c.Owner) {
		return Checkout{}, ErrNotFound
	}
	return c, nil
}

// Cancel cancels the checkout: its holds are returned and its cart unfrozen. Cancelling
// a cancelled checkout returns it unchanged. Errors: ErrNotFound; ErrConflict (completed,
// expired, or being completed right now); ErrInProgress (still being created).
func (s *Service) Cancel(ctx context.Context, who Identity, id uuid.UUID) (Checkout, error) {
	ctx, cancel := detach(ctx)
	defer cancel()
	c, err := s.Get(ctx, who, id)
	if err != nil {
		return Checkout{}, err
	}
	switch c.State {
	case StateCancelled:
		return c, nil
	case StateReserving:
		return Checkout{}, ErrInProgress
	case StateAwaitingPayment:
	default:
		return Checkout{}, fmt.Errorf("%w: checkout is %s", ErrConflict, c.State)
	}
	if _, err := s.finish(ctx, c, StateCancelled, change{}); err != nil {
		var se *stateError
		if errors.As(err, &se) && se.state == StateCancelled {
			return s.st.get(ctx, id)
		}
		return Checkout{}, err
	}
	s.m.cancelled.Inc()
	return s.st.get(ctx, id)
}

// finish moves c to a final state (cancelled or expired) and then undoes its side effects:
// holds released, cart unfrozen. A crash in between leaves cleaned_at NULL and Recover
// finishes the job.
func (s *Service) finish(ctx context.Context, c Checkout, to State, ch change) (Checkout, error) {
	return s.endWith(ctx, c, to, ch, causeCheckoutEnded)
}

// end is finish with the cause recorded on the checkout's payment action.
func (s *Service) end(ctx context.Context, c Checkout, to State, cause string) (Checkout, error) {
	return s.endWith(ctx, c, to, change{}, cause)
}

// endWith moves c to a final state; when c has a payment intent, the same PostgreSQL
// transaction decides its void (a refund when the provider says it took the money),
// which the payment relay carries out.
func (s *Service) endWith(ctx context.Context, c Checkout, to State, ch change, cause string) (Checkout, error) {
	apply := s.cas(c.ID, c.State, to, ch)
	if c.PaymentIntentID != "" {
		from := c.State
		apply = func(ctx context.Context, v int64) error {
			return s.st.casWithAction(ctx, c, from, to, v, ch, cause)
		}
	}
	v, err := s.transition(ctx, c.ID, c.State, to, c.Version, apply)
	if err != nil {
		return c, err
	}
	c.State, c.Version = to, v
	s.cleanup(ctx, c)
	return c, nil
}

// cleanup does the side effects of a final state and records them done: a completed
// checkout's cart is cleared; a cancelled or expired one's holds are released and its
// cart unfrozen. Failures are logged: Recover retries.
func (s *Service) cleanup(ctx context.Context, c Checkout) {
	id := c.ID.String()
	var err error
	switch c.State {
	case StateCompleted:
		err = s.carts.ClearFor(ctx, c.Owner, id)
	case StateCancelled, StateExpired:
		if _, err = s.inv.Release(ctx, id, variantIDs(c.Lines)); err == nil {
			err = s.carts.Unfreeze(ctx, c.Owner, id)
		}
	default:
		return
	}
	if err == nil {
		err = s.st.markCleaned(ctx, c.ID)
	}
	if err != nil {
		s.log.Warn("checkout: cleanup after "+string(c.State), slog.String("checkout", id),
			slog.String("error", err.Error()))
	}
}

// --------------------------------------------------------------------------- complete

// Complete pays for the checkout and places its order, exactly once: repeating it, or
// running it concurrently (or racing the provider's webhook), returns the same order.
// method is the payment method to confirm the intent with (server-side confirmation), or
// "" when the storefront confirmed it (Stripe.js): the intent is always retrieved first
// and its status, amount and currency checked. A checkout past its expiry (or whose holds
// lapsed) takes its holds again first, if stock allows. Errors: ErrNotFound;
// ErrPaymentDeclined, *ActionRequiredError, ErrPaymentMethodRequired,
// ErrPaymentMethodInvalid, ErrPaymentProcessing (the checkout stays awaiting_payment);
// ErrAmountMismatch (cancelled, refunded); ErrExpired (the holds cannot be taken again, or
// the checkout expired); ErrConflict (cancelled); ErrInProgress (another request is still
// at it after CompleteWait, or the checkout is being created); dependency failures
// wrapped with fault.ErrUnavailable.
func (s *Service) Complete(ctx context.Context, who Identity, id uuid.UUID, method string) (Completion, error) {
	start := time.Now()
	ctx, cancel := detach(ctx)
	defer cancel()
	c, err := s.Get(ctx, who, id)
	if err != nil {
		return Completion{}, err
	}
	res, err := s.complete(ctx, c, method, true)
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(err, ErrPaymentDeclined):
		outcome = "declined"
	case errors.Is(err, ErrPaymentRequiresAction):
		outcome = "requires_action"
	case errors.Is(err, ErrAmountMismatch):
		outcome = "amount_mismatch"
	case errors.Is(err, ErrExpired):
		outcome = "expired"
	case errors.Is(err, ErrConflict), errors.Is(err, ErrInProgress):
		outcome = "conflict"
	default:
		outcome = "error"
	}
	s.m.completes.WithLabelValues(outcome).Inc()
	s.m.completeSeconds.Observe(time.Since(start).Seconds())
	return res, err
}

// Completed returns the completion of checkout id when who owns it and it is completed
// (its order exists), else false. Errors: those of Get.
func (s *Service) Completed(ctx context.Context, who Identity, id uuid.UUID) (Completion, bool, error) {
	c, err := s.Get(ctx, who, id)
	if err != nil || c.State != StateCompleted {
		return Completion{}, false, err
	}
	res, err := s.completion(ctx, c)
	return res, err == nil, err
}

// complete runs or waits for the completion of c. When wait is false (a webhook), a
// completion someone else runs is not waited for (ErrInProgress at once).
func (s *Service) complete(ctx context.Context, c Checkout, method string, wait bool) (Completion, error) {
	deadline := s.waitDeadline(wait)
	for {
		switch c.State {
		case StateCompleted:
			return s.completion(ctx, c)
		case StateCancelled:
			return Completion{}, fmt.Errorf("%w: checkout is cancelled", ErrConflict)
		case StateExpired:
			return Completion{}, ErrExpired
		case StateAwaitingPayment:
			v, err := s.transition(ctx, c.ID, StateAwaitingPayment, StateCompleting, c.Version,
				s.cas(c.ID, StateAwaitingPayment, StateCompleting, change{}))
			if err == nil {
				c.State, c.Version = StateCompleting, v
				return s.run(ctx, c, method)
			}
			var se *stateError
			if !errors.As(err, &se) {
				return Completion{}, err
			}
			// Someone else moved it first: wait for them below, then look again.
		}
		if time.Now().After(deadline) {
			return Completion{}, ErrInProgress
		}
		if err := s.wait(ctx, c.ID, deadline); err != nil {
			return Completion{}, err
		}
		var err error
		if c, err = s.st.get(ctx, c.ID); err != nil {
			return Completion{}, err
		}
	}
}

// wait polls the Redis hash until the checkout is no longer in flight (not reserving or
// completing, no pending claim) or the deadline passes (ErrInProgress).
func (s *Service) wait(ctx context.Context, id uuid.UUID, deadline time.Time) error {
	delay := 2 * time.Millisecond
	for {
		st, pending, exists, err := s.r.peek(ctx, id)
		if err != nil {
			return err
		}
		if !exists || (!pending && st != StateCompleting && st != StateReserving) {
			return nil
		}
		if time.Now().Add(delay).After(deadline) {
			return ErrInProgress
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// run is the completion proper, by the request that claimed awaiting_payment → completing
// (version c.Version): take the holds again if they may have lapsed, charge, then commit
// the stock and write the order in one PostgreSQL transaction, then clear the cart.
func (s *Service) run(ctx context.Context, c Checkout, method string) (Completion, error) {
	s.at(hookAfterClaim)
	if c.HoldsExpireAt.IsZero() || c.HoldsExpireAt.Sub(c.dbNow) < s.opts.HoldRefresh {
		if err := s.retake(ctx, c); err != nil {
			return Completion{}, err
		}
	}
	if err := s.charge(ctx, c, method); err != nil {
		return Completion{}, err
	}
	c.PaymentStatus = PaymentSucceeded
	s.at(hookAfterPayment)

	orderID, err := uuid.NewV7()
	if err != nil {
		return Completion{}, err
	}
	for attempt := 0; ; attempt++ {
		_, err = s.transition(ctx, c.ID, StateCompleting, StateCompleted, c.Version, func(ctx context.Context, v int64) error {
			eventID, err := uuid.NewV7()
			if err != nil {
				return err
			}
			err = s.inv.Commit(ctx, c.ID.String(), stockLines(c.Lines), "order "+orderID.String(),
				func(ctx context.Context, tx db.Tx) error { return s.st.placeOrder(ctx, tx, c, v, orderID, eventID) })
			if err == nil {
				s.at(hookAfterCommit)
			}
			return err
		})
		if err == nil || !errors.Is(err, ErrHoldMissing) || attempt > 0 {
			break
		}
		// The holds lapsed between the check above and the commit: take them again once.
		// (When the stock is gone the checkout expires, and its payment action refunds the
		// payment: decided in the expiring transaction.)
		if err := s.retake(ctx, c); err != nil {
			return Completion{}, err
		}
	}
	if err != nil {
		var se *stateError
		switch {
		case errors.Is(err, ErrHoldMissing), errors.Is(err, ErrInsufficientStock):
			// Still missing right after retaking them, or held against stock PostgreSQL no
			// longer has (Redis lost data; the sale is refused, nothing is oversold): give
			// up like an expiry, which returns the holds; the expiring transaction decides
			// the refund of the payment.
			s.log.Warn("checkout: payment succeeded but the holds cannot be kept; refunding",
				slog.String("checkout", c.ID.String()), slog.String("payment_intent", c.PaymentIntentID))
			if _, ferr := s.end(ctx, c, StateExpired, causeStockGone); ferr != nil {
				s.log.Warn("checkout: expire", slog.String("checkout", c.ID.String()), slog.String("error", ferr.Error()))
			}
			return Completion{}, ErrExpired
		case errors.As(err, &se) || errors.Is(err, errStale):
			// Fenced: recovery or an expiry moved the checkout on; answer from what it is now.
			now, gerr := s.st.get(ctx, c.ID)
			if gerr != nil {
				return Completion{}, gerr
			}
			return s.complete(ctx, now, method, true)
		}
		// Not sold (or, if the outcome is unknown, the version fences it): the checkout
		// is payable again; the payment already went through and is not asked for twice.
		return Completion{}, s.backToAwaiting(ctx, c, err)
	}
	s.at(hookAfterConfirm)
	s.m.orders.Inc()
	c, err = s.st.get(ctx, c.ID)
	if err != nil {
		return Completion{}, err
	}
	s.cleanup(ctx, c)
	return s.completion(ctx, c)
}

// retake reserves c's lines again for HoldTTL (a reserve by the same holder replaces
// what is left of its holds, so stock is never exposed in between). When stock no longer
// allows, c (completing) expires and ErrExpired is returned; on other failures c goes
// back to awaiting_payment.
func (s *Service) retake(ctx context.Context, c Checkout) error {
	if err := s.st.setHoldsExpiry(ctx, c.ID, s.opts.HoldTTL); err != nil {
		return s.backToAwaiting(ctx, c, err)
	}
	err := s.inv.Reserve(ctx, c.ID.String(), stockLines(c.Lines), s.opts.HoldTTL)
	if err == nil {
		s.m.retaken.Inc()
		return nil
	}
	if !errors.Is(err, ErrInsufficientStock) {
		return s.backToAwaiting(ctx, c, err)
	}
	cause := causeCheckoutEnded
	if c.PaymentStatus == PaymentSucceeded {
		cause = causeStockGone
	}
	if _, ferr := s.end(ctx, c, StateExpired, cause); ferr != nil {
		s.log.Warn("checkout: expire", slog.String("checkout", c.ID.String()), slog.String("error", ferr.Error()))
	}
	s.m.expired.Inc()
	return ErrExpired
}

// backToAwaiting undoes the completing claim after a failure before anything was charged
// or committed, and returns err.
func (s *Service) backToAwaiting(ctx context.Context, c Checkout, err error) error {
	s.revert(ctx, c, change{holdsLapsed: true})
	return err
}

// revert moves c, which this request claimed (completing at c.Version), back to
// awaiting_payment with ch. When Redis cannot take the transition (it went down
// mid-completion), the PostgreSQL half is written alone: nobody else moves a completing
// checkout before StaleAfter, and a hash left behind is rebuilt from the row by the next
// transition (its version is older). Without it the checkout would stay completing,
// and every complete answer checkout_in_progress, until recovery.
func (s *Service) revert(ctx context.Context, c Checkout, ch change) {
	_, terr := s.transition(ctx, c.ID, StateCompleting, StateAwaitingPayment, c.Version,
		s.cas(c.ID, StateCompleting, StateAwaitingPayment, ch))
	if terr == nil {
		return
	}
	var se *stateError
	if errors.As(terr, &se) || errors.Is(terr, errStale) {
		return // moved on by someone else (recovery): nothing of ours to undo
	}
	if perr := s.st.cas(ctx, s.st.pool, c.ID, StateCompleting, StateAwaitingPayment, c.Version+1, ch); perr != nil {
		s.log.Warn("checkout: back to awaiting_payment", slog.String("checkout", c.ID.String()),
			slog.String("error", terr.Error()), slog.String("postgres", perr.Error()))
		return
	}
	s.m.transitions.WithLabelValues(string(StateCompleting), string(StateAwaitingPayment)).Inc()
}

// completion returns a completed checkout with its order.
func (s *Service) completion(ctx context.Context, c Checkout) (Completion, error) {
	o, ok, err := s.st.orderFor(ctx, c.ID)
	if err != nil {
		return Completion{}, err
	}
	if !ok {
		return Completion{}, fmt.Errorf("checkout %s is completed without an order", c.ID)
	}
	return Completion{Checkout: c, Order: o}, nil
}

// ---------------------------------------------------------------------------- orders

// Order returns the order if who owns it. Errors: ErrNotFound.
func (s *Service) Order(ctx context.Context, who Identity, id uuid.UUID) (Order, error) {
	o, err := s.st.order(ctx, id)
	if err != nil {
		return Order{}, err
	}
	if !who.Owns(o.Owner) {
		return Order{}, ErrNotFound
	}
	return o, nil
}

// Orders returns page (from 1) of perPage of a customer's orders, newest first, and
// how many orders the customer has.
func (s *Service) Orders(ctx context.Context, customerID string, page, perPage int) ([]Order, int64, error) {
	o := Owner{Type: auth.OwnerCustomer, ID: customerID}
	if err := o.Validate(); err != nil {
		return nil, 0, err
	}
	if page < 1 || perPage < 1 {
		return nil, 0, fmt.Errorf("checkout: bad page")
	}
	return s.st.orders(ctx, o, perPage, (int64(page)-1)*int64(perPage))
}

// ------------------------------------------------------------------------ background

// ExpireDue expires the checkouts (reserving or awaiting_payment) past CheckoutTTL:
// each moves to expired, its holds are released and its cart unfrozen. It returns how
// many it expired. A checkout a complete claims first is left to it, and one whose intent
// the provider says is paid is completed instead (its stock taken again if it allows).
// Expiring a checkout with an intent decides its void.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	n := 0
	for round := 0; round < 100; round++ {
		due, err := s.st.due(ctx, batch)
		if err != nil {
			return n, err
		}
		progress, settled := 0, 0
		for _, c := range due {
			if s.paidMeanwhile(ctx, c) {
				settled++ // completed instead: the shopper paid in the storefront
				continue
			}
			if _, err := s.finish(ctx, c, StateExpired, change{}); err != nil {
				var se *stateError
				if errors.As(err, &se) {
					continue
				}
				return n, err
			}
			progress++
		}
		n += progress
		s.m.expired.Add(float64(progress))
		if len(due) < batch || progress+settled == 0 {
			return n, nil
		}
	}
	return n, nil
}

// paidMeanwhile places the order of a due checkout whose intent the storefront paid
// (client-side confirmation) without a complete or webhook reaching us yet, and reports
// whether it did. Anything else (not paid, provider unreachable) leaves it to expire; the
// expiry then voids the intent, refunding it if it took money after all.
func (s *Service) paidMeanwhile(ctx context.Context, c Checkout) bool {
	if c.State != StateAwaitingPayment || c.PaymentIntentID == "" || c.PaymentStatus == PaymentFailed {
		return false
	}
	if err := s.settle(ctx, c.PaymentIntentID); err != nil {
		s.log.Warn("checkout: expiry: settle payment", slog.String("checkout", c.ID.String()),
			slog.String("error", err.Error()))
		return false
	}
	now, err := s.st.get(ctx, c.ID)
	return err == nil && now.State == StateCompleted
}

// RecoverStats says what Recover did.
type RecoverStats struct {
	Abandoned int // reserving checkouts of crashed requests, now expired
	Reverted  int // completing checkouts without an order, back to awaiting_payment
	Expired   int // completing checkouts without an order past their expiry, now expired
	Cleaned   int // final checkouts whose cart or holds were left behind, now cleaned
}

// Recover repairs what crashed requests left behind (run it after inventory recovery,
// from a job): checkouts stuck in reserving for StaleAfter are expired; checkouts stuck in
// completing have no order (the order and the completed state are one transaction), so
// they go back to awaiting_payment with their holds released (the next complete takes
// them again; a payment that went through is remembered), or to expired when past their
// expiry; final checkouts whose cleanup did not happen get it now. A completion that is
// merely slow is fenced: its commit finds the version moved and writes nothing.
func (s *Service) Recover(ctx context.Context) (RecoverStats, error) {
	var st RecoverStats
	stuck, err := s.st.stuck(ctx, s.opts.StaleAfter, batch)
	if err != nil {
		return st, err
	}
	for _, c := range stuck {
		var err error
		switch {
		case c.State == StateReserving:
			if _, err = s.finish(ctx, c, StateExpired, change{}); err == nil {
				st.Abandoned++
			}
		case !c.dbNow.Before(c.ExpiresAt):
			if _, err = s.finish(ctx, c, StateExpired, change{}); err == nil {
				st.Expired++
			}
		default:
			if _, err = s.transition(ctx, c.ID, StateCompleting, StateAwaitingPayment, c.Version,
				s.cas(c.ID, StateCompleting, StateAwaitingPayment, change{holdsLapsed: true})); err == nil {
				st.Reverted++
				_, err = s.inv.Release(ctx, c.ID.String(), variantIDs(c.Lines))
				if err == nil && c.PaymentIntentID != "" {
					// The crashed request may have charged: if the provider says so, place
					// the order now (the shopper may never call complete again).
					if serr := s.settle(ctx, c.PaymentIntentID); serr != nil {
						s.log.Warn("checkout: recover: settle payment", slog.String("checkout", c.ID.String()),
							slog.String("error", serr.Error()))
					}
				}
			}
		}
		var se *stateError
		if err != nil && !errors.As(err, &se) {
			return st, err
		}
	}
	left, err := s.st.uncleaned(ctx, s.opts.StaleAfter, batch)
	if err != nil {
		return st, err
	}
	for _, c := range left {
		s.cleanup(ctx, c)
		st.Cleaned++
	}
	s.m.recovered.Add(float64(st.Abandoned + st.Reverted + st.Expired + st.Cleaned))
	return st, nil
}

// RelayOutbox publishes unpublished outbox rows (oldest first) to the Redis Stream
// <space>events:orders, each entry carrying the event id (field "id") so consumers can
// de-duplicate, and marks them published. Delivery is at-least-once: a crash between the
// XADD and the commit publishes the batch again. It returns how many rows it published.
func (s *Service) RelayOutbox(ctx context.Context) (int, error) {
	n := 0
	for round := 0; round < 100; round++ {
		k, err := s.st.relay(ctx, batch, s.r.publish)
		n += k
		s.m.published.Add(float64(k))
		if err != nil {
			return n, err
		}
		if k < batch {
			break
		}
	}
	return n, nil
}
