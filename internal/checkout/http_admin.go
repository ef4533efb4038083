package checkout

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"commerce/internal/platform/auth"
	"commerce/internal/platform/httpx"
	"commerce/internal/platform/money"
)

// scopeRefund is the idempotency scope of POST /admin/orders/{id}/refund; the caller of
// every admin request is the operator.
const scopeRefund = "ord-refund"

var operator = Owner{Type: auth.OwnerType("operator"), ID: "admin"}

// maxRestockLines bounds a refund's restock list.
const maxRestockLines = 100

var orderStatuses = map[string]bool{OrderPlaced: true, OrderPartiallyRefunded: true, OrderRefunded: true, OrderCancelled: true}

func (h *Handler) adminListOrders(c echo.Context) error {
	page, perPage, err := httpx.Paging(c)
	if err != nil {
		return err
	}
	f := OrderFilter{Status: c.QueryParam("status"), CustomerID: c.QueryParam("customer_id")}
	if f.Status != "" && !orderStatuses[f.Status] {
		return httpx.Validation(map[string]string{"status": "must be placed, partially_refunded, refunded or cancelled"})
	}
	if f.CustomerID != "" && !auth.ValidOwner(auth.OwnerCustomer, f.CustomerID) {
		return httpx.Validation(map[string]string{"customer_id": "is not a valid customer id"})
	}
	os, total, err := h.svc.AdminOrders(c.Request().Context(), f, page, perPage)
	if err != nil {
		return httpError(err)
	}
	out := httpx.Page[orderJSON]{Items: make([]orderJSON, len(os)), Page: page, PerPage: perPage, Total: total}
	for i, o := range os {
		out.Items[i] = toOrderJSON(o)
	}
	return c.JSON(http.StatusOK, out)
}

func (h *Handler) adminGetOrder(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	o, err := h.svc.AdminOrder(c.Request().Context(), id)
	if err != nil {
		return orderError(err)
	}
	return c.JSON(http.StatusOK, toOrderJSON(o))
}

func orderError(err error) error {
	if errors.Is(err, ErrNotFound) {
		return httpx.NotFound("order")
	}
	return httpError(err)
}

type restockJSON struct {
	VariantID *uuid.UUID `json:"variant_id"`
	Quantity  *int64     `json:"quantity"`
}

type refundRequestJSON struct {
	Amount  *httpx.Money  `json:"amount"`
	Reason  *string       `json:"reason"`
	Restock []restockJSON `json:"restock"`
}

func (h *Handler) adminRefund(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	var req refundRequestJSON
	if err := httpx.Bind(c, &req); err != nil {
		return err
	}
	bad := map[string]string{}
	if req.Reason == nil || !validReason(*req.Reason) {
		bad["reason"] = "is required (1-200 characters)"
	}
	var amount *money.Money
	if req.Amount != nil {
		m := money.New(req.Amount.Amount, strings.ToUpper(req.Amount.Currency))
		if req.Amount.Amount < 0 {
			bad["amount.amount"] = "must not be negative"
		}
		if !money.ValidCurrency(req.Amount.Currency) {
			bad["amount.currency"] = "must be an ISO 4217 code like USD"
		}
		amount = &m
	}
	if len(req.Restock) > maxRestockLines {
		bad["restock"] = "at most 100 lines"
	}
	var restock []StockLine
	for i, r := range req.Restock {
		if i >= maxRestockLines {
			break
		}
		p := "restock[" + strconv.Itoa(i) + "]"
		switch {
		case r.VariantID == nil:
			bad[p+".variant_id"] = "is required"
		case r.Quantity == nil || *r.Quantity < 1 || *r.Quantity > 1_000_000:
			bad[p+".quantity"] = "must be between 1 and 1000000"
		default:
			restock = append(restock, StockLine{VariantID: *r.VariantID, Quantity: *r.Quantity})
		}
	}
	if len(bad) > 0 {
		return httpx.Validation(bad)
	}
	canon, _ := json.Marshal(req)
	fp := "refund\x00" + id.String() + "\x00" + string(canon)
	return h.idempotent(c, scopeRefund, operator, fp, func(ctx context.Context) (int, any, error) {
		o, err := h.svc.RefundOrder(ctx, id, RefundRequest{Amount: amount, Reason: *req.Reason, Restock: restock})
		if err != nil {
			return 0, nil, orderError(err)
		}
		return http.StatusOK, toOrderJSON(o), nil
	})
}

type cancelRequestJSON struct {
	Reason *string `json:"reason"`
}

func (h *Handler) adminCancel(c echo.Context) error {
	id, err := httpx.ParamUUID(c, "id")
	if err != nil {
		return err
	}
	var req cancelRequestJSON
	if err := httpx.Bind(c, &req); err != nil {
		return err
	}
	if req.Reason == nil || !validReason(*req.Reason) {
		return httpx.Validation(map[string]string{"reason": "is required (1-200 characters)"})
	}
	o, err := h.svc.CancelOrder(c.Request().Context(), id, *req.Reason)
	if err != nil {
		return orderError(err)
	}
	return c.JSON(http.StatusOK, toOrderJSON(o))
}

type flaggedJSON struct {
	ID              uuid.UUID   `json:"id"`
	CheckoutID      uuid.UUID   `json:"checkout_id"`
	PaymentIntentID string      `json:"payment_intent_id"`
	Kind            string      `json:"kind"`
	Amount          httpx.Money `json:"amount"`
	Status          string      `json:"status"`
	Reason          string      `json:"reason"`
	LastError       *string     `json:"last_error"`
	CreatedAt       time.Time   `json:"created_at"`
}

func (h *Handler) adminFlagged(c echo.Context) error {
	fs, err := h.svc.FlaggedPayments(c.Request().Context(), 100)
	if err != nil {
		return httpError(err)
	}
	out := struct {
		Items []flaggedJSON `json:"items"`
	}{Items: make([]flaggedJSON, len(fs))}
	for i, f := range fs {
		out.Items[i] = flaggedJSON{ID: f.ID, CheckoutID: f.CheckoutID, PaymentIntentID: f.IntentID, Kind: f.Kind,
			Amount: httpx.MoneyOf(f.Amount), Status: f.Status, Reason: f.Reason, LastError: optString(f.LastError),
			CreatedAt: f.CreatedAt.UTC()}
	}
	return c.JSON(http.StatusOK, out)
}
