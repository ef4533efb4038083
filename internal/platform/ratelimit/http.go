package ratelimit

import (
	"context"
	"math"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/labstack/echo/v4"

	"commerce/internal/platform/auth"
	"commerce/internal/platform/httpx"
	"commerce/internal/platform/rkey"
)

// KeyOf identifies the caller of a storefront request: the customer when a valid token
// was presented, else the session, else the client address (an IPv6 client by its /64,
// which one household or host usually owns whole). It must run after auth.Identify.
func KeyOf(c echo.Context) string {
	caller := auth.CallerOf(c)
	switch {
	case caller.CustomerID != "":
		return "c:" + caller.CustomerID
	case caller.SessionID != "":
		return "s:" + caller.SessionID
	}
	return AddressOf(c)
}

// AddressOf identifies the client address of a request (as the IP extractor, and so
// TRUSTED_PROXIES, sees it): an IPv4 address, or an IPv6 client by its /64.
func AddressOf(c echo.Context) string {
	ip := net.ParseIP(c.RealIP())
	if ip == nil {
		return "ip:unknown"
	}
	if v4 := ip.To4(); v4 != nil {
		return "ip:" + v4.String()
	}
	return "ip:" + ip.Mask(net.CIDRMask(64, 128)).String()
}

// Middleware refuses a request over the caller's allowance with 429 rate_limited and a
// Retry-After in whole seconds (at least 1). keyFn defaults to KeyOf. An anonymous caller
// (a key of AddressOf) is limited in process, without a Redis call. A session or a
// customer is limited in process too, its count shared with the other replicas once per
// window (see Windowed); with Exact, it is limited in Redis on every request instead,
// and in process while Redis cannot decide (see the package comment).
func (l *Limiter) Middleware(keyFn func(echo.Context) string) echo.MiddlewareFunc {
	if keyFn == nil {
		keyFn = KeyOf
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if !l.Enabled() {
			return next
		}
		return func(c echo.Context) error {
			key := keyFn(c)
			var d Decision
			switch {
			case strings.HasPrefix(key, "ip:"):
				d = l.AllowLocal(key)
			case l.share != nil:
				d = l.AllowWindowed(key)
			default:
				d = l.Allow(c.Request().Context(), key)
			}
			if !d.Allowed {
				return httpx.RateLimited(retryAfterSeconds(d.RetryAfter))
			}
			return next(c)
		}
	}
}

func retryAfterSeconds(d time.Duration) int { return max(1, int(math.Ceil(d.Seconds()))) }

// Address is the per-address ceiling: every request from one client address, whatever
// session or token it carries and whatever its path, shares one in-process allowance.
// It runs before authentication, so traffic that fails authentication is limited too,
// and it costs no Redis call or cryptography.
type Address struct {
	l       *Local
	results *prometheus.CounterVec
	share   *addrShare
}

// NewAddress returns the ceiling (perSecond 0 or less: off) and registers
// commerce_ratelimit_address_requests_total{result} (allowed, limited, overflow) on reg.
func NewAddress(perSecond float64, burst int, reg prometheus.Registerer) *Address {
	a := &Address{l: NewLocal(perSecond, burst, 0), results: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "commerce_ratelimit_address_requests_total",
		Help: "Per-address ceiling decisions: allowed, limited, or overflow (admitted, the address table was full).",
	}, []string{"result"})}
	if reg != nil {
		reg.MustRegister(a.results)
	}
	return a
}

// Middleware refuses a request over its address's ceiling with 429 and Retry-After.
func (a *Address) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if a.l == nil {
			return next
		}
		return func(c echo.Context) error {
			addr := AddressOf(c)
			if a.share != nil {
				if refused, wait := a.share.refused(addr); refused {
					a.results.WithLabelValues("limited").Inc()
					return httpx.RateLimited(retryAfterSeconds(wait))
				}
			}
			before := a.l.Overflow.Load()
			ok, wait := a.l.Allow(addr)
			if ok && a.share != nil {
				a.share.admitted(addr)
			}
			switch {
			case !ok:
				a.results.WithLabelValues("limited").Inc()
				return httpx.RateLimited(retryAfterSeconds(wait))
			case a.l.Overflow.Load() != before:
				a.results.WithLabelValues("overflow").Inc()
			default:
				a.results.WithLabelValues("allowed").Inc()
			}
			return next(c)
		}
	}
}

// Shared makes the ceiling hold across replicas: once per window (1 s) the counts of busy
// addresses are added up in Redis by a background loop (Run), never on the request path.
func (a *Address) Shared(rdb redis.UniversalClient, space rkey.Space, perSecond float64, burst int) *Address {
	if a.l != nil {
		a.share = newAddrShare(rdb, space, "rl:addr:", perSecond, burst, time.Second)
	}
	return a
}

// Run shares the counts every window until ctx ends. Errors (Redis down) are skipped:
// each replica's own ceiling still applies meanwhile.
func (a *Address) Run(ctx context.Context) {
	if a.share != nil {
		a.share.run(ctx)
	}
}
