package auth

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"commerce/internal/platform/httpx"
	"commerce/internal/platform/rkey"
)

const callerKey = "auth.caller"

// HeaderSession carries the anonymous session id.
const HeaderSession = "X-Session-ID"

// Identify reads the caller's identity from Authorization (customer JWT) and X-Session-ID.
// Whatever is presented must be valid: a bad token or an unknown session is a 401, never
// silently ignored. A request with neither passes through as anonymous.
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
			if sid := c.Request().Header.Get(HeaderSession); sid != "" {
				if err := sessions.Touch(c.Request().Context(), sid); err != nil {
					if errors.Is(err, ErrInvalidSession) {
						return httpx.Unauthorized("unknown or expired session")
					}
					// Redis cannot vouch for the session. A read goes on with the id
					// unverified (catalog and availability degrade to PostgreSQL; what
					// lives in Redis answers 503 anyway; a session id is unguessable, so
					// an order lookup by it stays private); a write is refused.
					if m := c.Request().Method; (m != http.MethodGet && m != http.MethodHead) || !rkey.ValidSessionID(sid) {
						return httpx.Unavailable(err)
					}
				}
				caller.SessionID = sid
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
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			tok, ok := bearer(c.Request().Header.Get(echo.HeaderAuthorization))
			if !ok || !TokenEqual(tok, adminToken) {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="admin"`)
				return httpx.Unauthorized("admin token required")
			}
			return next(c)
		}
	}
}

// SessionHandler serves POST /v1/sessions.
func SessionHandler(sessions *Sessions) echo.HandlerFunc {
	type resp struct {
		SessionID string `json:"session_id"`
		ExpiresAt string `json:"expires_at"`
	}
	return func(c echo.Context) error {
		if err := httpx.BindOptional(c, &struct{}{}); err != nil {
			return err
		}
		id, exp, err := sessions.Create(c.Request().Context(), c.RealIP())
		if errors.Is(err, ErrRateLimited) {
			return httpx.RateLimited(60)
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, resp{SessionID: id, ExpiresAt: exp.Format("2006-01-02T15:04:05Z")})
	}
}

func bearer(h string) (string, bool) {
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(h[len(p):]), true
}
