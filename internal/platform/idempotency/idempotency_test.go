package idempotency

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"commerce/internal/platform/httpx"
	"commerce/internal/platform/testenv"
)

func TestValidKey(t *testing.T) {
	long := strings.Repeat("k", 256)
	tests := []struct {
		key  string
		want bool
	}{
		{"", false}, {"a", true}, {"order-123 retry", true}, {long[:255], true},
		{long, false}, {"tab\there", false}, {"é", false}, {"{brace}", true},
	}
	for _, tt := range tests {
		if got := ValidKey(tt.key); got != tt.want {
			t.Errorf("ValidKey(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
}

func newStore(t *testing.T, opts Options) *Store {
	rdb, space := testenv.Redis(t)
	return New(rdb, space, nil, opts)
}

// TestRecordLifecycle: begin, in flight for everyone else, finished only by its owner,
// replayed byte for byte, other request → reused, abort frees the key.
func TestRecordLifecycle(t *testing.T) {
	s := newStore(t, Options{TTL: time.Hour})
	ctx := context.Background()
	a, _, err := s.Begin(ctx, "scope", "caller", "key", "fp1")
	if err != nil || a == nil {
		t.Fatalf("first begin: %v", err)
	}
	for _, fp := range []string{"fp1", "fp2"} {
		if _, _, err := s.Begin(ctx, "scope", "caller", "key", fp); !errors.Is(err, ErrInUse) {
			t.Fatalf("begin (%s) while in flight: %v", fp, err)
		}
	}
	// Another caller's key of the same name is its own.
	if r, _, err := s.Begin(ctx, "scope", "other", "key", "fp1"); err != nil || r == nil {
		t.Fatalf("other caller: %v", err)
	}
	// Only the owner may finish it.
	stranger := *a
	stranger.owner = "someone else"
	stranger.Abort(ctx)
	if _, _, err := s.Begin(ctx, "scope", "caller", "key", "fp1"); !errors.Is(err, ErrInUse) {
		t.Fatalf("a stranger's abort ended the record: %v", err)
	}
	body := []byte("{\"id\":\"x\"}\n\x00\xff")
	a.Finish(ctx, 201, body)
	_, res, err := s.Begin(ctx, "scope", "caller", "key", "fp1")
	if err != nil || res == nil || res.Status != 201 || string(res.Body) != string(body) {
		t.Fatalf("replay = %+v, %v", res, err)
	}
	if _, _, err := s.Begin(ctx, "scope", "caller", "key", "fp2"); !errors.Is(err, ErrReused) {
		t.Fatalf("other body: %v", err)
	}
	if ttl := s.rdb.PTTL(ctx, a.key).Val(); ttl < 59*time.Minute {
		t.Fatalf("stored record TTL %v, want the response TTL", ttl)
	}
	b, _, _ := s.Begin(ctx, "scope", "caller", "key2", "fp")
	b.Abort(ctx)
	if r, _, err := s.Begin(ctx, "scope", "caller", "key2", "fp"); err != nil || r == nil {
		t.Fatalf("begin after abort: %v", err)
	}
}

// TestInFlightMarkerLivesInFlightTTL: a request whose process died leaves the key in
// flight only for InFlightTTL; then the key can be used again.
func TestInFlightMarkerLivesInFlightTTL(t *testing.T) {
	s := newStore(t, Options{InFlightTTL: 300 * time.Millisecond})
	ctx := context.Background()
	if _, _, err := s.Begin(ctx, "scope", "caller", "key", "fp"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Begin(ctx, "scope", "caller", "key", "fp"); !errors.Is(err, ErrInUse) {
		t.Fatalf("second begin: %v", err)
	}
	time.Sleep(400 * time.Millisecond)
	if r, _, err := s.Begin(ctx, "scope", "caller", "key", "fp"); err != nil || r == nil {
		t.Fatalf("begin after the in-flight TTL: %v", err)
	}
}

// TestLiveKeysPerCallerAreCapped: a caller holds at most MaxKeysPerCaller live keys per
// scope; a further new key is refused (429 with Retry-After) without being stored, while
// existing keys still replay, other callers are not affected, and expired keys free room.
func TestLiveKeysPerCallerAreCapped(t *testing.T) {
	s := newStore(t, Options{MaxKeysPerCaller: 3, TTL: 700 * time.Millisecond})
	ctx := context.Background()
	for i := range 3 {
		r, _, err := s.Begin(ctx, "scope", "caller", "k"+string(rune('0'+i)), "fp")
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			r.Finish(ctx, 200, []byte("{}"))
		} // the third stays in flight: it counts too
	}
	_, _, err := s.Begin(ctx, "scope", "caller", "k3", "fp")
	var le *LimitError
	if !errors.As(err, &le) || !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("fourth key: %v", err)
	}
	he := httpx.Classify(HTTPError(err))
	if he.Status != http.StatusTooManyRequests || he.RetryAfter < 1 || he.Code != CodeKeysExhausted {
		t.Fatalf("fourth key answers %+v", he)
	}
	if n := s.rdb.Exists(ctx, s.space.Key("idem:{scope:", hash("caller")[:32], "}:", hash("k3"))).Val(); n != 0 {
		t.Fatal("a refused key was stored")
	}
	if _, res, err := s.Begin(ctx, "scope", "caller", "k0", "fp"); err != nil || res == nil {
		t.Fatalf("an existing key no longer replays: %v", err)
	}
	if r, _, err := s.Begin(ctx, "scope", "other", "k3", "fp"); err != nil || r == nil {
		t.Fatalf("another caller was limited: %v", err)
	}
	if r, _, err := s.Begin(ctx, "other-scope", "caller", "k3", "fp"); err != nil || r == nil {
		t.Fatalf("another scope was limited: %v", err)
	}
	time.Sleep(800 * time.Millisecond) // the two stored responses expire
	if r, _, err := s.Begin(ctx, "scope", "caller", "k3", "fp"); err != nil || r == nil {
		t.Fatalf("no room after keys expired: %v", err)
	}
}

// TestTooLargeResponseIsNotStoredButNotRunTwice: a body over MaxResponseBytes is not
// kept; the key stays done, and a retry answers 409 idempotency_response_too_large
// without running the request again.
func TestTooLargeResponseIsNotStoredButNotRunTwice(t *testing.T) {
	s := newStore(t, Options{MaxResponseBytes: 100})
	runs := 0
	h := Handler{Scope: "scope", Caller: "caller", Fingerprint: "fp", Run: func(context.Context) (int, any, error) {
		runs++
		return http.StatusOK, map[string]string{"blob": strings.Repeat("x", 200)}, nil
	}}
	e := echo.New()
	e.HTTPErrorHandler = httpx.ErrorHandler(nil)
	e.POST("/", func(c echo.Context) error { return s.Handle(c, h) })
	do := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		req.Header.Set(Header, "big")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	if r := do(); r.Code != 200 || r.Body.Len() < 200 {
		t.Fatalf("first: %d %d bytes", r.Code, r.Body.Len())
	}
	r := do()
	if r.Code != http.StatusConflict || !strings.Contains(r.Body.String(), CodeResponseTooLarge) || runs != 1 {
		t.Fatalf("retry: %d %s after %d runs", r.Code, r.Body, runs)
	}
	rk := s.space.Key("idem:{scope:", hash("caller")[:32], "}:", hash("big"))
	if n, _ := s.rdb.HStrLen(context.Background(), rk, "body").Result(); n != 0 {
		t.Fatalf("stored %d body bytes", n)
	}
}
