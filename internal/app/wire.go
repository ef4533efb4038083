package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/IBM/pgxpoolprometheus"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"commerce/internal/cart"
	"commerce/internal/catalog"
	"commerce/internal/checkout"
	"commerce/internal/discount"
	"commerce/internal/inventory"
	"commerce/internal/payment"
	"commerce/internal/payment/stripepay"
	"commerce/internal/platform/auth"
	"commerce/internal/platform/cacheadmin"
	"commerce/internal/platform/idempotency"
	"commerce/internal/platform/jobs"
	"commerce/internal/platform/money"
	"commerce/internal/platform/ratelimit"
	"commerce/internal/platform/resilience"
)

// idemInFlightMargin is how much longer than REQUEST_TIMEOUT an Idempotency-Key stays in
// flight when its request never finishes.
const idemInFlightMargin = 5 * time.Second

// domains holds the domain services of one replica.
type domains struct {
	Catalog   *catalog.Service
	Products  *catalog.Cache
	Inventory *inventory.Service
	Discounts *discount.Service
	Carts     *cart.Service
	Prefs     *cart.Preferences
	Checkout  *checkout.Service
	Jobs      *jobs.Scheduler
	// Idempotency keeps the Idempotency-Key records of every route that honours one.
	Idempotency *idempotency.Store
}

// Domains exposes the services (for tests, benchmarks and subcommands).
func (a *App) Domains() *domains { return &a.domains }

// wireDomains builds the domain services and mounts their routes.
func (a *App) wireDomains(ctx context.Context) error {
	cfg := a.cfg
	rm := resilience.NewMetrics(a.Reg)
	d := &a.domains
	// When the L2 breaker closes again, catalog invalidations that failed while Redis was
	// down are republished at once (the relay would also retry them on its own).
	var catalogRepublish atomic.Pointer[func()]
	l2 := resilience.NewBreaker(resilience.BreakerConfig{Name: "redis_l2", CallTimeout: cfg.RedisTimeout,
		OnClosed: func() {
			if f := catalogRepublish.Load(); f != nil {
				(*f)()
			}
		}}, rm)
	rlBreaker := resilience.NewBreaker(resilience.BreakerConfig{Name: "ratelimit"}, rm)
	prefsBreaker := resilience.NewBreaker(resilience.BreakerConfig{Name: "redis_prefs", CallTimeout: cfg.RedisTimeout}, rm)
	a.Reg.MustRegister(pgxpoolprometheus.NewCollector(a.Pool, map[string]string{"db": "commerce"}),
		resilience.NewRedisPoolCollector(a.Redis),
		resilience.NewDependencyCollector(map[string]resilience.Probe{
			"postgres": func(ctx context.Context) error { return a.Pool.Ping(ctx) },
			"redis":    func(ctx context.Context) error { return a.Redis.Ping(ctx).Err() },
		}, time.Second))

	// A key stays in flight as long as its request can run, plus a margin: a process that
	// died mid-request frees it that soon.
	inFlight := cfg.RequestTimeout + idemInFlightMargin
	if cfg.RequestTimeout <= 0 {
		inFlight = 0 // the package default
	}
	d.Idempotency = idempotency.New(a.Redis, a.Space, a.Reg, idempotency.Options{TTL: cfg.IdempotencyTTL,
		InFlightTTL: inFlight, MaxResponseBytes: cfg.IdempotencyMaxResponseBytes,
		MaxKeysPerCaller: cfg.IdempotencyMaxKeys, Logger: a.log})
	// Catalog (near-cache, L2).
	store := catalog.NewStore(a.Pool, cfg.Currency)
	d.Products = catalog.NewCache(store, a.Cache, a.Space, cfg.ProductTTL, a.Stats,
		catalog.WithGuard(l2), catalog.WithLogger(a.log),
		catalog.WithNearCache(cfg.NearCacheTTL, cfg.NearCacheMaxEntries, cfg.NearCacheMaxBytes))
	d.Catalog = catalog.NewService(store, d.Products)
	republish := d.Catalog.Republish
	catalogRepublish.Store(&republish)

	// Inventory (L1).
	inv, err := inventory.NewService(a.Pool, a.Redis, a.Space, a.Reg,
		inventory.Options{HoldTTL: cfg.HoldTTL, Logger: a.log, RetryMetrics: rm, Hooks: cfg.inventoryHooks})
	if err != nil {
		return err
	}
	d.Inventory = inv
	if err := inv.LoadScripts(ctx); err != nil {
		a.log.Warn("inventory scripts not loaded at start (they load on first use)", slog.String("error", err.Error()))
	}

	// Discounts (L2). The bundle outlives two warm periods so a missed warm never empties it.
	ttl := cfg.DiscountTTL
	if p, err := jobs.Period(cfg.WarmDiscountsCron); err == nil && 2*p > ttl {
		ttl = 2 * p
	}
	dstore := discount.NewStore(a.Pool)
	dcache := discount.NewCache(a.Cache, a.Space, dstore, a.Stats, discount.CacheOptions{TTL: ttl, Log: a.log})
	d.Discounts = discount.NewService(dstore, dcache, nil, a.log)

	// Carts and preferences (L3).
	d.Carts, err = cart.NewService(a.Redis, a.Space, a.Pool, CartCatalog{Src: d.Products}, inv,
		cartPricer{svc: d.Discounts, currency: cfg.Currency},
		cart.Options{SessionTTL: cfg.SessionTTL, CustomerTTL: cfg.CustomerCartTTL, Currency: cfg.Currency, Logger: a.log})
	if err != nil {
		return err
	}
	d.Prefs = cart.NewPreferences(a.Redis, a.Space, a.Pool, cart.PrefsOptions{Logger: a.log, Breaker: prefsBreaker})
	a.Reg.MustRegister(append(d.Carts.Collectors(), d.Prefs.Collectors()...)...)

	// Payments.
	pay, err := a.paymentProvider()
	if err != nil {
		return err
	}

	// Checkout and orders (L1).
	d.Checkout, err = checkout.NewService(a.Pool, a.Redis, a.Space, CheckoutInventory{S: inv},
		CheckoutCarts{S: d.Carts}, CheckoutCatalog{Src: d.Products},
		CheckoutPricing{Rules: rulesetLoader{d.Discounts}}, pay, a.Reg,
		checkout.Options{HoldTTL: cfg.HoldTTL, CheckoutTTL: cfg.CheckoutTTL, Currency: cfg.Currency, EventsMaxLen: cfg.EventsMaxLen,
			Idempotency: d.Idempotency, Logger: a.log})
	if err != nil {
		return err
	}
	if err := d.Checkout.LoadScripts(ctx); err != nil {
		a.log.Warn("checkout scripts not loaded at start (they load on first use)", slog.String("error", err.Error()))
	}

	// Jobs: one replica runs each tick (Redis leadership per tick).
	var jobOpts []jobs.Option
	if cfg.JobLease > 0 {
		jobOpts = append(jobOpts, jobs.WithLease(cfg.JobLease))
	}
	d.Jobs = jobs.New(a.Redis, a.Space, a.log, a.Reg, jobOpts...)
	warmProducts := func(ctx context.Context) (int64, error) { n, err := d.Catalog.Warm(ctx); return int64(n), err }
	every := func(d time.Duration) string { return "@every " + d.String() }
	for _, j := range []struct {
		name, spec string
		fn         func(context.Context) error
	}{
		{"warm_products", cfg.WarmProductsCron, func(ctx context.Context) error { _, err := warmProducts(ctx); return err }},
		{"warm_discounts", cfg.WarmDiscountsCron, func(ctx context.Context) error { _, err := d.Discounts.Warm(ctx); return err }},
		// Three duties on the sweep interval, each its own job, so one that is stuck or
		// slow never holds back the others: expired holds back to stock (and dead stock
		// commits decided), unpaid checkouts expired, crashed checkouts recovered.
		{"hold_sweep", every(cfg.SweepInterval), func(ctx context.Context) error { _, err := inv.Sweep(ctx); return err }},
		{"checkout_expiry", every(cfg.SweepInterval), func(ctx context.Context) error { _, err := d.Checkout.ExpireDue(ctx); return err }},
		{"checkout_recovery", every(cfg.SweepInterval), func(ctx context.Context) error { _, err := d.Checkout.Recover(ctx); return err }},
		{"commits_prune", every(time.Hour), func(ctx context.Context) error {
			_, err := inv.PruneCommits(ctx, cfg.CommitRecordRetention)
			return err
		}},
		{"reconcile", cfg.ReconcileCron, func(ctx context.Context) error { _, err := inv.Reconcile(ctx, nil, false); return err }},
		{"outbox", every(cfg.OutboxInterval), func(ctx context.Context) error { _, err := d.Checkout.RelayOutbox(ctx); return err }},
		{"payments", every(cfg.OutboxInterval), func(ctx context.Context) error { _, err := d.Checkout.RelayPayments(ctx); return err }},
	} {
		if err := d.Jobs.Add(j.name, j.spec, cfg.JobTimeout, j.fn); err != nil {
			return fmt.Errorf("job %s: %w", j.name, err)
		}
	}

	// Routes. Storefront routes are rate limited per caller; the payment provider's
	// webhook is not (it is authenticated by its signature).
	limiter, err := ratelimit.New(a.Redis, a.Space, ratelimit.Config{PerSecond: float64(cfg.RateLimitPerSec),
		Burst: 2 * cfg.RateLimitPerSec}, rlBreaker, a.Reg)
	if err != nil {
		return err
	}
	if !cfg.RateLimitExact {
		limiter.Windowed()
	}
	a.callerLimit = limiter
	limit := limiter.Middleware(nil)
	v1 := a.Echo.Group("/v1", identify(a), func(next echo.HandlerFunc) echo.HandlerFunc {
		limited := limit(next)
		return func(c echo.Context) error {
			if p := c.Path(); p == checkout.PathWebhook || p == checkout.PathStripeWebhook {
				return next(c)
			}
			return limited(c)
		}
	})
	v1.POST("/sessions", sessionHandler(a))
	v1.DELETE("/sessions", auth.RevokeHandler(a.Sessions))
	adminAuth := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "commerce_admin_auth_failures_total",
		Help: "Failed admin authentications (failed), and attempts refused because the address failed too often (limited)."},
		[]string{"result"})
	a.Reg.MustRegister(adminAuth)
	adm := a.Echo.Group("/admin", auth.RequireAdminGuarded(cfg.AdminToken, auth.AdminGuard{
		Failures:  ratelimit.NewLocal(float64(cfg.AdminFailuresPerMinute)/60, cfg.AdminFailuresPerMinute, 0),
		AddressOf: ratelimit.AddressOf, Log: a.log, Counter: adminAuth}))
	catalog.NewHandler(d.Catalog).WithLowStock(func(ctx context.Context, id uuid.UUID, threshold int64) error {
		if err := inv.SetLowStockThreshold(ctx, id, threshold); errors.Is(err, inventory.ErrNotFound) {
			return fmt.Errorf("%w: %w", catalog.ErrNotFound, err)
		} else if err != nil {
			return err
		}
		return nil
	}).Register(v1, adm)
	inventory.NewHandler(inv).WithIdempotency(d.Idempotency).Register(v1, adm)
	discount.NewHandler(d.Discounts).Register(v1, adm)
	cart.NewHandler(d.Carts, d.Prefs).Register(v1, adm)
	checkout.NewHandler(d.Checkout, cfg.WebhookSecret).WithStripe(stripeVerifier(cfg.StripeWebhookSecret)).Register(v1, adm)
	cacheadmin.New(a.Cache, a.Space, a.Stats, map[string]func(context.Context) (int64, error){
		"products": warmProducts, "discounts": d.Discounts.Warm,
	}).WithState(a.Redis, a.cfg.SeparateCache()).Register(adm)
	return nil
}

// startBackground starts the write-behind workers and the jobs, and warms the caches
// once (in the background: a cold cache is slower, not wrong). Their stops run in Close
// before the connections close.
func (a *App) startBackground(ctx context.Context) error {
	d := &a.domains
	shareCtx, stopShare := context.WithCancel(context.WithoutCancel(ctx))
	go a.addrLimit.Run(shareCtx)
	go a.callerLimit.Run(shareCtx)
	a.closers = append(a.closers, func(context.Context) error { stopShare(); return nil })
	d.Catalog.Start(ctx)
	a.closers = append(a.closers, d.Catalog.Stop)
	if err := d.Carts.Start(ctx); err != nil {
		return err
	}
	a.closers = append(a.closers, d.Carts.Stop)
	d.Prefs.Start(ctx)
	a.closers = append(a.closers, d.Prefs.Stop)
	d.Jobs.Start()
	a.closers = append(a.closers, d.Jobs.Stop)
	go func() {
		for _, name := range []string{"warm_discounts", "warm_products"} {
			if err := d.Jobs.RunNow(context.WithoutCancel(ctx), name); err != nil && !errors.Is(err, jobs.ErrLocked) {
				a.log.Warn("start-up warm failed", slog.String("job", name), slog.String("error", err.Error()))
			}
		}
	}()
	return nil
}

// Seed loads the demo catalog and discount rules when they are empty and returns how many
// records it created (0 when there was data already).
func (a *App) Seed(ctx context.Context) (int, error) {
	n, err := catalog.Seed(ctx, a.domains.Catalog)
	if err != nil {
		return n, fmt.Errorf("seed catalog: %w", err)
	}
	m, err := discount.Seed(ctx, a.domains.Discounts, a.cfg.Currency)
	if err != nil {
		return n + m, fmt.Errorf("seed discounts: %w", err)
	}
	return n + m, nil
}

// rulesetLoader adapts the discount service to RulesetLoader (adapters.go).
type rulesetLoader struct{ s *discount.Service }

func (r rulesetLoader) Load(ctx context.Context) (discount.Ruleset, error) { return r.s.Current(ctx) }

// cartPricer adapts the discount service to cart.Pricer.
type cartPricer struct {
	svc      *discount.Service
	currency string
}

func toDiscountLines(lines []cart.PriceLine) []discount.Line {
	out := make([]discount.Line, len(lines))
	for i, l := range lines {
		out[i] = discount.Line{VariantID: l.VariantID, ProductID: l.ProductID, Category: l.Category, SKU: l.SKU,
			Name: l.Name, Quantity: l.Quantity, UnitPrice: l.UnitPrice}
	}
	return out
}

func (p cartPricer) Price(ctx context.Context, lines []cart.PriceLine, coupon string) (cart.Priced, error) {
	pr, err := p.svc.Price(ctx, toDiscountLines(lines), coupon, p.currency)
	if err != nil {
		return cart.Priced{}, err
	}
	out := cart.Priced{Subtotal: pr.Subtotal, DiscountTotal: pr.DiscountTotal, Total: pr.Total,
		LineDiscounts: make([]money.Money, len(pr.Lines))}
	for i, l := range pr.Lines {
		out.LineDiscounts[i] = l.Discount
	}
	for _, ap := range pr.Applied {
		out.Applied = append(out.Applied, cart.AppliedDiscount{ID: ap.RuleID, Name: ap.Name, Code: ap.Code, Amount: ap.Amount})
	}
	return out, nil
}

func (p cartPricer) CheckCoupon(ctx context.Context, lines []cart.PriceLine, code string) error {
	err := p.svc.CheckCoupon(ctx, toDiscountLines(lines), code, p.currency)
	switch {
	case errors.Is(err, discount.ErrCouponNotFound):
		return fmt.Errorf("%w: %w", cart.ErrCouponNotFound, err)
	case errors.Is(err, discount.ErrCouponNotApplicable):
		return fmt.Errorf("%w: %w", cart.ErrCouponNotApplicable, err)
	}
	return err
}

// paymentProvider builds the configured payment provider. The test provider takes no
// money: it is announced loudly at every start.
func (a *App) paymentProvider() (checkout.PaymentProvider, error) {
	cfg := a.cfg
	switch cfg.Provider() {
	case ProviderStripe:
		return stripepay.New(stripepay.Config{SecretKey: cfg.StripeSecretKey, APIBase: cfg.StripeAPIBase})
	case ProviderTest:
		a.log.Warn("PAYMENT_PROVIDER=test: THE TEST PAYMENT PROVIDER TAKES NO MONEY; tok_ok pays for any order. "+
			"Never run a real shop with it: set PAYMENT_PROVIDER=stripe.",
			slog.String("payment_provider", ProviderTest), slog.String("env", cfg.Env))
		return payment.NewTestProvider(), nil
	}
	return nil, fmt.Errorf("PAYMENT_PROVIDER %q must be stripe or test", cfg.PaymentProvider)
}

// stripeVerifier verifies Stripe webhooks with the endpoint's signing secret (an empty
// secret verifies nothing).
func stripeVerifier(secret string) checkout.StripeVerifier {
	return func(body []byte, sig string) (checkout.PaymentEvent, error) {
		ev, err := stripepay.ParseWebhook(body, sig, secret)
		if errors.Is(err, stripepay.ErrSignature) {
			return checkout.PaymentEvent{}, checkout.ErrBadSignature
		}
		if err != nil {
			return checkout.PaymentEvent{}, err
		}
		return checkout.PaymentEvent{ID: ev.ID, Type: checkout.EventType(ev.Type), IntentID: ev.IntentID,
			Refund: ev.Refund, AmountRefunded: ev.AmountRefunded}, nil
	}
}
