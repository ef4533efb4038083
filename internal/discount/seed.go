package discount

import (
	"context"
	"errors"
	"fmt"

	"commerce/internal/platform/money"
)

// DemoRules are the rules `commerce seed` creates: a coupon, a category sale and a
// cart-wide threshold, in currency.
func DemoRules(currency string) []Rule {
	return []Rule{
		{Name: "Welcome 10% off", Code: "WELCOME10", Kind: KindPercentage, Value: 10,
			Scope: Scope{Type: ScopeCart, IDs: []string{}}, Priority: 10, Stackable: true, Active: true},
		{Name: "Shoe sale 15% off", Kind: KindPercentage, Value: 15,
			Scope: Scope{Type: ScopeCategory, IDs: []string{"shoes"}}, Priority: 20, Stackable: true, Active: true},
		{Name: "5.00 off orders of 100.00 or more", Kind: KindFixedAmount, Value: 500, Currency: currency,
			Scope: Scope{Type: ScopeCart, IDs: []string{}}, MinSubtotal: &money.Money{Amount: 10000, Currency: currency},
			Priority: 0, Stackable: true, Active: true},
	}
}

// Seed creates DemoRules(currency) when no live discount exists and returns how many it
// created (0 when there were discounts already). Two seeders racing may both see none:
// the coupon's unique code makes the second one stop at ErrConflict, reported as done.
func Seed(ctx context.Context, svc *Service, currency string) (int, error) {
	existing, _, err := svc.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("seed discounts: %w", err)
	}
	if len(existing) > 0 {
		return 0, nil
	}
	n := 0
	for _, r := range DemoRules(currency) {
		if _, _, err := svc.Create(ctx, r); err != nil {
			if errors.Is(err, ErrConflict) && n == 0 {
				return 0, nil
			}
			return n, fmt.Errorf("seed discount %q: %w", r.Name, err)
		}
		n++
	}
	return n, nil
}
