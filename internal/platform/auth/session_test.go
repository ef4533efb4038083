package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"commerce/internal/platform/httpx"
	"commerce/internal/platform/testenv"
)

func identifyServer(s *Sessions) *echo.Echo {
	e := echo.New()
	e.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
	e.GET("/v1/cart", func(c echo.Context) error { return c.String(200, CallerOf(c).SessionID) },
		Identify(NewTokens(secret), s))
	return e
}

func getWith(e *echo.Echo, cred string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "/v1/cart", nil)
	req.Header.Set(HeaderSession, cred)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

// TestForgedOrExpiredSessionIsRefusedWithoutRedis: a session credential is verified by
// its MAC and expiry before any Redis call, so forged session ids cost no Redis work.
func TestForgedOrExpiredSessionIsRefusedWithoutRedis(t *testing.T) {
	rdb, space := testenv.Redis(t)
	hook := &testenv.CommandCounter{}
	rdb.AddHook(hook)
	s := NewSessions(rdb, space, time.Hour, 0)
	s.SetSecret(secret)
	sess, err := s.New(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	other := NewSessions(rdb, space, time.Hour, 0)
	other.SetSecret("another-secret-another-secret-xx")
	otherCred, _ := other.Credential(sess.ID)
	id, rest, _ := strings.Cut(sess.Credential, ".")
	exp, mac, _ := strings.Cut(rest, ".")
	expN, _ := strconv.ParseInt(exp, 10, 64)
	past := NewSessions(rdb, space, time.Hour, 0)
	past.SetSecret(secret)
	past.nowFunc = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	expiredCred, _ := past.Credential(sess.ID)
	flip := []byte(mac)
	flip[0] ^= 1
	otherFirst := "B" // another id: its first character changed (never to itself)
	if id[0] == 'B' {
		otherFirst = "C"
	}
	e := identifyServer(s)
	for name, cred := range map[string]string{
		"bare id (the old format)": sess.ID,
		"random well-formed id":    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"other key":                otherCred,
		"expired":                  expiredCred,
		"mac flipped":              id + "." + exp + "." + string(flip),
		"expiry extended":          id + "." + strconv.FormatInt(expN+3600, 10) + "." + mac,
		"other id, same mac":       otherFirst + id[1:] + "." + exp + "." + mac,
		"leading zero":             id + ".0" + exp + "." + mac,
		"extra part":               sess.Credential + ".x",
		"too long":                 sess.Credential + strings.Repeat("A", 100),
	} {
		before := hook.N()
		if rec := getWith(e, cred); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, rec.Code)
		}
		if n := hook.N() - before; n != 0 {
			t.Errorf("%s: %d Redis commands, want none", name, n)
		}
	}
	if rec := getWith(e, sess.Credential); rec.Code != 200 || rec.Body.String() != sess.ID {
		t.Fatalf("valid credential: %d %s", rec.Code, rec.Body)
	}
}

// TestSessionSlidesByRefresh: a credential older than RefreshAfter is re-issued with a
// later expiry and the same identity, and the fresh one works.
func TestSessionSlidesByRefresh(t *testing.T) {
	rdb, space := testenv.Redis(t)
	s := NewSessions(rdb, space, time.Hour, 0)
	sess, err := s.New(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	e := identifyServer(s)
	if rec := getWith(e, sess.Credential); rec.Code != 200 || rec.Header().Get(HeaderSession) != "" {
		t.Fatalf("new credential: %d, refreshed %q", rec.Code, rec.Header().Get(HeaderSession))
	}
	s.nowFunc = func() time.Time { return time.Now().Add(50 * time.Minute) }
	rec := getWith(e, sess.Credential)
	fresh := rec.Header().Get(HeaderSession)
	if rec.Code != 200 || fresh == "" || fresh == sess.Credential {
		t.Fatalf("old credential: %d, refreshed %q", rec.Code, fresh)
	}
	s.nowFunc = func() time.Time { return time.Now().Add(100 * time.Minute) }
	if rec := getWith(e, sess.Credential); rec.Code != 401 {
		t.Fatalf("the first credential after its expiry: %d, want 401", rec.Code)
	}
	if rec := getWith(e, fresh); rec.Code != 200 || rec.Body.String() != sess.ID {
		t.Fatalf("the refreshed credential: %d %s, want 200 and the same session", rec.Code, rec.Body)
	}
}

// TestRevokedSessionIsRefused and TestSessionOutlivesRedisLoss: a revoked session is a
// 401; a session whose record Redis lost (FLUSHALL) still works and its record is back.
func TestRevokedSessionIsRefused(t *testing.T) {
	rdb, space := testenv.Redis(t)
	s := NewSessions(rdb, space, time.Hour, 0)
	sess, err := s.New(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	e := identifyServer(s)
	if rec := getWith(e, sess.Credential); rec.Code != 200 {
		t.Fatal(rec.Code)
	}
	if err := s.Revoke(context.Background(), sess.ID); err != nil {
		t.Fatal(err)
	}
	if rec := getWith(e, sess.Credential); rec.Code != 401 {
		t.Fatalf("revoked: %d, want 401", rec.Code)
	}
}

func TestSessionOutlivesRedisLoss(t *testing.T) {
	rdb := testenv.StartRedis(t).Client()
	s := NewSessions(rdb, "", time.Hour, 0)
	sess, err := s.New(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	e := identifyServer(s)
	if rec := getWith(e, sess.Credential); rec.Code != 200 || rec.Body.String() != sess.ID {
		t.Fatalf("after FLUSHALL: %d %s, want 200 and the same session", rec.Code, rec.Body)
	}
	// The replica that created the session trusts its record for Recheck, then checks it
	// again and puts it back.
	if n := rdb.Exists(context.Background(), s.redisKey(sess.ID)).Val(); n != 0 {
		t.Fatal("the record was checked within Recheck of its creation")
	}
	later := time.Now().Add(s.Recheck + time.Millisecond)
	s.nowFunc = func() time.Time { return later }
	if rec := getWith(e, sess.Credential); rec.Code != 200 || rec.Body.String() != sess.ID {
		t.Fatalf("after Recheck: %d %s, want 200 and the same session", rec.Code, rec.Body)
	}
	if n := rdb.Exists(context.Background(), s.redisKey(sess.ID)).Val(); n != 1 {
		t.Fatal("the session record was not put back")
	}
}

// With durable revocations, a revoked session stays revoked through a Redis loss: the
// record Redis lost is not put back as live (it comes back as revoked), while a session
// that was not revoked is put back as before.
func TestRevocationOutlivesRedisLoss(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.StartRedis(t).Client()
	pool, _ := testenv.DB(t)
	s := NewSessions(rdb, "", time.Hour, 0)
	s.SetRevocations(&PGRevocations{Pool: pool})
	gone, err := s.New(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	kept, err := s.New(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(s.Recheck + time.Millisecond)
	s.nowFunc = func() time.Time { return later }
	e := identifyServer(s)
	if rec := getWith(e, gone.Credential); rec.Code != 401 {
		t.Fatalf("revoked session after a Redis loss: %d %s, want 401", rec.Code, rec.Body)
	}
	if v := rdb.Get(ctx, s.redisKey(gone.ID)).Val(); v != "revoked" {
		t.Fatalf("the revoked session's record came back as %q, want revoked", v)
	}
	if rec := getWith(e, kept.Credential); rec.Code != 200 || rec.Body.String() != kept.ID {
		t.Fatalf("live session after a Redis loss: %d %s, want 200", rec.Code, rec.Body)
	}
}

// flakyRevocations answers Revoked with an error while down, else from its set.
type flakyRevocations struct {
	down    bool
	revoked map[string]bool
}

func (f *flakyRevocations) Revoke(_ context.Context, id string, _ time.Time) error {
	f.revoked[id] = true
	return nil
}

func (f *flakyRevocations) Revoked(context.Context, string) (bool, error) {
	if f.down {
		return false, errors.New("revocation store unreachable")
	}
	return true, nil
}

// When the revocation store cannot answer for a record Redis lost, the credential stands
// for that request, but the record is not left behind as live: the next check asks the
// store again and refuses the revoked session.
func TestRevocationAskedAgainAfterTheStoreFailed(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.StartRedis(t).Client()
	s := NewSessions(rdb, "", time.Hour, 0)
	store := &flakyRevocations{revoked: map[string]bool{}}
	s.SetRevocations(store)
	sess, err := s.New(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	store.down = true
	e := identifyServer(s)
	if rec := getWith(e, sess.Credential); rec.Code != 200 {
		t.Fatalf("while the store is down: %d %s, want 200 (the credential stands)", rec.Code, rec.Body)
	}
	if n := rdb.Exists(ctx, s.redisKey(sess.ID)).Val(); n != 0 {
		t.Fatal("the record was left as live while the store could not answer")
	}
	store.down = false
	if rec := getWith(e, sess.Credential); rec.Code != 401 {
		t.Fatalf("once the store answers: %d %s, want 401", rec.Code, rec.Body)
	}
}
