package httpx

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// HeaderRequestID is echoed when the caller sends a well-formed one, minted otherwise.
const HeaderRequestID = "X-Request-ID"

var requestIDRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// RequestIDMiddleware sets X-Request-ID on every response. A caller's id is echoed only
// when it is short and plain (no log injection); otherwise a UUID is minted.
func RequestIDMiddleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id := c.Request().Header.Get(HeaderRequestID)
			if !requestIDRe.MatchString(id) {
				id = uuid.NewString()
			}
			c.Set("request_id", id)
			c.Response().Header().Set(HeaderRequestID, id)
			return next(c)
		}
	}
}

// RequestID returns the id of the request being served.
func RequestID(c echo.Context) string {
	if v, ok := c.Get("request_id").(string); ok {
		return v
	}
	return ""
}

// BodyLimit rejects bodies over MaxBody with 413 before a handler reads them, whether
// the length is declared or the body is chunked.
func BodyLimit() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.ContentLength > MaxBody {
				return New(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "request body exceeds 1 MiB")
			}
			if r.Body != nil {
				r.Body = http.MaxBytesReader(c.Response(), r.Body, MaxBody)
			}
			return next(c)
		}
	}
}

// Deadline bounds the work of one request: every PostgreSQL and Redis call made with the
// request's context ends by then, and the funnel answers 503 for what ran out of time.
func Deadline(d time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if d <= 0 {
			return next
		}
		return func(c echo.Context) error {
			ctx, cancel := context.WithTimeout(c.Request().Context(), d)
			defer cancel()
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	}
}

// HTTPMetrics holds the request metrics a shop operator alerts on.
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewHTTPMetrics registers the request counters and latency histogram on reg.
func NewHTTPMetrics(reg prometheus.Registerer) *HTTPMetrics {
	m := &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commerce_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "commerce_http_request_duration_seconds", Help: "HTTP request latency by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// AccessMiddleware records metrics and writes one access log line per request (debug
// level for 2xx/3xx/4xx, so production logs only carry what matters). No label comes from
// the request: the route is its pattern or "unmatched" (routes), the method one of a
// fixed set or "other".
func AccessMiddleware(log *slog.Logger, m *HTTPMetrics, routes *Routes) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			status := c.Response().Status
			if err != nil {
				status = fromEcho(err).Status
			}
			route := routes.Label(c)
			method := Method(c)
			d := time.Since(start)
			if m != nil {
				m.requests.WithLabelValues(route, method, statusLabel(status)).Inc()
				m.latency.WithLabelValues(route, method).Observe(d.Seconds())
			}
			if log.Enabled(c.Request().Context(), slog.LevelDebug) {
				log.LogAttrs(c.Request().Context(), slog.LevelDebug, "request",
					slog.String("request_id", RequestID(c)), slog.String("method", method),
					slog.String("route", route), slog.Int("status", status), slog.Duration("duration", d))
			}
			return err
		}
	}
}

// Recover turns a panic in a handler into a 500 through the error funnel.
func Recover() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r)
					}
					err = &Error{Status: http.StatusInternalServerError, Code: CodeInternal,
						Message: "internal error", Err: panicError{r}}
				}
			}()
			return next(c)
		}
	}
}

type panicError struct{ v any }

func (p panicError) Error() string { return "panic: " + strconv.Quote(toString(p.v)) }

func toString(v any) string {
	if e, ok := v.(error); ok {
		return e.Error()
	}
	if s, ok := v.(string); ok {
		return s
	}
	return "non-string panic value"
}

// statusLabel is the status as a label: a valid HTTP status code, or "other".
func statusLabel(s int) string {
	if s < 100 || s > 599 {
		return "other"
	}
	return strconv.Itoa(s)
}
