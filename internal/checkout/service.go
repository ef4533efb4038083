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
	sold    soldOut // variants found sold out lately (see knownSoldOut)
	cleaned *cleanMarks

	// hook, when set (tests only), is called at the named points of a creation or a
	// completion (tests end a crash child process there).
	hook func(point string)
}

// Points of a creation or a completion where a test hook runs.
const (
	hookCreateAfterInsert  = "create_after_insert"  // row committed (awaiting_payment), lock and registration still in place
	hookCreateAfterReserve = "create_after_reserve" // cart frozen, every line held, no payment intent, no row
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
	st := store{pool: pool}
	return &Service{st: st, r: rs, inv: inv, carts: carts, cat: cat,
		pricing: pricing, pay: pay, opts: opts, log: opts.Logger, m: m,
		hashTTL: opts.CheckoutTTL + 24*time.Hour, idem: idem, cleaned: &cleanMarks{write: st.markCleaned, log: opts.Logger}}, nil
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
