package spectest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

const product = `{"id":"0190f3a2-6c1e-7b7a-9a55-2f1a7f3e9c01","slug":"red-shoe","name":"Red shoe","description":"",
"category":"shoes","status":"active","attributes":{},"version":1,"updated_at":"2026-01-02T03:04:05Z",
"variants":[{"id":"0190f3a2-6c1e-7b7a-9a55-2f1a7f3e9c02","sku":"RS-42","name":"42",
"price":{"amount":4999,"currency":"USD"},"attributes":{}}]}`

func exchange(method, target, reqBody string, status int, header map[string]string, body string) Exchange {
	req := httptest.NewRequest(method, target, strings.NewReader(reqBody))
	if reqBody != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	h := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"req-1"}}
	for k, v := range header {
		if v == "" {
			h.Del(k)
		} else {
			h.Set(k, v)
		}
	}
	return Exchange{Request: req, RequestBody: []byte(reqBody), Status: status, Header: h, Body: []byte(body)}
}

const errBody = `{"error":{"code":"bad_request","message":"m","details":{}}}`

// TestCheckCatchesBrokenResponses: each exchange breaks the document in one way and must
// be caught; the good ones next to them must pass, so the check is not merely strict.
func TestCheckCatchesBrokenResponses(t *testing.T) {
	v := Must(t)
	id := "/v1/products/0190f3a2-6c1e-7b7a-9a55-2f1a7f3e9c01"
	good := []struct {
		name string
		x    Exchange
	}{
		{"product", exchange("GET", id, "", 200, nil, product)},
		{"malformedID400", exchange("GET", "/v1/products/nope", "", 400, nil, errBody)},
		{"escapedSlashInID400", exchange("GET", "/v1/products/..%2F..%2Fadmin", "", 400, nil, errBody)},
		{"unknownPath404", exchange("GET", "/v1/nope", "", 404, nil, `{"error":{"code":"not_found","message":"m","details":{}}}`)},
		{"unavailableWithRetryAfter", exchange("GET", id, "", 503, map[string]string{"Retry-After": "1"},
			`{"error":{"code":"unavailable","message":"m","details":{}}}`)},
		{"badBody400", exchange("POST", "/v1/cart/items", `{"quantity":"x"}`, 400, nil, errBody)},
	}
	for _, g := range good {
		if err := v.Check(context.Background(), g.x); err != nil {
			t.Errorf("%s: a valid exchange was refused: %v", g.name, err)
		}
	}

	broken := []struct {
		name, want string
		x          Exchange
	}{
		{"missingRequiredField", "doesn't match schema",
			exchange("GET", id, "", 200, nil, strings.Replace(product, `"slug":"red-shoe",`, "", 1))},
		{"floatMoney", "doesn't match schema",
			exchange("GET", id, "", 200, nil, strings.Replace(product, `"amount":4999`, `"amount":49.99`, 1))},
		{"undocumentedStatus", "not documented", exchange("GET", id, "", 409, nil, errBody)},
		{"internalError", "not documented", exchange("GET", id, "", 500, nil, errBody)},
		{"noRequestID", `"X-Request-ID" missing`, exchange("GET", id, "", 200, map[string]string{"X-Request-Id": ""}, product)},
		{"unavailableWithoutRetryAfter", `"Retry-After" missing`,
			exchange("GET", id, "", 503, nil, `{"error":{"code":"unavailable","message":"m","details":{}}}`)},
		{"errorNotInShape", "doesn't match schema", exchange("GET", "/v1/products/nope", "", 400, nil, `{"message":"bad"}`)},
		{"unknownErrorCode", "doesn't match schema",
			exchange("GET", "/v1/products/nope", "", 400, nil, `{"error":{"code":"oops","message":"m","details":{}}}`)},
		{"acceptedWhatTheDocumentRejects", "document rejects",
			exchange("POST", "/v1/cart/items", `{"variant_id":"0190f3a2-6c1e-7b7a-9a55-2f1a7f3e9c02","quantity":500}`, 200, nil, `{}`)},
		{"unknownPathAnswered", "path not in the document", exchange("GET", "/v1/nope", "", 200, nil, `{}`)},
		{"notFoundNotInShape", "not JSON", exchange("GET", "/v1/nope", "", 404, map[string]string{"Content-Type": "text/plain"}, "404 page not found")},
		{"pagingShape", "doesn't match schema", exchange("GET", "/v1/products", "", 200, nil, `{"items":[],"page":1,"per_page":20}`)},
	}
	for _, b := range broken {
		err := v.Check(context.Background(), b.x)
		if err == nil {
			t.Errorf("%s: a broken exchange passed", b.name)
			continue
		}
		if !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: error %q does not say %q", b.name, err, b.want)
		}
	}
}

// recorder is a testing.TB that records Errorf instead of failing.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Helper() {}

// TestHandlerAndTransportReportBrokenResponses: the wrappers the suites use report a
// handler's broken answer to the test and pass the answer through unchanged.
func TestHandlerAndTransportReportBrokenResponses(t *testing.T) {
	broken := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-ID", "r")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"session_id":"s"}`)) // 200 instead of 201, no expires_at
	})
	rec := &recorder{TB: t}
	w := httptest.NewRecorder()
	Handler(rec, broken).ServeHTTP(w, httptest.NewRequest("POST", "/v1/sessions", nil))
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "status 200 is not documented") {
		t.Fatalf("Handler reported %q", rec.errs)
	}
	if w.Code != 200 || w.Body.String() != `{"session_id":"s"}` || w.Header().Get("X-Request-ID") != "r" {
		t.Fatalf("Handler changed the answer: %d %q %v", w.Code, w.Body, w.Header())
	}

	srv := httptest.NewServer(broken)
	defer srv.Close()
	rec = &recorder{TB: t}
	hc := &http.Client{Transport: Transport(rec, nil)}
	res, err := hc.Post(srv.URL+"/v1/sessions", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "status 200 is not documented") {
		t.Fatalf("Transport reported %q", rec.errs)
	}
}
