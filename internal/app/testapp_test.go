package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"commerce/internal/platform/spectest"
	"commerce/internal/platform/testenv"
)

const (
	testAdminToken = "test-admin-token-0123456789"
	testJWTSecret  = "test-jwt-secret-0123456789-0123456789"
	testWebhook    = "test-webhook-secret"
)

// testConfig returns a configuration on a fresh database and a private Redis key space
// (any testing.TB: fuzz targets build one app per process too).
func testConfig(t testing.TB) Config {
	t.Helper()
	_, dsn := testenv.DB(t)
	_, space := testenv.Redis(t)
	cfg := Config{Env: "test", HTTPAddr: "127.0.0.1:0", LogLevel: "error", DatabaseURL: dsn, PGMaxConns: 20,
		PGTimeout: 3 * time.Second, MigrateOnStart: false, RedisPrefix: string(space), RedisPoolSize: 64,
		RedisTimeout: 2 * time.Second, AdminToken: testAdminToken, JWTSecret: testJWTSecret,
		WebhookSecret: testWebhook, PaymentProvider: ProviderTest, Currency: "USD", HoldTTL: 15 * time.Minute, CheckoutTTL: 15 * time.Minute,
		SweepInterval: 30 * time.Second, CommitRecordRetention: 168 * time.Hour, SessionTTL: 168 * time.Hour, CustomerCartTTL: 720 * time.Hour,
		ProductTTL: 6 * time.Hour, DiscountTTL: 4 * time.Hour, IdempotencyTTL: 24 * time.Hour,
		SessionsPerMinute: 100000, RateLimitPerSec: 100000, WarmProductsCron: "0 */6 * * *",
		WarmDiscountsCron: "0 */2 * * *", ReconcileCron: "*/15 * * * *", OutboxInterval: time.Second,
		JobTimeout: time.Minute, ShutdownTimeout: 5 * time.Second, RequestTimeout: 10 * time.Second}
	if addrs := testenv.RedisAddrs(); len(addrs) > 1 {
		cfg.RedisAddrs = addrs
	} else {
		cfg.RedisURL = "redis://" + addrs[0] + "/0"
	}
	return cfg
}

// newTestApp builds an App on its own database and key space.
func newTestApp(t *testing.T, mutate ...func(*Config)) *App {
	t.Helper()
	cfg := testConfig(t)
	for _, m := range mutate {
		m(&cfg)
	}
	a, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return a
}

// call sends one request through the app's handler (checked against api/openapi.yaml)
// and decodes a JSON answer.
type call struct {
	method, path string
	body         string
	headers      map[string]string
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (r answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object (%d): %s", r.status, r.body)
	}
	return m
}

func (r answer) errorCode(t *testing.T) string {
	t.Helper()
	m := r.json(t)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("response has no error object: %s", r.body)
	}
	if _, ok := e["message"].(string); !ok {
		t.Fatalf("error has no message: %s", r.body)
	}
	if _, ok := e["details"].(map[string]any); !ok {
		t.Fatalf("error has no details object: %s", r.body)
	}
	return e["code"].(string)
}

func do(t *testing.T, h http.Handler, c call) answer {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req := httptest.NewRequest(c.method, c.path, body)
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	spectest.Handler(t, h).ServeHTTP(rec, req)
	return answer{status: rec.Code, header: rec.Header(), body: bytes.Clone(rec.Body.Bytes())}
}

func admin() map[string]string { return map[string]string{"Authorization": "Bearer " + testAdminToken} }
