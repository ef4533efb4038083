package checkout

import "github.com/google/uuid"

// Points of a creation or a completion where tests stop the flow (testenv.CrashAt ends
// a crash child there).
const (
	HookCreateAfterInsert  = hookCreateAfterInsert
	HookCreateAfterReserve = hookCreateAfterReserve
	HookAfterClaim         = hookAfterClaim
	HookAfterPayment       = hookAfterPayment
	HookAfterCommit        = hookAfterCommit
	HookAfterConfirm       = hookAfterConfirm
)

// SetHook installs f at the completion points; set it before the service is used.
func SetHook(s *Service, f func(point string)) { s.hook = f }

// HashKey is the Redis key of a checkout's state hash.
func HashKey(s *Service, id uuid.UUID) string { return s.r.chkKey(id) }

// LockKey is the Redis key of a cart's checkout lock.
func LockKey(s *Service, o Owner) string { return s.r.lockKey(o.CartKey()) }

// CreatingKey is the Redis key of the registry of creations in flight.
func CreatingKey(s *Service) string { return s.r.creatingKey() }

// StreamKey is the Redis key of the order events stream.
func StreamKey(s *Service) string { return s.r.streamKey() }

// Refund points where crash tests stop.
const (
	HookRefundDecided = hookRefundDecided
	HookRefundCalled  = hookRefundCalled
)
