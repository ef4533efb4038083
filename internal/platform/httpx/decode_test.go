package httpx

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

type decodeLine struct {
	VariantID string `json:"variant_id"`
	Quantity  int    `json:"quantity"`
}

type decodeBody struct {
	Name       string         `json:"name"`
	Lines      []decodeLine   `json:"lines"`
	Attributes map[string]any `json:"attributes"`
}

// TestDecodeStrictRejectsWhatPostgreSQLCannotStore: a NUL, a lone surrogate, invalid
// UTF-8 and numbers outside jsonb's range are a 422 validation_failed naming the field,
// wherever they sit in the body (keys included).
func TestDecodeStrictRejectsWhatPostgreSQLCannotStore(t *testing.T) {
	for _, tc := range []struct{ body, field string }{
		{`{"name":"x\u0000y"}`, "name"},
		{`{"name":"\ud800"}`, "name"},
		{`{"name":"\udc00"}`, "name"},
		{`{"name":"a\ud800\u0041"}`, "name"},
		{`{"name":"a\ud800"}`, "name"},
		{"{\"name\":\"\xff\"}", "name"},
		{`{"lines":[{"variant_id":"v","quantity":1},{"variant_id":"\u0000"}]}`, "lines.1.variant_id"},
		{`{"attributes":{"n":1e1000000}}`, "attributes.n"},
		{`{"attributes":{"n":-1e1000000}}`, "attributes.n"},
		{`{"attributes":{"n":1e-1000000}}`, "attributes.n"},
		{`{"attributes":{"deep":[{"k":"\u0000"}]}}`, "attributes.deep.0.k"},
		{`{"attributes":{"k\u0000":1}}`, `attributes.k\x00`},
		{`{"lines":[{"quantity":1e1000000}]}`, "lines.0.quantity"},
	} {
		var v decodeBody
		err := DecodeStrict([]byte(tc.body), &v)
		var he *Error
		if !errors.As(err, &he) || he.Status != 422 || he.Code != CodeValidationFailed {
			t.Errorf("%s: got %v, want 422 validation_failed", tc.body, err)
			continue
		}
		if f, _ := he.Details["fields"].(map[string]any); f[tc.field] == nil {
			t.Errorf("%s: details %v do not name %q", tc.body, he.Details, tc.field)
		}
	}
}

// TestDecodeStrictIsExactCase: field names match exactly, duplicate keys are refused at
// any depth, and trailing data is refused, all as 400 bad_request.
func TestDecodeStrictIsExactCase(t *testing.T) {
	for _, body := range []string{
		`{"NAME":"x"}`, `{"Name":"x"}`, `{"lines":[{"Variant_ID":"v"}]}`, `{"lines":[{"QUANTITY":1}]}`,
		`{"name":"a","name":"b"}`, `{"lines":[{"quantity":1,"quantity":2}]}`, `{"attributes":{"a":1,"a":2}}`,
		`{"name":"a"} {}`, `{"name":"a"}x`, `{"unknown":1}`, `{"name":1}`, ``, `{`,
	} {
		var v decodeBody
		err := DecodeStrict([]byte(body), &v)
		var he *Error
		if !errors.As(err, &he) || he.Status != 400 || he.Code != CodeBadRequest {
			t.Errorf("%s: got %v, want 400 bad_request", body, err)
		}
	}
}

// TestDecodeStrictAccepts: what is valid still decodes, surrogate pairs and escaped
// backslashes included, and free-form numbers keep their exact text.
func TestDecodeStrictAccepts(t *testing.T) {
	var v decodeBody
	body := `{"name":"a\ud83d\udca5\\u0000","lines":[{"variant_id":"v","quantity":3}],` +
		`"attributes":{"big":12345678901234567890,"f":0.5,"z":0e10,"nested":{"x":[1,"y",null,true]}}}`
	if err := DecodeStrict([]byte(body), &v); err != nil {
		t.Fatalf("DecodeStrict: %v", err)
	}
	if v.Name != "a💥\\u0000" || len(v.Lines) != 1 || v.Lines[0].Quantity != 3 {
		t.Fatalf("decoded %+v", v)
	}
	if n, ok := v.Attributes["big"].(json.Number); !ok || n.String() != "12345678901234567890" {
		t.Fatalf("attributes.big = %#v, want the exact number", v.Attributes["big"])
	}
	nested, _ := v.Attributes["nested"].(map[string]any)
	if xs, _ := nested["x"].([]any); len(xs) != 4 || xs[0] != json.Number("1") {
		t.Fatalf("nested = %#v", nested)
	}
}

// TestBindWhitespaceBodyIsNotEmpty: an optional body may be absent, but a body of only
// whitespace is not absent and not JSON, so it is a 400 on every route, as the document
// (which cannot decode it either) says.
func TestBindWhitespaceBodyIsNotEmpty(t *testing.T) {
	e := echo.New()
	bind := func(body string, optional bool) error {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set(echo.HeaderContentType, "application/json")
		c := e.NewContext(req, httptest.NewRecorder())
		var v struct{}
		if optional {
			return BindOptional(c, &v)
		}
		return Bind(c, &v)
	}
	if err := bind("", true); err != nil {
		t.Fatalf("no body on an optional route: %v", err)
	}
	for _, optional := range []bool{true, false} {
		var he *Error
		if err := bind(" \n\t", optional); !errors.As(err, &he) || he.Status != http.StatusBadRequest {
			t.Fatalf("whitespace body (optional %v): %v, want 400", optional, err)
		}
	}
}
