package checkout

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"strings"

	"github.com/labstack/echo/v4"

	"commerce/internal/platform/auth"
	"commerce/internal/platform/httpx"
	"commerce/internal/platform/idempotency"
)

// Header names of the checkout routes.
const (
	HeaderIdempotencyKey = idempotency.Header
	HeaderReplayed       = idempotency.HeaderReplayed
	HeaderSignature      = "X-Signature"
)

// Idempotency scopes (the route part of a record's key).
const (
	scopeCreate   = "chk-create"
	scopeComplete = "chk-complete"
)

// Handler serves the checkout, payment webhook, order and order admin routes.
type Handler struct {
	svc    *Service
	secret []byte
	stripe StripeVerifier
}

// StripeVerifier verifies a Stripe webhook (the raw body and its Stripe-Signature
// header) and returns its event. It returns ErrBadSignature when the signature does not
// verify.
type StripeVerifier func(body []byte, signature string) (PaymentEvent, error)

// ErrBadSignature is returned when a webhook's signature does not verify (401).
var ErrBadSignature = errors.New("checkout: webhook signature does not verify")

// NewHandler returns the handlers of svc; webhookSecret signs the generic provider
// callbacks (an empty secret rejects every callback).
func NewHandler(svc *Service, webhookSecret string) *Handler {
	return &Handler{svc: svc, secret: []byte(webhookSecret)}
}

// WithStripe sets how Stripe webhooks are verified (without it, every Stripe webhook is
// refused with 401).
func (h *Handler) WithStripe(v StripeVerifier) *Handler {
	h.stripe = v
	return h
}

// Register mounts the routes on v1 (/v1 with auth.Identify applied) and, when adm is not
// nil, the order admin routes on adm (/admin, admin token required).
func (h *Handler) Register(v1 *echo.Group, adm *echo.Group) {
	v1.POST("/checkouts", h.create, auth.RequireShopper)
	v1.GET("/checkouts/:id", h.get, auth.RequireShopper)
	v1.POST("/checkouts/:id/complete", h.complete, auth.RequireShopper)
	v1.POST("/checkouts/:id/cancel", h.cancel, auth.RequireShopper)
	v1.POST("/payments/webhook", h.webhook)
	v1.POST("/payments/stripe/webhook", h.stripeWebhook)
	v1.GET("/orders", h.listOrders, auth.RequireCustomer)
	v1.GET("/orders/:id", h.getOrder, auth.RequireShopper)
	if adm != nil {
		adm.GET("/orders", h.adminListOrders)
		adm.GET("/orders/:id", h.adminGetOrder)
		adm.POST("/orders/:id/refund", h.adminRefund)
		adm.POST("/orders/:id/cancel", h.adminCancel)
		adm.GET("/payments/flagged", h.adminFlagged)
	}
}

// Webhook paths that are authenticated by their signature (not rate limited per caller).
const (
	PathWebhook       = "/v1/payments/webhook"
	PathStripeWebhook = "/v1/payments/stripe/webhook"
)

func ownerOf(c echo.Context) (Owner, error) {
	t, id, ok := auth.CallerOf(c).Owner()
	if !ok {
		return Owner{}, httpx.Unauthorized("a session (X-Session-ID) or a customer token is required")
	}
	return Owner{Type: t, ID: id}, nil
}

func identityOf(c echo.Context) Identity {
	cl := auth.CallerOf(c)
	return Identity{CustomerID: cl.CustomerID, SessionID: cl.SessionID}
}

// ----------------------------------------------------------------------- checkouts

type createRequest struct {
	Email *string `json:"email"`
}

const maxEmail = 254

func validEmail(s string) bool {
	if s == "" || len(s) > maxEmail || strings.TrimSpace(s) != s {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}

func (h *Handler) create(c echo.Context) error {
	var req createRequest
	if err := httpx.BindOptional(c, &req); err != nil {
		return err
	}
	email := ""
	if req.Email != nil {
		email = *req.Email
		if !validEmail(email) {
			return httpx.Validation(map[string]string{"email": "must be an email address of at most 254 characters"})
		}
	}
	owner, err := ownerOf(c)
	if err != nil {
		return err
	}
	return h.idempotent(c, scopeCreate, owner, "create\x00"+email, func(ctx context.Context) (int, any, error) {
		co, created, err := h.svc.Create(ctx, owner, email)
		if err != nil {
			return 0, nil, err
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		return status, toCheckoutJSON(co), nil
	})
}

func (h *Handler) get(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	co, err := h.svc.Get(c.Request().Context(), identityOf(c), id)
	if err != nil {
		return httpError(err)
	}
	return c.JSON(http.StatusOK, toCheckoutJSON(co))
}

// completeRequest: payment_method (pm_...) confirms the intent server-side; payment_token
// is the test provider's name for the same thing; neither when the storefront confirmed
// the intent itself (Stripe.js).
type completeRequest struct {
	PaymentToken  *string `json:"payment_token"`
	PaymentMethod *string `json:"payment_method"`
}

func (h *Handler) complete(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	var req completeRequest
	if err := httpx.BindOptional(c, &req); err != nil {
		return err
	}
	method := ""
	switch {
	case req.PaymentToken != nil && req.PaymentMethod != nil:
		return httpx.Validation(map[string]string{"payment_method": "give payment_method or payment_token, not both"})
	case req.PaymentMethod != nil:
		method = *req.PaymentMethod
		if !validMethod(method) {
			return httpx.Validation(map[string]string{"payment_method": "must be 1-255 printable ASCII characters"})
		}
	case req.PaymentToken != nil:
		method = *req.PaymentToken
		if !validMethod(method) {
			return httpx.Validation(map[string]string{"payment_token": "must be 1-255 printable ASCII characters"})
		}
	}
	owner, err := ownerOf(c)
	if err != nil {
		return err
	}
	if err := idempotency.CheckHeader(c); err != nil {
		return err
	}
	// A checkout that has its order answers 200 with it, whatever state an
	// Idempotency-Key is in (in flight, stored, or used with another body): a retry after
	// a crash past the order's commit, its key still in flight, gets the order at once.
	done, seen, ok, err := h.svc.Completed(c.Request().Context(), identityOf(c), id)
	if err == nil && ok {
		if _, keyed := c.Request().Header[HeaderIdempotencyKey]; keyed {
			c.Response().Header().Set(HeaderReplayed, "true")
		}
		return c.JSON(http.StatusOK, completionJSON{Checkout: toCheckoutJSON(done.Checkout), Order: toOrderJSON(done.Order)})
	}
	read := err == nil
	fp := "complete\x00" + id.String() + "\x00" + method
	return h.idempotent(c, scopeComplete, owner, fp, func(ctx context.Context) (int, any, error) {
		var res Completion
		var err error
		if read {
			res, err = h.svc.CompleteSeen(ctx, seen, method)
		} else {
			res, err = h.svc.Complete(ctx, identityOf(c), id, method)
		}
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, completionJSON{Checkout: toCheckoutJSON(res.Checkout), Order: toOrderJSON(res.Order)}, nil
	})
}

func (h *Handler) cancel(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	if err := httpx.BindOptional(c, &struct{}{}); err != nil {
		return err
	}
	co, err := h.svc.Cancel(c.Request().Context(), identityOf(c), id)
	if err != nil {
		return httpError(err)
	}
	return c.JSON(http.StatusOK, toCheckoutJSON(co))
}

// idempotent runs fn once per Idempotency-Key (when the header is present): the first
// response is stored and replayed byte for byte with the same status; 5xx answers are
// not stored (the record is deleted so the client can retry), nor are answers that only
// describe a passing situation (409 checkout_in_progress). Validation errors happen before
// this and are never stored. See package idempotency.
func (h *Handler) idempotent(c echo.Context, scope string, owner Owner, fingerprint string,
	fn func(ctx context.Context) (int, any, error)) error {
	return h.svc.idem.Handle(c, idempotency.Handler{Scope: scope, Caller: string(owner.Type) + "\x00" + owner.ID,
		Fingerprint: fingerprint, Run: fn, ToHTTP: httpError,
		Passing: func(e *httpx.Error) bool { return e.Code == httpx.CodeCheckoutInProgress }})
}

func validMethod(m string) bool { return idempotency.ValidKey(m) }

// codePaymentRequiresAction is the contract's code of a 402 for 3-D Secure.
const codePaymentRequiresAction = "payment_requires_action"

// httpError maps the package's errors to the contract; others pass through to the funnel.
func httpError(err error) error {
	var se *StockError
	var he *httpx.Error
	var e *httpx.Error
	var ae *ActionRequiredError
	var ve *ValidationError
	switch {
	case errors.As(err, &he):
		return err
	case errors.As(err, &ve):
		e = httpx.Validation(ve.Fields)
	case errors.As(err, &ae):
		d := map[string]any{"payment_intent_id": ae.IntentID, "client_secret": ae.ClientSecret}
		if ae.NextAction != "" {
			d["next_action"] = ae.NextAction
		}
		if ae.RedirectURL != "" {
			d["redirect_url"] = ae.RedirectURL
		}
		e = httpx.New(http.StatusPaymentRequired, codePaymentRequiresAction,
			"the payment needs the shopper to authenticate; finish it in the storefront, then complete again").WithDetails(d)
	case errors.Is(err, ErrPaymentMethodRequired):
		e = httpx.Validation(map[string]string{"payment_method": "is required: the payment intent is not confirmed yet"})
	case errors.Is(err, ErrPaymentMethodInvalid):
		e = httpx.Validation(map[string]string{"payment_method": "the payment provider does not accept this payment method"})
	case errors.Is(err, ErrAmountMismatch):
		e = httpx.Conflict(httpx.CodeConflict, "the payment does not match the checkout total; no order was placed and the payment is refunded")
	case errors.Is(err, ErrPaymentProcessing):
		e = httpx.Conflict(httpx.CodeCheckoutInProgress, "the payment provider is still processing the payment; retry shortly")
	case errors.Is(err, ErrBadSignature):
		e = httpx.Unauthorized("missing or invalid webhook signature")
	case errors.As(err, &se):
		vs := make([]map[string]any, len(se.Shortages))
		for i, s := range se.Shortages {
			vs[i] = map[string]any{"variant_id": s.VariantID.String(), "requested": s.Requested, "available": s.Available}
		}
		e = httpx.Conflict(httpx.CodeInsufficientStock,
			fmt.Sprintf("not enough stock for %d line(s)", len(se.Shortages))).WithDetails(map[string]any{"variants": vs})
	case errors.Is(err, ErrNotFound):
		e = httpx.NotFound("checkout or order")
	case errors.Is(err, ErrCartEmpty):
		e = httpx.Unprocessable(httpx.CodeCartEmpty, "the cart has nothing that can be bought")
	case errors.Is(err, ErrInProgress):
		e = httpx.Conflict(httpx.CodeCheckoutInProgress, "another request is working on this checkout; retry shortly")
	case errors.Is(err, ErrConflict):
		e = httpx.Conflict(httpx.CodeConflict, "the checkout's state does not allow this")
	case errors.Is(err, ErrExpired):
		e = httpx.New(http.StatusGone, httpx.CodeCheckoutExpired, "the checkout expired and its items could not be held again")
	case errors.Is(err, ErrPaymentDeclined):
		e = httpx.New(http.StatusPaymentRequired, httpx.CodePaymentDeclined, "the payment was declined; the checkout can be paid again")
	case errors.Is(err, ErrInvalidOwner):
		e = httpx.Unauthorized("a valid session or customer token is required")
	default:
		return err
	}
	e.Err = err
	return e
}

// -------------------------------------------------------------------------- orders

func (h *Handler) getOrder(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	o, err := h.svc.Order(c.Request().Context(), identityOf(c), id)
	if errors.Is(err, ErrNotFound) {
		return httpx.NotFound("order")
	}
	if err != nil {
		return httpError(err)
	}
	return c.JSON(http.StatusOK, toOrderJSON(o))
}

// listOrders: GET /v1/orders?page=&per_page=, with the paging rule of every list
// (httpx.Paging) and its one shape.
func (h *Handler) listOrders(c echo.Context) error {
	page, perPage, err := httpx.Paging(c)
	if err != nil {
		return err
	}
	os, total, err := h.svc.Orders(c.Request().Context(), auth.CallerOf(c).CustomerID, page, perPage)
	if err != nil {
		return httpError(err)
	}
	out := httpx.Page[orderJSON]{Items: make([]orderJSON, len(os)), Page: page, PerPage: perPage, Total: total}
	for i, o := range os {
		out.Items[i] = toOrderJSON(o)
	}
	return c.JSON(http.StatusOK, out)
}
