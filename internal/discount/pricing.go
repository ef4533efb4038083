// Package discount holds discount rules and the pure pricing engine that applies a
// versioned ruleset to a cart. Nothing here does I/O or reads the clock: the store, the
// ruleset cache and the HTTP handlers feed it values and render its results.
package discount

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/money"
)

var (
	// ErrInvalidLine is returned for a cart line that cannot be priced: a unit price in
	// another currency than the cart's (or an invalid cart currency), a quantity ≤ 0, a
	// negative unit price, or amounts that overflow int64.
	ErrInvalidLine = errors.New("discount: invalid cart line")
	// ErrCouponNotFound is returned when no active rule has the code (HTTP 404).
	ErrCouponNotFound = errors.New("discount: coupon not found")
	// ErrCouponNotApplicable is returned when the code's rule exists but cannot discount
	// this cart (HTTP 422 coupon_not_applicable); the wrapped message says why.
	ErrCouponNotApplicable = errors.New("discount: coupon not applicable")
)

// Line is one cart line to price.
type Line struct {
	VariantID, ProductID uuid.UUID
	Category             string
	SKU, Name            string
	Quantity             int64
	UnitPrice            money.Money
}

// PricedLine is a line with its total (UnitPrice × Quantity) and the sum of every applied
// rule's share of it; 0 ≤ Discount ≤ LineTotal.
type PricedLine struct {
	Line
	LineTotal, Discount money.Money
}

// Applied is one rule that took a positive amount off the cart.
type Applied struct {
	RuleID     uuid.UUID
	Name, Code string
	Amount     money.Money
}

// Priced is a priced cart. Lines keep the input order; Applied is in application order.
// Subtotal = Σ LineTotal, DiscountTotal = Σ Applied.Amount = Σ PricedLine.Discount,
// Total = Subtotal − DiscountTotal and 0 ≤ Total ≤ Subtotal.
type Priced struct {
	Lines                          []PricedLine
	Applied                        []Applied
	Subtotal, DiscountTotal, Total money.Money
	// CouponCode is the coupon passed to Price after NormalizeCode ("" for none);
	// CouponApplied reports whether a rule with that code is in Applied.
	CouponCode     string
	CouponApplied  bool
	RulesetVersion int64
}

// Price prices lines in currency under rs at instant now, with coupon ("" for none). It
// is pure and deterministic: the same inputs give the same Priced whatever the order of
// rs.Rules.
//
// Eligibility. A rule is eligible when it is Active, StartsAt ≤ now < EndsAt (a nil bound
// is open), its Code is "" or equals coupon case-insensitively, its Currency (if set;
// fixed_amount rules always have one) is the cart's, and its MinSubtotal (if set) is in the
// cart's currency and ≤ the subtotal before discounts. Malformed rules (unknown kind or
// scope, percentage outside 1..100, fixed amount ≤ 0 or without currency) are never
// eligible.
//
// Order and exclusivity. Eligible rules are taken in order Priority descending, then ID
// ascending (byte order). Each is evaluated on the amounts left by the rules before it;
// a rule whose amount comes out 0 (nothing left in scope, or rounding to 0) is skipped as
// if absent and is not listed in Applied. A stackable rule then applies and evaluation
// continues. An exclusive (non-stackable) rule applies only when no rule has applied yet,
// and then ends evaluation: it is the only applied rule. An exclusive rule met after a
// rule has applied is skipped, and later stackable rules still apply.
//
// Amounts. A rule covers the in-scope lines (cart: all; product, category, variant: lines
// whose ProductID, Category or VariantID is in Scope.IDs) and their remaining amount R
// (line totals minus discounts already taken). A percentage rule takes
// round-half-even(R × Value / 100), computed once on the scope total, not per line; a
// fixed_amount rule takes min(Value, R). The rule's amount is then spread over the
// in-scope lines in proportion to their remaining amounts: each gets the floor of its
// exact share and the units left over go one each to the lines with the largest
// fractional remainder, ties to the lower VariantID, then to the earlier line. No line's
// discount ever exceeds what was left of it, so totals never go negative.
//
// Errors: ErrInvalidLine (wrapped with the line index) when a line cannot be priced.
func Price(rs Ruleset, lines []Line, coupon string, currency string, now time.Time) (Priced, error) {
	totals, subtotal, err := lineTotals(lines, currency)
	if err != nil {
		return Priced{}, err
	}
	coupon = NormalizeCode(coupon)
	remaining := slices.Clone(totals)
	discounts := make([]int64, len(lines))
	p := Priced{CouponCode: coupon, RulesetVersion: rs.Version}
	var discountTotal int64
	for _, r := range ordered(rs.Rules) {
		if r.Code != "" && (coupon == "" || NormalizeCode(r.Code) != coupon) {
			continue
		}
		if r.ineligible(currency, subtotal, now) != "" {
			continue
		}
		if !r.Stackable && len(p.Applied) > 0 {
			continue
		}
		shares, amount := r.allocate(lines, remaining)
		if amount == 0 {
			continue
		}
		for i, s := range shares {
			remaining[i] -= s
			discounts[i] += s
		}
		discountTotal += amount
		p.Applied = append(p.Applied, Applied{
			RuleID: r.ID, Name: r.Name, Code: r.Code, Amount: money.New(amount, currency),
		})
		if r.Code != "" {
			p.CouponApplied = true
		}
		if !r.Stackable {
			break
		}
	}
	p.Lines = make([]PricedLine, len(lines))
	for i, l := range lines {
		p.Lines[i] = PricedLine{
			Line:      l,
			LineTotal: money.New(totals[i], currency),
			Discount:  money.New(discounts[i], currency),
		}
	}
	p.Subtotal = money.New(subtotal, currency)
	p.DiscountTotal = money.New(discountTotal, currency)
	p.Total = money.New(subtotal-discountTotal, currency)
	return p, nil
}

// CouponApplicable reports whether code can discount the cart on its own merits, for
// PUT /v1/cart/coupon. It returns nil when an active rule has the code (case-insensitive),
// now is inside its window, its currency and minimum subtotal suit the cart, and at least
// one line in its scope gives it a positive amount. It does not consider the other rules:
// an exclusive automatic rule may still outrank the coupon in Price (see
// Priced.CouponApplied).
//
// Errors: ErrCouponNotFound for an empty, unknown or inactive code; ErrCouponNotApplicable,
// wrapped with the reason, for a rule outside its window, in another currency, with its
// minimum not met, or with nothing to discount (an empty cart included); ErrInvalidLine
// as in Price.
func CouponApplicable(rs Ruleset, lines []Line, code, currency string, now time.Time) error {
	r, ok := rs.FindCode(code)
	if !ok {
		return fmt.Errorf("coupon %q: %w", NormalizeCode(code), ErrCouponNotFound)
	}
	totals, subtotal, err := lineTotals(lines, currency)
	if err != nil {
		return err
	}
	if reason := r.ineligible(currency, subtotal, now); reason != "" {
		return fmt.Errorf("%w: %s", ErrCouponNotApplicable, reason)
	}
	if _, amount := r.allocate(lines, totals); amount == 0 {
		return fmt.Errorf("%w: no item in the cart qualifies", ErrCouponNotApplicable)
	}
	return nil
}

// lineTotals validates lines and returns each line's total and their sum, in minor units.
func lineTotals(lines []Line, currency string) ([]int64, int64, error) {
	totals := make([]int64, len(lines))
	var subtotal int64
	for i, l := range lines {
		switch {
		case !money.ValidCurrency(currency) || l.UnitPrice.Currency != currency:
			return nil, 0, fmt.Errorf("%w: line %d (variant %s): currency %q, cart currency %q",
				ErrInvalidLine, i, l.VariantID, l.UnitPrice.Currency, currency)
		case l.Quantity <= 0:
			return nil, 0, fmt.Errorf("%w: line %d (variant %s): quantity %d is not positive",
				ErrInvalidLine, i, l.VariantID, l.Quantity)
		case l.UnitPrice.Amount < 0:
			return nil, 0, fmt.Errorf("%w: line %d (variant %s): unit price %d is negative",
				ErrInvalidLine, i, l.VariantID, l.UnitPrice.Amount)
		case l.UnitPrice.Amount > 0 && l.Quantity > math.MaxInt64/l.UnitPrice.Amount:
			return nil, 0, fmt.Errorf("%w: line %d (variant %s): line total overflows",
				ErrInvalidLine, i, l.VariantID)
		}
		totals[i] = l.UnitPrice.Amount * l.Quantity
		if subtotal > math.MaxInt64-totals[i] {
			return nil, 0, fmt.Errorf("%w: line %d (variant %s): subtotal overflows",
				ErrInvalidLine, i, l.VariantID)
		}
		subtotal += totals[i]
	}
	return totals, subtotal, nil
}

// allocate computes r's amount on the remaining line amounts and spreads it over the
// in-scope lines (see Price). shares[i] ≤ remaining[i] and Σ shares = amount.
func (r Rule) allocate(lines []Line, remaining []int64) (shares []int64, amount int64) {
	m := r.matcher()
	var in []int
	var scope int64
	for i, l := range lines {
		if remaining[i] > 0 && m.match(l) {
			in = append(in, i)
			scope += remaining[i]
		}
	}
	if scope == 0 {
		return nil, 0
	}
	switch r.Kind {
	case KindPercentage:
		amount = percentOf(scope, r.Value)
	case KindFixedAmount:
		amount = min(r.Value, scope)
	}
	if amount <= 0 {
		return nil, 0
	}
	return spread(amount, scope, in, lines, remaining), amount
}

// percentOf returns round-half-even(n × pct / 100) for 0 ≤ n and 0 ≤ pct ≤ 100, exactly
// (128-bit product), rounding through money.DivRoundHalfEven.
func percentOf(n, pct int64) int64 {
	hi, lo := bits.Mul64(uint64(n), uint64(pct))
	q, rem := bits.Div64(hi, lo, 100)
	// n×pct/100 = q + rem/100. Half-even depends on q only through its parity, so round
	// (q mod 2) + rem/100 with the one rounding rule and add back the even part of q.
	odd := int64(q % 2)
	return int64(q) - odd + money.DivRoundHalfEven(odd*100+int64(rem), 100)
}

// spread divides amount (≤ scope) over the lines in, in proportion to remaining, by the
// largest-remainder method: floors first, then one unit per line in order of fractional
// remainder descending, VariantID ascending, index ascending.
func spread(amount, scope int64, in []int, lines []Line, remaining []int64) []int64 {
	shares := make([]int64, len(lines))
	fracs := make([]uint64, len(lines))
	left := amount
	for _, i := range in {
		// amount × remaining[i] < scope × 2^64, so the quotient fits in 64 bits.
		hi, lo := bits.Mul64(uint64(amount), uint64(remaining[i]))
		q, rem := bits.Div64(hi, lo, uint64(scope))
		shares[i], fracs[i] = int64(q), rem
		left -= int64(q)
	}
	if left > 0 {
		order := slices.Clone(in)
		slices.SortFunc(order, func(a, b int) int {
			if c := cmp.Compare(fracs[b], fracs[a]); c != 0 {
				return c
			}
			if c := slices.Compare(lines[a].VariantID[:], lines[b].VariantID[:]); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		// left < len(in): the fractional parts sum to left and each is below one.
		for _, i := range order[:left] {
			shares[i]++
		}
	}
	return shares
}
