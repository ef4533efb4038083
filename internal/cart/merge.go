package cart

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Merge moves session's cart into customer's at login and returns the customer's cart:
// quantities summed per variant, capped at 100 per line and at the stock available now
// (a line the customer already had is never reduced), new lines beyond 50 dropped, the
// customer's coupon kept else the session's, the session cart deleted. Idempotent: a
// second call, or a call without a session cart, changes nothing and returns the customer
// cart. Errors: *LockedError when either cart is frozen by a checkout, ErrInvalidOwner.
//
// The two carts live in different Redis hash slots (Cluster), so the merge itself is one
// script on the customer cart (cart_merge.lua, idempotent through a per-session marker
// holding the merged session version), between a read of the session cart and
// cart_merge_drop.lua on the session cart. A crash between the two leaves the session
// cart in place, and a retry merges nothing twice.
func (s *Service) Merge(ctx context.Context, customerID, sessionID string) (Cart, error) {
	cust, sess := CustomerOwner(customerID), SessionOwner(sessionID)
	if err := cust.Validate(); err != nil {
		return Cart{}, err
	}
	if err := sess.Validate(); err != nil {
		return Cart{}, err
	}
	sessKey := s.r.cartKey(sess)
	fields, err := s.r.hgetall(ctx, sessKey)
	if err != nil {
		return Cart{}, fmt.Errorf("cart merge: %w", err)
	}
	if len(fields) == 0 {
		return s.Get(ctx, cust)
	}
	src := stateFromHash(fields, time.Now())
	if src.lock != "" {
		return Cart{}, &LockedError{CheckoutID: src.lock}
	}
	ids := make([]uuid.UUID, len(src.lines))
	for i, l := range src.lines {
		ids[i] = l.VariantID
	}
	av := map[uuid.UUID]int64{}
	if len(ids) > 0 {
		if av, err = s.available(ctx, ids); err != nil {
			return Cart{}, err
		}
	}
	version := fmt.Sprint(src.updatedAt)
	args := []any{mergeMarker(sessionID), version, src.coupon, MaxQuantity, MaxLines}
	for _, l := range src.lines {
		args = append(args, lineField(l.VariantID), l.Quantity, max(av[l.VariantID], 0))
	}
	rep, err := s.exec(ctx, cust, s.r.merge, true, args...)
	if err != nil {
		return Cart{}, err
	}
	drop := []any{version, src.coupon}
	for _, l := range src.lines {
		drop = append(drop, lineField(l.VariantID), l.Quantity)
	}
	if res, err := s.r.run(ctx, s.r.mergeDrop, sessKey, false, s.opts.SessionTTL, drop...); err != nil {
		return Cart{}, fmt.Errorf("cart merge: drop session cart: %w", err)
	} else if res.code == codeLocked {
		s.log.Warn("cart merge: session cart frozen by a checkout during the merge; left in place")
	}
	return s.priceReply(ctx, cust, rep, nil)
}

// mergeMarker names the customer-cart field that records which version of a session cart
// was merged (a hash, so the session token is not stored in the customer cart).
func mergeMarker(sessionID string) string {
	h := sha256.Sum256([]byte(sessionID))
	return fieldMarkerPrefix + hex.EncodeToString(h[:8])
}
