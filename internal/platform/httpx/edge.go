package httpx

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"
)

// methods is the fixed set of methods the service knows; any other method is "other" in
// metrics and logs, so no label value ever comes from the request.
var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions}

// MethodLabel returns m when it is one of the known methods and "other" otherwise.
func MethodLabel(m string) string {
	if slices.Contains(methods, m) {
		return m
	}
	return "other"
}

const headKey = "httpx.head"

// HeadAsGet (a Pre middleware) serves HEAD wherever GET works (RFC 9110 §9.3.2): the
// request is routed as a GET, and RestoreHead (the first Use middleware) turns it back
// into a HEAD, so net/http sends the headers without the body.
func HeadAsGet() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if r := c.Request(); r.Method == http.MethodHead {
				c.Set(headKey, true)
				r.Method = http.MethodGet
			}
			return next(c)
		}
	}
}

// RestoreHead undoes HeadAsGet once the request is routed.
func RestoreHead() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if h, _ := c.Get(headKey).(bool); h {
				c.Request().Method = http.MethodHead
			}
			return next(c)
		}
	}
}

// Method returns the method the caller sent, as a label: one of a fixed set or "other".
func Method(c echo.Context) string { return MethodLabel(c.Request().Method) }

// Routes knows the routes registered on an echo instance (not the catch-all routes
// echo adds for group middleware). Build it after every route is registered.
type Routes struct {
	e    *echo.Echo
	once sync.Once
	real map[string]bool // "METHOD path"
	pats map[string]bool // path
}

// NewRoutes returns the route table of e; it is read at the first request.
func NewRoutes(e *echo.Echo) *Routes { return &Routes{e: e} }

func (rt *Routes) load() {
	rt.once.Do(func() {
		rt.real, rt.pats = map[string]bool{}, map[string]bool{}
		for _, r := range rt.e.Routes() {
			if slices.Contains(methods, r.Method) {
				rt.real[r.Method+" "+r.Path] = true
				rt.pats[r.Path] = true
			}
		}
	})
}

// Label is the route label of c: its pattern, or "unmatched".
func (rt *Routes) Label(c echo.Context) string {
	rt.load()
	if p := c.Path(); rt.pats[p] && !paramSpansSegments(c) {
		return p
	}
	return "unmatched"
}

// paramSpansSegments reports whether echo matched a route by letting one path parameter
// run over a "/". Its router does that when it backtracks from a deeper path towards a
// group's catch-all (DELETE /admin/products/a/b reaches /admin/products/:id with id
// "a/b"). No route of the service takes a parameter of more than one segment, so such a
// match is no match: the path does not exist.
func paramSpansSegments(c echo.Context) bool {
	for _, v := range c.ParamValues() {
		if strings.Contains(v, "/") {
			return true
		}
	}
	return false
}

// allowed returns the methods with a route for path, HEAD included where GET is.
func (rt *Routes) allowed(path string) []string {
	var out []string
	for _, m := range methods {
		if m == http.MethodHead || m == http.MethodOptions {
			continue
		}
		c := rt.e.AcquireContext()
		c.Reset(&http.Request{Method: m, URL: &url.URL{Path: path}}, nil)
		rt.e.Router().Find(m, path, c)
		if rt.real[m+" "+c.Path()] && !paramSpansSegments(c) {
			out = append(out, m)
			if m == http.MethodGet {
				out = append(out, http.MethodHead)
			}
		}
		rt.e.ReleaseContext(c)
	}
	return out
}

// MethodNotAllowed answers 405 with an Allow header when the path exists under another
// method, instead of the 404 that echo's group catch-all routes would give.
func (rt *Routes) MethodNotAllowed() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			rt.load()
			m := c.Request().Method
			if m == http.MethodHead {
				m = http.MethodGet
			}
			if rt.real[m+" "+c.Path()] && !paramSpansSegments(c) {
				return next(c)
			}
			if allow := rt.allowed(echo.GetPath(c.Request())); len(allow) > 0 {
				c.Response().Header().Set(echo.HeaderAllow, strings.Join(allow, ", "))
				return New(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method not allowed")
			}
			return New(http.StatusNotFound, CodeNotFound, "no such route")
		}
	}
}

// privatePrefixes are the paths whose answers belong to one caller.
var privatePrefixes = []string{"/admin", "/v1/cart", "/v1/checkouts", "/v1/orders", "/v1/me", "/v1/sessions", "/v1/payments"}

// SecurityHeaders sets X-Content-Type-Options: nosniff on every response and
// Cache-Control: no-store on private ones (carts, checkouts, orders, preferences,
// sessions, everything under /admin), so no shared cache keeps one shopper's answer.
func SecurityHeaders() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("X-Content-Type-Options", "nosniff")
			if isPrivate(c.Request().URL.Path) {
				h.Set(echo.HeaderCacheControl, "no-store")
			}
			return next(c)
		}
	}
}

func isPrivate(p string) bool {
	for _, pre := range privatePrefixes {
		if p == pre || strings.HasPrefix(p, pre+"/") {
			return true
		}
	}
	return false
}

// QueryText returns the query parameter name, or a 422 naming it when its value is text
// PostgreSQL cannot store (invalid UTF-8, a NUL). Handlers read through it every string
// parameter that reaches a query; parameters a route does not read are ignored, whatever
// they hold.
func QueryText(c echo.Context, name string) (string, error) {
	v := c.QueryParam(name)
	if !storableText(v) {
		return "", Validation(map[string]string{fieldOf(jsontext.Pointer("/" + escapePointer(name))): "must be valid UTF-8 without NUL characters"})
	}
	return v, nil
}

func storableText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
