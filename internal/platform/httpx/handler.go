package httpx

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// ErrorHandler is the one error funnel: every handler returns errors and this renders the
// contract's JSON shape. It logs 5xx once, with the request id, and never shows internals.
func ErrorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		e := fromEcho(err)
		if e.Status >= 500 {
			log.LogAttrs(c.Request().Context(), slog.LevelError, "request failed",
				slog.String("request_id", RequestID(c)),
				slog.String("method", Method(c)),
				slog.String("route", c.Path()),
				slog.Int("status", e.Status),
				slog.String("error", err.Error()))
		}
		if e.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", retryAfterHeader(e.RetryAfter))
		}
		details := e.Details
		if details == nil {
			details = map[string]any{}
		}
		body := errorBody{Error: errorPayload{Code: e.Code, Message: e.Message, Details: details}}
		if Method(c) == http.MethodHead {
			_ = c.NoContent(e.Status)
			return
		}
		_ = c.JSON(e.Status, body)
	}
}

func fromEcho(err error) *Error {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return New(http.StatusNotFound, CodeNotFound, "no such route")
		case http.StatusMethodNotAllowed:
			return New(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method not allowed")
		case http.StatusRequestEntityTooLarge:
			return New(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "request body exceeds 1 MiB")
		case http.StatusUnsupportedMediaType:
			return New(http.StatusUnsupportedMediaType, CodeBadRequest, "content type must be application/json")
		case http.StatusUnauthorized:
			return Unauthorized("authentication required")
		case http.StatusForbidden:
			return Forbidden("forbidden")
		case http.StatusTooManyRequests:
			return RateLimited(1)
		case http.StatusServiceUnavailable:
			return Unavailable(he)
		}
		if he.Code >= 400 && he.Code < 500 {
			return New(he.Code, CodeBadRequest, http.StatusText(he.Code))
		}
		return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
	}
	return Classify(err)
}
