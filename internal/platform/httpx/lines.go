package httpx

import "github.com/google/uuid"

// Line is the wire form of a priced line, the same in a cart and in a checkout:
// unit_price × quantity = line_total, before discount.
type Line struct {
	VariantID uuid.UUID `json:"variant_id"`
	SKU       string    `json:"sku"`
	Name      string    `json:"name"`
	Quantity  int64     `json:"quantity"`
	UnitPrice Money     `json:"unit_price"`
	LineTotal Money     `json:"line_total"`
	Discount  Money     `json:"discount"`
}

// AppliedDiscount is the wire form of a discount applied to a cart or a checkout (code
// null for an automatic one).
type AppliedDiscount struct {
	ID     uuid.UUID `json:"id"`
	Name   string    `json:"name"`
	Code   *string   `json:"code"`
	Amount Money     `json:"amount"`
}
