// Package ratelimit limits storefront requests per caller with GCRA. By default a caller
// is decided in process and its count shared across replicas once a window (Windowed: no
// Redis call a request); in exact mode a session or customer is decided in Redis (one Lua
// script, time from Redis TIME), so every replica shares one allowance per request.
//
// It fails open: when Redis cannot answer (down, slow, breaker open) the request is let
// through and counted as failed_open. The limiter protects the service from one noisy
// caller; refusing every request while Redis is down would instead turn a Redis outage
// into a full outage, against the degradation matrix of docs/architecture.md (catalog reads keep working
// from PostgreSQL). During an outage the limiter is off; its metric shows it.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/resilience"
	"commerce/internal/platform/rkey"
	"commerce/scripts/lua"
)

// ErrBadConfig is returned by New for a rate or burst that cannot be enforced.
var ErrBadConfig = errors.New("ratelimit: bad configuration")

// Config is the allowance of one caller. Zero fields take the defaults in brackets.
type Config struct {
	// PerSecond is the sustained rate; 0 or less disables the limiter.
	PerSecond float64
	// Burst is how many requests may arrive at once [PerSecond, at least 1].
	Burst int
	// Timeout bounds the Redis call of one decision [50ms]; on timeout the request passes.
	Timeout time.Duration
}

// Decision is the outcome of one admission.
type Decision struct {
	Allowed bool
	// Remaining is how many more requests would be admitted right now.
	Remaining int
	// RetryAfter is when a refused request may be admitted (0 when allowed).
	RetryAfter time.Duration
	// FailedOpen is true when Redis could not decide and the request was let through.
	FailedOpen bool
}

// Limiter admits requests per key. Safe for concurrent use.
type Limiter struct {
	rdb      redis.UniversalClient
	space    rkey.Space
	script   *redis.Script
	cfg      Config
	interval int64 // µs between requests at the sustained rate
	breaker  *resilience.Breaker
	results  *prometheus.CounterVec
	local    *Local // anonymous callers, and everyone while Redis cannot decide
	share    *addrShare
}

// New returns a limiter storing its state under space. breaker may be nil; with one,
// Redis failures trip it and the limiter stops asking Redis (failing open) while it is
// open. The counter commerce_ratelimit_requests_total{result} (allowed, limited,
// failed_open) is registered on reg.
func New(rdb redis.UniversalClient, space rkey.Space, cfg Config, breaker *resilience.Breaker,
	reg prometheus.Registerer) (*Limiter, error) {
	if cfg.PerSecond > 1e6 || math.IsNaN(cfg.PerSecond) {
		return nil, fmt.Errorf("%w: rate %v per second", ErrBadConfig, cfg.PerSecond)
	}
	if cfg.Burst <= 0 {
		cfg.Burst = max(1, int(math.Ceil(cfg.PerSecond)))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 50 * time.Millisecond
	}
	l := &Limiter{rdb: rdb, space: space, script: redis.NewScript(lua.Source("ratelimit")), cfg: cfg,
		breaker: breaker,
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commerce_ratelimit_requests_total",
			Help: "Rate limiter decisions: allowed, limited, or failed_open (Redis could not decide).",
		}, []string{"result"})}
	if cfg.PerSecond > 0 {
		l.interval = max(1, int64(math.Round(1e6/cfg.PerSecond)))
		l.local = NewLocal(cfg.PerSecond, cfg.Burst, 0)
	}
	if reg != nil {
		reg.MustRegister(l.results)
	}
	return l, nil
}

// Enabled reports whether the limiter enforces anything.
func (l *Limiter) Enabled() bool { return l.interval > 0 }

// Allow admits one request of the caller identified by key (an opaque string made of
// rkey-safe parts, see KeyOf). It never returns an error: when Redis cannot decide, the
// in-process allowance of key decides instead (FailedOpen set, counted as failed_open),
// so a slow or lost Redis never switches limiting off.
func (l *Limiter) Allow(ctx context.Context, key string) Decision {
	if !l.Enabled() {
		return Decision{Allowed: true, Remaining: math.MaxInt32}
	}
	res, err := l.run(ctx, key)
	if err != nil {
		l.results.WithLabelValues("failed_open").Inc()
		if ok, wait := l.local.Allow(key); !ok {
			l.results.WithLabelValues("limited").Inc()
			return Decision{RetryAfter: wait, FailedOpen: true}
		}
		return Decision{Allowed: true, FailedOpen: true}
	}
	if res.allowed {
		l.results.WithLabelValues("allowed").Inc()
		return Decision{Allowed: true, Remaining: int(res.remaining)}
	}
	l.results.WithLabelValues("limited").Inc()
	return Decision{RetryAfter: time.Duration(res.retryUs) * time.Microsecond}
}

// AllowLocal admits one request of key in process only (no Redis call): the limiter of
// anonymous callers, whose key is their address.
func (l *Limiter) AllowLocal(key string) Decision {
	if !l.Enabled() {
		return Decision{Allowed: true, Remaining: math.MaxInt32}
	}
	if ok, wait := l.local.Allow(key); !ok {
		l.results.WithLabelValues("limited").Inc()
		return Decision{RetryAfter: wait}
	}
	l.results.WithLabelValues("allowed").Inc()
	return Decision{Allowed: true}
}

// Windowed limits sessions and customers in process, like anonymous callers, and makes
// their allowance hold across replicas per window instead of per request: once a second
// each replica adds its busy callers' counts to a shared counter in Redis (Run), and a
// caller over the window's allowance over all replicas is refused by every replica for
// the next window. A request then costs no Redis call. A caller can exceed its rate by
// up to one window's allowance per replica before the shared count stops it; Exact mode
// (the Redis script on every request) does not allow that, at one Redis call a request.
func (l *Limiter) Windowed() *Limiter {
	if l.Enabled() {
		l.share = newAddrShare(l.rdb, l.space, "rl:win:", l.cfg.PerSecond, l.cfg.Burst, time.Second)
	}
	return l
}

// Run shares the windowed counts until ctx ends (nothing to do unless Windowed).
func (l *Limiter) Run(ctx context.Context) {
	if l.share != nil {
		l.share.run(ctx)
	}
}

// AllowWindowed admits one request of key in process, refusing it while the shared count
// of the last window says key is over its allowance across replicas (see Windowed).
func (l *Limiter) AllowWindowed(key string) Decision {
	if !l.Enabled() {
		return Decision{Allowed: true, Remaining: math.MaxInt32}
	}
	if refused, wait := l.share.refused(key); refused {
		l.results.WithLabelValues("limited").Inc()
		return Decision{RetryAfter: wait}
	}
	d := l.AllowLocal(key)
	if d.Allowed {
		l.share.admitted(key)
	}
	return d
}

// scriptReply is ratelimit.lua's answer: {'OK', remaining, 0} or {'LIMITED', 0, retry µs}.
type scriptReply struct {
	allowed            bool
	remaining, retryUs int64
}

func (l *Limiter) run(ctx context.Context, key string) (scriptReply, error) {
	call := func(ctx context.Context) (scriptReply, error) {
		ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
		defer cancel()
		v, err := l.script.Run(ctx, l.rdb, []string{l.space.Key("rl:{", key, "}")},
			l.interval, l.cfg.Burst, 1).Slice()
		if err != nil {
			return scriptReply{}, err
		}
		return parseReply(v)
	}
	if l.breaker != nil {
		return resilience.Do(l.breaker, ctx, call)
	}
	return call(ctx)
}

func parseReply(v []any) (scriptReply, error) {
	if len(v) != 3 {
		return scriptReply{}, fmt.Errorf("ratelimit: unexpected reply %v", v)
	}
	status, _ := v[0].(string)
	remaining, ok1 := v[1].(int64)
	retry, ok2 := v[2].(int64)
	if (status != "OK" && status != "LIMITED") || !ok1 || !ok2 {
		return scriptReply{}, fmt.Errorf("ratelimit: unexpected reply %v", v)
	}
	return scriptReply{allowed: status == "OK", remaining: remaining, retryUs: retry}, nil
}
