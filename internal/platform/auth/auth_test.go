package auth

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"commerce/internal/platform/rkey"
	"commerce/internal/platform/testenv"
)

const secret = "0123456789abcdef0123456789abcdef"

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	tok := NewTokens(secret)
	good, err := tok.Issue("alice_1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"valid", good, "alice_1"},
		{"expired", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()}), ""},
		{"noExp", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "alice"}), ""},
		{"otherSecret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), jwt.MapClaims{"sub": "alice", "exp": exp}), ""},
		{"algNone", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "alice", "exp": exp}), ""},
		{"hs512", sign(t, jwt.SigningMethodHS512, []byte(secret), jwt.MapClaims{"sub": "alice", "exp": exp}), ""},
		{"subWithKeyChars", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "a}:b", "exp": exp}), ""},
		{"subTooLong", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": string(make([]byte, 65)), "exp": exp}), ""},
		{"garbage", "not.a.jwt", ""},
		{"expBeyondMaxTTL", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "alice", "exp": time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).Unix()}), ""},
		{"expJustBeyondMaxTTL", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(DefaultMaxTokenTTL + time.Minute).Unix()}), ""},
		{"expWithinMaxTTL", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(DefaultMaxTokenTTL - time.Minute).Unix()}), "alice"},
		{"expAsString", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "alice", "exp": strconv.FormatInt(exp, 10)}), ""},
		{"iatAsString", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "alice", "exp": exp, "iat": "1"}), ""},
		{"oversized", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "alice", "exp": exp, "pad": strings.Repeat("x", 85_000)}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tok.Verify(tt.token)
			if tt.want == "" {
				if !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("accepted (%q, %v)", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := tok.Issue("bad id!", time.Hour); err == nil {
		t.Fatal("issued a token for an invalid customer id")
	}
}

func TestTokenEqual(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{{"s3cret-token", "s3cret-token", true}, {"s3cret-token", "s3cret-tokem", false},
		{"s3cret", "s3cret-token", false}, {"", "", false}, {"x", "", false}} {
		if got := TokenEqual(tt.a, tt.b); got != tt.want {
			t.Errorf("TokenEqual(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

func TestSessions(t *testing.T) {
	rdb, space := testenv.Redis(t)
	s := NewSessions(rdb, space, time.Minute, 3)
	ctx := context.Background()
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		id, exp, err := s.Create(ctx, "10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if !rkey.ValidSessionID(id) || seen[id] || time.Until(exp) <= 0 {
			t.Fatalf("bad session %q (expires %v)", id, exp)
		}
		seen[id] = true
		if err := s.Touch(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Create(ctx, "10.0.0.1"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("fourth session in a minute: %v", err)
	}
	if _, _, err := s.Create(ctx, "10.0.0.2"); err != nil {
		t.Fatalf("another address is limited too: %v", err)
	}
	for _, bad := range []string{"", "short", "{x}"} {
		if err := s.Touch(ctx, bad); !errors.Is(err, ErrInvalidSession) {
			t.Fatalf("Touch(%q) = %v", bad, err)
		}
	}
	// Sliding: Touch extends the TTL.
	var id string
	for k := range seen {
		id = k
	}
	s.Recheck = 0
	rdb.PExpire(ctx, s.redisKey(id), 2*time.Second)
	if err := s.Touch(ctx, id); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, s.redisKey(id)).Val(); ttl < 30*time.Second {
		t.Fatalf("TTL not slid: %v", ttl)
	}
}
