// Package resilience keeps the service answering when PostgreSQL or Redis misbehave: a
// circuit breaker for Redis reads that have a PostgreSQL fallback, retries with
// exponential backoff and full jitter for transient failures, and per-call timeouts.
package resilience

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"commerce/internal/platform/fault"
)

// State of a breaker, as exported by the commerce_breaker_state gauge.
type State int

// Breaker states. The numbers are the gauge values.
const (
	StateClosed   State = 0
	StateHalfOpen State = 1
	StateOpen     State = 2
)

func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateHalfOpen:
		return "half-open"
	case StateOpen:
		return "open"
	}
	return "unknown"
}

func fromGobreaker(s gobreaker.State) State {
	switch s {
	case gobreaker.StateOpen:
		return StateOpen
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	}
	return StateClosed
}

// ErrOpen is returned (wrapped) by Do while the breaker rejects calls. It matches
// fault.ErrUnavailable, so a caller without a fallback answers 503 with Retry-After.
var ErrOpen = errors.New("circuit breaker open")

// BreakerConfig configures a Breaker. Zero fields take the defaults in brackets.
type BreakerConfig struct {
	// Name labels the metrics ("redis_l2", "ratelimit"); unique per Metrics.
	Name string
	// ConsecutiveFailures trips the breaker open [5].
	ConsecutiveFailures uint32
	// OpenTimeout is how long the breaker stays open before it lets a probe through [2s].
	OpenTimeout time.Duration
	// HalfOpenRequests is how many probes may run at once while half-open [1].
	HalfOpenRequests uint32
	// CallTimeout, when positive, bounds each call: fn gets a context with this deadline.
	// The Redis client must honour context deadlines (go-redis ContextTimeoutEnabled).
	CallTimeout time.Duration
	// OnClosed, when set, is called (in its own goroutine) each time the breaker closes
	// again after being open: the dependency answers again, so work deferred while it
	// was down (republishing cache invalidations) can run now.
	OnClosed func()
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.Name == "" {
		c.Name = "redis"
	}
	if c.ConsecutiveFailures == 0 {
		c.ConsecutiveFailures = 5
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = 2 * time.Second
	}
	if c.HalfOpenRequests == 0 {
		c.HalfOpenRequests = 1
	}
	return c
}

// Breaker is a circuit breaker for calls to a dependency that has a fallback (L2 reads of
// Redis fall back to PostgreSQL). Only dependency failures (fault.IsUnavailable: refused or
// reset connections, timeouts, LOADING…) count against it; redis.Nil, validation errors and
// other caller-side errors count as successes, and a call whose caller went away (its
// context ended) is not counted at all. Safe for concurrent use.
type Breaker struct {
	cfg BreakerConfig
	cb  *gobreaker.TwoStepCircuitBreaker[struct{}]
}

// errCallerGone marks an outcome that says nothing about the dependency.
var errCallerGone = errors.New("caller context ended")

// NewBreaker returns a closed breaker. m may be nil (no metrics); otherwise the breaker's
// state is exported as commerce_breaker_state{name} and its transitions are counted.
func NewBreaker(cfg BreakerConfig, m *Metrics) *Breaker {
	cfg = cfg.withDefaults()
	b := &Breaker{cfg: cfg}
	st := gobreaker.Settings{
		Name:        cfg.Name,
		MaxRequests: cfg.HalfOpenRequests,
		Timeout:     cfg.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.ConsecutiveFailures },
		IsSuccessful: func(err error) bool {
			return err == nil || !fault.IsUnavailable(err)
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errCallerGone) },
	}
	st.OnStateChange = func(name string, from, to gobreaker.State) {
		if m != nil {
			m.changed(name, fromGobreaker(from), fromGobreaker(to))
		}
		if to == gobreaker.StateClosed && cfg.OnClosed != nil {
			go cfg.OnClosed()
		}
	}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](st)
	if m != nil {
		m.add(b)
	}
	return b
}

// Name is the breaker's metric label.
func (b *Breaker) Name() string { return b.cfg.Name }

// State is the breaker's current state (an open breaker whose timeout has passed reports
// half-open).
func (b *Breaker) State() State { return fromGobreaker(b.cb.State()) }

// Do runs fn through b. While b is open (or half-open with its probes in flight) fn is not
// called and the error wraps ErrOpen and fault.ErrUnavailable. Otherwise fn's result and
// error are returned unchanged, fn's context carrying b's CallTimeout if configured.
// Callers with a fallback test fault.IsUnavailable(err) and take it.
func Do[T any](b *Breaker, ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	done, err := b.cb.Allow()
	if err != nil {
		return zero, &openError{name: b.cfg.Name, cause: err}
	}
	cctx, cancel := ctx, context.CancelFunc(func() {})
	if b.cfg.CallTimeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, b.cfg.CallTimeout)
	}
	v, err := fn(cctx)
	cancel()
	switch {
	case err != nil && ctx.Err() != nil:
		done(errCallerGone)
	default:
		done(err)
	}
	return v, err
}

// Run is Do for calls without a result.
func (b *Breaker) Run(ctx context.Context, fn func(context.Context) error) error {
	_, err := Do(b, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// openError is what Do returns while the breaker rejects calls.
type openError struct {
	name  string
	cause error // gobreaker.ErrOpenState or ErrTooManyRequests
}

func (e *openError) Error() string { return "breaker " + e.name + ": " + e.cause.Error() }

func (e *openError) Is(target error) bool {
	return target == ErrOpen || target == fault.ErrUnavailable
}

func (e *openError) Unwrap() error { return e.cause }

// Metrics exports breaker states and retry counts. Create one per registry and share it.
type Metrics struct {
	mu       sync.Mutex
	breakers map[string]*Breaker
	state    *prometheus.Desc
	changes  *prometheus.CounterVec
	retries  *prometheus.CounterVec
}

// NewMetrics registers on reg: commerce_breaker_state{name} (0 closed, 1 half-open, 2
// open, read live at scrape time), commerce_breaker_state_changes_total{name,from,to} and
// commerce_retries_total{op,outcome}.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		breakers: map[string]*Breaker{},
		state: prometheus.NewDesc("commerce_breaker_state",
			"Circuit breaker state: 0 closed, 1 half-open, 2 open.", []string{"name"}, nil),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commerce_breaker_state_changes_total", Help: "Circuit breaker transitions.",
		}, []string{"name", "from", "to"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commerce_retries_total",
			Help: "Retried calls by operation and outcome (retry: one more attempt; exhausted: gave up).",
		}, []string{"op", "outcome"}),
	}
	reg.MustRegister(stateCollector{m}, m.changes, m.retries)
	return m
}

func (m *Metrics) add(b *Breaker) {
	m.mu.Lock()
	m.breakers[b.cfg.Name] = b
	m.mu.Unlock()
	// Export every transition at 0 from the start, so increase() and the alerts and
	// panels built on it see a series before the first trip.
	for _, t := range [][2]State{{StateClosed, StateOpen}, {StateOpen, StateHalfOpen},
		{StateHalfOpen, StateClosed}, {StateHalfOpen, StateOpen}} {
		m.changes.WithLabelValues(b.cfg.Name, t[0].String(), t[1].String())
	}
}

// touch exports op's retry series at 0 (see add).
func (m *Metrics) touch(op string) {
	if m != nil {
		m.retries.WithLabelValues(op, "retry")
		m.retries.WithLabelValues(op, "exhausted")
	}
}

func (m *Metrics) changed(name string, from, to State) {
	m.changes.WithLabelValues(name, from.String(), to.String()).Inc()
}

type stateCollector struct{ m *Metrics }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.state }

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	for name, b := range c.m.breakers {
		ch <- prometheus.MustNewConstMetric(c.m.state, prometheus.GaugeValue, float64(b.State()), name)
	}
}
