package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
)

// fuzzBody has the shapes storefront and operator bodies use: integers, strings,
// nested objects, arrays, nullable fields, free-form attributes.
type fuzzBody struct {
	VariantID  string          `json:"variant_id"`
	Quantity   int             `json:"quantity"`
	Delta      int64           `json:"delta"`
	Code       *string         `json:"code"`
	Email      string          `json:"email"`
	Price      *fuzzMoney      `json:"price"`
	Variants   []fuzzVariant   `json:"variants"`
	Attributes map[string]any  `json:"attributes"`
	IDs        []string        `json:"variant_ids"`
	Active     *bool           `json:"active"`
	Raw        json.RawMessage `json:"raw"`
}

type fuzzMoney struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

type fuzzVariant struct {
	SKU   string    `json:"sku"`
	Price fuzzMoney `json:"price"`
	Stock int       `json:"stock"`
}

// FuzzDecodeStrict: no input makes DecodeStrict panic, and every failure is an *Error with
// a 4xx status and a message that does not leak Go type names. Every accepted body is
// strict and storable, as judged by an independent reader (encoding/json's tokenizer):
// no duplicate key in any object, only exact-case field names of fuzzBody at the top,
// no NUL, lone surrogate or invalid UTF-8 in any string or key.
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{
		``, ` `, `{}`, `[]`, `null`, `1`, `"x"`, `{`, `}`, `{"quantity":1}`, `{"quantity":"1"}`,
		`{"quantity":1.5}`, `{"quantity":-1}`, `{"quantity":99999999999999999999999}`, `{"quantity":1e400}`,
		`{"delta":-9223372036854775808}`, `{"delta":9223372036854775808}`, `{"unknown":1}`,
		`{"quantity":1}{"quantity":2}`, `{"quantity":1} x`, `{"code":null}`, `{"code":"ÄÖÜ💥\u0000"}`,
		`{"price":{"amount":1999,"currency":"USD"}}`, `{"price":{"amount":"1999"}}`, `{"price":[]}`,
		`{"variants":[{"sku":"a","price":{"amount":1,"currency":"USD"},"stock":10}]}`,
		`{"variants":[{"sku":"a","extra":1}]}`, `{"attributes":{"a":{"b":[1,{"c":null}]}}}`,
		`{"variant_ids":["not-a-uuid", 1]}`, `{"active":"true"}`, `{"raw":{"x":1}}`, "\xff\xfe{}",
		`{"quantity":1,"quantity":2}`, `{"QUANTITY":1}`, `{"Variant_ID":"x"}`, `{"code":"\ud800"}`,
		`{"code":"\udc00\ud800"}`, `{"code":"\ud83d\udca5"}`, `{"attributes":{"a\u0000":1}}`,
		`{"attributes":{"n":1e1000000}}`, `{"attributes":{"n":1e-1000000}}`, `{"attributes":{"a":1,"a":2}}`,
		`{"raw":{"x":1,"x":2}}`, `{"code":"\\u0000"}`, strings.Repeat("[", 10000), `{"email":"` + strings.Repeat("a", 5000) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v fuzzBody
		err := DecodeStrict(body, &v)
		if err == nil {
			if msg := independentlyStrict(body); msg != "" {
				t.Fatalf("accepted %q: %s", body, msg)
			}
			return
		}
		var he *Error
		if !errors.As(err, &he) {
			t.Fatalf("error %T %v is not an *httpx.Error", err, err)
		}
		if he.Status < 400 || he.Status > 499 {
			t.Fatalf("status %d for %q, want 4xx", he.Status, body)
		}
		if strings.Contains(he.Message, "httpx.") || strings.Contains(he.Message, "json:") {
			t.Fatalf("message leaks internals: %q", he.Message)
		}
		if c := Classify(err); c.Status != he.Status {
			t.Fatalf("Classify changed status %d to %d", he.Status, c.Status)
		}
	})
}

// FuzzParseUUID: no panic; accepted input is exactly a canonical 36-character UUID
// (any case), everything else is a 400 naming the field.
func FuzzParseUUID(f *testing.F) {
	for _, s := range []string{
		"", "x", "00000000-0000-0000-0000-000000000000", "0190a6f2-7c1e-7b4e-9d1a-3f2b8c9d0e1f",
		"0190A6F2-7C1E-7B4E-9D1A-3F2B8C9D0E1F", "{0190a6f2-7c1e-7b4e-9d1a-3f2b8c9d0e1f}",
		"urn:uuid:0190a6f2-7c1e-7b4e-9d1a-3f2b8c9d0e1f", "0190a6f27c1e7b4e9d1a3f2b8c9d0e1f",
		"0190a6f2-7c1e-7b4e-9d1a-3f2b8c9d0e1g", "0190a6f2+7c1e-7b4e-9d1a-3f2b8c9d0e1f",
		"../../admin/products", "0190a6f2-7c1e-7b4e-9d1a-3f2b8c9d0e1\u00e9", "%00", "💥💥💥💥💥💥💥💥💥",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseUUID(s, "variant_id")
		if err != nil {
			var he *Error
			if !errors.As(err, &he) || he.Status != 400 || he.Code != CodeBadRequest || !strings.Contains(he.Message, "variant_id") {
				t.Fatalf("ParseUUID(%q): %v, want a 400 bad_request naming the field", s, err)
			}
			if id != uuid.Nil {
				t.Fatalf("ParseUUID(%q) returned %v with an error", s, id)
			}
			return
		}
		if id.String() != strings.ToLower(s) {
			t.Fatalf("ParseUUID(%q) accepted a non-canonical form (got %s)", s, id)
		}
	})
}

// independentlyStrict re-reads an accepted body with encoding/json and says what a
// strict, storable body must not have ("" when it has none of it).
func independentlyStrict(body []byte) string {
	if !utf8.Valid(body) {
		return "invalid UTF-8"
	}
	var x any
	if err := json.Unmarshal(body, &x); err != nil {
		return "encoding/json cannot read it: " + err.Error()
	}
	// encoding/json turns a lone surrogate into U+FFFD; only a body that spells U+FFFD
	// itself may decode to one.
	lower := bytes.ToLower(body)
	if strings.ContainsRune(stringsOf(x), utf8.RuneError) &&
		!bytes.Contains(lower, []byte(`\ufffd`)) && !bytes.Contains(body, []byte("\uFFFD")) {
		return "a lone surrogate was accepted"
	}
	if strings.ContainsRune(stringsOf(x), 0) {
		return "a NUL was accepted"
	}
	tags := map[string]bool{"variant_id": true, "quantity": true, "delta": true, "code": true, "email": true,
		"price": true, "variants": true, "attributes": true, "variant_ids": true, "active": true, "raw": true}
	type frame struct {
		object    bool
		keys      map[string]bool
		expectKey bool
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(body))
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].expectKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return ""
		}
		if err != nil {
			return "encoding/json cannot read it: " + err.Error()
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				stack = append(stack, &frame{object: true, keys: map[string]bool{}, expectKey: true})
			case '[':
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
			continue
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expectKey {
			k := tok.(string)
			if stack[n-1].keys[k] {
				return "duplicate key " + k
			}
			stack[n-1].keys[k] = true
			if n == 1 && !tags[k] {
				return "field name " + k + " is not an exact-case field"
			}
			stack[n-1].expectKey = false
			continue
		}
		valueDone()
	}
}

// stringsOf concatenates every string and key in x.
func stringsOf(x any) string {
	var b strings.Builder
	var walk func(any)
	walk = func(x any) {
		switch v := x.(type) {
		case string:
			b.WriteString(v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for k, e := range v {
				b.WriteString(k)
				walk(e)
			}
		}
	}
	walk(x)
	return b.String()
}
