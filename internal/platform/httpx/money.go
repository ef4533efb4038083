package httpx

import "commerce/internal/platform/money"

// Money is the wire form of an amount in every response and request body:
// {"amount": 1999, "currency": "USD"}, integer minor units, never a float.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// MoneyOf converts a domain amount to its wire form.
func MoneyOf(m money.Money) Money { return Money{Amount: m.Amount, Currency: m.Currency} }
