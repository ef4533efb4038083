package checkout

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"commerce/internal/platform/auth"
)

// Order returns the order if who owns it. Errors: ErrNotFound.
func (s *Service) Order(ctx context.Context, who Identity, id uuid.UUID) (Order, error) {
	o, err := s.st.order(ctx, id)
	if err != nil {
		return Order{}, err
	}
	if !who.Owns(o.Owner) {
		return Order{}, ErrNotFound
	}
	return o, nil
}

// Orders returns page (from 1) of perPage of a customer's orders, newest first, and
// how many orders the customer has.
func (s *Service) Orders(ctx context.Context, customerID string, page, perPage int) ([]Order, int64, error) {
	o := Owner{Type: auth.OwnerCustomer, ID: customerID}
	if err := o.Validate(); err != nil {
		return nil, 0, err
	}
	if page < 1 || perPage < 1 {
		return nil, 0, fmt.Errorf("checkout: bad page")
	}
	return s.st.orders(ctx, o, perPage, (int64(page)-1)*int64(perPage))
}
