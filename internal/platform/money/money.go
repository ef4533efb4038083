// Package money holds amounts as integer minor units with their currency. No floats.
package money

import (
	"errors"
	"regexp"
)

// Money is an amount in minor units (cents) of one ISO 4217 currency.
type Money struct {
	Amount   int64
	Currency string
}

// ErrCurrencyMismatch is returned when two amounts of different currencies meet.
var ErrCurrencyMismatch = errors.New("money: currency mismatch")

var currencyRe = regexp.MustCompile(`^[A-Z]{3}$`)

// ValidCurrency reports whether c looks like an ISO 4217 code (three upper-case letters).
func ValidCurrency(c string) bool { return currencyRe.MatchString(c) }

// New returns amount minor units of currency.
func New(amount int64, currency string) Money { return Money{Amount: amount, Currency: currency} }

// Zero returns zero of currency.
func Zero(currency string) Money { return Money{Currency: currency} }

// Add returns m+o; it fails when the currencies differ.
func (m Money) Add(o Money) (Money, error) {
	if m.Currency != o.Currency {
		return Money{}, ErrCurrencyMismatch
	}
	return Money{Amount: m.Amount + o.Amount, Currency: m.Currency}, nil
}

// Mul returns m multiplied by a whole quantity.
func (m Money) Mul(q int64) Money { return Money{Amount: m.Amount * q, Currency: m.Currency} }

// DivRoundHalfEven divides n by d (d > 0) rounding half to even: the one rounding rule of
// every money computation in this service.
func DivRoundHalfEven(n, d int64) int64 {
	if d <= 0 {
		panic("money: DivRoundHalfEven with non-positive divisor")
	}
	neg := n < 0
	if neg {
		n = -n
	}
	q, r := n/d, n%d
	switch {
	case 2*r > d:
		q++
	case 2*r == d && q%2 == 1:
		q++
	}
	if neg {
		return -q
	}
	return q
}
