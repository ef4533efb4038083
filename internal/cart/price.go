package cart

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"commerce/internal/platform/money"
)

// price computes the priced view of st: current catalog prices, the Pricer's discounts.
// It also returns the visible lines as the Pricer saw them.
func (s *Service) price(ctx context.Context, o Owner, st state) (Cart, []PriceLine, error) {
	return s.priceWith(ctx, o, st, nil)
}

// priceWith is price reusing the variants of known (read earlier in the same request);
// only the others are read from the catalog.
func (s *Service) priceWith(ctx context.Context, o Owner, st state, known map[uuid.UUID]VariantInfo) (Cart, []PriceLine, error) {
	cur := s.opts.Currency
	c := Cart{ID: o.CartID(), Owner: o.Type, Coupon: st.coupon, LockedBy: st.lock, Lines: make([]PricedLine, 0, len(st.lines)),
		Subtotal: money.Zero(cur), DiscountTotal: money.Zero(cur), Total: money.Zero(cur)}
	if st.updatedAt > 0 {
		c.UpdatedAt = time.UnixMilli(st.updatedAt).UTC()
	}
	if st.exists {
		c.ExpiresAt = st.now.Add(s.ttl(o)).UTC()
	}
	var lines []PriceLine
	if len(st.lines) > 0 {
		lines = make([]PriceLine, 0, len(st.lines))
		ids := make([]uuid.UUID, 0, len(st.lines))
		for _, l := range st.lines {
			if _, ok := known[l.VariantID]; !ok {
				ids = append(ids, l.VariantID)
			}
		}
		vs := map[uuid.UUID]VariantInfo{}
		if len(ids) > 0 {
			var err error
			if vs, err = s.catalog.Variants(ctx, ids); err != nil {
				return Cart{}, nil, fmt.Errorf("cart: price: %w", err)
			}
		}
		for id, v := range known {
			vs[id] = v
		}
		for _, l := range st.lines {
			v, ok := vs[l.VariantID]
			if !ok || !v.Active || v.Price.Currency != cur {
				c.Hidden = append(c.Hidden, l.VariantID)
				continue
			}
			name := v.ProductName
			if v.VariantName != "" {
				name += " " + v.VariantName
			}
			lines = append(lines, PriceLine{VariantID: l.VariantID, ProductID: v.ProductID, Category: v.Category,
				SKU: v.SKU, Name: name, Quantity: l.Quantity, UnitPrice: v.Price})
			c.Lines = append(c.Lines, PricedLine{VariantID: l.VariantID, SKU: v.SKU, Name: name,
				Quantity: l.Quantity, UnitPrice: v.Price, LineTotal: v.Price.Mul(l.Quantity), Discount: money.Zero(cur)})
		}
	}
	if len(lines) == 0 {
		return c, lines, nil
	}
	p, err := s.pricer.Price(ctx, lines, st.coupon)
	if errors.Is(err, ErrCouponNotFound) || errors.Is(err, ErrCouponNotApplicable) {
		p, err = s.pricer.Price(ctx, lines, "")
	}
	if err != nil {
		return Cart{}, nil, fmt.Errorf("cart: price: %w", err)
	}
	for i := range c.Lines {
		if i < len(p.LineDiscounts) && p.LineDiscounts[i].Currency != "" {
			c.Lines[i].Discount = p.LineDiscounts[i]
		}
	}
	c.Applied, c.Subtotal, c.DiscountTotal, c.Total = p.Applied, p.Subtotal, p.DiscountTotal, p.Total
	return c, lines, nil
}
