package cart

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/auth"
	"commerce/internal/platform/money"
	"commerce/internal/platform/rkey"
)

// Service keeps carts. Every mutation is one Lua script on the cart's hash, so concurrent
// requests never lose an update and every limit is checked atomically with the write.
// Errors that mean Redis or PostgreSQL is unreachable are returned wrapped as they are
// (httpx turns them into 503).
type Service struct {
	r       *redisSide
	store   store
	catalog Catalog
	stock   Stock
	counter CounterKeys // nil: the stock check reads Stock.Available first
	pricer  Pricer
	opts    Options
	log     *slog.Logger
	snaps   *writeBehind[cartSnapshot]
}

// NewService returns a cart service. pricer may be nil (NoDiscounts). Call Start to run
// the snapshot flusher and Stop at shutdown.
func NewService(rdb redis.UniversalClient, space rkey.Space, pool *pgxpool.Pool, cat Catalog, stock Stock,
	pricer Pricer, opts Options) (*Service, error) {
	if rdb == nil || pool == nil || cat == nil || stock == nil {
		return nil, errors.New("cart: redis, pool, catalog and stock are required")
	}
	opts = opts.withDefaults()
	if !money.ValidCurrency(opts.Currency) {
		return nil, fmt.Errorf("cart: invalid currency %q", opts.Currency)
	}
	if pricer == nil {
		pricer = NoDiscounts{Currency: opts.Currency}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Service{r: newRedisSide(rdb, space), store: store{pool: pool}, catalog: cat, stock: stock,
		pricer: pricer, opts: opts, log: log}
	if ck, ok := stock.(CounterKeys); ok {
		if _, cluster := rdb.(*redis.ClusterClient); !cluster {
			s.counter = ck
		}
	}
	s.snaps = newWriteBehind("cart-snapshots", opts.SnapshotQueue, opts.SnapshotBatch, opts.SnapshotInterval,
		false, log, s.store.saveCarts)
	return s, nil
}

// Start loads the Lua scripts (an error here means Redis is unreachable; the scripts are
// also loaded lazily, so the caller may go on) and starts the snapshot flusher.
func (s *Service) Start(ctx context.Context) error {
	s.snaps.start()
	return s.r.load(ctx)
}

// Stop stops the snapshot flusher after writing every pending customer-cart snapshot
// (retrying until ctx ends, in which case it says how many were not written).
func (s *Service) Stop(ctx context.Context) error { return s.snaps.stop(ctx) }

// Flush writes every customer-cart snapshot enqueued so far.
func (s *Service) Flush(ctx context.Context) error { return s.snaps.flush(ctx) }

func (s *Service) ttl(o Owner) time.Duration {
	if o.Type == auth.OwnerCustomer {
		return s.opts.CustomerTTL
	}
	return s.opts.SessionTTL
}

// exec runs a cart script for o, restoring a missing customer cart from its snapshot
// first. It maps LOCKED to *LockedError; other codes are the caller's. After a write to a
// customer cart (code OK and write), the new state is queued for the snapshot.
func (s *Service) exec(ctx context.Context, o Owner, sc *redis.Script, write bool, args ...any) (reply, error) {
	return s.execKeys(ctx, o, sc, write, "", args...)
}

// execKeys is exec with a second key for the script ("": none).
func (s *Service) execKeys(ctx context.Context, o Owner, sc *redis.Script, write bool, key2 string, args ...any) (reply, error) {
	if err := o.Validate(); err != nil {
		return reply{}, err
	}
	keys := []string{s.r.cartKey(o)}
	if key2 != "" {
		keys = append(keys, key2)
	}
	restore := o.Type == auth.OwnerCustomer
	for range 3 {
		rep, err := s.r.runKeys(ctx, sc, keys, restore, s.ttl(o), args...)
		if err != nil {
			return reply{}, fmt.Errorf("cart %s: %w", o.Type, err)
		}
		switch rep.code {
		case codeLoadRequired:
			if err := s.restore(ctx, o); err != nil {
				return reply{}, err
			}
			continue
		case codeLocked:
			id, _ := rep.vals[0].(string)
			return reply{}, &LockedError{CheckoutID: id}
		case codeOK:
			if write && restore {
				st, err := parseState(rep.vals, true)
				if err != nil {
					return reply{}, err
				}
				s.snaps.enqueue(ctx, wbItem[cartSnapshot]{key: o.ID, version: st.updatedAt,
					value: cartSnapshot{Lines: st.lines, Coupon: st.coupon}})
			}
		}
		return rep, nil
	}
	return reply{}, fmt.Errorf("cart %s: restore did not converge", o.Type)
}

// restore recreates a missing customer cart from its PostgreSQL snapshot (a snapshot
// older than the customer TTL counts as expired: the cart comes back empty).
func (s *Service) restore(ctx context.Context, o Owner) error {
	snap, version, found, err := s.store.loadCart(ctx, o.ID)
	if err != nil {
		return fmt.Errorf("restore customer cart: %w", err)
	}
	if found && time.Since(time.UnixMilli(version)) > s.opts.CustomerTTL {
		snap = cartSnapshot{}
	}
	args := []any{version, snap.Coupon}
	for _, l := range snap.Lines {
		args = append(args, lineField(l.VariantID), l.Quantity)
	}
	if _, err := s.r.run(ctx, s.r.restore, s.r.cartKey(o), false, s.opts.CustomerTTL, args...); err != nil {
		return fmt.Errorf("restore customer cart: %w", err)
	}
	return nil
}

// stateOf interprets an OK or MISSING reply.
func stateOf(rep reply) (state, error) {
	switch rep.code {
	case codeOK:
		return parseState(rep.vals, true)
	case codeMissing:
		return parseState(rep.vals, false)
	}
	return state{}, fmt.Errorf("cart script: unexpected code %q", rep.code)
}

// Get returns o's priced cart (an empty cart when it has none) and slides its TTL.
func (s *Service) Get(ctx context.Context, o Owner) (Cart, error) {
	st, err := s.read(ctx, o)
	if err != nil {
		return Cart{}, err
	}
	c, _, err := s.price(ctx, o, st)
	return c, err
}

func (s *Service) read(ctx context.Context, o Owner) (state, error) {
	rep, err := s.exec(ctx, o, s.r.get, false)
	if err != nil {
		return state{}, err
	}
	return stateOf(rep)
}

// mutate runs a writing script and prices the result.
func (s *Service) mutate(ctx context.Context, o Owner, sc *redis.Script, args ...any) (Cart, error) {
	rep, err := s.exec(ctx, o, sc, true, args...)
	if err != nil {
		return Cart{}, err
	}
	return s.priceReply(ctx, o, rep, nil)
}

// priceReply prices the cart state a script answered. known holds variants already read
// for this request (they are not read again).
func (s *Service) priceReply(ctx context.Context, o Owner, rep reply, known map[uuid.UUID]VariantInfo) (Cart, error) {
	switch rep.code {
	case codeLinesLimit:
		return Cart{}, ErrTooManyLines
	case codeQtyLimit:
		return Cart{}, ErrQuantity
	}
	st, err := stateOf(rep)
	if err != nil {
		return Cart{}, err
	}
	c, _, err := s.priceWith(ctx, o, st, known)
	return c, err
}

// activeVariant returns ErrVariantNotFound unless id is a known, active variant, and
// what it read (for pricing the same request without reading it again).
func (s *Service) activeVariant(ctx context.Context, id uuid.UUID) (map[uuid.UUID]VariantInfo, error) {
	vs, err := s.catalog.Variants(ctx, []uuid.UUID{id})
	if err != nil {
		return nil, fmt.Errorf("cart: look up variant: %w", err)
	}
	if v, ok := vs[id]; !ok || !v.Active {
		return nil, ErrVariantNotFound
	}
	return vs, nil
}

func (s *Service) available(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]int64, error) {
	av, err := s.stock.Available(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("cart: availability: %w", err)
	}
	return av, nil
}

// stockChecked runs the add or set script sc, whose last argument is the units of variant
// available now. When the variant's counter is in the carts' Redis the script reads it
// itself, in the same round trip; otherwise, or when that counter is not loaded (the
// script answers NO_COUNTER and writes nothing), Stock.Available is read first.
func (s *Service) stockChecked(ctx context.Context, o Owner, sc *redis.Script, variant uuid.UUID, args ...any) (reply, error) {
	if s.counter != nil {
		if key, ok := s.counter.CounterKey(variant); ok {
			rep, err := s.execKeys(ctx, o, sc, true, key, append(args[:len(args):len(args)], 0)...)
			if err != nil || rep.code != codeNoCounter {
				return rep, err
			}
		}
	}
	av, err := s.available(ctx, []uuid.UUID{variant})
	if err != nil {
		return reply{}, err
	}
	return s.exec(ctx, o, sc, true, append(args[:len(args):len(args)], av[variant])...)
}

// Add adds qty units of variant to o's cart. Errors: ErrQuantity (qty outside 1–100 or
// the line would exceed 100), ErrTooManyLines, ErrVariantNotFound, *StockError (the line
// would exceed what is available now; nothing is held), *LockedError, ErrInvalidOwner.
func (s *Service) Add(ctx context.Context, o Owner, variant uuid.UUID, qty int64) (Cart, error) {
	if err := o.Validate(); err != nil {
		return Cart{}, err
	}
	if qty < 1 || qty > MaxQuantity {
		return Cart{}, ErrQuantity
	}
	known, err := s.activeVariant(ctx, variant)
	if err != nil {
		return Cart{}, err
	}
	rep, err := s.stockChecked(ctx, o, s.r.add, variant, lineField(variant), qty, MaxQuantity, MaxLines)
	if err != nil {
		return Cart{}, err
	}
	if rep.code == codeStock {
		return Cart{}, stockError(variant, rep)
	}
	return s.priceReply(ctx, o, rep, known)
}

func stockError(variant uuid.UUID, rep reply) error {
	e := &StockError{VariantID: variant}
	if len(rep.vals) == 2 {
		e.Requested, _ = toInt(rep.vals[0])
		e.Available, _ = toInt(rep.vals[1])
	}
	return e
}

// SetQuantity sets the line of variant to qty; 0 removes it. Errors as Add.
func (s *Service) SetQuantity(ctx context.Context, o Owner, variant uuid.UUID, qty int64) (Cart, error) {
	if qty == 0 {
		return s.Remove(ctx, o, variant)
	}
	if err := o.Validate(); err != nil {
		return Cart{}, err
	}
	if qty < 0 || qty > MaxQuantity {
		return Cart{}, ErrQuantity
	}
	known, err := s.activeVariant(ctx, variant)
	if err != nil {
		return Cart{}, err
	}
	rep, err := s.stockChecked(ctx, o, s.r.set, variant, lineField(variant), qty, MaxLines)
	if err != nil {
		return Cart{}, err
	}
	if rep.code == codeStock {
		return Cart{}, stockError(variant, rep)
	}
	return s.priceReply(ctx, o, rep, known)
}

// Remove deletes the line of variant (a line that is not there is not an error).
// Errors: *LockedError, ErrInvalidOwner.
func (s *Service) Remove(ctx context.Context, o Owner, variant uuid.UUID) (Cart, error) {
	return s.mutate(ctx, o, s.r.set, lineField(variant), 0, MaxLines, 0)
}

// Clear deletes every line and the coupon. Errors: *LockedError, ErrInvalidOwner.
func (s *Service) Clear(ctx context.Context, o Owner) (Cart, error) {
	return s.mutate(ctx, o, s.r.clear, "")
}

// ValidCoupon reports whether code may be a coupon code: 1–64 printable ASCII characters
// without spaces.
func ValidCoupon(code string) bool {
	if len(code) < 1 || len(code) > 64 {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] <= ' ' || code[i] > '~' {
			return false
		}
	}
	return true
}

// SetCoupon applies code to o's cart after the Pricer accepts it for the cart's lines.
// Errors: ErrInvalidCoupon, ErrCouponNotFound, ErrCouponNotApplicable, *LockedError.
func (s *Service) SetCoupon(ctx context.Context, o Owner, code string) (Cart, error) {
	if !ValidCoupon(code) {
		return Cart{}, ErrInvalidCoupon
	}
	st, err := s.read(ctx, o)
	if err != nil {
		return Cart{}, err
	}
	if st.lock != "" {
		return Cart{}, &LockedError{CheckoutID: st.lock}
	}
	_, lines, err := s.price(ctx, o, st)
	if err != nil {
		return Cart{}, err
	}
	if err := s.pricer.CheckCoupon(ctx, lines, code); err != nil {
		switch {
		case errors.Is(err, ErrCouponNotFound):
			return Cart{}, ErrCouponNotFound
		case errors.Is(err, ErrCouponNotApplicable):
			return Cart{}, ErrCouponNotApplicable
		}
		return Cart{}, fmt.Errorf("cart: check coupon: %w", err)
	}
	return s.mutate(ctx, o, s.r.coupon, code)
}

// RemoveCoupon removes the cart's coupon (none is not an error). Errors: *LockedError.
func (s *Service) RemoveCoupon(ctx context.Context, o Owner) (Cart, error) {
	return s.mutate(ctx, o, s.r.coupon, "")
}

// Freeze locks o's cart for checkoutID and returns its content. It is idempotent for the
// same checkout. Errors: *LockedError (another checkout holds the lock; its id is in the
// error), ErrEmpty (no lines; nothing is locked), ErrInvalidCheckoutID, ErrInvalidOwner.
// Snapshot lines may name variants that are no longer active (see Snapshot).
func (s *Service) Freeze(ctx context.Context, o Owner, checkoutID string) (Snapshot, error) {
	if !validCheckoutID(checkoutID) {
		return Snapshot{}, ErrInvalidCheckoutID
	}
	rep, err := s.exec(ctx, o, s.r.freeze, true, checkoutID)
	if err != nil {
		return Snapshot{}, err
	}
	if rep.code == codeEmpty {
		return Snapshot{}, ErrEmpty
	}
	st, err := stateOf(rep)
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Lines: st.lines, Coupon: st.coupon}, nil
}

// Peek returns the cart's content and the checkout that has it frozen ("" when it is
// not), changing nothing (no cart: empty content).
func (s *Service) Peek(ctx context.Context, o Owner) (Snapshot, string, error) {
	st, err := s.read(ctx, o)
	if err != nil {
		return Snapshot{}, "", err
	}
	return Snapshot{Lines: st.lines, Coupon: st.coupon}, st.lock, nil
}

// Unfreeze clears the lock if checkoutID holds it (compare-and-clear; otherwise, or when
// the cart is gone, nothing happens). Errors: ErrInvalidCheckoutID, ErrInvalidOwner.
func (s *Service) Unfreeze(ctx context.Context, o Owner, checkoutID string) error {
	if !validCheckoutID(checkoutID) {
		return ErrInvalidCheckoutID
	}
	if err := o.Validate(); err != nil {
		return err
	}
	if _, err := s.r.run(ctx, s.r.unfreeze, s.r.cartKey(o), false, s.ttl(o), checkoutID); err != nil {
		return fmt.Errorf("cart unfreeze: %w", err)
	}
	return nil
}

// ClearFor empties o's cart after checkoutID placed its order: lines, coupon and lock are
// deleted only if checkoutID holds the lock (idempotent: a second call, or a cart unlocked
// meanwhile, changes nothing). A customer cart's snapshot is written at once, so a Redis
// loss right after an order cannot bring the bought lines back.
// Errors: ErrInvalidCheckoutID, ErrInvalidOwner.
func (s *Service) ClearFor(ctx context.Context, o Owner, checkoutID string) error {
	if !validCheckoutID(checkoutID) {
		return ErrInvalidCheckoutID
	}
	rep, err := s.exec(ctx, o, s.r.clear, false, checkoutID)
	if err != nil {
		return err
	}
	if rep.code != codeOK || o.Type != auth.OwnerCustomer {
		return nil
	}
	st, err := stateOf(rep)
	if err != nil {
		return err
	}
	it := wbItem[cartSnapshot]{key: o.ID, version: st.updatedAt}
	if err := s.store.saveCarts(ctx, []wbItem[cartSnapshot]{it}); err != nil {
		s.snaps.enqueue(ctx, it)
	}
	return nil
}

func validCheckoutID(id string) bool { return id != "" && len(id) <= 128 }
