package checkout

import "commerce/internal/platform/idempotency"

// Idempotency errors (Stripe semantics); see package idempotency.
var (
	// ErrIdempotencyInUse: the first request with this key is still running (409).
	ErrIdempotencyInUse = idempotency.ErrInUse
	// ErrIdempotencyReused: the key was used with a different request (422).
	ErrIdempotencyReused = idempotency.ErrReused
	// ErrIdempotencyKey: the key is empty, longer than 255 characters or not printable ASCII (400).
	ErrIdempotencyKey = idempotency.ErrKey
)

// Idempotency returns the store of the service's Idempotency-Key records.
func (s *Service) Idempotency() *idempotency.Store { return s.idem }
