// Package fault says whether an error means "a dependency is down or busy" (PostgreSQL or
// Redis unreachable, slow, shutting down, out of resources, or a serialization conflict
// that survived its retries), as opposed to a bug or a caller's mistake. Domains and the
// resilience helpers use it to mark such errors; the HTTP edge turns them into 503 with
// Retry-After. It imports the drivers' error types and nothing of the HTTP layer.
package fault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// ErrUnavailable marks an error as "a dependency is down": wrap with it (Unavailable) in
// code that cannot name the driver's errors.
var ErrUnavailable = errors.New("dependency unavailable")

// Unavailable wraps err so that IsUnavailable reports it (nil stays nil).
func Unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// IsUnavailable reports whether err means PostgreSQL or Redis could not be reached, did
// not answer in time or refused the work for a passing reason. See TransientPG for the
// PostgreSQL conditions.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && TransientPG(pe.Code) {
		return true
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	// go-redis reports "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN" as Redis errors;
	// "READONLY" is a write that reached a master Sentinel has just demoted (the client
	// moves to the new master on +switch-master); "NOREPLICAS" is a write the replicas did
	// not confirm (min-replicas-to-write, or the service's own WAIT); "OOM" is a write
	// refused at maxmemory under noeviction (or volatile-* with nothing to evict);
	// "MISCONF" is a write refused because the server cannot persist.
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range []string{"LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "READONLY", "NOREPLICAS", "OOM", "MISCONF"} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
	}
	return false
}

// TransientPG reports whether a PostgreSQL SQLSTATE names a passing condition that a
// later retry may not meet:
//   - class 08, connection exceptions;
//   - class 53, insufficient resources (disk full, out of memory, too many connections);
//   - 57014 query_canceled (statement_timeout; a cancelled request also ends here);
//   - 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 57P04
//     database_dropped, 57P05 idle_session_timeout;
//   - 40001 serialization_failure and 40P01 deadlock_detected: callers retry these first
//     (resilience.RetryTx); one that reaches the caller means the retries were spent.
//   - 55P03 lock_not_available (lock_timeout).
func TransientPG(code string) bool {
	if len(code) != 5 {
		return false
	}
	switch {
	case code[:2] == "08", code[:2] == "53", code[:3] == "57P":
		return true
	}
	switch code {
	case "57014", "40001", "40P01", "55P03":
		return true
	}
	return false
}
