// Package auth identifies callers: anonymous sessions (opaque random ids in Redis with a
// sliding TTL), customers (HS256 JWTs) and operators (a static admin token compared in
// constant time).
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/rkey"
)

// Errors returned by this package.
var (
	ErrInvalidSession = errors.New("auth: unknown or expired session")
	ErrInvalidToken   = errors.New("auth: invalid or expired token")
	ErrRateLimited    = errors.New("auth: too many sessions created")
)

// OwnerType says whose cart, checkout or order something is.
type OwnerType string

// Owner types.
const (
	OwnerSession  OwnerType = "session"
	OwnerCustomer OwnerType = "customer"
)

// ValidOwner reports whether id is a well-formed id for owner type t (a session id minted
// here, or a customer id as the JWT allows), and so safe inside a Redis key.
func ValidOwner(t OwnerType, id string) bool {
	switch t {
	case OwnerSession:
		return rkey.ValidSessionID(id)
	case OwnerCustomer:
		return rkey.ValidCustomerID(id)
	}
	return false
}

// OwnerKey is the stable, opaque key of an owner: the type and a hash of the id, so a
// session token never appears in a response body or a database index. Carts use it as
// their public id and checkout as the key of "one active checkout per cart".
func OwnerKey(t OwnerType, id string) string {
	h := sha256.Sum256([]byte(string(t) + ":" + id))
	return string(t) + "_" + hex.EncodeToString(h[:16])
}

// Caller is who made a request. CustomerID is set for a valid customer JWT, SessionID for
// a valid X-Session-ID; both may be set (merge at login needs both).
type Caller struct {
	CustomerID string
	SessionID  string
}

// Owner returns the owner of "the caller's cart": the customer when there is one, else
// the session. ok is false for an anonymous caller without a session.
func (c Caller) Owner() (t OwnerType, id string, ok bool) {
	switch {
	case c.CustomerID != "":
		return OwnerCustomer, c.CustomerID, true
	case c.SessionID != "":
		return OwnerSession, c.SessionID, true
	}
	return "", "", false
}

// Sessions stores anonymous sessions in Redis under `<space>sess:{<id>}`.
type Sessions struct {
	rdb     redis.UniversalClient
	space   rkey.Space
	ttl     time.Duration
	perMin  int64
	nowFunc func() time.Time
}

// NewSessions returns a session store whose sessions slide for ttl and whose creation is
// limited to perMinute per client address (0 = unlimited).
func NewSessions(rdb redis.UniversalClient, space rkey.Space, ttl time.Duration, perMinute int) *Sessions {
	return &Sessions{rdb: rdb, space: space, ttl: ttl, perMin: int64(perMinute), nowFunc: time.Now}
}

func (s *Sessions) key(id string) string { return s.space.Key("sess:{", id, "}") }

// Create mints a session id of 256 random bits. It returns ErrRateLimited when clientAddr
// created more than the allowed number of sessions this minute.
func (s *Sessions) Create(ctx context.Context, clientAddr string) (id string, expires time.Time, err error) {
	if s.perMin > 0 && clientAddr != "" {
		now := s.nowFunc()
		k := s.space.Key("rl:sess:{", clientAddr, "}:", fmt.Sprint(now.Unix()/60))
		pipe := s.rdb.TxPipeline()
		incr := pipe.Incr(ctx, k)
		pipe.Expire(ctx, k, 2*time.Minute)
		if _, err := pipe.Exec(ctx); err != nil {
			return "", time.Time{}, fmt.Errorf("session rate limit: %w", err)
		}
		if incr.Val() > s.perMin {
			return "", time.Time{}, ErrRateLimited
		}
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("session id: %w", err)
	}
	id = base64.RawURLEncoding.EncodeToString(b[:])
	if err := s.rdb.Set(ctx, s.key(id), s.nowFunc().UTC().Format(time.RFC3339), s.ttl).Err(); err != nil {
		return "", time.Time{}, fmt.Errorf("create session: %w", err)
	}
	return id, s.nowFunc().Add(s.ttl).UTC(), nil
}

// Touch validates id and slides its expiry. It returns ErrInvalidSession for a malformed,
// unknown or expired id.
func (s *Sessions) Touch(ctx context.Context, id string) error {
	if !rkey.ValidSessionID(id) {
		return ErrInvalidSession
	}
	ok, err := s.rdb.Expire(ctx, s.key(id), s.ttl).Result()
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	if !ok {
		return ErrInvalidSession
	}
	return nil
}

// TTL is how long a session lives without use.
func (s *Sessions) TTL() time.Duration { return s.ttl }

// Tokens signs and verifies customer JWTs (HS256, `sub` = customer id, `exp` required).
type Tokens struct {
	secret []byte
}

// NewTokens returns a verifier for secret.
func NewTokens(secret string) *Tokens { return &Tokens{secret: []byte(secret)} }

// Issue returns a signed token for customer valid for ttl.
func (t *Tokens) Issue(customer string, ttl time.Duration) (string, error) {
	if !rkey.ValidCustomerID(customer) {
		return "", fmt.Errorf("customer id must be 1-64 characters of [A-Za-z0-9_-]")
	}
	now := time.Now()
	claims := jwt.RegisteredClaims{Subject: customer, IssuedAt: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl))}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.secret)
}

// Verify returns the customer id of a valid token, or ErrInvalidToken.
func (t *Tokens) Verify(token string) (string, error) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return "", ErrInvalidToken
	}
	if !rkey.ValidCustomerID(claims.Subject) {
		return "", ErrInvalidToken
	}
	return claims.Subject, nil
}

// TokenEqual compares a presented token with the expected one in constant time (the
// SHA-256 digests are compared, so the length of the secret does not leak either).
func TokenEqual(presented, expected string) bool {
	if expected == "" {
		return false
	}
	a := sha256.Sum256([]byte(presented))
	b := sha256.Sum256([]byte(expected))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
