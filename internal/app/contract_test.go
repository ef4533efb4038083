package app

import (
	"context"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"commerce/api"
)

var echoParam = regexp.MustCompile(`:([A-Za-z_]+)`)

// TestRoutesMatchSpec: every route registered in the router is in api/openapi.yaml and every
// operation of the spec is registered: the served contract never lists a route that
// does not exist, and no route exists outside it.
func TestRoutesMatchSpec(t *testing.T) {
	a := newTestApp(t)
	doc, err := openapi3.NewLoader().LoadFromData(api.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	spec := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			spec[method+" "+path] = true
		}
	}
	routes := map[string]bool{}
	for _, r := range a.Echo.Routes() {
		if strings.HasPrefix(r.Method, "echo_route_") || strings.HasSuffix(r.Path, "/*") {
			continue
		}
		routes[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	var missingInSpec, missingInRouter []string
	for r := range routes {
		if !spec[r] {
			missingInSpec = append(missingInSpec, r)
		}
	}
	for s := range spec {
		if !routes[s] {
			missingInRouter = append(missingInRouter, s)
		}
	}
	sort.Strings(missingInSpec)
	sort.Strings(missingInRouter)
	if len(missingInSpec) > 0 {
		t.Errorf("routes registered but not in the spec:\n  %s", strings.Join(missingInSpec, "\n  "))
	}
	if len(missingInRouter) > 0 {
		t.Errorf("spec operations not registered:\n  %s", strings.Join(missingInRouter, "\n  "))
	}
}

// TestEdgeErrors: the contract's 4xx answers at the edge, in the error shape, with a
// request id on every response.
func TestEdgeErrors(t *testing.T) {
	a := newTestApp(t)
	h := a.Handler()
	big := `{"x":"` + strings.Repeat("a", 1<<20) + `"}`
	tests := []struct {
		name   string
		c      call
		status int
		code   string
	}{
		{"unknownRoute404", call{method: "GET", path: "/v1/nope"}, 404, "not_found"},
		{"sessionUnknownField400", call{method: "POST", path: "/v1/sessions", body: `{"admin":true}`}, 400, "bad_request"},
		{"sessionMalformedJSON400", call{method: "POST", path: "/v1/sessions", body: `{`}, 400, "bad_request"},
		{"sessionTooLarge413", call{method: "POST", path: "/v1/sessions", body: big}, 413, "payload_too_large"},
		{"forgedSession401", call{method: "POST", path: "/v1/sessions", headers: map[string]string{"X-Session-ID": "forged"}}, 401, "unauthorized"},
		{"badJWT401", call{method: "POST", path: "/v1/sessions", headers: map[string]string{"Authorization": "Bearer x.y.z"}}, 401, "unauthorized"},
		{"adminNoToken401", call{method: "GET", path: "/admin/cache/stats"}, 401, "unauthorized"},
		{"adminWrongToken401", call{method: "GET", path: "/admin/cache/stats", headers: map[string]string{"Authorization": "Bearer " + testAdminToken + "x"}}, 401, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, h, tt.c)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if got := r.errorCode(t); got != tt.code {
				t.Fatalf("code %q, want %q", got, tt.code)
			}
			if r.header.Get("X-Request-ID") == "" {
				t.Fatal("no X-Request-ID")
			}
		})
	}
}

func TestSessionAndOps(t *testing.T) {
	a := newTestApp(t)
	h := a.Handler()
	r := do(t, h, call{method: "POST", path: "/v1/sessions", headers: map[string]string{"X-Request-ID": "abc-123"}})
	if r.status != http.StatusCreated {
		t.Fatalf("create session: %d %s", r.status, r.body)
	}
	if r.header.Get("X-Request-ID") != "abc-123" {
		t.Fatalf("request id not echoed: %q", r.header.Get("X-Request-ID"))
	}
	// JSON answers are encoded whole, then written once with their length (not chunked).
	if got := r.header.Get("Content-Length"); got != strconv.Itoa(len(r.body)) {
		t.Fatalf("Content-Length %q for a body of %d bytes", got, len(r.body))
	}
	sid, _ := r.json(t)["session_id"].(string)
	if len(sid) < 22 {
		t.Fatalf("session id too short to hold 128 random bits: %q", sid)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.yaml"} {
		if r := do(t, h, call{method: "GET", path: p}); r.status != 200 {
			t.Fatalf("GET %s: %d %s", p, r.status, r.body)
		}
	}
}
