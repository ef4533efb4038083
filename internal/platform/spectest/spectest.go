// Package spectest checks HTTP exchanges against the service's OpenAPI document
// (api/openapi.yaml) in tests. It is built on kin-openapi's openapi3filter and is meant
// for tests only: the end-to-end test, the handler tests and the fuzz target route every
// request through Handler or Transport, so a response the document does not describe
// fails the test that caused it.
//
// The rules, stricter than openapi3filter's defaults:
//   - The status must be listed on the operation; `default` documents nothing.
//   - The body must match the schema of that status, and every header the document marks
//     required (X-Request-ID, Retry-After) must be present and valid.
//   - A request the document rejects (bad parameter, bad body) must not be answered 2xx:
//     the server and the document must agree on what is valid input.
//   - A path the document does not know must be answered 404, a method it does not list
//     for a known path 404 or 405 (either may be 401 when authentication fails first);
//     all in the error shape.
package spectest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/google/uuid"

	"commerce/api"
)

// A Validator checks exchanges against one OpenAPI document.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	defaultOnce sync.Once
	defaultV    *Validator
	defaultErr  error
)

func init() {
	// kin-openapi's optional uuid pattern only knows versions 1-5 (or 1-8 with a fixed
	// layout); the service mints v7 ids. uuid.Parse also accepts braces and urn: forms,
	// so the canonical 36-character form is required on top.
	openapi3.DefineStringFormatValidator("uuid", openapi3.NewCallbackValidator(func(s string) error {
		if len(s) != 36 {
			return errors.New("not a canonical UUID")
		}
		if _, err := uuid.Parse(s); err != nil {
			return errors.New("not a UUID")
		}
		return nil
	}))
}

// Default returns the validator of api/openapi.yaml, loaded once.
func Default() (*Validator, error) {
	defaultOnce.Do(func() { defaultV, defaultErr = New(api.Spec) })
	return defaultV, defaultErr
}

// New loads and validates an OpenAPI document.
func New(spec []byte) (*Validator, error) {
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("spectest: load the spec: %w", err)
	}
	doc.Servers = nil // match paths as they are, whatever host the test uses
	r, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("spectest: build the router: %w", err)
	}
	return &Validator{doc: doc, router: r}, nil
}

// Exchange is one request and the response it got.
type Exchange struct {
	Request     *http.Request // its Body is ignored: RequestBody is used
	RequestBody []byte
	Status      int
	Header      http.Header
	Body        []byte
}

// pathExists reports whether the document has req's path under some method.
func (v *Validator) pathExists(req *http.Request) bool {
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		r := req.Clone(req.Context())
		r.Method = m
		if _, _, err := v.router.FindRoute(r); err == nil {
			return true
		}
	}
	return false
}

// Check returns nil when the exchange is what the document describes, an error saying
// what differs otherwise.
func (v *Validator) Check(ctx context.Context, x Exchange) error {
	req := x.Request.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(x.RequestBody))
	req.ContentLength = int64(len(x.RequestBody))
	where := fmt.Sprintf("%s %s → %d", req.Method, req.URL.RequestURI(), x.Status)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s; body: %.300s", where, fmt.Sprintf(format, args...), x.Body)
	}

	// Match on the path as sent: an escaped slash inside a parameter ("..%2F..") stays in
	// the parameter, as in echo's router, instead of becoming a path of its own.
	if raw := req.URL.RawPath; raw != "" {
		req.URL.Path = raw
	}
	// HEAD is GET without a body (RFC 9110 §9.3.2): the service serves it wherever GET
	// works, so it is checked against the GET operation.
	head := req.Method == http.MethodHead
	if head {
		req.Method = http.MethodGet
	}
	route, params, err := v.router.FindRoute(req)
	if err == nil && len(req.URL.Path) > 1 && strings.HasSuffix(req.URL.Path, "/") {
		err = &routers.RouteError{Reason: routers.ErrPathNotFound.Error()} // "/v1/products/" is no route
	}
	// kin's router can match a path to a template whose last parameter is left empty
	// (DELETE /admin/discounts to DELETE /admin/discounts/{id}); echo does not, and no
	// operation takes an empty id, so such a match is no route.
	for _, p := range params {
		if err == nil && p == "" {
			err = &routers.RouteError{Reason: routers.ErrPathNotFound.Error()}
		}
	}
	if err != nil {
		var re *routers.RouteError
		if !errors.As(err, &re) {
			return fail("find the route: %v", err)
		}
		// Authentication runs before routing: a presented credential that is not valid,
		// or no admin token under /admin, is 401 whether or not the route exists.
		switch {
		case x.Status == http.StatusUnauthorized:
		case x.Status == http.StatusMethodNotAllowed:
			if !v.pathExists(req) {
				return fail("405 for a path the document does not have, want 404")
			}
		case re.Reason == routers.ErrMethodNotAllowed.Error():
			if x.Status != http.StatusMethodNotAllowed && x.Status != http.StatusNotFound {
				return fail("method not in the document for this path, want 405 or 404")
			}
		case x.Status != http.StatusNotFound:
			return fail("path not in the document, want 404")
		}
		if head {
			return nil
		}
		return v.checkErrorShape(x, fail)
	}
	if head {
		if route.Operation.Responses.Status(x.Status) == nil {
			return fail("status %d is not documented for GET %s", x.Status, route.Path)
		}
		return nil
	}

	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: false},
	}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	if reqErr != nil && x.Status >= 200 && x.Status < 300 {
		return fail("answered %d to a request the document rejects: %s", x.Status, short(reqErr))
	}

	if route.Operation.Responses.Status(x.Status) == nil {
		return fail("status %d is not documented for %s %s", x.Status, route.Method, route.Path)
	}
	rin := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: x.Status, Header: x.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: false},
	}
	rin.SetBodyBytes(x.Body)
	if err := openapi3filter.ValidateResponse(ctx, rin); err != nil {
		return fail("response breaks the document: %s", short(err))
	}
	return nil
}

func (v *Validator) checkErrorShape(x Exchange, fail func(string, ...any) error) error {
	s := v.doc.Components.Schemas["Error"]
	if s == nil || s.Value == nil {
		return fail("the document has no Error schema")
	}
	if !strings.HasPrefix(x.Header.Get("Content-Type"), "application/json") {
		return fail("error answer is %q, not JSON", x.Header.Get("Content-Type"))
	}
	var body any
	if err := json.Unmarshal(x.Body, &body); err != nil {
		return fail("error answer is not JSON: %v", err)
	}
	if err := s.Value.VisitJSON(body, openapi3.VisitAsResponse()); err != nil {
		return fail("error answer breaks the Error schema: %s", short(err))
	}
	return nil
}

// short trims kin-openapi's error text (which can quote whole schemas) to its first lines.
func short(err error) string {
	s := err.Error()
	if i := strings.Index(s, "\nSchema:"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return strings.TrimSpace(s)
}

// Must returns the default validator or fails tb.
func Must(tb testing.TB) *Validator {
	tb.Helper()
	v, err := Default()
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// Handler wraps h: every request it serves, and the response, is checked against the
// document, and a mismatch is reported with tb.Errorf (the test fails, the answer still
// goes through unchanged).
func Handler(tb testing.TB, h http.Handler) http.Handler {
	v := Must(tb)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil {
			var err error
			if body, err = io.ReadAll(r.Body); err != nil {
				tb.Errorf("spectest: read the request body: %v", err)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		res := rec.Result()
		if err := v.Check(context.Background(), Exchange{Request: r, RequestBody: body, Status: res.StatusCode,
			Header: res.Header, Body: rec.Body.Bytes()}); err != nil {
			tb.Errorf("spectest: %v", err)
		}
		for k, vs := range res.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(res.StatusCode)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// Transport wraps base (http.DefaultTransport when nil): every request sent through it,
// and the response, is checked against the document; a mismatch is reported with
// tb.Errorf.
func Transport(tb testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper{tb: tb, v: Must(tb), base: base}
}

type roundTripper struct {
	tb   testing.TB
	v    *Validator
	base http.RoundTripper
}

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
		_ = r.Body.Close()
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	res, err := rt.base.RoundTrip(r)
	if err != nil {
		return res, err
	}
	resBody, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(resBody))
	if err := rt.v.Check(r.Context(), Exchange{Request: r, RequestBody: body, Status: res.StatusCode,
		Header: res.Header, Body: resBody}); err != nil {
		rt.tb.Errorf("spectest: %v", err)
	}
	return res, nil
}
