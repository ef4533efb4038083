package ratelimit

import (
	"math"
	"net"

	"github.com/labstack/echo/v4"

	"commerce/internal/platform/auth"
	"commerce/internal/platform/httpx"
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
// Retry-After in whole seconds (at least 1). keyFn defaults to KeyOf. When Redis cannot
// decide, the request passes (see the package comment).
func (l *Limiter) Middleware(keyFn func(echo.Context) string) echo.MiddlewareFunc {
	if keyFn == nil {
		keyFn = KeyOf
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if !l.Enabled() {
			return next
		}
		return func(c echo.Context) error {
			d := l.Allow(c.Request().Context(), keyFn(c))
			if !d.Allowed {
				return httpx.RateLimited(max(1, int(math.Ceil(d.RetryAfter.Seconds()))))
			}
			return next(c)
		}
	}
}
