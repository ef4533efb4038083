package auth

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"commerce/internal/platform/httpx"
)

// fixedFailures allows n failures per key, ever.
type fixedFailures struct {
	n    int
	seen map[string]int
}

func (f *fixedFailures) Peek(k string) (bool, time.Duration) { return f.seen[k] < f.n, time.Minute }
func (f *fixedFailures) Allow(k string) (bool, time.Duration) {
	f.seen[k]++
	return f.seen[k] <= f.n, time.Minute
}

// TestFailedAdminAttemptsAreLoggedAndLimited: each failed attempt is one warning naming
// the client; after the allowance, the address gets 429 before its token is compared,
// and the right token from another address still works.
func TestFailedAdminAttemptsAreLoggedAndLimited(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	e := echo.New()
	e.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
	g := e.Group("/admin", RequireAdminGuarded("the-admin-token-0123", AdminGuard{
		Failures: &fixedFailures{n: 3, seen: map[string]int{}}, Log: log,
		AddressOf: func(c echo.Context) string { return c.RealIP() }}))
	g.GET("/x", func(c echo.Context) error { return c.NoContent(204) })
	call := func(addr, tok string) int {
		req := httptest.NewRequest("GET", "/admin/x", nil)
		req.RemoteAddr = addr + ":1"
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec.Code
	}
	var got []int
	for range 5 {
		got = append(got, call("198.51.100.3", "wrong"))
	}
	if want := []int{401, 401, 401, 429, 429}; !equal(got, want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	if n := strings.Count(logs.String(), "admin authentication failed"); n != 3 {
		t.Fatalf("%d failure log lines, want 3:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "client=198.51.100.3") {
		t.Fatalf("the log does not name the client:\n%s", logs.String())
	}
	if code := call("198.51.100.3", "the-admin-token-0123"); code != 429 {
		t.Fatalf("right token from the limited address: %d, want 429", code)
	}
	if code := call("198.51.100.4", "the-admin-token-0123"); code != 204 {
		t.Fatalf("right token from another address: %d, want 204", code)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
