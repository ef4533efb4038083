package httpx

import "commerce/internal/platform/fault"

// ErrUnavailable is fault.ErrUnavailable, kept while callers move.
//
// Deprecated: use fault.ErrUnavailable; domains need not import the HTTP layer to say a
// dependency is down.
var ErrUnavailable = fault.ErrUnavailable

// IsUnavailable is fault.IsUnavailable.
//
// Deprecated: use fault.IsUnavailable.
func IsUnavailable(err error) bool { return fault.IsUnavailable(err) }
