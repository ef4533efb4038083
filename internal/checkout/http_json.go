package checkout

import (
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/httpx"
	"commerce/internal/platform/money"
)

type intentJSON struct {
	ID           string      `json:"id"`
	Status       string      `json:"status"`
	Amount       httpx.Money `json:"amount"`
	ClientSecret *string     `json:"client_secret"`
}

type checkoutJSON struct {
	ID               uuid.UUID               `json:"id"`
	State            string                  `json:"state"`
	Email            *string                 `json:"email"`
	Lines            []httpx.Line            `json:"lines"`
	AppliedDiscounts []httpx.AppliedDiscount `json:"applied_discounts"`
	Subtotal         httpx.Money             `json:"subtotal"`
	DiscountTotal    httpx.Money             `json:"discount_total"`
	Total            httpx.Money             `json:"total"`
	ExpiresAt        time.Time               `json:"expires_at"`
	PaymentIntent    *intentJSON             `json:"payment_intent"`
	OrderID          *uuid.UUID              `json:"order_id"`
}

type orderJSON struct {
	ID               uuid.UUID               `json:"id"`
	Number           int64                   `json:"number"`
	CheckoutID       uuid.UUID               `json:"checkout_id"`
	Status           string                  `json:"status"`
	Email            *string                 `json:"email"`
	Lines            []httpx.Line            `json:"lines"`
	AppliedDiscounts []httpx.AppliedDiscount `json:"applied_discounts"`
	Subtotal         httpx.Money             `json:"subtotal"`
	DiscountTotal    httpx.Money             `json:"discount_total"`
	Total            httpx.Money             `json:"total"`
	RefundedTotal    httpx.Money             `json:"refunded_total"`
	Refunds          []refundJSON            `json:"refunds"`
	CreatedAt        time.Time               `json:"created_at"`
}

type refundJSON struct {
	ID        uuid.UUID   `json:"id"`
	Amount    httpx.Money `json:"amount"`
	Status    string      `json:"status"`
	Reason    string      `json:"reason"`
	CreatedAt time.Time   `json:"created_at"`
}

type completionJSON struct {
	Checkout checkoutJSON `json:"checkout"`
	Order    orderJSON    `json:"order"`
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toLinesJSON(ls []Line) []httpx.Line {
	out := make([]httpx.Line, len(ls))
	for i, l := range ls {
		out[i] = httpx.Line{VariantID: l.VariantID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity,
			UnitPrice: httpx.MoneyOf(l.UnitPrice), LineTotal: httpx.MoneyOf(l.LineTotal), Discount: httpx.MoneyOf(l.Discount)}
	}
	return out
}

func toAppliedJSON(as []AppliedDiscount) []httpx.AppliedDiscount {
	out := make([]httpx.AppliedDiscount, len(as))
	for i, a := range as {
		out[i] = httpx.AppliedDiscount{ID: a.ID, Name: a.Name, Code: optString(a.Code), Amount: httpx.MoneyOf(a.Amount)}
	}
	return out
}

func toCheckoutJSON(c Checkout) checkoutJSON {
	out := checkoutJSON{ID: c.ID, State: string(c.State), Email: optString(c.Email), Lines: toLinesJSON(c.Lines),
		AppliedDiscounts: toAppliedJSON(c.Applied), Subtotal: httpx.MoneyOf(c.Subtotal),
		DiscountTotal: httpx.MoneyOf(c.DiscountTotal), Total: httpx.MoneyOf(c.Total), ExpiresAt: c.ExpiresAt.UTC()}
	if c.PaymentIntentID != "" {
		st := c.PaymentStatus
		if st == "" {
			st = PaymentRequiresPaymentMethod
		}
		out.PaymentIntent = &intentJSON{ID: c.PaymentIntentID, Status: string(st), Amount: httpx.MoneyOf(c.Total),
			ClientSecret: optString(c.ClientSecret)}
	}
	if c.OrderID != uuid.Nil {
		id := c.OrderID
		out.OrderID = &id
	}
	return out
}

func toOrderJSON(o Order) orderJSON {
	refunds := make([]refundJSON, len(o.Refunds))
	for i, r := range o.Refunds {
		refunds[i] = refundJSON{ID: r.ID, Amount: httpx.MoneyOf(r.Amount), Status: r.Status, Reason: r.Reason,
			CreatedAt: r.CreatedAt.UTC()}
	}
	refunded := o.RefundedTotal
	if refunded.Currency == "" {
		refunded = money.Zero(o.Currency)
	}
	return orderJSON{ID: o.ID, Number: o.Number, CheckoutID: o.CheckoutID, Status: o.Status,
		Email: optString(o.Email), Lines: toLinesJSON(o.Lines), AppliedDiscounts: toAppliedJSON(o.Applied),
		Subtotal: httpx.MoneyOf(o.Subtotal), DiscountTotal: httpx.MoneyOf(o.DiscountTotal), Total: httpx.MoneyOf(o.Total),
		RefundedTotal: httpx.MoneyOf(refunded), Refunds: refunds, CreatedAt: o.CreatedAt.UTC()}
}
