// Package httpx is the HTTP edge shared by every domain: the error shape of the API
// contract, the one error funnel, strict JSON binding and request ids.
package httpx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"commerce/internal/platform/fault"
)

// Error codes of the API contract.
const (
	CodeBadRequest         = "bad_request"
	CodeUnauthorized       = "unauthorized"
	CodePaymentDeclined    = "payment_declined"
	CodeForbidden          = "forbidden"
	CodeNotFound           = "not_found"
	CodeMethodNotAllowed   = "method_not_allowed"
	CodeInsufficientStock  = "insufficient_stock"
	CodeCheckoutInProgress = "checkout_in_progress"
	CodeCartLocked         = "cart_locked"
	CodeConflict           = "conflict"
	CodeIdemInUse          = "idempotency_key_in_use"
	CodeCheckoutExpired    = "checkout_expired"
	CodePayloadTooLarge    = "payload_too_large"
	CodeValidationFailed   = "validation_failed"
	CodeIdemReused         = "idempotency_key_reused"
	CodeCartEmpty          = "cart_empty"
	CodeCouponNotApplic    = "coupon_not_applicable"
	CodeRateLimited        = "rate_limited"
	CodeUnavailable        = "unavailable"
	CodeInternal           = "internal"
)

// Error is an error that knows how it is shown to a caller. Message and Details are
// public; Err (the cause) is only logged.
type Error struct {
	Status     int
	Code       string
	Message    string
	Details    map[string]any
	RetryAfter int // seconds; sent as Retry-After when > 0
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.Status, e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// WithDetails returns a copy of e carrying details.
func (e *Error) WithDetails(d map[string]any) *Error {
	c := *e
	c.Details = d
	return &c
}

// New returns an *Error with the given status, code and public message.
func New(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// BadRequest is a 400 bad_request.
func BadRequest(msg string) *Error { return New(http.StatusBadRequest, CodeBadRequest, msg) }

// Unauthorized is a 401.
func Unauthorized(msg string) *Error { return New(http.StatusUnauthorized, CodeUnauthorized, msg) }

// Forbidden is a 403.
func Forbidden(msg string) *Error { return New(http.StatusForbidden, CodeForbidden, msg) }

// NotFound is a 404 for what does not exist or belongs to someone else.
func NotFound(what string) *Error { return New(http.StatusNotFound, CodeNotFound, what+" not found") }

// Conflict is a 409 with a specific code.
func Conflict(code, msg string) *Error { return New(http.StatusConflict, code, msg) }

// Unprocessable is a 422 with a specific code.
func Unprocessable(code, msg string) *Error { return New(http.StatusUnprocessableEntity, code, msg) }

// Validation is a 422 validation_failed naming each bad field.
func Validation(fields map[string]string) *Error {
	f := make(map[string]any, len(fields))
	for k, v := range fields {
		f[k] = v
	}
	return New(http.StatusUnprocessableEntity, CodeValidationFailed, "the request is not valid").
		WithDetails(map[string]any{"fields": f})
}

// Unavailable is a 503 with Retry-After, for an operation that cannot degrade.
func Unavailable(cause error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
		Message: "a dependency is unavailable, retry later", RetryAfter: 1, Err: cause}
}

// RateLimited is a 429 with Retry-After.
func RateLimited(retryAfter int) *Error {
	e := New(http.StatusTooManyRequests, CodeRateLimited, "too many requests")
	e.RetryAfter = retryAfter
	return e
}

// errorBody is the contract's error shape.
type errorBody struct {
	Error errorPayload `json:"error"`
}

type errorPayload struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

// Classify turns any error into the *Error shown to the caller. Unknown errors become a
// 500 without internals unless they say a dependency is down, which becomes a 503.
func Classify(err error) *Error {
	var he *Error
	if errors.As(err, &he) {
		return he
	}
	if errors.Is(err, context.Canceled) {
		// The caller went away; the status is never seen by it.
		return &Error{Status: 499, Code: CodeBadRequest, Message: "request cancelled", Err: err}
	}
	if fault.IsUnavailable(err) {
		return Unavailable(err)
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal,
		Message: "internal error", Err: err}
}

func retryAfterHeader(s int) string { return strconv.Itoa(s) }
