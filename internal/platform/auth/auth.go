// Package auth identifies callers: anonymous sessions (random ids carried in a credential
// signed by the server, see Sessions), customers (HS256 JWTs) and operators (a static
// admin token compared in constant time).
package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"commerce/internal/platform/rkey"
	"commerce/scripts/lua"
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

// Sessions mints and verifies anonymous sessions.
//
// A session has an id (32 random bytes, base64url: the identity carts, checkouts and
// orders are keyed by) and a credential the caller presents in X-Session-ID:
// "<id>.<expiry>.<mac>", where expiry is Unix seconds and mac is HMAC-SHA256 under the
// server's session key over the id and the expiry (the first 16 bytes, base64url). The
// credential is verified without Redis: a forged or expired one is refused before any
// Redis call, and a Redis loss logs no one out.
//
// Sliding: each credential lives TTL from when it was issued, and a request whose
// credential is older than RefreshAfter gets a fresh one (same id, later expiry) in the
// X-Session-ID response header. Redis keeps `<space>sess:{<id>}` as before (created at,
// sliding TTL) when it is there; a record lost with Redis is put back from a valid
// credential. Revoke marks the record revoked until the credential's latest expiry.
type Sessions struct {
	rdb     redis.UniversalClient
	space   rkey.Space
	ttl     time.Duration
	perMin  int64
	key     []byte
	touch   *redis.Script
	nowFunc func() time.Time

	// RefreshAfter is the age after which a presented credential is re-issued (1 minute).
	RefreshAfter time.Duration
	// Recheck is how long one replica trusts that a session it checked in Redis is not
	// revoked (1 s): revocation takes effect within it, and a burst of requests of one
	// session costs one Redis call.
	Recheck time.Duration

	mu      sync.Mutex
	checked map[string]time.Time

	revocations Revocations // nil: revocations live only in Redis
}

// SetRevocations makes revocations durable: Revoke records them in r first, and a
// session whose Redis record is missing (Redis lost it) is looked up there before its
// record is put back, so a Redis loss does not bring a revoked session back.
func (s *Sessions) SetRevocations(r Revocations) { s.revocations = r }

// Session is a newly minted session.
type Session struct {
	ID         string    // the identity (owner id of carts, checkouts, orders)
	Credential string    // what the caller presents in X-Session-ID
	ExpiresAt  time.Time // when Credential expires unless refreshed
}

// NewSessions returns a session store whose sessions slide for ttl and whose creation is
// limited to perMinute per client address (0 = unlimited). Its session key is random
// until SetSecret gives the one every replica shares.
func NewSessions(rdb redis.UniversalClient, space rkey.Space, ttl time.Duration, perMinute int) *Sessions {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(fmt.Sprintf("auth: session key: %v", err)) // crypto/rand never fails on supported platforms
	}
	return &Sessions{rdb: rdb, space: space, ttl: ttl, perMin: int64(perMinute), key: key,
		touch: redis.NewScript(lua.Source("session_touch")), nowFunc: time.Now,
		RefreshAfter: time.Minute, Recheck: time.Second, checked: map[string]time.Time{}}
}

// SetSecret derives the session key from secret (the service's signing secret), so every
// replica verifies every other's credentials. The derivation is domain-separated: the
// key signs nothing else.
func (s *Sessions) SetSecret(secret string) {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("commerce session credential key v1"))
	s.key = m.Sum(nil)
}

func (s *Sessions) redisKey(id string) string { return s.space.Key("sess:{", id, "}") }

// macLen is the length of the encoded MAC: 16 bytes of HMAC-SHA256, base64url.
const macLen = 22

func (s *Sessions) mac(id string, exp int64) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, exp, 10))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// Credential returns a credential for the session id, valid for TTL from now. An id that
// is not a well-formed session id is returned unchanged (and will not verify).
func (s *Sessions) Credential(id string) (string, time.Time) {
	if !rkey.ValidSessionID(id) {
		return id, time.Time{}
	}
	exp := s.nowFunc().Add(s.ttl).Unix()
	return id + "." + strconv.FormatInt(exp, 10) + "." + s.mac(id, exp), time.Unix(exp, 0).UTC()
}

// Verify checks a credential without any network call and returns its session id and
// expiry. It returns ErrInvalidSession for a malformed, forged or expired credential.
func (s *Sessions) Verify(cred string) (id string, expires time.Time, err error) {
	if len(cred) > 43+1+12+1+macLen {
		return "", time.Time{}, ErrInvalidSession
	}
	id, rest, ok := strings.Cut(cred, ".")
	if !ok || !rkey.ValidSessionID(id) {
		return "", time.Time{}, ErrInvalidSession
	}
	expStr, mac, ok := strings.Cut(rest, ".")
	if !ok || len(mac) != macLen || len(expStr) == 0 || len(expStr) > 12 || expStr[0] == '0' {
		return "", time.Time{}, ErrInvalidSession
	}
	exp, err := strconv.ParseInt(expStr, 10, 64)
	if err != nil || exp <= 0 {
		return "", time.Time{}, ErrInvalidSession
	}
	if !hmac.Equal([]byte(mac), []byte(s.mac(id, exp))) {
		return "", time.Time{}, ErrInvalidSession
	}
	expires = time.Unix(exp, 0).UTC()
	if !s.nowFunc().Before(expires) {
		return "", time.Time{}, ErrInvalidSession
	}
	return id, expires, nil
}

// Create mints a session. It returns ErrRateLimited when clientAddr created more than the
// allowed number of sessions this minute.
func (s *Sessions) Create(ctx context.Context, clientAddr string) (id string, expires time.Time, err error) {
	sess, err := s.New(ctx, clientAddr)
	return sess.ID, sess.ExpiresAt, err
}

// New mints a session and its first credential (see Create).
func (s *Sessions) New(ctx context.Context, clientAddr string) (Session, error) {
	if s.perMin > 0 && clientAddr != "" {
		now := s.nowFunc()
		k := s.space.Key("rl:sess:{", clientAddr, "}:", fmt.Sprint(now.Unix()/60))
		pipe := s.rdb.TxPipeline()
		incr := pipe.Incr(ctx, k)
		pipe.Expire(ctx, k, 2*time.Minute)
		if _, err := pipe.Exec(ctx); err != nil {
			return Session{}, fmt.Errorf("session rate limit: %w", err)
		}
		if incr.Val() > s.perMin {
			return Session{}, ErrRateLimited
		}
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Session{}, fmt.Errorf("session id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.nowFunc()
	if err := s.rdb.Set(ctx, s.redisKey(id), now.UTC().Format(time.RFC3339), s.ttl).Err(); err != nil {
		return Session{}, fmt.Errorf("create session: %w", err)
	}
	// The record was just written with its whole lifetime: this replica's next Touch of
	// it within Recheck has nothing to slide or check.
	s.remember(id, now)
	cred, exp := s.Credential(id)
	return Session{ID: id, Credential: cred, ExpiresAt: exp}, nil
}

// Touch slides the Redis record of a verified session id (putting it back when Redis
// lost it) and returns ErrInvalidSession when the session was revoked. A replica asks
// Redis at most once per Recheck per session. A Redis error is returned as it is; the
// caller's identity is proven by the credential all the same.
func (s *Sessions) Touch(ctx context.Context, id string) error {
	if !rkey.ValidSessionID(id) {
		return ErrInvalidSession
	}
	now := s.nowFunc()
	s.mu.Lock()
	at, ok := s.checked[id]
	s.mu.Unlock()
	if ok && now.Sub(at) < s.Recheck {
		return nil
	}
	res, err := s.touch.Run(ctx, s.rdb, []string{s.redisKey(id)}, s.ttl.Milliseconds(),
		now.UTC().Format(time.RFC3339)).Int64()
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	if res == 0 {
		return ErrInvalidSession
	}
	if res == 2 && s.revocations != nil {
		// Redis had lost the record and it was just put back: unless the revocation
		// store says otherwise. If that store cannot answer, the credential stands (as
		// it does while Redis is down), and the record put back is taken out again so
		// that the next check asks again.
		revoked, err := s.revocations.Revoked(ctx, id)
		if err != nil {
			if derr := s.rdb.Del(ctx, s.redisKey(id)).Err(); derr != nil {
				return fmt.Errorf("%w (and the record put back stays: %w)", err, derr)
			}
			return err
		}
		if revoked {
			if err := s.rdb.Set(ctx, s.redisKey(id), "revoked", s.ttl+time.Minute).Err(); err != nil {
				return fmt.Errorf("restore session revocation: %w", err)
			}
			return ErrInvalidSession
		}
	}
	s.remember(id, now)
	return nil
}

// remember records that session id's Redis record was found or written live at now.
func (s *Sessions) remember(id string, now time.Time) {
	s.mu.Lock()
	if len(s.checked) >= 100_000 {
		clear(s.checked)
	}
	s.checked[id] = now
	s.mu.Unlock()
}

// Revoke ends session id: its credentials are refused (by every replica within Recheck)
// for as long as any of them could still be valid. Without SetRevocations, a Redis loss
// forgets revocations.
func (s *Sessions) Revoke(ctx context.Context, id string) error {
	if !rkey.ValidSessionID(id) {
		return ErrInvalidSession
	}
	if s.revocations != nil {
		if err := s.revocations.Revoke(ctx, id, s.nowFunc().Add(s.ttl+time.Minute)); err != nil {
			return err
		}
	}
	if err := s.rdb.Set(ctx, s.redisKey(id), "revoked", s.ttl+time.Minute).Err(); err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	s.mu.Lock()
	delete(s.checked, id)
	s.mu.Unlock()
	return nil
}

// TTL is how long a session lives without use.
func (s *Sessions) TTL() time.Duration { return s.ttl }

// DefaultMaxTokenTTL is the longest lifetime a customer token may claim by default.
const DefaultMaxTokenTTL = 24 * time.Hour

// MaxTokenBytes is the largest Authorization token read; a longer one is refused before
// any parsing or signature check.
const MaxTokenBytes = 4096

// Tokens signs and verifies customer JWTs (HS256, `sub` = customer id, `exp` required,
// numeric, and at most MaxTTL ahead).
type Tokens struct {
	secret []byte
	// MaxTTL is the longest lifetime a token may have left (DefaultMaxTokenTTL).
	MaxTTL time.Duration
}

// NewTokens returns a verifier for secret.
func NewTokens(secret string) *Tokens {
	return &Tokens{secret: []byte(secret), MaxTTL: DefaultMaxTokenTTL}
}

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

const tokenLeeway = 5 * time.Second

// Verify returns the customer id of a valid token, or ErrInvalidToken. A token longer than
// MaxTokenBytes, one whose exp, iat or nbf is not a JSON number, and one that expires
// more than MaxTTL from now are invalid.
func (t *Tokens) Verify(token string) (string, error) {
	if len(token) > MaxTokenBytes {
		return "", ErrInvalidToken
	}
	var claims strictClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithLeeway(tokenLeeway))
	if err != nil || claims.bad {
		return "", ErrInvalidToken
	}
	if maxTTL := t.MaxTTL; maxTTL > 0 && claims.ExpiresAt.After(time.Now().Add(maxTTL+tokenLeeway)) {
		return "", ErrInvalidToken
	}
	if !rkey.ValidCustomerID(claims.Subject) {
		return "", ErrInvalidToken
	}
	return claims.Subject, nil
}

// strictClaims are the registered claims, read with the time claims required to be JSON
// numbers (the library would also take a numeric string).
type strictClaims struct {
	jwt.RegisteredClaims
	bad bool
}

func (c *strictClaims) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	for _, k := range []string{"exp", "iat", "nbf"} {
		if v, ok := raw[k]; ok && !isJSONNumber(v) {
			c.bad = true
		}
	}
	return json.Unmarshal(b, &c.RegisteredClaims)
}

func isJSONNumber(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))
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
