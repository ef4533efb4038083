package cart

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"commerce/internal/platform/auth"
	"commerce/internal/platform/httpx"
)

// Handler serves the cart and preferences routes of the API contract.
type Handler struct {
	svc   *Service
	prefs *Preferences
}

// NewHandler returns the handler of the cart routes (svc) and /v1/me/preferences (prefs).
func NewHandler(svc *Service, prefs *Preferences) *Handler { return &Handler{svc: svc, prefs: prefs} }

// Register mounts the routes on v1 (/v1, auth.Identify applied). There are no admin routes.
func (h *Handler) Register(v1 *echo.Group, _ *echo.Group) {
	v1.GET("/cart", h.get, auth.RequireShopper)
	v1.DELETE("/cart", h.clear, auth.RequireShopper)
	v1.POST("/cart/items", h.add, auth.RequireShopper)
	v1.PUT("/cart/items/:variant_id", h.setQuantity, auth.RequireShopper)
	v1.DELETE("/cart/items/:variant_id", h.remove, auth.RequireShopper)
	v1.PUT("/cart/coupon", h.setCoupon, auth.RequireShopper)
	v1.DELETE("/cart/coupon", h.removeCoupon, auth.RequireShopper)
	v1.POST("/cart/merge", h.merge, auth.RequireCustomer)
	v1.GET("/me/preferences", h.getPreferences, auth.RequireCustomer)
	v1.PATCH("/me/preferences", h.patchPreferences, auth.RequireCustomer)
}

// ownerOf is the caller's cart owner (RequireShopper guarantees there is one).
func ownerOf(c echo.Context) (Owner, error) {
	t, id, ok := auth.CallerOf(c).Owner()
	if !ok {
		return Owner{}, httpx.Unauthorized("a session (X-Session-ID) or a customer token is required")
	}
	return Owner{Type: t, ID: id}, nil
}

// noBody accepts an empty body or {} (routes without a request body).
func noBody(c echo.Context) error { return httpx.BindOptional(c, &struct{}{}) }

func (h *Handler) get(c echo.Context) error {
	o, err := ownerOf(c)
	if err != nil {
		return err
	}
	cart, err := h.svc.Get(c.Request().Context(), o)
	return respond(c, cart, err)
}

func (h *Handler) clear(c echo.Context) error {
	o, err := ownerOf(c)
	if err != nil {
		return err
	}
	if err := noBody(c); err != nil {
		return err
	}
	cart, err := h.svc.Clear(c.Request().Context(), o)
	return respond(c, cart, err)
}

type addItemRequest struct {
	VariantID *string `json:"variant_id"`
	Quantity  *int64  `json:"quantity"`
}

func (h *Handler) add(c echo.Context) error {
	o, err := ownerOf(c)
	if err != nil {
		return err
	}
	var req addItemRequest
	if err := httpx.Bind(c, &req); err != nil {
		return err
	}
	fields := map[string]string{}
	if req.VariantID == nil {
		fields["variant_id"] = "is required"
	}
	if req.Quantity == nil {
		fields["quantity"] = "is required"
	}
	if len(fields) > 0 {
		return httpx.Validation(fields)
	}
	id, err := httpx.ParseUUID(*req.VariantID, "variant_id")
	if err != nil {
		return err
	}
	cart, err := h.svc.Add(c.Request().Context(), o, id, *req.Quantity)
	return respond(c, cart, err)
}

type setQuantityRequest struct {
	Quantity *int64 `json:"quantity"`
}

func (h *Handler) setQuantity(c echo.Context) error {
	o, err := ownerOf(c)
	if err != nil {
		return err
	}
	id, err := httpx.ParamUUID(c, "variant_id")
	if err != nil {
		return err
	}
	var req setQuantityRequest
	if err := httpx.Bind(c, &req); err != nil {
		return err
	}
	if req.Quantity == nil {
		return httpx.Validation(map[string]string{"quantity": "is required"})
	}
	if q := *req.Quantity; q < 0 || q > MaxQuantity {
		return httpx.Validation(map[string]string{"quantity": "must be between 0 and 100"})
	}
	cart, err := h.svc.SetQuantity(c.Request().Context(), o, id, *req.Quantity)
	return respond(c, cart, err)
}

func (h *Handler) remove(c echo.Context) error {
	o, err := ownerOf(c)
	if err != nil {
		return err
	}
	id, err := httpx.ParamUUID(c, "variant_id")
	if err != nil {
		return err
	}
	if err := noBody(c); err != nil {
		return err
	}
	cart, err := h.svc.Remove(c.Request().Context(), o, id)
	return respond(c, cart, err)
}

type couponRequest struct {
	Code *string `json:"code"`
}

func (h *Handler) setCoupon(c echo.Context) error {
	o, err := ownerOf(c)
	if err != nil {
		return err
	}
	var req couponRequest
	if err := httpx.Bind(c, &req); err != nil {
		return err
	}
	if req.Code == nil {
		return httpx.Validation(map[string]string{"code": "is required"})
	}
	cart, err := h.svc.SetCoupon(c.Request().Context(), o, *req.Code)
	return respond(c, cart, err)
}

func (h *Handler) removeCoupon(c echo.Context) error {
	o, err := ownerOf(c)
	if err != nil {
		return err
	}
	if err := noBody(c); err != nil {
		return err
	}
	cart, err := h.svc.RemoveCoupon(c.Request().Context(), o)
	return respond(c, cart, err)
}

// merge needs both identities: the customer token (RequireCustomer: else 401) and the
// session whose cart is merged (X-Session-ID, validated by auth.Identify: else 400).
func (h *Handler) merge(c echo.Context) error {
	caller := auth.CallerOf(c)
	if caller.SessionID == "" {
		return httpx.BadRequest("the X-Session-ID header of the session to merge is required")
	}
	if err := noBody(c); err != nil {
		return err
	}
	cart, err := h.svc.Merge(c.Request().Context(), caller.CustomerID, caller.SessionID)
	return respond(c, cart, err)
}

func (h *Handler) getPreferences(c echo.Context) error {
	data, err := h.prefs.Get(c.Request().Context(), auth.CallerOf(c).CustomerID)
	if err != nil {
		return httpError(err)
	}
	return c.JSONBlob(http.StatusOK, data)
}

func (h *Handler) patchPreferences(c echo.Context) error {
	var patch map[string]json.RawMessage
	if err := httpx.Bind(c, &patch); err != nil {
		return err
	}
	if patch == nil {
		return httpx.BadRequest("request body must be a JSON object")
	}
	data, err := h.prefs.Patch(c.Request().Context(), auth.CallerOf(c).CustomerID, patch)
	if err != nil {
		return httpError(err)
	}
	return c.JSONBlob(http.StatusOK, data)
}

func respond(c echo.Context, cart Cart, err error) error {
	if err != nil {
		return httpError(err)
	}
	return c.JSON(http.StatusOK, toCartJSON(cart))
}

// httpError maps the package's errors to the contract; anything else goes to the error
// funnel as it is (dependency errors become 503 there).
func httpError(err error) error {
	var (
		stock  *StockError
		locked *LockedError
	)
	switch {
	case errors.As(err, &stock):
		return httpx.Conflict(httpx.CodeInsufficientStock,
			fmt.Sprintf("only %d units available", stock.Available)).WithDetails(map[string]any{
			"variant_id": stock.VariantID.String(), "requested": stock.Requested, "available": stock.Available})
	case errors.As(err, &locked):
		return httpx.Conflict(httpx.CodeCartLocked, "the cart has an active checkout")
	case errors.Is(err, ErrVariantNotFound):
		return httpx.NotFound("variant")
	case errors.Is(err, ErrQuantity):
		return httpx.Validation(map[string]string{"quantity": "the line must hold between 1 and 100 units"})
	case errors.Is(err, ErrTooManyLines):
		return httpx.Validation(map[string]string{"variant_id": "a cart holds at most 50 lines"})
	case errors.Is(err, ErrInvalidCoupon):
		return httpx.Validation(map[string]string{"code": "must be 1-64 printable characters without spaces"})
	case errors.Is(err, ErrCouponNotFound):
		return httpx.NotFound("coupon")
	case errors.Is(err, ErrCouponNotApplicable):
		return httpx.Unprocessable(httpx.CodeCouponNotApplic, "the coupon does not apply to this cart")
	case errors.Is(err, ErrPreferencesTooLarge):
		return httpx.Validation(map[string]string{"preferences": "the merged object must be at most 4096 bytes"})
	case errors.Is(err, ErrInvalidOwner):
		return httpx.Unauthorized("invalid identity")
	}
	return err
}

type cartJSON struct {
	ID               string                  `json:"id"`
	Owner            string                  `json:"owner"`
	Lines            []httpx.Line            `json:"lines"`
	CouponCode       *string                 `json:"coupon_code"`
	AppliedDiscounts []httpx.AppliedDiscount `json:"applied_discounts"`
	Subtotal         httpx.Money             `json:"subtotal"`
	DiscountTotal    httpx.Money             `json:"discount_total"`
	Total            httpx.Money             `json:"total"`
	LockedByCheckout *string                 `json:"locked_by_checkout"`
	UpdatedAt        *time.Time              `json:"updated_at"`
	ExpiresAt        *time.Time              `json:"expires_at"`
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func toCartJSON(c Cart) cartJSON {
	out := cartJSON{ID: c.ID, Owner: string(c.Owner), Lines: make([]httpx.Line, 0, len(c.Lines)),
		CouponCode: optString(c.Coupon), AppliedDiscounts: make([]httpx.AppliedDiscount, 0, len(c.Applied)),
		Subtotal: httpx.MoneyOf(c.Subtotal), DiscountTotal: httpx.MoneyOf(c.DiscountTotal), Total: httpx.MoneyOf(c.Total),
		LockedByCheckout: optString(c.LockedBy), UpdatedAt: optTime(c.UpdatedAt), ExpiresAt: optTime(c.ExpiresAt)}
	for _, l := range c.Lines {
		out.Lines = append(out.Lines, httpx.Line{VariantID: l.VariantID, SKU: l.SKU, Name: l.Name,
			Quantity: l.Quantity, UnitPrice: httpx.MoneyOf(l.UnitPrice), LineTotal: httpx.MoneyOf(l.LineTotal),
			Discount: httpx.MoneyOf(l.Discount)})
	}
	for _, a := range c.Applied {
		out.AppliedDiscounts = append(out.AppliedDiscounts, httpx.AppliedDiscount{ID: a.ID, Name: a.Name,
			Code: optString(a.Code), Amount: httpx.MoneyOf(a.Amount)})
	}
	return out
}
