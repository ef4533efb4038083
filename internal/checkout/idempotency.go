package checkout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
)

// Idempotency errors (Stripe semantics).
var (
	// ErrIdempotencyInUse: the first request with this key is still running (409).
	ErrIdempotencyInUse = errors.New("checkout: idempotency key in use by a running request")
	// ErrIdempotencyReused: the key was used with a different request (422).
	ErrIdempotencyReused = errors.New("checkout: idempotency key reused with a different request")
	// ErrIdempotencyKey: the key is empty, longer than 255 characters or not printable ASCII (400).
	ErrIdempotencyKey = errors.New("checkout: malformed idempotency key")
)

// MaxIdempotencyKey is the longest Idempotency-Key accepted.
const MaxIdempotencyKey = 255

// ValidIdempotencyKey reports whether key has 1–255 printable ASCII characters.
func ValidIdempotencyKey(key string) bool {
	if len(key) == 0 || len(key) > MaxIdempotencyKey {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// StoredResponse is the first response to an idempotent request, replayed byte for byte.
type StoredResponse struct {
	Status int
	Body   []byte
}

// IdemRequest is an idempotent request in flight: Store its response when it ends with
// a result worth replaying, or Abort so the client may retry.
type IdemRequest struct {
	s     *Service
	key   string
	owner string
}

func hash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// BeginIdempotent starts the request identified by (scope, caller, key); fingerprint
// identifies the request itself (route, path ids and normalised body). It returns either
// an IdemRequest to finish, or the stored response of the first request with this key.
// The Redis key is <space>idem:{<scope>:<hash of caller>:<hash of key>}; the record lives
// IdemInFlightTTL while running, IdemTTL once stored. Errors: ErrIdempotencyKey,
// ErrIdempotencyInUse, ErrIdempotencyReused, Redis failures.
func (s *Service) BeginIdempotent(ctx context.Context, scope string, caller Owner, key string, fingerprint string) (*IdemRequest, *StoredResponse, error) {
	if !ValidIdempotencyKey(key) {
		return nil, nil, ErrIdempotencyKey
	}
	owner, err := randomToken()
	if err != nil {
		return nil, nil, err
	}
	rk := s.r.idemKey(scope, hash(string(caller.Type), caller.ID)[:32], hash(key))
	res, err := s.r.idemStart(ctx, rk, hash(fingerprint), owner, s.opts.IdemInFlightTTL)
	if err != nil {
		return nil, nil, err
	}
	switch res.outcome {
	case idemBegun:
		s.m.idempotency.WithLabelValues("begin").Inc()
		return &IdemRequest{s: s, key: rk, owner: owner}, nil, nil
	case idemDone:
		s.m.idempotency.WithLabelValues("replay").Inc()
		return nil, &StoredResponse{Status: res.status, Body: res.body}, nil
	case idemInFlight:
		s.m.idempotency.WithLabelValues("in_flight").Inc()
		return nil, nil, ErrIdempotencyInUse
	case idemMismatch:
		s.m.idempotency.WithLabelValues("reused").Inc()
		return nil, nil, ErrIdempotencyReused
	}
	return nil, nil, fmt.Errorf("idempotency: unknown outcome %q", res.outcome)
}

// Store saves the response for IdemTTL. A failure is logged and the record dropped, so
// a retry runs the request again (which every checkout operation tolerates).
func (r *IdemRequest) Store(ctx context.Context, status int, body []byte) {
	ctx, cancel := detach(ctx)
	defer cancel()
	if err := r.s.r.idemStore(ctx, r.key, r.owner, status, body, r.s.opts.IdemTTL); err != nil {
		r.s.log.Warn("idempotency: store response", slog.String("error", err.Error()))
		r.Abort(ctx)
	}
}

// Abort deletes the in-flight record (5xx, dependency down): the client may retry.
func (r *IdemRequest) Abort(ctx context.Context) {
	ctx, cancel := detach(ctx)
	defer cancel()
	if err := r.s.r.idemAbort(ctx, r.key, r.owner); err != nil {
		r.s.log.Warn("idempotency: abort", slog.String("error", err.Error()))
	}
}
