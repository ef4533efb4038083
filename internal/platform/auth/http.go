package auth

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"commerce/internal/platform/httpx"
)

const callerKey = "auth.caller"

// HeaderSession carries the anonymous session id.
const HeaderSession = "X-Session-ID"

// Identify reads the caller's identity from Authorization (customer JWT) and X-Session-ID
// (session credential). Whatever is presented must be valid: a bad token or a forged,
// expired or revoked session is a 401, never silently ignored. Both are verified by
// their signatures before any Redis call. A request with neither passes through as
// anonymous. A session credential older than Sessions.RefreshAfter is re-issued in the
// X-Session-ID response header.
func Identify(tokens *Tokens, sessions *Sessions) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			var caller Caller
			if h := c.Request().Header.Get(echo.HeaderAuthorization); h != "" {
				tok, ok := bearer(h)
				if !ok {
					return httpx.Unauthorized("Authorization must be a Bearer token")
				}
				id, err := tokens.Verify(tok)
				if err != nil {
					return httpx.Unauthorized("invalid or expired token")
				}
				caller.CustomerID = id
			}
			if cred := c.Request().Header.Get(HeaderSession); cred != "" {
				id, exp, err := sessions.Verify(cred)
				if err != nil {
					return httpx.Unauthorized("unknown or expired session")
				}
				if err := sessions.Touch(c.Request().Context(), id); errors.Is(err, ErrInvalidSession) {
					return httpx.Unauthorized("unknown or expired session")
				}
				// A Redis error leaves the session as its signature proved it: only a
				// revocation made during the outage is not seen.
				if sessions.ttl-exp.Sub(sessions.nowFunc()) > sessions.RefreshAfter {
					fresh, _ := sessions.Credential(id)
					c.Response().Header().Set(HeaderSession, fresh)
				}
				caller.SessionID = id
			}
			c.Set(callerKey, caller)
			return next(c)
		}
	}
}

// CallerOf returns the identity Identify attached to c (zero when anonymous).
func CallerOf(c echo.Context) Caller {
	v, _ := c.Get(callerKey).(Caller)
	return v
}

// RequireShopper lets through a caller with a session or a customer token: the routes
// that act on "the caller's cart".
func RequireShopper(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, _, ok := CallerOf(c).Owner(); !ok {
			return httpx.Unauthorized("a session (X-Session-ID) or a customer token is required")
		}
		return next(c)
	}
}

// RequireCustomer lets through only a caller with a valid customer token.
func RequireCustomer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if CallerOf(c).CustomerID == "" {
			return httpx.Unauthorized("a customer token is required")
		}
		return next(c)
	}
}

// RequireAdmin guards /admin: the bearer token must equal adminToken (constant time).
// Anything else, a customer JWT or a session included, is a 401.
func RequireAdmin(adminToken string) echo.MiddlewareFunc {
	return RequireAdminGuarded(adminToken, AdminGuard{})
}

// FailureLimiter limits failed attempts per key (ratelimit.Local is one).
type FailureLimiter interface {
	// Peek says whether one more attempt of key is allowed, without counting one.
	Peek(key string) (bool, time.Duration)
	// Allow counts one failed attempt of key.
	Allow(key string) (bool, time.Duration)
}

// AdminGuard limits and logs failed admin attempts. Zero fields turn their part off.
type AdminGuard struct {
	Failures  FailureLimiter
	AddressOf func(echo.Context) string
	Log       *slog.Logger
	// Counter, when set, counts attempts by result: failed, limited.
	Counter *prometheus.CounterVec
}

// RequireAdminGuarded is RequireAdmin with failed attempts limited per client address
// (an address over its allowance gets 429 before its token is even compared) and logged.
func RequireAdminGuarded(adminToken string, g AdminGuard) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			addr := ""
			if g.AddressOf != nil {
				addr = g.AddressOf(c)
			}
			if g.Failures != nil {
				if ok, wait := g.Failures.Peek(addr); !ok {
					if g.Counter != nil {
						g.Counter.WithLabelValues("limited").Inc()
					}
					return httpx.RateLimited(max(1, int(math.Ceil(wait.Seconds()))))
				}
			}
			tok, ok := bearer(c.Request().Header.Get(echo.HeaderAuthorization))
			if !ok || !TokenEqual(tok, adminToken) {
				if g.Failures != nil {
					g.Failures.Allow(addr)
				}
				if g.Counter != nil {
					g.Counter.WithLabelValues("failed").Inc()
				}
				if g.Log != nil {
					g.Log.LogAttrs(c.Request().Context(), slog.LevelWarn, "admin authentication failed",
						slog.String("request_id", httpx.RequestID(c)), slog.String("client", addr),
						slog.String("route", c.Path()), slog.Bool("token_presented", ok))
				}
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="admin"`)
				return httpx.Unauthorized("admin token required")
			}
			return next(c)
		}
	}
}

// SessionHandler serves POST /v1/sessions: the answer's session_id is the credential to
// send in X-Session-ID.
func SessionHandler(sessions *Sessions) echo.HandlerFunc {
	type resp struct {
		SessionID string `json:"session_id"`
		ExpiresAt string `json:"expires_at"`
	}
	return func(c echo.Context) error {
		if err := httpx.BindOptional(c, &struct{}{}); err != nil {
			return err
		}
		s, err := sessions.New(c.Request().Context(), c.RealIP())
		if errors.Is(err, ErrRateLimited) {
			return httpx.RateLimited(60)
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, resp{SessionID: s.Credential, ExpiresAt: s.ExpiresAt.Format("2006-01-02T15:04:05Z")})
	}
}

// RevokeHandler serves DELETE /v1/sessions: it ends the caller's session (X-Session-ID).
func RevokeHandler(sessions *Sessions) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := CallerOf(c).SessionID
		if id == "" {
			return httpx.Unauthorized("a session (X-Session-ID) is required")
		}
		if err := sessions.Revoke(c.Request().Context(), id); err != nil {
			return err
		}
		c.Response().Header().Del(HeaderSession)
		return c.NoContent(http.StatusNoContent)
	}
}

func bearer(h string) (string, bool) {
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(h[len(p):]), true
}
